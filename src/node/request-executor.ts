/**
 * Verified request → action → replies. Every request, from gossip or our own `exec`, goes through the
 * one validation pipeline (src/gossip/validate.ts); this component carries out its outcome: it
 * remembers the reply route, runs `accept-execute` requests through the action registry, answers
 * `accept-denied` ones with a signed `denied`, and sends the signed ack and completion back along the
 * route. It counts nothing the pipeline already counts. While an action runs, its output goes to the
 * requester as signed `output` chunks (live-output.ts: coalesced, rate- and size-bounded, flushed
 * before the done); they are not reported as events, and the done alone is the complete answer.
 *
 * Two answers come from this node's own registry rather than from the pipeline: an action the node
 * does not have is answered `error` with reason `unknown-action` before policy is consulted (so "I
 * don't have that" says nothing about policy, and a typo does not read as a denial), and a run the
 * node stops (graceful stop: the registry closes and kills the process tree) is answered `cancelled`.
 * {@link RequestExecutor.drain} lets the node's stop wait, bounded, until those last replies have left
 * the router, before the streams close.
 *
 * At most once across restarts: before an action starts, its request's replay key is entered in the
 * run record (run-record.ts) and the record stored; a request already in it is answered `error`
 * ("already ran before this agent restarted") and not run, and a full record answers `error`
 * `overloaded` rather than forget a live entry. The older rule, not running a request issued before
 * this process started, stays for a record kept in memory only (docs/exec.md says why). "running request"
 * is logged only when the action really starts, after all of these checks.
 */
import { createReply, REASON_UNKNOWN_ACTION, type ReplyStatus } from '../gossip/reply.js'
import {
  type OutcomeCode,
  outcomeCode,
  type RequestOutcome,
  type RequestValidator,
  type VerifiedRequest,
} from '../gossip/validate.js'
import type { ActionRegistry, ActionResult } from './actions/index.js'
import type { Clock } from './clock.js'
import type { Signer } from './credentials.js'
import type { EventBus } from './events.js'
import {
  createLiveOutput,
  createLiveOutputCounters,
  type LiveOutput,
  type LiveOutputCounters,
} from './live-output.js'
import { createLogLimiter, type Logger } from './log.js'
import type { ReplyRouter } from './replies.js'
import type { RunRecord, RunRecordCounters } from './run-record.js'
import type { TopicVerdict } from './topic-validators.js'

/** A full run record is logged once per this many refused requests: a flood must not flood the log. */
export const REQUEST_REFUSAL_LOG_EVERY = 100

/** What the executor needs. */
export interface RequestExecutorComponents {
  readonly validator: RequestValidator
  /** `settle` lets {@link RequestExecutor.drain} wait until every reply handed over has left the router. */
  readonly router: Pick<ReplyRouter, 'remember' | 'send' | 'settle'>
  readonly actions: Pick<ActionRegistry, 'run' | 'has'>
  readonly signer: Signer
  /** `{ epoch }` while this node holds its zone's authority. */
  readonly heldAuthority: () => { epoch: number } | null
  readonly clock: Clock
  readonly log: Logger
  /**
   * Which requests this node has started, kept across restarts (run-record.ts): a request is entered,
   * and the entry stored, before its action starts; one found there is not run again.
   */
  readonly runRecord: RunRecord
  /** Where validations and sent replies are reported (job store, audit log, metrics); optional. */
  readonly events?: Pick<EventBus, 'emit'>
}

/** Reason of the `error` done for a request whose key is in the run record. */
export const REASON_ALREADY_RAN = 'already ran before this agent restarted; not run again'
/** Reason of the `error` done for a request refused because the run record is full of live entries. */
export const REASON_RUN_RECORD_FULL =
  'overloaded: the record of requests run on this node is full; not run (try again in a few minutes)'

/** Reason of the `error` done for a request whose deadline had passed (by this node's clock) when its turn came. */
export const REASON_EXPIRED_BEFORE_START = 'the request expired before it could start on this node; not run'

/** Reason of the `error` done for a request not run because the run record could not be stored. */
export const REASON_RUN_RECORD_UNSAVED =
  'could not record the run durably on this node (see its log); not run'

/** Settings. */
export interface RequestExecutorInit {
  /** How long a reply route outlives the request's expiry (the request clock-skew tolerance). */
  readonly clockSkewToleranceMs: number
}

/** The completion a node sends for a request. */
interface Done {
  readonly status: ReplyStatus
  readonly exitCode: number | null
  readonly output: string
  readonly durationMs: number
  readonly reason?: string
  readonly epoch?: number
}

/** The executor. */
export interface RequestExecutor {
  /** Validates `bytes` (from `upstream`, or our own when undefined) and acts on the outcome. */
  handle(bytes: Uint8Array, upstream: string | undefined): RequestOutcome
  /** The gossipsub verdict for a request from `source`. */
  verdict(bytes: Uint8Array, source: string): TopicVerdict
  /**
   * Loads the run record, then {@link markStarted}`(nowMs)` (called when the node starts). Rejects as the
   * record's start does (e.g. RunRecordError `corrupt`); requests are then still not run.
   */
  start(nowMs: number): Promise<void>
  /** From now on requests issued earlier are not run. */
  markStarted(nowMs: number): void
  /** Validation outcomes by code (the pipeline's own counters, zeros left out). */
  outcomes(): Partial<Record<OutcomeCode, number>>
  /** Requests not run because they were issued before this process started. */
  notRunBeforeStart(): number
  /** Requests answered `unknown-action` (the node has no action of that name). */
  unknownActions(): number
  /** The run record's counters (already ran, full, save failures, live entries). */
  runRecordCounters(): RunRecordCounters
  /** Live output streamed while actions ran (live-output.ts): chunks, bytes, runs cut short. */
  liveOutputCounters(): LiveOutputCounters
  /**
   * Waits until every run in progress has sent its `done` and the router has written out (or given
   * up on) every reply handed to it, or until `timeoutMs` passes. Runs end by themselves or when the
   * caller closes the action registry; this only waits. Never rejects.
   */
  drain(timeoutMs: number): Promise<void>
}

/** The `done` status and reason of a finished run. */
function doneOfResult(result: ActionResult): Pick<Done, 'status' | 'reason'> {
  if (result.errorCode === 'closed' || result.errorCode === 'aborted') {
    return {
      status: 'cancelled',
      reason:
        result.errorCode === 'closed'
          ? 'cancelled: the node is stopping; process tree killed'
          : 'cancelled: the run was cancelled; process tree killed',
    }
  }
  const reason =
    result.errorCode !== undefined
      ? `${result.errorCode}${result.timedOut ? ' (time limit)' : ''}`
      : result.timedOut
        ? 'time limit reached; process tree killed'
        : undefined
  return { status: result.status, ...(reason === undefined ? {} : { reason }) }
}

/** Creates the executor. */
export function createRequestExecutor(
  components: RequestExecutorComponents,
  init: RequestExecutorInit,
): RequestExecutor {
  const { validator, router, actions, signer, clock, log, runRecord } = components
  const limited = createLogLimiter(log, clock)
  /** Wall clock at start; requests issued earlier are not run (see execute). */
  let startedAtMs = Number.POSITIVE_INFINITY
  let notRunBeforeStart = 0
  let unknownActions = 0
  /** Executions that have not sent their done yet (queued to start, or running). */
  const inFlight = new Set<Promise<void>>()

  const events = components.events
  const sendAck = (request: VerifiedRequest): void => {
    const atMs = clock.nowMs()
    const bytes = createReply(signer, { kind: 'ack', requestId: request.body.id, sentAtMs: atMs })
    router.send(request.idHex, bytes)
    events?.emit({ type: 'reply-sent', request, kind: 'ack', bytes, atMs })
  }
  /** `ran`: the action really started here (false for denials and requests not run). */
  const sendDone = (request: VerifiedRequest, done: Done, ran = false): void => {
    const atMs = clock.nowMs()
    const bytes = createReply(signer, { kind: 'done', requestId: request.body.id, sentAtMs: atMs, ...done })
    router.send(request.idHex, bytes)
    events?.emit({
      type: 'reply-sent',
      request,
      kind: 'done',
      bytes,
      done: {
        status: done.status,
        exitCode: done.exitCode,
        durationMs: done.durationMs,
        output: done.output,
        ...(done.reason === undefined ? {} : { reason: done.reason }),
        ran,
      },
      atMs,
    })
  }
  const notRun = (request: VerifiedRequest, reason: string): void => {
    sendDone(request, { status: 'error', exitCode: null, output: '', durationMs: 0, reason })
  }

  const liveCounters = createLiveOutputCounters()
  /** The run's output as signed `output` chunks to the requester, rate-bounded (live-output.ts). */
  const liveOutputOf = (request: VerifiedRequest): LiveOutput =>
    createLiveOutput({
      clock,
      counters: liveCounters,
      send: chunk =>
        router.send(
          request.idHex,
          createReply(signer, {
            kind: 'output',
            requestId: request.body.id,
            sentAtMs: clock.nowMs(),
            ...chunk,
          }),
        ),
    })

  const execute = async (request: VerifiedRequest, context: Record<string, unknown>): Promise<void> => {
    sendAck(request)
    if (runRecord.has(request.runKey)) {
      // Entered before its action started, in an earlier process (this one's replay cache admits a key
      // once): the identical bytes came back after a restart.
      log.warn(context, 'request already ran before this agent restarted; not run again')
      return notRun(request, REASON_ALREADY_RAN)
    }
    if (!runRecord.persistent && request.body.issuedAtMs < startedAtMs) {
      // Only for a record in memory: a request issued before this process started may have run in the
      // previous one, so it is not run (at most once beats at least once). A stored record knows what
      // ran, so a node that restarts mid-request, or comes back before expiry, runs it once.
      notRunBeforeStart += 1
      return notRun(
        request,
        'issued before this agent (re)started; not run, as it may already have run before the restart',
      )
    }
    // Stored before the action starts, so a crash at any later moment still leaves it in the record.
    const entered = await runRecord.enter(request.runKey, request.body.expiresAtMs)
    if (!entered.ok) {
      if (entered.code === 'already-ran') return notRun(request, REASON_ALREADY_RAN)
      if (entered.code === 'full') {
        // Once per REQUEST_REFUSAL_LOG_EVERY: a full record under a flood must not flood the log too.
        const full = runRecord.counters().full
        if (full % REQUEST_REFUSAL_LOG_EVERY === 1)
          log.warn({ ...context, full }, 'run record full; request not run')
        return notRun(request, REASON_RUN_RECORD_FULL)
      }
      log.error({ ...context, err: entered.detail }, 'cannot store the run record; request not run')
      // The detail (a local path, an errno) stays in our log; the requester learns what happened.
      return notRun(request, REASON_RUN_RECORD_UNSAVED)
    }
    let epoch: number | undefined
    if (request.body.filter.once === true) {
      // Checked at the moment the action starts: the lease may have ended since validation.
      const held = components.heldAuthority()
      if (held === null) return notRun(request, 'no longer the zone authority; not run')
      epoch = held.epoch
    }
    const remainingMs = request.body.expiresAtMs - clock.nowMs()
    // Past its deadline by our clock (accepted within the skew tolerance, or queued behind a backlog):
    // the requester has stopped waiting, so the action is not started only to be killed at once. Under
    // load this sheds the backlog instead of running it after the load is gone.
    if (remainingMs <= 0) return notRun(request, REASON_EXPIRED_BEFORE_START)
    log.info(context, 'running request')
    const live = liveOutputOf(request)
    const result = await actions.run(request.body.action, request.body.args, {
      timeoutMs: remainingMs,
      request: { id: request.idHex, operator: request.issuer.certificate.name },
      onOutput: live.push,
    })
    // The last chunks go to the router before the done, so they normally arrive first.
    live.finish()
    sendDone(
      request,
      {
        exitCode: result.exitCode,
        output: result.output,
        durationMs: result.durationMs,
        epoch,
        ...doneOfResult(result),
      },
      true,
    )
  }

  /** Runs `execute` and keeps it in {@link inFlight} until its done is sent. */
  const track = (request: VerifiedRequest, context: Record<string, unknown>): void => {
    const running: Promise<void> = execute(request, context)
      .catch((err: unknown) => log.error({ request: request.idHex, err: String(err) }, 'executor failed'))
      .finally(() => inFlight.delete(running))
    inFlight.add(running)
  }

  const unknown = (request: VerifiedRequest): void => {
    unknownActions += 1
    sendAck(request)
    notRun(request, `${REASON_UNKNOWN_ACTION}: this node has no action '${request.body.action}'`)
  }

  const deny = (request: VerifiedRequest, reason: string): void => {
    sendAck(request)
    sendDone(request, { status: 'denied', exitCode: null, output: '', durationMs: 0, reason })
  }

  const handle = (bytes: Uint8Array, upstream: string | undefined): RequestOutcome => {
    const outcome = validator.validate(bytes, clock.nowMs())
    if (outcome.kind === 'refused') {
      // One line per refusal code per window: a flood of forged requests must not flood the log.
      limited.log(
        'info',
        `refused:${outcome.code}`,
        { code: outcome.code, upstream, detail: outcome.detail },
        'request refused',
      )
      events?.emit({
        type: 'request-refused',
        code: outcome.code,
        detail: outcome.detail,
        upstream,
        atMs: clock.nowMs(),
      })
      return outcome
    }
    const request = outcome.request
    router.remember(
      request.idHex,
      upstream,
      request.body.replyTo,
      request.body.expiresAtMs + init.clockSkewToleranceMs,
    )
    const context = {
      request: request.idHex,
      action: request.body.action,
      operator: request.issuer.certificate.name,
    }
    const accepted = (verdict: 'execute' | 'denied' | 'not-for-us' | 'unknown-action'): void =>
      events?.emit({
        type: 'request-accepted',
        request,
        verdict,
        code: outcomeCode(outcome),
        upstream,
        atMs: clock.nowMs(),
      })
    if (outcome.kind !== 'accept-not-for-us' && !actions.has(request.body.action)) {
      // Before policy: "no such action" reveals nothing about who may run what, and is what a typo is.
      log.info(context, 'request for an unknown action')
      accepted('unknown-action')
      queueMicrotask(() => unknown(request))
    } else if (outcome.kind === 'accept-execute') {
      // "running request" is logged by execute, only once the action really starts.
      accepted('execute')
      queueMicrotask(() => track(request, context))
    } else if (outcome.kind === 'accept-denied') {
      // One line per operator and action per window: a script retrying a denied action must not flood the log.
      limited.log(
        'warn',
        `denied:${context.operator}:${context.action}`,
        { ...context, reason: outcome.reason },
        'request denied',
      )
      accepted('denied')
      queueMicrotask(() => deny(request, outcome.reason))
    } else {
      accepted('not-for-us')
    }
    return outcome
  }

  return {
    handle,
    verdict(bytes, source) {
      const outcome = handle(bytes, source)
      const code = outcomeCode(outcome)
      return outcome.kind === 'refused'
        ? { kind: 'refused', code, action: outcome.action }
        : { kind: 'accept', code }
    },
    async start(nowMs) {
      await runRecord.start()
      startedAtMs = nowMs
    },
    markStarted(nowMs) {
      startedAtMs = nowMs
    },
    outcomes() {
      const counts: Partial<Record<OutcomeCode, number>> = {}
      for (const [code, n] of Object.entries(validator.counters) as [OutcomeCode, number][]) {
        if (n > 0) counts[code] = n
      }
      return counts
    },
    notRunBeforeStart: () => notRunBeforeStart,
    unknownActions: () => unknownActions,
    runRecordCounters: () => runRecord.counters(),
    liveOutputCounters: () => ({ ...liveCounters }),
    async drain(timeoutMs) {
      const deadlineMs = clock.monotonicMs() + timeoutMs
      const remaining = () => deadlineMs - clock.monotonicMs()
      /** Resolves when `promise` settles or after `ms`, whichever is first; the timer never outlives it. */
      const within = (promise: Promise<unknown>, ms: number) =>
        new Promise<void>(resolve => {
          const timer = clock.setTimer(resolve, Math.max(1, ms), { keepAlive: true })
          void promise.finally(() => {
            timer.cancel()
            resolve()
          })
        })
      // Queued microtasks may still start executions: let them, then wait for every done to be sent.
      await Promise.resolve()
      while (inFlight.size > 0 && remaining() > 0) await within(Promise.all([...inFlight]), remaining())
      if (remaining() > 0) await within(router.settle(), remaining())
    },
  }
}
