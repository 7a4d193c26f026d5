/**
 * Pre-authentication inbound limits: how many not-yet-upgraded connections (TCP accepted, Noise and
 * yamux not finished) one source address may hold at once.
 *
 * libp2p counts such connections globally (`maxIncomingPendingConnections`) and holds each until the
 * upgrade finishes or `inboundUpgradeTimeout` passes, so anyone who can reach the port could fill the
 * whole table with silent sockets and every honest dial would be reset. {@link createInboundLimits} is
 * the pure counter (per source, bounded table, counted refusals); {@link limitInbound} wires it into a
 * connection gater: `denyInboundConnection(maConn)` (the first hook, before any byte is read) takes a
 * slot, and the slot is given back exactly once, either when the upgrade completes
 * (`denyInboundUpgradedConnection`, the last hook before libp2p creates the connection, called with the
 * same maConn) or when the maConn closes (refused, timed out, reset: every terminal path of a libp2p
 * `AbstractMessageStream` dispatches `close`).
 */
import type { ConnectionGater, MultiaddrConnection, PeerId } from '@libp2p/interface'
import { getNetConfig, isNetworkAddress } from '@libp2p/utils'
import type { Multiaddr } from '@multiformats/multiaddr'

/**
 * Not-yet-upgraded inbound connections one source may hold. An honest node upgrades in milliseconds
 * (Noise + yamux on loopback), so even 50 nodes behind one address that all dial at the same moment
 * (a reply storm, a fleet restart) stay below this; a silent attacker from one address gets this many
 * slots and no more.
 */
export const INBOUND_PENDING_PER_SOURCE_MAX = 64
/** libp2p's global `maxIncomingPendingConnections`: eight sources at the per-source limit to fill it. */
export const INBOUND_PENDING_MAX = 8 * INBOUND_PENDING_PER_SOURCE_MAX
/**
 * libp2p's `inboundUpgradeTimeout` (its default is 10 s): how long a socket may take from accept to a
 * finished Noise + yamux upgrade. The honest upgrade takes milliseconds on a LAN and a few round trips
 * on a WAN; this is the longest a silent socket holds a slot.
 */
export const INBOUND_UPGRADE_TIMEOUT_MS = 3_000 // the `lan` and `test` default of config inboundUpgradeTimeoutMs
/** Sources tracked at once; a new source beyond this is refused (the table never grows past it). */
export const INBOUND_SOURCES_MAX = 4_096

/** Counters of {@link InboundLimits}, for tests and introspection. */
export interface InboundLimitCounters {
  /** Slots taken (connections let through to the upgrade). */
  opened: number
  /** Slots given back (upgraded or closed). */
  released: number
  /** Connections refused because their source already held `perSourceMax` slots. */
  refusedPerSource: number
  /** Connections refused because `sourcesMax` other sources were being tracked. */
  refusedTableFull: number
  /** The most slots any one source has held at once. */
  perSourcePeak: number
}

/** The pure per-source counter. */
export interface InboundLimits {
  /** Takes a slot for `source`; false (counted) when it already holds the maximum or the table is full. */
  tryOpen(source: string): boolean
  /** Gives back one slot of `source` (no-op when it holds none). */
  closed(source: string): void
  /** Slots `source` holds now. */
  pending(source: string): number
  /** Sources holding at least one slot. */
  sources(): number
  readonly counters: Readonly<InboundLimitCounters>
}

/** Limits of {@link createInboundLimits}. */
export interface InboundLimitsInit {
  readonly perSourceMax?: number
  readonly sourcesMax?: number
}

/** Creates the per-source counter. */
export function createInboundLimits(init: InboundLimitsInit = {}): InboundLimits {
  const perSourceMax = init.perSourceMax ?? INBOUND_PENDING_PER_SOURCE_MAX
  const sourcesMax = init.sourcesMax ?? INBOUND_SOURCES_MAX
  const held = new Map<string, number>()
  const counters: InboundLimitCounters = {
    opened: 0,
    released: 0,
    refusedPerSource: 0,
    refusedTableFull: 0,
    perSourcePeak: 0,
  }
  return {
    counters,
    tryOpen(source) {
      const now = held.get(source) ?? 0
      if (now >= perSourceMax) {
        counters.refusedPerSource += 1
        return false
      }
      if (now === 0 && held.size >= sourcesMax) {
        counters.refusedTableFull += 1
        return false
      }
      held.set(source, now + 1)
      counters.opened += 1
      if (now + 1 > counters.perSourcePeak) counters.perSourcePeak = now + 1
      return true
    },
    closed(source) {
      const now = held.get(source)
      if (now === undefined) return
      counters.released += 1
      if (now <= 1) held.delete(source)
      else held.set(source, now - 1)
    },
    pending: source => held.get(source) ?? 0,
    sources: () => held.size,
  }
}

/**
 * The source a remote address counts against: the IPv4 address, or the /64 of an IPv6 address (one
 * host usually owns a whole /64), an IPv4-mapped IPv6 address as its IPv4 address; undefined for
 * non-IP transports (the in-process memory transport), which are not limited.
 */
export function sourceOf(addr: Multiaddr): string | undefined {
  if (!isNetworkAddress(addr)) return undefined
  let config: ReturnType<typeof getNetConfig>
  try {
    config = getNetConfig(addr)
  } catch {
    return undefined
  }
  if (config.type === 'ip4') return config.host
  if (config.type !== 'ip6') return undefined
  const groups = ip6Groups(config.host)
  if (groups === undefined) return config.host
  const [g5 = 0, g6 = 0, g7 = 0] = groups.slice(5)
  if (groups.slice(0, 5).every(g => g === 0) && g5 === 0xffff) {
    return [g6 >> 8, g6 & 0xff, g7 >> 8, g7 & 0xff].join('.')
  }
  return `${groups
    .slice(0, 4)
    .map(g => g.toString(16))
    .join(':')}::/64`
}

/** The eight 16-bit groups of an IPv6 address (a dotted IPv4 tail allowed); undefined if malformed. */
function ip6Groups(address: string): number[] | undefined {
  let host = address.toLowerCase().split('%')[0] ?? ''
  const dotted = /^(.*:)(\d+)\.(\d+)\.(\d+)\.(\d+)$/.exec(host)
  if (dotted !== null) {
    const [a, b, c, d] = dotted.slice(2).map(Number) as [number, number, number, number]
    host = `${dotted[1]}${((a << 8) | b).toString(16)}:${((c << 8) | d).toString(16)}`
  }
  const halves = host.split('::')
  if (halves.length > 2) return undefined
  const part = (text: string | undefined): string[] =>
    text === undefined || text === '' ? [] : text.split(':')
  const left = part(halves[0])
  const right = part(halves[1])
  const missing = 8 - left.length - right.length
  if (halves.length === 1 ? missing !== 0 : missing < 1) return undefined
  const groups = [...left, ...Array<string>(halves.length === 1 ? 0 : missing).fill('0'), ...right].map(g =>
    /^[0-9a-f]{1,4}$/.test(g) ? Number.parseInt(g, 16) : Number.NaN,
  )
  return groups.some(Number.isNaN) ? undefined : groups
}

/**
 * `gater` with the per-source pre-authentication limit in front of its `denyInboundConnection`: a
 * refused connection is denied there (libp2p then resets its socket at once); an admitted one holds its
 * slot until its upgrade completes or it closes, whichever comes first, and gives it back once.
 */
export function limitInbound(gater: ConnectionGater, limits: InboundLimits): ConnectionGater {
  const holding = new WeakMap<MultiaddrConnection, string>()
  const release = (maConn: MultiaddrConnection): void => {
    const source = holding.get(maConn)
    if (source === undefined) return
    holding.delete(maConn)
    limits.closed(source)
  }
  return {
    ...gater,
    async denyInboundConnection(maConn) {
      const source = sourceOf(maConn.remoteAddr)
      if (source !== undefined) {
        // Already gone (it closed before we got to it): no close event will come to give a slot back.
        if (maConn.status !== 'open') return true
        if (!limits.tryOpen(source)) return true
        holding.set(maConn, source)
        maConn.addEventListener('close', () => release(maConn), { once: true })
      }
      if ((await gater.denyInboundConnection?.(maConn)) === true) {
        release(maConn)
        return true
      }
      return false
    },
    async denyInboundUpgradedConnection(peerId: PeerId, maConn: MultiaddrConnection) {
      release(maConn)
      return (await gater.denyInboundUpgradedConnection?.(peerId, maConn)) === true
    },
  }
}
