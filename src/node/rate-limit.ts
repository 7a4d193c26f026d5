/**
 * Token buckets for the protocols uncertified peers may use (the join protocol): one bucket for the
 * whole node and one per remote IP, so one noisy host cannot starve the others and many hosts together
 * cannot flood the CA. Pure: time comes in as `nowMs`, no timers (STYLE.md §1).
 *
 * A bucket holds at most `burst` tokens and gains `ratePerSecond` tokens per second. A request takes
 * one token from its IP's bucket and one from the global bucket, or is refused (and takes none).
 * The per-IP table is bounded by `ipEntriesMax`: when full, buckets that have refilled completely
 * (indistinguishable from a fresh one) are dropped first, then the least recently used.
 */

/** Shape of one bucket. */
export interface BucketPolicy {
  /** Tokens added per second (may be fractional). */
  readonly ratePerSecond: number
  /** Largest number of tokens held; also the burst allowed after a quiet period. */
  readonly burst: number
}

/** Policy of {@link createRateLimiter}. */
export interface RateLimitPolicy {
  readonly global: BucketPolicy
  readonly perIp: BucketPolicy
  /** Most per-IP buckets remembered. */
  readonly ipEntriesMax: number
}

/** Outcome of {@link RateLimiter.take}: `ok`, or which bucket was empty. */
export type RateLimitVerdict = 'ok' | 'global' | 'per-ip'

/** Counters of a limiter: requests allowed and refused by bucket, and evicted per-IP entries. */
export interface RateLimitCounters {
  allowed: number
  refusedGlobal: number
  refusedPerIp: number
  evicted: number
}

/** A global plus per-IP token bucket limiter. Not thread-safe (JS is single-threaded). */
export interface RateLimiter {
  /** Takes one token for `ip` at `nowMs` if both buckets have one. */
  take(ip: string, nowMs: number): RateLimitVerdict
  readonly counters: RateLimitCounters
  /** Number of per-IP buckets held (for tests of the bound). */
  size(): number
}

interface Bucket {
  tokens: number
  updatedAtMs: number
}

/** Tokens in `bucket` at `nowMs` (never above `burst`, never decreasing with time). */
export function refill(bucket: Bucket, policy: BucketPolicy, nowMs: number): number {
  const elapsedMs = Math.max(0, nowMs - bucket.updatedAtMs)
  return Math.min(policy.burst, bucket.tokens + (elapsedMs * policy.ratePerSecond) / 1000)
}

/**
 * Creates a limiter.
 * @throws RangeError for a policy with non-positive rates, bursts or table size
 */
export function createRateLimiter(policy: RateLimitPolicy): RateLimiter {
  for (const [label, bucket] of [
    ['global', policy.global],
    ['perIp', policy.perIp],
  ] as const) {
    if (!(bucket.ratePerSecond > 0) || !(bucket.burst >= 1)) {
      throw new RangeError(`${label} bucket needs ratePerSecond > 0 and burst >= 1`)
    }
  }
  if (!Number.isSafeInteger(policy.ipEntriesMax) || policy.ipEntriesMax < 1) {
    throw new RangeError('ipEntriesMax must be a positive integer')
  }
  const global: Bucket = { tokens: policy.global.burst, updatedAtMs: Number.NEGATIVE_INFINITY }
  const perIp = new Map<string, Bucket>() // insertion order = least recently used first
  const counters: RateLimitCounters = { allowed: 0, refusedGlobal: 0, refusedPerIp: 0, evicted: 0 }

  const makeRoom = (nowMs: number): void => {
    if (perIp.size < policy.ipEntriesMax) return
    for (const [ip, bucket] of perIp) {
      if (refill(bucket, policy.perIp, nowMs) >= policy.perIp.burst) {
        perIp.delete(ip)
        counters.evicted += 1
      }
    }
    while (perIp.size >= policy.ipEntriesMax) {
      const oldest = perIp.keys().next().value
      if (oldest === undefined) break
      perIp.delete(oldest)
      counters.evicted += 1
    }
  }

  return {
    counters,
    size: () => perIp.size,
    take(ip, nowMs) {
      let bucket = perIp.get(ip)
      if (bucket === undefined) {
        makeRoom(nowMs)
        bucket = { tokens: policy.perIp.burst, updatedAtMs: nowMs }
      } else {
        perIp.delete(ip) // re-inserted below: most recently used last
        bucket.tokens = refill(bucket, policy.perIp, nowMs)
        bucket.updatedAtMs = Math.max(bucket.updatedAtMs, nowMs)
      }
      perIp.set(ip, bucket)
      global.tokens = refill(global, policy.global, nowMs)
      global.updatedAtMs = Math.max(global.updatedAtMs, nowMs)
      if (bucket.tokens < 1) {
        counters.refusedPerIp += 1
        return 'per-ip'
      }
      if (global.tokens < 1) {
        counters.refusedGlobal += 1
        return 'global'
      }
      bucket.tokens -= 1
      global.tokens -= 1
      counters.allowed += 1
      return 'ok'
    },
  }
}
