/**
 * Proves the replay cache admits an id at most once while it could still validate, stays within its
 * bound, refuses with `overloaded` rather than forgetting live ids, and frees entries soonest-expiring
 * first once they are past expiry plus skew; checked by tables and by a fast-check run against a naive
 * list-based model.
 */
import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { createReplayCache } from '../../src/gossip/replay.js'

describe('replay cache', () => {
  it('admits once, refuses the replay until expiry + skew, then forgets', () => {
    const cache = createReplayCache({ clockSkewToleranceMs: 100, entriesMax: 10 })
    expect(cache.admit('x', 1000, 0)).toEqual({ ok: true })
    expect(cache.admit('x', 1000, 500)).toEqual({ ok: false, code: 'replayed' })
    expect(cache.admit('x', 1000, 1100)).toEqual({ ok: false, code: 'replayed' })
    cache.tick(1100)
    expect(cache.has('x')).toBe(true)
    cache.tick(1101)
    expect(cache.has('x')).toBe(false)
    expect(cache.counters).toMatchObject({ admitted: 1, replayed: 2, expired: 1 })
  })

  it('when full of live entries, refuses new ids instead of forgetting', () => {
    const cache = createReplayCache({ clockSkewToleranceMs: 0, entriesMax: 3 })
    for (const [id, exp] of [
      ['a', 300],
      ['b', 100],
      ['c', 200],
    ] as const)
      expect(cache.admit(id, exp, 0).ok).toBe(true)
    expect(cache.admit('d', 500, 50)).toEqual({ ok: false, code: 'overloaded' })
    expect(cache.counters.overloaded).toBe(1)
    expect(cache.size).toBe(3)
    // At 101 only 'b' is past its keep-until time: it alone is evicted to make room.
    expect(cache.admit('d', 500, 101)).toEqual({ ok: true })
    expect([cache.has('a'), cache.has('b'), cache.has('c'), cache.has('d')]).toEqual([
      true,
      false,
      true,
      true,
    ])
    expect(cache.admit('e', 500, 101)).toEqual({ ok: false, code: 'overloaded' })
  })

  it('rejects nonsensical sizes', () => {
    expect(() => createReplayCache({ clockSkewToleranceMs: 0, entriesMax: 0 })).toThrow(RangeError)
    expect(() => createReplayCache({ clockSkewToleranceMs: -1 })).toThrow(RangeError)
  })

  it('matches a naive model on random operation sequences', () => {
    const op = fc.record({
      id: fc.integer({ min: 0, max: 12 }),
      ttl: fc.integer({ min: 1, max: 50 }),
      dt: fc.integer({ min: 0, max: 20 }),
    })
    fc.assert(
      fc.property(
        fc.array(op, { maxLength: 200 }),
        fc.integer({ min: 1, max: 6 }),
        fc.integer({ min: 0, max: 10 }),
        (ops, max, skew) => {
          const cache = createReplayCache({ clockSkewToleranceMs: skew, entriesMax: max })
          let model: { id: string; until: number }[] = []
          let now = 0
          for (const { id, ttl, dt } of ops) {
            now += dt
            const key = String(id)
            const live = model.find(e => e.id === key && e.until >= now)
            let expected: string
            if (live) expected = 'replayed'
            else {
              model = model.filter(e => e.until >= now)
              if (model.length >= max) expected = 'overloaded'
              else {
                model.push({ id: key, until: now + ttl + skew })
                expected = 'ok'
              }
            }
            const got = cache.admit(key, now + ttl, now)
            expect(got.ok ? 'ok' : got.code).toBe(expected)
            expect(cache.size).toBeLessThanOrEqual(max)
          }
        },
      ),
      { numRuns: 500 },
    )
  })
})
