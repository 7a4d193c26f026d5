/**
 * The joiner's side of `/mesh/join/1.0.0` (join-protocol.ts): what `mesh join` runs before the node has
 * a certificate. It starts a throwaway libp2p host whose identity is the NEW key (so the CA certifies
 * the very key Noise authenticates), dials a bootstrap address, checks that the member proves the
 * expected mesh fingerprint, and only then sends its signing request (the ticket never reaches a peer
 * that failed the proof). It checks the issued certificate before returning it.
 *
 *   for each attempt (until issued, refused or the deadline):
 *     for each bootstrap address: dial ─► hello ─► proof? ─no─► wrong-mesh (nothing sent)
 *                                                   └─yes─► csr ─► issued | pending | refused | error
 *     pending: tell onPending once, wait pollIntervalMs, resend the SAME request bytes
 *     no answer anywhere: wait pollIntervalMs and try again
 *   limits: until some address has answered hello the mesh counts as unreachable, and the join gives
 *     up after reachTimeoutMs (default 20 s); once the mesh was reached, after timeoutMs (the approval
 *     wait without a ticket). Every attempt is reported to onProgress.
 *
 * Each attempt dials afresh and hangs up afterwards: a member cuts an uncertified connection at its
 * hello timeout, so one exchange must fit into a fresh window (enrolment.ts explains the choice).
 */
import type { Libp2p } from '@libp2p/interface'
import { lpStream } from '@libp2p/utils'
import { type Multiaddr, multiaddr } from '@multiformats/multiaddr'
import { createLibp2p } from 'libp2p'
import { CLOCK_SKEW_TOLERANCE_MS_DEFAULT } from '../../ca/certificate.js'
import { fingerprintOf, shortFingerprint } from '../../ca/fingerprint.js'
import type { SigningRefusalReason, SigningResult } from '../../ca/issuer.js'
import {
  checkIssued,
  checkMeshProof,
  decodeJoinAnswer,
  encodeJoinRequest,
  JOIN_ANSWER_BYTES_MAX,
  JOIN_PROTOCOL,
} from '../../ca/join-wire.js'
import {
  createSigningRequest,
  SIGNING_REQUEST_NONCE_BYTES,
  SigningRequestError,
} from '../../ca/signing-request.js'
import { parseTicket, type Ticket, TicketError } from '../../ca/ticket.js'
import type { SignedCertificate } from '../../ca/types.js'
import { formatDurationMs } from '../../duration.js'
import type { SigningKey } from '../../wire/ed25519.js'
import { isValidName } from '../../wire/fields.js'
import { type Clock, sleep, systemClock, systemRandom } from '../clock.js'
import { libp2pKeyOf } from '../keys.js'
import { connectionStack } from '../transport.js'

/** Default overall time limit with a ticket (the certificate is issued at once). */
export const JOIN_TIMEOUT_MS_DEFAULT = 60_000
/** Default time a request without ticket waits for the operator. */
export const APPROVAL_WAIT_MS_DEFAULT = 60 * 60_000
/** Default pause between attempts (polls while pending, retries while unreachable). */
export const JOIN_POLL_INTERVAL_MS_DEFAULT = 5_000
/** Default limit of one attempt at one address (dial, hello, request, answer). */
export const JOIN_ATTEMPT_TIMEOUT_MS_DEFAULT = 10_000
/**
 * Default time a join keeps retrying while no bootstrap address has answered at all (refused, timed
 * out); capped by the overall limit. Once an address answered, the overall limit applies.
 */
export const JOIN_REACH_TIMEOUT_MS_DEFAULT = 20_000
/** Most bootstrap addresses tried. */
export const JOIN_BOOTSTRAP_ADDRESSES_MAX = 16

/** Why a join failed. A closed set; `message` is one line for the CLI that says what to do. */
export type JoinErrorCode =
  /** The options were unusable (unreadable ticket, bad fingerprint or name): nothing was sent. */
  | 'invalid-input'
  /** The peer reached could not prove the expected mesh fingerprint (wrong address or a man in the middle); the request was not sent. */
  | 'wrong-mesh'
  /** The CA refused the request; `reason` says why (reused, expired, bad-mac, wrong-mesh, …). */
  | 'refused'
  /** The operator rejected the request (`mesh ca reject`). */
  | 'rejected'
  /** No bootstrap address answered before the deadline (or, never reached, before the reach limit). */
  | 'unreachable'
  /** The request was still pending at the deadline. */
  | 'timeout'
  /** The answer did not check out (certificate for another key, name, CA …). */
  | 'bad-answer'
  /** `signal` was aborted. */
  | 'aborted'

/** A failed join. */
export class JoinError extends Error {
  override name = 'JoinError'
  readonly code: JoinErrorCode
  /** The issuer's reason for `refused` and `rejected`. */
  readonly reason: SigningRefusalReason | undefined
  /**
   * True when the CA certainly did not sign this key: the input was unusable, nothing answered, the peer
   * could not prove the mesh (nothing was sent), or the CA answered no (refused, rejected). False when it
   * may have signed or may still sign (interrupted, timed out pending, lost after reaching a member, an
   * answer that did not check out): a retry should then use the same key.
   */
  readonly settled: boolean
  constructor(code: JoinErrorCode, message: string, reason?: SigningRefusalReason, neverReached = false) {
    super(message)
    this.code = code
    this.reason = reason
    this.settled = neverReached || ['invalid-input', 'wrong-mesh', 'refused', 'rejected'].includes(code)
  }
}

/**
 * One finished attempt at one address, for progress output (the library prints nothing).
 * `unreachable`: no answer to hello (refused, timed out, reset); `failed`: the mesh answered but not
 * with a result (busy, rate-limited, no CA, unreadable); `pending`: the request waits for the operator.
 */
export interface JoinProgress {
  readonly address: string
  /** Which round of attempts this was, from 1 (one round tries every address in turn). */
  readonly attempt: number
  readonly state: 'unreachable' | 'failed' | 'pending'
  /** One line: `connection refused`, `timed out`, the member's message, or the pending request id. */
  readonly detail: string
  /** Pause before the next attempt: 0 when the next address is tried at once, null when none follows. */
  readonly retryInMs: number | null
  /** Time left before the join gives up (the reach limit while the mesh was never reached). */
  readonly leftMs: number
}

/** Options of {@link requestCertificate}: a ticket, or bootstrap + fingerprint + name + zone. */
export interface RequestCertificateOptions {
  /** The new node's key; it is also the throwaway host's identity. Owned by the caller. */
  readonly key: SigningKey
  readonly ticket?: string
  /** Addresses to dial; with a ticket they replace the ticket's. */
  readonly bootstrap?: readonly string[]
  /** 32-byte mesh fingerprint to demand (without a ticket). */
  readonly fingerprint?: Uint8Array
  /** Requested name and zone (without a ticket). */
  readonly name?: string
  readonly zone?: string
  /** Overall limit; default {@link JOIN_TIMEOUT_MS_DEFAULT} with a ticket, {@link APPROVAL_WAIT_MS_DEFAULT} without. */
  readonly timeoutMs?: number
  /**
   * How long to retry while no address has answered at all; default
   * {@link JOIN_REACH_TIMEOUT_MS_DEFAULT}, never more than the overall limit.
   */
  readonly reachTimeoutMs?: number
  readonly pollIntervalMs?: number
  readonly attemptTimeoutMs?: number
  /** Called once when the request waits for the operator, with its id and our key's short fingerprint. */
  readonly onPending?: (id: string, keyFingerprint: string) => void
  /** Called after every attempt at every address (see {@link JoinProgress}). Must not throw. */
  readonly onProgress?: (progress: JoinProgress) => void
  readonly signal?: AbortSignal
  /** Time and timers (request date, certificate checks, polling); default the system clock. */
  readonly clock?: Clock
  readonly clockSkewToleranceMs?: number
  /** The mesh's pnet pre-shared key file contents, when the mesh uses one. */
  readonly pnetKey?: Uint8Array
}

/** What {@link requestCertificate} returns: everything a new home needs. */
export interface JoinResult {
  readonly certificate: SignedCertificate
  readonly caPublicKey: Uint8Array
  /** The CA-signed revocation list that came with the certificate. */
  readonly revocationList: Uint8Array
  /** The address that answered. */
  readonly answeredBy: string
  /** The addresses used, the one that answered first: the new node's bootstrap list. */
  readonly bootstrap: readonly string[]
}

interface Plan {
  readonly fingerprint: Uint8Array
  readonly addresses: readonly Multiaddr[]
  readonly texts: readonly string[]
  readonly expect: { name?: string; zone?: string; roles?: readonly string[] }
  readonly fields: { ticket?: string; name?: string; zone?: string }
}

type AttemptOutcome =
  | { kind: 'answer'; result: SigningResult; caPublicKey: Uint8Array; address: string }
  | { kind: 'wrong-mesh'; detail: string; address: string }
  | { kind: 'transient'; detail: string; address: string; reached: boolean }

/**
 * Joins a mesh and returns the certificate; stores nothing (the caller writes the home).
 * @throws JoinError
 */
export async function requestCertificate(options: RequestCertificateOptions): Promise<JoinResult> {
  const clock = options.clock ?? systemClock
  const now = clock.nowMs
  const plan = makePlan(options)
  const skewMs = options.clockSkewToleranceMs ?? CLOCK_SKEW_TOLERANCE_MS_DEFAULT
  const timeoutMs =
    options.timeoutMs ?? (options.ticket !== undefined ? JOIN_TIMEOUT_MS_DEFAULT : APPROVAL_WAIT_MS_DEFAULT)
  const pollIntervalMs = options.pollIntervalMs ?? JOIN_POLL_INTERVAL_MS_DEFAULT
  const attemptTimeoutMs = options.attemptTimeoutMs ?? JOIN_ATTEMPT_TIMEOUT_MS_DEFAULT
  const reachTimeoutMs = Math.min(options.reachTimeoutMs ?? JOIN_REACH_TIMEOUT_MS_DEFAULT, timeoutMs)
  let request: ReturnType<typeof createSigningRequest>
  try {
    // One request for the whole join: the CA answers the same bytes with the same pending id, then the certificate.
    request = createSigningRequest(options.key, {
      ...plan.fields,
      createdAtMs: now(),
      nonce: systemRandom.bytes(SIGNING_REQUEST_NONCE_BYTES),
    })
  } catch (err) {
    if (err instanceof SigningRequestError) throw new JoinError('invalid-input', err.message)
    throw err
  }
  const keyFingerprint = shortFingerprint(fingerprintOf(options.key.publicKey))
  const startedAtMs = now()
  const deadline = AbortSignal.timeout(timeoutMs)
  const overall = options.signal === undefined ? deadline : AbortSignal.any([deadline, options.signal])
  // While no address has answered at all, the shorter reach limit cuts attempts and pauses too.
  const reachDeadline = AbortSignal.any([overall, AbortSignal.timeout(reachTimeoutMs)])
  let reached = false
  const limitSignal = () => (reached ? overall : reachDeadline)
  const leftMs = () => Math.max(0, startedAtMs + (reached ? timeoutMs : reachTimeoutMs) - now())
  /** Last failure per address while unreachable, for the error. */
  const unreachable = new Map<string, string>()
  let rounds = 0

  const host = await createLibp2p({
    privateKey: libp2pKeyOf(options.key),
    addresses: { listen: [] },
    ...connectionStack({ pnetKey: options.pnetKey }),
  })
  let pendingId: string | undefined
  let lastProblem = 'no attempt finished'
  try {
    for (;;) {
      rounds += 1
      const outcomes: AttemptOutcome[] = []
      let answer: Extract<AttemptOutcome, { kind: 'answer' }> | undefined
      for (const [index, address] of plan.addresses.entries()) {
        if (limitSignal().aborted) break
        const text = plan.texts[index] ?? address.toString()
        const outcome = await attempt(host, address, text, request.bytes, {
          fingerprint: plan.fingerprint,
          signal: AbortSignal.any([limitSignal(), AbortSignal.timeout(attemptTimeoutMs)]),
          nowMs: now,
          skewMs,
        })
        outcomes.push(outcome)
        if (outcome.kind !== 'transient' || outcome.reached) reached = true
        if (outcome.kind === 'transient') {
          if (!outcome.reached) unreachable.set(text, outcome.detail)
          const last = index === plan.addresses.length - 1
          const left = leftMs()
          options.onProgress?.({
            address: text,
            attempt: rounds,
            state: outcome.reached ? 'failed' : 'unreachable',
            detail: outcome.detail,
            retryInMs: limitSignal().aborted || left === 0 ? null : last ? Math.min(pollIntervalMs, left) : 0,
            leftMs: left,
          })
        }
        if (outcome.kind === 'answer') {
          answer = outcome
          break
        }
      }
      if (answer !== undefined) {
        const result = answer.result
        if (result.status === 'issued') {
          const checked = checkIssued(result, {
            caPublicKey: answer.caPublicKey,
            publicKey: options.key.publicKey,
            ...plan.expect,
            nowMs: now(),
            clockSkewToleranceMs: skewMs,
          })
          if (!checked.ok) {
            throw new JoinError(
              'bad-answer',
              `the mesh answered with an unusable certificate: ${checked.detail}`,
            )
          }
          return {
            certificate: checked.certificate,
            caPublicKey: answer.caPublicKey,
            revocationList: checked.revocationList.bytes,
            answeredBy: answer.address,
            bootstrap: [answer.address, ...plan.texts.filter(text => text !== answer.address)],
          }
        }
        if (result.status === 'refused') {
          if (result.reason === 'rejected') {
            throw new JoinError(
              'rejected',
              `the operator rejected this request (${result.message}); ask them, then join again`,
              result.reason,
            )
          }
          throw new JoinError('refused', `the mesh refused to join: ${result.message}`, result.reason)
        }
        if (pendingId === undefined) {
          pendingId = result.id
          options.onPending?.(result.id, keyFingerprint)
        }
        const left = leftMs()
        options.onProgress?.({
          address: answer.address,
          attempt: rounds,
          state: 'pending',
          detail: `request ${result.id} is waiting for approval`,
          retryInMs: overall.aborted || left === 0 ? null : Math.min(pollIntervalMs, left),
          leftMs: left,
        })
        lastProblem = `request ${result.id} is waiting for approval`
      } else {
        const wrong = outcomes.find(o => o.kind === 'wrong-mesh')
        if (wrong !== undefined && outcomes.every(o => o.kind !== 'answer')) {
          throw new JoinError(
            'wrong-mesh',
            `${wrong.address} could not prove the mesh fingerprint (${wrong.detail}); the request was not sent. Check the address and fingerprint, or someone may be intercepting the connection`,
          )
        }
        const last = outcomes[outcomes.length - 1]
        if (last !== undefined && last.kind !== 'answer') lastProblem = `${last.address}: ${last.detail}`
      }
      await sleep(clock, pollIntervalMs, limitSignal())
      if (limitSignal().aborted) break
    }
    if (options.signal?.aborted === true) throw new JoinError('aborted', 'join was interrupted')
    if (!reached) {
      const why = plan.texts.map(text => `${text}: ${unreachable.get(text) ?? 'not tried'}`).join('; ')
      throw new JoinError(
        'unreachable',
        `cannot reach the mesh at ${why} (${rounds} ${rounds === 1 ? 'attempt' : 'attempts'} in ${formatDurationMs(reachTimeoutMs)}); check the address and that 'mesh agent' runs there`,
        undefined,
        true,
      )
    }
    if (pendingId !== undefined) {
      throw new JoinError(
        'timeout',
        `request ${pendingId} was not approved within ${formatDurationMs(timeoutMs)}; on a CA node run 'mesh ca sign ${pendingId}' and join again with a longer --timeout`,
      )
    }
    throw new JoinError(
      'unreachable',
      `cannot reach the mesh at ${plan.texts.join(', ')} within ${formatDurationMs(timeoutMs)} (${lastProblem}); check the address and that 'mesh agent' runs there`,
    )
  } finally {
    await Promise.resolve(host.stop()).catch(() => {})
  }
}

/**
 * Checks a join's input (the ticket, the addresses, the fields) without any network or file: what
 * {@link requestCertificate} would refuse as `invalid-input`, so a caller can refuse it before it writes
 * anything. @throws JoinError `invalid-input`
 */
export function checkJoinInput(options: Omit<RequestCertificateOptions, 'key'>): void {
  makePlan(options)
}

function makePlan(options: Omit<RequestCertificateOptions, 'key'>): Plan {
  let ticket: Ticket | undefined
  if (options.ticket !== undefined) {
    try {
      ticket = parseTicket(options.ticket)
    } catch (err) {
      if (err instanceof TicketError) {
        throw new JoinError(
          'invalid-input',
          `the ticket is unreadable (${err.message}); copy the whole line again`,
        )
      }
      throw err
    }
  }
  const texts =
    (options.bootstrap !== undefined && options.bootstrap.length > 0
      ? options.bootstrap
      : ticket?.bootstrap) ?? []
  if (texts.length === 0)
    throw new JoinError('invalid-input', 'no bootstrap address to dial; pass --bootstrap')
  if (texts.length > JOIN_BOOTSTRAP_ADDRESSES_MAX) {
    throw new JoinError('invalid-input', `at most ${JOIN_BOOTSTRAP_ADDRESSES_MAX} bootstrap addresses`)
  }
  const addresses = texts.map(text => {
    try {
      return multiaddr(text)
    } catch {
      throw new JoinError(
        'invalid-input',
        `${text} is not a multiaddr (like /ip4/10.0.0.1/tcp/7600/p2p/12D3…)`,
      )
    }
  })
  if (ticket !== undefined) {
    return {
      fingerprint: ticket.meshFingerprint,
      addresses,
      texts,
      expect: { name: ticket.name, zone: ticket.zone, roles: ticket.roles },
      fields: { ticket: ticket.text },
    }
  }
  if (options.fingerprint === undefined || options.fingerprint.byteLength !== 32) {
    throw new JoinError('invalid-input', 'without a ticket the mesh fingerprint is needed (--fingerprint)')
  }
  for (const [label, value] of [
    ['name', options.name],
    ['zone', options.zone],
  ] as const) {
    if (value === undefined || !isValidName(value)) {
      throw new JoinError('invalid-input', `without a ticket a valid --${label} is needed`)
    }
  }
  return {
    fingerprint: options.fingerprint,
    addresses,
    texts,
    expect: { name: options.name, zone: options.zone },
    fields: { name: options.name, zone: options.zone },
  }
}

/** One exchange with one address on a fresh connection. Never throws. */
async function attempt(
  host: Libp2p,
  address: Multiaddr,
  text: string,
  requestBytes: Uint8Array,
  context: { fingerprint: Uint8Array; signal: AbortSignal; nowMs: () => number; skewMs: number },
): Promise<AttemptOutcome> {
  const { signal } = context
  let connection: Awaited<ReturnType<Libp2p['dial']>> | undefined
  // The mesh counts as reached once a join answer (any, even an error) came back.
  let reached = false
  try {
    connection = await host.dial(address, { signal })
    const stream = await connection.newStream(JOIN_PROTOCOL, { signal })
    const lp = lpStream(stream, { maxDataLength: JOIN_ANSWER_BYTES_MAX })
    await lp.write(encodeJoinRequest({ type: 'hello' }), { signal })
    const hello = decodeJoinAnswer((await lp.read({ signal })).subarray())
    if (!hello.ok)
      return { kind: 'transient', detail: `unreadable answer (${hello.detail})`, address: text, reached }
    reached = true
    if (hello.message.type === 'error')
      return { kind: 'transient', detail: hello.message.message, address: text, reached }
    if (hello.message.type !== 'hello')
      return { kind: 'transient', detail: 'answer out of order', address: text, reached }
    const proof = checkMeshProof(hello.message, {
      fingerprint: context.fingerprint,
      remotePeer: connection.remotePeer.toString(),
      nowMs: context.nowMs(),
      clockSkewToleranceMs: context.skewMs,
    })
    if (!proof.ok) {
      stream.abort(new Error('mesh proof failed'))
      return { kind: 'wrong-mesh', detail: proof.detail, address: text }
    }
    const caPublicKey = hello.message.caPublicKey
    await lp.write(encodeJoinRequest({ type: 'csr', bytes: requestBytes }), { signal })
    const answer = decodeJoinAnswer((await lp.read({ signal })).subarray())
    await stream.close({ signal }).catch(() => {})
    if (!answer.ok)
      return { kind: 'transient', detail: `unreadable answer (${answer.detail})`, address: text, reached }
    if (answer.message.type === 'error')
      return { kind: 'transient', detail: answer.message.message, address: text, reached }
    if (answer.message.type !== 'result')
      return { kind: 'transient', detail: 'answer out of order', address: text, reached }
    return { kind: 'answer', result: answer.message.result, caPublicKey, address: text }
  } catch (err) {
    return { kind: 'transient', detail: describeFailure(err), address: text, reached }
  } finally {
    await connection?.close().catch(() => {})
  }
}

/** A network failure as a short phrase: `connection refused`, `timed out`, … else the error's message. */
function describeFailure(err: unknown): string {
  const error = err as { name?: unknown; code?: unknown; message?: unknown }
  const phrases: Record<string, string> = {
    ECONNREFUSED: 'connection refused',
    ECONNRESET: 'connection reset',
    EHOSTUNREACH: 'host unreachable',
    ENETUNREACH: 'network unreachable',
    ETIMEDOUT: 'timed out',
  }
  if (typeof error?.code === 'string' && phrases[error.code] !== undefined) return phrases[error.code]!
  if (error?.name === 'TimeoutError' || error?.name === 'AbortError') return 'timed out'
  return typeof error?.message === 'string' ? error.message : String(err)
}
