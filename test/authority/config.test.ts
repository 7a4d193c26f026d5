/**
 * Proves the configuration checks: every profile is valid, and each broken relationship (renew +
 * attempt + skew ≥ TTL, 2 × skew ≥ TTL, attempt > renew, liveness < renew, settle < 2 × TTL,
 * non-integers) is reported, all at once, never thrown.
 */
import { describe, expect, test } from 'vitest'
import { AuthorityConfigError, createAuthority } from '../../src/authority/authority.js'
import { authorityProfiles, validateAuthorityConfig } from '../../src/authority/config.js'

const base = authorityProfiles.lan

describe('validateAuthorityConfig', () => {
  test.each(Object.entries(authorityProfiles))('profile %s is valid', (_name, c) => {
    expect(validateAuthorityConfig(c)).toEqual([])
  })

  test.each([
    ['renew + attempt + skew ≥ TTL', { renewIntervalMs: 2_400 }, /must be less than leaseTtlMs/],
    [
      '2 × skew ≥ TTL',
      { leaseDriftBudgetMs: 1_500, renewIntervalMs: 100, attemptTimeoutMs: 100 },
      /2 × leaseDriftBudgetMs/,
    ],
    ['attempt > renew', { attemptTimeoutMs: base.renewIntervalMs + 100 }, /attemptTimeoutMs/],
    ['liveness < renew', { livenessTimeoutMs: 100 }, /livenessTimeoutMs/],
    ['settle < 2 × TTL', { membershipSettleMs: 3_000 }, /membershipSettleMs/],
    ['float', { leaseTtlMs: 1.5 }, /leaseTtlMs must be a positive integer/],
    ['zero', { zonesMax: 0 }, /zonesMax must be a positive integer/],
  ])('%s is reported', (_name, patch, pattern) => {
    const problems = validateAuthorityConfig({ ...base, ...patch })
    expect(problems.some(p => pattern.test(p))).toBe(true)
  })

  test('reports several problems at once', () => {
    expect(
      validateAuthorityConfig({
        ...base,
        attemptTimeoutMs: base.renewIntervalMs + 100,
        livenessTimeoutMs: 100,
      }).length,
    ).toBeGreaterThanOrEqual(2)
  })

  test('createAuthority refuses an invalid config with a typed error listing the problems', () => {
    try {
      createAuthority({
        self: 'n1',
        config: { ...base, renewIntervalMs: 5_000 },
        random: () => 0.5,
        nowMs: 0,
      })
      expect.unreachable()
    } catch (err) {
      expect(err).toBeInstanceOf(AuthorityConfigError)
      expect((err as AuthorityConfigError).code).toBe('invalid-config')
      expect((err as AuthorityConfigError).problems.length).toBeGreaterThan(0)
    }
  })
})
