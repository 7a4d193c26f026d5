/**
 * Proves the filter part `names` (a rollout wave: "the node's name is exactly one of these"): it ANDs
 * with every other part, is bounded (count, name charset, empty list), has one CBOR spelling (sorted,
 * no duplicates; any other spelling is refused as malformed), round-trips for random lists (fast-check,
 * against a naive set-membership model), drives the requester's expected set, and a wave of
 * {@link NAMES_MAX} longest names fits in one request next to the largest issuer certificate, reply
 * addresses, facts and `--where`.
 */
import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { CERTIFICATE_BYTES_MAX } from '../../src/ca/certificate.js'
import {
  compileFilter,
  FACT_FILTERS_MAX,
  type FilterSubject,
  filterFromCbor,
  filterToCbor,
  matchesFilter,
  NAMES_MAX,
  PATTERN_CHARS_MAX,
  type TargetFilter,
  WHERE_CHARS_MAX,
} from '../../src/gossip/filter.js'
import {
  ADDRESS_CHARS_MAX,
  createRequest,
  decodeRequest,
  REPLY_ADDRS_MAX,
  REQUEST_BYTES_MAX,
} from '../../src/gossip/request.js'
import { expectedNodes, type MemberView } from '../../src/membership/view.js'
import { type CborValue, decodeCbor, encodeCbor } from '../../src/wire/cbor.js'
import { signingKeyFromSeed } from '../../src/wire/ed25519.js'
import { NAME_CHARS_MAX } from '../../src/wire/fields.js'

const subject = (name: string, zone = 'web', facts: Record<string, string> = {}): FilterSubject => ({
  name,
  zone,
  facts,
})

describe('filter names', () => {
  it('matches only the listed names, AND with the other parts', () => {
    const filter = compileFilter({ zone: 'web', names: ['w1', 'w3'] })
    expect(matchesFilter(filter, subject('w1'))).toBe(true)
    expect(matchesFilter(filter, subject('w3'))).toBe(true)
    expect(matchesFilter(filter, subject('w2'))).toBe(false)
    expect(matchesFilter(filter, subject('w1', 'db'))).toBe(false)
    // Exact names, never patterns or prefixes.
    expect(matchesFilter({ names: ['w'] }, subject('w1'))).toBe(false)
    expect(matchesFilter({ names: ['w1x'] }, subject('w1'))).toBe(false)
  })

  it.each<[string, TargetFilter, string]>([
    ['an empty list', { names: [] }, 'bad-key'],
    ['a name with a space', { names: ['a b'] }, 'bad-key'],
    ['a glob', { names: ['w*'] }, 'bad-key'],
    ['an empty name', { names: [''] }, 'bad-key'],
    ['a name starting with a dot', { names: ['.x'] }, 'bad-key'],
    ['a name too long', { names: ['a'.repeat(NAME_CHARS_MAX + 1)] }, 'bad-key'],
    ['too many names', { names: Array.from({ length: NAMES_MAX + 1 }, (_, i) => `n${i}`) }, 'too-complex'],
  ])('compileFilter refuses %s', (_what, filter, code) => {
    expect(() => compileFilter(filter)).toThrow(expect.objectContaining({ code }))
  })

  it('accepts NAMES_MAX names of the longest length; duplicates count once', () => {
    const names = Array.from({ length: NAMES_MAX }, (_, i) => `${i}`.padStart(NAME_CHARS_MAX, 'x'))
    expect(compileFilter({ names }).names?.size).toBe(NAMES_MAX)
    expect(compileFilter({ names: ['a', 'a', 'b'] }).names).toEqual(new Set(['a', 'b']))
  })

  it('writes names sorted and without duplicates, so one filter has one signed encoding', () => {
    expect(filterToCbor({ names: ['c', 'a', 'b', 'a'] })).toEqual({ names: ['a', 'b', 'c'] })
    const a = encodeCbor(filterToCbor({ zone: 'z', names: ['b', 'a'] }) as CborValue)
    const b = encodeCbor(filterToCbor({ names: ['a', 'b', 'b'], zone: 'z' }) as CborValue)
    expect(a).toEqual(b)
  })

  it.each<[string, unknown]>([
    ['not a list', { names: 'a' }],
    ['an empty list', { names: [] }],
    ['unsorted', { names: ['b', 'a'] }],
    ['duplicates', { names: ['a', 'a'] }],
    ['a non-text entry', { names: ['a', 5] }],
    ['an entry too long', { names: ['a'.repeat(NAME_CHARS_MAX + 1)] }],
    [
      'too many',
      { names: Array.from({ length: NAMES_MAX + 1 }, (_, i) => `n${String(i).padStart(4, '0')}`) },
    ],
  ])('filterFromCbor refuses names %s as malformed', (_what, value) => {
    expect(() => filterFromCbor(value)).toThrow(expect.objectContaining({ code: 'malformed' }))
  })

  it('round-trips random name lists through CBOR and matches like a naive set lookup', () => {
    const nameArb = fc.stringMatching(/^[A-Za-z0-9][A-Za-z0-9._-]{0,20}$/)
    fc.assert(
      fc.property(
        fc.array(nameArb, { minLength: 1, maxLength: 40 }),
        fc.array(nameArb, { maxLength: 10 }),
        fc.option(fc.constantFrom('web', 'db'), { nil: undefined }),
        (names, probes, zone) => {
          const filter: TargetFilter = { ...(zone === undefined ? {} : { zone }), names }
          const decoded = filterFromCbor(decodeCbor(encodeCbor(filterToCbor(filter) as CborValue), 65_536))
          // Naive model: sorted unique list, membership by linear search.
          const model = [...new Set(names)].sort()
          expect(decoded).toEqual({ ...(zone === undefined ? {} : { zone }), names: model })
          const compiled = compileFilter(decoded)
          for (const probe of [...probes, ...names]) {
            for (const z of ['web', 'db']) {
              const naive = model.some(n => n === probe) && (zone === undefined || zone === z)
              expect(matchesFilter(compiled, subject(probe, z))).toBe(naive)
            }
          }
        },
      ),
      { numRuns: 200 },
    )
  })

  it("drives the requester's expected set", () => {
    const member = (name: string, zone: string, state: MemberView['state'] = 'alive'): MemberView => ({
      name,
      peerId: `p-${name}`,
      zone,
      roles: ['agent'],
      addrs: [],
      state,
      lastSeenMs: 0,
      facts: {},
    })
    const members = [
      member('w1', 'web'),
      member('w2', 'web'),
      member('w3', 'web', 'dead'),
      member('d1', 'db'),
    ]
    expect(expectedNodes(members, { names: ['w1', 'w3', 'd1', 'gone'] })).toEqual(['d1', 'w1'])
    expect(expectedNodes(members, { zone: 'web', names: ['w1', 'd1'] })).toEqual(['w1'])
  })

  it('a wave of NAMES_MAX longest names fits in one request with every other part at its largest', () => {
    const key = signingKeyFromSeed(new Uint8Array(32).fill(3))
    const names = Array.from({ length: NAMES_MAX }, (_, i) => `${i}`.padStart(NAME_CHARS_MAX, 'n'))
    const longKey = 'k'.repeat(64)
    const filter: TargetFilter = {
      zone: 'z'.repeat(NAME_CHARS_MAX),
      node: 'x'.repeat(PATTERN_CHARS_MAX),
      facts: Array.from({ length: FACT_FILTERS_MAX }, (_, i) => ({
        key: `${longKey.slice(0, 60)}${i}`.padEnd(64, 'k'),
        pattern: 'p'.repeat(PATTERN_CHARS_MAX),
      })),
      // Four terms of 250 characters: about WHERE_CHARS_MAX in all, each value within PATTERN_CHARS_MAX.
      where: ['a', 'b', 'c', 'd'].map(k => `${k}=${'v'.repeat(PATTERN_CHARS_MAX - 8)}`).join(' or '),
      names,
    }
    const request = createRequest({
      id: new Uint8Array(16),
      issuer: new Uint8Array(CERTIFICATE_BYTES_MAX).fill(1),
      key,
      issuedAtMs: 1,
      expiresAtMs: 2,
      filter,
      action: 'a'.repeat(64),
      args: ['x'.repeat(4096), 'y'.repeat(4096)],
      replyTo: {
        peerId: 'P'.repeat(ADDRESS_CHARS_MAX),
        addrs: Array.from({ length: REPLY_ADDRS_MAX }, () => 'A'.repeat(ADDRESS_CHARS_MAX)),
      },
    })
    expect(filter.where?.length).toBeGreaterThan(WHERE_CHARS_MAX - 32)
    expect(request.bytes.byteLength).toBeLessThanOrEqual(REQUEST_BYTES_MAX)
    expect(decodeRequest(request.bytes).filter.names?.size).toBe(NAMES_MAX)
  })
})
