/**
 * The outbound side of `/mesh/reply/1.0.0` (LIBP2P-NOTES §3): one long-lived reply stream per
 * upstream peer, reused for every batch (opening a stream costs a multistream negotiation, measured at
 * 15-100 ms under load), and the fallback when a hop fails: a direct dial of the requester's announced
 * addresses, with jitter and {@link DIRECT_ATTEMPTS_MAX} attempts. Split out of replies.ts, which keeps
 * routes, consumers, batching and the inbound handler.
 */
import type { Stream } from '@libp2p/interface'
import { peerIdFromString } from '@libp2p/peer-id'
import { packReplyBatches, REPLY_BATCH_BYTES_MAX } from '../gossip/reply.js'
import type { ReplyTo } from '../gossip/request.js'
import { type Clock, type Random, sleep } from './clock.js'
import { countedLpStream } from './counted-stream.js'
import { dialTarget } from './dial.js'
import type { Host } from './host.js'
import type { Logger } from './log.js'
import type { Traffic } from './traffic.js'

/** The reply protocol id. */
export const REPLY_PROTOCOL = '/mesh/reply/1.0.0'
/** Attempts of a direct dial to the requester. */
export const DIRECT_ATTEMPTS_MAX = 3
/** Time limit of one reply stream exchange. */
export const REPLY_STREAM_TIMEOUT_MS = 5_000

/** Outbound reply streams of one node. */
export interface ReplyStreams {
  /**
   * Writes `frames` in order over the long-lived stream to `peer`, opening (or replacing a dead) one
   * first. On failure the stream is aborted and forgotten and the error is rethrown.
   */
  writeTo(peer: string, frames: readonly Uint8Array[]): Promise<void>
  /**
   * Dials the requester named by `replyTo` directly and hands it `replies` on a stream of their own,
   * retrying with jitter; resolves true when delivered, false when every attempt failed (or we stopped).
   * `idHex` only labels the log.
   */
  direct(idHex: string, replyTo: ReplyTo, replies: Uint8Array[]): Promise<boolean>
  /** Aborts and forgets the stream to a peer whose connections closed. */
  forget(peer: string): void
  /** Closes every stream and ends pending direct dials after their current attempt. */
  stop(): void
}

interface Writer {
  write: (frame: Uint8Array) => Promise<void>
  stream: Stream
}

/** Creates the outbound reply streams; every frame written is counted on `traffic` as `replies`. */
export function createReplyStreams(init: {
  host: Host
  log: Logger
  traffic: Traffic
  clock: Clock
  random: Random
}): ReplyStreams {
  const { host, log, clock } = init
  let stopped = false
  /** One long-lived outbound reply stream per peer. */
  const writers = new Map<string, Promise<Writer>>()

  const writerFor = async (peer: string): Promise<Writer> => {
    let writer = writers.get(peer)
    const current = await writer?.catch(() => undefined)
    if (
      current !== undefined &&
      (current.stream.status !== 'open' || current.stream.writeStatus !== 'writable')
    ) {
      // The connection died (or the peer restarted) without the stream's close reaching us.
      writers.delete(peer)
      writer = undefined
    }
    if (writer === undefined) {
      writer = (async () => {
        const stream = await host.dialProtocol(peerIdFromString(peer), REPLY_PROTOCOL, {
          signal: AbortSignal.timeout(REPLY_STREAM_TIMEOUT_MS),
        })
        const lp = countedLpStream(stream, { maxDataLength: REPLY_BATCH_BYTES_MAX }, init.traffic, 'replies')
        stream.addEventListener('close', () => {
          if (writers.get(peer) === writer) writers.delete(peer)
        })
        return {
          stream,
          write: (frame: Uint8Array) =>
            lp.write(frame, { signal: AbortSignal.timeout(REPLY_STREAM_TIMEOUT_MS) }),
        }
      })()
      writers.set(peer, writer)
      writer.catch(() => {
        if (writers.get(peer) === writer) writers.delete(peer)
      })
    }
    return await writer
  }

  /** Forgets the stream to `peer` and aborts it once it has opened. */
  const abortWriter = (peer: string, err: Error): void => {
    const writer = writers.get(peer)
    writers.delete(peer)
    void writer?.then(w => w.stream.abort(err)).catch(() => {})
  }

  return {
    async writeTo(peer, frames) {
      try {
        const writer = await writerFor(peer)
        for (const frame of frames) await writer.write(frame)
      } catch (err) {
        abortWriter(peer, err as Error)
        throw err
      }
    },

    async direct(idHex, replyTo, replies) {
      for (let attempt = 0; attempt < DIRECT_ATTEMPTS_MAX && !stopped; attempt++) {
        // Jitter spreads a fleet's fallback dials so the requester is not hit by all at once.
        await sleep(clock, init.random.float() * 200 * 2 ** attempt)
        try {
          const signal = AbortSignal.timeout(REPLY_STREAM_TIMEOUT_MS)
          const target = dialTarget(
            replyTo.peerId,
            replyTo.addrs,
            peer => host.getConnections(peer).length > 0,
          )
          const stream = await host.dialProtocol(target, REPLY_PROTOCOL, { signal })
          const lp = countedLpStream(
            stream,
            { maxDataLength: REPLY_BATCH_BYTES_MAX },
            init.traffic,
            'replies',
          )
          for (const frame of packReplyBatches(replies).frames) await lp.write(frame, { signal })
          await stream.close({ signal })
          return true
        } catch (err) {
          log.debug({ request: idHex, attempt, err: (err as Error).message }, 'direct reply failed')
        }
      }
      return false
    },

    forget(peer) {
      abortWriter(peer, new Error('peer disconnected'))
    },

    stop() {
      stopped = true
      for (const writer of writers.values()) void writer.then(w => w.stream.close()).catch(() => {})
      writers.clear()
    },
  }
}
