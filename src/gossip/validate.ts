/**
 * The one validation pipeline for inbound requests (STYLE.md §4), in this order:
 *
 * 1. size limit            → `too-large`                                   reject
 * 2. decode                → `malformed`, `bad-filter` reject; `unsupported-version` ignore
 * 3. issuer certificate    → `certificate-*` (chain and revocation via the injected verifier)
 * 4. issuer role           → `not-operator`                                reject
 * 5. signature             → `bad-signature`                               reject
 *    approvals (approval.ts) → `bad-approval` (forged, the proposer's own, a repeat, not an operator)
 *                              reject; an approver whose certificate does not verify (revoked,
 *                              expired) is dropped and named in the denial if the policy then fails
 * 6. validity window       → `bad-window`, `lifetime-too-long` reject; `issued-in-future`, `expired` ignore
 * 7. replay cache          → `replayed`, `overloaded`                      ignore
 * 8. target filter         → outcome `accept-not-for-us` (still forwarded)
 * 9. authorization         → outcome `accept-denied` (forwarded; a `denied` reply is owed)
 * otherwise                → outcome `accept-execute`
 *
 * `reject` is for what no honest forwarder would pass on (it ran the same deterministic checks), so
 * gossipsub may penalise the sender. Checks that depend on our own clock or on what we have already
 * seen or learnt (certificate not yet valid, expired, revoked, replayed, overloaded) can legitimately
 * differ between honest peers, so they `ignore`: the message is dropped and not forwarded, nobody is
 * punished. Unknown errors also map to `ignore` (code `internal`), so peers do not pay for our bugs.
 *
 * Replay and the validator/executor split. On every node the gossipsub topic validator runs once per
 * distinct message (gossipsub drops identical bytes it has already seen before validating), and that
 * single call is also the admission for execution: step 7 atomically checks and marks the id, and the
 * outcome carries the disposition (`execute`, `not-for-us`, `denied`) with the verified request. The
 * driver hands `accept-execute` and `accept-denied` outcomes straight to the executor, which does not
 * re-check the replay cache. So forwarding never "uses up" an id that the same node must still run,
 * and a replay that arrives after gossipsub's seen-cache has forgotten the bytes is refused by every
 * node, including those the request was not addressed to. The requester runs the same `validate` on
 * its own request before publishing (gossipsub does not deliver our own messages), which marks the id
 * on the requester too. The mark happens only after the signature and window checks, so nobody can
 * burn an id without holding an operator key. The replay key is the id together with the issuer's
 * certificate serial, so one operator cannot pre-empt another's request by reusing its id. For a
 * request carrying approvals the replay key also names the approvers, so a copy stripped of some
 * approvals (and denied) does not burn the id for the complete one; the run record uses the id and
 * serial alone (`runKey`), so the action still runs at most once per request.
 */
import type {
  Certificate,
  CertificateRejection,
  CertificateVerifier,
  SignedCertificate,
} from '../ca/types.js'
import { verifyApprovals } from './approval.js'
import { type AuthorizationPolicy, authorize } from './authorize.js'
import { type FilterSubject, matchesFilter } from './filter.js'
import type { ReplayCache } from './replay.js'
import {
  type DecodedRequest,
  decodeRequest,
  REQUEST_BYTES_MAX,
  RequestDecodeError,
  verifyRequestSignature,
} from './request.js'

/** Why a request was refused. A closed set; see the table above for each code's action. */
export type RequestRefusalCode =
  | 'too-large'
  | 'malformed'
  | 'unsupported-version'
  | 'bad-filter'
  | `certificate-${CertificateRejection}`
  | 'not-operator'
  | 'bad-signature'
  | 'bad-approval'
  | 'bad-window'
  | 'lifetime-too-long'
  | 'issued-in-future'
  | 'expired'
  | 'replayed'
  | 'overloaded'
  | 'internal'

/** What gossipsub should do with a refused message: `reject` penalises the forwarder, `ignore` does not. */
export type RefusalAction = 'reject' | 'ignore'

/** The action for each refusal code. */
export const REFUSAL_ACTIONS: Readonly<Record<RequestRefusalCode, RefusalAction>> = {
  'too-large': 'reject',
  malformed: 'reject',
  'unsupported-version': 'ignore',
  'bad-filter': 'reject',
  'certificate-malformed': 'reject',
  'certificate-too-large': 'reject',
  'certificate-bad-signature': 'reject',
  'certificate-wrong-issuer': 'reject',
  'certificate-not-yet-valid': 'ignore',
  'certificate-expired': 'ignore',
  'certificate-revoked': 'ignore',
  'not-operator': 'reject',
  'bad-signature': 'reject',
  'bad-approval': 'reject',
  'bad-window': 'reject',
  'lifetime-too-long': 'reject',
  'issued-in-future': 'ignore',
  expired: 'ignore',
  replayed: 'ignore',
  overloaded: 'ignore',
  internal: 'ignore',
}

/** A request that passed steps 1-7: authentic, timely, first seen here. */
export interface VerifiedRequest extends DecodedRequest {
  /** The issuer's verified certificate. */
  readonly issuer: SignedCertificate
  /** The replay-cache key (`idHex:serial`, and the approvers' names when there are approvals). */
  readonly replayKey: string
  /** The run-record key (`idHex:serial`): at most one run per request, whatever its approvals. */
  readonly runKey: string
  /** Verified approvers (distinct operators, not the issuer), in the order carried. */
  readonly approvers: readonly Certificate[]
}

/** The outcome of {@link RequestValidator.validate}. */
export type RequestOutcome =
  | { readonly kind: 'accept-execute'; readonly request: VerifiedRequest }
  | { readonly kind: 'accept-not-for-us'; readonly request: VerifiedRequest }
  | { readonly kind: 'accept-denied'; readonly request: VerifiedRequest; readonly reason: string }
  | {
      readonly kind: 'refused'
      readonly code: RequestRefusalCode
      readonly action: RefusalAction
      readonly detail: string
    }

/** Every outcome code that is counted: the three accept kinds and every refusal code. */
export type OutcomeCode = Exclude<RequestOutcome['kind'], 'refused'> | RequestRefusalCode

/** The result gossipsub's topic validator needs; the driver maps it to libp2p's enum. */
export type TopicValidatorResultName = 'accept' | 'reject' | 'ignore'

/** Maps an outcome to gossipsub's verdict: every accept kind propagates; refusals by their action. */
export function toTopicValidatorResult(outcome: RequestOutcome): TopicValidatorResultName {
  return outcome.kind === 'refused' ? outcome.action : 'accept'
}

/** The code to count and log for an outcome. */
export function outcomeCode(outcome: RequestOutcome): OutcomeCode {
  return outcome.kind === 'refused' ? outcome.code : outcome.kind
}

/** Time limits of the validity window, ms. */
export interface WindowLimits {
  /** How far clocks may disagree; applied to issue time (future) and expiry (past). */
  readonly clockSkewToleranceMs: number
  /** Longest allowed `expiresAtMs - issuedAtMs`. */
  readonly requestLifetimeMsMax: number
}

/**
 * The validity-window check (step 6) as a pure function: a refusal code, or undefined when the
 * request is within its window at `nowMs`.
 */
export function checkValidityWindow(
  issuedAtMs: number,
  expiresAtMs: number,
  nowMs: number,
  limits: WindowLimits,
): 'bad-window' | 'lifetime-too-long' | 'issued-in-future' | 'expired' | undefined {
  if (expiresAtMs <= issuedAtMs) return 'bad-window'
  if (expiresAtMs - issuedAtMs > limits.requestLifetimeMsMax) return 'lifetime-too-long'
  if (issuedAtMs > nowMs + limits.clockSkewToleranceMs) return 'issued-in-future'
  if (nowMs > expiresAtMs + limits.clockSkewToleranceMs) return 'expired'
  return undefined
}

/** What the validator depends on (ports and this node's view of itself). */
export interface RequestValidatorComponents {
  readonly verifier: CertificateVerifier
  /** Shared with nothing else; its `clockSkewToleranceMs` should equal the window's. */
  readonly replay: ReplayCache
  /** This node as the filter sees it (facts and authority may change between calls). */
  readonly self: () => FilterSubject
  /** This node's current policy. */
  readonly policy: () => AuthorizationPolicy
}

/** Limits of the pipeline. */
export interface RequestValidatorInit extends WindowLimits {
  /** Default {@link REQUEST_BYTES_MAX}. */
  readonly requestBytesMax?: number
}

/** The pipeline with its counters. */
export interface RequestValidator {
  /** Runs the whole pipeline on one inbound (or locally created) request. Never throws. */
  validate(bytes: Uint8Array, nowMs: number): RequestOutcome
  /** How many times each outcome code occurred. */
  readonly counters: Readonly<Record<OutcomeCode, number>>
}

/** Raised for pipeline limits whose relationships do not hold. */
export class ValidatorConfigError extends Error {
  override name = 'ValidatorConfigError'
  readonly code = 'bad-limits'
}

/**
 * Creates the pipeline.
 * @throws ValidatorConfigError when a limit is not a positive number (skew may be 0)
 */
export function createRequestValidator(
  components: RequestValidatorComponents,
  init: RequestValidatorInit,
): RequestValidator {
  if (!(init.clockSkewToleranceMs >= 0)) throw new ValidatorConfigError('clockSkewToleranceMs must be ≥ 0')
  if (!(init.requestLifetimeMsMax > 0)) throw new ValidatorConfigError('requestLifetimeMsMax must be > 0')
  const bytesMax = init.requestBytesMax ?? REQUEST_BYTES_MAX
  if (!(bytesMax > 0)) throw new ValidatorConfigError('requestBytesMax must be > 0')
  const counters = Object.fromEntries(
    [...Object.keys(REFUSAL_ACTIONS), 'accept-execute', 'accept-not-for-us', 'accept-denied'].map(k => [
      k,
      0,
    ]),
  ) as Record<OutcomeCode, number>

  const run = (bytes: Uint8Array, nowMs: number): RequestOutcome => {
    // 1-2. Size first, so nothing large is ever parsed; then decode with the filter compiled.
    let decoded: DecodedRequest
    try {
      decoded = decodeRequest(bytes, bytesMax)
    } catch (err) {
      if (err instanceof RequestDecodeError) return refuse(err.code, err.message)
      throw err
    }
    const body = decoded.body
    // 3. Certificate chain, validity and revocation are the verifier's job.
    const verdict = components.verifier(body.issuer, nowMs)
    if (!verdict.ok) return refuse(`certificate-${verdict.reason}`, verdict.detail)
    const cert = verdict.signed.certificate
    // 4. Only operators issue requests: a node key that leaks cannot command the mesh.
    if (!cert.roles.includes('operator')) return refuse('not-operator', `${cert.name} is not an operator`)
    // 5. Signed by the key the certificate names.
    if (!verifyRequestSignature(decoded, cert.publicKey)) {
      return refuse('bad-signature', `request ${decoded.idHex} is not signed by ${cert.name}'s key`)
    }
    // 5b. Approvals: each a signature over the same body by another operator.
    let approvers: readonly Certificate[] = []
    let dropped = ''
    if (decoded.approvals.length > 0) {
      const check = verifyApprovals(
        decoded.approvals,
        decoded.envelope.bodyBytes,
        cert,
        components.verifier,
        nowMs,
      )
      const forged = check.rejected.find(r => r.reason !== 'bad-certificate')
      if (forged !== undefined) return refuse('bad-approval', `request ${decoded.idHex}: ${forged.detail}`)
      approvers = check.approvers
      if (check.rejected.length > 0)
        dropped = `; approvals dropped: ${check.rejected.map(r => r.detail).join('; ')}`
    }
    // 6. Within its window, with a bounded lifetime so the replay cache stays bounded in time.
    const window = checkValidityWindow(body.issuedAtMs, body.expiresAtMs, nowMs, init)
    if (window !== undefined) return refuse(window, `request ${decoded.idHex}: ${window} at ${nowMs}`)
    // 7. At most once per node; marks the id (see the module comment for why here).
    const runKey = `${decoded.idHex}:${cert.serial}`
    const replayKey =
      approvers.length === 0
        ? runKey
        : `${runKey}:${approvers
            .map(a => a.name)
            .sort()
            .join(',')}`
    const replay = components.replay.admit(replayKey, body.expiresAtMs, nowMs)
    if (!replay.ok) return refuse(replay.code, `request ${decoded.idHex} ${replay.code}`)
    const request: VerifiedRequest = { ...decoded, issuer: verdict.signed, replayKey, runKey, approvers }
    // 8. Not for us: still valid, so still forwarded. A `--once` request that names this node among the
    // holders it expects, and would match it if it held the lease, is still ours to answer: the
    // executor says "no longer the zone authority" unless it holds the lease when the action starts.
    const self = components.self()
    if (!matchesFilter(decoded.filter, self)) {
      const namedHolder =
        body.filter.once === true &&
        !self.authority &&
        body.holders?.includes(self.name) === true &&
        matchesFilter(decoded.filter, { ...self, authority: true })
      if (!namedHolder) return { kind: 'accept-not-for-us', request }
    }
    // 9. Ours to answer, possibly with `denied`.
    const decision = authorize(components.policy(), {
      action: body.action,
      operator: cert,
      nodeZone: self.zone,
      approvers,
    })
    if (!decision.allow) return { kind: 'accept-denied', request, reason: `${decision.reason}${dropped}` }
    return { kind: 'accept-execute', request }
  }

  return {
    validate(bytes, nowMs) {
      let outcome: RequestOutcome
      try {
        outcome = run(bytes, nowMs)
      } catch (err) {
        outcome = refuse('internal', `validator error: ${(err as Error)?.message ?? String(err)}`)
      }
      counters[outcomeCode(outcome)]++
      return outcome
    },
    counters,
  }
}

function refuse(code: RequestRefusalCode, detail: string): RequestOutcome {
  return { kind: 'refused', code, action: REFUSAL_ACTIONS[code], detail }
}
