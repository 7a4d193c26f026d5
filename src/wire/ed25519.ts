/**
 * Ed25519 signing and verification.
 *
 * Both go through node:crypto: on this machine noble's verify measured ~19x slower (LIBP2P-NOTES §2),
 * and verification sits on the hot path of every gossip message. noble derives public keys and is the
 * independent implementation the tests cross-check against. KeyObjects are cached per public key in a
 * bounded map, since the same few hundred keys are verified over and over.
 */
import { createPrivateKey, createPublicKey, type KeyObject, sign, verify } from 'node:crypto'
import { ed25519 } from '@noble/curves/ed25519.js'

/** Raw ed25519 key sizes, in bytes. */
export const PUBLIC_KEY_BYTES = 32
export const SECRET_KEY_BYTES = 32
export const SIGNATURE_BYTES = 64

const SPKI_PREFIX = Buffer.from('302a300506032b6570032100', 'hex')
const PKCS8_PREFIX = Buffer.from('302e020100300506032b657004220420', 'hex')

/** Most public KeyObjects kept; beyond it the oldest is dropped (insertion order). */
export const KEY_CACHE_ENTRIES_MAX = 4096
const publicKeyCache = new Map<string, KeyObject>()
const secretKeyCache = new WeakMap<Uint8Array, KeyObject>()

/** A node's or CA's signing key: the 32-byte seed and its 32-byte public key. */
export interface SigningKey {
  readonly secretKey: Uint8Array
  readonly publicKey: Uint8Array
}

/** Builds a {@link SigningKey} from a 32-byte seed (e.g. from `randomBytes(32)`). */
export function signingKeyFromSeed(seed: Uint8Array): SigningKey {
  if (seed.byteLength !== SECRET_KEY_BYTES) throw new TypeError('ed25519 seed must be 32 bytes')
  return { secretKey: seed, publicKey: ed25519.getPublicKey(seed) }
}

/** Signs `message` with `key` (deterministic, RFC 8032). */
export function signBytes(key: SigningKey, message: Uint8Array): Uint8Array {
  let keyObject = secretKeyCache.get(key.secretKey)
  if (keyObject === undefined) {
    keyObject = createPrivateKey({
      key: Buffer.concat([PKCS8_PREFIX, key.secretKey]),
      format: 'der',
      type: 'pkcs8',
    })
    secretKeyCache.set(key.secretKey, keyObject)
  }
  return new Uint8Array(sign(null, message, keyObject))
}

/** True when `signature` is a valid ed25519 signature of `message` by `publicKey`. Never throws. */
export function verifyBytes(publicKey: Uint8Array, message: Uint8Array, signature: Uint8Array): boolean {
  if (publicKey.byteLength !== PUBLIC_KEY_BYTES || signature.byteLength !== SIGNATURE_BYTES) return false
  try {
    return verify(null, message, publicKeyObject(publicKey), signature)
  } catch {
    return false
  }
}

function publicKeyObject(publicKey: Uint8Array): KeyObject {
  const id = Buffer.from(publicKey).toString('base64')
  let keyObject = publicKeyCache.get(id)
  if (keyObject === undefined) {
    keyObject = createPublicKey({ key: Buffer.concat([SPKI_PREFIX, publicKey]), format: 'der', type: 'spki' })
    if (publicKeyCache.size >= KEY_CACHE_ENTRIES_MAX) {
      const oldest = publicKeyCache.keys().next().value
      if (oldest !== undefined) publicKeyCache.delete(oldest)
    }
    publicKeyCache.set(id, keyObject)
  }
  return keyObject
}
