/**
 * `/mesh/join/1.0.0`, open to uncertified joiners (the exchange is in join-protocol.ts): rate-limited
 * globally and per remote IP, size-limited and bounded in concurrency. The signing request goes to our
 * issuer or is forwarded to a CA holder (ca-client.ts).
 *
 * Hello timeout: admission cuts an inbound connection that has not passed hello after `helloTimeoutMs`
 * (it does not deny it). A joiner never passes hello, so one join exchange must fit in that window:
 * forwarding gets whatever remains of it (minus {@link JOIN_ANSWER_MARGIN_MS}), and a joiner that polls
 * opens a fresh connection per attempt. We chose this over exempting joining connections because it
 * keeps admission's one rule (no certificate, no lingering connection) and bounds what an uncertified
 * peer can hold open; a ticket join on loopback takes tens of milliseconds of the 3 to 15 s window.
 */
import type { Connection, Stream } from '@libp2p/interface'
import type { SigningResult } from '../../ca/issuer.js'
import {
  decodeJoinRequest,
  encodeJoinAnswer,
  JOIN_REQUEST_BYTES_MAX,
  type JoinAnswer,
} from '../../ca/join-wire.js'
import { countedLpStream } from '../counted-stream.js'
import type { RateLimiter } from '../rate-limit.js'
import type { Traffic } from '../traffic.js'
import { type CaClient, errorAnswer, ipOrigin } from './ca-client.js'
import {
  type EnrolmentComponents,
  type EnrolmentCounters,
  type EnrolmentInit,
  FORWARD_TIMEOUT_MS_MIN,
  JOIN_ANSWER_MARGIN_MS,
  JOIN_EXCHANGES_CONCURRENT_MAX,
  remoteHostOf,
  type StreamHandler,
} from './types.js'

/** Writes one answer (counted on `traffic` as `protocol`) and closes the stream. */
export async function answerAndClose(
  stream: Stream,
  answer: JoinAnswer,
  signal: AbortSignal,
  counted: { readonly traffic: Traffic; readonly protocol: 'join' | 'ca' },
): Promise<void> {
  const lp = countedLpStream(
    stream,
    { maxDataLength: JOIN_REQUEST_BYTES_MAX },
    counted.traffic,
    counted.protocol,
  )
  await lp.write(encodeJoinAnswer(answer), { signal })
  await stream.close({ signal })
}

/** Creates the `/mesh/join/1.0.0` handler. */
export function createJoinHandler(
  components: EnrolmentComponents,
  init: EnrolmentInit,
  parts: { readonly counters: EnrolmentCounters; readonly limiter: RateLimiter; readonly ca: CaClient },
): StreamHandler {
  const { log, clock, caPublicKey, traffic } = components
  const { counters, limiter } = parts
  const counted = { traffic, protocol: 'join' } as const
  let joinActive = 0

  const countReadFailure = (err: unknown): void => {
    if ((err as Error).name === 'InvalidDataLengthError') counters.joinTooLarge += 1
    else counters.joinMalformed += 1
  }

  /** `/mesh/join/1.0.0`: NOT gated, the peer holds no certificate yet. */
  const handleJoin = async (stream: Stream, connection: Connection): Promise<void> => {
    counters.joinStreams += 1
    // The connection is cut when the hello window ends; answer before that. libp2p stamps the
    // timeline with the wall clock, so the remaining window is measured with it too.
    const windowEndMs = connection.timeline.open + init.helloTimeoutMs
    const signal = AbortSignal.timeout(Math.max(FORWARD_TIMEOUT_MS_MIN, init.helloTimeoutMs))
    const remoteHost = remoteHostOf(connection.remoteAddr.toString())
    const limit = limiter.take(remoteHost, clock.nowMs())
    if (limit !== 'ok') {
      counters.joinRateLimited += 1
      log.debug({ peer: connection.remotePeer.toString(), bucket: limit }, 'join rate limit hit')
      await answerAndClose(
        stream,
        errorAnswer('rate-limited', 'too many join attempts; retry in a few seconds'),
        signal,
        counted,
      ).catch(() => stream.abort(new Error('rate limited')))
      return
    }
    if (joinActive >= JOIN_EXCHANGES_CONCURRENT_MAX) {
      counters.joinBusy += 1
      await answerAndClose(
        stream,
        errorAnswer('busy', 'this member is busy; retry in a few seconds'),
        signal,
        counted,
      ).catch(() => stream.abort(new Error('busy')))
      return
    }
    joinActive += 1
    try {
      const lp = countedLpStream(stream, { maxDataLength: JOIN_REQUEST_BYTES_MAX }, traffic, 'join')
      const first = decodeJoinRequest((await lp.read({ signal })).subarray())
      if (!first.ok || first.message.type !== 'hello') {
        counters.joinMalformed += 1
        await lp.write(encodeJoinAnswer(errorAnswer('malformed', 'expected hello first')), { signal })
        await stream.close({ signal })
        return
      }
      await lp.write(
        encodeJoinAnswer({ type: 'hello', caPublicKey, cert: components.credentials.certificate().bytes }),
        {
          signal,
        },
      )
      const second = decodeJoinRequest((await lp.read({ signal })).subarray())
      if (!second.ok || second.message.type !== 'csr') {
        if (!second.ok && second.reason === 'too-large') counters.joinTooLarge += 1
        else counters.joinMalformed += 1
        await lp.write(encodeJoinAnswer(errorAnswer('malformed', 'expected a signing request')), { signal })
        await stream.close({ signal })
        return
      }
      const answer = await parts.ca.submit(
        second.message.bytes,
        () =>
          AbortSignal.any([
            signal,
            AbortSignal.timeout(
              Math.max(FORWARD_TIMEOUT_MS_MIN, windowEndMs - JOIN_ANSWER_MARGIN_MS - clock.nowMs()),
            ),
          ]),
        ipOrigin(remoteHost),
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

  return handleJoin
}

function refusalOf(result: SigningResult): { reason?: string } {
  return result.status === 'refused' ? { reason: result.reason } : {}
}
