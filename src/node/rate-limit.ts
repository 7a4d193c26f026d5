/**
 * Token buckets for the enrolment protocols: one bucket for the whole node and one per key, so one
 * noisy requester cannot starve the others and many together cannot flood the CA. The key is any
 * string: the remote IP on `/mesh/join` (uncertified joiners, {@link createRateLimiter}), the
 * admitted peer's id on `/mesh/ca` ({@link createKeyedRateLimiter}). Pure: time comes in as `nowMs`,
 * no timers (STYLE.md §1).
 *
 * A bucket holds at most `burst` tokens and gains `ratePerSecond` tokens per second. A request takes
 * one token from its key's bucket and one from the global bucket, or is refused (and takes none).
 * The per-key table is bounded by `keyEntriesMax`: when full, buckets that have refilled completely
 * (indistinguishable from a fresh one) are dropped first, then the least recently used.
 */

/** Shape of one bucket. */
export interface BucketPolicy {
  /** Tokens added per second (may be fractional). */
  readonly ratePerSecond: number
  /** Largest number of tokens held; also the burst allowed after a quiet period. */
  readonly burst: number
}

/** Policy of {@link createKeyedRateLimiter}. */
export interface KeyedRateLimitPolicy {
  readonly global: BucketPolicy
  readonly perKey: BucketPolicy
  /** Most per-key buckets remembered. */
  readonly keyEntriesMax: number
}

/** Outcome of {@link KeyedRateLimiter.take}: `ok`, or which bucket was empty. */
export type KeyedRateLimitVerdict = 'ok' | 'global' | 'per-key'

/** Counters of a keyed limiter: requests allowed and refused by bucket, and evicted per-key entries. */
export interface KeyedRateLimitCounters {
  allowed: number
  refusedGlobal: number
  refusedPerKey: number
  evicted: number
}

/** A global plus per-key token bucket limiter. Not thread-safe (JS is single-threaded). */
export interface KeyedRateLimiter {
  /** Takes one token for `key` at `nowMs` if both buckets have one. */
  take(key: string, nowMs: number): KeyedRateLimitVerdict
  readonly counters: KeyedRateLimitCounters
  /** Number of per-key buckets held (for tests of the bound). */
  size(): number
}

/** Policy of {@link createRateLimiter} (the join protocol's per-IP limiter). */
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
 * Creates the join protocol's limiter, keyed by remote IP (the keyed limiter under per-IP names).
 * @throws RangeError for a policy with non-positive rates, bursts or table size
 */
export function createRateLimiter(policy: RateLimitPolicy): RateLimiter {
  const keyed = createKeyedRateLimiter(
    { global: policy.global, perKey: policy.perIp, keyEntriesMax: policy.ipEntriesMax },
    'perIp',
  )
  const counters: RateLimitCounters = { allowed: 0, refusedGlobal: 0, refusedPerIp: 0, evicted: 0 }
  return {
    counters,
    size: keyed.size,
    take(ip, nowMs) {
      const verdict = keyed.take(ip, nowMs)
      counters.allowed = keyed.counters.allowed
      counters.refusedGlobal = keyed.counters.refusedGlobal
      counters.refusedPerIp = keyed.counters.refusedPerKey
      counters.evicted = keyed.counters.evicted
      return verdict === 'per-key' ? 'per-ip' : verdict
    },
  }
}

/**
 * Creates a limiter with one bucket per key and one for everything.
 * @param label how errors name the per-key bucket (`perKey`, or `perIp` for the join limiter)
 * @throws RangeError for a policy with non-positive rates, bursts or table size
 */
export function createKeyedRateLimiter(policy: KeyedRateLimitPolicy, label = 'perKey'): KeyedRateLimiter {
  for (const [name, bucket] of [
    ['global', policy.global],
    [label, policy.perKey],
  ] as const) {
    if (!(bucket.ratePerSecond > 0) || !(bucket.burst >= 1)) {
      throw new RangeError(`${name} bucket needs ratePerSecond > 0 and burst >= 1`)
    }
  }
  const entriesLabel = label === 'perIp' ? 'ipEntriesMax' : 'keyEntriesMax'
  if (!Number.isSafeInteger(policy.keyEntriesMax) || policy.keyEntriesMax < 1) {
    throw new RangeError(`${entriesLabel} must be a positive integer`)
  }
  const global: Bucket = { tokens: policy.global.burst, updatedAtMs: Number.NEGATIVE_INFINITY }
  const perKey = new Map<string, Bucket>() // insertion order = least recently used first
  const counters: KeyedRateLimitCounters = { allowed: 0, refusedGlobal: 0, refusedPerKey: 0, evicted: 0 }

  const makeRoom = (nowMs: number): void => {
    if (perKey.size < policy.keyEntriesMax) return
    for (const [key, bucket] of perKey) {
      if (refill(bucket, policy.perKey, nowMs) >= policy.perKey.burst) {
        perKey.delete(key)
        counters.evicted += 1
      }
    }
    while (perKey.size >= policy.keyEntriesMax) {
      const oldest = perKey.keys().next().value
      if (oldest === undefined) break
      perKey.delete(oldest)
      counters.evicted += 1
    }
  }

  return {
    counters,
    size: () => perKey.size,
    take(key, nowMs) {
      let bucket = perKey.get(key)
      if (bucket === undefined) {
        makeRoom(nowMs)
        bucket = { tokens: policy.perKey.burst, updatedAtMs: nowMs }
      } else {
        perKey.delete(key) // re-inserted below: most recently used last
        bucket.tokens = refill(bucket, policy.perKey, nowMs)
        bucket.updatedAtMs = Math.max(bucket.updatedAtMs, nowMs)
      }
      perKey.set(key, bucket)
      global.tokens = refill(global, policy.global, nowMs)
      global.updatedAtMs = Math.max(global.updatedAtMs, nowMs)
      if (bucket.tokens < 1) {
        counters.refusedPerKey += 1
        return 'per-key'
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
