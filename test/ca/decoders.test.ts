// Proves no decoder in src/ca crashes on hostile input: random bytes, random CBOR values, and random
// CBOR values wrapped in a well-formed envelope (so field validation is reached) all yield a typed
// result or typed error. fast-check drives the inputs; any other exception fails the test.
import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { createCertificateVerifier, decodeCertificate, verifyCertificate } from '../../src/ca/certificate.js'
import { FingerprintError, parseFingerprint } from '../../src/ca/fingerprint.js'
import { decodeIssuerState, IssuerStateError } from '../../src/ca/issuer-state.js'
import { decodeKeyFile, decodeTicketSecretFile, KeyFileError } from '../../src/ca/key-file.js'
import { verifyRevocationList } from '../../src/ca/revocation.js'
import { verifySigningRequest } from '../../src/ca/signing-request.js'
import { parseTicket, TICKET_PREFIX, TicketError } from '../../src/ca/ticket.js'
import { verifyZoneRoster } from '../../src/ca/zone-roster.js'
import { type CborValue, encodeCbor } from '../../src/wire/cbor.js'
import { keyFor, T0 } from './fixtures.js'

const ca = keyFor('ca')
const verifier = createCertificateVerifier({ caPublicKey: ca.publicKey })

function expectTyped(run: () => unknown, errorClass: new (...args: never[]) => Error): void {
  try {
    const result = run()
    if (result !== null && typeof result === 'object' && 'ok' in result) {
      expect(result.ok).toBe(false)
    }
  } catch (err) {
    expect(err).toBeInstanceOf(errorClass)
  }
}

/** Every byte decoder, applied to one input. None may crash; none may accept random input. */
function decodeAll(bytes: Uint8Array): void {
  const decoded = decodeCertificate(bytes)
  expect(decoded.ok).toBe(false)
  // These promise never to throw: a throw fails the test on its own.
  expect(verifyCertificate(bytes, { caPublicKey: ca.publicKey, nowMs: T0 }).ok).toBe(false)
  expect(verifier(bytes, T0).ok).toBe(false)
  expect(verifySigningRequest(bytes, { nowMs: T0, maxAgeMs: 1e9, clockSkewToleranceMs: 0 }).ok).toBe(false)
  expect(verifyRevocationList(bytes, ca.publicKey).ok).toBe(false)
  expect(verifyZoneRoster(bytes, ca.publicKey).ok).toBe(false)
  expectTyped(() => decodeKeyFile(bytes), KeyFileError)
  expectTyped(() => decodeTicketSecretFile(bytes), KeyFileError)
  expectTyped(() => parseTicket(TICKET_PREFIX + Buffer.from(bytes).toString('base64url')), TicketError)
  try {
    decodeIssuerState(bytes)
  } catch (err) {
    expect(err).toBeInstanceOf(IssuerStateError)
  }
}

const cborValue: fc.Arbitrary<CborValue> = fc.letrec<{ value: CborValue }>(tie => ({
  value: fc.oneof(
    { depthSize: 'small' },
    fc.constant(null),
    fc.boolean(),
    fc.integer(),
    fc.string({ maxLength: 40 }),
    fc.uint8Array({ maxLength: 40 }),
    fc.array(tie('value'), { maxLength: 4 }),
    fc.dictionary(
      fc.constantFrom(
        'version',
        'serial',
        'name',
        'publicKey',
        'peerId',
        'zone',
        'roles',
        'entries',
        'members',
        'left',
        'roster',
        'priors',
        'voters',
        'body',
        'sig',
        'x',
      ),
      tie('value'),
      { maxKeys: 6 },
    ),
  ),
})).value

describe('decoders never crash', () => {
  it('random bytes', () => {
    fc.assert(fc.property(fc.uint8Array({ maxLength: 600 }), decodeAll), { numRuns: 300 })
  })

  it('random CBOR values', () => {
    fc.assert(
      fc.property(cborValue, value => decodeAll(encodeCbor(value))),
      { numRuns: 300 },
    )
  })

  it('random CBOR inside a well-formed envelope', () => {
    fc.assert(
      fc.property(cborValue, fc.constantFrom('sig', 'mac'), (value, tag) => {
        decodeAll(encodeCbor({ body: encodeCbor(value), [tag]: new Uint8Array(tag === 'sig' ? 64 : 32) }))
      }),
      { numRuns: 300 },
    )
  })

  it('random text for the text parsers', () => {
    fc.assert(
      fc.property(fc.string({ maxLength: 200 }), text => {
        expectTyped(() => parseTicket(text), TicketError)
        expectTyped(() => parseTicket(TICKET_PREFIX + text), TicketError)
        expectTyped(() => parseFingerprint(text), FingerprintError)
      }),
      { numRuns: 300 },
    )
  })
})
