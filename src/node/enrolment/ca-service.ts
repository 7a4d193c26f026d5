/**
 * `/mesh/ca/1.0.0`, on CA nodes only and admission-gated: signing requests forwarded by members for
 * their joiners, and renewals. One `csr` answered by one `result`.
 *
 * Order of refusals: rate limit (a token per admitted peer and one for the node, `rate-limited`),
 * then concurrency (`busy`), then the issuer, which bounds the pending requests of each origin. The
 * origin handed to the issuer is the sending member's certificate name (its peer id if we hold no
 * certificate for it), so a certified member flooding ticketless requests with fresh keys is stopped
 * by its own allowance and cannot crowd out everyone else's approval-based joins (security item 6).
 */
import type { Connection, Stream } from '@libp2p/interface'
import { decodeJoinRequest, encodeJoinAnswer, JOIN_REQUEST_BYTES_MAX } from '../../ca/join-wire.js'
import { countedLpStream } from '../counted-stream.js'
import type { KeyedRateLimiter } from '../rate-limit.js'
import { type CaClient, errorAnswer } from './ca-client.js'
import { answerAndClose } from './join-service.js'
import {
  CA_EXCHANGE_TIMEOUT_MS,
  CA_EXCHANGES_CONCURRENT_MAX,
  type CaServiceCounters,
  type EnrolmentComponents,
  type EnrolmentCounters,
  type StreamHandler,
} from './types.js'

/** Creates the `/mesh/ca/1.0.0` handler (wrap it with admission's gate). */
export function createCaHandler(
  components: EnrolmentComponents,
  parts: {
    readonly counters: EnrolmentCounters & CaServiceCounters
    readonly ca: CaClient
    /** Keyed by the remote peer id. */
    readonly limiter: KeyedRateLimiter
  },
): StreamHandler {
  const { log, clock, traffic } = components
  const { counters, limiter } = parts
  const counted = { traffic, protocol: 'ca' } as const
  let caActive = 0

  /** The issuer's origin for a request from `peerId`: its certificate name, else the peer id. */
  const originOf = (peerId: string): string => {
    for (const [verified, cert] of components.verifiedPeers())
      if (verified === peerId) return cert.certificate.name
    return peerId
  }

  /** `/mesh/ca/1.0.0` on CA nodes (wrapped by admission.gated). */
  const handleCa = async (stream: Stream, connection: Connection): Promise<void> => {
    counters.caRequests += 1
    const signal = AbortSignal.timeout(CA_EXCHANGE_TIMEOUT_MS)
    const peer = connection.remotePeer.toString()
    const limit = limiter.take(peer, clock.nowMs())
    if (limit !== 'ok') {
      counters.caRateLimited += 1
      log.debug({ peer, bucket: limit }, 'CA rate limit hit')
      await answerAndClose(
        stream,
        errorAnswer('rate-limited', 'too many requests to the CA; retry in a few seconds'),
        signal,
        counted,
      ).catch(() => stream.abort(new Error('rate limited')))
      return
    }
    if (caActive >= CA_EXCHANGES_CONCURRENT_MAX) {
      counters.caBusy += 1
      await answerAndClose(stream, errorAnswer('busy', 'the CA is busy; retry later'), signal, counted).catch(
        () => stream.abort(new Error('busy')),
      )
      return
    }
    caActive += 1
    try {
      const lp = countedLpStream(stream, { maxDataLength: JOIN_REQUEST_BYTES_MAX }, traffic, 'ca')
      const request = decodeJoinRequest((await lp.read({ signal })).subarray())
      const answer =
        request.ok && request.message.type === 'csr'
          ? await parts.ca.runLocal(request.message.bytes, originOf(peer))
          : errorAnswer('malformed', 'expected a signing request')
      await lp.write(encodeJoinAnswer(answer), { signal })
      await stream.close({ signal })
    } catch (err) {
      log.debug({ peer, err: (err as Error).message }, 'CA exchange failed')
      stream.abort(err as Error)
    } finally {
      caActive -= 1
    }
  }

  return handleCa
}
