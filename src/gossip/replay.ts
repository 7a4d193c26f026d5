/**
 * The replay cache: a request id is admitted at most once per node.
 *
 * An entry is kept until its request can no longer pass the validity window anywhere, that is until
 * `expiresAtMs + clockSkewToleranceMs` has passed on our clock; after that the window check refuses the
 * request, so the entry can go. Entries are pruned soonest-expiring first (a min-heap on that time).
 *
 * Bounded by `entriesMax`. When full, only entries past their keep-until time are evicted; the cache
 * never forgets an id that could still validate, because forgetting it would let the request run a
 * second time. A full cache of live entries refuses new ids with `overloaded` (the pipeline maps it to
 * `ignore`: the sender is not penalised, the request is not forwarded or run). With lifetimes bounded
 * by `requestLifetimeMsMax`, a cache of N entries sustains N / lifetime requests per ms.
 */

/** Default number of remembered ids. */
export const REPLAY_ENTRIES_MAX = 65_536

/** Result of {@link ReplayCache.admit}. */
export type ReplayVerdict =
  | { readonly ok: true }
  | { readonly ok: false; readonly code: 'replayed' | 'overloaded' }

/** Counters, for metrics and tests. */
export interface ReplayCounters {
  admitted: number
  replayed: number
  /** Times the cache was full of live entries and refused a new id (the limit hit). */
  overloaded: number
  /** Entries dropped because their keep-until time passed. */
  expired: number
}

/** Bounded set of admitted request ids. Pure: time comes in as arguments. */
export interface ReplayCache {
  /**
   * Admits `key` (a request identity, see validate.ts) that stays valid until `expiresAtMs`, or says
   * why not. Admission marks the key seen.
   */
  admit(key: string, expiresAtMs: number, nowMs: number): ReplayVerdict
  /** True when `key` has been admitted and not yet dropped. Does not mark anything. */
  has(key: string): boolean
  /** Drops entries whose keep-until time has passed. */
  tick(nowMs: number): void
  readonly size: number
  readonly counters: Readonly<ReplayCounters>
}

/** Sizing of a replay cache. */
export interface ReplayCacheInit {
  /** Most ids kept; default {@link REPLAY_ENTRIES_MAX}. */
  readonly entriesMax?: number
  /** The clock-skew budget of the validity window, ms. */
  readonly clockSkewToleranceMs: number
}

/** Creates an empty replay cache. @throws RangeError on a non-positive size or negative skew */
export function createReplayCache(init: ReplayCacheInit): ReplayCache {
  const entriesMax = init.entriesMax ?? REPLAY_ENTRIES_MAX
  if (!Number.isSafeInteger(entriesMax) || entriesMax < 1) throw new RangeError('entriesMax must be ≥ 1')
  if (!(init.clockSkewToleranceMs >= 0)) throw new RangeError('clockSkewToleranceMs must be ≥ 0')
  const keepUntil = new Map<string, number>()
  const heap = new MinHeap()
  const counters: ReplayCounters = { admitted: 0, replayed: 0, overloaded: 0, expired: 0 }

  const prune = (nowMs: number): void => {
    for (let top = heap.peek(); top !== undefined && top.untilMs < nowMs; top = heap.peek()) {
      heap.pop()
      keepUntil.delete(top.key)
      counters.expired++
    }
  }

  return {
    admit(key, expiresAtMs, nowMs) {
      const until = keepUntil.get(key)
      if (until !== undefined && until >= nowMs) {
        counters.replayed++
        return { ok: false, code: 'replayed' }
      }
      prune(nowMs)
      if (keepUntil.size >= entriesMax) {
        counters.overloaded++
        return { ok: false, code: 'overloaded' }
      }
      const untilMs = expiresAtMs + init.clockSkewToleranceMs
      keepUntil.set(key, untilMs)
      heap.push({ key, untilMs })
      counters.admitted++
      return { ok: true }
    },
    has(key) {
      return keepUntil.has(key)
    },
    tick(nowMs) {
      prune(nowMs)
    },
    get size() {
      return keepUntil.size
    },
    counters,
  }
}

interface HeapEntry {
  readonly key: string
  readonly untilMs: number
}

/** Binary min-heap on `untilMs`. */
class MinHeap {
  private readonly items: HeapEntry[] = []

  peek(): HeapEntry | undefined {
    return this.items[0]
  }

  push(entry: HeapEntry): void {
    const items = this.items
    items.push(entry)
    let i = items.length - 1
    while (i > 0) {
      const parent = (i - 1) >> 1
      if (items[parent]!.untilMs <= items[i]!.untilMs) break
      ;[items[parent], items[i]] = [items[i]!, items[parent]!]
      i = parent
    }
  }

  pop(): HeapEntry | undefined {
    const items = this.items
    const top = items[0]
    const last = items.pop()
    if (items.length > 0 && last !== undefined) {
      items[0] = last
      let i = 0
      for (;;) {
        const l = 2 * i + 1
        const r = l + 1
        let smallest = i
        if (l < items.length && items[l]!.untilMs < items[smallest]!.untilMs) smallest = l
        if (r < items.length && items[r]!.untilMs < items[smallest]!.untilMs) smallest = r
        if (smallest === i) break
        ;[items[smallest], items[i]] = [items[i]!, items[smallest]!]
        i = smallest
      }
    }
    return top
  }
}
