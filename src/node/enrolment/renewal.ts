/**
 * Certificate renewal: at two thirds of the certificate's lifetime (the pure schedule is renewal.ts)
 * the node sends a signing request carrying its current certificate to its own issuer or a CA holder,
 * checks the new certificate and swaps it in. Failures back off; nothing here ever throws into the node.
 * A revoked certificate cannot be renewed: once the node learns it is revoked (credentials.ts), the timer
 * stops for good and `renewNow` answers `revoked` without asking the CA.
 */

import { checkIssued, type JoinAnswer } from '../../ca/join-wire.js'
import { type RenewalPolicy, renewalDecision } from '../../ca/renewal-schedule.js'
import { createSigningRequest, SIGNING_REQUEST_NONCE_BYTES } from '../../ca/signing-request.js'
import type { Timer } from '../clock.js'
import type { CaClient } from './ca-client.js'
import {
  CA_EXCHANGE_TIMEOUT_MS,
  type EnrolmentComponents,
  type EnrolmentCounters,
  type EnrolmentInit,
  type RenewalOutcome,
} from './types.js'

/** The renewal timer. */
export interface Renewal {
  start(): void
  stop(): void
  /** Renews now (joins an attempt in flight). Never rejects. */
  renewNow(): Promise<RenewalOutcome>
}

/** Creates the renewal component. */
export function createRenewal(
  components: EnrolmentComponents,
  init: EnrolmentInit,
  parts: { readonly counters: EnrolmentCounters; readonly ca: CaClient; readonly policy: RenewalPolicy },
): Renewal {
  const { log, clock, caPublicKey, credentials } = components
  const key = credentials.key
  const { counters, policy } = parts
  let started = false
  let renewing: Promise<RenewalOutcome> | undefined
  let timer: Timer | undefined
  let failures = 0
  let lastFailureMs: number | undefined

  const attemptRenewal = async (): Promise<RenewalOutcome> => {
    counters.renewalAttempts += 1
    const current = credentials.certificate()
    const request = createSigningRequest(key, {
      certificate: current.bytes,
      createdAtMs: clock.nowMs(),
      nonce: components.random.bytes(SIGNING_REQUEST_NONCE_BYTES),
    })
    const answer =
      components.issuer() !== undefined
        ? await parts.ca.runLocal(request.bytes)
        : await parts.ca.askCa(request.bytes, AbortSignal.timeout(CA_EXCHANGE_TIMEOUT_MS))
    if (answer.type !== 'result') {
      return {
        ok: false,
        reason: answer.type === 'error' ? answer.code : 'bad-answer',
        message: describe(answer),
      }
    }
    const result = answer.result
    if (result.status === 'pending')
      return { ok: false, reason: 'pending', message: 'the CA queued a renewal' }
    if (result.status === 'refused') return { ok: false, reason: result.reason, message: result.message }
    const checked = checkIssued(result, {
      caPublicKey,
      publicKey: key.publicKey,
      name: current.certificate.name,
      zone: current.certificate.zone,
      roles: current.certificate.roles,
      nowMs: clock.nowMs(),
      clockSkewToleranceMs: init.clockSkewToleranceMs,
    })
    if (!checked.ok) return { ok: false, reason: 'bad-answer', message: checked.detail }
    if (checked.certificate.certificate.notAfterMs <= current.certificate.notAfterMs) {
      return { ok: false, reason: 'bad-answer', message: 'the renewed certificate does not last longer' }
    }
    components.offerRevocations(checked.revocationList.bytes)
    await credentials.replace(checked.certificate)
    return { ok: true, certificate: checked.certificate }
  }

  const renewNow = (): Promise<RenewalOutcome> => {
    if (credentials.revoked()) {
      return Promise.resolve({ ok: false, reason: 'revoked', message: 'the CA revoked this certificate' })
    }
    if (renewing !== undefined) return renewing
    renewing = attemptRenewal()
      .catch((err: unknown): RenewalOutcome => ({ ok: false, reason: 'error', message: String(err) }))
      .then(outcome => {
        renewing = undefined
        if (outcome.ok) {
          failures = 0
          lastFailureMs = undefined
          counters.renewed += 1
          log.info(
            {
              serial: outcome.certificate.certificate.serial,
              notAfterMs: outcome.certificate.certificate.notAfterMs,
            },
            'certificate renewed',
          )
        } else {
          failures += 1
          lastFailureMs = clock.nowMs()
          counters.renewalFailed += 1
          log.warn(
            { reason: outcome.reason, message: outcome.message, failures },
            'certificate renewal failed',
          )
        }
        return outcome
      })
    return renewing
  }

  const scheduleRenewal = (): void => {
    // Revoked: the CA would refuse; credentials.ts has said why, once.
    if (!started || init.renew === false || credentials.revoked()) return
    timer?.cancel()
    timer = undefined
    const decision = renewalDecision(
      credentials.certificate().certificate,
      clock.nowMs(),
      failures,
      lastFailureMs,
      policy,
    )
    if (decision.kind === 'expired') {
      log.error({}, "certificate expired before it could be renewed; join again with 'mesh join'")
      return
    }
    if (decision.kind === 'wait') {
      timer = clock.setTimer(scheduleRenewal, decision.delayMs)
      return
    }
    void renewNow().then(() => scheduleRenewal())
  }

  const cancel = (): void => {
    timer?.cancel()
    timer = undefined
  }
  let unsubscribe: (() => void) | undefined

  return {
    renewNow,
    start() {
      if (started) return
      started = true
      unsubscribe = credentials.onRevoked(cancel)
      scheduleRenewal()
    },
    stop() {
      started = false
      unsubscribe?.()
      unsubscribe = undefined
      cancel()
    },
  }
}

function describe(answer: JoinAnswer): string {
  return answer.type === 'error' ? answer.message : `unexpected ${answer.type} answer`
}
