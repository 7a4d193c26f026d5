/**
 * The audit core's plain types, with no imports: what a record looks like as JSON and what a
 * verification reports, shared by the thin CLI (format.ts) and the wire-level modules (record.ts,
 * verify.ts) without an import circle between them.
 */

/**
 * One record as JSON: the signed body's fields, byte strings as lower-case hex. Always `seq`, `atMs`,
 * `type` and `prev` (the hash of the record before it); the rest depends on `type` (docs/audit.md).
 */
export interface AuditRecordView {
  readonly seq: number
  readonly atMs: number
  readonly type: string
  readonly prev: string
  readonly [field: string]: unknown
}

/** Why a record breaks the chain. A closed set (the table in verify.ts says what each means). */
export type AuditBreakReason = 'malformed' | 'bad-signature' | 'reordered' | 'seq-gap' | 'broken-link'

/** Where a check stopped: the segment and byte offset of the frame. */
export interface AuditPosition {
  readonly segment: string
  readonly offset: number
}

/** The first broken record. */
export interface AuditBreak extends AuditPosition {
  /** Index of the record among those checked (0 = the first record kept), counted from the oldest. */
  readonly index: number
  /** The seq the record carries, when its body decodes; null otherwise. */
  readonly seq: number | null
  /** The seq a whole chain would have there (null before the first record). */
  readonly expectedSeq: number | null
  readonly reason: AuditBreakReason
  readonly detail: string
}

/** The verdict. `records` counts the records that passed every check. */
export interface AuditVerifyReport {
  readonly status: 'ok' | 'torn-tail' | 'broken'
  readonly records: number
  /** Seq of the first and last record that passed (null when none did). */
  readonly firstSeq: number | null
  readonly lastSeq: number | null
  /** True when the first record kept is not seq 1: older segments were rotated out. */
  readonly rotatedOut: boolean
  /** Hash (hex) of the last record that passed: what the next record's `prev` must be. */
  readonly headHash: string | null
  /** Segments looked at. */
  readonly segments: number
  /** For `torn-tail`: where the torn end starts and how many bytes it has. */
  readonly torn?: AuditPosition & { readonly bytes: number }
  /** For `broken`: the first broken record. */
  readonly broken?: AuditBreak
}
