/**
 * Signed replies from a node to a requester, and the batch frame that carries several of them.
 *
 * A reply is an envelope (src/wire/envelope.ts, domain `DOMAIN_REPLY`) signed by the replying node's key,
 * carrying that node's certificate, so it can be verified end to end by the requester no matter
 * which peers carried it. That is what allows replies to travel back along the gossip path, batched
 * at each hop ({@link encodeReplyBatch}), with a direct dial only as the fallback: forwarders pass
 * the signed bytes on untouched and need not be trusted.
 *
 * Kinds: `ack` (the node accepted the request; a `done` follows, whether it ran or was refused), `done` (status, exit code,
 * bounded output, duration, and for `--once` the authority epoch) and `output` (one chunk of an action's stdout or stderr
 * while it runs: `stream`, `seq` 0, 1, 2… per request per node, `data` of at most {@link OUTPUT_CHUNK_BYTES_MAX} UTF-8
 * bytes). Chunks are signed like the others, since every hop may be hostile; they are best effort (a
 * lost one is not resent) and the `done` alone is the complete answer. Producers bound how many they send
 * (src/node/live-output.ts), so verifying them costs the requester a bounded rate per node.
 */

import { CERTIFICATE_BYTES_MAX } from '../ca/certificate.js'
import type { CertificateRejection, CertificateVerifier, SignedCertificate } from '../ca/types.js'
import { type CborValue, DecodeError, decodeCbor, encodeCbor, isRecord } from '../wire/cbor.js'
import { DOMAIN_REPLY } from '../wire/domains.js'
import type { SigningKey } from '../wire/ed25519.js'
import { openEnvelope, sealEnvelope, verifyEnvelope } from '../wire/envelope.js'
import { onlyKeys, readBytes, readInteger, readOptionalText, readText } from '../wire/fields.js'
import { bytesEqual, toHex } from '../wire/hash.js'
import { REQUEST_ID_BYTES } from './request.js'

/** Most output carried in one reply, in UTF-8 bytes; longer output is cut and flagged. */
export const REPLY_OUTPUT_BYTES_MAX = 16 * 1024
/** Longest denial/error reason, in characters. */
export const REPLY_REASON_CHARS_MAX = 512
/** Longest node name or zone in a reply, in characters. */
export const REPLY_NAME_CHARS_MAX = 64
/** Largest encoded reply, in bytes. */
export const REPLY_BYTES_MAX = 32 * 1024
/** Largest reply batch frame, in bytes (equal to gossipsub's and the stream's max message). */
export const REPLY_BATCH_BYTES_MAX = 1024 * 1024
/** Most replies in one batch frame. */
export const REPLY_BATCH_REPLIES_MAX = 256
/** Most UTF-8 bytes of text in one `output` chunk. */
export const OUTPUT_CHUNK_BYTES_MAX = 4 * 1024
/** Highest `seq` of an `output` chunk (at 10 chunks/s, 29 h: beyond any request's lifetime). */
export const OUTPUT_SEQ_MAX = 2 ** 20 - 1
/**
 * Most live-output bytes one node sends for one request, and the most a requester passes on from one
 * node; equal to the largest output limit an action may declare (ACTION_OUTPUT_BYTES_CEILING).
 */
export const OUTPUT_STREAM_BYTES_MAX = 16 * 1024 * 1024
/** Which of an action's output streams a chunk comes from. */
export type OutputStream = 'stdout' | 'stderr'
/** Every {@link OutputStream}. */
export const OUTPUT_STREAMS: readonly OutputStream[] = ['stdout', 'stderr']
/** Most CBOR items a batch frame is decoded with: `{ v, replies: [bytes…] }` (a dense 1 MB frame took 100-150 ms). */
const REPLY_BATCH_ITEMS_MAX = REPLY_BATCH_REPLIES_MAX + 8

/**
 * How an action ended. `denied`: refused by policy; `failed`: ran and failed (non-zero exit, signal, or
 * its time limit); `error`: could not be run (unknown action, no slot in time, issued before a restart);
 * `cancelled`: stopped before it finished because the node was stopping (gracefully) or the run was
 * cancelled; the process tree was killed.
 */
export type ReplyStatus = 'ok' | 'failed' | 'denied' | 'error' | 'cancelled'
/** Every {@link ReplyStatus}, the set a `done` may carry. */
export const REPLY_STATUSES: readonly ReplyStatus[] = ['ok', 'failed', 'denied', 'error', 'cancelled']

/**
 * The reason code of an `error` done for an action this node does not have. It leads the reason
 * (`unknown-action: …`), as every error code does, so requesters can tell "no such action" apart.
 */
export const REASON_UNKNOWN_ACTION = 'unknown-action'

/** True for a done that says "this node has no such action" (status `error`, reason `unknown-action…`). */
export function isUnknownActionDone(done: {
  readonly status: ReplyStatus
  readonly reason?: string
}): boolean {
  return done.status === 'error' && (done.reason ?? '').startsWith(REASON_UNKNOWN_ACTION)
}

/** Fields common to both kinds. */
interface ReplyCommon {
  readonly v: 1
  readonly requestId: Uint8Array
  /** The replying node's name and zone; must equal its certificate's. */
  readonly node: string
  readonly zone: string
  /** The replying node's certificate bytes. */
  readonly cert: Uint8Array
  /** The node's clock when it signed, ms since the epoch (informational). */
  readonly sentAtMs: number
}

/** The node accepted the request; a `done` reply follows. */
export interface AckReply extends ReplyCommon {
  readonly kind: 'ack'
}

/** The node finished (or refused) the request. */
export interface DoneReply extends ReplyCommon {
  readonly kind: 'done'
  readonly status: ReplyStatus
  /** Process exit code; null when no process ran (denied, error before spawn, built-ins may use 0). */
  readonly exitCode: number | null
  readonly output: string
  /** True when `output` was cut to {@link REPLY_OUTPUT_BYTES_MAX}. */
  readonly outputTruncated: boolean
  readonly durationMs: number
  /** The zone authority's epoch, for `--once` requests. */
  readonly epoch?: number
  /** Why it was denied or errored, for humans. */
  readonly reason?: string
}

/** One chunk of an action's output while it runs (best effort; the `done` carries the bounded whole). */
export interface OutputReply extends ReplyCommon {
  readonly kind: 'output'
  readonly stream: OutputStream
  /** 0, 1, 2… per request per node, in the order the node sent them; at most {@link OUTPUT_SEQ_MAX}. */
  readonly seq: number
  /** 1 to {@link OUTPUT_CHUNK_BYTES_MAX} UTF-8 bytes of text. */
  readonly data: string
}

/** A reply body. */
export type Reply = AckReply | DoneReply | OutputReply

/** Content of an ack, as the node creates it. */
export interface AckInit {
  readonly kind: 'ack'
  readonly requestId: Uint8Array
  readonly sentAtMs: number
}

/** Content of a completion, as the node creates it; long output is cut, not refused. */
export interface DoneInit {
  readonly kind: 'done'
  readonly requestId: Uint8Array
  readonly sentAtMs: number
  readonly status: ReplyStatus
  readonly exitCode: number | null
  readonly output: string
  readonly durationMs: number
  readonly epoch?: number
  readonly reason?: string
}

/** Content of an output chunk, as the node creates it; the data must already fit (see {@link createReply}). */
export interface OutputInit {
  readonly kind: 'output'
  readonly requestId: Uint8Array
  readonly sentAtMs: number
  readonly stream: OutputStream
  readonly seq: number
  readonly data: string
}

/** The signing node: its key and certificate (name and zone are taken from the certificate). */
export interface ReplySigner {
  readonly key: SigningKey
  readonly certificate: SignedCertificate
}

/**
 * Cuts `text` to at most `bytesMax` UTF-8 bytes on a character boundary.
 * @returns the text and whether it was cut
 */
export function truncateUtf8(text: string, bytesMax: number): { text: string; truncated: boolean } {
  const bytes = new TextEncoder().encode(text)
  if (bytes.byteLength <= bytesMax) return { text, truncated: false }
  let end = bytesMax
  // Back off continuation bytes (10xxxxxx) so the cut never splits a character.
  while (end > 0 && ((bytes[end] ?? 0) & 0xc0) === 0x80) end--
  return { text: new TextDecoder().decode(bytes.subarray(0, end)), truncated: true }
}

/** Length of `text` in UTF-8 bytes. Pure. */
export function utf8ByteLength(text: string): number {
  let bytes = 0
  for (let i = 0; i < text.length; i++) {
    const unit = text.charCodeAt(i)
    if (unit < 0x80) bytes += 1
    else if (unit < 0x800) bytes += 2
    else if (unit >= 0xd800 && unit < 0xdc00 && i + 1 < text.length) {
      const next = text.charCodeAt(i + 1)
      // A surrogate pair is one 4-byte character; a lone surrogate encodes as U+FFFD (3 bytes).
      if (next >= 0xdc00 && next < 0xe000) {
        bytes += 4
        i++
      } else bytes += 3
    } else bytes += 3
  }
  return bytes
}

/**
 * Creates a signed reply; output beyond {@link REPLY_OUTPUT_BYTES_MAX} is cut and flagged, the reason
 * beyond {@link REPLY_REASON_CHARS_MAX} is cut. An output chunk is never cut: its producer sizes it.
 * @throws TypeError on an invalid request id, exit code or duration, or an output chunk that is empty,
 *   larger than {@link OUTPUT_CHUNK_BYTES_MAX}, of an unknown stream or with a seq out of range (caller bugs)
 */
export function createReply(signer: ReplySigner, init: AckInit | DoneInit | OutputInit): Uint8Array {
  if (init.requestId.byteLength !== REQUEST_ID_BYTES) throw new TypeError('requestId must be 16 bytes')
  const cert = signer.certificate
  const common = {
    v: 1,
    kind: init.kind,
    requestId: init.requestId,
    node: cert.certificate.name,
    zone: cert.certificate.zone,
    cert: cert.bytes,
    sentAtMs: init.sentAtMs,
  }
  if (init.kind === 'ack') return sealEnvelope(DOMAIN_REPLY, signer.key, common)
  if (init.kind === 'output') {
    if (!OUTPUT_STREAMS.includes(init.stream)) throw new TypeError('bad output stream')
    if (!Number.isSafeInteger(init.seq) || init.seq < 0 || init.seq > OUTPUT_SEQ_MAX) {
      throw new TypeError('bad output seq')
    }
    const bytes = utf8ByteLength(init.data)
    if (bytes === 0 || bytes > OUTPUT_CHUNK_BYTES_MAX) throw new TypeError('bad output chunk size')
    const body: CborValue = { ...common, stream: init.stream, seq: init.seq, data: init.data }
    return sealEnvelope(DOMAIN_REPLY, signer.key, body)
  }
  if (init.exitCode !== null && !Number.isSafeInteger(init.exitCode)) throw new TypeError('bad exitCode')
  if (!Number.isSafeInteger(init.durationMs) || init.durationMs < 0) throw new TypeError('bad durationMs')
  const output = truncateUtf8(init.output, REPLY_OUTPUT_BYTES_MAX)
  const body: CborValue = {
    ...common,
    status: init.status,
    exitCode: init.exitCode,
    output: output.text,
    outputTruncated: output.truncated,
    durationMs: init.durationMs,
    epoch: init.epoch,
    reason: init.reason === undefined ? undefined : init.reason.slice(0, REPLY_REASON_CHARS_MAX),
  }
  return sealEnvelope(DOMAIN_REPLY, signer.key, body)
}

/** Why a reply was refused. A closed set. */
export type ReplyRejection =
  | 'too-large'
  | 'malformed'
  | 'unsupported-version'
  | 'bad-certificate'
  | 'not-agent'
  | 'identity-mismatch'
  | 'bad-signature'
  | 'wrong-request'

/** A verified reply together with the sender's verified certificate. */
export interface VerifiedReply {
  readonly reply: Reply
  readonly certificate: SignedCertificate
  /** Lower-case hex of `reply.requestId`. */
  readonly requestIdHex: string
}

/** Result of {@link verifyReply}; never throws. */
export type ReplyVerdict =
  | { readonly ok: true; readonly verified: VerifiedReply }
  | {
      readonly ok: false
      readonly reason: ReplyRejection
      readonly detail: string
      /** Set when `reason` is `bad-certificate`. */
      readonly certificateReason?: CertificateRejection
    }

/** What {@link verifyReply} checks against. */
export interface ReplyCheck {
  readonly verifier: CertificateVerifier
  readonly nowMs: number
  /** When set, a reply for any other request is refused with `wrong-request`. */
  readonly requestId?: Uint8Array
}

/**
 * Verifies one reply: size, decode, certificate (via the verifier: chain, validity, revocation), role
 * `agent`, name and zone equal to the certificate's, signature by the certificate's key, request id.
 */
export function verifyReply(bytes: Uint8Array, check: ReplyCheck): ReplyVerdict {
  let reply: Reply
  let envelope: ReturnType<typeof openEnvelope>
  try {
    envelope = openEnvelope(bytes, REPLY_BYTES_MAX)
    reply = replyFromBody(envelope.body)
  } catch (err) {
    if (err instanceof ReplyVersionError) return refuse('unsupported-version', err.message)
    if (err instanceof DecodeError) return refuse(err.code, err.message)
    throw err
  }
  const verdict = check.verifier(reply.cert, check.nowMs)
  if (!verdict.ok) {
    return { ok: false, reason: 'bad-certificate', detail: verdict.detail, certificateReason: verdict.reason }
  }
  const cert = verdict.signed.certificate
  if (!cert.roles.includes('agent')) return refuse('not-agent', `${cert.name} does not have the agent role`)
  if (cert.name !== reply.node || cert.zone !== reply.zone) {
    return refuse(
      'identity-mismatch',
      `reply says ${reply.node}@${reply.zone}, certificate ${cert.name}@${cert.zone}`,
    )
  }
  if (!verifyEnvelope(DOMAIN_REPLY, cert.publicKey, envelope)) {
    return refuse('bad-signature', `reply from ${cert.name} is not signed by its certificate key`)
  }
  if (check.requestId !== undefined && !bytesEqual(check.requestId, reply.requestId)) {
    return refuse('wrong-request', `reply is for request ${toHex(reply.requestId)}`)
  }
  return { ok: true, verified: { reply, certificate: verdict.signed, requestIdHex: toHex(reply.requestId) } }
}

function refuse(reason: ReplyRejection, detail: string): ReplyVerdict {
  return { ok: false, reason, detail }
}

class ReplyVersionError extends Error {}

function replyFromBody(b: Record<string, unknown>): Reply {
  if (b.v !== 1) {
    if (typeof b.v === 'number') throw new ReplyVersionError(`reply version ${b.v} is not supported`)
    throw new DecodeError('malformed', 'reply version missing')
  }
  const common = {
    v: 1 as const,
    requestId: readBytes(b, 'requestId', { length: REQUEST_ID_BYTES }),
    node: readText(b, 'node', REPLY_NAME_CHARS_MAX),
    zone: readText(b, 'zone', REPLY_NAME_CHARS_MAX),
    cert: readBytes(b, 'cert', { bytesMin: 1, bytesMax: CERTIFICATE_BYTES_MAX }),
    sentAtMs: readInteger(b, 'sentAtMs'),
  }
  if (b.kind === 'ack') {
    onlyKeys(b, ['v', 'kind', 'requestId', 'node', 'zone', 'cert', 'sentAtMs'], 'ack')
    return { ...common, kind: 'ack' }
  }
  if (b.kind === 'output') return outputFromBody(b, common)
  if (b.kind !== 'done') throw new DecodeError('malformed', 'reply kind must be ack, done or output')
  onlyKeys(
    b,
    [
      'v',
      'kind',
      'requestId',
      'node',
      'zone',
      'cert',
      'sentAtMs',
      'status',
      'exitCode',
      'output',
      'outputTruncated',
      'durationMs',
      'epoch',
      'reason',
    ],
    'done',
  )
  const status = b.status
  if (typeof status !== 'string' || !REPLY_STATUSES.includes(status as ReplyStatus)) {
    throw new DecodeError('malformed', `status must be one of ${REPLY_STATUSES.join(', ')}`)
  }
  if (typeof b.outputTruncated !== 'boolean')
    throw new DecodeError('malformed', 'outputTruncated must be a boolean')
  const done: { -readonly [K in keyof DoneReply]: DoneReply[K] } = {
    ...common,
    kind: 'done',
    status: status as ReplyStatus,
    exitCode: b.exitCode === null ? null : readInteger(b, 'exitCode', { min: Number.MIN_SAFE_INTEGER }),
    output: readText(b, 'output', REPLY_OUTPUT_BYTES_MAX),
    outputTruncated: b.outputTruncated,
    durationMs: readInteger(b, 'durationMs'),
  }
  if (b.epoch !== undefined) done.epoch = readInteger(b, 'epoch')
  const reason = readOptionalText(b, 'reason', REPLY_REASON_CHARS_MAX)
  if (reason !== undefined) done.reason = reason
  return done
}

/** The `output` fields of a reply body whose common fields are read. */
function outputFromBody(b: Record<string, unknown>, common: ReplyCommon): OutputReply {
  onlyKeys(
    b,
    ['v', 'kind', 'requestId', 'node', 'zone', 'cert', 'sentAtMs', 'stream', 'seq', 'data'],
    'output',
  )
  const stream = b.stream
  if (typeof stream !== 'string' || !OUTPUT_STREAMS.includes(stream as OutputStream)) {
    throw new DecodeError('malformed', `stream must be one of ${OUTPUT_STREAMS.join(', ')}`)
  }
  const seq = readInteger(b, 'seq', { max: OUTPUT_SEQ_MAX })
  // UTF-16 units never outnumber UTF-8 bytes, so the cheap character bound comes first.
  const data = readText(b, 'data', OUTPUT_CHUNK_BYTES_MAX)
  const bytes = utf8ByteLength(data)
  if (bytes === 0 || bytes > OUTPUT_CHUNK_BYTES_MAX) {
    throw new DecodeError('malformed', `data must be 1..${OUTPUT_CHUNK_BYTES_MAX} UTF-8 bytes`)
  }
  return { ...common, kind: 'output', stream: stream as OutputStream, seq, data }
}

/**
 * Packs signed replies into one batch frame `{ v: 1, replies: [bytes…] }`. Forwarders re-batch the
 * bytes they received without touching them.
 * @throws RangeError when there are more than {@link REPLY_BATCH_REPLIES_MAX} replies, one is larger
 *   than {@link REPLY_BYTES_MAX}, or the frame exceeds {@link REPLY_BATCH_BYTES_MAX}; use
 *   {@link packReplyBatches} to split.
 */
export function encodeReplyBatch(replies: readonly Uint8Array[]): Uint8Array {
  if (replies.length > REPLY_BATCH_REPLIES_MAX) throw new RangeError('too many replies for one batch')
  for (const r of replies) if (r.byteLength > REPLY_BYTES_MAX) throw new RangeError('reply too large')
  const frame = encodeCbor({ v: 1, replies: [...replies] })
  if (frame.byteLength > REPLY_BATCH_BYTES_MAX) throw new RangeError('reply batch too large')
  return frame
}

/** Per-frame overhead allowance used by {@link packReplyBatches}, in bytes (map, key, array, lengths). */
const BATCH_OVERHEAD_BYTES = 32
const PER_REPLY_OVERHEAD_BYTES = 5

/**
 * Splits replies into as few batch frames as the limits allow, in order. Replies larger than
 * {@link REPLY_BYTES_MAX} are dropped and counted in `dropped` (they could never verify anyway).
 */
export function packReplyBatches(replies: readonly Uint8Array[]): { frames: Uint8Array[]; dropped: number } {
  const frames: Uint8Array[] = []
  let dropped = 0
  let current: Uint8Array[] = []
  let currentBytes = BATCH_OVERHEAD_BYTES
  for (const reply of replies) {
    if (reply.byteLength > REPLY_BYTES_MAX) {
      dropped++
      continue
    }
    const cost = reply.byteLength + PER_REPLY_OVERHEAD_BYTES
    if (current.length === REPLY_BATCH_REPLIES_MAX || currentBytes + cost > REPLY_BATCH_BYTES_MAX) {
      frames.push(encodeReplyBatch(current))
      current = []
      currentBytes = BATCH_OVERHEAD_BYTES
    }
    current.push(reply)
    currentBytes += cost
  }
  if (current.length > 0) frames.push(encodeReplyBatch(current))
  return { frames, dropped }
}

/**
 * Decodes a batch frame into the signed reply bytes it carries (each still to be verified).
 * @throws DecodeError `too-large` or `malformed`
 */
export function decodeReplyBatch(bytes: Uint8Array): Uint8Array[] {
  const frame = decodeCbor(bytes, REPLY_BATCH_BYTES_MAX, REPLY_BATCH_ITEMS_MAX)
  if (!isRecord(frame) || frame.v !== 1)
    throw new DecodeError('malformed', 'reply batch must be { v: 1, replies }')
  onlyKeys(frame, ['v', 'replies'], 'reply batch')
  const replies = frame.replies
  if (!Array.isArray(replies) || replies.length > REPLY_BATCH_REPLIES_MAX) {
    throw new DecodeError('malformed', `replies must be a list of at most ${REPLY_BATCH_REPLIES_MAX}`)
  }
  return replies.map((r, i) => {
    if (!(r instanceof Uint8Array) || r.byteLength > REPLY_BYTES_MAX) {
      throw new DecodeError('malformed', `replies[${i}] must be bytes of at most ${REPLY_BYTES_MAX}`)
    }
    return r
  })
}
