/**
 * The libp2p host of an agent: TCP (or the in-process memory transport for tests), Noise, yamux,
 * identify and gossipsub with the settings measured in LIBP2P-NOTES §6, bootstrap and optional mDNS
 * discovery, an optional pnet pre-shared key, and the admission gater. Created unstarted so admission
 * can attach its handlers and middleware before the first connection.
 */
import { bootstrap } from '@libp2p/bootstrap'
import { type GossipSub, gossipsub } from '@libp2p/gossipsub'
import type { MetricsRegister } from '@libp2p/gossipsub/metrics'
import { type Identify, identify } from '@libp2p/identify'
import type { ConnectionGater, Libp2p, PrivateKey } from '@libp2p/interface'
import { mdns } from '@libp2p/mdns'
import { createLibp2p, type Libp2pOptions } from 'libp2p'
import {
  createInboundLimits,
  INBOUND_PENDING_MAX,
  INBOUND_UPGRADE_TIMEOUT_MS,
  type InboundLimits,
  limitInbound,
} from './inbound-limits.js'
import { connectionStack, type TransportChoice } from './transport.js'

/** Topics mesh uses; every node subscribes to all of them. */
export const TOPICS = {
  request: 'mesh/req/v1',
  revocation: 'mesh/crl/v1',
  /** CA-signed zone rosters (src/node/zone-rosters.ts). */
  roster: 'mesh/roster/v1',
  /** Proposals of the two-person rule with the approvals gathered so far (src/node/proposals.ts). */
  proposal: 'mesh/proposal/v1',
} as const

/**
 * Largest gossip frame accepted from a peer: room for the largest message of any topic (a full
 * revocation list, 1 MiB, or a full zone roster in its wrapper, 1.5 MiB and a little) plus gossipsub's
 * framing. Checked against both in test/node/zone-rosters.test.ts.
 */
export const GOSSIP_MESSAGE_BYTES_MAX = 2 << 20
/** Gossipsub heartbeat (mesh repair, IHAVE gossip). */
export const GOSSIP_HEARTBEAT_MS = 1_000
/** libp2p's connection-monitor ping period. */
export const CONNECTION_PING_INTERVAL_MS = 60_000

/** The services every mesh host runs. */
export type HostServices = {
  identify: Identify
  pubsub: GossipSub
}

/** A mesh libp2p node. */
export type Host = Libp2p<HostServices>

/** Options of {@link createHost}. */
export interface HostInit {
  readonly privateKey: PrivateKey
  readonly listen: readonly string[]
  readonly announce?: readonly string[]
  /** Multiaddrs with /p2p/ to discover at start. */
  readonly bootstrap?: readonly string[]
  readonly mdns?: boolean
  /** `memory` uses @libp2p/memory (in-process tests); default `tcp`. */
  readonly transport?: TransportChoice
  readonly connectionsMax: number
  readonly gater: ConnectionGater
  /** The pnet pre-shared key file contents; absent = no outer fence. */
  readonly pnetKey?: Uint8Array
  /** Gossipsub heartbeat; 700 ms measured best here (LIBP2P-NOTES §6). */
  readonly heartbeatIntervalMs?: number
  /** Gossipsub mesh degree override (D, Dlo, Dhi); default gossipsub's 6/4/12. */
  readonly gossipDegree?: { D: number; Dlo: number; Dhi: number; Dout?: number }
  /** Gossipsub's duplicate window; keep ≥ the longest request lifetime. */
  readonly seenTtlMs: number
  /** Receives gossipsub's metrics (gossip-traffic.ts counts its RPCs); topics are labelled by their id. */
  readonly gossipMetrics?: MetricsRegister
  /** libp2p's `inboundUpgradeTimeout`: how long an accepted socket may take to finish Noise + yamux. */
  readonly inboundUpgradeTimeoutMs?: number
  /** Per-source pre-authentication limits (inbound-limits.ts); default a fresh table with its defaults. */
  readonly inboundLimits?: InboundLimits
}

const inboundLimitsByHost = new WeakMap<Host, InboundLimits>()

/** The per-source pre-authentication limits of a host made by {@link createHost} (tests, introspection). */
export function inboundLimitsOf(host: Host): InboundLimits | undefined {
  return inboundLimitsByHost.get(host)
}

/** Creates an unstarted host. */
export async function createHost(init: HostInit): Promise<Host> {
  const peerDiscovery: NonNullable<Libp2pOptions<HostServices>['peerDiscovery']> = []
  if ((init.bootstrap?.length ?? 0) > 0) {
    peerDiscovery.push(bootstrap({ list: [...(init.bootstrap ?? [])], timeout: 100 }))
  }
  if (init.mdns === true) peerDiscovery.push(mdns({ interval: 1000, serviceTag: '_mesh._udp.local' }))

  const inbound = init.inboundLimits ?? createInboundLimits()
  const options: Libp2pOptions<HostServices> = {
    privateKey: init.privateKey,
    start: false,
    addresses: { listen: [...init.listen], announce: [...(init.announce ?? [])] },
    ...connectionStack({ transport: init.transport, pnetKey: init.pnetKey }),
    // Not-yet-upgraded connections are limited per source address before the gater's own checks.
    connectionGater: limitInbound(init.gater, inbound),
    connectionManager: {
      maxConnections: init.connectionsMax,
      // Defaults (5/s per host, 10 pending) throttle reply bursts and loopback fleets (LIBP2P-NOTES §3).
      inboundConnectionThreshold: 1_000,
      // Global room for upgrades in flight: a wide margin over the per-source limit, so one source
      // holding all it may still leaves most of it to everyone else (docs/admission.md).
      maxIncomingPendingConnections: INBOUND_PENDING_MAX,
      // A socket that stays silent is cut after this instead of libp2p's 10 s.
      inboundUpgradeTimeout: init.inboundUpgradeTimeoutMs ?? INBOUND_UPGRADE_TIMEOUT_MS,
    },
    peerDiscovery,
    // libp2p pings every connection every 10 s on a fresh stream; our heartbeats and lease traffic already
    // show liveness, so a slow ping only catches half-open connections.
    connectionMonitor: { pingInterval: CONNECTION_PING_INTERVAL_MS },
    services: {
      identify: identify(),
      pubsub: gossipsub({
        globalSignaturePolicy: 'StrictNoSign', // our envelopes carry the signatures; identical on every node
        fallbackToFloodsub: false,
        floodPublish: true,
        allowPublishToZeroTopicPeers: true,
        emitSelf: false,
        heartbeatInterval: init.heartbeatIntervalMs ?? GOSSIP_HEARTBEAT_MS,
        // IHAVE gossip goes to Dlazy non-mesh peers per topic every heartbeat; with flood publishing and a
        // dense mesh it recovers little, and at 6 peers it was a steady stream of tiny writes on idle nodes.
        Dlazy: 3,
        seenTTL: init.seenTtlMs,
        // More than 10 peers per IP (loopback, NAT) would otherwise stall the mesh; certificates gate Sybils.
        scoreParams: { IPColocationFactorWeight: 0 },
        allowedTopics: Object.values(TOPICS),
        maxInboundDataLength: GOSSIP_MESSAGE_BYTES_MAX,
        // IDONTWANT (gossipsub 1.2) is sent to every mesh peer for each message over 512 bytes: for our
        // ~1 kB heartbeats it doubled control traffic while saving little. Off below 64 kB.
        idontwantMinDataSize: 64 * 1024,
        ...(init.gossipDegree !== undefined ? init.gossipDegree : {}),
        ...(init.gossipMetrics === undefined
          ? {}
          : {
              metricsRegister: init.gossipMetrics,
              metricsTopicStrToLabel: new Map(Object.values(TOPICS).map(topic => [topic, topic])),
            }),
      }),
    },
  }
  const host = await createLibp2p(options)
  inboundLimitsByHost.set(host, inbound)
  return host
}
