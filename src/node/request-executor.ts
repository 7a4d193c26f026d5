/**
 * Verified request → action → replies. Every request, from gossip or our own `exec`, goes through the
 * one validation pipeline (src/gossip/validate.ts); this component carries out its outcome: it
 * remembers the reply route, runs `accept-execute` requests through the action registry, answers
 * `accept-denied` ones with a signed `denied`, and sends the signed ack and completion back along the
 * route. It counts nothing the pipeline already counts.
 */
import { createReply } from '../gossip/reply.js'
import {
  type OutcomeCode,
  outcomeCode,
  type RequestOutcome,
  type RequestValidator,
  type VerifiedRequest,
} from '../gossip/validate.js'
import type { ActionRegistry } from './actions/index.js'
import type { Clock } from './clock.js'
import type { Signer } from './credentials.js'
import type { Logger } from './log.js'
import type { ReplyRouter } from './replies.js'
import type { TopicVerdict } from './topic-validators.js'

/** A refusal is logged once per this many validations (rejects always): a flood must not flood the log. */
export const REQUEST_REFUSAL_LOG_EVERY = 100

/** What the executor needs. */
export interface RequestExecutorComponents {
  readonly validator: RequestValidator
  readonly router: Pick<ReplyRouter, 'remember' | 'send'>
  readonly actions: Pick<ActionRegistry, 'run'>
  readonly signer: Signer
  /** `{ epoch }` while this node holds its zone's authority. */
  readonly heldAuthority: () => { epoch: number } | null
  readonly clock: Clock
  readonly log: Logger
}

/** Settings. */
export interface RequestExecutorInit {
  /** How long a reply route outlives the request's expiry (the request clock-skew tolerance). */
  readonly clockSkewToleranceMs: number
}

/** The completion a node sends for a request. */
interface Done {
  readonly status: 'ok' | 'failed' | 'denied' | 'error'
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
  /** From now on requests issued earlier are not run (called when the node starts). */
  markStarted(nowMs: number): void
  /** Validation outcomes by code (the pipeline's own counters, zeros left out). */
  outcomes(): Partial<Record<OutcomeCode, number>>
  /** Requests not run because they were issued before this process started. */
  notRunBeforeStart(): number
}

/** Creates the executor. */
export function createRequestExecutor(
  components: RequestExecutorComponents,
  init: RequestExecutorInit,
): RequestExecutor {
  const { validator, router, actions, signer, clock, log } = components
  /** Wall clock at start; requests issued earlier are not run (see execute). */
  let startedAtMs = Number.POSITIVE_INFINITY
  let notRunBeforeStart = 0
  let validated = 0

  const sendAck = (request: VerifiedRequest): void => {
    router.send(
      request.idHex,
      createReply(signer, { kind: 'ack', requestId: request.body.id, sentAtMs: clock.nowMs() }),
    )
  }
  const sendDone = (request: VerifiedRequest, done: Done): void => {
    router.send(
      request.idHex,
      createReply(signer, { kind: 'done', requestId: request.body.id, sentAtMs: clock.nowMs(), ...done }),
    )
  }
  const notRun = (request: VerifiedRequest, reason: string): void => {
    sendDone(request, { status: 'error', exitCode: null, output: '', durationMs: 0, reason })
  }

  const execute = async (request: VerifiedRequest): Promise<void> => {
    sendAck(request)
    if (request.body.issuedAtMs < startedAtMs) {
      // The replay cache lives in memory: a request issued before this process started may already
      // have run in the previous one, so it is not run again (at most once beats at least once here).
      notRunBeforeStart += 1
      return notRun(
        request,
        'issued before this agent (re)started; not run, as it may already have run before the restart',
      )
    }
    let epoch: number | undefined
    if (request.body.filter.once === true) {
      // Checked at the moment the action starts: the lease may have ended since validation.
      const held = components.heldAuthority()
      if (held === null) return notRun(request, 'no longer the zone authority; not run')
      epoch = held.epoch
    }
    const remainingMs = Math.max(1, request.body.expiresAtMs - clock.nowMs())
    const result = await actions.run(request.body.action, request.body.args, {
      timeoutMs: remainingMs,
      request: { id: request.idHex, operator: request.issuer.certificate.name },
    })
    sendDone(request, {
      status: result.status,
      exitCode: result.exitCode,
      output: result.output,
      durationMs: result.durationMs,
      epoch,
      reason:
        result.errorCode !== undefined
          ? `${result.errorCode}${result.timedOut ? ' (time limit)' : ''}`
          : result.timedOut
            ? 'time limit reached; process tree killed'
            : undefined,
    })
  }

  const deny = (request: VerifiedRequest, reason: string): void => {
    sendAck(request)
    sendDone(request, { status: 'denied', exitCode: null, output: '', durationMs: 0, reason })
  }

  const handle = (bytes: Uint8Array, upstream: string | undefined): RequestOutcome => {
    const outcome = validator.validate(bytes, clock.nowMs())
    validated += 1
    if (outcome.kind === 'refused') {
      if (validated % REQUEST_REFUSAL_LOG_EVERY === 1 || outcome.action === 'reject') {
        log.info({ code: outcome.code, upstream, detail: outcome.detail }, 'request refused')
      }
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
    if (outcome.kind === 'accept-execute') {
      log.info(context, 'running request')
      queueMicrotask(() => void execute(request))
    } else if (outcome.kind === 'accept-denied') {
      log.warn({ ...context, reason: outcome.reason }, 'request denied')
      queueMicrotask(() => deny(request, outcome.reason))
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
  }
}
