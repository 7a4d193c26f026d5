/**
 * The one authenticated-envelope format of mesh, used by requests, replies, heartbeats, certificates,
 * signing requests, revocation lists and join tickets: deterministic CBOR `{ body: bytes, sig: bytes }`
 * (ed25519) or `{ body: bytes, mac: bytes }` (HMAC-SHA-256), where `body` is the deterministic CBOR of
 * a map and the authenticator covers `domain || 0x00 || body` with the message kind's domain string
 * from domains.ts.
 *
 * The body travels as the exact bytes that were authenticated, so a verifier never re-encodes to
 * check a signature. Opening is strict: the outer map and the body must each be byte-identical to
 * their deterministic encoding, so one message has exactly one accepted spelling (no reordered keys,
 * no padding) and its hash identifies it. Opening does not verify; the verify functions never throw.
 */
import { type CborValue, DecodeError, decodeCanonicalCbor, encodeCbor, isRecord } from './cbor.js'
import type { MacDomain, SignatureDomain } from './domains.js'
import { SIGNATURE_BYTES, type SigningKey, signBytes, verifyBytes } from './ed25519.js'
import { readBytes, readRecord } from './fields.js'
import { bytesEqual, MAC_BYTES, mac } from './hash.js'

/** The body of an opened (decoded, not yet authenticated) envelope. */
export interface OpenedBody {
  /** The decoded content of `bodyBytes`. */
  readonly body: Record<string, unknown>
  /** The exact authenticated body bytes, a view of the input; do not mutate. */
  readonly bodyBytes: Uint8Array
}

/** An opened signed envelope (`{ body, sig }`), not yet verified. */
export interface OpenedEnvelope extends OpenedBody {
  readonly sig: Uint8Array
}

/** An opened MACed envelope (`{ body, mac }`), not yet checked. */
export interface OpenedMacEnvelope extends OpenedBody {
  readonly mac: Uint8Array
}

/** Signs `body` under `domain` with `key` and returns the envelope bytes. */
export function sealEnvelope(domain: SignatureDomain, key: SigningKey, body: CborValue): Uint8Array {
  return seal(domain, body, 'sig', message => signBytes(key, message))
}

/** MACs `body` under `domain` with `secret` and returns the envelope bytes. */
export function sealMacEnvelope(domain: MacDomain, secret: Uint8Array, body: CborValue): Uint8Array {
  return seal(domain, body, 'mac', message => mac(secret, message))
}

/**
 * Decodes a signed envelope of at most `bytesMax` bytes and its body (of at most `bodyItemsMax` CBOR
 * items, see decodeCbor). Does not verify the signature.
 * @throws DecodeError `too-large`, or `malformed` (including a non-canonical outer map or body)
 */
export function openEnvelope(
  bytes: Uint8Array,
  bytesMax: number,
  bodyItemsMax = Number.POSITIVE_INFINITY,
): OpenedEnvelope {
  const { tag, ...opened } = open(bytes, bytesMax, 'sig', SIGNATURE_BYTES, bodyItemsMax)
  return { ...opened, sig: tag }
}

/**
 * Decodes a MACed envelope of at most `bytesMax` bytes and its body. Does not check the MAC.
 * @throws DecodeError `too-large`, or `malformed` (including a non-canonical outer map or body)
 */
export function openMacEnvelope(bytes: Uint8Array, bytesMax: number): OpenedMacEnvelope {
  const { tag, ...opened } = open(bytes, bytesMax, 'mac', MAC_BYTES, Number.POSITIVE_INFINITY)
  return { ...opened, mac: tag }
}

/** True when `envelope.sig` is `publicKey`'s signature of its body under `domain`. Never throws. */
export function verifyEnvelope(
  domain: SignatureDomain,
  publicKey: Uint8Array,
  envelope: Pick<OpenedEnvelope, 'bodyBytes' | 'sig'>,
): boolean {
  return verifyBytes(publicKey, authenticatedMessage(domain, envelope.bodyBytes), envelope.sig)
}

/** True when `envelope.mac` is the HMAC of its body under `domain` and `secret` (constant time). */
export function verifyMacEnvelope(
  domain: MacDomain,
  secret: Uint8Array,
  envelope: Pick<OpenedMacEnvelope, 'bodyBytes' | 'mac'>,
): boolean {
  return bytesEqual(mac(secret, authenticatedMessage(domain, envelope.bodyBytes)), envelope.mac)
}

const encoder = new TextEncoder()

/** The bytes an authenticator covers: `domain || 0x00 || bodyBytes`. */
export function authenticatedMessage(domain: SignatureDomain | MacDomain, bodyBytes: Uint8Array): Uint8Array {
  const prefix = encoder.encode(domain)
  const message = new Uint8Array(prefix.byteLength + 1 + bodyBytes.byteLength)
  message.set(prefix, 0)
  message.set(bodyBytes, prefix.byteLength + 1)
  return message
}

/**
 * Most items the outer map is decoded with: a real one has five (the map, two keys, two byte strings);
 * a few more, so that a stray field is still refused as `malformed` by the shape check, not as too large.
 */
const ENVELOPE_ITEMS_MAX = 16

function seal(
  domain: SignatureDomain | MacDomain,
  body: CborValue,
  tagKey: 'sig' | 'mac',
  authenticate: (message: Uint8Array) => Uint8Array,
): Uint8Array {
  const bodyBytes = encodeCbor(body)
  return encodeCbor({ body: bodyBytes, [tagKey]: authenticate(authenticatedMessage(domain, bodyBytes)) })
}

/**
 * Decodes only the outer map of a signed envelope of at most `bytesMax` bytes, leaving the body
 * undecoded: for documents whose signer is known beforehand, so their signature can be checked before
 * their body is parsed (src/ca/ca-document.ts).
 * @throws DecodeError `too-large`, or `malformed` (including a non-canonical outer map)
 */
export function openEnvelopeHead(
  bytes: Uint8Array,
  bytesMax: number,
): Pick<OpenedEnvelope, 'bodyBytes' | 'sig'> {
  const { bodyBytes, tag } = openHead(bytes, bytesMax, 'sig', SIGNATURE_BYTES)
  return { bodyBytes, sig: tag }
}

function openHead(
  bytes: Uint8Array,
  bytesMax: number,
  tagKey: 'sig' | 'mac',
  tagBytes: number,
): { bodyBytes: Uint8Array; tag: Uint8Array } {
  // The outer map is two fields: a large structure in their place is refused before it is decoded.
  const outer = readRecord(decodeCanonicalCbor(bytes, bytesMax, ENVELOPE_ITEMS_MAX), 'envelope', [
    'body',
    tagKey,
  ])
  return {
    bodyBytes: readBytes(outer, 'body', { bytesMax }),
    tag: readBytes(outer, tagKey, { length: tagBytes }),
  }
}

function open(
  bytes: Uint8Array,
  bytesMax: number,
  tagKey: 'sig' | 'mac',
  tagBytes: number,
  bodyItemsMax: number,
): OpenedBody & { tag: Uint8Array } {
  const { bodyBytes, tag } = openHead(bytes, bytesMax, tagKey, tagBytes)
  const body = decodeCanonicalCbor(bodyBytes, bytesMax, bodyItemsMax)
  if (!isRecord(body)) throw new DecodeError('malformed', 'envelope body is not a map')
  return { body, bodyBytes, tag }
}
