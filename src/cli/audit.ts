/**
 * `mesh audit [--since DURATION] [--json] [--verify] [--dir DIR [--cert FILE]]`: this node's audit log
 * (docs/audit.md), as its agent reads it. `--verify` has the agent check the chain and signatures of
 * every kept segment and name the first broken record; with `--dir` the check runs here, on a copy of
 * an audit directory, without an agent (the key from `--cert`, default the home's node.cert).
 */
import { type AuditRecordView, describeAuditReport, formatAuditLine } from '../audit/format.js'
import type { AuditVerifyReport } from '../audit/verify.js'
import { systemClock } from '../node/clock.js'
import { withAgent } from './agent-client.js'
import { UsageError } from './errors.js'
import { type CliIo, type GlobalOptions, printJson } from './io.js'

/** Options of `mesh audit`. */
export interface AuditOptions {
  /** Only records of the last this many ms. */
  readonly since?: number
  readonly verify?: boolean
  /** A copy of an audit directory to verify (with --verify). */
  readonly dir?: string
  /** The certificate of the node whose log `dir` is (default: --home's node.cert). */
  readonly cert?: string
}

interface AuditTail {
  records: AuditRecordView[]
  truncated: boolean
  counters?: { dropped: number; writeFailures: number; state: string }
}

/** Exit code of a verification: 0 for a whole chain (a torn last record included: it is no break), 1 broken. */
export function auditVerifyExitCode(report: AuditVerifyReport): number {
  return report.status === 'broken' ? 1 : 0
}

/** Prints a verification report: one line, or the report as JSON. */
export function printAuditReport(io: CliIo, globals: GlobalOptions, report: AuditVerifyReport): number {
  if (globals.json) printJson(io, report)
  else io.stdout.write(`${describeAuditReport(report)}\n`)
  return auditVerifyExitCode(report)
}

export async function audit(io: CliIo, globals: GlobalOptions, options: AuditOptions): Promise<number> {
  if ((options.dir !== undefined || options.cert !== undefined) && options.verify !== true)
    throw new UsageError("'--dir' and '--cert' go with '--verify'")
  if (options.verify === true && options.since !== undefined)
    throw new UsageError("'--since' does not go with '--verify': verification checks the whole log")
  if (options.verify === true) {
    if (options.dir !== undefined)
      return (await import('./node-commands.js')).auditVerifyCopy(io, globals, options.dir, options.cert)
    const { report } = (await withAgent(globals, c =>
      c.call('audit.verify', {}, { timeoutMs: 600_000 }),
    )) as {
      report: AuditVerifyReport
    }
    return printAuditReport(io, globals, report)
  }
  const sinceMs = options.since === undefined ? 0 : systemClock.nowMs() - options.since
  const tail = (await withAgent(globals, c =>
    c.call('audit.tail', { sinceMs }, { timeoutMs: 60_000 }),
  )) as AuditTail
  if (globals.json) {
    printJson(io, tail)
    return 0
  }
  if (tail.truncated) io.stderr.write('mesh: older records left out; narrow the range with --since\n')
  if (tail.records.length === 0) io.stdout.write('no audit records\n')
  for (const record of tail.records) io.stdout.write(`${formatAuditLine(record)}\n`)
  const dropped = tail.counters?.dropped ?? 0
  if (dropped > 0)
    io.stderr.write(`mesh: ${dropped} audit records were dropped since the agent started (see its log)\n`)
  return 0
}
