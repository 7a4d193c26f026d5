/**
 * `/mesh/ca/1.0.0`, on CA nodes only and admission-gated: signing requests forwarded by members for
 * their joiners, and renewals. One `csr` answered by one `result`.
 */
import type { Connection, Stream } from '@libp2p/interface'
import { lpStream } from '@libp2p/utils'
import { decodeJoinRequest, encodeJoinAnswer, JOIN_REQUEST_BYTES_MAX } from '../../ca/join-wire.js'
import { type CaClient, errorAnswer } from './ca-client.js'
import { answerAndClose } from './join-service.js'
import {
  CA_EXCHANGE_TIMEOUT_MS,
  CA_EXCHANGES_CONCURRENT_MAX,
  type EnrolmentComponents,
  type EnrolmentCounters,
  type StreamHandler,
} from './types.js'

/** Creates the `/mesh/ca/1.0.0` handler (wrap it with admission's gate). */
export function createCaHandler(
  components: EnrolmentComponents,
  parts: { readonly counters: EnrolmentCounters; readonly ca: CaClient },
): StreamHandler {
  const { log } = components
  const { counters } = parts
  let caActive = 0

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
          ? await parts.ca.runLocal(request.message.bytes)
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

  return handleCa
}
