/**
 * Shapes shared by the CA, the gossip layer and the agent. Implementations live beside this file
 * (certificate.ts, ticket.ts, signing-request.ts, revocation.ts); these types are the contract.
 */

/** What a certificate allows its holder to be. */
export type Role = (typeof ROLES)[number]
/** Every role, in canonical order (the one owner of the list). */
export const ROLES = ['agent', 'operator', 'ca'] as const

/** The signed content of a certificate (all times in ms since the epoch, integers). */
export interface Certificate {
  /** The format version, `CERTIFICATE_VERSION` in certificate.ts. */
  readonly version: 2
  /** 16 random bytes as lower-case hex; unique per issued certificate. */
  readonly serial: string
  readonly name: string
  /** Raw 32-byte ed25519 public key; also the node's libp2p identity. */
  readonly publicKey: Uint8Array
  /** The libp2p PeerId string derived from `publicKey`. */
  readonly peerId: string
  readonly zone: string
  readonly roles: readonly Role[]
  readonly notBeforeMs: number
  readonly notAfterMs: number
  /** The mesh fingerprint: SHA-256 of the CA public key (32 bytes). */
  readonly issuer: Uint8Array
}

/** A decoded certificate together with its exact encoded bytes and their hash. */
export interface SignedCertificate {
  readonly certificate: Certificate
  /** The full encoding, `{ body, sig }`, as carried on the wire and stored on disk. */
  readonly bytes: Uint8Array
  /** SHA-256 of `bytes`: the cache key for verification results. */
  readonly hash: Uint8Array
}

/** Why a certificate was refused. A closed set; callers switch on it. */
export type CertificateRejection =
  | 'malformed'
  | 'too-large'
  | 'bad-signature'
  | 'wrong-issuer'
  | 'not-yet-valid'
  | 'expired'
  | 'revoked'

/** Result of verifying a certificate: never throws. */
export type CertificateVerdict =
  | { readonly ok: true; readonly signed: SignedCertificate }
  | { readonly ok: false; readonly reason: CertificateRejection; readonly detail: string }

/** A verifier port: the gossip pipeline and the hello protocol depend on this, not on the CA code. */
export type CertificateVerifier = (bytes: Uint8Array, nowMs: number) => CertificateVerdict
