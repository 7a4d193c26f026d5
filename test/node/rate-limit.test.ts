// Proves the join rate limiter: bursts, refill, the per-IP and global buckets refusing independently
// and taking no token when refusing, the bounded per-IP table, and (fast-check) that over any sequence
// of requests it allows exactly what a deliberately naive token-bucket implementation allows.
import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { createRateLimiter, type RateLimitPolicy } from '../../src/node/rate-limit.js'

const policy: RateLimitPolicy = {
  global: { ratePerSecond: 10, burst: 5 },
  perIp: { ratePerSecond: 1, burst: 3 },
  ipEntriesMax: 4,
}

describe('rate limiter', () => {
  it('allows a burst per IP, then refuses until tokens refill', () => {
    const limiter = createRateLimiter(policy)
    expect([0, 0, 0, 0].map(() => limiter.take('a', 1_000))).toEqual(['ok', 'ok', 'ok', 'per-ip'])
    expect(limiter.take('a', 1_999)).toBe('per-ip')
    expect(limiter.take('a', 2_000)).toBe('ok')
    expect(limiter.counters).toMatchObject({ allowed: 4, refusedPerIp: 2, refusedGlobal: 0 })
  })

  it('refuses globally when many IPs share the node budget', () => {
    const limiter = createRateLimiter(policy)
    const verdicts = ['a', 'b', 'c', 'd', 'e', 'f'].map(ip => limiter.take(ip, 0))
    expect(verdicts).toEqual(['ok', 'ok', 'ok', 'ok', 'ok', 'global'])
    // The refused IP's own bucket kept its tokens: it succeeds as soon as the global bucket refills.
    expect(limiter.take('f', 100)).toBe('ok')
  })

  it('keeps the per-IP table bounded, dropping refilled buckets first', () => {
    const limiter = createRateLimiter({ ...policy, global: { ratePerSecond: 1000, burst: 1000 } })
    for (let i = 0; i < 100; i++) limiter.take(`10.0.0.${i}`, i)
    expect(limiter.size()).toBeLessThanOrEqual(policy.ipEntriesMax)
    expect(limiter.counters.evicted).toBeGreaterThan(0)
  })

  it('rejects nonsensical policies', () => {
    expect(() => createRateLimiter({ ...policy, perIp: { ratePerSecond: 0, burst: 1 } })).toThrow(RangeError)
    expect(() => createRateLimiter({ ...policy, ipEntriesMax: 0 })).toThrow(RangeError)
  })

  it('matches a naive token bucket on random request sequences', () => {
    fc.assert(
      fc.property(
        fc.array(fc.tuple(fc.constantFrom('a', 'b', 'c'), fc.integer({ min: 0, max: 700 })), {
          maxLength: 80,
        }),
        steps => {
          const limiter = createRateLimiter({ ...policy, ipEntriesMax: 10 })
          // Naive model: replay every bucket from scratch with float arithmetic.
          const model = new Map<string, { tokens: number; at: number }>()
          let global = { tokens: policy.global.burst, at: 0 }
          let now = 0
          for (const [ip, gapMs] of steps) {
            now += gapMs
            const bucket = model.get(ip) ?? { tokens: policy.perIp.burst, at: now }
            const perIpTokens = Math.min(
              policy.perIp.burst,
              bucket.tokens + ((now - bucket.at) * policy.perIp.ratePerSecond) / 1000,
            )
            const globalTokens = Math.min(
              policy.global.burst,
              global.tokens + ((now - global.at) * policy.global.ratePerSecond) / 1000,
            )
            let expected: string
            if (perIpTokens < 1) expected = 'per-ip'
            else if (globalTokens < 1) expected = 'global'
            else expected = 'ok'
            const took = expected === 'ok' ? 1 : 0
            model.set(ip, { tokens: perIpTokens - took, at: now })
            global = { tokens: globalTokens - took, at: now }
            expect(limiter.take(ip, now)).toBe(expected)
          }
        },
      ),
    )
  })
})
