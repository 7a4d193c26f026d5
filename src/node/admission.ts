/**
 * Admission: only peers holding a certificate from our CA get anything from us (LIBP2P-NOTES §2).
 *
 * Right after a connection opens, the dialer runs `/mesh/hello/1.0.0`: each side sends its certificate
 * (and the newest revocation list it has), and each verifies the other's against the CA, the revocation
 * list and the Noise-authenticated PeerId of the connection. Until a peer passes, gossipsub streams to
 * and from it are held by stream middleware ({@link GatedChain}), so it never enters our topic-peer set:
 * we neither publish to it nor read what it sends. A peer that fails is hung up on and denied on
 * re-dial by the connection gater; one that says nothing is cut at `helloTimeoutMs` (but not denied:
 * joiners and slow peers are not attackers).
 */
import type { Connection, ConnectionGater, Libp2p, PeerId, Stream, StreamMiddleware } from '@libp2p/interface'
import { lpStream } from '@libp2p/utils'
import type { Logger } from 'pino'
import { REVOCATION_LIST_BYTES_MAX } from '../ca/revocation.js'
import type { CertificateVerifier, SignedCertificate } from '../ca/types.js'
import { decodeCbor, encodeCbor, isRecord } from '../wire/cbor.js'
import type { Clock } from './clock.js'

/** The hello protocol id. */
export const HELLO_PROTOCOL = '/mesh/hello/1.0.0'
/** Largest hello message: a certificate plus a revocation list of the largest allowed size. */
export const HELLO_BYTES_MAX = REVOCATION_LIST_BYTES_MAX + 64 * 1024
/**
 * How long a peer that failed hello stays denied. Revoked peers are denied without expiry for the life
 * of the process (and their certificates are refused by the verifier whatever the deny list holds).
 */
export const DENY_TTL_MS = 10 * 60_000
/** Most denied peers remembered; the oldest entry is dropped beyond it. */
export const DENIED_PEERS_MAX = 10_000

/** Gossip streams wait for the hello verdict up to this many hello timeouts (the verdict normally ends it). */
export const GATE_WAIT_HELLO_TIMEOUTS = 4

/** Gossipsub protocol ids whose streams wait for the hello verdict. */
export const GOSSIPSUB_PROTOCOLS = ['/meshsub/1.2.0', '/meshsub/1.1.0', '/meshsub/1.0.0']

/** The revocation list as admission needs it. */
export interface RevocationPort {
  /** The newest list we hold, encoded, or undefined when there is none. */
  current(): Uint8Array | undefined
  /** Offers a list received from a peer; adopts it when it is valid and newer. Never throws. */
  offer(bytes: Uint8Array): void
}

/** What admission needs from the rest of the agent. */
export interface AdmissionInit {
  /** Our certificate, encoded; a function because renewal replaces it. */
  readonly ownCertificate: () => Uint8Array
  readonly verify: CertificateVerifier
  readonly clock: Clock
  readonly helloTimeoutMs: number
  readonly revocations: RevocationPort
  readonly log: Logger
  /** Called once a peer is verified (e.g. to feed membership). */
  readonly onAdmitted?: (peerId: string, certificate: SignedCertificate) => void
}

/** Counters of admission outcomes, for `mesh members --debug` style introspection and tests. */
export interface AdmissionCounters {
  admitted: number
  refused: number
  timedOut: number
  deniedDials: number
}

/** The admission layer of one node. */
export interface Admission {
  /** Hooks for `createLibp2p({ connectionGater })`. */
  readonly gater: ConnectionGater
  readonly counters: AdmissionCounters
  /** Registers the hello handler, connection listeners and gossipsub middleware on `node`. */
  attach(node: Libp2p): Promise<void>
  /** Resolves to the peer's verified certificate, or undefined if it fails or `timeoutMs` passes. */
  waitFor(peerId: PeerId | string, timeoutMs?: number): Promise<SignedCertificate | undefined>
  /** The verified certificate of a connected peer, if any. */
  certificateOf(peerId: PeerId | string): SignedCertificate | undefined
  /** All currently verified peers. */
  verifiedPeers(): Map<string, SignedCertificate>
  /** Denies a peer (for `ttlMs`, or for good when undefined) and hangs up on it. */
  deny(peerId: string, reason: string, ttlMs?: number): void
  /** Hangs up on and denies every verified peer whose certificate serial is in `serials`. */
  revokeSerials(serials: ReadonlySet<string>): void
  /** Wraps a protocol handler so it runs only for verified peers; others get their stream aborted. */
  gated(
    handler: (stream: Stream, connection: Connection, certificate: SignedCertificate) => Promise<void>,
  ): (stream: Stream, connection: Connection) => Promise<void>
}

interface Waiter {
  resolve: (cert: SignedCertificate | undefined) => void
}

/** Creates the admission layer. Call {@link Admission.attach} once the libp2p node exists (before start). */
export function createAdmission(init: AdmissionInit): Admission {
  const { clock } = init
  const verified = new Map<string, SignedCertificate>()
  const failed = new Set<string>()
  const waiters = new Map<string, Set<Waiter>>()
  const denied = new Map<string, number>() // peerId → until (ms), Infinity for good
  const counters: AdmissionCounters = { admitted: 0, refused: 0, timedOut: 0, deniedDials: 0 }
  let node: Libp2p | undefined
  const log = init.log

  const isDenied = (peerId: PeerId): boolean => {
    const id = peerId.toString()
    const until = denied.get(id)
    if (until === undefined) return false
    if (until <= clock.nowMs()) {
      denied.delete(id)
      return false
    }
    counters.deniedDials += 1
    return true
  }

  const settle = (peerId: string, certificate: SignedCertificate | undefined): void => {
    if (certificate !== undefined) {
      verified.set(peerId, certificate)
      failed.delete(peerId)
    } else {
      failed.add(peerId)
    }
    const set = waiters.get(peerId)
    if (set === undefined) return
    waiters.delete(peerId)
    for (const w of set) w.resolve(certificate)
  }

  /** Verifies a peer's hello; returns the certificate or a reason. */
  const check = (
    connection: Connection,
    message: unknown,
  ): { ok: true; certificate: SignedCertificate } | { ok: false; reason: string } => {
    if (!isRecord(message) || !(message.cert instanceof Uint8Array))
      return { ok: false, reason: 'malformed hello' }
    if (message.crl instanceof Uint8Array) init.revocations.offer(message.crl)
    const verdict = init.verify(message.cert, clock.nowMs())
    if (!verdict.ok) return { ok: false, reason: `certificate ${verdict.reason}: ${verdict.detail}` }
    if (verdict.signed.certificate.peerId !== connection.remotePeer.toString()) {
      return { ok: false, reason: 'certificate belongs to another peer' }
    }
    return { ok: true, certificate: verdict.signed }
  }

  const helloMessage = (): Uint8Array => {
    const crl = init.revocations.current()
    return encodeCbor({ v: 1, cert: init.ownCertificate(), crl })
  }

  const admit = (connection: Connection, certificate: SignedCertificate): void => {
    const peerId = connection.remotePeer.toString()
    const first = !verified.has(peerId)
    settle(peerId, certificate)
    if (first) {
      counters.admitted += 1
      log.debug({ peer: peerId, name: certificate.certificate.name }, 'peer admitted')
      init.onAdmitted?.(peerId, certificate)
    }
  }

  const refuse = (connection: Connection, reason: string): void => {
    const peerId = connection.remotePeer.toString()
    counters.refused += 1
    log.warn({ peer: peerId, addr: connection.remoteAddr.toString(), reason }, 'peer refused')
    api.deny(peerId, reason, DENY_TTL_MS)
  }

  /** Dialer side: send ours, read theirs. */
  const helloOut = async (connection: Connection): Promise<void> => {
    const signal = AbortSignal.timeout(init.helloTimeoutMs)
    let stream: Stream | undefined
    try {
      stream = await connection.newStream(HELLO_PROTOCOL, { signal })
      const lp = lpStream(stream, { maxDataLength: HELLO_BYTES_MAX })
      await lp.write(helloMessage(), { signal })
      const reply = decodeCbor((await lp.read({ signal })).subarray(), HELLO_BYTES_MAX)
      if (isRecord(reply) && typeof reply.error === 'string') {
        // The other side refused us; not evidence against it.
        log.warn({ peer: connection.remotePeer.toString(), reason: reply.error }, 'refused by peer')
        settle(connection.remotePeer.toString(), undefined)
        await connection.close().catch(() => {})
        return
      }
      const result = check(connection, reply)
      if (result.ok) admit(connection, result.certificate)
      else refuse(connection, result.reason)
      await stream.close({ signal }).catch(() => {})
    } catch (err) {
      stream?.abort(err as Error)
      if (connection.status === 'open' && !verified.has(connection.remotePeer.toString())) {
        counters.timedOut += 1
        log.debug({ peer: connection.remotePeer.toString(), err: (err as Error).message }, 'hello failed')
        settle(connection.remotePeer.toString(), undefined)
        await connection.close().catch(() => {})
      }
    }
  }

  /** Listener side: read theirs, answer with ours (or the reason for refusing). */
  const helloIn = async (stream: Stream, connection: Connection): Promise<void> => {
    const signal = AbortSignal.timeout(init.helloTimeoutMs)
    const lp = lpStream(stream, { maxDataLength: HELLO_BYTES_MAX })
    let message: unknown
    try {
      message = decodeCbor((await lp.read({ signal })).subarray(), HELLO_BYTES_MAX)
    } catch (err) {
      // A closed, reset or slow stream says nothing against the peer (it may be a duplicate connection
      // being pruned, or a loaded machine): drop the connection without denying the peer. Only a
      // certificate that fails verification gets a peer denied.
      counters.timedOut += 1
      log.debug({ peer: connection.remotePeer.toString(), err: (err as Error).message }, 'hello not received')
      stream.abort(err as Error)
      if (!verified.has(connection.remotePeer.toString())) await connection.close().catch(() => {})
      return
    }
    const result = check(connection, message)
    if (!result.ok) {
      await lp.write(encodeCbor({ v: 1, error: result.reason }), { signal }).catch(() => {})
      await stream.close({ signal }).catch(() => {})
      refuse(connection, result.reason)
      return
    }
    await lp.write(helloMessage(), { signal })
    await stream.close({ signal }).catch(() => {})
    admit(connection, result.certificate)
  }

  const api: Admission = {
    counters,
    gater: {
      denyDialPeer: isDenied,
      denyInboundEncryptedConnection: isDenied,
      denyOutboundEncryptedConnection: isDenied,
    },

    async attach(libp2p) {
      node = libp2p
      await libp2p.handle(HELLO_PROTOCOL, helloIn, { maxInboundStreams: 4 })
      for (const protocol of GOSSIPSUB_PROTOCOLS) {
        libp2p.use(
          protocol,
          new GatedChain(async (stream, connection, next) => {
            // Wait for the verdict, not for a fixed time: on a loaded machine hello can take longer than
            // its timeout's worth of queueing, and a gossip stream aborted here is never reopened.
            const certificate = await api.waitFor(
              connection.remotePeer,
              GATE_WAIT_HELLO_TIMEOUTS * init.helloTimeoutMs,
            )
            if (certificate === undefined) throw new Error('peer not admitted')
            next(stream, connection)
          }),
        )
      }
      libp2p.addEventListener('connection:open', evt => {
        const connection = evt.detail
        const peerId = connection.remotePeer.toString()
        if (connection.direction === 'outbound') {
          // A second connection to a verified peer needs no second hello.
          if (!verified.has(peerId)) void helloOut(connection)
          return
        }
        clock.setTimer(() => {
          if (connection.status === 'open' && !verified.has(peerId)) {
            counters.timedOut += 1
            log.debug({ peer: peerId }, 'no hello in time; closing')
            void connection.close().catch(() => {})
          }
        }, init.helloTimeoutMs)
      })
      libp2p.addEventListener('peer:disconnect', evt => {
        const peerId = evt.detail.toString()
        verified.delete(peerId)
        failed.delete(peerId)
        // Nobody waiting on this peer's hello will get a verdict now.
        const set = waiters.get(peerId)
        waiters.delete(peerId)
        for (const w of set ?? []) w.resolve(undefined)
      })
    },

    waitFor(peerId, timeoutMs = init.helloTimeoutMs) {
      const id = peerId.toString()
      const known = verified.get(id)
      if (known !== undefined) return Promise.resolve(known)
      if (failed.has(id) && (node?.getConnections(peerId as PeerId).length ?? 0) === 0) {
        return Promise.resolve(undefined)
      }
      return new Promise(resolve => {
        let set = waiters.get(id)
        if (set === undefined) {
          set = new Set()
          waiters.set(id, set)
        }
        const waiter: Waiter = {
          resolve: cert => {
            timer.cancel()
            resolve(cert)
          },
        }
        const timer = clock.setTimer(
          () => {
            set?.delete(waiter)
            resolve(undefined)
          },
          timeoutMs,
          { keepAlive: true },
        )
        set.add(waiter)
      })
    },

    certificateOf(peerId) {
      return verified.get(peerId.toString())
    },

    verifiedPeers() {
      return new Map(verified)
    },

    deny(peerId, reason, ttlMs) {
      if (denied.size >= DENIED_PEERS_MAX) {
        const oldest = denied.keys().next().value
        if (oldest !== undefined) denied.delete(oldest)
      }
      denied.set(peerId, ttlMs === undefined ? Number.POSITIVE_INFINITY : clock.nowMs() + ttlMs)
      verified.delete(peerId)
      settle(peerId, undefined)
      if (node !== undefined) {
        const conns = node.getConnections().filter(c => c.remotePeer.toString() === peerId)
        for (const c of conns) void c.close().catch(() => c.abort(new Error(reason)))
      }
    },

    revokeSerials(serials) {
      for (const [peerId, cert] of verified) {
        if (serials.has(cert.certificate.serial)) {
          log.warn({ peer: peerId, name: cert.certificate.name }, 'dropping revoked peer')
          api.deny(peerId, 'revoked')
        }
      }
    },

    gated(handler) {
      return async (stream, connection) => {
        const certificate = await api.waitFor(connection.remotePeer)
        if (certificate === undefined) {
          stream.abort(new Error('peer not admitted'))
          return
        }
        await handler(stream, connection, certificate)
      }
    },
  }
  return api
}

/**
 * A middleware chain that works around libp2p ≤ 3.3.11 mutating the stored chain on every inbound
 * stream (`getMiddleware(protocol).push(handlerWrapper)`; upstream PR js-libp2p#3534). `push` only
 * remembers the newest handler wrapper, which the tail entry runs for inbound streams; outbound streams
 * skip it. Once upstream copies the array instead, `push` is never called and this is a plain chain.
 */
export class GatedChain extends Array<StreamMiddleware> {
  static override get [Symbol.species](): ArrayConstructor {
    return Array
  }

  private inboundTail: StreamMiddleware | undefined

  constructor(...middleware: StreamMiddleware[]) {
    super()
    super.push(...middleware, (stream, connection, next) => {
      const tail = this.inboundTail
      if (tail !== undefined && stream.direction === 'inbound') return tail(stream, connection, next)
      next(stream, connection)
    })
  }

  override push(...items: StreamMiddleware[]): number {
    this.inboundTail = items[items.length - 1]
    return this.length
  }
}
