/**
 * Verification of an audit log: given the bytes of its segments (oldest first) and the node's public
 * key, checks every frame's length, every record's signature, the seq run and the `prev` links, and
 * names the first record that breaks them. Pure: the agent feeds it the files (a generator, so a long
 * log can yield to the event loop between steps), a test or `mesh audit --verify` feeds it a copy.
 *
 * Checks, in this order, for each record (the first failure is the verdict):
 *
 * | reason          | meaning                                                            | typical cause          |
 * | --------------- | ------------------------------------------------------------------ | ---------------------- |
 * | `malformed`     | a frame length out of range, an envelope or body that does not decode, an older segment that ends inside a frame | edited length, garbage |
 * | `bad-signature` | the node key did not sign these bytes                              | an edited byte         |
 * | `reordered`     | seq lower than expected, or the expected seq comes later in the segment | swapped records     |
 * | `seq-gap`       | seq higher than expected and the expected one is not found after it | a deleted record       |
 * | `broken-link`   | seq continues but `prev` is not the hash of the record before       | a record replaced by another signed one (only the key holder can) |
 *
 * A torn end of the newest segment (a length running past the end, or zero bytes) is `torn-tail`, not
 * a break: a crash during an append leaves exactly that. A length that runs past the end with a whole
 * signed record behind it is no crash (a write leaves a prefix of itself) and is `malformed`. The first record kept need not be seq 1: older
 * segments are deleted by rotation, and the report says so (`rotatedOut`); its own `prev` cannot be
 * checked then. Deleting whole records from the end, or whole oldest segments, leaves a valid shorter
 * chain: the chain alone cannot see that (docs/audit.md says what can).
 */
import { bytesEqual, toHex } from '../wire/hash.js'
import {
  AUDIT_GENESIS_PREV,
  type AuditBody,
  auditFrames,
  auditRecordHash,
  openAuditRecord,
} from './record.js'
import type { AuditBreakReason, AuditVerifyReport } from './types.js'

export type { AuditBreak, AuditBreakReason, AuditPosition, AuditVerifyReport } from './types.js'

/** One segment to verify: its name (for the report) and its bytes. */
export interface AuditSegment {
  readonly name: string
  readonly bytes: Uint8Array
}

/** Options of {@link auditVerification}. */
export interface AuditVerifyOptions {
  /** Records checked between two yields; default {@link AUDIT_VERIFY_STEP_RECORDS}. */
  readonly stepRecords?: number
  /**
   * The first segment is the log's first (the agent knows: rotation never deleted anything), so the
   * first record must be seq 1; without it a first record of a higher seq reads as rotation.
   */
  readonly fromGenesis?: boolean
}

/** Records checked between two yields of {@link auditVerification}. */
export const AUDIT_VERIFY_STEP_RECORDS = 256

/** The seq of the record in `bytes`, when its body decodes (no signature check). */
function seqOf(bytes: Uint8Array): number | undefined {
  const opened = openAuditRecord(bytes)
  return opened.ok ? opened.body.seq : undefined
}

/** True when a frame after `from` in `segment` carries `seq` (a lookahead for `reordered`). */
function laterHasSeq(segment: AuditSegment, from: number, seq: number, newest: boolean): boolean {
  for (const frame of auditFrames(segment.bytes.subarray(from), newest)) {
    if (frame.kind !== 'record') return false
    if (seqOf(frame.bytes) === seq) return true
  }
  return false
}

/** The first bytes of every signed envelope: a map of two, then `sig` and a 64-byte string (envelope.ts). */
const ENVELOPE_HEAD = [0xa2, 0x63, 0x73, 0x69, 0x67, 0x58, 0x40]

/**
 * The offset of the first whole frame after `from` whose record `publicKey` signed, if any: what tells
 * a torn write (nothing whole follows) from a length edited to run past the end. Candidates are only
 * offsets where an envelope starts, so this stays linear in the bytes searched.
 */
export function signedRecordAfter(
  bytes: Uint8Array,
  from: number,
  publicKey: Uint8Array,
): number | undefined {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength)
  for (let at = from + 1; at + 4 + ENVELOPE_HEAD.length <= bytes.byteLength; at++) {
    if (!ENVELOPE_HEAD.every((b, i) => bytes[at + 4 + i] === b)) continue
    const length = view.getUint32(at, false)
    if (length === 0 || at + 4 + length > bytes.byteLength) continue
    const opened = openAuditRecord(bytes.subarray(at + 4, at + 4 + length), publicKey)
    if (opened.ok && opened.signed) return at
  }
  return undefined
}

/**
 * Verifies `segments` (oldest first; the last one is the newest, the only one that may be torn) against
 * `publicKey`. Yields every `stepRecords` records and returns the report; {@link verifyAuditLog} runs
 * it to the end at once.
 */
export function* auditVerification(
  segments: readonly AuditSegment[],
  publicKey: Uint8Array,
  options: AuditVerifyOptions = {},
): Generator<void, AuditVerifyReport> {
  const stepRecords = options.stepRecords ?? AUDIT_VERIFY_STEP_RECORDS
  let records = 0
  let firstSeq: number | null = null
  let last: { seq: number; hash: Uint8Array } | undefined
  let rotatedOut = false
  let looked = 0
  const report = (
    status: AuditVerifyReport['status'],
    extra: Pick<AuditVerifyReport, 'torn' | 'broken'> = {},
  ): AuditVerifyReport => ({
    status,
    records,
    firstSeq,
    lastSeq: last?.seq ?? null,
    rotatedOut,
    headHash: last === undefined ? null : toHex(last.hash),
    segments: looked,
    ...extra,
  })
  for (const [segmentIndex, segment] of segments.entries()) {
    looked += 1
    const newest = segmentIndex === segments.length - 1
    for (const frame of auditFrames(segment.bytes, newest)) {
      const at = { segment: segment.name, offset: frame.offset }
      const expectedSeq = last === undefined ? null : last.seq + 1
      const broken = (reason: AuditBreakReason, detail: string, seq: number | null): AuditVerifyReport =>
        report('broken', { broken: { ...at, index: records, seq, expectedSeq, reason, detail } })
      if (frame.kind === 'torn') {
        // A crash leaves a prefix of the last write; a whole signed record after the tear means a length
        // was edited to hide the records behind it.
        const hidden = signedRecordAfter(segment.bytes, frame.offset, publicKey)
        if (hidden !== undefined)
          return broken(
            'malformed',
            `a frame length runs past the end, yet a whole signed record follows at offset ${hidden}: not a torn write`,
            null,
          )
        return report('torn-tail', { torn: { ...at, bytes: frame.bytes } })
      }
      if (frame.kind === 'malformed') return broken('malformed', frame.detail, null)
      const opened = openAuditRecord(frame.bytes, publicKey)
      if (!opened.ok) return broken('malformed', opened.detail, null)
      const body: AuditBody = opened.body
      if (!opened.signed) return broken('bad-signature', 'the node key did not sign this record', body.seq)
      if (last === undefined) {
        // The first record kept: seq 1 must start from the genesis hash; a later one was rotated to.
        if (body.seq === 1 && !bytesEqual(body.prev, AUDIT_GENESIS_PREV))
          return broken('broken-link', 'record 1 does not start from the genesis hash', body.seq)
        if (body.seq > 1 && options.fromGenesis === true)
          return broken(
            'seq-gap',
            `the log starts at seq ${body.seq}, not 1, and nothing was rotated out`,
            body.seq,
          )
        rotatedOut = body.seq > 1
        firstSeq = body.seq
      } else if (body.seq < last.seq + 1) {
        return broken('reordered', `seq ${body.seq} after seq ${last.seq}`, body.seq)
      } else if (body.seq > last.seq + 1) {
        const next = frame.offset + 4 + frame.bytes.byteLength
        const found = laterHasSeq(segment, next, last.seq + 1, newest)
        return found
          ? broken(
              'reordered',
              `seq ${body.seq} where ${last.seq + 1} was due; ${last.seq + 1} comes later`,
              body.seq,
            )
          : broken(
              'seq-gap',
              `seq ${body.seq} after seq ${last.seq}: ${body.seq - last.seq - 1} missing`,
              body.seq,
            )
      } else if (!bytesEqual(body.prev, last.hash)) {
        return broken('broken-link', `prev is not the hash of record ${last.seq}`, body.seq)
      }
      last = { seq: body.seq, hash: auditRecordHash(frame.bytes) }
      records += 1
      if (records % stepRecords === 0) yield
    }
  }
  return report('ok')
}

/** {@link auditVerification} run to the end at once (for tests and small logs). */
export function verifyAuditLog(
  segments: readonly AuditSegment[],
  publicKey: Uint8Array,
  options: AuditVerifyOptions = {},
): AuditVerifyReport {
  const steps = auditVerification(segments, publicKey, options)
  for (;;) {
    const step = steps.next()
    if (step.done === true) return step.value
  }
}
