// Proves the version line `mesh --version` prints and `mesh status` shows: the version first, then the
// build; the version alone for an agent that reports no build (older than the field); and, run from
// the sources (no bundle, so nothing baked in), a build of `unknown`. That the bundle and the binary do
// carry a commit and date is proved where they are run: test/cli/pack.int.test.ts, binary.int.test.ts.
import { describe, expect, it } from 'vitest'
import pkg from '../../package.json' with { type: 'json' }
import {
  formatVersion,
  MESH_BUILD,
  MESH_VERSION,
  MESH_VERSION_LINE,
  UNKNOWN_BUILD,
} from '../../src/version.js'

describe('version line', () => {
  it.each([
    [
      '0.1.0',
      { commit: '81d4787', date: '2026-05-01T10:00:00Z' },
      '0.1.0 (commit 81d4787, built 2026-05-01T10:00:00Z)',
    ],
    [
      '1.2.3',
      { commit: 'abcdef0-dirty', date: '2026-05-01T10:00:00Z' },
      '1.2.3 (commit abcdef0-dirty, built 2026-05-01T10:00:00Z)',
    ],
    ['0.1.0', undefined, '0.1.0'],
  ])('%s with %o: %s', (version, build, line) => {
    expect(formatVersion(version, build)).toBe(line)
    expect(formatVersion(version, build).split(' ')[0]).toBe(version)
  })

  it('is package.json’s version and an unknown build when run unbundled', () => {
    expect(MESH_VERSION).toBe(pkg.version)
    expect(MESH_BUILD).toEqual({ commit: UNKNOWN_BUILD, date: UNKNOWN_BUILD })
    expect(MESH_VERSION_LINE).toBe(`${pkg.version} (commit unknown, built unknown)`)
  })
})
