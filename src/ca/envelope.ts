/**
 * The signed-envelope shape shared by certificates, signing requests, revocation lists and tickets:
 * `encodeCbor({ body: encodeCbor(content), <tag>: authenticator })`. The authenticator (an ed25519
 * signature under `sig`, or an HMAC under `mac`) covers the exact body bytes, so verification never
 * depends on re-encoding what was decoded.
 */
import { DecodeError, decodeCbor, encodeCbor } from './encoding.js'
import { FieldError, readBytes, readRecord, tryRead } from './fields.js'

/** Which authenticator an envelope carries: an ed25519 signature or an HMAC-SHA-256. */
export type EnvelopeTag = 'sig' | 'mac'

/** The two parts of a decoded envelope. `body` is a view of the input; do not mutate it. */
export interface EnvelopeParts {
  readonly body: Uint8Array
  readonly tag: Uint8Array
}

/** Outcome of {@link decodeEnvelope}: the parts, or why the bytes are not an envelope. */
export type EnvelopeDecoding =
  | { readonly ok: true; readonly parts: EnvelopeParts; readonly content: unknown }
  | { readonly ok: false; readonly reason: 'malformed' | 'too-large'; readonly detail: string }

/** Encodes `{ body, [tagKey]: tag }`. */
export function encodeEnvelope(body: Uint8Array, tagKey: EnvelopeTag, tag: Uint8Array): Uint8Array {
  return encodeCbor({ body, [tagKey]: tag })
}

/**
 * Decodes an envelope of at most `bytesMax` bytes whose tag is exactly `tagBytes` long, and the CBOR
 * item inside its body. Never throws.
 */
export function decodeEnvelope(
  bytes: Uint8Array,
  bytesMax: number,
  tagKey: EnvelopeTag,
  tagBytes: number,
): EnvelopeDecoding {
  try {
    const outer = decodeCbor(bytes, bytesMax)
    const read = tryRead(() => {
      const record = readRecord(outer, 'envelope', ['body', tagKey])
      return {
        body: readBytes(record, 'body', { bytesMax }),
        tag: readBytes(record, tagKey, { length: tagBytes }),
      }
    })
    if (!read.ok) return { ok: false, reason: 'malformed', detail: read.detail }
    const content = decodeCbor(read.value.body, bytesMax)
    return { ok: true, parts: read.value, content }
  } catch (err) {
    if (err instanceof DecodeError) return { ok: false, reason: err.code, detail: err.message }
    if (err instanceof FieldError) return { ok: false, reason: 'malformed', detail: err.message }
    throw err
  }
}
