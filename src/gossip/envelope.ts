/**
 * The signed envelope shared by requests, replies and heartbeats: deterministic CBOR
 * `{ body: bytes, sig: bytes }`, where `body` is itself the deterministic CBOR of the content and
 * `sig` is ed25519 over `domain || 0x00 || body`.
 *
 * The body travels as the exact bytes that were signed, so a verifier never re-encodes anything.
 * The domain string separates the kinds: a signed reply can never be passed off as a request or a
 * heartbeat, even though the same node key signs them.
 */

import { SIGNATURE_BYTES, type SigningKey, signBytes, verifyBytes } from '../ca/ed25519.js'
import { type CborValue, DecodeError, decodeCbor, encodeCbor, isRecord } from '../ca/encoding.js'

/** Domain separators; one per signed message kind. */
export const DOMAIN_REQUEST = 'mesh/request/v1'
export const DOMAIN_REPLY = 'mesh/reply/v1'
export const DOMAIN_PRESENCE = 'mesh/presence/v1'

/** An opened (decoded, not yet verified) envelope. `body` is the decoded content of `bodyBytes`. */
export interface OpenedEnvelope {
  readonly body: Record<string, unknown>
  readonly bodyBytes: Uint8Array
  readonly sig: Uint8Array
}

/** Signs `body` under `domain` and returns the envelope bytes. */
export function sealEnvelope(domain: string, key: SigningKey, body: CborValue): Uint8Array {
  const bodyBytes = encodeCbor(body)
  return encodeCbor({ body: bodyBytes, sig: signBytes(key, signedMessage(domain, bodyBytes)) })
}

/**
 * Decodes an envelope of at most `bytesMax` bytes and its body. Does not verify the signature.
 * @throws DecodeError `too-large` or `malformed`
 */
export function openEnvelope(bytes: Uint8Array, bytesMax: number): OpenedEnvelope {
  const outer = decodeCbor(bytes, bytesMax)
  if (!isRecord(outer) || Object.keys(outer).length !== 2) {
    throw new DecodeError('malformed', 'envelope must be a map { body, sig }')
  }
  const { body, sig } = outer
  if (!(body instanceof Uint8Array) || !(sig instanceof Uint8Array) || sig.byteLength !== SIGNATURE_BYTES) {
    throw new DecodeError('malformed', 'envelope body and sig must be bytes (sig 64 bytes)')
  }
  const decoded = decodeCbor(body, bytesMax)
  if (!isRecord(decoded)) throw new DecodeError('malformed', 'envelope body must be a map')
  return { body: decoded, bodyBytes: body, sig }
}

/** True when `envelope.sig` is `publicKey`'s signature of its body under `domain`. Never throws. */
export function verifyEnvelope(domain: string, publicKey: Uint8Array, envelope: OpenedEnvelope): boolean {
  return verifyBytes(publicKey, signedMessage(domain, envelope.bodyBytes), envelope.sig)
}

const encoder = new TextEncoder()

function signedMessage(domain: string, bodyBytes: Uint8Array): Uint8Array {
  const prefix = encoder.encode(domain)
  const message = new Uint8Array(prefix.byteLength + 1 + bodyBytes.byteLength)
  message.set(prefix, 0)
  message.set(bodyBytes, prefix.byteLength + 1)
  return message
}
