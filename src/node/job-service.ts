/**
 * Jobs as the operator sees them: `mesh jobs`, `mesh jobs show ID`, `mesh jobs wait ID`. Local records
 * come from the job store (jobs.ts); a job this node did not issue is looked up in the mesh with a
 * signed `job-lookup` request (job-lookup.ts), and whatever comes back is verified before it is shown.
 * Also the handler of the built-in `job-lookup` action that answers other nodes' lookups.
 */
import type { CertificateVerifier } from '../ca/types.js'
import type { ExecResult } from '../gossip/reply-collector.js'
import { decodeRequest } from '../gossip/request.js'
import type { MemberView } from '../membership/view.js'
import { expectedNodes } from '../membership/view.js'
import type { ActionHandler } from './actions/index.js'
import type { Clock } from './clock.js'
import type { ExecOptions } from './exec.js'
import {
  assembleJob,
  decodeLookupAnswer,
  encodeLookupAnswer,
  JOB_ID_PATTERN,
  JOB_LOOKUP_ACTION,
  type JobView,
} from './job-lookup.js'
import type { JobStore, JobSummary } from './jobs.js'

/** How long a lookup waits for answers by default. */
export const JOB_LOOKUP_TIMEOUT_MS = 5_000
/** How often `wait` asks the mesh again for a job issued elsewhere. */
export const JOB_WAIT_POLL_MS = 2_000

/** A job's results in the `mesh exec --json` shape, plus what is known about the job. */
export interface JobResult extends ExecResult {
  readonly job: string
  readonly operator: string
  readonly args: readonly string[]
  readonly requests: JobView['requests']
  /** `local`: this node issued it and holds what it collected; `mesh`: assembled from lookups. */
  readonly source: 'local' | 'mesh'
  /**
   * Where `expected` comes from: `requester` (this node issued it), `names` (the waves named their
   * nodes), `membership` (the job's filter evaluated against the members known now: an estimate).
   */
  readonly expectedFrom: 'requester' | 'names' | 'membership'
  /** Nodes that answered the lookup (mesh source). */
  readonly answered?: number
  /** Pieces that failed verification and were dropped. */
  readonly refused: number
  readonly running: boolean
}

/** What the service needs. */
export interface JobServiceComponents {
  readonly store: JobStore
  readonly exec: (options: ExecOptions) => Promise<ExecResult>
  readonly verifier: CertificateVerifier
  readonly members: () => readonly MemberView[]
  readonly ownName: () => string
  readonly clock: Clock
}

/** The service. */
export interface JobService {
  /** Newest first, at most `limit` (default 100). */
  list(limit?: number): JobSummary[]
  /**
   * The job's verified results; undefined when neither this node nor any node that answered knows it.
   * `mesh: true` asks the mesh even for a job issued here (what the nodes stored, not what was collected).
   */
  show(
    job: string,
    options?: { timeoutMs?: number; signal?: AbortSignal; mesh?: boolean },
  ): Promise<JobResult | undefined>
  /** Waits until every expected node answered (or `timeoutMs`), then shows it. */
  wait(job: string, timeoutMs: number, signal?: AbortSignal): Promise<JobResult | undefined>
  /** The built-in `job-lookup` action's handler. */
  readonly lookupHandler: ActionHandler
}

/** The filters of the requests among `bytes` that verified (ids in `ids`), for the membership estimate. */
function filtersOf(bytes: readonly Uint8Array[], ids: ReadonlySet<string>) {
  const out: ReturnType<typeof decodeRequest>['filter'][] = []
  for (const b of bytes) {
    try {
      const request = decodeRequest(b)
      if (ids.has(request.idHex)) out.push(request.filter)
    } catch {
      // Unverifiable pieces were already dropped by assembleJob; nothing to estimate from.
    }
  }
  return out
}

/** Creates the job service. */
export function createJobService(components: JobServiceComponents): JobService {
  const { store, verifier, clock } = components

  const result = (
    view: JobView,
    summary: JobSummary | undefined,
    waves: Readonly<Record<string, readonly string[]>>,
    source: 'local' | 'mesh',
    requestBytes: readonly Uint8Array[],
    answered?: number,
  ): JobResult => {
    let expected: string[]
    let expectedFrom: JobResult['expectedFrom']
    if (source === 'local' && Object.keys(waves).length > 0) {
      expected = [...new Set(Object.values(waves).flat())].sort()
      expectedFrom = 'requester'
    } else if (view.requests.every(r => r.names !== undefined)) {
      expected = [...new Set(view.requests.flatMap(r => r.names ?? []))].sort()
      expectedFrom = 'names'
    } else {
      const members = components.members()
      expected = [
        ...new Set(
          filtersOf(requestBytes, new Set(view.requests.map(r => r.id))).flatMap(f =>
            expectedNodes(members, f),
          ),
        ),
      ]
      for (const r of view.replies) if (!expected.includes(r.node)) expected.push(r.node)
      expected.sort()
      expectedFrom = 'membership'
    }
    const expectedSet = new Set(expected)
    const answeredNodes = new Set(view.replies.map(r => r.node))
    const replies = view.replies.map(r => ({ ...r, expected: expectedSet.has(r.node) }))
    return {
      id: view.job,
      job: view.job,
      action: view.action,
      args: view.args,
      operator: view.operator,
      requests: view.requests,
      expected,
      replies,
      missing: expected.filter(n => !answeredNodes.has(n)),
      acked: [],
      unexpected: replies.filter(r => !r.expected).map(r => r.node),
      source,
      expectedFrom,
      ...(answered === undefined ? {} : { answered }),
      refused: view.refused,
      running: summary?.running ?? false,
    }
  }

  const local = async (job: string) => {
    const detail = await store.get(job)
    if (detail === undefined) return undefined
    return { detail, view: assembleJob(job, detail, verifier, clock.nowMs()) }
  }

  const show: JobService['show'] = async (job, options = {}) => {
    const own = await local(job)
    if (own?.view !== undefined && own.detail.summary.issuedHere && options.mesh !== true) {
      return result(own.view, own.detail.summary, own.detail.expected, 'local', own.detail.requests)
    }
    const lookup = await components.exec({
      action: JOB_LOOKUP_ACTION,
      args: [job],
      filter: {},
      timeoutMs: options.timeoutMs ?? JOB_LOOKUP_TIMEOUT_MS,
      ...(options.signal === undefined ? {} : { signal: options.signal }),
    })
    const requests: Uint8Array[] = [...(own?.detail.requests ?? [])]
    const replies: Uint8Array[] = [...(own?.detail.replies ?? [])]
    let answered = 0
    for (const done of lookup.replies) {
      if (done.status !== 'ok') continue
      answered += 1
      const answer = decodeLookupAnswer(done.output)
      if (answer === undefined) continue
      requests.push(...answer.requests)
      replies.push(...answer.replies)
    }
    const view = assembleJob(job, { requests, replies }, verifier, clock.nowMs())
    if (view === undefined) return undefined
    return result(view, own?.detail.summary, {}, 'mesh', requests, answered)
  }

  return {
    list: limit => store.list(limit),
    show,
    async wait(job, timeoutMs, signal) {
      const deadlineMs = clock.monotonicMs() + timeoutMs
      const left = () => Math.max(0, deadlineMs - clock.monotonicMs())
      if (store.summary(job)?.issuedHere === true) {
        await store.settled(job, left())
        return show(job)
      }
      let last: JobResult | undefined
      // Bounded: one lookup per poll until the deadline.
      for (let round = 0; round < 10_000; round++) {
        last = await show(job, { timeoutMs: Math.max(500, Math.min(JOB_LOOKUP_TIMEOUT_MS, left())), signal })
        if ((last !== undefined && last.missing.length === 0) || left() <= 0 || signal?.aborted) return last
        await new Promise<void>(resolve => {
          const timer = clock.setTimer(resolve, Math.min(JOB_WAIT_POLL_MS, left()), { keepAlive: true })
          signal?.addEventListener('abort', () => {
            timer.cancel()
            resolve()
          })
        })
        if (left() <= 0) return last
      }
      return last
    },
    async lookupHandler(context) {
      const job = context.args[0] ?? ''
      if (context.args.length !== 1 || !JOB_ID_PATTERN.test(job)) {
        return { exitCode: 2, output: 'usage: job-lookup JOB-ID (32 lower-case hex digits)\n' }
      }
      return { exitCode: 0, output: encodeLookupAnswer(await store.get(job), components.ownName()) }
    },
  }
}
