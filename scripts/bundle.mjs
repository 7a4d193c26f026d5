// Bundles the CLI into one CommonJS file (dist/mesh.cjs) for `node` and for the single executable,
// and the embeddable library into dist/lib.js (ESM). CJS because Node's SEA runs CommonJS only
// (LIBP2P-NOTES §4); no top-level await anywhere in the entry for the same reason.
import { chmod } from 'node:fs/promises'
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
  outfile: 'dist/mesh.cjs',
  banner: { js: '#!/usr/bin/env node' },
})
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
