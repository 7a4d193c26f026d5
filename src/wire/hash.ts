/** Hashes and MACs used across mesh (SHA-256 everywhere, HMAC-SHA-256 for ticket authenticators). */
import { hmac } from '@noble/hashes/hmac.js'
import { sha256 } from '@noble/hashes/sha2.js'

/** SHA-256 of `bytes` (32 bytes). */
export function hash(bytes: Uint8Array): Uint8Array {
  return sha256(bytes)
}

/** Size of a {@link mac}, in bytes. */
export const MAC_BYTES = 32

/** HMAC-SHA-256 of `message` keyed by `key` (32 bytes). */
export function mac(key: Uint8Array, message: Uint8Array): Uint8Array {
  return hmac(sha256, key, message)
}

/** Constant-time comparison of two byte strings. */
export function bytesEqual(a: Uint8Array, b: Uint8Array): boolean {
  if (a.byteLength !== b.byteLength) return false
  let diff = 0
  for (let i = 0; i < a.byteLength; i++) diff |= (a[i] ?? 0) ^ (b[i] ?? 0)
  return diff === 0
}

/** Lower-case hex of `bytes`. */
export function toHex(bytes: Uint8Array): string {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('hex')
}
