/**
 * Enrolment, the network side of admission on a running node (the driver around the pure CA core):
 * the join service for uncertified joiners (join-service.ts), the CA service for members on CA nodes
 * (ca-service.ts), both answering through the CA client (ca-client.ts), and certificate renewal
 * (renewal.ts). It declares the narrow parts it needs in types.ts; the composition root fills them.
 */

import { CA_PROTOCOL, JOIN_PROTOCOL } from '../../ca/join-wire.js'
import {
  DEFAULT_RENEWAL_RECHECK_MAX_MS,
  DEFAULT_RENEWAL_RETRY_BASE_MS,
  DEFAULT_RENEWAL_RETRY_MAX_MS,
  DEFAULT_RENEWAL_RETRY_MIN_MS,
  type RenewalPolicy,
} from '../../ca/renewal-schedule.js'
import { createKeyedRateLimiter, createRateLimiter } from '../rate-limit.js'
import { createCaClient } from './ca-client.js'
import { createCaHandler } from './ca-service.js'
import { createJoinHandler } from './join-service.js'
import { createRenewal } from './renewal.js'
import {
  CA_EXCHANGES_CONCURRENT_MAX,
  type CaServiceCounters,
  DEFAULT_CA_RATE_LIMIT,
  DEFAULT_JOIN_RATE_LIMIT,
  type EnrolmentComponents,
  type EnrolmentCounters,
  type EnrolmentInit,
  emptyEnrolmentCounters,
  JOIN_STREAMS_PER_CONNECTION_MAX,
  type RenewalOutcome,
} from './types.js'

export * from './types.js'

/** The enrolment service of one node. */
export interface Enrolment {
  /** Registers the protocol handlers and starts the renewal timer. Idempotent. */
  start(): Promise<void>
  /** Unregisters the handlers and stops the timer. Idempotent. */
  stop(): Promise<void>
  /** Renews now (joins an attempt in flight). Never rejects. */
  renewNow(): Promise<RenewalOutcome>
  readonly counters: EnrolmentCounters & CaServiceCounters
}

/** Creates (but does not start) the enrolment service. */
export function createEnrolment(components: EnrolmentComponents, init: EnrolmentInit): Enrolment {
  const { host } = components
  const limiter = createRateLimiter(init.rateLimit ?? DEFAULT_JOIN_RATE_LIMIT)
  const caLimiter = createKeyedRateLimiter(init.caRateLimit ?? DEFAULT_CA_RATE_LIMIT)
  const policy: RenewalPolicy = {
    retryBaseMs: init.renewal?.retryBaseMs ?? DEFAULT_RENEWAL_RETRY_BASE_MS,
    retryMaxMs: init.renewal?.retryMaxMs ?? DEFAULT_RENEWAL_RETRY_MAX_MS,
    retryMinMs: init.renewal?.retryMinMs ?? DEFAULT_RENEWAL_RETRY_MIN_MS,
    recheckMaxMs: init.renewal?.recheckMaxMs ?? DEFAULT_RENEWAL_RECHECK_MAX_MS,
    clockSkewToleranceMs: init.clockSkewToleranceMs,
  }
  const counters: EnrolmentCounters & CaServiceCounters = {
    ...emptyEnrolmentCounters(limiter.counters),
    caRateLimited: 0,
    caRateLimit: caLimiter.counters,
  }
  const ca = createCaClient(components, counters)
  const handleJoin = createJoinHandler(components, init, { counters, limiter, ca })
  const handleCa = createCaHandler(components, { counters, ca, limiter: caLimiter })
  const renewal = createRenewal(components, init, { counters, ca, policy })
  let started = false
  let caHandled = false

  return {
    counters,
    renewNow: renewal.renewNow,
    async start() {
      if (started) return
      started = true
      await host.handle(JOIN_PROTOCOL, handleJoin, { maxInboundStreams: JOIN_STREAMS_PER_CONNECTION_MAX })
      if (components.issuer() !== undefined) {
        caHandled = true
        await host.handle(CA_PROTOCOL, components.gated(handleCa), {
          maxInboundStreams: CA_EXCHANGES_CONCURRENT_MAX,
        })
      }
      if (init.renew !== false) renewal.start()
    },
    async stop() {
      if (!started) return
      started = false
      renewal.stop()
      await host.unhandle(JOIN_PROTOCOL).catch(() => {})
      if (caHandled) await host.unhandle(CA_PROTOCOL).catch(() => {})
      caHandled = false
    },
  }
}
