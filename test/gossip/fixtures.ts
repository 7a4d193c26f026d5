/**
 * Test helpers for the gossip layer: fabricated certificates and a fake CertificateVerifier.
 *
 * The real certificate code lives in src/ca/ (written separately); these tests depend only on the
 * port. A fabricated certificate's bytes are a CBOR encoding of its fields (unique per certificate);
 * the fake verifier knows exactly the certificates the "CA" below issued, checks their time window
 * and a revocation set, and reports anything else as `bad-signature` (an unknown issuer).
 */

import type { CertificateVerifier, Role, SignedCertificate } from '../../src/ca/types.js'
import { encodeCbor } from '../../src/wire/cbor.js'
import { type SigningKey, signingKeyFromSeed } from '../../src/wire/ed25519.js'
import { hash, toHex } from '../../src/wire/hash.js'

/** A fabricated identity: key and certificate. */
export interface TestIdentity {
  readonly key: SigningKey
  readonly certificate: SignedCertificate
}

/** A fake CA: issues fabricated certificates, revokes them, and verifies them. */
export class FakeCa {
  private readonly issued = new Map<string, SignedCertificate>()
  private readonly revoked = new Set<string>()
  private counter = 0

  /** Issues a certificate for `name`; the key is derived deterministically from the counter. */
  issue(
    name: string,
    opts: { zone?: string; roles?: Role[]; notBeforeMs?: number; notAfterMs?: number } = {},
  ): TestIdentity {
    this.counter++
    const seed = new Uint8Array(32)
    seed[0] = this.counter & 0xff
    seed[1] = this.counter >> 8
    seed[31] = 7
    const key = signingKeyFromSeed(seed)
    const serial = this.counter.toString(16).padStart(32, '0')
    const certificate = {
      version: 2 as const,
      serial,
      name,
      publicKey: key.publicKey,
      peerId: `12D3KooFake${name}`,
      zone: opts.zone ?? 'core',
      roles: opts.roles ?? ['agent'],
      notBeforeMs: opts.notBeforeMs ?? 0,
      notAfterMs: opts.notAfterMs ?? 10_000_000_000_000,
      issuer: new Uint8Array(32),
    }
    const bytes = encodeCbor({ ...certificate, roles: [...certificate.roles] })
    const signed: SignedCertificate = { certificate, bytes, hash: hash(bytes) }
    this.issued.set(toHex(bytes), signed)
    return { key, certificate: signed }
  }

  revoke(identity: TestIdentity): void {
    this.revoked.add(identity.certificate.certificate.serial)
  }

  /** The verifier port over this CA's certificates. */
  readonly verifier: CertificateVerifier = (bytes, nowMs) => {
    if (bytes.byteLength > 4096) return { ok: false, reason: 'too-large', detail: 'certificate too large' }
    const signed = this.issued.get(toHex(bytes))
    if (signed === undefined) return { ok: false, reason: 'bad-signature', detail: 'not issued by this CA' }
    const c = signed.certificate
    if (nowMs < c.notBeforeMs) return { ok: false, reason: 'not-yet-valid', detail: 'not yet valid' }
    if (nowMs > c.notAfterMs) return { ok: false, reason: 'expired', detail: 'expired' }
    if (this.revoked.has(c.serial))
      return { ok: false, reason: 'revoked', detail: `serial ${c.serial} revoked` }
    return { ok: true, signed }
  }
}

/** A deterministic 16-byte id from a small number. */
export function testId(n: number): Uint8Array {
  const id = new Uint8Array(16)
  new DataView(id.buffer).setUint32(12, n)
  id[0] = 0xab
  return id
}
