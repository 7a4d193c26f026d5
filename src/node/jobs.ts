/**
 * The job store: every request this node ran (or denied, or had no action for) with its own signed
 * replies, and every exec issued here with the signed replies it collected. Bounded by count, age
 * and bytes; kept in a {@link JobLog} (the agent's is a file in the home, jobs.log) so results outlive
 * the requester and a restart, with no central store: another node asks for a job it never saw with a
 * `job-lookup` request (lookup.ts) and each node answers with what it stored, signed by whoever made it.
 *
 * Memory holds an index only (per job: action, operator, times, counts, and the log handles of its
 * records); request and reply bytes are read back from the log when a job is shown or looked up.
 *
 * Records (deterministic CBOR, one per log entry, not signed: what they carry is signed already):
 * - `{ t: 'q', at, req }`: a request's signed bytes (the first time this node stores that request);
 * - `{ t: 'r', at, reply }`: a signed reply — this node's own done, or one collected late;
 * - `{ t: 'c', at, id, expected, replies }`: what an exec issued here collected: the request id, the
 *   expected names, and every signed done received before it finished.
 * A record that does not decode is skipped at load and counted (a torn tail is the log's business).
 */
import { decodeCertificate } from '../ca/certificate.js'
import { type CollectedReply, type ExecResult, outcomeCounts } from '../gossip/reply-collector.js'
import { type DecodedRequest, decodeRequest } from '../gossip/request.js'
import { type CborValue, decodeCbor, encodeCbor, isRecord } from '../wire/cbor.js'
import { openEnvelope } from '../wire/envelope.js'
import type { Clock } from './clock.js'
import type { NodeEvent } from './events.js'
import { JOB_LOOKUP_ACTION } from './job-lookup.js'
import type { Logger } from './log.js'
import { requestIdOfReply } from './replies.js'

/** Default most jobs kept. */
export const JOBS_MAX = 10_000
/** Default longest a job is kept, ms (7 days). */
export const JOB_AGE_MS_MAX = 7 * 24 * 3_600_000
/** Default most bytes of records kept (live ones; the log may hold up to twice this before compaction). */
export const JOB_BYTES_MAX = 64 * 1024 * 1024
/** Largest record accepted from the log. */
export const JOB_RECORD_BYTES_MAX = 4 * 1024 * 1024
/** Most record bytes waiting to be written; beyond, records are dropped (counted). */
export const JOB_WRITE_QUEUE_BYTES_MAX = 8 * 1024 * 1024
/** Most requests (waves) and collected sets kept per job. */
export const JOB_REQUESTS_MAX = 1024

/**
 * Where records live. Handles are opaque numbers the log gives out; {@link JobLog.compact} replaces
 * the log with the records of `keep` (in that order) and returns their new handles.
 */
export interface JobLog {
  /** Calls `visit` for every whole record, in order; called once, at start. */
  load(visit: (handle: number, bytes: Uint8Array) => void): Promise<void>
  /** Appends records durably (one write, one fsync for the lot); resolves with their handles. */
  append(records: readonly Uint8Array[]): Promise<number[]>
  /** The record at `handle`, or undefined when it is gone. */
  read(handle: number): Promise<Uint8Array | undefined>
  /** Rewrites the log with only `keep` (atomically); resolves with their new handles, same order. */
  compact(keep: readonly number[]): Promise<number[]>
  /** Bytes the log holds now (live and dead records). */
  size(): number
  close?(): Promise<void>
}

/** A log in memory (embedders without a store, tests): handles are positions. */
export function createMemoryJobLog(): JobLog {
  let records: (Uint8Array | undefined)[] = []
  let bytes = 0
  return {
    async load() {},
    async append(list) {
      const handles = list.map(r => {
        records.push(r)
        bytes += r.byteLength
        return records.length - 1
      })
      return handles
    },
    async read(handle) {
      return records[handle]
    },
    async compact(keep) {
      const next = keep.map(h => records[h]).filter((r): r is Uint8Array => r !== undefined)
      records = next
      bytes = next.reduce((n, r) => n + r.byteLength, 0)
      return next.map((_, i) => i)
    },
    size: () => bytes,
  }
}

/** One line of `mesh jobs`. */
export interface JobSummary {
  readonly job: string
  readonly action: string
  readonly args: readonly string[]
  readonly operator: string
  /** The filter as a short text (`zone=web node=a*`), for display. */
  readonly filter: string
  readonly atMs: number
  /** Issued from this node (then the counts are what it collected). */
  readonly issuedHere: boolean
  /** Still collecting replies here. */
  readonly running: boolean
  /** Requests (waves) of the job seen here. */
  readonly requests: number
  readonly expected: number
  readonly ok: number
  readonly failed: number
  readonly missing: number
  /** This node's own outcome when it ran (or refused) a request of the job. */
  readonly ownStatus?: string
}

/** Everything stored about one job. */
export interface JobDetail {
  readonly summary: JobSummary
  /** Signed request bytes, one per wave seen. */
  readonly requests: readonly Uint8Array[]
  /** Signed reply bytes: this node's own dones and every done collected (unverified here: verify before use). */
  readonly replies: readonly Uint8Array[]
  /** For jobs issued here: per request id, the expected names. */
  readonly expected: Readonly<Record<string, readonly string[]>>
}

/** Counters. */
export interface JobStoreCounters {
  readonly jobs: number
  readonly records: number
  readonly liveBytes: number
  readonly logBytes: number
  readonly evicted: number
  readonly dropped: number
  readonly writeFailures: number
  readonly skipped: number
  readonly compactions: number
}

/** What the store needs. */
export interface JobStoreComponents {
  readonly log?: JobLog
  readonly clock: Clock
  readonly logger: Logger
}

/** Settings. */
export interface JobStoreInit {
  readonly jobsMax?: number
  readonly ageMsMax?: number
  readonly bytesMax?: number
}

/** The job store. */
export interface JobStore {
  start(): Promise<void>
  /** Waits for pending writes, then closes the log. */
  stop(): Promise<void>
  /** Feeds the node's events (requests this node ran, its replies). */
  observe(event: NodeEvent): void
  /** An exec issued here published `request`, expecting `expected`. */
  issued(request: DecodedRequest, expected: readonly string[]): void
  /** That exec finished: `dones` are the signed done bytes it collected. */
  collected(request: DecodedRequest, result: ExecResult, dones: readonly Uint8Array[]): void
  /** A done to a request issued here that arrived after its exec had finished. */
  late(requestIdHex: string, done: Uint8Array): void
  /** Jobs, newest first, at most `limit`. */
  list(limit?: number): JobSummary[]
  /** One job's line, or undefined when it is not kept here. */
  summary(job: string): JobSummary | undefined
  /** Everything stored about `job` (hex), or undefined. */
  get(job: string): Promise<JobDetail | undefined>
  /** Resolves when the job issued here stops running (or at once), or at `timeoutMs`. */
  settled(job: string, timeoutMs: number): Promise<void>
  counters(): JobStoreCounters
}

interface Ref {
  handle: number
  bytes: number
}

interface JobEntry {
  readonly job: string
  action: string
  args: readonly string[]
  operator: string
  filter: string
  atMs: number
  issuedHere: boolean
  running: number
  /** Request ids seen → the handle of their bytes. */
  readonly requests: Map<string, Ref | undefined>
  /** Handles of reply and collected records. */
  readonly records: Ref[]
  /** Per request issued here: expected names and, once finished, counts. */
  readonly waves: Map<string, { expected: readonly string[]; ok: number; failed: number; missing: number }>
  ownStatus?: string
  bytes: number
}

/**
 * Text form of a filter, for display only: `zone=web node=a*`, `(all)` for the empty filter. Lists of
 * more than 3 entries are cut (`names=a,b,c,…(40)`) unless `full` (what an approver approves must be
 * shown whole).
 */
export function filterText(
  filter: DecodedRequest['body']['filter'],
  options: { full?: boolean } = {},
): string {
  const parts: string[] = []
  const f = filter as Record<string, unknown>
  for (const key of Object.keys(f).sort()) {
    const value = f[key]
    if (value === undefined) continue
    if (key === 'once') {
      if (value === true) parts.push('once')
    } else if (Array.isArray(value)) {
      const items = value.map(v => (typeof v === 'string' ? v : `${v.key}=${v.value}`))
      parts.push(
        `${key}=${items.length > 3 && options.full !== true ? `${items.slice(0, 3).join(',')},…(${items.length})` : items.join(',')}`,
      )
    } else parts.push(`${key}=${String(value)}`)
  }
  return parts.length === 0 ? '(all)' : parts.join(' ')
}

/** Creates a job store. */
export function createJobStore(components: JobStoreComponents, init: JobStoreInit = {}): JobStore {
  const log = components.log ?? createMemoryJobLog()
  const { clock, logger } = components
  const jobsMax = init.jobsMax ?? JOBS_MAX
  const ageMsMax = init.ageMsMax ?? JOB_AGE_MS_MAX
  const bytesMax = init.bytesMax ?? JOB_BYTES_MAX
  /** Insertion order is age order (a job is first seen once). */
  const jobs = new Map<string, JobEntry>()
  /** Request id → job, for replies. */
  const jobOfRequest = new Map<string, string>()
  const waiters = new Map<string, Set<() => void>>()
  const counts = { evicted: 0, dropped: 0, writeFailures: 0, skipped: 0, compactions: 0, records: 0 }
  let liveBytes = 0
  let queue: { bytes: Uint8Array; entry: JobEntry; requestId?: string }[] = []
  let queuedBytes = 0
  let writing: Promise<void> = Promise.resolve()
  let scheduled = false
  let started = false

  const entryOf = (request: DecodedRequest, atMs: number): JobEntry => {
    let entry = jobs.get(request.jobHex)
    if (entry === undefined) {
      entry = {
        job: request.jobHex,
        action: request.body.action,
        args: request.body.args,
        operator: operatorName(request),
        filter: filterText(request.body.filter),
        atMs,
        issuedHere: false,
        running: 0,
        requests: new Map(),
        records: [],
        waves: new Map(),
        bytes: 0,
      }
      jobs.set(request.jobHex, entry)
      evict(atMs)
    }
    return entry
  }

  const enqueue = (entry: JobEntry, record: CborValue, requestId?: string): void => {
    const bytes = encodeCbor(record)
    if (queuedBytes + bytes.byteLength > JOB_WRITE_QUEUE_BYTES_MAX) {
      counts.dropped += 1
      return
    }
    queue.push({ bytes, entry, ...(requestId === undefined ? {} : { requestId }) })
    queuedBytes += bytes.byteLength
    if (!scheduled) {
      scheduled = true
      queueMicrotask(flush)
    }
  }

  const flush = (): void => {
    scheduled = false
    if (queue.length === 0) return
    const batch = queue
    queue = []
    queuedBytes = 0
    writing = writing.then(async () => {
      try {
        const handles = await log.append(batch.map(b => b.bytes))
        batch.forEach((item, i) => {
          const ref = { handle: handles[i] as number, bytes: item.bytes.byteLength }
          if (jobs.get(item.entry.job) !== item.entry) return // evicted meanwhile
          counts.records += 1
          item.entry.bytes += ref.bytes
          liveBytes += ref.bytes
          if (item.requestId !== undefined) item.entry.requests.set(item.requestId, ref)
          else item.entry.records.push(ref)
        })
      } catch (err) {
        counts.writeFailures += 1
        if (counts.writeFailures <= 3 || counts.writeFailures % 100 === 0)
          logger.warn({ err: String(err), failures: counts.writeFailures }, 'cannot write the job store')
      }
      evict(clock.nowMs())
      await maybeCompact()
    })
  }

  const drop = (entry: JobEntry): void => {
    jobs.delete(entry.job)
    for (const id of entry.requests.keys()) jobOfRequest.delete(id)
    liveBytes -= entry.bytes
    counts.evicted += 1
  }

  const evict = (nowMs: number): void => {
    for (const entry of jobs.values()) {
      const old = nowMs - entry.atMs > ageMsMax
      if (!old && jobs.size <= jobsMax && liveBytes <= bytesMax) break
      if (entry.running > 0 && !old && jobs.size <= jobsMax * 2) break
      drop(entry)
    }
  }

  const maybeCompact = async (): Promise<void> => {
    if (log.size() <= 2 * liveBytes + 1024 * 1024) return
    // The refs are the index's own objects: giving them new handles updates every entry in place.
    const refs: Ref[] = []
    for (const entry of jobs.values()) {
      for (const ref of entry.requests.values()) if (ref !== undefined) refs.push(ref)
      refs.push(...entry.records)
    }
    try {
      const handles = await log.compact(refs.map(r => r.handle))
      refs.forEach((ref, i) => {
        ref.handle = handles[i] as number
      })
      counts.compactions += 1
    } catch (err) {
      counts.writeFailures += 1
      logger.warn({ err: String(err) }, 'cannot compact the job store')
    }
  }

  const noteRequest = (entry: JobEntry, request: DecodedRequest, atMs: number): void => {
    jobOfRequest.set(request.idHex, entry.job)
    if (entry.requests.has(request.idHex) || entry.requests.size >= JOB_REQUESTS_MAX) return
    entry.requests.set(request.idHex, undefined)
    enqueue(entry, { t: 'q', at: atMs, req: request.bytes }, request.idHex)
  }

  const wake = (job: string): void => {
    const set = waiters.get(job)
    if (set === undefined) return
    waiters.delete(job)
    for (const w of set) w()
  }

  /** Rebuilds the index from one record at load. */
  const index = (handle: number, bytes: Uint8Array): void => {
    let record: unknown
    try {
      record = decodeCbor(bytes, JOB_RECORD_BYTES_MAX)
    } catch {
      counts.skipped += 1
      return
    }
    if (!isRecord(record) || typeof record.at !== 'number') {
      counts.skipped += 1
      return
    }
    const atMs = record.at
    const ref = { handle, bytes: bytes.byteLength }
    if (record.t === 'q' && record.req instanceof Uint8Array) {
      let request: DecodedRequest
      try {
        request = decodeRequest(record.req)
      } catch {
        counts.skipped += 1
        return
      }
      const entry = entryOf(request, atMs)
      jobOfRequest.set(request.idHex, entry.job)
      entry.requests.set(request.idHex, ref)
    } else if (record.t === 'r' && record.reply instanceof Uint8Array) {
      const id = requestIdOfReply(record.reply)
      const entry = jobs.get(jobOfRequest.get(id ?? '') ?? '')
      if (entry === undefined) {
        counts.skipped += 1
        return
      }
      entry.records.push(ref)
      const status = statusOf(record.reply)
      if (status !== undefined && record.own === true) entry.ownStatus = status
    } else if (record.t === 'c' && typeof record.id === 'string' && Array.isArray(record.expected)) {
      const entry = jobs.get(jobOfRequest.get(record.id) ?? '')
      if (entry === undefined) {
        counts.skipped += 1
        return
      }
      entry.issuedHere = true
      entry.records.push(ref)
      entry.waves.set(record.id, {
        expected: record.expected.filter((n): n is string => typeof n === 'string'),
        ok: typeof record.ok === 'number' ? record.ok : 0,
        failed: typeof record.failed === 'number' ? record.failed : 0,
        missing: typeof record.missing === 'number' ? record.missing : 0,
      })
    } else {
      counts.skipped += 1
      return
    }
    counts.records += 1
  }

  const summary = (entry: JobEntry): JobSummary => {
    let expected = 0
    let ok = 0
    let failed = 0
    let missing = 0
    for (const wave of entry.waves.values()) {
      expected += wave.expected.length
      ok += wave.ok
      failed += wave.failed
      missing += wave.missing
    }
    return {
      job: entry.job,
      action: entry.action,
      args: entry.args,
      operator: entry.operator,
      filter: entry.filter,
      atMs: entry.atMs,
      issuedHere: entry.issuedHere,
      running: entry.running > 0,
      requests: entry.requests.size,
      expected,
      ok,
      failed,
      missing,
      ...(entry.ownStatus === undefined ? {} : { ownStatus: entry.ownStatus }),
    }
  }

  return {
    async start() {
      if (started) return
      started = true
      await log.load((handle, bytes) => {
        index(handle, bytes)
      })
      // Sizes come from the index: a record's bytes count against the entry that holds it.
      liveBytes = 0
      for (const entry of jobs.values()) {
        entry.bytes =
          [...entry.requests.values()].reduce((n, r) => n + (r?.bytes ?? 0), 0) +
          entry.records.reduce((n, r) => n + r.bytes, 0)
        liveBytes += entry.bytes
      }
      evict(clock.nowMs())
    },
    async stop() {
      flush()
      await writing
      await log.close?.()
    },
    observe(event) {
      if (event.type === 'request-accepted') {
        // Lookups are about jobs, not jobs: storing them would copy every answer into every store.
        if (event.verdict === 'not-for-us' || event.request.body.action === JOB_LOOKUP_ACTION) return
        noteRequest(entryOf(event.request, event.atMs), event.request, event.atMs)
      } else if (event.type === 'reply-sent' && event.kind === 'done' && event.done !== undefined) {
        const job = jobOfRequest.get(event.request.idHex)
        const entry = job === undefined ? undefined : jobs.get(job)
        if (entry === undefined) return
        entry.ownStatus = event.done.status
        enqueue(entry, { t: 'r', at: event.atMs, own: true, reply: event.bytes })
      }
    },
    issued(request, expected) {
      const atMs = clock.nowMs()
      const entry = entryOf(request, atMs)
      entry.issuedHere = true
      entry.running += 1
      entry.waves.set(request.idHex, {
        expected: [...expected].sort(),
        ok: 0,
        failed: 0,
        missing: expected.length,
      })
      noteRequest(entry, request, atMs)
    },
    collected(request, result, dones) {
      const entry = jobs.get(request.jobHex)
      if (entry === undefined) return
      entry.running = Math.max(0, entry.running - 1)
      const { ok, failed, missing } = outcomeCounts(result)
      const wave = { expected: result.expected, ok, failed, missing }
      entry.waves.set(request.idHex, wave)
      enqueue(entry, {
        t: 'c',
        at: clock.nowMs(),
        id: request.idHex,
        expected: [...result.expected],
        ok: wave.ok,
        failed: wave.failed,
        missing: wave.missing,
        replies: [...dones],
      })
      if (entry.running === 0) wake(entry.job)
    },
    late(requestIdHex, done) {
      const job = jobOfRequest.get(requestIdHex)
      const entry = job === undefined ? undefined : jobs.get(job)
      if (entry === undefined) return
      enqueue(entry, { t: 'r', at: clock.nowMs(), reply: done })
    },
    list(limit = 100) {
      const out: JobSummary[] = []
      for (const entry of [...jobs.values()].reverse()) {
        if (out.length >= limit) break
        out.push(summary(entry))
      }
      return out
    },
    summary(job) {
      const entry = jobs.get(job)
      return entry === undefined ? undefined : summary(entry)
    },
    async get(job) {
      const entry = jobs.get(job)
      if (entry === undefined) return undefined
      flush()
      // Read inside the write chain: a compaction queued behind us must not move the handles mid-read.
      const read = writing.then(async () => {
        const requests: Uint8Array[] = []
        for (const ref of entry.requests.values()) {
          const bytes = ref === undefined ? undefined : await log.read(ref.handle)
          const record = bytes === undefined ? undefined : safeDecode(bytes)
          if (record !== undefined && record.req instanceof Uint8Array) requests.push(record.req)
        }
        const replies: Uint8Array[] = []
        for (const ref of entry.records) {
          const bytes = await log.read(ref.handle)
          const record = bytes === undefined ? undefined : safeDecode(bytes)
          if (record === undefined) continue
          if (record.t === 'r' && record.reply instanceof Uint8Array) replies.push(record.reply)
          if (record.t === 'c' && Array.isArray(record.replies)) {
            for (const r of record.replies) if (r instanceof Uint8Array) replies.push(r)
          }
        }
        return { requests, replies }
      })
      writing = read.then(
        () => {},
        () => {},
      )
      const { requests, replies } = await read
      const expected: Record<string, readonly string[]> = {}
      for (const [id, wave] of entry.waves) expected[id] = wave.expected
      return { summary: summary(entry), requests, replies, expected }
    },
    settled(job, timeoutMs) {
      const entry = jobs.get(job)
      if (entry === undefined || entry.running === 0) return Promise.resolve()
      return new Promise<void>(resolve => {
        const timer = clock.setTimer(done, timeoutMs, { keepAlive: true })
        let set = waiters.get(job)
        if (set === undefined) {
          set = new Set()
          waiters.set(job, set)
        }
        set.add(done)
        function done(): void {
          timer.cancel()
          waiters.get(job)?.delete(done)
          resolve()
        }
      })
    },
    counters: () => ({
      jobs: jobs.size,
      records: counts.records,
      liveBytes,
      logBytes: log.size(),
      evicted: counts.evicted,
      dropped: counts.dropped,
      writeFailures: counts.writeFailures,
      skipped: counts.skipped,
      compactions: counts.compactions,
    }),
  }
}

function safeDecode(bytes: Uint8Array): Record<string, unknown> | undefined {
  try {
    const value = decodeCbor(bytes, JOB_RECORD_BYTES_MAX)
    return isRecord(value) ? value : undefined
  } catch {
    return undefined
  }
}

function operatorName(request: DecodedRequest): string {
  // A record read back has no verified certificate at hand: the name is read from the bytes (display only).
  const decoded = decodeCertificate(request.body.issuer)
  return decoded.ok ? decoded.signed.certificate.name : '?'
}

function statusOf(reply: Uint8Array): string | undefined {
  try {
    const body = openEnvelope(reply, JOB_RECORD_BYTES_MAX).body
    return typeof body.status === 'string' ? body.status : undefined
  } catch {
    return undefined
  }
}

/** The collected replies of a result, as `CollectedReply` rows sorted by node (display helper). */
export function sortedReplies(replies: readonly CollectedReply[]): CollectedReply[] {
  return [...replies].sort((a, b) => (a.node < b.node ? -1 : a.node > b.node ? 1 : 0))
}
