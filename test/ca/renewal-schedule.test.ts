// Proves the renewal schedule arithmetic with tables: renewal starts at two thirds of the lifetime,
// retries back off exponentially within [retryMin, min(retryMax, remaining/4)], a last attempt is kept
// before the CA would call the certificate expired, and past notAfter + skew the answer is `expired`;
// plus a property: a decision never asks to wait past the start of renewal or past the usable end.
import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import {
  type RenewalPolicy,
  renewalDecision,
  renewalStartMs,
  retryDelayMs,
} from '../../src/ca/renewal-schedule.js'

const policy: RenewalPolicy = {
  retryBaseMs: 5_000,
  retryMinMs: 1_000,
  retryMaxMs: 600_000,
  recheckMaxMs: 3_600_000,
  clockSkewToleranceMs: 60_000,
}
const DAY = 86_400_000
const window = { notBeforeMs: 0, notAfterMs: 30 * DAY }

describe('renewal schedule', () => {
  it.each([
    [{ notBeforeMs: 0, notAfterMs: 3_000 }, 2_000],
    [{ notBeforeMs: 1_000, notAfterMs: 4_000 }, 3_000],
    [{ notBeforeMs: 0, notAfterMs: 10 }, 6],
    [window, 20 * DAY],
  ])('starts renewal of %o at %d', (w, expected) => {
    expect(renewalStartMs(w)).toBe(expected)
  })

  it.each([
    // failures, remainingMs, expected delay
    [1, 10 * DAY, 5_000],
    [2, 10 * DAY, 10_000],
    [5, 10 * DAY, 80_000],
    [20, 10 * DAY, 600_000],
    [200, 10 * DAY, 600_000],
    [3, 40_000, 10_000], // a quarter of what remains
    [3, 2_000, 1_000], // never below retryMin
  ])('retries after %d failures with %d ms left in %d ms', (failures, remaining, expected) => {
    expect(retryDelayMs(failures, remaining, policy)).toBe(expected)
  })

  it.each([
    ['fresh certificate waits, capped at recheckMax', 0, 0, undefined, { kind: 'wait', delayMs: 3_600_000 }],
    ['one hour before two thirds', 20 * DAY - 3_600_000, 0, undefined, { kind: 'wait', delayMs: 3_600_000 }],
    ['one second before two thirds', 20 * DAY - 1_000, 0, undefined, { kind: 'wait', delayMs: 1_000 }],
    ['at two thirds', 20 * DAY, 0, undefined, { kind: 'renew' }],
    [
      'after one failure, waits the base delay',
      20 * DAY + 1_000,
      1,
      20 * DAY,
      { kind: 'wait', delayMs: 4_000 },
    ],
    ['after one failure, once the delay passed', 20 * DAY + 5_000, 1, 20 * DAY, { kind: 'renew' }],
    ['past notAfter but within skew: still renews', 30 * DAY + 10_000, 0, undefined, { kind: 'renew' }],
    ['past notAfter + skew: expired', 30 * DAY + 60_000, 0, undefined, { kind: 'expired' }],
    [
      'near the end, a last try before the CA says expired',
      30 * DAY + 59_000,
      30,
      30 * DAY + 58_000,
      { kind: 'renew' },
    ],
  ] as const)('%s', (_label, nowMs, failures, last, expected) => {
    expect(renewalDecision(window, nowMs, failures, last, policy)).toEqual(expected)
  })

  it('does not retry at once after the final try before expiry failed', () => {
    const lastUsable = window.notAfterMs + policy.clockSkewToleranceMs
    expect(renewalDecision(window, lastUsable - 1, 30, lastUsable - 1, policy)).toEqual({
      kind: 'wait',
      delayMs: 1,
    })
    expect(renewalDecision(window, lastUsable, 30, lastUsable - 1, policy)).toEqual({ kind: 'expired' })
  })

  it('never waits past the start of renewal or the usable end', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 0, max: 10 * DAY }),
        fc.integer({ min: 1_000, max: 60 * DAY }),
        fc.integer({ min: 0, max: 70 * DAY }),
        fc.integer({ min: 0, max: 40 }),
        fc.integer({ min: 0, max: 70 * DAY }),
        (notBeforeMs, lifetimeMs, nowOffset, failures, lastOffset) => {
          const w = { notBeforeMs, notAfterMs: notBeforeMs + lifetimeMs }
          const nowMs = notBeforeMs + nowOffset
          const last = failures > 0 ? Math.min(nowMs, notBeforeMs + lastOffset) : undefined
          const decision = renewalDecision(w, nowMs, failures, last, policy)
          const lastUsable = w.notAfterMs + policy.clockSkewToleranceMs
          if (nowMs >= lastUsable) expect(decision.kind).toBe('expired')
          else if (decision.kind === 'wait') {
            expect(decision.delayMs).toBeGreaterThan(0)
            // Only after the final try (at lastUsable - 1) failed does the wait run to the end itself.
            if (last !== undefined && last >= lastUsable - 1)
              expect(nowMs + decision.delayMs).toBe(lastUsable)
            else expect(nowMs + decision.delayMs).toBeLessThan(lastUsable)
            if (failures === 0) expect(nowMs + decision.delayMs).toBeLessThanOrEqual(renewalStartMs(w))
          } else expect(decision.kind).toBe('renew')
          if (nowMs < renewalStartMs(w)) expect(decision.kind).toBe('wait')
        },
      ),
    )
  })
})
