// Proves the slot queue on a manual clock: slots are granted up to the limit, waiters queue up to theirs
// and the rest are refused at once, a released slot passes to the oldest waiter, and a wait ends with
// `timeout` exactly when its time is up, or with `aborted` on its signal or cancelAll.
import { describe, expect, it } from 'vitest'
import { createSlotQueue } from '../../../src/node/actions/slots.js'
import { createManualClock } from '../../../src/node/clock.js'

const never = new AbortController().signal

describe('createSlotQueue', () => {
  it('grants, queues, refuses and hands a released slot to the oldest waiter', async () => {
    const slots = createSlotQueue({ concurrentRunsMax: 1, queuedRunsMax: 2 }, createManualClock())
    expect(await slots.acquire(never, 1_000)).toBe('granted')
    const order: string[] = []
    const first = slots.acquire(never, 1_000).then(o => order.push(`first ${o}`))
    const second = slots.acquire(never, 1_000).then(o => order.push(`second ${o}`))
    expect(await slots.acquire(never, 1_000)).toBe('busy')
    expect(slots.load()).toEqual({ running: 1, queued: 2 })
    slots.release()
    await first
    expect(order).toEqual(['first granted'])
    expect(slots.load()).toEqual({ running: 1, queued: 1 })
    slots.release()
    await second
    slots.release()
    expect(order).toEqual(['first granted', 'second granted'])
    expect(slots.load()).toEqual({ running: 0, queued: 0 })
  })

  it('ends a wait with timeout when its time is up, not before', async () => {
    const clock = createManualClock()
    const slots = createSlotQueue({ concurrentRunsMax: 1, queuedRunsMax: 1 }, clock)
    await slots.acquire(never, 1_000)
    let outcome: string | undefined
    const waiting = slots.acquire(never, 500).then(o => (outcome = o))
    clock.advance(499)
    await Promise.resolve()
    expect(outcome).toBeUndefined()
    clock.advance(1)
    await waiting
    expect(outcome).toBe('timeout')
    expect(slots.load()).toEqual({ running: 1, queued: 0 })
    expect(clock.pending()).toBe(0)
  })

  it('ends waits with aborted on their signal and on cancelAll', async () => {
    const clock = createManualClock()
    const slots = createSlotQueue({ concurrentRunsMax: 1, queuedRunsMax: 4 }, clock)
    await slots.acquire(never, 1_000)
    const controller = new AbortController()
    const cancelled = slots.acquire(controller.signal, 1_000)
    const closed = slots.acquire(never, 1_000)
    controller.abort()
    expect(await cancelled).toBe('aborted')
    slots.cancelAll()
    expect(await closed).toBe('aborted')
    expect(await slots.acquire(controller.signal, 1_000)).toBe('aborted')
    expect(slots.load()).toEqual({ running: 1, queued: 0 })
    expect(clock.pending()).toBe(0)
  })
})
