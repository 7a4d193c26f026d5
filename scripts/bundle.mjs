// Bundles the CLI into one CommonJS file (dist/mesh.cjs) for `node` and for the single executable,
// and the embeddable library into dist/lib.js (ESM). CJS because Node's SEA runs CommonJS only
// (LIBP2P-NOTES §4); no top-level await anywhere in the entry for the same reason.
import { chmod, writeFile } from 'node:fs/promises'
import { build } from 'esbuild'

const common = {
  bundle: true,
  platform: 'node',
  target: 'node22',
  minify: process.env.BUNDLE_MINIFY !== '0',
  keepNames: true, // libp2p errors are matched by `.name`
  legalComments: 'none',
  logLevel: 'warning',
}

await build({
  ...common,
  entryPoints: ['bin/mesh.ts'],
  format: 'cjs',
  outfile: 'dist/mesh-main.cjs',
})
// dist/mesh.cjs is a small loader: it turns on Node's on-disk compile cache before loading the bundle,
// so repeated CLI runs skip compiling 1.6 MB of JavaScript (the single binary embeds its own cache).
await writeFile(
  'dist/mesh.cjs',
  [
    '#!/usr/bin/env node',
    "'use strict'",
    "require('node:module').enableCompileCache?.()",
    "require('./mesh-main.cjs')",
    '',
  ].join('\n'),
)
await chmod('dist/mesh.cjs', 0o755)

// The library for embedding programs: ESM, dependencies left to the consumer's node_modules.
await build({
  ...common,
  minify: false,
  entryPoints: ['src/index.ts'],
  format: 'esm',
  packages: 'external',
  outfile: 'dist/lib.js',
})
