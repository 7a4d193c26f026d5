/**
 * The outbound side of `/mesh/authority/1.0.0`: one long-lived stream per peer the authority core
 * talks to. Messages for a peer whose stream is still opening wait in a short queue (up to
 * {@link AUTHORITY_QUEUE_MAX}; beyond it they are dropped, which the core tolerates: it resends on its
 * own schedule). A stream found unusable when writing (the peer restarted, or the connection died
 * without the stream telling us) is aborted and replaced, and a peer's stream is aborted as soon as it
 * is known to be disconnected. Split out of authority-driver.ts, which keeps the core, the roster and
 * the inbound handler.
 */
import type { Stream } from '@libp2p/interface'
import { peerIdFromString } from '@libp2p/peer-id'
import { lpStream } from '@libp2p/utils'
import { authorityMessageBytesMax } from '../authority/messages.js'
import { dialTarget } from './dial.js'
import type { Host } from './host.js'
import type { Logger } from './log.js'

/** The authority protocol id. */
export const AUTHORITY_PROTOCOL = '/mesh/authority/1.0.0'
/** Messages queued for one peer while its stream opens; more are dropped (loss is tolerated). */
export const AUTHORITY_QUEUE_MAX = 64
/** Time limit for opening an authority stream. */
export const AUTHORITY_DIAL_TIMEOUT_MS = 2_000

/** The per-peer pool of outbound authority streams. */
export interface AuthorityStreams {
  /** Sends one encoded message to `to`, opening (or replacing) its stream when needed. Never throws. */
  send(to: string, bytes: Uint8Array): void
  /** Aborts and forgets the stream to `peer` (its connections are gone). */
  drop(peer: string, reason: string): void
  /** Aborts and forgets every stream. */
  dropAll(reason: string): void
}

interface Outbound {
  stream?: Stream
  write?: (bytes: Uint8Array) => Promise<void>
  queue: Uint8Array[]
  opening: boolean
}

const usable = (stream: Stream | undefined): boolean =>
  stream !== undefined && stream.status === 'open' && stream.writeStatus === 'writable'

/** Creates the pool. `addressesOf` gives the addresses to dial a peer we hold no connection to. */
export function createAuthorityStreams(init: {
  host: Host
  log: Logger
  addressesOf: (peer: string) => readonly string[]
}): AuthorityStreams {
  const { host, log } = init
  const outbound = new Map<string, Outbound>()

  const openStream = async (to: string, out: Outbound): Promise<void> => {
    out.opening = true
    try {
      const peer = peerIdFromString(to)
      const connected = host.getConnections(peer).length > 0
      const addrs = init.addressesOf(to)
      if (!connected && addrs.length === 0) throw new Error('no address known')
      const target = dialTarget(to, addrs, () => connected)
      const stream = await host.dialProtocol(target, AUTHORITY_PROTOCOL, {
        signal: AbortSignal.timeout(AUTHORITY_DIAL_TIMEOUT_MS),
      })
      const lp = lpStream(stream, { maxDataLength: authorityMessageBytesMax })
      out.stream = stream
      out.write = bytes => lp.write(bytes, { signal: AbortSignal.timeout(AUTHORITY_DIAL_TIMEOUT_MS) })
      stream.addEventListener('close', () => {
        if (outbound.get(to) === out) outbound.delete(to)
      })
      const queued = out.queue.splice(0)
      for (const bytes of queued) await out.write(bytes)
    } catch (err) {
      log.debug({ peer: to, err: (err as Error).message }, 'authority stream failed')
      if (outbound.get(to) === out) outbound.delete(to)
    } finally {
      out.opening = false
    }
  }

  return {
    send(to, bytes) {
      let out = outbound.get(to)
      if (out === undefined) {
        out = { queue: [], opening: false }
        outbound.set(to, out)
      }
      if (out.write !== undefined && !usable(out.stream)) {
        // The peer restarted or the connection died without the stream telling us: start over.
        out.stream?.abort(new Error('stale authority stream'))
        out = { queue: [], opening: false }
        outbound.set(to, out)
      }
      if (out.write !== undefined) {
        const current = out
        out.write(bytes).catch(() => {
          if (outbound.get(to) === current) outbound.delete(to)
        })
        return
      }
      if (out.queue.length < AUTHORITY_QUEUE_MAX) out.queue.push(bytes)
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
  }
}
