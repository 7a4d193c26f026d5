/**
 * Gossip in the traffic counters (traffic.ts), at two levels:
 *
 * - `gossipsub`: every RPC gossipsub writes or reads on the wire (our publications, once per peer sent
 *   to, forwards, duplicates, IHAVE/IWANT/GRAFT/PRUNE, subscriptions), counted through gossipsub's own
 *   metrics hooks (`metricsRegister`, its public option): {@link gossipsubTrafficMetrics} keeps the
 *   RPC byte gauges and makes every other metric a no-op. One RPC is one message; bytes are the encoded
 *   RPC without its length prefix.
 * - `gossip:<topic>` (request, revocation, roster): the messages themselves, once each: ours when
 *   published ({@link countedPublish}) and each one gossipsub hands to our topic validator (the first
 *   copy; duplicates are dropped before it, and show in `gossipsub` only). A breakdown of the
 *   `gossipsub` row by topic, left out of the total.
 */
import type { GossipSub, PublishResult } from '@libp2p/gossipsub'
import type { Gauge, MetricsRegister } from '@libp2p/gossipsub/metrics'
import { TOPICS } from './host.js'
import type { Traffic, TrafficDirection } from './traffic.js'

/** Traffic names of the gossip topics (traffic.ts, `TRAFFIC_PROTOCOLS`). */
const TOPIC_TRAFFIC: Readonly<Record<string, string>> = {
  [TOPICS.request]: 'gossip:request',
  [TOPICS.revocation]: 'gossip:revocation',
  [TOPICS.roster]: 'gossip:roster',
}

/** The traffic name of a gossip topic: `gossip:<short name>`, `gossip:other` for a topic not ours. */
export function gossipTrafficName(topic: string): string {
  return TOPIC_TRAFFIC[topic] ?? 'gossip:other'
}

/** gossipsub's RPC byte gauges (src/metrics.js of @libp2p/gossipsub), one inc per RPC. */
const RPC_BYTES_GAUGES: Readonly<Record<string, TrafficDirection>> = {
  gossipsub_rpc_sent_bytes_total: 'out',
  gossipsub_rpc_recv_bytes_total: 'in',
}

const noop = (): void => {}

/**
 * A gossipsub `metricsRegister` that counts the RPCs gossipsub sends and receives on `traffic` as
 * `gossipsub`, and records nothing else.
 */
export function gossipsubTrafficMetrics(traffic: Traffic): MetricsRegister {
  const ignored = {
    inc: noop,
    set: noop,
    addCollect: noop,
    observe: noop,
    reset: noop,
    startTimer: () => noop,
  }
  return {
    gauge<Labels extends Record<string, string | number>>(config: { name: string }): Gauge<Labels> {
      const direction = RPC_BYTES_GAUGES[config.name]
      if (direction === undefined) return ignored as unknown as Gauge<Labels>
      // The RPC byte gauges carry no labels: inc(bytes), once per RPC.
      const inc = (bytes?: number): void => traffic.count('gossipsub', direction, bytes ?? 0)
      return { ...ignored, inc } as unknown as Gauge<Labels>
    },
    histogram: () => ignored,
    avgMinMax: () => ignored,
  }
}

/** `pubsub.publish`, counting each publication on its topic's `gossip:` row once it went out. */
export function countedPublish(
  pubsub: Pick<GossipSub, 'publish'>,
  traffic: Traffic,
): (topic: string, data: Uint8Array) => Promise<PublishResult> {
  return async (topic, data) => {
    const result = await pubsub.publish(topic, data)
    traffic.count(gossipTrafficName(topic), 'out', data.byteLength)
    return result
  }
}
