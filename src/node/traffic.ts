/**
 * Every message counted: messages and bytes in and out per protocol, as totals since the node was made
 * and as rates over a recent window, so that what a node costs while idle shows in `mesh status` on any
 * node (issue 9 item 4).
 *
 * Counting is O(1) and needs no timer. Each protocol keeps a ring of {@link TRAFFIC_BUCKETS} buckets of
 * `windowMs / TRAFFIC_BUCKETS` each, stamped with the bucket's index on the monotonic clock; a count
 * lands in the current bucket after resetting it if its stamp is old (rotation is lazy), and a snapshot
 * adds the buckets still inside the window and divides by the time they cover (the current bucket is
 * only partly over, and a node younger than the window has not been counting for all of it).
 *
 *   monotonic time ──► bucket = floor(t / bucketMs), slot = bucket mod 10
 *   ┌────┬────┬────┬────┬────┬────┬────┬────┬────┬────┐
 *   │ b-9│ b-8│ ...                         │ b-1│ b ◄── counts land here (reset first when stale)
 *   └────┴────┴────┴────┴────┴────┴────┴────┴────┴────┘
 *   rate = Σ buckets with stamp > b-10 / min(9 × bucketMs + (t mod bucketMs), t − created)
 *
 * Names form a closed set (the ones in {@link TRAFFIC_PROTOCOLS}, plus whatever a component passes):
 * at most {@link TRAFFIC_PROTOCOLS_MAX} distinct names are kept, later ones are counted as
 * {@link TRAFFIC_OTHER}, so the table cannot grow with what peers send.
 *
 * Bytes are the application payload of each frame (the length prefix, Noise and yamux framing are not
 * counted). The `gossip:<topic>` rows are a breakdown of gossip by topic (our own publications, and each
 * message gossipsub hands to our validator) whose bytes also travel inside the `gossipsub` row (every
 * RPC on the wire: copies to each peer, forwards, duplicates, control), so the total leaves them out
 * and counts nothing twice.
 */
import type { Clock } from './clock.js'

/** Which way a message went, seen from this node. */
export type TrafficDirection = 'in' | 'out'

/** Counts of one protocol: totals since the node was made, and per-second rates over the window. */
export interface ProtocolTraffic {
  msgsIn: number
  msgsOut: number
  bytesIn: number
  bytesOut: number
  msgsInPerS: number
  msgsOutPerS: number
  bytesInPerS: number
  bytesOutPerS: number
}

/** What {@link Traffic.snapshot} returns: a copy, the caller may keep it. */
export interface TrafficSnapshot {
  /** The window the rates are measured over, ms. */
  readonly windowMs: number
  /** Every protocol counted so far, by name, in name order. */
  readonly protocols: Readonly<Record<string, ProtocolTraffic>>
  /** The sum over every protocol except the `gossip:` breakdown rows (see the module comment). */
  readonly total: ProtocolTraffic
}

/** The traffic counters of one node. */
export interface Traffic {
  /** Counts one message of `bytes` (≥ 0) on `protocol`. O(1), never blocks. */
  count(protocol: string, direction: TrafficDirection, bytes: number): void
  snapshot(): TrafficSnapshot
}

/**
 * The protocol names mesh counts under. Gossip topics appear as `gossip:<topic>` (gossip-traffic.ts
 * names them); `gossipsub` is gossipsub's own RPC traffic on the wire.
 */
export const TRAFFIC_PROTOCOLS = [
  'membership',
  'authority',
  'replies',
  'hello',
  'join',
  'ca',
  'gossipsub',
  'gossip:request',
  'gossip:revocation',
  'gossip:roster',
] as const

/** Rows whose name starts with this break another row down (gossip by topic) and stay out of the total. */
export const TRAFFIC_BREAKDOWN_PREFIX = 'gossip:'

/**
 * The row a breakdown row breaks down, or undefined for a row of its own: `gossip:<topic>` rows break
 * down `gossipsub`, `authority:<message type>` rows break down `authority` (any `NAME:part` breaks down
 * `NAME`). Breakdown rows stay out of the total.
 */
export function trafficParent(name: string): string | undefined {
  if (name.startsWith(TRAFFIC_BREAKDOWN_PREFIX)) return 'gossipsub'
  const colon = name.indexOf(':')
  return colon > 0 ? name.slice(0, colon) : undefined
}
/** Most distinct protocol names kept; later ones are counted as {@link TRAFFIC_OTHER}. */
export const TRAFFIC_PROTOCOLS_MAX = 48
/** The name traffic beyond {@link TRAFFIC_PROTOCOLS_MAX} names is counted under. */
export const TRAFFIC_OTHER = 'other'
/** Default window of the rates, ms. */
export const TRAFFIC_WINDOW_MS_DEFAULT = 10_000
/** Buckets per window. */
export const TRAFFIC_BUCKETS = 10

/** Field order inside a bucket. */
const MSGS_IN = 0
const MSGS_OUT = 1
const BYTES_IN = 2
const BYTES_OUT = 3

interface Row {
  /** msgsIn, msgsOut, bytesIn, bytesOut since the start. */
  readonly totals: Float64Array
  /** TRAFFIC_BUCKETS × the same four fields. */
  readonly buckets: Float64Array
  /** The bucket index each slot holds (-1: empty). */
  readonly stamps: Float64Array
}

const newRow = (): Row => ({
  totals: new Float64Array(4),
  buckets: new Float64Array(TRAFFIC_BUCKETS * 4),
  stamps: new Float64Array(TRAFFIC_BUCKETS).fill(-1),
})

const zero = (): ProtocolTraffic => ({
  msgsIn: 0,
  msgsOut: 0,
  bytesIn: 0,
  bytesOut: 0,
  msgsInPerS: 0,
  msgsOutPerS: 0,
  bytesInPerS: 0,
  bytesOutPerS: 0,
})

/** Rates are rounded to 0.001 (plenty for one message per window). */
const round = (value: number): number => Math.round(value * 1000) / 1000

/** Creates the counters; `windowMs` (default 10 s) is the span the rates cover. */
export function createTraffic(init: { clock: Clock; windowMs?: number }): Traffic {
  const { clock } = init
  const windowMs = init.windowMs ?? TRAFFIC_WINDOW_MS_DEFAULT
  if (!Number.isFinite(windowMs) || windowMs <= 0) {
    throw new Error(`assertion: traffic window must be a positive number of ms, got ${windowMs}`)
  }
  const bucketMs = windowMs / TRAFFIC_BUCKETS
  const createdMs = clock.monotonicMs()
  const rows = new Map<string, Row>()

  const rowOf = (protocol: string): Row => {
    let row = rows.get(protocol)
    if (row !== undefined) return row
    // Once the table is full every new name shares the `other` row, rather than growing the table.
    const name =
      rows.size < TRAFFIC_PROTOCOLS_MAX - 1 || protocol === TRAFFIC_OTHER ? protocol : TRAFFIC_OTHER
    row = rows.get(name)
    if (row === undefined) {
      row = newRow()
      rows.set(name, row)
    }
    return row
  }

  return {
    count(protocol, direction, bytes) {
      if (!Number.isFinite(bytes) || bytes < 0) {
        throw new Error(`assertion: traffic of ${protocol} counted with ${bytes} bytes`)
      }
      const row = rowOf(protocol)
      const bucket = Math.floor(clock.monotonicMs() / bucketMs)
      const slot = bucket % TRAFFIC_BUCKETS
      const base = slot * 4
      if (row.stamps[slot] !== bucket) {
        row.stamps[slot] = bucket
        row.buckets.fill(0, base, base + 4)
      }
      const msgs = direction === 'in' ? MSGS_IN : MSGS_OUT
      const octets = direction === 'in' ? BYTES_IN : BYTES_OUT
      row.totals[msgs] = (row.totals[msgs] ?? 0) + 1
      row.totals[octets] = (row.totals[octets] ?? 0) + bytes
      row.buckets[base + msgs] = (row.buckets[base + msgs] ?? 0) + 1
      row.buckets[base + octets] = (row.buckets[base + octets] ?? 0) + bytes
    },

    snapshot() {
      const nowMs = clock.monotonicMs()
      const current = Math.floor(nowMs / bucketMs)
      // The current bucket is only partly over; a young node has not been counting for the whole window.
      const coveredMs = Math.min(
        (TRAFFIC_BUCKETS - 1) * bucketMs + (nowMs - current * bucketMs),
        nowMs - createdMs,
      )
      const perS = coveredMs > 0 ? 1000 / coveredMs : 0
      const protocols: Record<string, ProtocolTraffic> = {}
      const total = zero()
      for (const name of [...rows.keys()].sort()) {
        const row = rows.get(name) as Row
        const recent = [0, 0, 0, 0]
        for (let slot = 0; slot < TRAFFIC_BUCKETS; slot++) {
          const stamp = row.stamps[slot] ?? -1
          // Never written, or older than the window.
          if (stamp < 0 || stamp <= current - TRAFFIC_BUCKETS) continue
          for (let field = 0; field < 4; field++) {
            recent[field] = (recent[field] ?? 0) + (row.buckets[slot * 4 + field] ?? 0)
          }
        }
        const counts: ProtocolTraffic = {
          msgsIn: row.totals[MSGS_IN] ?? 0,
          msgsOut: row.totals[MSGS_OUT] ?? 0,
          bytesIn: row.totals[BYTES_IN] ?? 0,
          bytesOut: row.totals[BYTES_OUT] ?? 0,
          msgsInPerS: round((recent[MSGS_IN] ?? 0) * perS),
          msgsOutPerS: round((recent[MSGS_OUT] ?? 0) * perS),
          bytesInPerS: round((recent[BYTES_IN] ?? 0) * perS),
          bytesOutPerS: round((recent[BYTES_OUT] ?? 0) * perS),
        }
        protocols[name] = counts
        if (trafficParent(name) !== undefined) continue
        for (const key of Object.keys(total) as (keyof ProtocolTraffic)[]) total[key] += counts[key]
      }
      for (const key of Object.keys(total) as (keyof ProtocolTraffic)[]) total[key] = round(total[key])
      return { windowMs, protocols, total }
    },
  }
}
