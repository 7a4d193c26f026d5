// Loads the repository's TypeScript sources into a bench script: bundles `entry` (an ES module text
// whose imports are relative to the repository root) with esbuild, libraries left external, into
// node_modules/.cache/mesh-bench/NAME.mjs, and imports it.
import { join, resolve } from 'node:path'
import { pathToFileURL } from 'node:url'
import { build } from 'esbuild'

export const root = resolve(import.meta.dirname, '..')

/** The module `entry` re-exports, bundled from the sources. */
export async function importSources(name, entry) {
  const out = join(root, `node_modules/.cache/mesh-bench/${name}.mjs`)
  await build({
    stdin: { contents: entry, resolveDir: root, loader: 'ts' },
    bundle: true,
    platform: 'node',
    format: 'esm',
    packages: 'external',
    outfile: out,
    logLevel: 'warning',
  })
  return import(pathToFileURL(out).href)
}
