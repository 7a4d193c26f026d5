/**
 * Admission: only peers holding a certificate from our CA get anything from us (LIBP2P-NOTES §2).
 *
 * Right after a connection opens, the dialer runs `/mesh/hello/1.0.0`: each side sends its certificate
 * (and the newest revocation list it has), and each verifies the other's against the CA, the revocation
 * list and the Noise-authenticated PeerId of the connection. Until a peer passes, gossipsub streams to
 * and from it are held by stream middleware ({@link GatedChain}), so it never enters our topic-peer set:
 * we neither publish to it nor read what it sends. A peer that fails is hung up on and denied on
 * re-dial by the connection gater; one that says nothing is cut at `helloTimeoutMs` (but not denied:
 * joiners and slow peers are not attackers). A peer whose certificate is revoked is hung up on and never
 * dialled again, but may still dial in: its hello is refused with the CA-signed list that revokes it, so
 * it learns (and can verify) that it is out (hello.ts), and is then denied both ways for a while.
 *
 * This module wires the parts and owns the verdicts (verified peers, waiters): the exchange itself is in
 * hello.ts, the deny list behind the gater in deny-list.ts, the gossipsub gate in gated-chain.ts.
 */
import type { Connection, ConnectionGater, Libp2p, PeerId, Stream } from '@libp2p/interface'
import type { SignedCertificate } from '../ca/types.js'
import { createDenyList, DENY_TTL_MS } from './deny-list.js'
import type { EventBus } from './events.js'
import { useGossipsubGate } from './gated-chain.js'
import { createHello, HELLO_PROTOCOL, type HelloConfig } from './hello.js'

export { DENIED_PEERS_MAX, DENY_TTL_MS } from './deny-list.js'
export { GATE_WAIT_HELLO_TIMEOUTS, GatedChain, GOSSIPSUB_PROTOCOLS } from './gated-chain.js'
export { HELLO_BYTES_MAX, HELLO_PROTOCOL, type RevocationPort } from './hello.js'

/** What admission needs from the rest of the agent: the hello's needs, and whom to tell of admissions. */
export interface AdmissionInit extends HelloConfig {
  /** Called once a peer is verified (e.g. to feed membership). */
  readonly onAdmitted?: (peerId: string, certificate: SignedCertificate) => void
  /** Where admissions and refusals are reported (the audit log); optional. */
  readonly events?: Pick<EventBus, 'emit'>
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
  /**
   * Hangs up on every verified peer whose certificate serial is in `serials` and never dials it again;
   * its inbound dials still reach the hello, which refuses them with the revocation list as proof.
   */
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
  const counters: AdmissionCounters = { admitted: 0, refused: 0, timedOut: 0, deniedDials: 0 }
  const denied = createDenyList({
    clock,
    onHit: () => {
      counters.deniedDials += 1
    },
  })
  let node: Libp2p | undefined
  const log = init.log

  const isDeniedInbound = (peerId: PeerId): boolean => denied.denies(peerId, 'inbound')
  const isDeniedOutbound = (peerId: PeerId): boolean => denied.denies(peerId, 'outbound')

  /** Closes every connection to `peerId` (aborting one that will not close). */
  const hangUp = (peerId: string, reason: string): void => {
    if (node === undefined) return
    const conns = node.getConnections().filter(c => c.remotePeer.toString() === peerId)
    for (const c of conns) void c.close().catch(() => c.abort(new Error(reason)))
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

  const hello = createHello(init, {
    isVerified: peerId => verified.has(peerId),
    admit(connection, certificate) {
      const peerId = connection.remotePeer.toString()
      const first = !verified.has(peerId)
      settle(peerId, certificate)
      if (first) {
        counters.admitted += 1
        log.debug({ peer: peerId, name: certificate.certificate.name }, 'peer admitted')
        init.events?.emit({ type: 'peer-admitted', peer: peerId, certificate, atMs: clock.nowMs() })
        init.onAdmitted?.(peerId, certificate)
      }
    },
    refuse(connection, reason) {
      const peerId = connection.remotePeer.toString()
      counters.refused += 1
      const addr = connection.remoteAddr.toString()
      log.warn({ peer: peerId, addr, reason }, 'peer refused')
      init.events?.emit({ type: 'peer-refused', peer: peerId, addr, reason, atMs: clock.nowMs() })
      api.deny(peerId, reason, DENY_TTL_MS)
    },
    fail: peerId => settle(peerId, undefined),
    timedOut: () => {
      counters.timedOut += 1
    },
  })

  const api: Admission = {
    counters,
    gater: {
      denyDialPeer: isDeniedOutbound,
      denyInboundEncryptedConnection: isDeniedInbound,
      denyOutboundEncryptedConnection: isDeniedOutbound,
    },

    async attach(libp2p) {
      node = libp2p
      await libp2p.handle(HELLO_PROTOCOL, hello.answer, { maxInboundStreams: 4 })
      useGossipsubGate(libp2p, api.waitFor, init.helloTimeoutMs)
      libp2p.addEventListener('connection:open', evt => hello.onConnectionOpen(evt.detail))
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
      denied.add(peerId, ttlMs)
      verified.delete(peerId)
      settle(peerId, undefined)
      hangUp(peerId, reason)
    },

    revokeSerials(serials) {
      for (const [peerId, cert] of verified) {
        if (serials.has(cert.certificate.serial)) {
          log.warn({ peer: peerId, name: cert.certificate.name }, 'dropping revoked peer')
          // Never dialled again; its next dial in is refused at hello with the list as proof.
          denied.add(peerId, undefined, ['outbound'])
          verified.delete(peerId)
          settle(peerId, undefined)
          hangUp(peerId, 'revoked')
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
