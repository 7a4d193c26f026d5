/**
 * Connection upkeep: keeps this node connected to a handful of members, finds the mesh again when it
 * has no connection (bootstrap addresses, then members remembered from earlier runs), dials peers that
 * discovery (mDNS, bootstrap) reports, and repairs admitted peers that ended up without a gossip
 * stream (their stream setup failed under load: they would never hear or be heard). A node whose
 * certificate is revoked dials nobody: every peer would refuse its hello, so redialling would only spin.
 */
import type { PeerId } from '@libp2p/interface'
import { peerIdFromString } from '@libp2p/peer-id'
import { type Multiaddr, multiaddr } from '@multiformats/multiaddr'
import type { MemberView } from '../membership/view.js'
import { type Clock, every, type Random, type Timer } from './clock.js'
import { dialAddresses } from './dial.js'
import type { Host } from './host.js'
import type { Logger } from './log.js'
import type { RosterEntry } from './roster.js'

/** Connections a node keeps open before it stops dialling more members. */
export const CONNECTIONS_TARGET = 6
/** Members dialled per upkeep round while below the target. */
export const DIALS_PER_ROUND = 2
/** Remembered members dialled per round when the node has no connection at all. */
export const REMEMBERED_DIALS_PER_ROUND = 3
/**
 * Longest wait before an address that keeps failing is dialled again. Waits double from the upkeep
 * interval after each failure, with jitter (×0.5 to ×1.5), so a fleet that lost its bootstrap node, or
 * found it too busy to finish a handshake, does not dial it in lockstep every round: at 100 agents
 * started at once the bootstrap node's accept queue held 138 handshakes nobody waited for any more.
 * Neighbour dials are not delayed: membership needs them, and a dead neighbour is not dialled at all.
 */
export const DIAL_BACKOFF_MAX_MS = 30_000
/** Dial targets whose failures are remembered at once (the oldest is forgotten first). */
export const DIAL_BACKOFF_ENTRIES_MAX = 4_096

/** What upkeep needs. */
export interface ConnectionsComponents {
  readonly host: Host
  readonly members: () => readonly MemberView[]
  /** The members this node keeps connections to (its membership neighbours); others are dialled only while none is known. */
  readonly neighbours: () => readonly string[]
  /** Members remembered from earlier runs, with their last addresses. */
  readonly remembered: () => readonly RosterEntry[]
  readonly clock: Clock
  readonly random: Random
  readonly log: Logger
  /** True once this node's own certificate is revoked (credentials.ts): upkeep stops for good. */
  readonly selfRevoked?: () => boolean
}

/** Settings. */
export interface ConnectionsInit {
  readonly bootstrap: readonly string[]
  /** Dial time limit; an admitted peer without a gossip stream after twice this is reconnected. */
  readonly helloTimeoutMs: number
  readonly upkeepIntervalMs: number
}

/** Connection upkeep. */
export interface Connections {
  start(): void
  stop(): void
  /** Records that `peerId` passed hello now (starts its gossip-stream grace period). */
  admitted(peerId: string): void
  /** One upkeep round (also run by the timer). */
  maintain(): void
  /** Connections dropped because an admitted peer had no gossip stream. */
  gossipRepairs(): number
  /** Dials skipped because their target failed lately and its back-off ({@link DIAL_BACKOFF_MAX_MS}) runs. */
  dialsDeferred(): number
}

/** Creates the upkeep component. */
export function createConnections(components: ConnectionsComponents, init: ConnectionsInit): Connections {
  const { host, clock, random, log } = components
  /** When each connected peer passed hello (for the gossip-stream repair). */
  const admittedAt = new Map<string, number>()
  const dialing = new Set<string>()
  /** Targets that failed: failures in a row and when they may be dialled again (monotonic ms). */
  const backoff = new Map<string, { failures: number; notBeforeMs: number }>()
  let dialsDeferred = 0
  let gossipRepairs = 0
  let running = false
  let timer: Timer | undefined

  const standsDown = (): boolean => components.selfRevoked?.() === true

  const dialPeer = async (target: PeerId | Multiaddr[], key: string, backOff = true): Promise<void> => {
    if (dialing.has(key) || !running || standsDown()) return
    const failed = backoff.get(key)
    if (backOff && failed !== undefined && clock.monotonicMs() < failed.notBeforeMs) {
      dialsDeferred++
      return
    }
    dialing.add(key)
    try {
      await host.dial(target, { signal: AbortSignal.timeout(init.helloTimeoutMs) })
      backoff.delete(key)
    } catch (err) {
      log.debug({ peer: key, err: (err as Error).message }, 'dial failed')
      const failures = Math.min((backoff.get(key)?.failures ?? 0) + 1, 16)
      const waitMs = Math.min(DIAL_BACKOFF_MAX_MS, init.upkeepIntervalMs * 2 ** (failures - 1))
      backoff.delete(key) // re-inserted last: the map's order is oldest failure first
      backoff.set(key, { failures, notBeforeMs: clock.monotonicMs() + waitMs * (0.5 + random.float()) })
      if (backoff.size > DIAL_BACKOFF_ENTRIES_MAX) {
        const oldest = backoff.keys().next()
        if (oldest.done !== true) backoff.delete(oldest.value)
      }
    } finally {
      dialing.delete(key)
    }
  }

  /** Up to `count` distinct random picks from `items`. */
  const pick = <T>(items: readonly T[], count: number): T[] => {
    const pool = [...items]
    const out: T[] = []
    while (out.length < count && pool.length > 0) out.push(...pool.splice(random.int(pool.length), 1))
    return out
  }

  const repairGossip = (): void => {
    const gossipPeers = new Set(host.services.pubsub.getPeers().map(p => p.toString()))
    for (const [peer, at] of admittedAt) {
      if (host.getConnections(peerIdFromString(peer)).length === 0) {
        admittedAt.delete(peer)
      } else if (!gossipPeers.has(peer) && clock.nowMs() - at > 2 * init.helloTimeoutMs) {
        admittedAt.delete(peer)
        gossipRepairs += 1
        log.warn({ peer }, 'admitted peer has no gossip stream; reconnecting')
        void host.hangUp(peerIdFromString(peer)).catch(() => {})
      }
    }
  }

  const maintain = (): void => {
    if (standsDown()) {
      // Revoked: no peer will admit us again, so stop the rounds rather than dial into refusals.
      if (timer !== undefined) log.debug({}, 'certificate revoked; connection upkeep stopped')
      timer?.cancel()
      timer = undefined
      return
    }
    repairGossip()
    const connected = new Set(host.getConnections().map(c => c.remotePeer.toString()))
    if (connected.size === 0) {
      for (const addr of init.bootstrap) void dialPeer([multiaddr(addr)], addr)
      // Bootstrap nodes may have moved or died: members remembered from earlier runs lead back in.
      const remembered = components.remembered().filter(e => (e.addrs?.length ?? 0) > 0)
      for (const entry of pick(remembered, REMEMBERED_DIALS_PER_ROUND)) {
        void dialPeer(dialAddresses(entry.peerId, entry.addrs ?? []), entry.peerId)
      }
      // Cut off from everyone, this node may have declared the others dead itself: try them too.
      const self = host.peerId.toString()
      const anyMember = components.members().filter(m => m.peerId !== self && m.addrs.length > 0)
      for (const member of pick(anyMember, REMEMBERED_DIALS_PER_ROUND)) {
        void dialPeer(dialAddresses(member.peerId, member.addrs), member.peerId)
      }
    }
    const self = host.peerId.toString()
    const reachable = components
      .members()
      .filter(m => m.peerId !== self && (m.state === 'alive' || m.state === 'suspect') && m.addrs.length > 0)
    const byId = new Map(reachable.map(m => [m.peerId, m]))
    // The membership neighbours first: probes and dissemination run over these connections.
    const neighbours = components.neighbours().flatMap(id => {
      const m = byId.get(id)
      return m !== undefined && !connected.has(id) ? [m] : []
    })
    for (const member of neighbours)
      void dialPeer(dialAddresses(member.peerId, member.addrs), member.peerId, false)
    if (connected.size + neighbours.length >= CONNECTIONS_TARGET) return
    const candidates = reachable.filter(m => !connected.has(m.peerId))
    for (const member of pick(candidates, DIALS_PER_ROUND)) {
      void dialPeer(dialAddresses(member.peerId, member.addrs), member.peerId)
    }
  }

  const onDiscovery = (evt: CustomEvent<{ id: PeerId; multiaddrs: Multiaddr[] }>): void => {
    const id = evt.detail.id.toString()
    if (id === host.peerId.toString() || host.getConnections(evt.detail.id).length > 0) return
    void dialPeer(evt.detail.multiaddrs.length > 0 ? evt.detail.multiaddrs : evt.detail.id, id)
  }

  return {
    start() {
      if (running) return
      running = true
      host.addEventListener('peer:discovery', onDiscovery)
      timer = every(clock, init.upkeepIntervalMs, maintain)
      maintain()
    },
    stop() {
      running = false
      timer?.cancel()
      timer = undefined
      host.removeEventListener('peer:discovery', onDiscovery)
    },
    admitted(peerId) {
      admittedAt.set(peerId, clock.nowMs())
    },
    maintain,
    gossipRepairs: () => gossipRepairs,
    dialsDeferred: () => dialsDeferred,
  }
}
