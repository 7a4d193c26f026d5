// `npm pack` / `npm publish` run this first (package.json "prepack"). The package ships the bundles and
// the declaration files, not the sources, so they must be current: when any of them is missing or older
// than a file they are built from, it rebuilds them (declarations with tsc, the bundles with
// scripts/bundle.mjs); otherwise it does nothing, so packing right after `npm run build` (as in
// `npm test`) costs nothing. It does not type-check the tests or build the single binary.
import { execFileSync } from 'node:child_process'
import { readdirSync, statSync } from 'node:fs'
import { join, resolve } from 'node:path'

const root = resolve(import.meta.dirname, '..')

/** What the package's "files" carries that is built. */
const OUTPUTS = [
  'dist/mesh.cjs',
  'dist/mesh-main.cjs',
  'dist/mesh-node.cjs',
  'dist/lib.js',
  'dist/types/src/index.d.ts',
]
/** What they are built from: the version and dependency pins are inlined too. */
const INPUTS = [
  'src',
  'bin',
  'patches',
  'scripts/bundle.mjs',
  'package.json',
  'package-lock.json',
  'tsconfig.json',
  'tsconfig.build.json',
]

/** Newest modification time (ms) of `path` and, for a directory, everything under it; 0 if absent. */
function newest(path) {
  let stat
  try {
    stat = statSync(path)
  } catch {
    return 0
  }
  if (!stat.isDirectory()) return stat.mtimeMs
  let time = 0
  for (const entry of readdirSync(path)) time = Math.max(time, newest(join(path, entry)))
  return time
}

function oldestOutput() {
  let time = Number.POSITIVE_INFINITY
  for (const output of OUTPUTS) {
    try {
      time = Math.min(time, statSync(join(root, output)).mtimeMs)
    } catch {
      return 0 // missing
    }
  }
  return time
}

const sources = Math.max(...INPUTS.map(input => newest(join(root, input))))
if (oldestOutput() >= sources) {
  console.error('prepack: dist/ is up to date')
} else {
  console.error('prepack: dist/ is missing or older than its sources; building declarations and bundles')
  const tsc = join(root, 'node_modules', 'typescript', 'bin', 'tsc')
  execFileSync(process.execPath, [tsc, '-p', 'tsconfig.build.json'], { cwd: root, stdio: 'inherit' })
  execFileSync(process.execPath, ['scripts/bundle.mjs'], { cwd: root, stdio: 'inherit' })
}
