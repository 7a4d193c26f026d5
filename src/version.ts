/** mesh's version, taken from package.json (inlined by esbuild into the bundle and the binary). */
import pkg from '../package.json' with { type: 'json' }

export const MESH_VERSION: string = pkg.version
