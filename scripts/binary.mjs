// Builds dist/mesh: a Node 22 single executable application (SEA) with code cache.
// Steps (LIBP2P-NOTES §4): blob from dist/mesh-main.cjs (the bundle, not the loader), copy the pinned node binary, strip the copy BEFORE
// injecting (stripping after corrupts it), inject with postject.
import { execFileSync, spawnSync } from 'node:child_process'
import { chmodSync, copyFileSync, rmSync, statSync, writeFileSync } from 'node:fs'
import { createRequire } from 'node:module'

const require = createRequire(import.meta.url)
const node = process.execPath
if (!process.version.startsWith('v22.')) {
  throw new Error(`build:binary needs the pinned Node 22 (running ${process.version}); run it through npm`)
}
writeFileSync(
  'dist/sea-config.json',
  JSON.stringify({
    main: 'dist/mesh-main.cjs',
    output: 'dist/sea.blob',
    disableExperimentalSEAWarning: true,
    useCodeCache: true,
  }),
)
execFileSync(node, ['--experimental-sea-config', 'dist/sea-config.json'], { stdio: 'inherit' })
rmSync('dist/mesh', { force: true })
copyFileSync(node, 'dist/mesh')
chmodSync('dist/mesh', 0o755)
try {
  execFileSync('strip', ['dist/mesh'], { stdio: 'inherit' })
} catch {
  console.warn('strip not available: the binary stays unstripped (about 17 MB larger)')
}
const postject = require.resolve('postject/dist/cli.js')
// postject (through LIEF) warns once per note section of the stripped binary that it cannot name:
// "warning: Can't find string offset for section name '.note…'". strip leaves the notes without names
// in the section-name table; postject only adds a segment and never reads them, so the binary is
// unaffected and the 12 identical lines would only bury real output. That exact message is dropped;
// anything else postject writes to stderr is passed on. Its stdout (progress lines) is shown only when
// it fails, since that is where it prints its errors.
const NOTE_WARNING = /^warning: Can't find string offset for section name '\.note[^']*'$/
const injected = spawnSync(
  node,
  [
    postject,
    'dist/mesh',
    'NODE_SEA_BLOB',
    'dist/sea.blob',
    '--sentinel-fuse',
    'NODE_SEA_FUSE_fce680ab2cc467b6e072b8b5df1996b2',
  ],
  { stdio: ['ignore', 'pipe', 'pipe'], encoding: 'utf8' },
)
const stderr = (injected.stderr ?? '').split('\n').filter(line => line !== '' && !NOTE_WARNING.test(line))
if (stderr.length > 0) process.stderr.write(`${stderr.join('\n')}\n`)
if (injected.error !== undefined) throw injected.error
if (injected.status !== 0) {
  process.stderr.write(injected.stdout ?? '')
  throw new Error(`postject failed (exit ${injected.status ?? injected.signal})`)
}
console.log(`dist/mesh: ${(statSync('dist/mesh').size / 1e6).toFixed(1)} MB`)
