/**
 * A fault-injecting transport for in-process node tests: @libp2p/memory (or any transport) whose
 * connections deliver every chunk late. This machine's kernel has no netem, so delay, loss and
 * reordering of real packets are not available between namespaces; this gives them to node tests.
 *
 * What a fault looks like on a reliable, ordered byte stream (TCP and what runs over it):
 * - delay: each chunk waits `latencyMs` (uniform in [min, max]) before the far side reads it;
 * - loss: with probability `loss` a chunk is lost and sent again after `retransmitMs` (TCP's
 *   retransmission): it arrives that much later, and the chunks behind it on the same connection wait
 *   for it (head-of-line blocking), as on TCP. Bytes are never dropped or corrupted: Noise would fail;
 * - reordering: chunks keep their order within a connection (TCP's guarantee), but messages on
 *   different connections overtake each other freely, since each chunk's delay is drawn on its own;
 * - resets: with probability `resetRate` per chunk the connection is aborted (a peer's TCP reset).
 * Randomness comes from a seeded generator, so a failing run can be replayed with its seed.
 *
 * How: the wrapper hands the transport's upgrader a stand-in whose upgradeInbound/upgradeOutbound
 * wrap the raw connection's `sendData` (the method the abstract message stream calls to put bytes on
 * the wire) before Noise and yamux are layered on it.
 */
import type { Transport } from '@libp2p/interface'
import type { TransportFactory } from '../../src/node/transport.js'
import { type SimRandom, simRandom } from '../sim/random.js'

export interface Faults {
  readonly seed: number
  /** Per-chunk one-way delay, ms. */
  readonly latencyMs?: { readonly min: number; readonly max: number }
  /** Probability a chunk is "lost" and retransmitted after `retransmitMs`. */
  readonly loss?: number
  readonly retransmitMs?: number
  /** Probability per chunk that the connection is reset. */
  readonly resetRate?: number
}

/** What the wrapper did, across every connection it wrapped. */
export interface FaultCounters {
  chunks: number
  lost: number
  resets: number
  connections: number
}

interface Chunked {
  sendData(data: unknown): { sentBytes: number; canSendMore: boolean }
  abort(err: Error): void
}

/** Wraps `inner` (e.g. `memory()`) so that every connection it makes or accepts suffers `faults`. */
export function faultyTransport(
  inner: TransportFactory,
  faults: Faults,
): { factory: TransportFactory; counters: FaultCounters; setLoss(loss: number): void } {
  const random: SimRandom = simRandom(faults.seed)
  const counters: FaultCounters = { chunks: 0, lost: 0, resets: 0, connections: 0 }
  let loss = faults.loss ?? 0
  const latency = faults.latencyMs ?? { min: 0, max: 0 }
  const retransmitMs = faults.retransmitMs ?? 200

  const wrapConnection = (maConn: Chunked): void => {
    counters.connections++
    const send = maConn.sendData.bind(maConn)
    // Chunks leave in order: a queue per connection, drained by one timer (two timers due at the same
    // millisecond may fire in either order, which would reorder bytes within the stream).
    const queue: { readonly at: number; readonly data: unknown }[] = []
    let timer: ReturnType<typeof setTimeout> | undefined
    let closed = false
    const drain = (): void => {
      timer = undefined
      while (queue.length > 0 && queue[0]!.at <= Date.now()) {
        const { data } = queue.shift()!
        try {
          send(data)
        } catch {
          // the connection closed meanwhile: what was in flight is gone with it
        }
      }
      if (queue.length > 0) timer = setTimeout(drain, Math.max(0, queue[0]!.at - Date.now()))
    }
    maConn.sendData = (data: unknown) => {
      counters.chunks++
      if (!closed && random.chance(faults.resetRate ?? 0)) {
        closed = true
        counters.resets++
        setTimeout(() => maConn.abort(new Error('fault injection: connection reset')), 0)
      }
      let delayMs = random.int(latency.min, latency.max)
      if (random.chance(loss)) {
        counters.lost++
        delayMs += retransmitMs
      }
      const last = queue.at(-1)?.at ?? 0
      queue.push({ at: Math.max(Date.now() + delayMs, last), data })
      if (timer === undefined) timer = setTimeout(drain, Math.max(0, queue[0]!.at - Date.now()))
      return { sentBytes: (data as { byteLength: number }).byteLength, canSendMore: true }
    }
  }

  const wrapUpgrader = <U extends object>(upgrader: U): U => {
    const u = upgrader as unknown as {
      upgradeInbound(maConn: Chunked, options?: unknown): Promise<unknown>
      upgradeOutbound(maConn: Chunked, options?: unknown): Promise<unknown>
    }
    return Object.assign(Object.create(upgrader) as U, {
      upgradeInbound: (maConn: Chunked, options?: unknown) => {
        wrapConnection(maConn)
        return u.upgradeInbound(maConn, options)
      },
      upgradeOutbound: (maConn: Chunked, options?: unknown) => {
        wrapConnection(maConn)
        return u.upgradeOutbound(maConn, options)
      },
    })
  }

  const factory = ((components: unknown) => {
    const transport = (inner as (c: unknown) => Transport)(components)
    const wrapped = Object.create(transport) as Transport
    wrapped.dial = (ma, options) =>
      transport.dial(ma, { ...options, upgrader: wrapUpgrader(options.upgrader) })
    wrapped.createListener = options =>
      transport.createListener({ ...options, upgrader: wrapUpgrader(options.upgrader) })
    return wrapped
  }) as TransportFactory

  return {
    factory,
    counters,
    setLoss(value: number) {
      loss = value
    },
  }
}
