/**
 * The clock and randomness ports. Every driver component gets time and chance from here, so a test can
 * drive a node's own timers (heartbeat, renewal, lease ticks, connection upkeep) from a manual clock and
 * replay its choices from a seed. `Date.now`, `performance.now`, `Math.random` and the global timer
 * functions appear in this file only: {@link systemClock} and {@link systemRandom} are the real
 * implementations, {@link createManualClock} the one tests advance by hand.
 */
import { randomBytes } from 'node:crypto'
import { performance } from 'node:perf_hooks'

/** A pending timer. `cancel` is idempotent; a cancelled or fired timer never fires (again). */
export interface Timer {
  cancel(): void
}

/** Options of {@link Clock.setTimer}. */
export interface TimerOptions {
  /**
   * Whether this timer alone keeps the process alive (default false: background upkeep must never hold
   * an embedding program open). Waits that someone awaits pass true.
   */
  readonly keepAlive?: boolean
}

/** Wall time, monotonic time and timers. */
export interface Clock {
  /** Wall clock, milliseconds since the Unix epoch; may jump (NTP, operator). Signed timestamps use it. */
  nowMs(): number
  /** Monotonic milliseconds from an arbitrary origin; never jumps. Durations and lease windows use it. */
  monotonicMs(): number
  /** Calls `fn` once, `delayMs` (clamped to 0..2^31-1; NaN is 0, Infinity the maximum) from now. */
  setTimer(fn: () => void, delayMs: number, options?: TimerOptions): Timer
}

/** Randomness for choices (which peer to dial, jitter). Key material uses {@link Random.bytes}. */
export interface Random {
  /** A float in [0, 1). */
  float(): number
  /** An integer in [0, maxExclusive). */
  int(maxExclusive: number): number
  /** Cryptographically secure bytes, whatever the implementation (keys, nonces, request ids). */
  bytes(count: number): Uint8Array
}

/** Longest delay the platform's timers accept (a longer one fires at once with a warning). */
export const TIMER_DELAY_MS_MAX = 2 ** 31 - 1

/** Negative and NaN delays fire at once; longer than the platform allows (Infinity too) waits the longest. */
function clampDelay(delayMs: number): number {
  if (Number.isNaN(delayMs) || delayMs < 0) return 0
  return Math.min(delayMs, TIMER_DELAY_MS_MAX)
}

/** The real clock. */
export const systemClock: Clock = {
  nowMs: () => Date.now(),
  monotonicMs: () => performance.now(),
  setTimer(fn, delayMs, options) {
    const handle = setTimeout(fn, clampDelay(delayMs))
    if (options?.keepAlive !== true) handle.unref()
    return { cancel: () => clearTimeout(handle) }
  },
}

/** The real randomness: `Math.random` for choices, node:crypto for bytes. */
export const systemRandom: Random = {
  float: () => Math.random(),
  int: maxExclusive => Math.floor(Math.random() * Math.max(0, maxExclusive)),
  bytes: count => new Uint8Array(randomBytes(count)),
}

/** Resolves after `delayMs` on `clock`, or at once when `signal` aborts (never rejects). */
export function sleep(clock: Clock, delayMs: number, signal?: AbortSignal): Promise<void> {
  return new Promise(resolve => {
    if (signal?.aborted === true) return resolve()
    const timer = clock.setTimer(done, delayMs, { keepAlive: true })
    signal?.addEventListener('abort', done, { once: true })
    function done(): void {
      timer.cancel()
      signal?.removeEventListener('abort', done)
      resolve()
    }
  })
}

/**
 * Calls `fn` every `intervalMs` until the returned timer is cancelled: one timer at a time, re-armed
 * after each call, so a slow call never piles up runs.
 */
export function every(clock: Clock, intervalMs: number, fn: () => void): Timer {
  let cancelled = false
  let current: Timer | undefined
  const arm = (): void => {
    current = clock.setTimer(() => {
      if (cancelled) return
      fn()
      if (!cancelled) arm()
    }, intervalMs)
  }
  arm()
  return {
    cancel() {
      cancelled = true
      current?.cancel()
    },
  }
}

/** A clock that moves only when told to; for tests. */
export interface ManualClock extends Clock {
  /** Moves both clocks forward by `ms`, firing due timers in deadline order (then creation order). */
  advance(ms: number): void
  /** Timers not yet fired or cancelled. */
  pending(): number
}

/** Creates a {@link ManualClock} whose wall clock starts at `startMs`. */
export function createManualClock(startMs = 1_700_000_000_000): ManualClock {
  let wall = startMs
  let monotonic = 0
  let sequence = 0
  const timers = new Map<number, { atMs: number; fn: () => void }>()
  return {
    nowMs: () => wall,
    monotonicMs: () => monotonic,
    setTimer(fn, delayMs) {
      const id = sequence++
      timers.set(id, { atMs: monotonic + clampDelay(delayMs), fn })
      return { cancel: () => timers.delete(id) }
    },
    advance(ms) {
      const target = monotonic + Math.max(0, ms)
      for (;;) {
        let next: [number, { atMs: number; fn: () => void }] | undefined
        for (const entry of timers) {
          if (entry[1].atMs > target) continue
          if (next === undefined || entry[1].atMs < next[1].atMs) next = entry
        }
        if (next === undefined) break
        timers.delete(next[0])
        wall += next[1].atMs - monotonic
        monotonic = next[1].atMs
        next[1].fn()
      }
      wall += target - monotonic
      monotonic = target
    },
    pending: () => timers.size,
  }
}

/** A seeded {@link Random} for tests and simulations (mulberry32); `bytes` is still secure. */
export function createSeededRandom(seed: number): Random {
  let state = seed >>> 0
  const float = (): number => {
    state = (state + 0x6d2b79f5) >>> 0
    let t = state
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
  return {
    float,
    int: maxExclusive => Math.floor(float() * Math.max(0, maxExclusive)),
    bytes: systemRandom.bytes,
  }
}
