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
 */
import { bytesEqual } from '../wire/hash.js'
import type { ReplyStatus, VerifiedReply } from './reply.js'

/** Most nodes that may answer without being expected before further ones are only counted. */
export const UNEXPECTED_NODES_MAX = 1024

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

/** What {@link ReplyCollector.accept} did with a reply. */
export type CollectEvent =
  | { readonly kind: 'ack'; readonly node: string; readonly expected: boolean }
  | { readonly kind: 'done'; readonly reply: CollectedReply }
  | { readonly kind: 'duplicate'; readonly node: string }
  | { readonly kind: 'wrong-request'; readonly node: string }
  | { readonly kind: 'overflow'; readonly node: string }

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
  let unexpectedCount = 0
  let overflowCount = 0
  let state: CollectorState = expected.size === 0 ? 'complete' : 'pending'
  let expectedDone = 0

  const collector: ReplyCollector = {
    accept(verified, nowMs) {
      const reply = verified.reply
      const node = reply.node
      if (!bytesEqual(reply.requestId, init.requestId)) return { kind: 'wrong-request', node }
      const isExpected = expected.has(node)
      if (done.has(node)) return { kind: 'duplicate', node }
      if (!isExpected && !acked.has(node) && unexpectedCount >= UNEXPECTED_NODES_MAX) {
        overflowCount++
        return { kind: 'overflow', node }
      }
      if (!isExpected && !acked.has(node)) unexpectedCount++
      if (reply.kind === 'ack') {
        if (acked.has(node)) return { kind: 'duplicate', node }
        acked.add(node)
        return { kind: 'ack', node, expected: isExpected }
      }
      const collected: CollectedReply = {
        node,
        zone: reply.zone,
        status: reply.status,
        exitCode: reply.exitCode,
        output: reply.output,
        durationMs: reply.durationMs,
        outputTruncated: reply.outputTruncated,
        ...(reply.epoch === undefined ? {} : { epoch: reply.epoch }),
        ...(reply.reason === undefined ? {} : { reason: reply.reason }),
        expected: isExpected,
        receivedAtMs: nowMs,
      }
      done.set(node, collected)
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
  }
  return collector
}
