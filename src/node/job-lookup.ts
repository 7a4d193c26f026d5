/**
 * Job lookups: how `mesh jobs show ID` gets the results of a job from nodes that ran it, when this
 * node never saw it (or the requester is gone).
 *
 * The lookup is an ordinary signed request for the built-in action `job-lookup` with the job id as
 * its one argument, so who may look up jobs is policy like any action (the default policy lets every
 * operator). Each node answers with a `done` whose output is {@link LOOKUP_PREFIX} and the base64 of
 * `{ requests: [bytes…], replies: [bytes…] }`: the signed request(s) of the job and the signed dones it
 * stored — its own, and (on the requester) the ones it collected, as many as fit in the output limit.
 * A node that has nothing answers with empty output.
 *
 * Nothing in an answer is trusted for what it says about others: the looker verifies every request
 * (operator certificate at its issue time, signature, job id) and every reply (node certificate at its
 * send time, signature, request id among the job's), and keeps one done per node. Answers that do not
 * verify are counted and dropped, so a node can only withhold its own results, not forge anyone's.
 */
import type { CertificateVerifier } from '../ca/types.js'
import { verifyApprovals } from '../gossip/approval.js'
import { REPLY_OUTPUT_BYTES_MAX, verifyReply } from '../gossip/reply.js'
import { type CollectedReply, collectedReply } from '../gossip/reply-collector.js'
import {
  type DecodedRequest,
  decodeRequest,
  REQUEST_BYTES_MAX,
  verifyRequestSignature,
} from '../gossip/request.js'
import { type CborValue, decodeCbor, encodeCbor, isRecord } from '../wire/cbor.js'
import { openEnvelope } from '../wire/envelope.js'
import type { JobDetail } from './jobs.js'

/** The action name of a lookup. */
export const JOB_LOOKUP_ACTION = 'job-lookup'
/** What a lookup answer's output starts with. */
export const LOOKUP_PREFIX = 'mesh-job/1 '
/** Most requests (waves) and replies one answer may carry. */
export const LOOKUP_ITEMS_MAX = 256
/** Job ids are 16 bytes, written as 32 lower-case hex digits. */
export const JOB_ID_PATTERN = /^[0-9a-f]{32}$/

/**
 * The output of this node's answer for `detail` (undefined: nothing stored): own replies first, then
 * collected ones, as many as fit in `outputBytesMax` once base64-encoded.
 */
export function encodeLookupAnswer(
  detail: JobDetail | undefined,
  ownNode: string,
  outputBytesMax = REPLY_OUTPUT_BYTES_MAX,
): string {
  if (detail === undefined) return ''
  const budget = Math.floor(((outputBytesMax - LOOKUP_PREFIX.length) * 3) / 4) - 64
  const requests: Uint8Array[] = []
  const replies: Uint8Array[] = []
  let used = 0
  const take = (list: Uint8Array[], bytes: Uint8Array): void => {
    if (used + bytes.byteLength + 8 > budget || list.length >= LOOKUP_ITEMS_MAX) return
    list.push(bytes)
    used += bytes.byteLength + 8
  }
  // One request is enough to show the job; the rest (other waves) as room allows after the replies.
  const [first, ...rest] = detail.requests
  if (first !== undefined) take(requests, first)
  const own = detail.replies.filter(r => replyNode(r) === ownNode)
  const others = detail.replies.filter(r => replyNode(r) !== ownNode)
  for (const r of own) take(replies, r)
  for (const r of others) take(replies, r)
  for (const r of rest) take(requests, r)
  if (requests.length === 0 && replies.length === 0) return ''
  const body = encodeCbor({ requests, replies } as unknown as CborValue)
  return `${LOOKUP_PREFIX}${Buffer.from(body).toString('base64')}\n`
}

function replyNode(bytes: Uint8Array): string | undefined {
  const body = bodyOf(bytes)
  return typeof body?.node === 'string' ? body.node : undefined
}

/** The decoded body of a signed envelope (unverified), or undefined. */
function bodyOf(bytes: Uint8Array): Record<string, unknown> | undefined {
  try {
    return openEnvelope(bytes, REQUEST_BYTES_MAX).body
  } catch {
    return undefined
  }
}

/** The lists inside one answer's output, unverified; undefined when it is not an answer. */
export function decodeLookupAnswer(
  output: string,
): { requests: Uint8Array[]; replies: Uint8Array[] } | undefined {
  if (!output.startsWith(LOOKUP_PREFIX)) return undefined
  try {
    const bytes = Buffer.from(output.slice(LOOKUP_PREFIX.length).trim(), 'base64')
    const value = decodeCbor(new Uint8Array(bytes), REPLY_OUTPUT_BYTES_MAX, 2 * LOOKUP_ITEMS_MAX + 8)
    if (!isRecord(value) || !Array.isArray(value.requests) || !Array.isArray(value.replies)) return undefined
    const requests = value.requests.filter((b): b is Uint8Array => b instanceof Uint8Array)
    const replies = value.replies.filter((b): b is Uint8Array => b instanceof Uint8Array)
    return { requests: requests.slice(0, LOOKUP_ITEMS_MAX), replies: replies.slice(0, LOOKUP_ITEMS_MAX) }
  } catch {
    return undefined
  }
}

/** A job as assembled from verified pieces. */
export interface JobView {
  readonly job: string
  readonly action: string
  readonly args: readonly string[]
  readonly operator: string
  /** The requests (waves) found, oldest first. */
  readonly requests: readonly {
    id: string
    issuedAtMs: number
    expiresAtMs: number
    names?: readonly string[]
    /** Operators whose approvals (two-person rule) verify, at the request's issue time. */
    approvers: readonly string[]
  }[]
  /** One verified done per node, sorted by node. */
  readonly replies: readonly CollectedReply[]
  /** Pieces that did not verify (forged, expired certificate, wrong job), dropped. */
  readonly refused: number
}

/** Verifies and merges pieces of job `job` (hex). */
export function assembleJob(
  job: string,
  pieces: { requests: readonly Uint8Array[]; replies: readonly Uint8Array[] },
  verifier: CertificateVerifier,
  nowMs: number,
): JobView | undefined {
  let refused = 0
  const requests = new Map<string, DecodedRequest>()
  const approversOf = new Map<string, string[]>()
  let operator = '?'
  for (const bytes of pieces.requests) {
    let request: DecodedRequest
    try {
      request = decodeRequest(bytes)
    } catch {
      refused += 1
      continue
    }
    if (request.jobHex !== job) {
      refused += 1
      continue
    }
    // A copy already verified adds nothing unless it carries approvals (checked below, then merged).
    if (requests.has(request.idHex) && request.approvals.length === 0) continue
    // At its issue time: a stored request outlives its operator's certificate's renewal.
    const cert = verifier(request.body.issuer, request.body.issuedAtMs)
    if (!cert.ok || !cert.signed.certificate.roles.includes('operator')) {
      refused += 1
      continue
    }
    if (!verifyRequestSignature(request, cert.signed.certificate.publicKey)) {
      refused += 1
      continue
    }
    operator = cert.signed.certificate.name
    if (!requests.has(request.idHex)) requests.set(request.idHex, request)
    const approvals = verifyApprovals(
      request.approvals,
      request.envelope.bodyBytes,
      cert.signed.certificate,
      verifier,
      request.body.issuedAtMs,
    )
    // Each approval verified on its own, so the union over copies is sound.
    const names = new Set([
      ...(approversOf.get(request.idHex) ?? []),
      ...approvals.approvers.map(c => c.name),
    ])
    approversOf.set(request.idHex, [...names].sort())
  }
  if (requests.size === 0) return undefined
  const byNode = new Map<string, CollectedReply>()
  for (const bytes of pieces.replies) {
    const sentAtMs = sentAt(bytes)
    if (sentAtMs === undefined || sentAtMs > nowMs + 60_000) {
      refused += 1
      continue
    }
    const verdict = verifyReply(bytes, { verifier, nowMs: sentAtMs })
    if (!verdict.ok || !requests.has(verdict.verified.requestIdHex)) {
      refused += 1
      continue
    }
    const reply = verdict.verified.reply
    if (reply.kind !== 'done' || byNode.has(reply.node)) continue
    byNode.set(reply.node, collectedReply(reply, true, reply.sentAtMs))
  }
  const sorted = [...requests.values()].sort((a, b) => a.body.issuedAtMs - b.body.issuedAtMs)
  const first = sorted[0] as DecodedRequest
  return {
    job,
    action: first.body.action,
    args: first.body.args,
    operator,
    requests: sorted.map(r => ({
      id: r.idHex,
      issuedAtMs: r.body.issuedAtMs,
      expiresAtMs: r.body.expiresAtMs,
      ...(r.body.filter.names === undefined ? {} : { names: r.body.filter.names }),
      approvers: approversOf.get(r.idHex) ?? [],
    })),
    replies: [...byNode.values()].sort((a, b) => (a.node < b.node ? -1 : a.node > b.node ? 1 : 0)),
    refused,
  }
}

function sentAt(bytes: Uint8Array): number | undefined {
  const body = bodyOf(bytes)
  return Number.isSafeInteger(body?.sentAtMs) ? (body?.sentAtMs as number) : undefined
}
