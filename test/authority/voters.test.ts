/**
 * Proves how voters are derived from the roster: tables for zones of one, two (with an HRW witness from
 * outside) and more; roster validation with closed error codes; and properties against a naive
 * definition (members plus, for exactly two, the top-ranked outsider) including an odd voter count
 * whenever a witness exists.
 */
import fc from 'fast-check'
import { describe, expect, test } from 'vitest'
import { rankCandidates } from '../../src/authority/rendezvous.js'
import { normalizeRoster, rosterZones, votingZones, zoneVoters } from '../../src/authority/voters.js'

const limits = { membersMax: 8, idLengthMax: 16, zoneLengthMax: 8 }
const roster = [
  { id: 'a1', zone: 'a' },
  { id: 'a2', zone: 'a' },
  { id: 'a3', zone: 'a' },
  { id: 'b1', zone: 'b' },
  { id: 'b2', zone: 'b' },
  { id: 'c1', zone: 'c' },
]

describe('zoneVoters', () => {
  test('zone of three: its members, no witness', () => {
    expect(zoneVoters('a', roster)).toEqual({
      zone: 'a',
      members: ['a1', 'a2', 'a3'],
      voters: ['a1', 'a2', 'a3'],
      witness: null,
    })
  })

  test('zone of two: plus the top HRW outsider as witness', () => {
    const witness = rankCandidates('b', ['a1', 'a2', 'a3', 'c1'])[0]!
    const v = zoneVoters('b', roster)
    expect(v.witness).toBe(witness)
    expect(v.voters).toEqual(['b1', 'b2', witness].sort())
  })

  test('zone of one: itself', () => {
    expect(zoneVoters('c', roster).voters).toEqual(['c1'])
  })

  test('zone of two alone in the mesh: no witness available', () => {
    expect(
      zoneVoters(
        'b',
        roster.filter(m => m.zone === 'b'),
      ).voters,
    ).toEqual(['b1', 'b2'])
  })

  test('unknown zone: nobody', () => {
    expect(zoneVoters('zz', roster).voters).toEqual([])
  })

  test('matches the naive definition, and a witness makes the count odd', () => {
    const member = fc.record({
      id: fc.constantFrom('n1', 'n2', 'n3', 'n4', 'n5', 'n6'),
      zone: fc.constantFrom('x', 'y', 'z'),
    })
    fc.assert(
      fc.property(
        fc.uniqueArray(member, { selector: m => m.id }),
        fc.constantFrom('x', 'y', 'z'),
        (r, zone) => {
          const members = r
            .filter(m => m.zone === zone)
            .map(m => m.id)
            .sort()
          const outsiders = r.filter(m => m.zone !== zone).map(m => m.id)
          const witness = members.length === 2 ? (rankCandidates(zone, outsiders)[0] ?? null) : null
          const v = zoneVoters(zone, r)
          expect(v.members).toEqual(members)
          expect(v.witness).toBe(witness)
          if (witness !== null) expect(v.voters.length % 2).toBe(1)
        },
      ),
    )
  })
})

describe('votingZones / rosterZones', () => {
  test('a node votes in its own zone and the zones it witnesses', () => {
    const witness = zoneVoters('b', roster).witness!
    expect(votingZones(witness, roster)).toEqual(
      [...new Set([roster.find(m => m.id === witness)!.zone, 'b'])].sort(),
    )
    expect(votingZones('c1', roster)).toContain('c')
    expect(rosterZones(roster)).toEqual(['a', 'b', 'c'])
  })
})

describe('normalizeRoster', () => {
  test('sorts and deduplicates identical entries', () => {
    const r = normalizeRoster(
      [
        { id: 'b', zone: 'z' },
        { id: 'a', zone: 'z' },
        { id: 'a', zone: 'z' },
      ],
      limits,
    )
    expect(r).toEqual({
      ok: true,
      roster: [
        { id: 'a', zone: 'z' },
        { id: 'b', zone: 'z' },
      ],
    })
  })

  test.each([
    [
      [
        { id: 'a', zone: 'x' },
        { id: 'a', zone: 'y' },
      ],
      'duplicate-member',
    ],
    [[{ id: '', zone: 'x' }], 'bad-id'],
    [[{ id: 'x'.repeat(17), zone: 'x' }], 'bad-id'],
    [[{ id: 'a', zone: '' }], 'bad-zone'],
    [[{ id: 'a', zone: 'toolongzone' }], 'bad-zone'],
    [Array.from({ length: 9 }, (_, i) => ({ id: `n${i}`, zone: 'z' })), 'too-many-members'],
  ])('refuses %j with %s', (members, code) => {
    const r = normalizeRoster(members, limits)
    expect(r.ok).toBe(false)
    if (!r.ok) expect(r.code).toBe(code)
  })

  test('never throws on junk', () => {
    fc.assert(
      fc.property(fc.array(fc.record({ id: fc.anything(), zone: fc.anything() })), junk => {
        normalizeRoster(junk as never, limits)
      }),
    )
  })
})
