// Proves fingerprint text forms: the full form round-trips for any 32 bytes and matches a naive
// bit-by-bit base32 (fast-check), the parser takes only the full form, and the short form is stable.
import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import {
  FINGERPRINT_TEXT_PREFIX,
  FingerprintError,
  fingerprintOf,
  formatFingerprint,
  parseFingerprint,
  shortFingerprint,
} from '../../src/ca/fingerprint.js'
import { toHex } from '../../src/wire/hash.js'

/** RFC 4648 base32 done the slow, obvious way: one bit at a time. */
function naiveBase32(bytes: Uint8Array): string {
  const bits = [...bytes].map(byte => byte.toString(2).padStart(8, '0')).join('')
  let out = ''
  for (let i = 0; i < bits.length; i += 5) {
    out += 'abcdefghijklmnopqrstuvwxyz234567'[Number.parseInt(bits.slice(i, i + 5).padEnd(5, '0'), 2)]
  }
  return out
}

const fingerprintArbitrary = fc.uint8Array({ minLength: 32, maxLength: 32 })

describe('fingerprint', () => {
  it('full form matches naive base32 and round-trips (property)', () => {
    fc.assert(
      fc.property(fingerprintArbitrary, fingerprint => {
        const text = formatFingerprint(fingerprint)
        expect(text).toBe(FINGERPRINT_TEXT_PREFIX + naiveBase32(fingerprint))
        expect(toHex(parseFingerprint(text))).toBe(toHex(fingerprint))
        expect(toHex(parseFingerprint(` ${text.toUpperCase().slice(FINGERPRINT_TEXT_PREFIX.length)} `))).toBe(
          toHex(fingerprint),
        )
      }),
    )
  })

  it('short form is four groups of four taken from the full form', () => {
    fc.assert(
      fc.property(fingerprintArbitrary, fingerprint => {
        const short = shortFingerprint(fingerprint)
        expect(short).toMatch(/^[a-z2-7]{4}(-[a-z2-7]{4}){3}$/)
        expect(short.replaceAll('-', '')).toBe(naiveBase32(fingerprint).slice(0, 16))
      }),
    )
  })

  it('is SHA-256 of the key', () => {
    expect(toHex(fingerprintOf(new Uint8Array()))).toBe(
      'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855',
    )
  })

  it.each([
    ['empty', ''],
    ['short form', 'abcd-efgh-ijkl-mnop'],
    ['one char short', formatFingerprint(new Uint8Array(32)).slice(0, -1)],
    ['bad alphabet', `${FINGERPRINT_TEXT_PREFIX}${'1'.repeat(52)}`],
    ['non-zero padding bits', `${FINGERPRINT_TEXT_PREFIX}${'a'.repeat(51)}b`],
    ['other prefix', `md5:${'a'.repeat(52)}`],
  ])('parseFingerprint refuses %s', (_label, text) => {
    expect(() => parseFingerprint(text)).toThrow(FingerprintError)
  })
})
