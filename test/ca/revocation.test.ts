// Proves revocation lists: signed lists verify and round-trip, any single-byte change is refused,
// lists of another CA or with a forged signature get their closed reasons, `newer` orders by
// version, and the lookup answers by serial and by PeerId. The signature is bound to the
// revocation-list domain, and a version-1 list is refused as coming from an older mesh.
import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { newSerial } from '../../src/ca/certificate.js'
import { peerIdOfPublicKey } from '../../src/ca/identity.js'
import {
  createRevocationLookup,
  newer,
  REVOCATION_ENTRIES_MAX,
  type RevocationEntry,
  RevocationListError,
  signRevocationList,
  verifyRevocationList,
} from '../../src/ca/revocation.js'
import type { CborValue } from '../../src/wire/cbor.js'
import { DOMAIN_CERTIFICATE, DOMAIN_REVOCATION_LIST } from '../../src/wire/domains.js'
import { openEnvelope, sealEnvelope } from '../../src/wire/envelope.js'
import { legacySignedEnvelope } from '../wire/encodings.js'
import { keyFor, seededRandomBytes, T0 } from './fixtures.js'

const ca = keyFor('ca')
const random = seededRandomBytes('revocation')

function entry(name: string): RevocationEntry {
  return {
    serial: newSerial(random),
    name,
    peerId: peerIdOfPublicKey(keyFor(name).publicKey) ?? '',
    revokedAtMs: T0,
    notAfterMs: T0 + 1000,
  }
}

function reason(bytes: Uint8Array, key = ca.publicKey): string {
  const verdict = verifyRevocationList(bytes, key)
  return verdict.ok ? 'ok' : verdict.reason
}

describe('revocation list', () => {
  const entries = [entry('a'), entry('b'), entry('c')]
  const signed = signRevocationList(ca, { version: 3, issuedAtMs: T0, entries })

  it('verifies, round-trips and sorts entries by serial', () => {
    const verdict = verifyRevocationList(signed.bytes, ca.publicKey)
    expect(verdict.ok).toBe(true)
    if (!verdict.ok) return
    expect(verdict.signed.list).toEqual(signed.list)
    const serials = verdict.signed.list.entries.map(e => e.serial)
    expect(serials).toEqual([...serials].sort())
    expect(
      signRevocationList(ca, { version: 3, issuedAtMs: T0, entries: [...entries].reverse() }).bytes,
    ).toEqual(signed.bytes)
  })

  it('any single-byte change is refused (property over positions)', () => {
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

  it('reasons', () => {
    expect(reason(signed.bytes, keyFor('other').publicKey)).toBe('wrong-issuer')
    expect(reason(signRevocationList(keyFor('other'), { version: 9, issuedAtMs: T0, entries }).bytes)).toBe(
      'wrong-issuer',
    )
    const { body } = openEnvelope(signed.bytes, 1e6)
    const content = body as CborValue
    expect(reason(sealEnvelope(DOMAIN_REVOCATION_LIST, keyFor('other'), content))).toBe('bad-signature')
    expect(reason(sealEnvelope(DOMAIN_REVOCATION_LIST, ca, content))).toBe('ok')
    // The CA key, but without the domain or under another kind's domain.
    expect(reason(legacySignedEnvelope(ca, content))).toBe('bad-signature')
    expect(reason(sealEnvelope(DOMAIN_CERTIFICATE, ca, content))).toBe('bad-signature')
    expect(reason(new Uint8Array([0xff]))).toBe('malformed')
  })

  it('refuses a version-1 list as coming from an older mesh', () => {
    const { body } = openEnvelope(signed.bytes, 1e6)
    const verdict = verifyRevocationList(
      legacySignedEnvelope(ca, { ...body, version: 1 } as CborValue),
      ca.publicKey,
    )
    expect(verdict.ok ? 'ok' : verdict.reason).toBe('malformed')
    expect(verdict.ok ? '' : verdict.detail).toMatch(
      /^revocation list format version 1 is from an older mesh; upgrade mesh on the CA machine/,
    )
  })

  it('refuses duplicate serials and too many entries', () => {
    const one = entry('d')
    expect(() => signRevocationList(ca, { version: 1, issuedAtMs: T0, entries: [one, one] })).toThrow(
      RevocationListError,
    )
    const many = Array.from({ length: REVOCATION_ENTRIES_MAX + 1 }, () => one)
    expect(() => signRevocationList(ca, { version: 1, issuedAtMs: T0, entries: many })).toThrow(
      RevocationListError,
    )
  })

  it('newer orders by version', () => {
    const older = signRevocationList(ca, { version: 2, issuedAtMs: T0 + 5, entries: [] }).list
    expect(newer(signed.list, undefined)).toBe(true)
    expect(newer(signed.list, older)).toBe(true)
    expect(newer(older, signed.list)).toBe(false)
    expect(newer(signed.list, signed.list)).toBe(false)
  })

  it('lookup by serial and PeerId', () => {
    const lookup = createRevocationLookup(signed.list)
    expect(lookup.version).toBe(3)
    expect(lookup.isRevoked(entries[0]?.serial ?? '')).toBe(true)
    expect(lookup.isRevoked(newSerial(random))).toBe(false)
    expect(lookup.isPeerRevoked(entries[1]?.peerId ?? '')).toBe(true)
    expect(lookup.isPeerRevoked(peerIdOfPublicKey(keyFor('z').publicKey) ?? '')).toBe(false)
    expect(createRevocationLookup(undefined).isRevoked(entries[0]?.serial ?? '')).toBe(false)
  })
})
