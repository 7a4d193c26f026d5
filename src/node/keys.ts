/**
 * Keys and identities of the library: an identity is a signing key with the certificate issued for
 * it; CA material makes a node able to issue. The libp2p peer key is the same ed25519 key.
 */
import { privateKeyFromRaw } from '@libp2p/crypto/keys'
import type { PrivateKey } from '@libp2p/interface'
import type { IssuerState } from '../ca/issuer-state.js'
import type { SignedCertificate } from '../ca/types.js'
import { type SigningKey, signingKeyFromSeed } from '../wire/ed25519.js'
import { systemRandom } from './clock.js'

/** An identity: a key and the certificate issued for it. */
export interface Identity {
  readonly key: SigningKey
  readonly certificate: SignedCertificate
}

/** CA material, present only on CA nodes. */
export interface CaMaterial {
  readonly caKey: SigningKey
  readonly ticketSecret: Uint8Array
  readonly issuerState: IssuerState
}

/** The libp2p private key of a signing key (the PeerId is the same key, LIBP2P-NOTES §2). */
export function libp2pKeyOf(key: SigningKey): PrivateKey {
  const raw = new Uint8Array(64)
  raw.set(key.secretKey, 0)
  raw.set(key.publicKey, 32)
  return privateKeyFromRaw(raw)
}

/** A fresh signing key from the OS random source. */
export function generateSigningKey(): SigningKey {
  return signingKeyFromSeed(systemRandom.bytes(32))
}

/** Cryptographically secure random bytes (the `randomBytes` port of the pure cores). */
export function secureRandomBytes(count: number): Uint8Array {
  return systemRandom.bytes(count)
}
