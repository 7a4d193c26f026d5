/**
 * Test-only encoders for bytes src/wire must refuse or that older meshes wrote: maps whose keys are
 * deliberately out of canonical order, and the version-1 CA envelopes that signed (or MACed) the bare
 * body without a domain.
 */
import { type CborValue, encodeCbor } from '../../src/wire/cbor.js'
import { type SigningKey, signBytes } from '../../src/wire/ed25519.js'
import { mac } from '../../src/wire/hash.js'

/** A CBOR map with its entries in exactly the given order (canonical only if the order is). */
export function encodeMapInOrder(entries: readonly (readonly [string, CborValue])[]): Uint8Array {
  if (entries.length >= 24) throw new RangeError('short maps only')
  const parts: Uint8Array[] = [Uint8Array.of(0xa0 + entries.length)]
  for (const [key, value] of entries) parts.push(encodeCbor(key), encodeCbor(value))
  return Uint8Array.from(Buffer.concat(parts))
}

/** The envelope of mesh format version 1: ed25519 over the bare body bytes, no domain. */
export function legacySignedEnvelope(key: SigningKey, body: CborValue): Uint8Array {
  const bodyBytes = encodeCbor(body)
  return encodeCbor({ body: bodyBytes, sig: signBytes(key, bodyBytes) })
}

/** The ticket envelope of mesh format version 1: HMAC over the bare body bytes, no domain. */
export function legacyMacEnvelope(secret: Uint8Array, body: CborValue): Uint8Array {
  const bodyBytes = encodeCbor(body)
  return encodeCbor({ body: bodyBytes, mac: mac(secret, bodyBytes) })
}
