/**
 * Enrolment, the network side of admission on a running node (the driver around the pure CA core):
 *
 * - `/mesh/join/1.0.0` for uncertified joiners (join-protocol.ts has the exchange). Rate-limited
 *   globally and per remote IP, size-limited, and bounded in concurrency. A CA node feeds the signing
 *   request to its issuer; any other member forwards it on `/mesh/ca/1.0.0` to a CA holder it knows
 *   (connected peers with the `ca` role first, then alive members from presence) and relays the
 *   answer, as an Icinga 2 satellite does.
 * - `/mesh/ca/1.0.0`, on CA nodes only, admission-gated: forwarded signing requests and renewals.
 * - Renewal: at two thirds of its certificate's lifetime (renewal.ts) the node sends a signing request
 *   carrying its current certificate to its own issuer or a CA holder, checks the new certificate and
 *   swaps it in with `replaceCertificate`. Failures back off; nothing here ever throws into the agent.
 *
 * Hello timeout: admission cuts an inbound connection that has not passed hello after `helloTimeoutMs`
 * (it does not deny it). A joiner never passes hello, so one join exchange must fit in that window:
 * forwarding gets whatever remains of it (minus {@link JOIN_ANSWER_MARGIN_MS}), and a joiner that polls
 * opens a fresh connection per attempt. We chose this over exempting joining connections because it
 * keeps admission's one rule (no certificate, no lingering connection) and bounds what an uncertified
 * peer can hold open; a ticket join on loopback takes tens of milliseconds of the 3 to 15 s window.
 */
import type { Connection, Stream } from '@libp2p/interface'
import { peerIdFromString } from '@libp2p/peer-id'
import { lpStream } from '@libp2p/utils'
import { multiaddr } from '@multiformats/multiaddr'
import type { SigningKey } from '../ca/ed25519.js'
import type { SigningResult } from '../ca/issuer.js'
import { createSigningRequest, SIGNING_REQUEST_NONCE_BYTES } from '../ca/signing-request.js'
import type { SignedCertificate } from '../ca/types.js'
import type { MeshNode } from './agent.js'
import {
  CA_PROTOCOL,
  checkIssued,
  decodeJoinAnswer,
  decodeJoinRequest,
  encodeJoinAnswer,
  encodeJoinRequest,
  JOIN_ANSWER_BYTES_MAX,
  JOIN_PROTOCOL,
  JOIN_REQUEST_BYTES_MAX,
  type JoinAnswer,
  type JoinErrorAnswerCode,
} from './join-protocol.js'
import { secureRandomBytes } from './keys.js'
import type { Logger } from './log.js'
import { createRateLimiter, type RateLimitCounters, type RateLimitPolicy } from './rate-limit.js'
import {
  DEFAULT_RENEWAL_RECHECK_MAX_MS,
  DEFAULT_RENEWAL_RETRY_BASE_MS,
  DEFAULT_RENEWAL_RETRY_MAX_MS,
  DEFAULT_RENEWAL_RETRY_MIN_MS,
  type RenewalPolicy,
  renewalDecision,
} from './renewal.js'

/** Default join rate limit: 20 exchanges/s (burst 60) per node, 2/s (burst 20) per remote IP, 4096 IPs tracked. */
export const DEFAULT_JOIN_RATE_LIMIT: RateLimitPolicy = {
  global: { ratePerSecond: 20, burst: 60 },
  perIp: { ratePerSecond: 2, burst: 20 },
  ipEntriesMax: 4096,
}
/** Most join exchanges in progress at once on one node. */
export const JOIN_EXCHANGES_CONCURRENT_MAX = 64
/** Most join streams one connection may open at once. */
export const JOIN_STREAMS_PER_CONNECTION_MAX = 2
/** Most CA requests (forwarded or renewals) handled at once on a CA node. */
export const CA_EXCHANGES_CONCURRENT_MAX = 64
/** Most CA holders tried for one forwarded request. */
export const CA_FORWARD_CANDIDATES_MAX = 3
/** Time kept back from the hello window to send the answer before admission cuts the connection. */
export const JOIN_ANSWER_MARGIN_MS = 150
/** Shortest time given to a forwarding attempt even when the window is nearly used up. */
export const FORWARD_TIMEOUT_MS_MIN = 250
/** Time limit of one exchange on `/mesh/ca/1.0.0` (renewal, and the CA side of forwarding). */
export const CA_EXCHANGE_TIMEOUT_MS = 10_000

/** Counters of enrolment, for introspection and tests. */
export interface EnrolmentCounters {
  joinStreams: number
  joinAnswered: number
  joinRateLimited: number
  joinBusy: number
  joinMalformed: number
  joinTooLarge: number
  forwarded: number
  forwardFailed: number
  caRequests: number
  caBusy: number
  renewalAttempts: number
  renewed: number
  renewalFailed: number
  readonly rateLimit: RateLimitCounters
}

/** Outcome of one renewal attempt. */
export type RenewalOutcome =
  | { readonly ok: true; readonly certificate: SignedCertificate }
  | {
      readonly ok: false
      /** An issuer refusal reason, a member error code, `pending` or `bad-answer`. */
      readonly reason: string
      readonly message: string
    }

/** What enrolment needs from the node (a {@link MeshNode} provides all of it). */
export type EnrolmentNode = Pick<
  MeshNode,
  | 'host'
  | 'admission'
  | 'issuer'
  | 'peerId'
  | 'certificate'
  | 'replaceCertificate'
  | 'members'
  | 'offerRevocations'
>

/** The parts enrolment runs on. */
export interface EnrolmentComponents {
  readonly node: EnrolmentNode
  /** The node's signing key (signs renewal requests). */
  readonly key: SigningKey
  readonly caPublicKey: Uint8Array
  readonly log: Logger
  /** Wall clock, ms since the epoch. */
  readonly nowMs: () => number
}

/** Settings of enrolment. Durations in ms. */
export interface EnrolmentInit {
  /** Admission's hello window: a join exchange must finish inside it. */
  readonly helloTimeoutMs: number
  readonly maxClockSkewMs: number
  readonly rateLimit?: RateLimitPolicy
  /** Renewal retry policy; `maxClockSkewMs` comes from above. */
  readonly renewal?: Partial<Omit<RenewalPolicy, 'maxClockSkewMs'>>
  /** Run the renewal timer (default true). */
  readonly renew?: boolean
}

/** The enrolment service of one node. */
export interface Enrolment {
  /** Registers the protocol handlers and starts the renewal timer. Idempotent. */
  start(): Promise<void>
  /** Unregisters the handlers and stops the timer. Idempotent. */
  stop(): Promise<void>
  /** Renews now (joins an attempt in flight). Never rejects. */
  renewNow(): Promise<RenewalOutcome>
  readonly counters: EnrolmentCounters
}

/** The host part of a multiaddr (`/ip4/1.2.3.4/tcp/1` → `1.2.3.4`), the key of per-IP limits. */
export function remoteHostOf(addr: string): string {
  const match = /^\/(?:ip4|ip6|dns|dns4|dns6)\/([^/]+)/.exec(addr)
  return match?.[1] ?? addr
}

/** Creates (but does not start) the enrolment service. */
export function createEnrolment(components: EnrolmentComponents, init: EnrolmentInit): Enrolment {
  const { node, key, caPublicKey, log, nowMs } = components
  const limiter = createRateLimiter(init.rateLimit ?? DEFAULT_JOIN_RATE_LIMIT)
  const policy: RenewalPolicy = {
    retryBaseMs: init.renewal?.retryBaseMs ?? DEFAULT_RENEWAL_RETRY_BASE_MS,
    retryMaxMs: init.renewal?.retryMaxMs ?? DEFAULT_RENEWAL_RETRY_MAX_MS,
    retryMinMs: init.renewal?.retryMinMs ?? DEFAULT_RENEWAL_RETRY_MIN_MS,
    recheckMaxMs: init.renewal?.recheckMaxMs ?? DEFAULT_RENEWAL_RECHECK_MAX_MS,
    maxClockSkewMs: init.maxClockSkewMs,
  }
  const counters: EnrolmentCounters = {
    joinStreams: 0,
    joinAnswered: 0,
    joinRateLimited: 0,
    joinBusy: 0,
    joinMalformed: 0,
    joinTooLarge: 0,
    forwarded: 0,
    forwardFailed: 0,
    caRequests: 0,
    caBusy: 0,
    renewalAttempts: 0,
    renewed: 0,
    renewalFailed: 0,
    rateLimit: limiter.counters,
  }
  let started = false
  let joinActive = 0
  let caActive = 0
  let requestSeq = 0

  const errorAnswer = (code: JoinErrorAnswerCode, message: string): JoinAnswer => ({
    type: 'error',
    code,
    message,
  })

  /** Feeds a signing request to our own issuer. */
  const runLocal = async (bytes: Uint8Array): Promise<JoinAnswer> => {
    const issuer = node.issuer
    if (issuer === undefined) return errorAnswer('no-ca', 'this member holds no CA')
    const requestId = `enrolment-${++requestSeq}`
    try {
      const effects = await issuer.run({ type: 'signing-request', requestId, bytes })
      for (const effect of effects) {
        if (effect.type === 'reply' && effect.requestId === requestId)
          return { type: 'result', result: effect.result }
      }
      return errorAnswer('ca-failure', 'the CA gave no answer')
    } catch (err) {
      log.error({ err: String(err) }, 'issuer failed on a signing request')
      return errorAnswer('ca-failure', 'the CA could not record the request; try again later')
    }
  }

  /** CA holders to forward to: connected verified peers first, then alive members with addresses. */
  const caCandidates = (): Array<{ peerId: string; addrs: readonly string[] }> => {
    const seen = new Set<string>([node.peerId])
    const out: Array<{ peerId: string; addrs: readonly string[] }> = []
    for (const [peerId, cert] of node.admission.verifiedPeers()) {
      if (seen.has(peerId) || !cert.certificate.roles.includes('ca')) continue
      seen.add(peerId)
      out.push({ peerId, addrs: [] })
    }
    for (const member of node.members()) {
      if (seen.has(member.peerId) || !member.roles.includes('ca') || member.state !== 'alive') continue
      if (member.addrs.length === 0) continue
      seen.add(member.peerId)
      out.push({ peerId: member.peerId, addrs: member.addrs })
    }
    return out.slice(0, CA_FORWARD_CANDIDATES_MAX)
  }

  /** Sends one signing request to a CA holder on `/mesh/ca/1.0.0` and returns its answer. */
  const askCa = async (bytes: Uint8Array, signal: AbortSignal): Promise<JoinAnswer> => {
    const candidates = caCandidates()
    let lastProblem = 'no CA holder is known to this member'
    for (const candidate of candidates) {
      try {
        const peer = peerIdFromString(candidate.peerId)
        const target =
          node.host.getConnections(peer).length > 0
            ? peer
            : candidate.addrs.map(a => multiaddr(a.includes('/p2p/') ? a : `${a}/p2p/${candidate.peerId}`))
        const stream = await node.host.dialProtocol(target, CA_PROTOCOL, { signal })
        const lp = lpStream(stream, { maxDataLength: JOIN_ANSWER_BYTES_MAX })
        await lp.write(encodeJoinRequest({ type: 'csr', bytes }), { signal })
        const answer = decodeJoinAnswer((await lp.read({ signal })).subarray())
        await stream.close({ signal }).catch(() => {})
        if (!answer.ok) {
          lastProblem = `unreadable answer from ${candidate.peerId}: ${answer.detail}`
          continue
        }
        if (answer.message.type === 'result') return answer.message
        lastProblem = answer.message.type === 'error' ? answer.message.message : 'unexpected answer'
      } catch (err) {
        lastProblem = `${candidate.peerId}: ${(err as Error).message}`
        if (signal.aborted) break
      }
    }
    log.warn({ candidates: candidates.length, problem: lastProblem }, 'no CA holder answered')
    return errorAnswer('no-ca', 'no CA holder is reachable from this member; try again later')
  }

  const submit = async (bytes: Uint8Array, forwardSignal: () => AbortSignal): Promise<JoinAnswer> => {
    if (node.issuer !== undefined) return runLocal(bytes)
    const answer = await askCa(bytes, forwardSignal())
    if (answer.type === 'result') counters.forwarded += 1
    else counters.forwardFailed += 1
    return answer
  }

  const answerAndClose = async (stream: Stream, answer: JoinAnswer, signal: AbortSignal): Promise<void> => {
    const lp = lpStream(stream, { maxDataLength: JOIN_REQUEST_BYTES_MAX })
    await lp.write(encodeJoinAnswer(answer), { signal })
    await stream.close({ signal })
  }

  const countReadFailure = (err: unknown): void => {
    if ((err as Error).name === 'InvalidDataLengthError') counters.joinTooLarge += 1
    else counters.joinMalformed += 1
  }

  /** `/mesh/join/1.0.0`: NOT gated, the peer holds no certificate yet. */
  const handleJoin = async (stream: Stream, connection: Connection): Promise<void> => {
    counters.joinStreams += 1
    // The connection is cut when the hello window ends; answer before that. libp2p stamps the
    // timeline with the wall clock (Date.now), so the remaining window is measured with it too.
    const windowEndMs = connection.timeline.open + init.helloTimeoutMs
    const signal = AbortSignal.timeout(Math.max(FORWARD_TIMEOUT_MS_MIN, init.helloTimeoutMs))
    const limit = limiter.take(remoteHostOf(connection.remoteAddr.toString()), nowMs())
    if (limit !== 'ok') {
      counters.joinRateLimited += 1
      log.debug({ peer: connection.remotePeer.toString(), bucket: limit }, 'join rate limit hit')
      await answerAndClose(
        stream,
        errorAnswer('rate-limited', 'too many join attempts; retry in a few seconds'),
        signal,
      ).catch(() => stream.abort(new Error('rate limited')))
      return
    }
    if (joinActive >= JOIN_EXCHANGES_CONCURRENT_MAX) {
      counters.joinBusy += 1
      await answerAndClose(
        stream,
        errorAnswer('busy', 'this member is busy; retry in a few seconds'),
        signal,
      ).catch(() => stream.abort(new Error('busy')))
      return
    }
    joinActive += 1
    try {
      const lp = lpStream(stream, { maxDataLength: JOIN_REQUEST_BYTES_MAX })
      const first = decodeJoinRequest((await lp.read({ signal })).subarray())
      if (!first.ok || first.message.type !== 'hello') {
        counters.joinMalformed += 1
        await lp.write(encodeJoinAnswer(errorAnswer('malformed', 'expected hello first')), { signal })
        await stream.close({ signal })
        return
      }
      await lp.write(encodeJoinAnswer({ type: 'hello', caPublicKey, cert: node.certificate().bytes }), {
        signal,
      })
      const second = decodeJoinRequest((await lp.read({ signal })).subarray())
      if (!second.ok || second.message.type !== 'csr') {
        if (!second.ok && second.reason === 'too-large') counters.joinTooLarge += 1
        else counters.joinMalformed += 1
        await lp.write(encodeJoinAnswer(errorAnswer('malformed', 'expected a signing request')), { signal })
        await stream.close({ signal })
        return
      }
      const answer = await submit(second.message.bytes, () =>
        AbortSignal.any([
          signal,
          AbortSignal.timeout(
            Math.max(FORWARD_TIMEOUT_MS_MIN, windowEndMs - JOIN_ANSWER_MARGIN_MS - Date.now()),
          ),
        ]),
      )
      await lp.write(encodeJoinAnswer(answer), { signal })
      await stream.close({ signal })
      counters.joinAnswered += 1
      if (answer.type === 'result') {
        log.info(
          {
            peer: connection.remotePeer.toString(),
            status: answer.result.status,
            ...refusalOf(answer.result),
          },
          'join request answered',
        )
      }
    } catch (err) {
      countReadFailure(err)
      log.debug(
        { peer: connection.remotePeer.toString(), err: (err as Error).message },
        'join exchange failed',
      )
      stream.abort(err as Error)
    } finally {
      joinActive -= 1
    }
  }

  /** `/mesh/ca/1.0.0` on CA nodes (wrapped by admission.gated). */
  const handleCa = async (stream: Stream, connection: Connection): Promise<void> => {
    counters.caRequests += 1
    const signal = AbortSignal.timeout(CA_EXCHANGE_TIMEOUT_MS)
    if (caActive >= CA_EXCHANGES_CONCURRENT_MAX) {
      counters.caBusy += 1
      await answerAndClose(stream, errorAnswer('busy', 'the CA is busy; retry later'), signal).catch(() =>
        stream.abort(new Error('busy')),
      )
      return
    }
    caActive += 1
    try {
      const lp = lpStream(stream, { maxDataLength: JOIN_REQUEST_BYTES_MAX })
      const request = decodeJoinRequest((await lp.read({ signal })).subarray())
      const answer =
        request.ok && request.message.type === 'csr'
          ? await runLocal(request.message.bytes)
          : errorAnswer('malformed', 'expected a signing request')
      await lp.write(encodeJoinAnswer(answer), { signal })
      await stream.close({ signal })
    } catch (err) {
      log.debug({ peer: connection.remotePeer.toString(), err: (err as Error).message }, 'CA exchange failed')
      stream.abort(err as Error)
    } finally {
      caActive -= 1
    }
  }

  // ---- renewal ----
  let renewing: Promise<RenewalOutcome> | undefined
  let timer: NodeJS.Timeout | undefined
  let failures = 0
  let lastFailureMs: number | undefined

  const attemptRenewal = async (): Promise<RenewalOutcome> => {
    counters.renewalAttempts += 1
    const current = node.certificate()
    const request = createSigningRequest(key, {
      certificate: current.bytes,
      createdAtMs: nowMs(),
      nonce: secureRandomBytes(SIGNING_REQUEST_NONCE_BYTES),
    })
    const answer =
      node.issuer !== undefined
        ? await runLocal(request.bytes)
        : await askCa(request.bytes, AbortSignal.timeout(CA_EXCHANGE_TIMEOUT_MS))
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
      nowMs: nowMs(),
      maxClockSkewMs: init.maxClockSkewMs,
    })
    if (!checked.ok) return { ok: false, reason: 'bad-answer', message: checked.detail }
    if (checked.certificate.certificate.notAfterMs <= current.certificate.notAfterMs) {
      return { ok: false, reason: 'bad-answer', message: 'the renewed certificate does not last longer' }
    }
    node.offerRevocations(checked.revocationList.bytes)
    await node.replaceCertificate(checked.certificate)
    return { ok: true, certificate: checked.certificate }
  }

  const renewNow = (): Promise<RenewalOutcome> => {
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
          lastFailureMs = nowMs()
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
    if (!started || init.renew === false) return
    if (timer !== undefined) clearTimeout(timer)
    timer = undefined
    const decision = renewalDecision(node.certificate().certificate, nowMs(), failures, lastFailureMs, policy)
    if (decision.kind === 'expired') {
      log.error({}, "certificate expired before it could be renewed; join again with 'mesh join'")
      return
    }
    if (decision.kind === 'wait') {
      timer = setTimeout(scheduleRenewal, decision.delayMs)
      timer.unref()
      return
    }
    void renewNow().then(() => scheduleRenewal())
  }

  return {
    counters,
    renewNow,
    async start() {
      if (started) return
      started = true
      await node.host.handle(JOIN_PROTOCOL, handleJoin, {
        maxInboundStreams: JOIN_STREAMS_PER_CONNECTION_MAX,
      })
      if (node.issuer !== undefined) {
        await node.host.handle(CA_PROTOCOL, node.admission.gated(handleCa), {
          maxInboundStreams: CA_EXCHANGES_CONCURRENT_MAX,
        })
      }
      scheduleRenewal()
    },
    async stop() {
      if (!started) return
      started = false
      if (timer !== undefined) clearTimeout(timer)
      timer = undefined
      await node.host.unhandle(JOIN_PROTOCOL).catch(() => {})
      if (node.issuer !== undefined) await node.host.unhandle(CA_PROTOCOL).catch(() => {})
    },
  }
}

function describe(answer: JoinAnswer): string {
  return answer.type === 'error' ? answer.message : `unexpected ${answer.type} answer`
}

function refusalOf(result: SigningResult): { reason?: string } {
  return result.status === 'refused' ? { reason: result.reason } : {}
}
