/**
 * The audit record format: one signed envelope per record, framed on disk by a length prefix. Pure (no
 * I/O, no clock): the library seals records (src/node/audit.ts), the agent frames and stores them
 * (src/agent/audit-file.ts), and the verifier (verify.ts) reads them back.
 *
 * ```
 *  segment file = frame*            frame = length (4 bytes, big-endian) ‖ envelope (length bytes)
 *  envelope     = { sig, body }     sig   = ed25519 by the node key over DOMAIN_AUDIT_RECORD ‖ 0 ‖ body
 *  body         = { v: 1, seq, atMs, prev, type, …fields }
 *                 seq  = 1, 2, 3, … with no gap over the node's whole life (across segments and restarts)
 *                 prev = SHA-256 of the previous record's whole envelope (32 zero bytes before seq 1)
 * ```
 *
 * Because `prev` covers the previous envelope with its signature, each record commits to every record
 * before it: an edited record fails its signature, and a deleted, inserted or reordered one breaks
 * the seq run and the link of the record after it. Frames are what a crash can tear: a length prefix
 * that runs past the end of the newest segment, or a zero-filled end (a file extended but not yet
 * written), is a torn tail, not a broken record (docs/audit.md).
 */
import { DecodeError, isRecord } from '../wire/cbor.js'
import { DOMAIN_AUDIT_RECORD } from '../wire/domains.js'
import type { SigningKey } from '../wire/ed25519.js'
import { openEnvelope, sealEnvelope, verifyEnvelope } from '../wire/envelope.js'
import { hash, toHex } from '../wire/hash.js'
import type { AuditRecordView } from './types.js'

/** Format version of a record body. */
export const AUDIT_RECORD_VERSION = 1
/** Largest envelope of one record; the library keeps every field far below it (audit.ts bounds texts). */
export const AUDIT_RECORD_BYTES_MAX = 64 * 1024
/** Most CBOR items a record body is decoded with. */
export const AUDIT_RECORD_ITEMS_MAX = 4_096
/** Bytes of a frame's length prefix. */
export const AUDIT_FRAME_HEADER_BYTES = 4
/** Bytes of a record hash (SHA-256). */
export const AUDIT_HASH_BYTES = 32
/** The `prev` of the first record a node ever writes. */
export const AUDIT_GENESIS_PREV: Uint8Array = new Uint8Array(AUDIT_HASH_BYTES)

/** The body keys every record has; the fields of a type may not use them. */
export const AUDIT_RESERVED_KEYS: readonly string[] = ['v', 'seq', 'atMs', 'prev', 'type']

/** A value a record field may hold (no floats, no null: absent fields are left out). */
export type AuditValue = string | number | boolean | Uint8Array | readonly AuditValue[] | AuditMap
/** A nested map inside a record field. */
export interface AuditMap {
  readonly [key: string]: AuditValue | undefined
}

/** What a record says, before it is numbered, linked and signed: its type, its time and its fields. */
export interface AuditEntry {
  readonly type: string
  readonly atMs: number
  readonly fields: AuditMap
}

/** Where a chain ends: the last record's seq and the hash of its envelope (seq 0: nothing written yet). */
export interface AuditChainHead {
  readonly seq: number
  readonly hash: Uint8Array
}

/** The head of a log with no record yet. */
export const AUDIT_EMPTY_HEAD: AuditChainHead = { seq: 0, hash: AUDIT_GENESIS_PREV }

/** A record sealed after `head`: its envelope bytes and the new head. */
export interface SealedAuditRecord {
  readonly bytes: Uint8Array
  readonly head: AuditChainHead
}

/**
 * Numbers `entry` after `head`, links it to it and signs it with the node key.
 * @throws Error (assertion) when a field uses a reserved key, or the record exceeds the size bound
 */
export function sealAuditRecord(key: SigningKey, head: AuditChainHead, entry: AuditEntry): SealedAuditRecord {
  for (const reserved of AUDIT_RESERVED_KEYS) {
    if (Object.hasOwn(entry.fields, reserved))
      throw new Error(`assertion: audit field '${reserved}' is reserved`)
  }
  const seq = head.seq + 1
  const bytes = sealEnvelope(DOMAIN_AUDIT_RECORD, key, {
    ...(entry.fields as Record<string, never>),
    v: AUDIT_RECORD_VERSION,
    seq,
    atMs: Math.trunc(entry.atMs),
    prev: head.hash,
    type: entry.type,
  })
  if (bytes.byteLength > AUDIT_RECORD_BYTES_MAX)
    throw new Error(`assertion: audit record of ${bytes.byteLength} bytes exceeds ${AUDIT_RECORD_BYTES_MAX}`)
  return { bytes, head: { seq, hash: hash(bytes) } }
}

/** The frames of `records` (length prefix ‖ envelope each), concatenated: what one append writes. */
export function frameAuditRecords(records: readonly Uint8Array[]): Uint8Array {
  let total = 0
  for (const record of records) total += AUDIT_FRAME_HEADER_BYTES + record.byteLength
  const out = new Uint8Array(total)
  const view = new DataView(out.buffer)
  let at = 0
  for (const record of records) {
    view.setUint32(at, record.byteLength, false)
    out.set(record, at + AUDIT_FRAME_HEADER_BYTES)
    at += AUDIT_FRAME_HEADER_BYTES + record.byteLength
  }
  return out
}

/**
 * One step through a segment's bytes: a whole frame's envelope (`record`, a view of the input), the
 * torn end of the newest segment (`torn`: the bytes from `offset` to the end), or a framing error.
 */
export type AuditFrame =
  | { readonly kind: 'record'; readonly offset: number; readonly bytes: Uint8Array }
  | { readonly kind: 'torn'; readonly offset: number; readonly bytes: number }
  | { readonly kind: 'malformed'; readonly offset: number; readonly detail: string }

function allZero(bytes: Uint8Array, from: number): boolean {
  for (let i = from; i < bytes.byteLength; i++) if (bytes[i] !== 0) return false
  return true
}

/**
 * The frames of one segment, in order; stops after a `torn` or `malformed` one. `newest`: this is the
 * last segment, the only one a crash can leave torn (the agent cuts a torn tail before it appends, and
 * starts a segment only after a whole write), so an incomplete end of an older segment is `malformed`.
 */
export function* auditFrames(bytes: Uint8Array, newest: boolean): Generator<AuditFrame, void> {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength)
  let at = 0
  while (at < bytes.byteLength) {
    const left = bytes.byteLength - at
    const incomplete = (detail: string): AuditFrame =>
      newest
        ? { kind: 'torn', offset: at, bytes: left }
        : { kind: 'malformed', offset: at, detail: `${detail} before the end of an older segment` }
    // A file extended but never written (the zeros some file systems leave after a crash) is torn too.
    if (allZero(bytes, at)) {
      yield incomplete(`${left} zero bytes`)
      return
    }
    if (left < AUDIT_FRAME_HEADER_BYTES) {
      yield incomplete('a partial length prefix')
      return
    }
    const length = view.getUint32(at, false)
    if (length === 0 || length > AUDIT_RECORD_BYTES_MAX) {
      yield {
        kind: 'malformed',
        offset: at,
        detail: `frame length ${length} is outside 1..${AUDIT_RECORD_BYTES_MAX}`,
      }
      return
    }
    if (length > left - AUDIT_FRAME_HEADER_BYTES) {
      yield incomplete(`a frame of ${length} bytes with ${left - AUDIT_FRAME_HEADER_BYTES} present`)
      return
    }
    const start = at + AUDIT_FRAME_HEADER_BYTES
    yield { kind: 'record', offset: at, bytes: bytes.subarray(start, start + length) }
    at = start + length
  }
}

/** A record's body, read: the chain fields, and the rest as decoded. */
export interface AuditBody {
  readonly seq: number
  readonly atMs: number
  readonly prev: Uint8Array
  readonly type: string
  /** Every body field (the chain fields included), as decoded. */
  readonly body: Readonly<Record<string, unknown>>
}

/** An opened record: its body, and whether `publicKey` signed it (when one was given). */
export type AuditOpening =
  | { readonly ok: true; readonly body: AuditBody; readonly signed: boolean }
  | { readonly ok: false; readonly detail: string }

/**
 * Decodes a record's envelope and body, and checks the signature against `publicKey` when given
 * (`signed`). Never throws: bytes that are not a record say why.
 */
export function openAuditRecord(bytes: Uint8Array, publicKey?: Uint8Array): AuditOpening {
  try {
    const envelope = openEnvelope(bytes, AUDIT_RECORD_BYTES_MAX, AUDIT_RECORD_ITEMS_MAX)
    const signed = publicKey !== undefined && verifyEnvelope(DOMAIN_AUDIT_RECORD, publicKey, envelope)
    const body = envelope.body
    const { v, seq, atMs, prev, type } = body
    if (v !== AUDIT_RECORD_VERSION) return { ok: false, detail: `format version ${String(v)}, not 1` }
    if (typeof seq !== 'number' || !Number.isSafeInteger(seq) || seq < 1)
      return { ok: false, detail: 'seq is not a positive integer' }
    if (typeof atMs !== 'number' || !Number.isSafeInteger(atMs))
      return { ok: false, detail: 'atMs is not an integer' }
    if (!(prev instanceof Uint8Array) || prev.byteLength !== AUDIT_HASH_BYTES)
      return { ok: false, detail: 'prev is not a 32-byte hash' }
    if (typeof type !== 'string' || type.length === 0) return { ok: false, detail: 'type is not a text' }
    return { ok: true, body: { seq, atMs, prev, type, body }, signed }
  } catch (err) {
    if (err instanceof DecodeError) return { ok: false, detail: err.message }
    return { ok: false, detail: String(err) }
  }
}

/** A decoded value with byte strings as hex, for JSON. */
function jsonValue(value: unknown): unknown {
  if (value instanceof Uint8Array) return toHex(value)
  if (Array.isArray(value)) return value.map(jsonValue)
  if (isRecord(value)) return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, jsonValue(v)]))
  return value
}

/** A record body as JSON (format.ts): every field, byte strings as hex, without the format version. */
export function auditRecordView(body: AuditBody): AuditRecordView {
  const { v: _v, ...rest } = body.body
  return jsonValue(rest) as AuditRecordView
}

/** The hash a next record's `prev` holds for `bytes` (one record's envelope). */
export function auditRecordHash(bytes: Uint8Array): Uint8Array {
  return hash(bytes)
}

/** What a store reports of the stored chain when a node starts (NodeStore.loadAuditHead). */
export interface AuditStoreHead extends AuditChainHead {
  /** Bytes of a torn last record cut from the end (0: none). */
  readonly tornBytes: number
  /** Why the store could not continue the chain where the files end (a damaged record, a lost segment). */
  readonly problem?: string
}
