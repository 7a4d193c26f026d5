/**
 * Requests reach nodes that were away: live requests are held in the mesh and offered to members that
 * come back before the requests expire.
 *
 * Every node holds the live requests it validated (bounded by count and bytes; the oldest go first,
 * counted). When the membership table shows a member alive again — new, or back from suspect, dead or
 * left — the nodes responsible offer it the held requests whose signed filter matches it: the
 * requester offers its own requests, and the authority of the member's zone offers everyone's (so a
 * request still reaches a node that returns after its requester went away). The member runs each
 * offered request through its ordinary pipeline, so an offer carries no authority of its own: the
 * operator's signature, the validity window, the replay cache and the persisted run record decide, and
 * a request it already ran is not run again. Its replies go back through the offering node, which
 * remembered the request's route, to the requester.
 *
 * `--once` requests are not offered: exactly one authority runs them, and a returning member is not it.
 *
 * Wire: `/mesh/offer/1.0.0`, one stream per offer, length-prefixed request envelopes (at most
 * {@link OFFER_REQUESTS_MAX}), then close. Inbound offers are rate-limited per peer.
 */
import type { Connection, Stream } from '@libp2p/interface'
import { peerIdFromString } from '@libp2p/peer-id'
import { matchesFilter } from '../gossip/filter.js'
import { REQUEST_BYTES_MAX } from '../gossip/request.js'
import type { RequestOutcome, VerifiedRequest } from '../gossip/validate.js'
import type { MemberState, MemberView } from '../membership/view.js'
import type { Clock } from './clock.js'
import { countedLpStream } from './counted-stream.js'
import type { NodeEvent } from './events.js'
import type { Host } from './host.js'
import type { Logger } from './log.js'
import type { Traffic } from './traffic.js'

export const OFFER_PROTOCOL = '/mesh/offer/1.0.0'
/** Most live requests held. */
export const HELD_REQUESTS_MAX = 512
/** Most bytes of held requests. */
export const HELD_BYTES_MAX = 8 * 1024 * 1024
/** Most requests in one offer (one stream). */
export const OFFER_REQUESTS_MAX = 64
/** Least time between two offers to the same member from this node. */
export const OFFER_INTERVAL_MS = 5_000
/** Most inbound offers per peer per {@link OFFER_WINDOW_MS}; more are refused unread (counted). */
export const OFFERS_PER_PEER_MAX = 8
export const OFFER_WINDOW_MS = 60_000
/** How long an offer stream may take. */
export const OFFER_TIMEOUT_MS = 5_000

interface Held {
  readonly request: VerifiedRequest
  readonly issuedHere: boolean
}

/** Counters. */
export interface HeldRequestCounters {
  readonly held: number
  readonly dropped: number
  readonly offersSent: number
  readonly requestsOffered: number
  readonly offersFailed: number
  readonly offersReceived: number
  readonly offersRefused: number
  /** Offered requests that this node then ran (accept-execute). */
  readonly offeredRun: number
}

/** What the component needs. */
export interface HeldRequestsComponents {
  readonly host: Host
  readonly gated: (
    handler: (stream: Stream, connection: Connection) => Promise<void>,
  ) => (stream: Stream, connection: Connection) => Promise<void>
  /** The executor's entry (validates, runs, remembers the route to `upstream`). */
  readonly handle: (bytes: Uint8Array, upstream: string) => RequestOutcome
  readonly members: () => readonly MemberView[]
  readonly onMembersChange: (listener: () => void) => () => void
  readonly self: () => string
  readonly isAuthority: (zone: string) => boolean
  readonly clock: Clock
  readonly log: Logger
  readonly traffic: Traffic
}

/** The component. */
export interface HeldRequests {
  start(): Promise<void>
  stop(): Promise<void>
  observe(event: NodeEvent): void
  counters(): HeldRequestCounters
}

const RETURNING_FROM: ReadonlySet<MemberState | undefined> = new Set([undefined, 'suspect', 'dead', 'left'])

/** Creates the component. */
export function createHeldRequests(components: HeldRequestsComponents): HeldRequests {
  const { host, clock, log } = components
  const held = new Map<string, Held>()
  let heldBytes = 0
  const states = new Map<string, MemberState>()
  const lastOffer = new Map<string, number>()
  const inbound = new Map<string, { windowStartMs: number; count: number }>()
  const counts = {
    dropped: 0,
    offersSent: 0,
    requestsOffered: 0,
    offersFailed: 0,
    offersReceived: 0,
    offersRefused: 0,
    offeredRun: 0,
  }
  let unsubscribe: (() => void) | undefined
  let running = false

  const prune = (nowMs: number): void => {
    for (const [id, h] of held) {
      if (h.request.body.expiresAtMs <= nowMs) forget(id, h)
    }
  }
  const forget = (id: string, h: Held): void => {
    held.delete(id)
    heldBytes -= h.request.bytes.byteLength
  }

  const offerTo = async (member: MemberView): Promise<void> => {
    const nowMs = clock.nowMs()
    prune(nowMs)
    const authority = components.isAuthority(member.zone)
    const subject = { name: member.name, zone: member.zone, facts: member.facts, authority: false }
    const offer = [...held.values()]
      .filter(h => (h.issuedHere || authority) && h.request.body.filter.once !== true)
      .filter(h => matchesFilter(h.request.filter, subject))
      .slice(-OFFER_REQUESTS_MAX)
    if (offer.length === 0) return
    const previous = lastOffer.get(member.name)
    if (previous !== undefined && nowMs - previous < OFFER_INTERVAL_MS) return
    lastOffer.set(member.name, nowMs)
    if (lastOffer.size > 4 * HELD_REQUESTS_MAX) lastOffer.clear()
    try {
      const signal = AbortSignal.timeout(OFFER_TIMEOUT_MS)
      const stream = await host.dialProtocol(peerIdFromString(member.peerId), OFFER_PROTOCOL, { signal })
      const lp = countedLpStream(stream, { maxDataLength: REQUEST_BYTES_MAX }, components.traffic, 'offers')
      for (const h of offer) await lp.write(h.request.bytes, { signal })
      await stream.close({ signal })
      counts.offersSent += 1
      counts.requestsOffered += offer.length
      log.debug(
        { member: member.name, requests: offer.length },
        'offered held requests to a returning member',
      )
    } catch (err) {
      counts.offersFailed += 1
      log.debug({ member: member.name, err: (err as Error).message }, 'cannot offer held requests')
    }
  }

  const membersChanged = (): void => {
    if (!running) return
    const self = components.self()
    const seen = new Set<string>()
    for (const member of components.members()) {
      seen.add(member.name)
      const before = states.get(member.name)
      states.set(member.name, member.state)
      if (member.name === self || member.state !== 'alive' || !RETURNING_FROM.has(before)) continue
      if (held.size === 0 || !member.roles.includes('agent')) continue
      void offerTo(member)
    }
    for (const name of states.keys()) if (!seen.has(name)) states.delete(name)
  }

  const handler = async (stream: Stream, connection: Connection): Promise<void> => {
    const peer = connection.remotePeer.toString()
    const nowMs = clock.monotonicMs()
    const window = inbound.get(peer)
    if (window === undefined || nowMs - window.windowStartMs > OFFER_WINDOW_MS) {
      if (inbound.size > 4096) inbound.clear()
      inbound.set(peer, { windowStartMs: nowMs, count: 1 })
    } else if (++window.count > OFFERS_PER_PEER_MAX) {
      counts.offersRefused += 1
      stream.abort(new Error('too many offers'))
      return
    }
    counts.offersReceived += 1
    const lp = countedLpStream(stream, { maxDataLength: REQUEST_BYTES_MAX }, components.traffic, 'offers')
    const signal = AbortSignal.timeout(OFFER_TIMEOUT_MS)
    try {
      for (let i = 0; i < OFFER_REQUESTS_MAX; i++) {
        let frame: Uint8Array
        try {
          frame = (await lp.read({ signal })).subarray()
        } catch {
          break // end of the offer
        }
        // The ordinary pipeline decides; an offer is only another way for the bytes to arrive.
        const outcome = components.handle(frame, peer)
        if (outcome.kind === 'accept-execute') counts.offeredRun += 1
      }
      await stream.close().catch(() => {})
    } catch (err) {
      stream.abort(err as Error)
    }
  }

  return {
    async start() {
      running = true
      for (const m of components.members()) states.set(m.name, m.state)
      await host.handle(OFFER_PROTOCOL, components.gated(handler), { maxInboundStreams: 2 })
      unsubscribe = components.onMembersChange(membersChanged)
    },
    async stop() {
      running = false
      unsubscribe?.()
      await host.unhandle(OFFER_PROTOCOL).catch(() => {})
    },
    observe(event) {
      if (event.type !== 'request-accepted') return
      const request = event.request
      if (held.has(request.idHex) || request.body.filter.once === true) return
      if (request.body.expiresAtMs <= event.atMs) return
      held.set(request.idHex, { request, issuedHere: event.upstream === undefined })
      heldBytes += request.bytes.byteLength
      while (held.size > HELD_REQUESTS_MAX || heldBytes > HELD_BYTES_MAX) {
        const [id, oldest] = held.entries().next().value as [string, Held]
        forget(id, oldest)
        counts.dropped += 1
      }
    },
    counters: () => ({ held: held.size, ...counts }),
  }
}
