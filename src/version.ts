/**
 * mesh's version and build. The version is taken from package.json (inlined by esbuild into the bundle
 * and the binary). The build, the git commit and the time the bundle was made, is baked in by
 * scripts/bundle.mjs through esbuild's `define` of {@link BUILD_COMMIT_GLOBAL} and
 * {@link BUILD_DATE_GLOBAL}; where the code runs unbundled (tests, the TypeScript sources) those names
 * are not defined and the build is `unknown`, as is the commit of a bundle made outside a git checkout.
 */
import pkg from '../package.json' with { type: 'json' }

/** The name scripts/bundle.mjs defines as the short commit hash, with `-dirty` for uncommitted changes. */
export const BUILD_COMMIT_GLOBAL = '__MESH_BUILD_COMMIT__'
/** The name scripts/bundle.mjs defines as the build time, ISO 8601 in UTC to the second. */
export const BUILD_DATE_GLOBAL = '__MESH_BUILD_DATE__'

// Replaced by string literals at bundle time; `typeof` of a name never declared is 'undefined', not an error.
declare const __MESH_BUILD_COMMIT__: string | undefined
declare const __MESH_BUILD_DATE__: string | undefined

/** What `mesh --version` and `mesh status` say about a build. */
export interface MeshBuild {
  /** Short git commit hash (`81d4787`, `…-dirty` when built with uncommitted changes), or `unknown`. */
  readonly commit: string
  /** When the bundle was made (`2026-05-01T10:00:00Z`; `SOURCE_DATE_EPOCH` when set), or `unknown`. */
  readonly date: string
}

/** The build value used when none was baked in. */
export const UNKNOWN_BUILD = 'unknown'

export const MESH_VERSION: string = pkg.version

/** This program's build. */
export const MESH_BUILD: MeshBuild = {
  commit: typeof __MESH_BUILD_COMMIT__ === 'string' ? __MESH_BUILD_COMMIT__ : UNKNOWN_BUILD,
  date: typeof __MESH_BUILD_DATE__ === 'string' ? __MESH_BUILD_DATE__ : UNKNOWN_BUILD,
}

/**
 * One line naming a version and its build: `0.1.0 (commit 81d4787, built 2026-05-01T10:00:00Z)`. The
 * version comes first so `mesh --version | cut -d' ' -f1` is the version alone. Without a build (an
 * agent older than the build field) it is the version alone.
 */
export function formatVersion(version: string, build: MeshBuild | undefined): string {
  if (build === undefined) return version
  return `${version} (commit ${build.commit}, built ${build.date})`
}

/** This program's version line (`mesh --version`). */
export const MESH_VERSION_LINE: string = formatVersion(MESH_VERSION, MESH_BUILD)
