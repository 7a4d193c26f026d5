/**
 * Fingerprints: SHA-256 of a public key, shown as text.
 *
 * The mesh fingerprint is the fingerprint of the CA public key; tickets and `mesh join --fingerprint`
 * carry its full form (`sha256:` + 52 lower-case base32 characters, RFC 4648 alphabet, no padding) so a
 * joiner can pin the CA exactly. The short form (first 80 bits as four groups of four characters,
 * e.g. `k3xq-7mza-p2vd-wb4e`) is for people comparing keys by eye (`mesh init`, `mesh ca list`); it is
 * never accepted as input because it does not pin anything.
 */
import { hash } from '../wire/hash.js'

/** Fingerprint size in bytes (SHA-256). */
export const FINGERPRINT_BYTES = 32
/** Prefix of the full text form. */
export const FINGERPRINT_TEXT_PREFIX = 'sha256:'

const ALPHABET = 'abcdefghijklmnopqrstuvwxyz234567'
const FULL_CHARS = Math.ceil((FINGERPRINT_BYTES * 8) / 5)
const SHORT_GROUPS = 4
const SHORT_GROUP_CHARS = 4

/** Raised by {@link parseFingerprint} for text that is not a full fingerprint. */
export class FingerprintError extends Error {
  override name = 'FingerprintError'
  readonly code = 'malformed'
}

/** SHA-256 of a raw public key (32 bytes). For the CA key this is the mesh fingerprint. */
export function fingerprintOf(publicKey: Uint8Array): Uint8Array {
  return hash(publicKey)
}

/** Full text form of a 32-byte fingerprint: `sha256:` + 52 base32 characters. */
export function formatFingerprint(fingerprint: Uint8Array): string {
  return FINGERPRINT_TEXT_PREFIX + base32Encode(fingerprint)
}

/** Short readable form of a fingerprint: four dash-separated groups of four base32 characters. */
export function shortFingerprint(fingerprint: Uint8Array): string {
  const text = base32Encode(fingerprint).slice(0, SHORT_GROUPS * SHORT_GROUP_CHARS)
  const groups: string[] = []
  for (let i = 0; i < text.length; i += SHORT_GROUP_CHARS) groups.push(text.slice(i, i + SHORT_GROUP_CHARS))
  return groups.join('-')
}

/**
 * Parses the full form. Case, surrounding blanks and the `sha256:` prefix are optional so a
 * fingerprint pasted from anywhere works; anything else, including the short form, is refused.
 * @throws FingerprintError
 */
export function parseFingerprint(text: string): Uint8Array {
  let body = text.trim().toLowerCase()
  if (body.startsWith(FINGERPRINT_TEXT_PREFIX)) body = body.slice(FINGERPRINT_TEXT_PREFIX.length)
  if (body.length !== FULL_CHARS) {
    throw new FingerprintError(
      `a fingerprint has ${FULL_CHARS} characters after '${FINGERPRINT_TEXT_PREFIX}'`,
    )
  }
  const bytes = base32Decode(body)
  // Reject non-zero padding bits: they would give two spellings of one fingerprint.
  if (bytes === undefined || bytes.byteLength !== FINGERPRINT_BYTES || base32Encode(bytes) !== body) {
    throw new FingerprintError('not a base32 fingerprint')
  }
  return bytes
}

function base32Encode(bytes: Uint8Array): string {
  let out = ''
  let buffer = 0
  let bits = 0
  for (const byte of bytes) {
    buffer = (buffer << 8) | byte
    bits += 8
    while (bits >= 5) {
      out += ALPHABET[(buffer >>> (bits - 5)) & 31]
      bits -= 5
    }
    buffer &= (1 << bits) - 1
  }
  if (bits > 0) out += ALPHABET[(buffer << (5 - bits)) & 31]
  return out
}

function base32Decode(text: string): Uint8Array | undefined {
  const out = new Uint8Array(Math.floor((text.length * 5) / 8))
  let buffer = 0
  let bits = 0
  let index = 0
  for (const char of text) {
    const value = ALPHABET.indexOf(char)
    if (value < 0) return undefined
    buffer = (buffer << 5) | value
    bits += 5
    if (bits >= 8) {
      out[index++] = (buffer >>> (bits - 8)) & 255
      bits -= 8
    }
    buffer &= (1 << bits) - 1
  }
  return out
}
