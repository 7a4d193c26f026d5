/** `mesh jobs`, `mesh jobs show ID`, `mesh jobs wait ID`: jobs this node knows, and any job's results. */

import { formatDurationMs } from '../duration.js'
import type { JobResult } from '../node/job-service.js'
import type { JobSummary } from '../node/jobs.js'
import { table, withAgent } from './agent-client.js'
import { UsageError } from './errors.js'
import { resultTable } from './exec.js'
import { type CliIo, type GlobalOptions, printJson } from './io.js'

const JOB_ID = /^[0-9a-f]{32}$/
/** Slack over a wait's own timeout for the control call. */
const CALL_SLACK_MS = 15_000

function checkId(id: string): void {
  if (!JOB_ID.test(id))
    throw new UsageError(`'${id}' is not a job id (32 lower-case hex digits, as 'mesh jobs' lists them)`)
}

export async function jobsList(io: CliIo, globals: GlobalOptions): Promise<number> {
  const { jobs } = (await withAgent(globals, c =>
    c.call('jobs.list', { limit: 100 }, { timeoutMs: 10_000 }),
  )) as {
    jobs: JobSummary[]
  }
  if (globals.json) {
    printJson(io, jobs)
    return 0
  }
  if (jobs.length === 0) {
    io.stdout.write('no jobs recorded on this node yet\n')
    return 0
  }
  io.stdout.write(
    `${table([
      ['JOB', 'TIME', 'ACTION', 'OPERATOR', 'FILTER', 'EXPECTED', 'OK', 'FAILED', 'MISSING'],
      ...jobs.map(j => [
        j.job,
        new Date(j.atMs).toISOString().replace('T', ' ').slice(0, 19),
        [j.action, ...j.args].join(' ').slice(0, 40),
        j.operator,
        j.filter.slice(0, 40),
        // Jobs this node did not issue: its own outcome stands in for the counts it cannot know.
        j.issuedHere ? String(j.expected) : '-',
        j.issuedHere ? String(j.ok) : j.ownStatus === 'ok' ? 'this node' : '-',
        j.issuedHere
          ? String(j.failed)
          : j.ownStatus !== undefined && j.ownStatus !== 'ok'
            ? `this node (${j.ownStatus})`
            : '-',
        j.issuedHere ? (j.running ? `${j.missing} (running)` : String(j.missing)) : '-',
      ]),
    ])}\n`,
  )
  return 0
}

function print(io: CliIo, globals: GlobalOptions, result: JobResult): number {
  const failed = result.replies.filter(r => r.expected && r.status !== 'ok')
  if (globals.json) {
    printJson(io, result)
  } else {
    const source =
      result.source === 'local'
        ? 'issued from this node'
        : `from the mesh: ${result.answered ?? 0} nodes answered the lookup`
    const estimate =
      result.expectedFrom === 'membership'
        ? ' (expected set estimated from the filter and the members known now)'
        : ''
    const approvers = [...new Set(result.requests.flatMap(r => r.approvers))]
    const approved = approvers.length > 0 ? `, approved by ${approvers.join(', ')}` : ''
    io.stdout.write(
      `job ${result.job}: ${[result.action, ...result.args].join(' ')} by ${result.operator}${approved}, ${result.requests.length} request(s), ${source}${estimate}\n`,
    )
    io.stdout.write(resultTable({ ...result, notRun: [] } as never, 'all'))
    const refused =
      result.refused > 0 ? `, ${result.refused} pieces failed verification and were dropped` : ''
    io.stdout.write(
      `${result.replies.length - failed.length} ok, ${failed.length} failed, ${result.missing.length} missing of ${result.expected.length}${result.running ? ' (still running)' : ''}${refused}\n`,
    )
  }
  return result.expected.length > 0 && failed.length === 0 && result.missing.length === 0 ? 0 : 1
}

export async function jobsShow(
  io: CliIo,
  globals: GlobalOptions,
  id: string,
  flags: { mesh?: boolean } = {},
): Promise<number> {
  checkId(id)
  const result = (await withAgent(globals, c =>
    c.call(
      'jobs.show',
      { id, ...(flags.mesh === true ? { mesh: true } : {}) },
      { timeoutMs: 30_000, ...(io.signal ? { signal: io.signal } : {}) },
    ),
  )) as JobResult
  return print(io, globals, result)
}

export async function jobsWait(
  io: CliIo,
  globals: GlobalOptions,
  id: string,
  timeoutMs: number,
): Promise<number> {
  checkId(id)
  if (timeoutMs <= 0 || timeoutMs > 3_600_000)
    throw new UsageError(`--timeout ${formatDurationMs(timeoutMs)} is out of range (1 ms to 1 h)`)
  const result = (await withAgent(globals, c =>
    c.call(
      'jobs.wait',
      { id, timeoutMs },
      { timeoutMs: timeoutMs + CALL_SLACK_MS, ...(io.signal ? { signal: io.signal } : {}) },
    ),
  )) as JobResult
  return print(io, globals, result)
}
