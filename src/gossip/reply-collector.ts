/**
 * The requester's side of one request: which nodes are expected, which have acknowledged, which have
 * completed, which answered without being expected, and when to stop.
 *
 * Pure: replies arrive already verified (reply.ts {@link verifyReply}) and time comes in as an
 * argument. Replies arrive out of order and possibly more than once (direct dial and the gossip
 * path may both deliver); the first `done` per node wins, later copies are duplicates.
 *
 * ```
 *   (nothing) ──ack──▶ acked ──done──▶ done
 *       └────────────done───────────────┘     (a late ack after done is a duplicate)
 * ```
 *
 * Live output (`output` replies, chunk `seq` 0, 1, 2… per node) is passed on once per (node, seq), in
 * arrival order, until that node's `done`; later chunks are ignored and counted (the `done` is the
 * whole answer). Per node the collector keeps only a window of {@link OUTPUT_REORDER_WINDOW} seqs above
 * the lowest one not yet seen: a chunk that far behind the newest is taken as lost, and if it comes
 * after all, as a duplicate. Data past {@link OUTPUT_STREAM_BYTES_MAX} per node is ignored and counted.
 */
import { bytesEqual } from '../wire/hash.js'
import {
  type DoneReply,
  OUTPUT_STREAM_BYTES_MAX,
  type OutputStream,
  type ReplyStatus,
  utf8ByteLength,
  type VerifiedReply,
} from './reply.js'

/** Most nodes that may answer without being expected before further ones are only counted. */
export const UNEXPECTED_NODES_MAX = 1024
/** How far behind a node's newest output chunk an older one may still arrive and be passed on, in seqs. */
export const OUTPUT_REORDER_WINDOW = 64

/** One completed node, in CLI.md's `mesh exec --json` shape plus `expected`. */
export interface CollectedReply {
  readonly node: string
  readonly zone: string
  readonly status: ReplyStatus
  readonly exitCode: number | null
  readonly output: string
  readonly durationMs: number
  readonly outputTruncated: boolean
  readonly epoch?: number
  readonly reason?: string
  /** False for a node that was not in the expected set (shown as such by the CLI). */
  readonly expected: boolean
  /** Requester's clock when the completion arrived. */
  readonly receivedAtMs: number
}

/** A verified `done` in the result document's shape. */
export function collectedReply(reply: DoneReply, expected: boolean, receivedAtMs: number): CollectedReply {
  return {
    node: reply.node,
    zone: reply.zone,
    status: reply.status,
    exitCode: reply.exitCode,
    output: reply.output,
    durationMs: reply.durationMs,
    outputTruncated: reply.outputTruncated,
    ...(reply.epoch === undefined ? {} : { epoch: reply.epoch }),
    ...(reply.reason === undefined ? {} : { reason: reply.reason }),
    expected,
    receivedAtMs,
  }
}

/** What {@link ReplyCollector.accept} did with a reply. */
export type CollectEvent =
  | { readonly kind: 'ack'; readonly node: string; readonly expected: boolean }
  | { readonly kind: 'done'; readonly reply: CollectedReply }
  | { readonly kind: 'duplicate'; readonly node: string }
  | { readonly kind: 'wrong-request'; readonly node: string }
  | { readonly kind: 'overflow'; readonly node: string }
  /** A new chunk of `node`'s live output (exactly these fields: the CLI renders them). */
  | {
      readonly kind: 'output'
      readonly node: string
      readonly stream: OutputStream
      readonly seq: number
      readonly data: string
    }
  /** An output chunk not passed on: it came after the node's `done`, or past the per-node bound. */
  | { readonly kind: 'ignored'; readonly node: string; readonly reason: OutputIgnoredReason }

/** Why an output chunk was ignored. */
export type OutputIgnoredReason = 'after-done' | 'over-limit'

/** What the collector did with `output` replies. Monotonic. */
export interface OutputCounters {
  /** Chunks passed on as `output` events, and their data in UTF-8 bytes. */
  chunks: number
  bytes: number
  /** Copies of a chunk already passed on, or older than the reorder window. */
  duplicates: number
  /** Chunks after the node's `done`. */
  afterDone: number
  /** Chunks past {@link OUTPUT_STREAM_BYTES_MAX} of one node. */
  overLimit: number
}

/** Collector state: pending until every expected node completed or the deadline passed. */
export type CollectorState = 'pending' | 'complete' | 'timed-out'

/** The `mesh exec --json` document (CLI.md), plus `unexpected` and `acked`. */
export interface ExecResult {
  readonly id: string
  readonly action: string
  readonly expected: readonly string[]
  readonly replies: readonly CollectedReply[]
  readonly missing: readonly string[]
  /** Expected nodes that acknowledged but did not complete. */
  readonly acked: readonly string[]
  /** Nodes that completed without being expected. */
  readonly unexpected: readonly string[]
}

/**
 * The expected nodes' outcomes in `result`: `ok`, `failed` (any other status) and `missing`, and the
 * replies of expected nodes (for callers that need their times).
 */
export function outcomeCounts(result: ExecResult): {
  ok: number
  failed: number
  missing: number
  answered: CollectedReply[]
} {
  const expected = new Set(result.expected)
  const answered = result.replies.filter(r => expected.has(r.node))
  const ok = answered.filter(r => r.status === 'ok').length
  return { ok, failed: answered.length - ok, missing: result.missing.length, answered }
}

/** The collector for one request. */
export interface ReplyCollector {
  /** Records a verified reply. Never throws. */
  accept(verified: VerifiedReply, nowMs: number): CollectEvent
  /** Moves to `timed-out` once `nowMs` reaches the deadline (unless complete). */
  tick(nowMs: number): CollectorState
  readonly state: CollectorState
  /** Expected nodes without a completion, sorted. */
  missing(): string[]
  /** Everything so far, in the CLI's shape (replies in arrival order). */
  result(): ExecResult
  /** Replies refused because {@link UNEXPECTED_NODES_MAX} was reached. */
  readonly overflowCount: number
  /** A copy of the live-output counters. */
  outputCounters(): OutputCounters
}

/** One node's live output as the collector tracks it: O(window) memory however long it streams. */
interface OutputTrack {
  /** Every seq below it was passed on or given up on. */
  floor: number
  /** Seqs at or above `floor` passed on already. */
  readonly seen: Set<number>
  bytes: number
}

/** What one collector waits for. */
export interface CollectorInit {
  /** The request id (16 bytes) and its hex, for the result document. */
  readonly requestId: Uint8Array
  readonly requestIdHex: string
  readonly action: string
  /** Names of the nodes expected to answer (alive members that match the filter). */
  readonly expected: readonly string[]
  /** Requester's clock at which missing nodes are given up on, ms since the epoch. */
  readonly deadlineMs: number
}

/** Creates the collector for one request. With no expected nodes it is complete at once. */
export function createReplyCollector(init: CollectorInit): ReplyCollector {
  const expected = new Set(init.expected)
  const acked = new Set<string>()
  const done = new Map<string, CollectedReply>()
  const order: CollectedReply[] = []
  const outputs = new Map<string, OutputTrack>()
  const outputCounters: OutputCounters = { chunks: 0, bytes: 0, duplicates: 0, afterDone: 0, overLimit: 0 }
  let unexpectedCount = 0
  let overflowCount = 0

  /** The event for an output chunk of a node not yet done (and within the unexpected bound). */
  const acceptOutput = (
    node: string,
    reply: Extract<VerifiedReply['reply'], { kind: 'output' }>,
  ): CollectEvent => {
    let track = outputs.get(node)
    if (track === undefined) {
      track = { floor: 0, seen: new Set(), bytes: 0 }
      outputs.set(node, track)
    }
    const { seq } = reply
    if (seq < track.floor || track.seen.has(seq)) {
      outputCounters.duplicates++
      return { kind: 'duplicate', node }
    }
    const bytes = utf8ByteLength(reply.data)
    if (track.bytes + bytes > OUTPUT_STREAM_BYTES_MAX) {
      outputCounters.overLimit++
      return { kind: 'ignored', node, reason: 'over-limit' }
    }
    track.bytes += bytes
    if (seq >= track.floor + OUTPUT_REORDER_WINDOW) {
      // Far ahead: whatever is still missing more than a window behind it is taken as lost.
      track.floor = seq - OUTPUT_REORDER_WINDOW + 1
      for (const old of track.seen) if (old < track.floor) track.seen.delete(old)
    }
    track.seen.add(seq)
    while (track.seen.delete(track.floor)) track.floor++
    outputCounters.chunks++
    outputCounters.bytes += bytes
    return { kind: 'output', node, stream: reply.stream, seq, data: reply.data }
  }
  let state: CollectorState = expected.size === 0 ? 'complete' : 'pending'
  let expectedDone = 0

  const collector: ReplyCollector = {
    accept(verified, nowMs) {
      const reply = verified.reply
      const node = reply.node
      if (!bytesEqual(reply.requestId, init.requestId)) return { kind: 'wrong-request', node }
      const isExpected = expected.has(node)
      if (done.has(node)) {
        if (reply.kind !== 'output') return { kind: 'duplicate', node }
        outputCounters.afterDone++
        return { kind: 'ignored', node, reason: 'after-done' }
      }
      const known = acked.has(node) || outputs.has(node)
      if (!isExpected && !known && unexpectedCount >= UNEXPECTED_NODES_MAX) {
        overflowCount++
        return { kind: 'overflow', node }
      }
      if (!isExpected && !known) unexpectedCount++
      if (reply.kind === 'output') return acceptOutput(node, reply)
      if (reply.kind === 'ack') {
        if (acked.has(node)) return { kind: 'duplicate', node }
        acked.add(node)
        return { kind: 'ack', node, expected: isExpected }
      }
      const collected = collectedReply(reply, isExpected, nowMs)
      done.set(node, collected)
      // Nothing of its stream is passed on any more: the window is not needed.
      outputs.delete(node)
      order.push(collected)
      if (isExpected) {
        expectedDone++
        // A completion that arrives after the deadline is still recorded but does not revive the run.
        if (expectedDone === expected.size && state === 'pending') state = 'complete'
      }
      return { kind: 'done', reply: collected }
    },
    tick(nowMs) {
      if (state === 'pending' && nowMs >= init.deadlineMs) state = 'timed-out'
      return state
    },
    get state() {
      return state
    },
    missing() {
      return [...expected].filter(name => !done.has(name)).sort()
    },
    result() {
      return {
        id: init.requestIdHex,
        action: init.action,
        expected: [...expected].sort(),
        replies: [...order],
        missing: collector.missing(),
        acked: [...acked].filter(name => expected.has(name) && !done.has(name)).sort(),
        unexpected: order.filter(r => !r.expected).map(r => r.node),
      }
    },
    get overflowCount() {
      return overflowCount
    },
    outputCounters: () => ({ ...outputCounters }),
  }
  return collector
}
