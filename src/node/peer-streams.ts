/**
 * A per-peer pool of long-lived outbound streams for one protocol of length-prefixed messages
 * (LIBP2P-NOTES §3: opening a stream costs a multistream negotiation, so a stream is opened once per
 * peer and reused). Messages for a peer whose stream is still opening wait in a short queue (beyond
 * `queueMax` they are dropped and counted: the protocols using this pool tolerate loss and resend on
 * their own schedule). A stream found unusable when writing (the peer restarted, or the connection died
 * without the stream telling us) is aborted and replaced.
 */
import type { Stream } from '@libp2p/interface'
import { peerIdFromString } from '@libp2p/peer-id'
import { lpStream } from '@libp2p/utils'
import { dialTarget } from './dial.js'
import type { Host } from './host.js'
import type { Logger } from './log.js'

/** The pool. */
export interface PeerStreams {
  /** Sends one encoded message to `to`, opening (or replacing) its stream when needed. Never throws. */
  send(to: string, bytes: Uint8Array): void
  /** Aborts and forgets the stream to `peer` (its connections are gone). */
  drop(peer: string, reason: string): void
  /** Aborts and forgets every stream. */
  dropAll(reason: string): void
  /** Messages dropped: queue full, or no way to reach the peer. */
  dropped(): number
}

/** Settings of one pool. */
export interface PeerStreamsInit {
  readonly host: Host
  readonly log: Logger
  readonly protocol: string
  /** Longest message, bytes (both ends use the same bound). */
  readonly messageBytesMax: number
  /** Messages queued per peer while its stream opens. */
  readonly queueMax: number
  /** Time limit for opening a stream and for one write. */
  readonly timeoutMs: number
  /** Addresses to dial a peer we hold no connection to. */
  readonly addressesOf: (peer: string) => readonly string[]
  /** Called for every message handed to a stream (traffic counting). */
  readonly onSent?: (bytes: Uint8Array) => void
}

interface Outbound {
  stream?: Stream
  write?: (bytes: Uint8Array) => Promise<void>
  queue: Uint8Array[]
  opening: boolean
}

const usable = (stream: Stream | undefined): boolean =>
  stream !== undefined && stream.status === 'open' && stream.writeStatus === 'writable'

/** Creates the pool. */
export function createPeerStreams(init: PeerStreamsInit): PeerStreams {
  const { host, log } = init
  const outbound = new Map<string, Outbound>()
  let dropped = 0

  const write = (
    to: string,
    out: Outbound,
    writeFn: (bytes: Uint8Array) => Promise<void>,
    bytes: Uint8Array,
  ): Promise<void> => {
    init.onSent?.(bytes)
    return writeFn(bytes).catch(() => {
      if (outbound.get(to) === out) outbound.delete(to)
    })
  }

  const openStream = async (to: string, out: Outbound): Promise<void> => {
    out.opening = true
    try {
      const peer = peerIdFromString(to)
      const connected = host.getConnections(peer).length > 0
      const addrs = init.addressesOf(to)
      if (!connected && addrs.length === 0) throw new Error('no address known')
      const target = dialTarget(to, addrs, () => connected)
      const stream = await host.dialProtocol(target, init.protocol, {
        signal: AbortSignal.timeout(init.timeoutMs),
      })
      const lp = lpStream(stream, { maxDataLength: init.messageBytesMax })
      out.stream = stream
      // A time limit only when the write may wait (the stream's buffer is full): the signal is a timer,
      // and made for every message it was about 8% of an idle agent's JavaScript time
      // (bench/profile-idle). A write that finds the buffer free hands the frame over at once; one that
      // fills it waits for the drain without a limit, but the next write has one and, timing out,
      // retires the stream (whose close ends the wait).
      const writeFn = (bytes: Uint8Array) =>
        stream.writableNeedsDrain
          ? lp.write(bytes, { signal: AbortSignal.timeout(init.timeoutMs) })
          : lp.write(bytes)
      out.write = writeFn
      stream.addEventListener('close', () => {
        if (outbound.get(to) === out) outbound.delete(to)
      })
      for (const bytes of out.queue.splice(0)) await write(to, out, writeFn, bytes)
    } catch (err) {
      log.debug({ peer: to, protocol: init.protocol, err: (err as Error).message }, 'stream failed')
      dropped += out.queue.length
      if (outbound.get(to) === out) outbound.delete(to)
    } finally {
      out.opening = false
    }
  }

  return {
    send(to, bytes) {
      let out = outbound.get(to)
      if (out !== undefined && out.write !== undefined && !usable(out.stream)) {
        out.stream?.abort(new Error('stale stream'))
        out = undefined
      }
      if (out === undefined) {
        out = { queue: [], opening: false }
        outbound.set(to, out)
      }
      if (out.write !== undefined) {
        void write(to, out, out.write, bytes)
        return
      }
      if (out.queue.length < init.queueMax) out.queue.push(bytes)
      else dropped++
      if (!out.opening) void openStream(to, out)
    },

    drop(peer, reason) {
      outbound.get(peer)?.stream?.abort(new Error(reason))
      outbound.delete(peer)
    },

    dropAll(reason) {
      for (const out of outbound.values()) out.stream?.abort(new Error(reason))
      outbound.clear()
    },

    dropped: () => dropped,
  }
}
