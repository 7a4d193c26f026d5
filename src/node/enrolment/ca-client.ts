/**
 * Getting a signing request answered: by this node's own issuer on a CA node, else by a CA holder it
 * knows over `/mesh/ca/1.0.0` (connected verified peers with the `ca` role first, then alive members
 * from presence), as an Icinga 2 satellite forwards to its master. Used by the join service and by
 * renewal alike.
 */
import {
  CA_PROTOCOL,
  decodeJoinAnswer,
  encodeJoinRequest,
  JOIN_ANSWER_BYTES_MAX,
  type JoinAnswer,
  type JoinErrorAnswerCode,
} from '../../ca/join-wire.js'
import { countedLpStream } from '../counted-stream.js'
import { dialTarget } from '../dial.js'
import { NotIssuerError } from '../issuer-driver.js'
import type { EnrolmentComponents, EnrolmentCounters } from './types.js'
import { CA_FORWARD_CANDIDATES_MAX } from './types.js'

/** Answers signing requests locally or through a CA holder. */
export interface CaClient {
  /**
   * Feeds a signing request to our own issuer (`no-ca` when this node has none). `origin` is who
   * asked, for the issuer's per-origin bound (default `self`: this node's own renewal).
   */
  runLocal(bytes: Uint8Array, origin?: string): Promise<JoinAnswer>
  /** Sends a signing request to a CA holder and returns its answer. */
  askCa(bytes: Uint8Array, signal: AbortSignal): Promise<JoinAnswer>
  /**
   * Our issuer when we have one (with `origin`), else a CA holder (counted as forwarded; the CA
   * then takes this member as the origin).
   */
  submit(bytes: Uint8Array, forwardSignal: () => AbortSignal, origin: string): Promise<JoinAnswer>
}

/** The issuer origin of this node's own requests (renewal). */
export const SELF_ORIGIN = 'self'

/** The issuer origin of a direct join on a CA node: the joiner's remote IP. */
export function ipOrigin(host: string): string {
  return `ip:${host}`
}

/** An error answer. */
export function errorAnswer(code: JoinErrorAnswerCode, message: string): JoinAnswer {
  return { type: 'error', code, message }
}

/** Creates the CA client. */
export function createCaClient(components: EnrolmentComponents, counters: EnrolmentCounters): CaClient {
  const { log } = components
  let requestSeq = 0

  /** Feeds a signing request to our own issuer. */
  const runLocal = async (bytes: Uint8Array, origin = SELF_ORIGIN): Promise<JoinAnswer> => {
    const issuer = components.issuer()
    if (issuer === undefined) return errorAnswer('no-ca', 'this member holds no CA')
    const requestId = `enrolment-${++requestSeq}`
    try {
      const effects = await issuer.run({ type: 'signing-request', requestId, bytes, origin })
      for (const effect of effects) {
        if (effect.type === 'reply' && effect.requestId === requestId)
          return { type: 'result', result: effect.result }
      }
      return errorAnswer('ca-failure', 'the CA gave no answer')
    } catch (err) {
      // One of several CA holders, not the issuer now: the caller (or the joiner) tries another holder.
      if (err instanceof NotIssuerError) return errorAnswer('no-ca', err.message)
      log.error({ err: String(err) }, 'issuer failed on a signing request')
      return errorAnswer('ca-failure', 'the CA could not record the request; try again later')
    }
  }

  /** CA holders to forward to: connected verified peers first, then alive members with addresses. */
  const caCandidates = (): Array<{ peerId: string; addrs: readonly string[] }> => {
    const seen = new Set<string>([components.peerId])
    const out: Array<{ peerId: string; addrs: readonly string[] }> = []
    for (const [peerId, cert] of components.verifiedPeers()) {
      if (seen.has(peerId) || !cert.certificate.roles.includes('ca')) continue
      seen.add(peerId)
      out.push({ peerId, addrs: [] })
    }
    for (const member of components.members()) {
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
    // A CA that refused us for load is passed on as such, so the joiner knows to slow down.
    let lastRefusal: JoinAnswer | undefined
    for (const candidate of candidates) {
      try {
        const target = dialTarget(
          candidate.peerId,
          candidate.addrs,
          peer => components.host.getConnections(peer).length > 0,
        )
        const stream = await components.host.dialProtocol(target, CA_PROTOCOL, { signal })
        const lp = countedLpStream(stream, { maxDataLength: JOIN_ANSWER_BYTES_MAX }, components.traffic, 'ca')
        await lp.write(encodeJoinRequest({ type: 'csr', bytes }), { signal })
        const answer = decodeJoinAnswer((await lp.read({ signal })).subarray())
        await stream.close({ signal }).catch(() => {})
        if (!answer.ok) {
          lastProblem = `unreadable answer from ${candidate.peerId}: ${answer.detail}`
          continue
        }
        if (answer.message.type === 'result') return answer.message
        lastProblem = answer.message.type === 'error' ? answer.message.message : 'unexpected answer'
        if (
          answer.message.type === 'error' &&
          (answer.message.code === 'rate-limited' || answer.message.code === 'busy')
        )
          lastRefusal = answer.message
      } catch (err) {
        lastProblem = `${candidate.peerId}: ${(err as Error).message}`
        if (signal.aborted) break
      }
    }
    log.warn({ candidates: candidates.length, problem: lastProblem }, 'no CA holder answered')
    if (lastRefusal !== undefined) return lastRefusal
    return errorAnswer('no-ca', 'no CA holder is reachable from this member; try again later')
  }

  const submit = async (
    bytes: Uint8Array,
    forwardSignal: () => AbortSignal,
    origin: string,
  ): Promise<JoinAnswer> => {
    if (components.issuer() !== undefined) {
      const local = await runLocal(bytes, origin)
      // `no-ca` from our own issuer only comes from a CA holder that is not the issuer (one holder
      // never answers it): forward to the other holders, one of which is.
      if (local.type !== 'error' || local.code !== 'no-ca') return local
      const answer = await askCa(bytes, forwardSignal())
      if (answer.type === 'result') counters.forwarded += 1
      else counters.forwardFailed += 1
      return answer
    }
    const answer = await askCa(bytes, forwardSignal())
    if (answer.type === 'result') counters.forwarded += 1
    else counters.forwardFailed += 1
    return answer
  }

  return { runLocal, askCa, submit }
}
