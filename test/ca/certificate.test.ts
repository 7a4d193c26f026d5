// Proves certificates round-trip, that every single-byte change is refused, that verification
// returns the right closed reason for each kind of bad certificate (a table), and that the caching
// verifier still applies time and revocation on cache hits, that the signature is bound to the
// certificate domain and the bytes must be canonical, and that version-1 certificates are refused as
// coming from an older mesh. Property tests use fast-check.
import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import {
  CERTIFICATE_BYTES_MAX,
  CertificateError,
  type CertificateFields,
  checkValidityWindow,
  createCertificateVerifier,
  decodeCertificate,
  issueCertificate,
  newSerial,
  verifyCertificate,
} from '../../src/ca/certificate.js'
import { fingerprintOf } from '../../src/ca/fingerprint.js'
import { peerIdOfPublicKey } from '../../src/ca/identity.js'
import { ROLES, type Role } from '../../src/ca/types.js'
import { type CborValue, decodeCbor, encodeCbor } from '../../src/wire/cbor.js'
import { DOMAIN_CERTIFICATE, DOMAIN_REQUEST } from '../../src/wire/domains.js'
import { signBytes } from '../../src/wire/ed25519.js'
import { authenticatedMessage, sealEnvelope } from '../../src/wire/envelope.js'
import { toHex } from '../../src/wire/hash.js'
import { encodeMapInOrder, legacySignedEnvelope } from '../wire/encodings.js'
import { DAY_MS, HOUR_MS, keyFor, seededRandomBytes, T0 } from './fixtures.js'

const ca = keyFor('ca')
const node = keyFor('node')
const random = seededRandomBytes('certificate')

function fields(overrides: Partial<CertificateFields> = {}): CertificateFields {
  return {
    serial: newSerial(random),
    name: 'web1',
    publicKey: node.publicKey,
    zone: 'core',
    roles: ['agent'],
    notBeforeMs: T0,
    notAfterMs: T0 + 30 * DAY_MS,
    ...overrides,
  }
}

const nameArbitrary = fc.stringMatching(/^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/)
const rolesArbitrary = fc.subarray([...ROLES] as Role[], { minLength: 1 })

describe('certificate encoding', () => {
  it('round-trips any valid fields (property)', () => {
    fc.assert(
      fc.property(
        nameArbitrary,
        nameArbitrary,
        rolesArbitrary,
        fc.uint8Array({ minLength: 32, maxLength: 32 }),
        fc.nat({ max: 2 ** 45 }),
        fc.nat({ max: 2 ** 40 }),
        (name, zone, roles, publicKey, notBeforeMs, lifetimeMs) => {
          const signed = issueCertificate(
            ca,
            fields({ name, zone, roles, publicKey, notBeforeMs, notAfterMs: notBeforeMs + lifetimeMs }),
          )
          expect(signed.bytes.byteLength).toBeLessThanOrEqual(CERTIFICATE_BYTES_MAX)
          const decoded = decodeCertificate(signed.bytes)
          expect(decoded.ok).toBe(true)
          if (!decoded.ok) return
          expect(decoded.signed.certificate).toEqual(signed.certificate)
          expect(toHex(decoded.signed.hash)).toBe(toHex(signed.hash))
          expect(decoded.signed.certificate.peerId).toBe(peerIdOfPublicKey(publicKey))
        },
      ),
      { numRuns: 100 },
    )
  })

  it('issuing is deterministic (same fields, same bytes) and stores roles canonically', () => {
    const f = fields({ roles: ['operator', 'agent', 'agent'] })
    const a = issueCertificate(ca, f)
    const b = issueCertificate(ca, f)
    expect(toHex(a.bytes)).toBe(toHex(b.bytes))
    expect(a.certificate.roles).toEqual(['agent', 'operator'])
  })

  it.each([
    ['bad serial', { serial: 'XYZ' }],
    ['bad name', { name: 'web 1' }],
    ['empty zone', { zone: '' }],
    ['no roles', { roles: [] }],
    ['short key', { publicKey: new Uint8Array(31) }],
    ['inverted window', { notBeforeMs: T0, notAfterMs: T0 - 1 }],
    ['fractional time', { notAfterMs: T0 + 0.5 }],
  ] as [string, Partial<CertificateFields>][])('issueCertificate refuses %s', (_label, overrides) => {
    expect(() => issueCertificate(ca, fields(overrides))).toThrow(CertificateError)
  })

  it('any single-byte change is refused (property over positions)', () => {
    const signed = issueCertificate(ca, fields())
    const options = { caPublicKey: ca.publicKey, nowMs: T0 + HOUR_MS }
    expect(verifyCertificate(signed.bytes, options).ok).toBe(true)
    fc.assert(
      fc.property(
        fc.nat({ max: signed.bytes.length - 1 }),
        fc.integer({ min: 1, max: 255 }),
        (position, delta) => {
          const altered = Uint8Array.from(signed.bytes)
          altered[position] = ((altered[position] ?? 0) + delta) & 255
          expect(verifyCertificate(altered, options).ok).toBe(false)
        },
      ),
      { numRuns: 400 },
    )
    // And exhaustively, one flipped bit at every position.
    for (let position = 0; position < signed.bytes.length; position++) {
      const altered = Uint8Array.from(signed.bytes)
      altered[position] = (altered[position] ?? 0) ^ 1
      expect(verifyCertificate(altered, options).ok).toBe(false)
    }
  })
})

describe('verifyCertificate reasons', () => {
  const other = keyFor('other-ca')
  const good = issueCertificate(ca, fields())
  const revokedSerial = good.certificate.serial

  // A certificate that claims our CA as issuer but is signed by another key.
  function forged(): Uint8Array {
    return sealEnvelope(DOMAIN_CERTIFICATE, other, { ...good.certificate, roles: ['agent', 'ca'] })
  }
  const goodBody: CborValue = { ...good.certificate, roles: [...good.certificate.roles] }
  // The CA's own key, but over the bare body (the version-1 rule) or under another kind's domain.
  function withoutDomain(): Uint8Array {
    const body = encodeCbor(goodBody)
    return encodeCbor({ body, sig: signBytes(ca, body) })
  }
  function otherDomain(): Uint8Array {
    return sealEnvelope(DOMAIN_REQUEST, ca, goodBody)
  }
  // Correctly signed, but the outer map lists body before sig (canonical order is sig, body).
  function outerOutOfOrder(): Uint8Array {
    const { body, sig } = decodeCbor(good.bytes, CERTIFICATE_BYTES_MAX) as Record<string, Uint8Array>
    return encodeMapInOrder([
      ['body', body ?? new Uint8Array()],
      ['sig', sig ?? new Uint8Array()],
    ])
  }
  // Body bytes signed by the CA under the certificate domain, exactly as given.
  function handSealed(body: Uint8Array): Uint8Array {
    return encodeCbor({ body, sig: signBytes(ca, authenticatedMessage(DOMAIN_CERTIFICATE, body)) })
  }
  const goodEntries = Object.entries(goodBody as Record<string, CborValue>)
  // The same construction with the body in canonical order verifies; reversed keys do not.
  const bodyInOrder = () => handSealed(encodeCbor(goodBody))
  const bodyOutOfOrder = () => handSealed(encodeMapInOrder([...goodEntries].reverse()))
  // A node's own "CA": its certificate names its own fingerprint as issuer.
  const selfMade = issueCertificate(node, fields())
  const fromOtherCa = issueCertificate(other, fields())
  // A body whose peerId does not match its key.
  function mismatchedPeer(): Uint8Array {
    return sealEnvelope(DOMAIN_CERTIFICATE, ca, {
      ...good.certificate,
      roles: ['agent'],
      peerId: peerIdOfPublicKey(ca.publicKey) ?? '',
    })
  }

  const skew = 60_000
  const table: [string, () => Uint8Array, number, string][] = [
    ['valid', () => good.bytes, T0 + DAY_MS, 'ok'],
    ['valid within skew before start', () => good.bytes, T0 - skew, 'ok'],
    ['valid within skew after end', () => good.bytes, T0 + 30 * DAY_MS + skew, 'ok'],
    ['not yet valid', () => good.bytes, T0 - skew - 1, 'not-yet-valid'],
    ['expired', () => good.bytes, T0 + 30 * DAY_MS + skew + 1, 'expired'],
    ['other CA', () => fromOtherCa.bytes, T0 + DAY_MS, 'wrong-issuer'],
    ['self-made', () => selfMade.bytes, T0 + DAY_MS, 'wrong-issuer'],
    ['forged signature', forged, T0 + DAY_MS, 'bad-signature'],
    ['CA key without the domain', withoutDomain, T0 + DAY_MS, 'bad-signature'],
    ['CA key under another domain', otherDomain, T0 + DAY_MS, 'bad-signature'],
    ['envelope keys out of canonical order', outerOutOfOrder, T0 + DAY_MS, 'malformed'],
    ['hand-sealed canonical body', bodyInOrder, T0 + DAY_MS, 'ok'],
    ['body keys out of canonical order', bodyOutOfOrder, T0 + DAY_MS, 'malformed'],
    ['peerId of another key', mismatchedPeer, T0 + DAY_MS, 'malformed'],
    ['too large', () => new Uint8Array(CERTIFICATE_BYTES_MAX + 1), T0, 'too-large'],
    ['junk', () => new Uint8Array([1, 2, 3]), T0, 'malformed'],
    ['empty', () => new Uint8Array(), T0, 'malformed'],
  ]

  it.each(table)('%s', (_label, bytes, nowMs, expected) => {
    const verdict = verifyCertificate(bytes(), {
      caPublicKey: ca.publicKey,
      nowMs,
      clockSkewToleranceMs: skew,
    })
    expect(verdict.ok ? 'ok' : verdict.reason).toBe(expected)
    const cached = createCertificateVerifier({ caPublicKey: ca.publicKey, clockSkewToleranceMs: skew })
    const first = cached(bytes(), nowMs)
    const second = cached(bytes(), nowMs)
    expect(first.ok ? 'ok' : first.reason).toBe(expected)
    expect(second.ok ? 'ok' : second.reason).toBe(expected)
  })

  it('refuses a version-1 certificate as coming from an older mesh', () => {
    const old = legacySignedEnvelope(ca, { ...goodBody, version: 1 })
    const decoded = decodeCertificate(old)
    expect(decoded.ok).toBe(false)
    if (decoded.ok) return
    expect(decoded.reason).toBe('malformed')
    expect(decoded.detail).toMatch(
      /^certificate format version 1 is from an older mesh; re-create the home with mesh init/,
    )
    const verdict = verifyCertificate(old, { caPublicKey: ca.publicKey, nowMs: T0 + DAY_MS })
    expect(verdict.ok ? 'ok' : verdict.detail).toMatch(/format version 1 is from an older mesh/)
  })

  it('revoked', () => {
    const isRevoked = (serial: string) => serial === revokedSerial
    const verdict = verifyCertificate(good.bytes, {
      caPublicKey: ca.publicKey,
      nowMs: T0 + DAY_MS,
      isRevoked,
    })
    expect(verdict.ok ? 'ok' : verdict.reason).toBe('revoked')
  })
})

describe('checkValidityWindow', () => {
  const window = { notBeforeMs: 1000, notAfterMs: 2000 }
  it.each([
    [0, 100, 'not-yet-valid'],
    [899, 100, 'not-yet-valid'],
    [900, 100, undefined],
    [1500, 0, undefined],
    [1000, 0, undefined],
    [2000, 0, undefined],
    [2001, 0, 'expired'],
    [2100, 100, undefined],
    [2101, 100, 'expired'],
  ])('now %i with skew %i', (nowMs, skew, expected) => {
    expect(checkValidityWindow(window, nowMs, skew)?.reason).toBe(expected)
  })
})

describe('createCertificateVerifier', () => {
  it('caches the signature but re-checks time and revocation on every call', () => {
    const revoked = new Set<string>()
    const verify = createCertificateVerifier({ caPublicKey: ca.publicKey, isRevoked: s => revoked.has(s) })
    const signed = issueCertificate(ca, fields())
    expect(verify(signed.bytes, T0 + DAY_MS).ok).toBe(true)
    expect(verify(signed.bytes, T0 + DAY_MS).ok).toBe(true)
    expect(verify.stats()).toMatchObject({ cacheHits: 1, cacheMisses: 1, cacheEntries: 1 })
    const late = verify(signed.bytes, T0 + 31 * DAY_MS)
    expect(late.ok ? 'ok' : late.reason).toBe('expired')
    revoked.add(signed.certificate.serial)
    const after = verify(signed.bytes, T0 + DAY_MS)
    expect(after.ok ? 'ok' : after.reason).toBe('revoked')
  })

  it('keeps at most cacheEntriesMax entries and counts evictions', () => {
    const verify = createCertificateVerifier({ caPublicKey: ca.publicKey, cacheEntriesMax: 3 })
    const certificates = Array.from({ length: 5 }, () => issueCertificate(ca, fields()))
    for (const signed of certificates) expect(verify(signed.bytes, T0).ok).toBe(true)
    expect(verify.stats()).toMatchObject({ cacheEntries: 3, cacheEvictions: 2, cacheMisses: 5 })
    // The most recent stays cached; the first was evicted.
    verify(certificates[4]?.bytes ?? new Uint8Array(), T0)
    verify(certificates[0]?.bytes ?? new Uint8Array(), T0)
    expect(verify.stats()).toMatchObject({ cacheHits: 1, cacheMisses: 6 })
  })

  it('does not cache failures', () => {
    const verify = createCertificateVerifier({ caPublicKey: ca.publicKey })
    const bad = issueCertificate(keyFor('x'), fields())
    verify(bad.bytes, T0)
    verify(bad.bytes, T0)
    expect(verify.stats()).toMatchObject({ cacheHits: 0, cacheMisses: 2, cacheEntries: 0 })
  })

  it('times 10,000 cached and uncached verifications (printed with MESH_BENCH=1)', () => {
    const runs = process.env.MESH_BENCH === '1' ? 10_000 : 200
    const signed = issueCertificate(ca, fields())
    const fingerprint = fingerprintOf(ca.publicKey)
    expect(signed.certificate.issuer).toEqual(fingerprint)
    let start = performance.now()
    for (let i = 0; i < runs; i++) {
      if (!verifyCertificate(signed.bytes, { caPublicKey: ca.publicKey, nowMs: T0 }).ok)
        throw new Error('bad')
    }
    const uncachedMs = performance.now() - start
    const verify = createCertificateVerifier({ caPublicKey: ca.publicKey })
    start = performance.now()
    for (let i = 0; i < runs; i++) if (!verify(signed.bytes, T0).ok) throw new Error('bad')
    const cachedMs = performance.now() - start
    if (process.env.MESH_BENCH === '1') {
      console.log(
        `verifyCertificate x${runs}: uncached ${uncachedMs.toFixed(0)} ms (${((uncachedMs * 1000) / runs).toFixed(1)} µs/op), ` +
          `cached ${cachedMs.toFixed(0)} ms (${((cachedMs * 1000) / runs).toFixed(1)} µs/op)`,
      )
    }
    expect(cachedMs).toBeLessThan(uncachedMs)
  })
})
