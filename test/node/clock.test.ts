/**
 * Proves the clock port's test and loop helpers behave as the drivers rely on: the manual clock fires
 * due timers in deadline then creation order (timers set from a callback included), cancels, moves wall
 * and monotonic time together and clamps delays; `every` re-arms after each call, stops when cancelled
 * and never piles up runs behind a slow call; `sleep` resolves on time or at once on abort; a seeded
 * random replays its choices. Everything runs on a manual clock except one short systemClock check.
 */
import { describe, expect, it } from 'vitest'
import {
  type Clock,
  createManualClock,
  createSeededRandom,
  every,
  sleep,
  systemClock,
  TIMER_DELAY_MS_MAX,
  type TimerOptions,
} from '../../src/node/clock.js'

const START = 1_800_000_000_000

/** Lets promise callbacks run. */
const flush = (): Promise<void> => new Promise(resolve => setImmediate(resolve))

describe('manual clock', () => {
  it('fires due timers in deadline order, ties in creation order, each at its own time', () => {
    const clock = createManualClock(START)
    const fired: string[] = []
    const at = (label: string) => () => fired.push(`${label}@${clock.monotonicMs()}`)
    clock.setTimer(at('c'), 30)
    clock.setTimer(at('a1'), 10)
    clock.setTimer(at('b'), 20)
    clock.setTimer(at('a2'), 10)
    clock.setTimer(at('late'), 31)
    expect(clock.pending()).toBe(5)
    clock.advance(30)
    expect(fired).toEqual(['a1@10', 'a2@10', 'b@20', 'c@30'])
    expect(clock.pending()).toBe(1)
    clock.advance(1)
    expect(fired.at(-1)).toBe('late@31')
    expect(clock.pending()).toBe(0)
  })

  it('fires a timer set by a callback within the same advance when it falls due, not otherwise', () => {
    const clock = createManualClock(START)
    const fired: number[] = []
    clock.setTimer(() => {
      fired.push(clock.monotonicMs())
      clock.setTimer(() => fired.push(clock.monotonicMs()), 0) // due at once: same advance
      clock.setTimer(() => {
        fired.push(clock.monotonicMs())
        clock.setTimer(() => fired.push(clock.monotonicMs()), 100) // due at 125: next advance
      }, 15)
    }, 10)
    clock.advance(50)
    expect(fired).toEqual([10, 10, 25])
    expect(clock.pending()).toBe(1)
    clock.advance(75)
    expect(fired).toEqual([10, 10, 25, 125])
  })

  it('never fires a cancelled timer; cancel is idempotent and harmless after firing', () => {
    const clock = createManualClock(START)
    let fired = 0
    const a = clock.setTimer(() => fired++, 10)
    const b = clock.setTimer(() => fired++, 10)
    a.cancel()
    a.cancel()
    expect(clock.pending()).toBe(1)
    clock.advance(10)
    expect(fired).toBe(1)
    b.cancel()
    expect(clock.pending()).toBe(0)
    // A timer cancelled by an earlier callback in the same advance does not fire either.
    const victim = clock.setTimer(() => fired++, 20)
    clock.setTimer(() => victim.cancel(), 5)
    clock.advance(100)
    expect(fired).toBe(1)
  })

  it('moves wall and monotonic time together, also as seen from inside a callback', () => {
    const clock = createManualClock(START)
    expect(clock.nowMs()).toBe(START)
    expect(clock.monotonicMs()).toBe(0)
    const seen: [number, number][] = []
    clock.setTimer(() => seen.push([clock.nowMs(), clock.monotonicMs()]), 400)
    clock.advance(1000)
    expect(seen).toEqual([[START + 400, 400]])
    expect(clock.nowMs()).toBe(START + 1000)
    expect(clock.monotonicMs()).toBe(1000)
    clock.advance(-50) // time never goes back
    expect(clock.nowMs()).toBe(START + 1000)
    expect(clock.monotonicMs()).toBe(1000)
  })

  it('clamps delays: negative and NaN to 0, huge to the platform maximum', () => {
    const clock = createManualClock(START)
    const fired: string[] = []
    clock.setTimer(() => fired.push('negative'), -5)
    clock.setTimer(() => fired.push('nan'), Number.NaN)
    clock.setTimer(() => fired.push('huge'), TIMER_DELAY_MS_MAX * 4)
    clock.advance(0)
    expect(fired).toEqual(['negative', 'nan'])
    clock.advance(TIMER_DELAY_MS_MAX - 1)
    expect(fired).toHaveLength(2)
    clock.advance(1)
    expect(fired).toEqual(['negative', 'nan', 'huge'])
  })
})

describe('every', () => {
  it('calls once per interval until cancelled, with one timer armed at a time', () => {
    const clock = createManualClock(START)
    const calls: number[] = []
    const loop = every(clock, 100, () => calls.push(clock.monotonicMs()))
    expect(clock.pending()).toBe(1)
    clock.advance(99)
    expect(calls).toEqual([])
    clock.advance(1)
    clock.advance(250)
    expect(calls).toEqual([100, 200, 300])
    expect(clock.pending()).toBe(1)
    loop.cancel()
    expect(clock.pending()).toBe(0)
    clock.advance(1000)
    expect(calls).toHaveLength(3)
  })

  it('stops when cancelled from inside its own callback', () => {
    const clock = createManualClock(START)
    let calls = 0
    const loop = every(clock, 10, () => {
      calls++
      if (calls === 2) loop.cancel()
    })
    clock.advance(1000)
    expect(calls).toBe(2)
    expect(clock.pending()).toBe(0)
  })

  it('re-arms only after a slow call returns, so missed periods are not caught up in a burst', () => {
    const clock = createManualClock(START)
    const calls: number[] = []
    let armedDuringCall = -1
    every(clock, 10, () => {
      calls.push(clock.monotonicMs())
      if (calls.length === 1) {
        armedDuringCall = clock.pending()
        clock.advance(25) // the first call "takes" 2.5 periods
      }
    })
    clock.advance(100)
    expect(armedDuringCall).toBe(0) // no next run queued while one is running
    // A fixed-rate loop would have run at 20 and 30 straight after the slow call.
    expect(calls).toEqual([10, 45, 55, 65, 75, 85, 95])
  })

  it('arms background timers (keepAlive off), while sleep keeps the process alive', async () => {
    const clock = createManualClock(START)
    const options: (TimerOptions | undefined)[] = []
    const recording: Clock = {
      nowMs: clock.nowMs,
      monotonicMs: clock.monotonicMs,
      setTimer: (fn, ms, opts) => {
        options.push(opts)
        return clock.setTimer(fn, ms, opts)
      },
    }
    every(recording, 10, () => {}).cancel()
    const slept = sleep(recording, 10)
    clock.advance(10)
    await slept
    expect(options[0]?.keepAlive ?? false).toBe(false)
    expect(options[1]?.keepAlive).toBe(true)
  })
})

describe('sleep', () => {
  it('resolves after the delay on the given clock, not before', async () => {
    const clock = createManualClock(START)
    let done = false
    const slept = sleep(clock, 1000).then(() => {
      done = true
    })
    clock.advance(999)
    await flush()
    expect(done).toBe(false)
    clock.advance(1)
    await slept
    expect(done).toBe(true)
    expect(clock.pending()).toBe(0)
  })

  it('resolves at once on abort and cancels its timer', async () => {
    const clock = createManualClock(START)
    const controller = new AbortController()
    let done = false
    const slept = sleep(clock, 60_000, controller.signal).then(() => {
      done = true
    })
    await flush()
    expect(done).toBe(false)
    expect(clock.pending()).toBe(1)
    controller.abort()
    await slept
    expect(done).toBe(true)
    expect(clock.pending()).toBe(0)
  })

  it('resolves at once, arming nothing, when the signal is already aborted', async () => {
    const clock = createManualClock(START)
    await sleep(clock, 60_000, AbortSignal.abort())
    expect(clock.pending()).toBe(0)
  })

  it('works on the system clock too (a real, short wait)', async () => {
    const before = systemClock.monotonicMs()
    await sleep(systemClock, 20)
    expect(systemClock.monotonicMs() - before).toBeGreaterThanOrEqual(15)
    let fired = false
    systemClock.setTimer(() => (fired = true), 1).cancel()
    await new Promise(resolve => setTimeout(resolve, 10))
    expect(fired).toBe(false)
  })
})

describe('seeded random', () => {
  const draw = (seed: number) => {
    const random = createSeededRandom(seed)
    return Array.from({ length: 20 }, (_, i) => (i % 2 === 0 ? random.float() : random.int(1000)))
  }

  it('replays the same choices from the same seed, different ones from another seed', () => {
    expect(draw(42)).toEqual(draw(42))
    expect(draw(42)).not.toEqual(draw(43))
  })

  it('keeps floats in [0, 1) and integers in [0, max), with int(0) = 0', () => {
    const random = createSeededRandom(7)
    for (let i = 0; i < 1000; i++) {
      const f = random.float()
      expect(f).toBeGreaterThanOrEqual(0)
      expect(f).toBeLessThan(1)
      const n = random.int(6)
      expect(Number.isInteger(n) && n >= 0 && n < 6).toBe(true)
    }
    expect(random.int(0)).toBe(0)
  })

  it('still draws secure bytes, not seeded ones', () => {
    const a = createSeededRandom(1).bytes(32)
    const b = createSeededRandom(1).bytes(32)
    expect(a).toHaveLength(32)
    expect(a).not.toEqual(b)
  })
})
