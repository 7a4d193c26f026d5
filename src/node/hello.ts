/**
 * The certificate hello, `/mesh/hello/1.0.0` (LIBP2P-NOTES §2): the wire messages and both sides of
 * the exchange. Right after a connection opens, the dialer sends its certificate (and the newest
 * revocation list it has) and reads the listener's; the listener reads first and answers with its own
 * certificate, or with the reason it refuses. Each side verifies the other's certificate against the CA,
 * the revocation list and the Noise-authenticated PeerId of the connection.
 *
 * A listener that refuses a revoked certificate sends, with its reason, the CA-signed revocation list
 * that revokes it, so the revoked node learns it is revoked. The dialer believes only that list, checked
 * against the CA key like any other (RevocationPort.offer): a peer's bare word, the reason string, is
 * logged and changes nothing, or any peer could talk a node out of the mesh.
 *
 * Both hellos also carry the sender's newest CA-signed zone roster (src/ca/zone-roster.ts), so a node
 * that was away learns the voters' roster from its first peer. The receiver offers it once the sender's
 * certificate passed (ZoneRosterPort.offer checks it against the CA key); a malformed or foreign roster
 * is refused there and never fails the hello: only the certificate decides admission.
 *
 * Split out of admission.ts: this module knows the protocol and the verdict of one exchange, and
 * reports it through narrow callbacks ({@link HelloOutcomes}); admission owns what a verdict means
 * (the verified set, waiters, the deny list).
 */
import type { Connection, Stream } from '@libp2p/interface'
import type { Logger } from 'pino'
import { REVOCATION_LIST_BYTES_MAX } from '../ca/revocation.js'
import type { CertificateVerifier, SignedCertificate } from '../ca/types.js'
import { ZONE_ROSTER_BYTES_MAX } from '../ca/zone-roster.js'
import { decodeCbor, encodeCbor, isRecord } from '../wire/cbor.js'
import type { Clock } from './clock.js'
import { countedLpStream } from './counted-stream.js'
import type { Traffic } from './traffic.js'

/** The hello protocol id. */
export const HELLO_PROTOCOL = '/mesh/hello/1.0.0'
/** Largest hello message: a certificate plus a revocation list and a zone roster of the largest allowed sizes. */
export const HELLO_BYTES_MAX = REVOCATION_LIST_BYTES_MAX + ZONE_ROSTER_BYTES_MAX + 64 * 1024
/**
 * Most CBOR items a hello is decoded with: a map of at most five fields (v, cert, crl, roster, error),
 * whose values are byte strings or text. A hello arrives before its sender is authenticated; without
 * the bound, 2.6 MB of tiny maps in a field took 290-390 ms to decode (docs/fuzz.md).
 */
export const HELLO_ITEMS_MAX = 16

/** The revocation list as admission needs it. */
export interface RevocationPort {
  /** The newest list we hold, encoded, or undefined when there is none. */
  current(): Uint8Array | undefined
  /** Offers a list received from a peer; adopts it when it is valid and newer. Never throws. */
  offer(bytes: Uint8Array): void
}

/** The zone roster as the hello needs it (src/node/zone-rosters.ts provides it). */
export interface ZoneRosterPort {
  /** The newest roster we hold, encoded, or undefined when there is none. */
  current(): Uint8Array | undefined
  /** Offers a roster received from a peer; adopts it when it is valid and newer. Never throws. */
  offer(bytes: Uint8Array): void
}

/** The fields of a received hello message that are present with the right type; others are absent. */
export interface HelloFields {
  /** The sender's encoded certificate. */
  readonly cert?: Uint8Array
  /** The sender's newest revocation list, encoded. */
  readonly crl?: Uint8Array
  /** The sender's newest zone roster, encoded. */
  readonly roster?: Uint8Array
  /** Why the sender refuses us (a listener's answer to a hello it rejected); a claim, not a proof. */
  readonly error?: string
}

/**
 * Encodes a hello carrying our certificate and, when we hold them, our newest revocation list and zone
 * roster.
 */
export function encodeHello(
  cert: Uint8Array,
  crl: Uint8Array | undefined,
  roster?: Uint8Array | undefined,
): Uint8Array {
  return encodeCbor({ v: 1, cert, crl, roster })
}

/**
 * Encodes a listener's refusal, telling the dialer why its hello was rejected; `crl` is the newest
 * revocation list we hold, sent when it is what refuses the dialer (its proof, signed by the CA).
 */
export function encodeHelloRefusal(reason: string, crl?: Uint8Array): Uint8Array {
  return encodeCbor(crl === undefined ? { v: 1, error: reason } : { v: 1, error: reason, crl })
}

/** Decodes a hello message (a non-record decodes to no fields). @throws on bytes that are not CBOR */
export function decodeHello(bytes: Uint8Array): HelloFields {
  const message = decodeCbor(bytes, HELLO_BYTES_MAX, HELLO_ITEMS_MAX)
  if (!isRecord(message)) return {}
  return {
    ...(message.cert instanceof Uint8Array ? { cert: message.cert } : {}),
    ...(message.crl instanceof Uint8Array ? { crl: message.crl } : {}),
    ...(message.roster instanceof Uint8Array ? { roster: message.roster } : {}),
    ...(typeof message.error === 'string' ? { error: message.error } : {}),
  }
}

/** What the hello exchange reports to its owner. */
export interface HelloOutcomes {
  /** Whether the peer already passed (on another connection). */
  isVerified(peerId: string): boolean
  /** The peer's certificate verified. */
  admit(connection: Connection, certificate: SignedCertificate): void
  /** The peer's certificate failed verification: evidence against it. */
  refuse(connection: Connection, reason: string): void
  /** The dialer got no certificate (it was refused, or the exchange failed); no evidence against the peer. */
  fail(peerId: string): void
  /** The exchange did not complete in time (or the stream broke), counted by the owner. */
  timedOut(): void
}

/** What the hello exchange needs from the agent (admission's init extends it). */
export interface HelloConfig {
  /** Our certificate, encoded; a function because renewal replaces it. */
  readonly ownCertificate: () => Uint8Array
  /** Verifies a peer's certificate against the CA and the revocation list. */
  readonly verify: CertificateVerifier
  readonly clock: Clock
  /** How long one exchange, and an inbound connection's wait for it, may take. */
  readonly helloTimeoutMs: number
  readonly revocations: RevocationPort
  /** The zone roster both hellos carry; without it we send none and ignore the peer's. */
  readonly zoneRosters?: ZoneRosterPort
  readonly log: Logger
  /** Counts each hello message in and out (`hello`). */
  readonly traffic: Traffic
}

/** Both sides of the hello exchange. */
export interface Hello {
  /** Dialer side: send ours, read theirs. Never throws. */
  dial(connection: Connection): Promise<void>
  /** Listener side (the protocol handler): read theirs, answer with ours or the reason for refusing. */
  answer(stream: Stream, connection: Connection): Promise<void>
  /**
   * Reacts to a newly opened connection: dials hello on an outbound one (unless the peer is verified
   * already: a second connection needs no second hello), and closes an inbound one whose peer has not
   * passed within `helloTimeoutMs`.
   */
  onConnectionOpen(connection: Connection): void
}

/** Creates the hello exchange, reporting each verdict to `outcomes`. */
export function createHello(init: HelloConfig, outcomes: HelloOutcomes): Hello {
  const { clock, log } = init

  /** Offers a peer's roster; nothing about it can fail the hello (the port logs what it refuses). */
  const offerRoster = (connection: Connection, roster: Uint8Array): void => {
    try {
      init.zoneRosters?.offer(roster)
    } catch (err) {
      log.error(
        { peer: connection.remotePeer.toString(), err: (err as Error).message },
        'zone roster offer failed',
      )
    }
  }

  /** Verifies a peer's hello; returns the certificate or a reason. */
  const check = (
    connection: Connection,
    message: HelloFields,
  ): { ok: true; certificate: SignedCertificate } | { ok: false; reason: string; revoked?: boolean } => {
    if (message.cert === undefined) return { ok: false, reason: 'malformed hello' }
    if (message.crl !== undefined) init.revocations.offer(message.crl)
    const verdict = init.verify(message.cert, clock.nowMs())
    if (!verdict.ok) {
      const reason = `certificate ${verdict.reason}: ${verdict.detail}`
      return { ok: false, reason, revoked: verdict.reason === 'revoked' }
    }
    if (verdict.signed.certificate.peerId !== connection.remotePeer.toString()) {
      return { ok: false, reason: 'certificate belongs to another peer' }
    }
    // Before admission, so whatever reacts to the new peer already sees the newer roster.
    if (message.roster !== undefined) offerRoster(connection, message.roster)
    return { ok: true, certificate: verdict.signed }
  }

  const ownHello = (): Uint8Array => {
    const crl = init.revocations.current()
    return encodeHello(init.ownCertificate(), crl, init.zoneRosters?.current())
  }

  const dial = async (connection: Connection): Promise<void> => {
    const signal = AbortSignal.timeout(init.helloTimeoutMs)
    let stream: Stream | undefined
    try {
      stream = await connection.newStream(HELLO_PROTOCOL, { signal })
      const lp = countedLpStream(stream, { maxDataLength: HELLO_BYTES_MAX }, init.traffic, 'hello')
      await lp.write(ownHello(), { signal })
      const reply = decodeHello((await lp.read({ signal })).subarray())
      if (reply.error !== undefined) {
        // The other side refused us; not evidence against it. Its list, if any, is checked against the CA
        // key like any other: only a signed list, never the reason string, can tell us we are revoked.
        log.warn({ peer: connection.remotePeer.toString(), reason: reply.error }, 'refused by peer')
        if (reply.crl !== undefined) init.revocations.offer(reply.crl)
        outcomes.fail(connection.remotePeer.toString())
        await connection.close().catch(() => {})
        return
      }
      const result = check(connection, reply)
      if (result.ok) outcomes.admit(connection, result.certificate)
      else outcomes.refuse(connection, result.reason)
      await stream.close({ signal }).catch(() => {})
    } catch (err) {
      stream?.abort(err as Error)
      if (connection.status === 'open' && !outcomes.isVerified(connection.remotePeer.toString())) {
        outcomes.timedOut()
        log.debug({ peer: connection.remotePeer.toString(), err: (err as Error).message }, 'hello failed')
        outcomes.fail(connection.remotePeer.toString())
        await connection.close().catch(() => {})
      }
    }
  }

  const answer = async (stream: Stream, connection: Connection): Promise<void> => {
    const signal = AbortSignal.timeout(init.helloTimeoutMs)
    const lp = countedLpStream(stream, { maxDataLength: HELLO_BYTES_MAX }, init.traffic, 'hello')
    let message: HelloFields
    try {
      message = decodeHello((await lp.read({ signal })).subarray())
    } catch (err) {
      // A closed, reset or slow stream says nothing against the peer (it may be a duplicate connection
      // being pruned, or a loaded machine): drop the connection without denying the peer. Only a
      // certificate that fails verification gets a peer denied.
      outcomes.timedOut()
      log.debug({ peer: connection.remotePeer.toString(), err: (err as Error).message }, 'hello not received')
      stream.abort(err as Error)
      if (!outcomes.isVerified(connection.remotePeer.toString())) await connection.close().catch(() => {})
      return
    }
    const result = check(connection, message)
    if (!result.ok) {
      // A revoked dialer gets the list that revokes it, so it can learn (and check) that it is revoked.
      const proof = result.revoked === true ? init.revocations.current() : undefined
      await lp.write(encodeHelloRefusal(result.reason, proof), { signal }).catch(() => {})
      await stream.close({ signal }).catch(() => {})
      outcomes.refuse(connection, result.reason)
      return
    }
    await lp.write(ownHello(), { signal })
    await stream.close({ signal }).catch(() => {})
    outcomes.admit(connection, result.certificate)
  }

  return {
    dial,
    answer,
    onConnectionOpen(connection) {
      const peerId = connection.remotePeer.toString()
      if (connection.direction === 'outbound') {
        if (!outcomes.isVerified(peerId)) void dial(connection)
        return
      }
      clock.setTimer(() => {
        if (connection.status === 'open' && !outcomes.isVerified(peerId)) {
          outcomes.timedOut()
          log.debug({ peer: peerId }, 'no hello in time; closing')
          void connection.close().catch(() => {})
        }
      }, init.helloTimeoutMs)
    },
  }
}
