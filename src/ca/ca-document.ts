/**
 * Opening a document the mesh CA signs for everyone (revocation lists, zone rosters): one signed
 * envelope under the document's domain, whose body names the CA by fingerprint. The checks run in one
 * order for every kind: size and outer shape, then the signature, and only then the body, so that bytes
 * the CA did not sign cost an outer decode and one hash however large they are (1 MB of tiny maps
 * took 170-230 ms when the body was parsed first; docs/fuzz.md). A refused document's body is read
 * too, within {@link CLASSIFY_ITEMS_MAX} items, to say why: malformed, or of another mesh (reported as
 * such rather than as a bad signature); a larger one is just a bad signature.
 */
import { decodeCanonicalCbor } from '../wire/cbor.js'
import type { SignatureDomain } from '../wire/domains.js'
import { PUBLIC_KEY_BYTES } from '../wire/ed25519.js'
import { openEnvelopeHead, verifyEnvelope } from '../wire/envelope.js'
import { tryRead } from '../wire/fields.js'
import { bytesEqual } from '../wire/hash.js'
import { fingerprintOf } from './fingerprint.js'

/** Why a CA document was refused. A closed set. */
export type CaDocumentRejection = 'malformed' | 'too-large' | 'wrong-issuer' | 'bad-signature'

/** Result of {@link openCaDocument}. */
export type CaDocumentResult<T> =
  | { readonly ok: true; readonly value: T }
  | { readonly ok: false; readonly reason: CaDocumentRejection; readonly detail: string }

/** Most CBOR items of a refused document's body read to tell why it was refused (0.3 ms at most). */
const CLASSIFY_ITEMS_MAX = 1024

/**
 * Decodes `bytes` (at most `bytesMax`) as a signed envelope, checks that the CA key signed it under
 * `domain`, reads its body with `read` (which throws DecodeError on anything malformed) and checks that
 * the body's `issuer` is the fingerprint of `caPublicKey`. `what` names the kind in the wrong-issuer
 * detail ("list", "roster"). Never throws.
 */
export function openCaDocument<T extends { readonly issuer: Uint8Array }>(
  bytes: Uint8Array,
  caPublicKey: Uint8Array,
  spec: {
    readonly domain: SignatureDomain
    readonly bytesMax: number
    /** Most CBOR items of the body (the largest document the limits allow), see decodeCbor. */
    readonly itemsMax: number
    readonly read: (body: unknown) => T
    readonly what: string
  },
): CaDocumentResult<T> {
  if (caPublicKey.byteLength !== PUBLIC_KEY_BYTES) {
    return { ok: false, reason: 'wrong-issuer', detail: 'CA public key must be 32 bytes' }
  }
  const head = tryRead(() => openEnvelopeHead(bytes, spec.bytesMax))
  if (!head.ok) return head
  const signed = verifyEnvelope(spec.domain, caPublicKey, head.value)
  const itemsMax = signed ? spec.itemsMax : CLASSIFY_ITEMS_MAX
  const read = tryRead(() => spec.read(decodeCanonicalCbor(head.value.bodyBytes, spec.bytesMax, itemsMax)))
  if (!read.ok && (signed || read.reason === 'malformed')) return read
  if (read.ok && !bytesEqual(read.value.issuer, fingerprintOf(caPublicKey))) {
    return { ok: false, reason: 'wrong-issuer', detail: `${spec.what} of another CA` }
  }
  if (!signed || !read.ok) {
    return { ok: false, reason: 'bad-signature', detail: 'signature does not verify with the mesh CA key' }
  }
  return { ok: true, value: read.value }
}
