/**
 * The node's audit log: every event it sees that an auditor asks about (events.ts) becomes a record,
 * numbered, linked to the one before and signed with the node key (src/audit/record.ts), and handed to
 * the store (NodeStore.appendAudit) to be made durable. What is logged (docs/audit.md has each field):
 *
 * | event                                | record         | fields                                                  |
 * | ------------------------------------ | -------------- | ------------------------------------------------------- |
 * | agent start                          | `start`        | name, serial, peer, version, tornBytes                  |
 * | request refused in validation        | `refused`      | code, detail, upstream; past 20 per code in 10 s: one with `suppressed` |
 * | request validated, not for us        | `request`      | verdict, id, action, operator (compact: every node sees every request) |
 * | request validated, for us            | `request`      | + args, code, request digest, job                       |
 * | done sent (ran or not)               | `done`         | id, status, ran, reason; if ran: operator, approvers, action, args, exitCode, durationMs, outputDigest, outputBytes |
 * | peer admitted / refused at hello     | `admitted`, `peer-refused` | peer, name, zone, serial / addr, reason     |
 * | revocation list adopted              | `revocation`   | origin, version, entries, added (≤ 32 listed)           |
 * | CA issuer decision                   | `issuer`       | input, outcome, names, serials, reasons (never a ticket) |
 * | records lost to a full queue         | `dropped`      | count, firstAtMs, lastAtMs                              |
 *
 * Group commit: events only enqueue (they must not block, events.ts); one write at a time is in
 * flight, and everything queued meanwhile is sealed and handed over as the next batch, so under load
 * one fsync covers many records. The queue is bounded ({@link AUDIT_QUEUE_RECORDS_MAX}); an event that
 * finds it full is not sealed but counted, and a `dropped` record says how many went missing once
 * there is room again, so the chain stays whole and the loss is on record. Sealing happens at batch
 * time, never for a record that is then thrown away: a failed append is retried with the same bytes.
 *
 * Measured (bench/audit.mjs, a shared 2-core machine under load): sealing costs 80-125 µs CPU per
 * record, two thirds of it the ed25519 signature; with group commit one fsync covered 126 records and
 * the log sustained about 8,500 records/s (docs/audit.md has the figures).
 */

import { formatAuditLine } from '../audit/format.js'
import type { AuditChainHead, AuditEntry, AuditMap, AuditStoreHead } from '../audit/record.js'
import { AUDIT_EMPTY_HEAD, auditRecordView, openAuditRecord, sealAuditRecord } from '../audit/record.js'
import { decodeCertificate } from '../ca/certificate.js'
import type { CommandResult, IssuerEffect, SigningResult } from '../ca/issuer.js'
import { parseDuration } from '../duration.js'
import { AUDIT_TAIL_ACTION } from '../gossip/authorize.js'
import type { VerifiedRequest } from '../gossip/validate.js'
import { MESH_VERSION } from '../version.js'
import { encodeCbor } from '../wire/cbor.js'
import { hash } from '../wire/hash.js'
import type { ActionHandler, ActionRegistry } from './actions/index.js'
import type { Clock, Timer } from './clock.js'
import type { Signer } from './credentials.js'
import type { EventBus, NodeEvent } from './events.js'
import { createLogLimiter, type Logger } from './log.js'
import type { NodeStore } from './node-types.js'

/** Records waiting to be written, at most; an event that finds the queue full is counted as dropped. */
export const AUDIT_QUEUE_RECORDS_MAX = 4_096
/**
 * Records in one append (one write, one fsync), at most: bounds the time one batch's sealing holds the
 * event loop (128 × ~100 µs ≈ 13 ms on the loaded development machine).
 */
export const AUDIT_BATCH_RECORDS_MAX = 128
/** Wait before a failed append is retried. */
export const AUDIT_RETRY_MS = 1_000
/** Longest text field (details, reasons, addresses), in characters; longer ones are cut with `…`. */
export const AUDIT_TEXT_CHARS_MAX = 256
/** Request arguments kept whole up to this many UTF-8 bytes together; beyond, cut and digested. */
export const AUDIT_ARGS_BYTES_MAX = 1_024
/** Refused requests recorded one by one per refusal code and window; beyond, counted (see createAuditLog). */
export const AUDIT_REFUSALS_PER_WINDOW = 20
/** The window of {@link AUDIT_REFUSALS_PER_WINDOW}. */
export const AUDIT_REFUSAL_WINDOW_MS = 10_000
/** Revoked entries listed in one `revocation` record; the rest are counted in `addedMore`. */
export const AUDIT_REVOCATIONS_LISTED_MAX = 32

/** Counters of the audit log (`mesh status`, `mesh audit`). Monotonic except `queued` and `seq`. */
export interface AuditCounters {
  /** `running` once the chain head is loaded; `failed` when it could not be (nothing is logged then). */
  readonly state: 'created' | 'running' | 'stopped' | 'failed'
  /** Records made durable. */
  readonly written: number
  /** Appends (group commits) done: `written / writes` is the records per fsync. */
  readonly writes: number
  /** Records never written: the queue was full, sealing failed, or they were still queued at stop. */
  readonly dropped: number
  /** Appends that failed (each is retried). */
  readonly writeFailures: number
  /** Records waiting now. */
  readonly queued: number
  /** Seq of the last durable record (0: none). */
  readonly seq: number
}

/** The audit log of one node. */
export interface AuditLog {
  /** Loads the chain head from the store, writes a `start` record and begins writing. Idempotent. */
  start(): Promise<void>
  /**
   * Stops taking events and waits, at most `timeoutMs`, for the queue to be written; what is left is
   * counted as dropped. Idempotent.
   */
  stop(timeoutMs: number): Promise<void>
  /** Resolves when nothing is queued or being written (tests, benchmarks). */
  settled(): Promise<void>
  counters(): AuditCounters
}

/** What the audit log needs. */
export interface AuditLogComponents {
  /** The node key signs; the certificate names the node in `start` records. */
  readonly signer: Signer
  readonly store: Required<Pick<NodeStore, 'appendAudit' | 'loadAuditHead'>>
  readonly events: Pick<EventBus, 'on'>
  readonly clock: Clock
  readonly log: Logger
}

/** Settings (defaults: the constants above). */
export interface AuditLogInit {
  readonly queueRecordsMax?: number
  readonly batchRecordsMax?: number
  readonly retryMs?: number
  readonly refusalsPerWindow?: number
  readonly refusalWindowMs?: number
}

// ---------------------------------------------------------------------------------------------------
// Events to entries (pure).

const encoder = new TextEncoder()

/** `text` cut to {@link AUDIT_TEXT_CHARS_MAX} characters. */
function bounded(text: string): string {
  return text.length > AUDIT_TEXT_CHARS_MAX ? `${text.slice(0, AUDIT_TEXT_CHARS_MAX)}…` : text
}

/** An integer for a record (CBOR records hold no floats); non-finite numbers become 0. */
function integer(n: number): number {
  return Number.isFinite(n) ? Math.round(n) : 0
}

/** The args fields: whole when small, else the leading ones that fit, `argsTruncated` and a digest of all. */
export function argsFields(args: readonly string[]): AuditMap {
  let bytes = 0
  const kept: string[] = []
  for (const arg of args) {
    const size = encoder.encode(arg).byteLength
    if (bytes + size > AUDIT_ARGS_BYTES_MAX) break
    bytes += size
    kept.push(arg)
  }
  if (kept.length === args.length) return { args: kept }
  return { args: kept, argsTruncated: true, argsDigest: hash(encodeCbor([...args])) }
}

function requestFields(request: VerifiedRequest): { id: string; action: string; operator: string } {
  return { id: request.idHex, action: request.body.action, operator: request.issuer.certificate.name }
}

/** The `issuer` record's fields for one decision: what was asked and what the CA answered. */
function issuerFields(event: Extract<NodeEvent, { type: 'issuer-decision' }>): AuditMap {
  const { input } = event
  const asked: AuditMap =
    input.type === 'signing-request'
      ? { origin: input.origin === undefined ? undefined : bounded(input.origin) }
      : input.type === 'sign-pending' || input.type === 'reject-pending'
        ? { id: input.id }
        : input.type === 'reject-all-pending'
          ? { origin: input.origin === undefined ? undefined : bounded(input.origin) }
          : input.type === 'revoke'
            ? { target: bounded(input.target) }
            : input.type === 'issue'
              ? { name: input.name, zone: input.zone, roles: [...input.roles] }
              : { name: input.name, zone: input.zone, roles: [...input.roles], ttlMs: integer(input.ttlMs) }
  const answer = event.answers.find(
    (a): a is Extract<IssuerEffect, { type: 'reply' | 'command-reply' }> =>
      (a.type === 'reply' || a.type === 'command-reply') && a.requestId === input.requestId,
  )
  const outcome: AuditMap = !event.saved
    ? { outcome: 'not-saved' }
    : answer === undefined
      ? { outcome: 'no-answer' }
      : answer.type === 'reply'
        ? signingOutcome(answer.result)
        : commandOutcome(answer.result)
  return { input: input.type, ...asked, ...outcome }
}

/** Name, zone, serial and roles of an issued certificate (empty when it does not decode). */
function certificateFields(bytes: Uint8Array): AuditMap {
  const decoded = decodeCertificate(bytes)
  if (!decoded.ok) return {}
  const c = decoded.signed.certificate
  return { name: c.name, zone: c.zone, serial: c.serial, roles: [...c.roles], peer: c.peerId }
}

function signingOutcome(result: SigningResult): AuditMap {
  if (result.status === 'issued') return { outcome: 'issued', ...certificateFields(result.certificate) }
  if (result.status === 'pending') return { outcome: 'pending', id: result.id }
  return { outcome: 'refused', reason: result.reason, detail: bounded(result.message) }
}

function commandOutcome(result: CommandResult): AuditMap {
  if (!result.ok) return { outcome: 'failed', code: result.code, detail: bounded(result.message) }
  switch (result.command) {
    case 'sign':
      return { outcome: 'signed', id: result.id, ...certificateFields(result.certificate) }
    case 'reject':
      return { outcome: 'rejected', id: result.id, name: result.name }
    case 'reject-all':
      return { outcome: 'rejected', rejected: result.rejected }
    case 'revoke':
      return {
        outcome: 'revoked',
        serials: [...result.serials],
        names: [...result.names],
        listVersion: result.listVersion,
      }
    case 'issue':
      return { outcome: 'issued', serial: result.serial }
    case 'create-ticket':
      // The ticket itself is a bearer secret: never in the log.
      return { outcome: 'ticket-created', expiresAtMs: integer(result.expiresAtMs) }
  }
}

/** The `revocation` record's fields: the list's version and size, and the entries it adds. */
function revocationFields(event: Extract<NodeEvent, { type: 'revocation-adopted' }>): AuditMap {
  const before = new Set(event.previous?.list.entries.map(e => e.serial) ?? [])
  const added = event.list.list.entries.filter(e => !before.has(e.serial))
  const listed = added.slice(0, AUDIT_REVOCATIONS_LISTED_MAX)
  return {
    origin: bounded(event.origin),
    version: event.list.list.version,
    entries: event.list.list.entries.length,
    added: listed.map(e => ({ serial: e.serial, name: e.name, peer: e.peerId })),
    addedMore: added.length > listed.length ? added.length - listed.length : undefined,
  }
}

/** The entry an event becomes, or undefined for events the log leaves out (acks, finished execs). */
export function auditEntryOf(event: NodeEvent): AuditEntry | undefined {
  const atMs = event.atMs
  switch (event.type) {
    case 'request-refused':
      return {
        type: 'refused',
        atMs,
        fields: { code: event.code, detail: bounded(event.detail), upstream: event.upstream },
      }
    case 'request-accepted': {
      const { request } = event
      if (event.verdict === 'not-for-us')
        return { type: 'request', atMs, fields: { verdict: event.verdict, ...requestFields(request) } }
      return {
        type: 'request',
        atMs,
        fields: {
          verdict: event.verdict,
          ...requestFields(request),
          ...argsFields(request.body.args),
          code: event.code,
          request: hash(request.bytes),
          job: request.body.job === undefined ? undefined : request.jobHex,
        },
      }
    }
    case 'reply-sent': {
      const done = event.done
      if (event.kind !== 'done' || done === undefined) return undefined
      const base: AuditMap = {
        id: event.request.idHex,
        status: done.status,
        ran: done.ran,
        reason: done.reason === undefined ? undefined : bounded(done.reason),
      }
      if (!done.ran) return { type: 'done', atMs, fields: base }
      const output = encoder.encode(done.output)
      return {
        type: 'done',
        atMs,
        fields: {
          ...base,
          ...requestFields(event.request),
          // The operators whose approvals the pipeline verified (the two-person rule, approval.ts).
          approvers: event.request.approvers.map(c => bounded(c.name)),
          ...argsFields(event.request.body.args),
          exitCode: done.exitCode === null ? undefined : integer(done.exitCode),
          durationMs: integer(done.durationMs),
          outputDigest: hash(output),
          outputBytes: output.byteLength,
        },
      }
    }
    case 'peer-admitted': {
      const c = event.certificate.certificate
      return {
        type: 'admitted',
        atMs,
        fields: { peer: event.peer, name: c.name, zone: c.zone, serial: c.serial, roles: [...c.roles] },
      }
    }
    case 'peer-refused':
      return {
        type: 'peer-refused',
        atMs,
        fields: { peer: event.peer, addr: bounded(event.addr), reason: bounded(event.reason) },
      }
    case 'revocation-adopted':
      return { type: 'revocation', atMs, fields: revocationFields(event) }
    case 'issuer-decision':
      return { type: 'issuer', atMs, fields: issuerFields(event) }
    case 'exec-finished':
      return undefined
  }
}

// ---------------------------------------------------------------------------------------------------
// The log.

/** Creates the audit log and subscribes it to `events` (events before {@link AuditLog.start} wait). */
export function createAuditLog(components: AuditLogComponents, init: AuditLogInit = {}): AuditLog {
  const { signer, store, clock, log } = components
  const queueRecordsMax = init.queueRecordsMax ?? AUDIT_QUEUE_RECORDS_MAX
  const batchRecordsMax = init.batchRecordsMax ?? AUDIT_BATCH_RECORDS_MAX
  const retryMs = init.retryMs ?? AUDIT_RETRY_MS
  const refusalsPerWindow = init.refusalsPerWindow ?? AUDIT_REFUSALS_PER_WINDOW
  const refusalWindowMs = init.refusalWindowMs ?? AUDIT_REFUSAL_WINDOW_MS
  const limited = createLogLimiter(log, clock)
  let state: AuditCounters['state'] = 'created'
  let stopping = false
  let queue: AuditEntry[] = []
  /** Sealed and handed to the store, not yet durable (retried as is after a failure). */
  let batch: { records: Uint8Array[]; head: AuditChainHead } | undefined
  let durable: AuditChainHead = AUDIT_EMPTY_HEAD
  let written = 0
  let writes = 0
  let dropped = 0
  let writeFailures = 0
  /** Drops not yet on record: a `dropped` record goes in when there is room again. */
  let unrecorded: { count: number; firstAtMs: number; lastAtMs: number } | undefined
  let pumping: Promise<void> | undefined
  let retry: { timer: Timer; wake: () => void } | undefined
  let starting: Promise<void> | undefined

  const enqueue = (entry: AuditEntry): void => {
    if (queue.length >= queueRecordsMax) {
      dropped += 1
      unrecorded =
        unrecorded === undefined
          ? { count: 1, firstAtMs: entry.atMs, lastAtMs: entry.atMs }
          : { ...unrecorded, count: unrecorded.count + 1, lastAtMs: entry.atMs }
      limited.log(
        'warn',
        'audit-dropped',
        { dropped, queued: queue.length },
        'audit queue full; record dropped',
      )
      return
    }
    if (unrecorded !== undefined) {
      queue.push({ type: 'dropped', atMs: entry.atMs, fields: { ...unrecorded } })
      unrecorded = undefined
    }
    queue.push(entry)
    schedule()
  }

  /**
   * Refusals are what a hostile peer can produce at will: per code, the first
   * {@link AUDIT_REFUSALS_PER_WINDOW} of a window are recorded one by one, the rest counted and put
   * on record as one `refused` record with `suppressed` when the window ends, so a flood can neither
   * rotate the real history out nor double the CPU each forged message costs.
   */
  const refusals = new Map<
    string,
    { openedAtMs: number; recorded: number; suppressed: number; timer?: Timer }
  >()
  const refused = (entry: AuditEntry, code: string): void => {
    const nowMs = clock.monotonicMs()
    let window = refusals.get(code)
    if (window === undefined || nowMs - window.openedAtMs >= refusalWindowMs) {
      window = { openedAtMs: nowMs, recorded: 0, suppressed: 0 }
      refusals.set(code, window)
    }
    if (window.recorded < refusalsPerWindow) {
      window.recorded += 1
      enqueue(entry)
      return
    }
    window.suppressed += 1
    const open = window
    open.timer ??= clock.setTimer(
      () => {
        if (refusals.get(code) === open) refusals.delete(code)
        if (!stopping && state !== 'failed' && state !== 'stopped') summarise(code, open)
      },
      refusalWindowMs - (nowMs - open.openedAtMs),
    )
  }
  const summarise = (code: string, window: { suppressed: number }): void => {
    if (window.suppressed === 0) return
    enqueue({
      type: 'refused',
      atMs: clock.nowMs(),
      fields: { code, suppressed: window.suppressed, windowMs: refusalWindowMs },
    })
    window.suppressed = 0
  }

  const unsubscribe = components.events.on(event => {
    if (stopping || state === 'failed' || state === 'stopped') return
    const entry = auditEntryOf(event)
    if (entry === undefined) return
    if (event.type === 'request-refused') refused(entry, event.code)
    else enqueue(entry)
  })

  /** Seals the next batch from the queue, after the durable head. */
  const seal = (): void => {
    const entries = queue.splice(0, batchRecordsMax)
    const records: Uint8Array[] = []
    let head = durable
    for (const entry of entries) {
      try {
        const sealed = sealAuditRecord(signer.key, head, entry)
        records.push(sealed.bytes)
        head = sealed.head
      } catch (err) {
        // A bug (a field too large): this one record is lost, and counted, the chain is not.
        dropped += 1
        log.error({ type: entry.type, err: String(err) }, 'cannot seal an audit record')
      }
    }
    if (records.length > 0) batch = { records, head }
  }

  const waitRetry = (): Promise<void> =>
    new Promise(resolve => {
      const wake = () => {
        retry?.timer.cancel()
        retry = undefined
        resolve()
      }
      retry = { timer: clock.setTimer(wake, retryMs), wake }
    })

  const pump = async (): Promise<void> => {
    while (state === 'running') {
      if (batch === undefined) {
        if (queue.length === 0) return
        seal()
        if (batch === undefined) continue
      }
      const current: { records: Uint8Array[]; head: AuditChainHead } = batch
      try {
        await store.appendAudit(current.records)
        durable = current.head
        written += current.records.length
        writes += 1
        batch = undefined
      } catch (err) {
        writeFailures += 1
        limited.log(
          'error',
          'audit-write',
          { err: String(err), records: current.records.length, writeFailures },
          'cannot write the audit log; retrying',
        )
        if (stopping) return
        await waitRetry()
      }
    }
  }

  const schedule = (): void => {
    if (state !== 'running' || pumping !== undefined) return
    // A microtask: the events of this turn of the event loop go into the same batch.
    pumping = Promise.resolve()
      .then(pump)
      .catch(err => log.error({ err: String(err) }, 'audit writer failed'))
      .finally(() => {
        pumping = undefined
        if (state === 'running' && (queue.length > 0 || batch !== undefined) && !stopping) schedule()
      })
  }

  const startOnce = async (): Promise<void> => {
    let head: AuditStoreHead
    try {
      head = await store.loadAuditHead()
    } catch (err) {
      state = 'failed'
      dropped += queue.length
      queue = []
      unsubscribe()
      log.error({ err: String(err) }, 'cannot open the audit log; this node keeps no audit records')
      return
    }
    durable = { seq: head.seq, hash: head.hash }
    if (head.tornBytes > 0)
      log.warn(
        { tornBytes: head.tornBytes, seq: head.seq },
        'audit log: torn last record cut (a crash during a write)',
      )
    if (head.problem !== undefined)
      log.warn({ problem: head.problem, seq: head.seq }, 'audit log: continuing after a problem')
    const cert = signer.certificate.certificate
    queue.unshift({
      type: 'start',
      atMs: clock.nowMs(),
      fields: {
        name: cert.name,
        zone: cert.zone,
        serial: cert.serial,
        peer: cert.peerId,
        version: MESH_VERSION,
        tornBytes: head.tornBytes > 0 ? head.tornBytes : undefined,
        problem: head.problem === undefined ? undefined : bounded(head.problem),
      },
    })
    state = 'running'
    schedule()
  }

  const settled = async (): Promise<void> => {
    while (pumping !== undefined) await pumping
  }

  return {
    start() {
      starting ??= startOnce()
      return starting
    },
    async stop(timeoutMs) {
      if (stopping) return settled()
      // What the open refusal windows counted goes on record before the last flush.
      for (const [code, window] of refusals) {
        window.timer?.cancel()
        summarise(code, window)
      }
      refusals.clear()
      stopping = true
      unsubscribe()
      await starting
      if (state === 'running') {
        retry?.wake()
        schedule()
        let timer: Timer | undefined
        await Promise.race([
          settled(),
          new Promise<void>(resolve => {
            timer = clock.setTimer(resolve, timeoutMs, { keepAlive: true })
          }),
        ])
        timer?.cancel()
      }
      const left = queue.length + (batch?.records.length ?? 0)
      if (left > 0) {
        dropped += left
        log.warn({ left }, 'audit records not written before stop')
      }
      queue = []
      batch = undefined
      if (state !== 'failed') state = 'stopped'
    },
    settled,
    counters: () => ({
      state,
      written,
      writes,
      dropped,
      writeFailures,
      queued: queue.length + (batch?.records.length ?? 0),
      seq: durable.seq,
    }),
  }
}

// ---------------------------------------------------------------------------------------------------
// The audit-tail action.

/** Parses the action's arguments: none, or `--since DURATION` (also `--since=DURATION`). */
export function parseAuditTailArgs(args: readonly string[]): { sinceMs?: number } | { problem: string } {
  if (args.length === 0) return {}
  const [first, second] = args
  const text =
    args.length === 2 && first === '--since'
      ? second
      : args.length === 1 && first?.startsWith('--since=')
        ? first.slice('--since='.length)
        : undefined
  if (text === undefined) return { problem: `usage: ${AUDIT_TAIL_ACTION} [--since DURATION]` }
  const parsed = parseDuration(text)
  if (!parsed.ok) return { problem: parsed.problem }
  return { sinceMs: parsed.ms }
}

/**
 * The `audit-tail` action over `read` (NodeStore.readAuditTail): the newest records since the given
 * duration (default: all kept), one line each (format.ts), oldest first, the oldest left out when they
 * do not fit `outputBytesMax` (the action output limit; a first line says how many).
 */
export function auditTailAction(
  read: (sinceMs: number, bytesMax: number) => Promise<Uint8Array[]>,
  outputBytesMax: number,
  clock: Clock,
): ActionHandler {
  return async context => {
    const args = parseAuditTailArgs(context.args)
    if ('problem' in args) return { exitCode: 2, output: `${args.problem}\n` }
    const sinceMs = args.sinceMs === undefined ? 0 : clock.nowMs() - args.sinceMs
    // Text lines run about as long as the envelopes; twice the limit leaves room to choose from.
    const records = await read(sinceMs, 2 * outputBytesMax)
    const lines = records.map(bytes => {
      const opened = openAuditRecord(bytes)
      return opened.ok
        ? formatAuditLine(auditRecordView(opened.body))
        : `(unreadable record: ${opened.detail})`
    })
    // Keep the newest lines that fit, with room for the note on the first line.
    const room = outputBytesMax - 128
    let bytes = 0
    let from = lines.length
    while (from > 0) {
      const size = encoder.encode(lines[from - 1] as string).byteLength + 1
      if (bytes + size > room) break
      bytes += size
      from -= 1
    }
    const kept = lines.slice(from)
    const note =
      from > 0
        ? [`(${from} older records left out: the output limit is ${outputBytesMax} bytes; use --since)`]
        : []
    if (kept.length === 0 && note.length === 0) return { exitCode: 0, output: 'no audit records\n' }
    return { exitCode: 0, output: `${[...note, ...kept].join('\n')}\n` }
  }
}

/**
 * Registers `audit-tail` on `actions` when the store can read the log; a declared action of that name
 * wins (and is logged), since the operator chose it.
 */
export function registerAuditTail(
  actions: Pick<ActionRegistry, 'has' | 'register'>,
  read: ((sinceMs: number, bytesMax: number) => Promise<Uint8Array[]>) | undefined,
  outputBytesMax: number,
  clock: Clock,
  log: Logger,
): void {
  if (read === undefined) return
  if (actions.has(AUDIT_TAIL_ACTION)) {
    log.warn(
      { action: AUDIT_TAIL_ACTION },
      'a declared action has the audit-tail name; the built-in is not offered',
    )
    return
  }
  actions.register(AUDIT_TAIL_ACTION, auditTailAction(read, outputBytesMax, clock), {
    outputBytesMax,
    timeoutMs: 10_000,
    description: "this node's audit records, newest last (--since DURATION)",
  })
}
