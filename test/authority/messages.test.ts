/**
 * Proves the wire format: every message kind survives encodeCbor → decodeCbor → parseAuthorityMessage
 * unchanged and within authorityMessageBytesMax, and malformed values (wrong types, floats, negative or
 * unsafe integers, extra or missing fields, oversize strings, random data) yield typed errors, never a
 * throw.
 */
import fc from 'fast-check'
import { describe, expect, test } from 'vitest'
import {
  type AuthorityMessage,
  authorityMessageBytesMax,
  describeMessage,
  parseAuthorityMessage,
} from '../../src/authority/messages.js'
import { decodeCbor, encodeCbor } from '../../src/wire/cbor.js'

const limits = { idLengthMax: 128, zoneLengthMax: 64 }
const ids = { incarnation: 2 ** 31 - 1, attempt: 7 }
const samples: AuthorityMessage[] = [
  { type: 'request', zone: 'core', from: 'n1', epoch: 3, rosterVersion: 5, ...ids },
  { type: 'grant', zone: 'core', from: 'n2', epoch: 3, ...ids },
  {
    type: 'refuse',
    zone: 'core',
    from: 'n2',
    reason: 'held',
    maxEpoch: 4,
    holder: 'n3',
    rosterVersion: 5,
    ...ids,
  },
  {
    type: 'refuse',
    zone: 'core',
    from: 'n2',
    reason: 'recovering',
    maxEpoch: 0,
    holder: null,
    rosterVersion: 0,
    ...ids,
  },
  {
    type: 'refuse',
    zone: 'core',
    from: 'n2',
    reason: 'roster',
    maxEpoch: 0,
    holder: null,
    rosterVersion: 9,
    ...ids,
  },
  { type: 'release', zone: 'core', from: 'n1', epoch: 3, ...ids },
  { type: 'sync', zone: 'core', from: 'n4' },
  { type: 'state', zone: 'core', from: 'n5', maxEpoch: 9, recovering: false },
]

describe('authority messages', () => {
  test.each(samples.map(m => [m.type, m] as const))('%s round-trips through CBOR', (_type, m) => {
    const bytes = encodeCbor(m as never)
    expect(bytes.byteLength).toBeLessThanOrEqual(authorityMessageBytesMax)
    expect(parseAuthorityMessage(decodeCbor(bytes, authorityMessageBytesMax), limits)).toEqual({
      ok: true,
      message: m,
    })
    expect(describeMessage(m)).toContain(m.zone)
  })

  test('the largest message with maximal ids stays within the byte limit', () => {
    const big: AuthorityMessage = {
      type: 'refuse',
      zone: 'z'.repeat(64),
      from: 'f'.repeat(128),
      reason: 'not-member',
      maxEpoch: Number.MAX_SAFE_INTEGER,
      holder: 'h'.repeat(128),
      incarnation: Number.MAX_SAFE_INTEGER,
      attempt: Number.MAX_SAFE_INTEGER,
      rosterVersion: Number.MAX_SAFE_INTEGER,
    }
    expect(encodeCbor(big as never).byteLength).toBeLessThanOrEqual(authorityMessageBytesMax)
  })

  test.each([
    ['not a map', 5, 'not-a-map'],
    ['array', [], 'not-a-map'],
    ['unknown type', { type: 'vote', zone: 'z', from: 'a' }, 'unknown-type'],
    ['missing field', { type: 'sync', zone: 'z' }, 'bad-field'],
    ['extra field', { type: 'sync', zone: 'z', from: 'a', x: 1 }, 'bad-field'],
    [
      'float epoch',
      { type: 'grant', zone: 'z', from: 'a', epoch: 1.5, incarnation: 1, attempt: 1 },
      'bad-field',
    ],
    ['negative', { type: 'grant', zone: 'z', from: 'a', epoch: -1, incarnation: 1, attempt: 1 }, 'bad-field'],
    [
      'unsafe',
      { type: 'grant', zone: 'z', from: 'a', epoch: 2 ** 60, incarnation: 1, attempt: 1 },
      'bad-field',
    ],
    ['empty zone', { type: 'sync', zone: '', from: 'a' }, 'bad-field'],
    ['long id', { type: 'sync', zone: 'z', from: 'a'.repeat(129) }, 'bad-field'],
    [
      'bad reason',
      {
        type: 'refuse',
        zone: 'z',
        from: 'a',
        reason: 'nope',
        maxEpoch: 0,
        holder: null,
        incarnation: 1,
        attempt: 1,
      },
      'bad-field',
    ],
    ['bool as string', { type: 'state', zone: 'z', from: 'a', maxEpoch: 0, recovering: 'no' }, 'bad-field'],
  ])('%s → %s', (_name, value, code) => {
    const r = parseAuthorityMessage(value, limits)
    expect(r.ok).toBe(false)
    if (!r.ok) expect(r.code).toBe(code)
  })

  test('never throws on arbitrary values', () => {
    fc.assert(
      fc.property(fc.anything(), v => {
        parseAuthorityMessage(v, limits)
      }),
    )
    fc.assert(
      fc.property(
        fc.dictionary(
          fc.constantFrom('type', 'zone', 'from', 'epoch', 'attempt', 'incarnation'),
          fc.anything(),
        ),
        v => {
          parseAuthorityMessage(v, limits)
        },
      ),
    )
  })
})
