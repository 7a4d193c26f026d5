// Builds dist/mesh: a Node 22 single executable application (SEA).
// Steps (LIBP2P-NOTES §4): a blob from the CLI's first file dist/mesh-main.cjs (the bundle, not the
// dist/mesh.cjs loader) with its V8 code cache, plus the second file dist/mesh-node.cjs and its code
// cache as assets (src/cli/node-bundle.ts loads them); copy the pinned node binary, strip the copy BEFORE
// injecting (stripping after corrupts it), inject with postject.
import { execFileSync, spawnSync } from 'node:child_process'
import { chmodSync, copyFileSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs'
import Module, { createRequire } from 'node:module'

const require = createRequire(import.meta.url)
const node = process.execPath
if (!process.version.startsWith('v22.')) {
  throw new Error(`build:binary needs the pinned Node 22 (running ${process.version}); run it through npm`)
}

/**
 * Node options baked into the binary (SEA `execArgv`), measured with bench/memory.mjs (docs/memory.md).
 * `--v8-pool-size=1`: one V8 worker thread instead of four (GC helpers, background compiles), so fewer
 * thread stacks and malloc arenas: 4 MB less RSS per idle agent, no measurable CPU or start-up cost.
 * No V8 flag is baked in: any V8 flag given at start (`--max-semi-space-size`, `--optimize-for-size`)
 * makes V8 refuse the code cache of Node's built-in modules, 8 to 13 ms more for every CLI run; the
 * agent gets `--optimize-for-size` at run time instead (src/cli/node-bundle.ts). A code cache is only
 * accepted by a V8 started with the same flags, so both caches below are made by a node started with
 * exactly these.
 */
const EXEC_ARGV = ['--v8-pool-size=1']

/**
 * The CLI's second file (src/cli/node-bundle.ts loads it). Its asset keeps the file's name but holds it
 * wrapped as Node wraps a CommonJS module, so the binary compiles that text as it is; the asset named
 * with '.cache' after it is the V8 code cache of exactly that text, made by a node with EXEC_ARGV.
 */
const NODE_BUNDLE = 'mesh-node.cjs'
writeFileSync(`dist/sea-${NODE_BUNDLE}`, Module.wrap(readFileSync(`dist/${NODE_BUNDLE}`, 'utf8')))
const makeCache = `
const { readFileSync, writeFileSync } = require('node:fs')
const { Script } = require('node:vm')
const source = readFileSync('dist/sea-${NODE_BUNDLE}', 'utf8')
const cache = new Script(source, { filename: '${NODE_BUNDLE}' }).createCachedData()
if (new Script(source, { filename: '${NODE_BUNDLE}', cachedData: cache }).cachedDataRejected)
  throw new Error('V8 refused the code cache it just made')
writeFileSync('dist/sea-${NODE_BUNDLE}.cache', cache)
`
execFileSync(node, [...EXEC_ARGV, '-e', makeCache], { stdio: 'inherit' })

writeFileSync(
  'dist/sea-config.json',
  JSON.stringify({
    main: 'dist/mesh-main.cjs',
    output: 'dist/sea.blob',
    disableExperimentalSEAWarning: true,
    useCodeCache: true,
    assets: {
      [NODE_BUNDLE]: `dist/sea-${NODE_BUNDLE}`,
      [`${NODE_BUNDLE}.cache`]: `dist/sea-${NODE_BUNDLE}.cache`,
    },
    execArgv: EXEC_ARGV,
  }),
)
execFileSync(node, [...EXEC_ARGV, '--experimental-sea-config', 'dist/sea-config.json'], { stdio: 'inherit' })
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
