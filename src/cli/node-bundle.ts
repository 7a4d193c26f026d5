/**
 * Loads the second file of the bundled CLI: the commands that run a node in this process
 * (src/cli/node-commands.ts, built into dist/mesh-node.cjs by scripts/bundle.mjs, which points the
 * CLI's `import('./cli/node-commands.js')` here). Only the bundle uses this module; run from source,
 * the CLI imports node-commands.ts itself.
 *
 * - Next to the first file (`node dist/mesh.cjs`): a plain require, which Node's compile cache covers
 *   (dist/mesh.cjs turns it on).
 * - In the single binary: the SEA asset of the same name holds the file already wrapped as Node wraps
 *   a CommonJS module, and the asset with {@link CODE_CACHE_SUFFIX} the V8 code cache of exactly that
 *   text, made with the binary's own flags (both by scripts/binary.mjs). The text is decoded straight
 *   from the binary's copy into one string, the only copy the agent then keeps. A cache V8 refuses
 *   (another version or other flags) costs only the compile time it would have saved.
 *
 * Once the file is loaded, V8 is told to favour memory over speed (`--optimize-for-size`): these
 * commands run a node, and `mesh agent` runs for months, mostly idle. It keeps the young generation
 * small: 13 MB less RSS per idle agent at N=8, the same idle CPU; bursts of new connections cost about
 * a quarter more CPU (docs/memory.md). It is set here, at run time, rather than baked into the binary
 * (scripts/binary.mjs): a V8 flag given at start makes V8 refuse the code cache of Node's own built-in
 * modules, which costs every `mesh status` 8 to 13 ms; set once the caches have been used, it does not.
 */
import { join } from 'node:path'
import { getAssetKeys, getRawAsset, isSea } from 'node:sea'
import { setFlagsFromString } from 'node:v8'
import { Script } from 'node:vm'

/** Suffix of the SEA asset holding the V8 code cache of an asset (scripts/binary.mjs). */
export const CODE_CACHE_SUFFIX = '.cache'

/** A CommonJS module body as Node wraps it (`Module.wrap`). */
type ModuleWrapper = (
  exports: unknown,
  require: NodeJS.Require,
  module: { exports: unknown },
  filename: string,
  dirname: string,
) => void

/** Loads bundle file `name` (e.g. `mesh-node.cjs`), sets V8 up for a long-lived node, returns its exports. */
export function loadNodeBundle(name: string): unknown {
  const exports = load(name)
  setFlagsFromString('--optimize-for-size')
  return exports
}

function load(name: string): unknown {
  if (!isSea()) return require(join(__dirname, name))
  const cacheKey = `${name}${CODE_CACHE_SUFFIX}`
  // Raw assets are views of the binary's own read-only copy: nothing is copied but the decoded text.
  const cachedData = getAssetKeys().includes(cacheKey) ? Buffer.from(getRawAsset(cacheKey)) : undefined
  const script = new Script(new TextDecoder().decode(getRawAsset(name)), {
    filename: name,
    ...(cachedData !== undefined ? { cachedData } : {}),
  })
  const module = { exports: {} as unknown }
  // The binary's own require loads built-in modules only, which is all a bundle asks for.
  ;(script.runInThisContext() as ModuleWrapper)(module.exports, require, module, name, '.')
  return module.exports
}
