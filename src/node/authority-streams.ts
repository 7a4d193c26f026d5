/**
 * The outbound side of `/mesh/authority/1.0.0`: one long-lived stream per peer the authority core
 * talks to, from the shared pool (peer-streams.ts: a short queue while a stream opens, loss tolerated,
 * stale streams replaced), with every message counted as `authority` traffic.
 */
import { authorityMessageBytesMax } from '../authority/messages.js'
import type { Host } from './host.js'
import type { Logger } from './log.js'
import { createPeerStreams, type PeerStreams } from './peer-streams.js'
import type { Traffic } from './traffic.js'

/** The authority protocol id. */
export const AUTHORITY_PROTOCOL = '/mesh/authority/1.0.0'
/** Messages queued for one peer while its stream opens; more are dropped (loss is tolerated). */
export const AUTHORITY_QUEUE_MAX = 64
/** Time limit for opening an authority stream. */
export const AUTHORITY_DIAL_TIMEOUT_MS = 2_000

/** The per-peer pool of outbound authority streams. */
export type AuthorityStreams = PeerStreams

/** Creates the pool. `addressesOf` gives the addresses to dial a peer we hold no connection to. */
export function createAuthorityStreams(init: {
  host: Host
  log: Logger
  traffic: Traffic
  addressesOf: (peer: string) => readonly string[]
}): AuthorityStreams {
  return createPeerStreams({
    host: init.host,
    log: init.log,
    protocol: AUTHORITY_PROTOCOL,
    messageBytesMax: authorityMessageBytesMax,
    queueMax: AUTHORITY_QUEUE_MAX,
    timeoutMs: AUTHORITY_DIAL_TIMEOUT_MS,
    addressesOf: init.addressesOf,
    onSent: bytes => init.traffic.count('authority', 'out', bytes.byteLength),
  })
}
