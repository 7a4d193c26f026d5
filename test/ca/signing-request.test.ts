// Proves signing requests round-trip for all three kinds (ticket, renewal, waiting), that the proof
// of possession holds (only the key being certified can sign, any byte change is refused), and that
// the age checks give the closed reasons; the signature is bound to the signing-request domain, and a
// version-1 request is refused as coming from an older mesh. Uses fast-check for the round-trip and
// byte changes.
import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { peerIdOfPublicKey } from '../../src/ca/identity.js'
import {
  createSigningRequest,
  SIGNING_REQUEST_BYTES_MAX,
  SIGNING_REQUEST_VERSION,
  SigningRequestError,
  type SigningRequestFields,
  verifySigningRequest,
} from '../../src/ca/signing-request.js'
import { DOMAIN_REQUEST, DOMAIN_SIGNING_REQUEST } from '../../src/wire/domains.js'
import { sealEnvelope } from '../../src/wire/envelope.js'
import { legacySignedEnvelope } from '../wire/encodings.js'
import { DAY_MS, keyFor, seededRandomBytes, T0 } from './fixtures.js'

const requester = keyFor('joiner')
const random = seededRandomBytes('csr')
const options = { nowMs: T0, maxAgeMs: 7 * DAY_MS, clockSkewToleranceMs: 60_000 }

function fields(overrides: Partial<SigningRequestFields> = {}): SigningRequestFields {
  return { name: 'db1', zone: 'db', createdAtMs: T0, nonce: random(16), ...overrides }
}

function reason(bytes: Uint8Array, nowMs = T0): string {
  const verdict = verifySigningRequest(bytes, { ...options, nowMs })
  return verdict.ok ? 'ok' : verdict.reason
}

describe('signing request', () => {
  it('round-trips (property)', () => {
    fc.assert(
      fc.property(
        fc.option(fc.stringMatching(/^[a-z][a-z0-9-]{0,20}$/), { nil: undefined }),
        fc.option(fc.stringMatching(/^mesh2\.[A-Za-z0-9_-]{0,300}$/), { nil: undefined }),
        fc.option(fc.uint8Array({ maxLength: 1024 }), { nil: undefined }),
        fc.integer({ min: T0 - DAY_MS, max: T0 }),
        (name, ticket, certificate, createdAtMs) => {
          const signed = createSigningRequest(
            requester,
            fields({ name, zone: name, ticket, certificate, createdAtMs, nonce: random(16) }),
          )
          expect(signed.bytes.byteLength).toBeLessThanOrEqual(SIGNING_REQUEST_BYTES_MAX)
          const verdict = verifySigningRequest(signed.bytes, options)
          expect(verdict.ok).toBe(true)
          if (!verdict.ok) return
          const request = verdict.signed.request
          expect(request.peerId).toBe(peerIdOfPublicKey(requester.publicKey))
          expect(request.name).toBe(name)
          expect(request.ticket).toBe(ticket)
          expect(request.certificate).toEqual(certificate)
          expect(request.createdAtMs).toBe(createdAtMs)
        },
      ),
      { numRuns: 60 },
    )
  })

  it('any single-byte change is refused (property over positions)', () => {
    const signed = createSigningRequest(requester, fields())
    fc.assert(
      fc.property(
        fc.nat({ max: signed.bytes.length - 1 }),
        fc.integer({ min: 1, max: 255 }),
        (position, delta) => {
          const altered = Uint8Array.from(signed.bytes)
          altered[position] = ((altered[position] ?? 0) + delta) & 255
          expect(reason(altered)).not.toBe('ok')
        },
      ),
      { numRuns: 300 },
    )
  })

  it('a request for one key signed by another is bad-signature', () => {
    const body = {
      version: SIGNING_REQUEST_VERSION,
      publicKey: requester.publicKey,
      peerId: peerIdOfPublicKey(requester.publicKey) ?? '',
      createdAtMs: T0,
      nonce: random(16),
    }
    expect(reason(sealEnvelope(DOMAIN_SIGNING_REQUEST, keyFor('thief'), body))).toBe('bad-signature')
    expect(reason(sealEnvelope(DOMAIN_SIGNING_REQUEST, requester, body))).toBe('ok')
    // The right key, but without the domain or under another kind's domain.
    expect(reason(legacySignedEnvelope(requester, body))).toBe('bad-signature')
    expect(reason(sealEnvelope(DOMAIN_REQUEST, requester, body))).toBe('bad-signature')
  })

  it('refuses a version-1 request as coming from an older mesh', () => {
    const old = legacySignedEnvelope(requester, {
      version: 1,
      publicKey: requester.publicKey,
      peerId: peerIdOfPublicKey(requester.publicKey) ?? '',
      createdAtMs: T0,
      nonce: random(16),
    })
    const verdict = verifySigningRequest(old, options)
    expect(verdict.ok ? 'ok' : verdict.reason).toBe('malformed')
    expect(verdict.ok ? '' : verdict.detail).toMatch(
      /^signing request format version 1 is from an older mesh; upgrade mesh on the joining machine/,
    )
  })

  it('age reasons', () => {
    const signed = createSigningRequest(requester, fields())
    expect(reason(signed.bytes, T0 + 7 * DAY_MS)).toBe('ok')
    expect(reason(signed.bytes, T0 + 7 * DAY_MS + 1)).toBe('stale')
    expect(reason(signed.bytes, T0 - 60_000)).toBe('ok')
    expect(reason(signed.bytes, T0 - 60_001)).toBe('from-future')
    expect(reason(new Uint8Array(SIGNING_REQUEST_BYTES_MAX + 1))).toBe('too-large')
    expect(reason(new Uint8Array([0xa0]))).toBe('malformed')
  })

  it('createSigningRequest refuses invalid fields', () => {
    expect(() => createSigningRequest(requester, fields({ name: 'no spaces' }))).toThrow(SigningRequestError)
    expect(() => createSigningRequest(requester, fields({ nonce: new Uint8Array(2) }))).toThrow(
      SigningRequestError,
    )
    expect(() => createSigningRequest(requester, fields({ createdAtMs: -1 }))).toThrow(SigningRequestError)
    expect(() => createSigningRequest(requester, fields({ certificate: new Uint8Array(8000) }))).toThrow(
      SigningRequestError,
    )
  })
})
