/**
 * Opening a document the mesh CA signs for everyone (revocation lists, zone rosters): one signed
 * envelope under the document's domain, whose body names the CA by fingerprint. The checks run in one
 * order for every kind — size and shape, then the issuer, then the signature — so that a document of
 * another mesh is reported as such rather than as a bad signature.
 */
import type { SignatureDomain } from '../wire/domains.js'
import { PUBLIC_KEY_BYTES } from '../wire/ed25519.js'
import { openEnvelope, verifyEnvelope } from '../wire/envelope.js'
import { tryRead } from '../wire/fields.js'
import { bytesEqual } from '../wire/hash.js'
import { fingerprintOf } from './fingerprint.js'

/** Why a CA document was refused. A closed set. */
export type CaDocumentRejection = 'malformed' | 'too-large' | 'wrong-issuer' | 'bad-signature'

/** Result of {@link openCaDocument}. */
export type CaDocumentResult<T> =
  | { readonly ok: true; readonly value: T }
  | { readonly ok: false; readonly reason: CaDocumentRejection; readonly detail: string }

/**
 * Decodes `bytes` (at most `bytesMax`) as a signed envelope, reads its body with `read` (which throws
 * DecodeError on anything malformed), and checks that the body's `issuer` is the fingerprint of
 * `caPublicKey` and that the CA key signed it under `domain`. `what` names the kind in the wrong-issuer
 * detail ("list", "roster"). Never throws.
 */
export function openCaDocument<T extends { readonly issuer: Uint8Array }>(
  bytes: Uint8Array,
  caPublicKey: Uint8Array,
  spec: {
    readonly domain: SignatureDomain
    readonly bytesMax: number
    readonly read: (body: unknown) => T
    readonly what: string
  },
): CaDocumentResult<T> {
  if (caPublicKey.byteLength !== PUBLIC_KEY_BYTES) {
    return { ok: false, reason: 'wrong-issuer', detail: 'CA public key must be 32 bytes' }
  }
  const read = tryRead(() => {
    const envelope = openEnvelope(bytes, spec.bytesMax)
    return { envelope, value: spec.read(envelope.body) }
  })
  if (!read.ok) return read
  const { envelope, value } = read.value
  if (!bytesEqual(value.issuer, fingerprintOf(caPublicKey))) {
    return { ok: false, reason: 'wrong-issuer', detail: `${spec.what} of another CA` }
  }
  if (!verifyEnvelope(spec.domain, caPublicKey, envelope)) {
    return { ok: false, reason: 'bad-signature', detail: 'signature does not verify with the mesh CA key' }
  }
  return { ok: true, value }
}
