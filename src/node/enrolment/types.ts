/**
 * Enrolment's contract: the narrow set of node parts it runs on (the composition root fills them),
 * its settings, counters and limits.
 */
import type { Connection, Stream } from '@libp2p/interface'
import type { RenewalPolicy } from '../../ca/renewal-schedule.js'
import type { SignedCertificate } from '../../ca/types.js'
import type { MemberView } from '../../membership/view.js'
import type { Clock, Random } from '../clock.js'
import type { Credentials } from '../credentials.js'
import type { Host } from '../host.js'
import type { IssuerDriver } from '../issuer-driver.js'
import type { Logger } from '../log.js'
import type {
  KeyedRateLimitCounters,
  KeyedRateLimitPolicy,
  RateLimitCounters,
  RateLimitPolicy,
} from '../rate-limit.js'
import type { Traffic } from '../traffic.js'

/** Default join rate limit: 20 exchanges/s (burst 60) per node, 2/s (burst 20) per remote IP, 4096 IPs tracked. */
export const DEFAULT_JOIN_RATE_LIMIT: RateLimitPolicy = {
  global: { ratePerSecond: 20, burst: 60 },
  perIp: { ratePerSecond: 2, burst: 20 },
  ipEntriesMax: 4096,
}
/**
 * Default `/mesh/ca/1.0.0` rate limit on a CA node: 20 requests/s (burst 60) per admitted peer, the
 * same as a member's whole join limit (an honest member forwarding its joiners never hits it), and
 * 100/s (burst 300) for the node; 4096 peers tracked. Without it one certified member could fill the
 * pending table with ticketless requests in seconds (security item 6).
 */
export const DEFAULT_CA_RATE_LIMIT: KeyedRateLimitPolicy = {
  global: { ratePerSecond: 100, burst: 300 },
  perKey: { ratePerSecond: 20, burst: 60 },
  keyEntriesMax: 4096,
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

/** Enrolment counters, all zero (the rate limiter's own counters are shared, not copied). */
export function emptyEnrolmentCounters(rateLimit: RateLimitCounters): EnrolmentCounters {
  return {
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
    rateLimit,
  }
}

/**
 * Counters of the CA service (`/mesh/ca/1.0.0`), kept in the same counters object as
 * {@link EnrolmentCounters} (`Enrolment.counters`).
 */
export interface CaServiceCounters {
  /** Requests refused `rate-limited` (per-peer or global bucket empty). */
  caRateLimited: number
  readonly caRateLimit: KeyedRateLimitCounters
}

/** A protocol handler. */
export type StreamHandler = (stream: Stream, connection: Connection) => Promise<void>

/** What enrolment needs from the node. */
export interface EnrolmentComponents {
  readonly peerId: string
  readonly host: Pick<Host, 'handle' | 'unhandle' | 'dialProtocol' | 'getConnections'>
  /** Wraps a handler so that only admitted (certified) peers reach it. */
  readonly gated: (handler: StreamHandler) => StreamHandler
  /** Currently admitted peers and their certificates. */
  readonly verifiedPeers: () => Iterable<[string, SignedCertificate]>
  readonly members: () => readonly MemberView[]
  /** This node's issuer, on CA nodes. */
  readonly issuer: () => IssuerDriver | undefined
  /** The node's key and certificate; renewal replaces the certificate. */
  readonly credentials: Credentials
  /** Adopts a revocation list when valid and newer (renewal answers carry one). */
  readonly offerRevocations: (bytes: Uint8Array) => boolean
  readonly caPublicKey: Uint8Array
  readonly clock: Clock
  readonly random: Random
  readonly log: Logger
  /** Counts every frame of `/mesh/join` (`join`) and `/mesh/ca` (`ca`), both ways. */
  readonly traffic: Traffic
}

/** Settings of enrolment. Durations in ms. */
export interface EnrolmentInit {
  /** Admission's hello window: a join exchange must finish inside it. */
  readonly helloTimeoutMs: number
  /** Certificate clock-skew tolerance shared with the CA. */
  readonly clockSkewToleranceMs: number
  readonly rateLimit?: RateLimitPolicy
  /** Rate limit of `/mesh/ca/1.0.0` on CA nodes, keyed by the admitted peer's id. */
  readonly caRateLimit?: KeyedRateLimitPolicy
  /** Renewal retry policy; the skew comes from above. */
  readonly renewal?: Partial<Omit<RenewalPolicy, 'clockSkewToleranceMs'>>
  /** Run the renewal timer (default true). */
  readonly renew?: boolean
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

/** The host part of a multiaddr (`/ip4/1.2.3.4/tcp/1` → `1.2.3.4`), the key of per-IP limits. */
export function remoteHostOf(addr: string): string {
  const match = /^\/(?:ip4|ip6|dns|dns4|dns6)\/([^/]+)/.exec(addr)
  return match?.[1] ?? addr
}
