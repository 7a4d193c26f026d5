/**
 * How an audit record reads: the JSON view the agent sends to the CLI (`mesh audit --json`) and the one
 * text line per record that `mesh audit` and the `audit-tail` action print. No imports: the thin CLI
 * uses this module without loading the wire layer (docs/memory.md).
 */
import type { AuditRecordView, AuditVerifyReport } from './types.js'

export type { AuditRecordView } from './types.js'

/** Fields every line shows in its own place (not as `key=value`). */
const FIXED = new Set(['v', 'seq', 'atMs', 'type', 'prev'])

/** A value as a `key=value` line shows it: plain when it has no spaces or quotes, else JSON. */
function formatValue(value: unknown): string {
  if (typeof value === 'string') return /^[^\s"=]+$/.test(value) ? value : JSON.stringify(value)
  if (typeof value === 'number' || typeof value === 'boolean') return String(value)
  return JSON.stringify(value)
}

/**
 * One line: `ISO-TIME #SEQ TYPE key=value …` with the fields in name order, e.g.
 * `2026-05-01T10:00:00.123Z #42 request action=uptime id=3f… operator=alice verdict=execute`.
 * Digests and hashes are cut to 16 hex characters (`…` marks the cut); `--json` has them whole.
 */
export function formatAuditLine(record: AuditRecordView): string {
  const time = Number.isFinite(record.atMs) ? new Date(record.atMs).toISOString() : String(record.atMs)
  const fields = Object.keys(record)
    .filter(key => !FIXED.has(key) && record[key] !== undefined)
    .sort()
    .map(key => {
      const value = record[key]
      const shown =
        typeof value === 'string' && /Digest$|^request$/.test(key) && value.length > 16
          ? `${value.slice(0, 16)}…`
          : value
      return `${key}=${formatValue(shown)}`
    })
  return [time, `#${record.seq}`, record.type, ...fields].join(' ')
}

/** One line for a verification report (verify.ts), as `mesh audit --verify` prints it. */
export function describeAuditReport(report: AuditVerifyReport): string {
  const range =
    report.firstSeq === null
      ? 'no records'
      : `${report.records} records, seq ${report.firstSeq}..${report.lastSeq}`
  const rotated = report.rotatedOut ? `; older records rotated out before seq ${report.firstSeq}` : ''
  if (report.status === 'ok') return `audit log ok: ${range}${rotated}`
  if (report.status === 'torn-tail') {
    const torn = report.torn
    return (
      `audit log ok up to a torn last record (a write cut short by a crash, not tampering): ${range}${rotated}; ` +
      `${torn?.bytes} bytes at ${torn?.segment} offset ${torn?.offset}`
    )
  }
  const b = report.broken
  const expected = b?.expectedSeq === null || b === undefined ? '' : `, expected ${b.expectedSeq}`
  return (
    `audit log broken at record ${b?.index} (seq ${b?.seq ?? '?'}${expected}) in ${b?.segment} ` +
    `offset ${b?.offset}: ${b?.reason}: ${b?.detail}; ${range} verified before it${rotated}`
  )
}
