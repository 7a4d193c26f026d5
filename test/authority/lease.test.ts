/**
 * Proves the lease window rules with tables and a fast-check property against a naive model in true
 * time: for any two clocks whose rates stay within the budget (|rate| ≤ skew / TTL) and any message
 * delay, the holder has stopped acting (by true time) before the voter may grant to anyone else.
 */
import fc from 'fast-check'
import { describe, expect, test } from 'vitest'
import {
  grantExpiresAtMs,
  grantFreeAtMs,
  holderActUntilMs,
  remainingMs,
  restartQuietUntilMs,
} from '../../src/authority/lease.js'

const timing = { leaseTtlMs: 1_000, leaseDriftBudgetMs: 100 }

describe('lease windows', () => {
  test.each([
    [0, 900],
    [5_000, 5_900],
  ])('a holder that sent at %i acts until %i', (sent, until) =>
    expect(holderActUntilMs(sent, timing)).toBe(until),
  )

  test.each([
    [0, 1_000, 1_100],
    [250, 1_250, 1_350],
  ])('a voter that received at %i: grant expires %i, free for others at %i', (received, expires, free) => {
    expect(grantExpiresAtMs(received, timing)).toBe(expires)
    expect(grantFreeAtMs(grantExpiresAtMs(received, timing), timing)).toBe(free)
  })

  test('a restarted voter is quiet for one TTL plus the budget', () => {
    expect(restartQuietUntilMs(10_000, timing)).toBe(11_100)
  })

  test.each([
    [900, 100, 800],
    [900, 900, 0],
    [900, 1_000, 0],
  ])('remaining(%i at %i) = %i', (until, now, left) => expect(remainingMs(until, now)).toBe(left))

  test('holder stops (true time) before the voter frees the grant, for any drift within the budget', () => {
    const rateMax = timing.leaseDriftBudgetMs / timing.leaseTtlMs
    const rate = fc.double({ min: -rateMax, max: rateMax, noNaN: true })
    fc.assert(
      fc.property(rate, rate, fc.nat(10_000), fc.nat(500), (holderRate, voterRate, sentTrue, delay) => {
        // Naive model: convert local durations to true durations through each clock's rate.
        const holderStopsTrue = sentTrue + (holderActUntilMs(0, timing) - 0) / (1 + holderRate)
        const receivedTrue = sentTrue + delay
        const voterFreeTrue =
          receivedTrue + (grantFreeAtMs(grantExpiresAtMs(0, timing), timing) - 0) / (1 + voterRate)
        return holderStopsTrue <= voterFreeTrue + 1e-9
      }),
    )
  })

  test('without the skew budget the same model finds an overlap (the budget is needed)', () => {
    const rateMax = timing.leaseDriftBudgetMs / timing.leaseTtlMs
    const holderStopsTrue = timing.leaseTtlMs / (1 - rateMax)
    const voterFreeTrue = timing.leaseTtlMs / (1 + rateMax)
    expect(holderStopsTrue).toBeGreaterThan(voterFreeTrue)
  })
})
