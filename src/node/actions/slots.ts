/**
 * The concurrency slots of the runner: at most `concurrentRunsMax` runs at once, at most `queuedRunsMax`
 * waiting in arrival order, each waiter for a bounded time. A released slot passes straight to the next
 * waiter. The queue's timers come from a {@link Clock}.
 */
import type { Clock } from '../clock.js'
import type { ActionLimits } from './types.js'

/** What {@link SlotQueue.acquire} ends with; only `granted` must be {@link SlotQueue.release}d. */
export type SlotOutcome = 'granted' | 'busy' | 'aborted' | 'timeout'

/** Run slots and the queue waiting for them. */
export interface SlotQueue {
  /** Waits at most `waitMs` for a slot; a free slot is taken at once, a full queue answers `busy`. */
  acquire(signal: AbortSignal, waitMs: number): Promise<SlotOutcome>
  /** Gives a granted slot back (to the next waiter, if any). */
  release(): void
  /** Ends every wait with `aborted`. */
  cancelAll(): void
  /** Runs holding a slot and runs waiting now. */
  load(): { running: number; queued: number }
}

interface Waiter {
  grant(): void
  cancel(): void
}

/** Creates the slots of one registry. */
export function createSlotQueue(
  limits: Pick<ActionLimits, 'concurrentRunsMax' | 'queuedRunsMax'>,
  clock: Clock,
): SlotQueue {
  let running = 0
  const queue: Waiter[] = []

  function wait(signal: AbortSignal, waitMs: number): Promise<SlotOutcome> {
    return new Promise(resolve => {
      let done = false
      const finish = (outcome: 'granted' | 'aborted' | 'timeout') => {
        if (done) return
        done = true
        timer.cancel()
        signal.removeEventListener('abort', onAbort)
        const index = queue.indexOf(waiter)
        if (index >= 0) queue.splice(index, 1)
        resolve(outcome)
      }
      const waiter: Waiter = { grant: () => finish('granted'), cancel: () => finish('aborted') }
      const onAbort = () => finish('aborted')
      const timer = clock.setTimer(() => finish('timeout'), waitMs, { keepAlive: true })
      signal.addEventListener('abort', onAbort, { once: true })
      queue.push(waiter)
    })
  }

  return {
    acquire(signal, waitMs) {
      if (signal.aborted) return Promise.resolve('aborted')
      if (running < limits.concurrentRunsMax) {
        running++
        return Promise.resolve('granted')
      }
      if (queue.length >= limits.queuedRunsMax) return Promise.resolve('busy')
      return wait(signal, waitMs)
    },
    release() {
      const next = queue.shift()
      // The slot passes straight to the next waiter, so `running` stays the same.
      if (next !== undefined) next.grant()
      else running--
    },
    cancelAll() {
      for (const waiter of [...queue]) waiter.cancel()
    },
    load: () => ({ running, queued: queue.length }),
  }
}
