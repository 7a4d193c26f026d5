/**
 * Reply routing: how signed replies get back to the requester without it paying one Noise handshake
 * per replier (LIBP2P-NOTES §3: 49 replies cost 1.5 s of handshakes on one event loop; at 200 nodes most
 * were lost without jitter and retries).
 *
 * Each node remembers, per request id, the peer it first received the request from (its upstream in
 * the gossip tree rooted at the requester). Replies go to the upstream over the connection that already
 * exists, over one long-lived stream per peer (opening a stream costs a multistream negotiation, measured
 * at 15-100 ms under load), batched for {@link REPLY_BATCH_DELAY_MS}; the upstream forwards them the same way,
 * so replies flow back along the tree and merge at each hop. The requester receives a few batches from
 * its direct neighbours, not one dial per node. When a hop fails (upstream gone, stream refused), the
 * replies fall back to a direct dial of the requester's announced addresses, with jitter and bounded
 * retries. Intermediate hops do not verify signatures: only the requester does, on every reply.
 *
 * The outbound streams (per-peer writers, the direct-dial fallback) are in reply-streams.ts.
 */
import type { Connection, Stream } from '@libp2p/interface'
import { peerIdFromString } from '@libp2p/peer-id'
import {
  decodeReplyBatch,
  packReplyBatches,
  REPLY_BATCH_BYTES_MAX,
  REPLY_BYTES_MAX,
} from '../gossip/reply.js'
import type { ReplyTo } from '../gossip/request.js'
import { isRecord } from '../wire/cbor.js'
import { openEnvelope } from '../wire/envelope.js'
import { toHex } from '../wire/hash.js'
import type { Clock, Random, Timer } from './clock.js'
import { countedLpStream } from './counted-stream.js'
import type { Host } from './host.js'
import type { Logger } from './log.js'
import { createReplyStreams } from './reply-streams.js'
import type { Traffic } from './traffic.js'

export { DIRECT_ATTEMPTS_MAX, REPLY_PROTOCOL, REPLY_STREAM_TIMEOUT_MS } from './reply-streams.js'

/** How long replies for one peer wait to be sent together. */
export const REPLY_BATCH_DELAY_MS = 4
/** Most request routes remembered; the oldest is dropped beyond it. */
export const REPLY_ROUTES_MAX = 8192
/** Most replies queued for one peer before the queue is flushed at once. */
export const REPLY_QUEUE_MAX = 256

/** Counters of the router, for introspection and benchmarks. */
export interface ReplyRouterCounters {
  routed: number
  forwarded: number
  delivered: number
  direct: number
  directFailed: number
  unroutable: number
  /** Replies to our own requests that arrived after the request was done. */
  late: number
  batchesSent: number
}

interface Route {
  upstream: string | undefined
  replyTo: ReplyTo
  expiresAtMs: number
}

/** The reply router of one node. */
export interface ReplyRouter {
  readonly counters: ReplyRouterCounters
  /** Records where a request came from (`upstream` undefined for our own requests). */
  remember(idHex: string, upstream: string | undefined, replyTo: ReplyTo, expiresAtMs: number): void
  /** Registers the local consumer of replies to a request we issued; returns an unregister function. */
  consume(idHex: string, deliver: (reply: Uint8Array) => void): () => void
  /** Sends (or delivers, or forwards) one encoded reply to request `idHex`. */
  send(idHex: string, reply: Uint8Array): void
  /** The inbound stream handler (wrap it with admission's `gated`). */
  handle(stream: Stream, connection: Connection): Promise<void>
  /** Drops expired routes. */
  tick(nowMs: number): void
  /** Forgets the outbound stream to a peer whose connections closed. */
  forgetPeer(peer: string): void
  /**
   * Sends every queued batch now and resolves once every reply handed over so far has been written,
   * dialled directly or given up on (a node stopping waits on this, bounded, before its streams close).
   * Never rejects.
   */
  settle(): Promise<void>
  stop(): void
}

/** Extracts the request id of an encoded reply without verifying it (routing only). */
export function requestIdOfReply(reply: Uint8Array): string | undefined {
  try {
    const envelope = openEnvelope(reply, REPLY_BYTES_MAX)
    const body = envelope.body as unknown
    if (isRecord(body) && body.requestId instanceof Uint8Array) return toHex(body.requestId)
  } catch {
    // Unroutable; the caller counts it.
  }
  return undefined
}

/** Creates the router; every reply frame in and out is counted on `traffic` as `replies`. */
export function createReplyRouter(init: {
  host: Host
  log: Logger
  traffic: Traffic
  clock: Clock
  random: Random
  self: string
}): ReplyRouter {
  const { host, log, clock } = init
  const routes = new Map<string, Route>()
  const consumers = new Map<string, (reply: Uint8Array) => void>()
  const queues = new Map<string, { replies: Array<{ idHex: string; reply: Uint8Array }>; timer: Timer }>()
  const counters: ReplyRouterCounters = {
    routed: 0,
    forwarded: 0,
    delivered: 0,
    direct: 0,
    directFailed: 0,
    unroutable: 0,
    late: 0,
    batchesSent: 0,
  }
  let stopped = false
  const streams = createReplyStreams({ host, log, traffic: init.traffic, clock, random: init.random })
  /** Batch writes and direct sends under way (what {@link ReplyRouter.settle} waits for). */
  const pending = new Set<Promise<unknown>>()
  const track = (work: Promise<unknown>): void => {
    const settled: Promise<unknown> = work.catch(() => {}).finally(() => pending.delete(settled))
    pending.add(settled)
  }

  const flush = async (peer: string): Promise<void> => {
    const queue = queues.get(peer)
    if (queue === undefined) return
    queues.delete(peer)
    queue.timer.cancel()
    const { frames, dropped } = packReplyBatches(queue.replies.map(r => r.reply))
    counters.unroutable += dropped
    try {
      await streams.writeTo(peer, frames)
      counters.batchesSent += frames.length
      counters.forwarded += queue.replies.length
    } catch (err) {
      log.debug({ peer, err: (err as Error).message }, 'reply hop failed; dialling requesters directly')
      // One dial per request, its replies in order (live output makes many per node), not one per reply.
      const byRequest = new Map<string, Uint8Array[]>()
      for (const { idHex, reply } of queue.replies)
        byRequest.set(idHex, [...(byRequest.get(idHex) ?? []), reply])
      for (const [idHex, replies] of byRequest) sendDirect(idHex, replies)
    }
  }

  const enqueue = (peer: string, idHex: string, reply: Uint8Array): void => {
    let queue = queues.get(peer)
    if (queue === undefined) {
      const timer = clock.setTimer(() => track(flush(peer)), REPLY_BATCH_DELAY_MS)
      queue = { replies: [], timer }
      queues.set(peer, queue)
    }
    queue.replies.push({ idHex, reply })
    if (queue.replies.length >= REPLY_QUEUE_MAX) track(flush(peer))
  }

  const sendDirect = (idHex: string, replies: Uint8Array[]): void => {
    const route = routes.get(idHex)
    if (route === undefined || stopped) {
      counters.unroutable += replies.length
      return
    }
    counters.direct += replies.length
    track(
      streams.direct(idHex, route.replyTo, replies).then(delivered => {
        if (!delivered) counters.directFailed += replies.length
      }),
    )
  }

  const router: ReplyRouter = {
    counters,

    remember(idHex, upstream, replyTo, expiresAtMs) {
      if (routes.has(idHex)) return
      if (routes.size >= REPLY_ROUTES_MAX) {
        const oldest = routes.keys().next().value
        if (oldest !== undefined) routes.delete(oldest)
      }
      routes.set(idHex, { upstream, replyTo, expiresAtMs })
    },

    consume(idHex, deliver) {
      consumers.set(idHex, deliver)
      return () => {
        if (consumers.get(idHex) === deliver) consumers.delete(idHex)
      }
    },

    send(idHex, reply) {
      counters.routed += 1
      const consumer = consumers.get(idHex)
      if (consumer !== undefined) {
        counters.delivered += 1
        consumer(reply)
        return
      }
      const route = routes.get(idHex)
      if (route === undefined) {
        counters.unroutable += 1
        return
      }
      if (route.upstream === undefined && route.replyTo.peerId === init.self) {
        // A reply to our own request that came after the requester stopped listening (late or duplicate).
        counters.late += 1
        return
      }
      if (route.upstream !== undefined && host.getConnections(peerIdFromString(route.upstream)).length > 0) {
        enqueue(route.upstream, idHex, reply)
        return
      }
      sendDirect(idHex, [reply])
    },

    async handle(stream) {
      // A long-lived stream: frames arrive whenever a downstream peer has replies to pass on.
      const lp = countedLpStream(stream, { maxDataLength: REPLY_BATCH_BYTES_MAX }, init.traffic, 'replies')
      try {
        while (!stopped) {
          let frame: Uint8Array
          try {
            frame = (await lp.read()).subarray()
          } catch {
            break // end of stream
          }
          for (const reply of decodeReplyBatch(frame)) {
            const idHex = requestIdOfReply(reply)
            if (idHex === undefined) counters.unroutable += 1
            else router.send(idHex, reply)
          }
        }
        await stream.close().catch(() => {})
      } catch (err) {
        log.debug({ err: (err as Error).message }, 'bad reply stream')
        stream.abort(err as Error)
      }
    },

    tick(nowMs) {
      for (const [idHex, route] of routes) {
        if (route.expiresAtMs < nowMs) routes.delete(idHex)
      }
    },

    forgetPeer(peer) {
      streams.forget(peer)
    },

    async settle() {
      for (const peer of [...queues.keys()]) track(flush(peer))
      // A failed batch turns into direct sends, tracked as they start: wait until nothing is left.
      while (pending.size > 0) await Promise.all([...pending])
    },

    stop() {
      stopped = true
      for (const queue of queues.values()) queue.timer.cancel()
      queues.clear()
      streams.stop()
    },
  }
  return router
}
