// Bundles the CLI for `node` and for the single executable, and the embeddable library into dist/lib.js
// (ESM). The CLI is CommonJS because Node's SEA runs CommonJS only (LIBP2P-NOTES §4); no top-level await
// anywhere in the entry for the same reason. It is two files, split at src/cli/node-commands.ts:
//   dist/mesh-main.cjs  the entry, commander and the commands that talk to the agent over the control
//                       socket (status, members, exec, ticket, ca …): about 100 kB, parsed by every run;
//   dist/mesh-node.cjs  init, join, agent and demo with libp2p, noble, pino, zod …: about 1.4 MB, loaded
//                       by src/cli/node-bundle.ts only when one of those commands runs.
// A command that only asks the agent thus starts without reading the second file (docs/memory.md).
import { execFileSync } from 'node:child_process'
import { realpathSync } from 'node:fs'
import { chmod, writeFile } from 'node:fs/promises'
import { resolve } from 'node:path'
import { build } from 'esbuild'

/**
 * The build every bundle carries (src/version.ts, `mesh --version`, `mesh status`): the short commit of
 * this checkout, with `-dirty` when tracked files differ from it, and the time of the build
 * (SOURCE_DATE_EPOCH instead, when set, for reproducible builds). Without git, or outside a git checkout
 * of this repository (a copy inside some other repository), the commit is 'unknown'. Read-only:
 * GIT_OPTIONAL_LOCKS=0 keeps `git status` from rewriting the index.
 */
function buildInfo() {
  const root = realpathSync(resolve(import.meta.dirname, '..'))
  const git = args =>
    execFileSync('git', ['-C', root, ...args], {
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'ignore'],
      timeout: 10_000,
      env: { ...process.env, GIT_OPTIONAL_LOCKS: '0' },
    }).trim()
  let commit = 'unknown'
  try {
    if (realpathSync(git(['rev-parse', '--show-toplevel'])) === root) {
      commit = git(['rev-parse', '--short', 'HEAD'])
      if (git(['status', '--porcelain', '--untracked-files=no']) !== '') commit += '-dirty'
    }
  } catch {
    // no git, or not a checkout: the commit stays unknown
  }
  const epochS = /^\d+$/.test(process.env.SOURCE_DATE_EPOCH ?? '')
    ? Number(process.env.SOURCE_DATE_EPOCH)
    : undefined
  const date = new Date(epochS !== undefined ? epochS * 1000 : Date.now())
    .toISOString()
    .replace(/\.\d{3}Z$/, 'Z')
  return { commit, date }
}
const meshBuild = buildInfo()

const common = {
  bundle: true,
  platform: 'node',
  target: 'node22',
  minify: process.env.BUNDLE_MINIFY !== '0',
  keepNames: true, // libp2p errors are matched by `.name`
  legalComments: 'none',
  logLevel: 'warning',
  // The names src/version.ts reads (BUILD_COMMIT_GLOBAL, BUILD_DATE_GLOBAL).
  define: {
    __MESH_BUILD_COMMIT__: JSON.stringify(meshBuild.commit),
    __MESH_BUILD_DATE__: JSON.stringify(meshBuild.date),
  },
}

/** The second file of the CLI, next to the first (and an SEA asset of that name, scripts/binary.mjs). */
const NODE_BUNDLE = 'mesh-node.cjs'
const NODE_COMMANDS = resolve('src/cli/node-commands.ts')
const NODE_BUNDLE_LOADER = resolve('src/cli/node-bundle.ts')

/** In the first file, `import('./cli/node-commands.js')` becomes "load the second file". */
const splitAtNodeCommands = {
  name: 'split-at-node-commands',
  setup(b) {
    b.onResolve({ filter: /\/node-commands\.js$/ }, async args => {
      if (args.pluginData?.resolving) return undefined
      const target = await b.resolve(args.path, {
        kind: args.kind,
        importer: args.importer,
        resolveDir: args.resolveDir,
        pluginData: { resolving: true },
      })
      if (target.path !== NODE_COMMANDS) return undefined
      return { path: NODE_BUNDLE, namespace: 'node-bundle' }
    })
    b.onLoad({ filter: /.*/, namespace: 'node-bundle' }, () => ({
      contents: `module.exports = require(${JSON.stringify(NODE_BUNDLE_LOADER)}).loadNodeBundle(${JSON.stringify(NODE_BUNDLE)})`,
      loader: 'js',
      resolveDir: resolve('.'),
    }))
  },
}

/**
 * zod's `z` carries every locale's error messages (about 260 kB of the second file); config errors
 * are English (src/node/config.ts), so only `en` is kept: 0.2 to 0.4 MB less heap per agent.
 */
const zodEnglishOnly = {
  name: 'zod-english-only',
  setup(b) {
    b.onLoad({ filter: /[\\/]zod[\\/]v4[\\/]locales[\\/]index\.js$/ }, () => ({
      contents: "export { default as en } from './en.js'",
      loader: 'js',
    }))
  },
}

const first = await build({
  ...common,
  entryPoints: ['bin/mesh.ts'],
  format: 'cjs',
  outfile: 'dist/mesh-main.cjs',
  plugins: [splitAtNodeCommands],
  metafile: true,
})
await build({
  ...common,
  entryPoints: [NODE_COMMANDS],
  format: 'cjs',
  outfile: `dist/${NODE_BUNDLE}`,
  plugins: [zodEnglishOnly],
})
// The first file must not pull in what the split is for; a static import of one of these from a
// client command would (docs/memory.md lists what each costs).
const HEAVY = /node_modules\/(libp2p|@libp2p|@chainsafe|@noble|pino|zod|smol-toml)\//
const leaked = Object.entries(first.metafile.outputs['dist/mesh-main.cjs'].inputs)
  .filter(([path, input]) => input.bytesInOutput > 0 && HEAVY.test(path))
  .map(([path]) => path)
if (leaked.length > 0) {
  throw new Error(
    `dist/mesh-main.cjs includes modules meant for ${NODE_BUNDLE}: ${leaked.slice(0, 5).join(', ')}`,
  )
}

// dist/mesh.cjs is a small loader: it turns on Node's on-disk compile cache before loading the bundle,
// so repeated CLI runs skip compiling the JavaScript (the single binary embeds its own caches).
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

// The library for embedding programs: ESM, self-contained like the CLI. The npm package has no runtime
// dependencies (test/cli/pack.int.test.ts), so nothing would be in the consumer's node_modules, and
// bundled the library carries the fixes of patches/. Bundled CommonJS dependencies (pino …) call
// require() for Node built-ins, which an ES module does not have: the banner gives it one.
await build({
  ...common,
  minify: false,
  entryPoints: ['src/index.ts'],
  format: 'esm',
  banner: {
    js: "import { createRequire as __meshCreateRequire } from 'node:module'; const require = __meshCreateRequire(import.meta.url);",
  },
  outfile: 'dist/lib.js',
})
