/**
 * Proves how voters are derived from the roster: tables for zones of one, two (with an HRW witness from
 * outside), three and more than VOTERS_MAX (the top five by HRW); roster validation with closed error
 * codes; properties against a naive definition (members sorted by their own SHA-256 score, the first
 * five, plus for exactly two the top-ranked outsider) including an odd voter count whenever a witness
 * exists; and the seat properties bounded voters promise: adding or removing a member without a seat
 * never changes the voters, removing a voter or adding a member changes at most one seat.
 */
import fc from 'fast-check'
import { describe, expect, test } from 'vitest'
import { rankCandidates, rendezvousScore } from '../../src/authority/rendezvous.js'
import {
  memberZone,
  normalizeRoster,
  rosterZones,
  VOTERS_MAX,
  votingZones,
  zoneVoters,
} from '../../src/authority/voters.js'

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

  test('zone of seven: the top five by HRW vote, all seven are candidates', () => {
    const seven = ['g1', 'g2', 'g3', 'g4', 'g5', 'g6', 'g7'].map(id => ({ id, zone: 'g' }))
    const v = zoneVoters('g', [...seven, ...roster])
    expect(v.members).toEqual(seven.map(m => m.id))
    expect(v.voters).toEqual(rankCandidates('g', v.members).slice(0, 5).sort())
    expect(v.witness).toBeNull()
    expect(VOTERS_MAX).toBe(5)
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
          // Naive seats: highest score first, by the score itself rather than by rankCandidates.
          const seats = [...members]
            .sort((a, b) => (rendezvousScore(zone, a) > rendezvousScore(zone, b) ? -1 : 1))
            .slice(0, 5)
          const v = zoneVoters(zone, r)
          expect(v.members).toEqual(members)
          expect(v.witness).toBe(witness)
          expect(v.voters).toEqual([...seats, ...(witness === null ? [] : [witness])].sort())
          if (witness !== null) expect(v.voters.length % 2).toBe(1)
          expect(v.voters.length).toBeLessThanOrEqual(VOTERS_MAX)
        },
      ),
    )
  })
})

describe('bounded voters: seats', () => {
  const ids = Array.from({ length: 14 }, (_, i) => `m${i}`)
  /** Members of zone `z` (and one outsider, so zones of two have a witness). */
  const zoneOf = (members: readonly string[]) => [
    ...members.map(id => ({ id, zone: 'z' })),
    { id: 'out', zone: 'o' },
  ]
  const seatChanges = (a: readonly string[], b: readonly string[]) =>
    a.filter(id => !b.includes(id)).length + b.filter(id => !a.includes(id)).length
  const bigZone = fc.uniqueArray(fc.constantFrom(...ids), { minLength: 6, maxLength: 14 })

  test('adding or removing a member without a seat never changes the voters', () => {
    fc.assert(
      fc.property(bigZone, fc.nat(), (members, pick) => {
        const voters = zoneVoters('z', zoneOf(members)).voters
        const outside = members.filter(id => !voters.includes(id))
        const gone = outside[pick % outside.length]!
        expect(zoneVoters('z', zoneOf(members.filter(id => id !== gone))).voters).toEqual(voters)
        const fresh = ids.find(id => !members.includes(id))
        if (fresh === undefined) return
        const grown = zoneVoters('z', zoneOf([...members, fresh])).voters
        if (!grown.includes(fresh)) expect(grown).toEqual(voters)
      }),
    )
  })

  test('removing a voter or adding a member changes at most one seat (zones of more than three)', () => {
    fc.assert(
      fc.property(
        fc.uniqueArray(fc.constantFrom(...ids), { minLength: 4, maxLength: 14 }),
        fc.nat(),
        (members, pick) => {
          const voters = zoneVoters('z', zoneOf(members)).voters
          const gone = voters[pick % voters.length]!
          const shrunk = zoneVoters('z', zoneOf(members.filter(id => id !== gone))).voters
          // One seat: the leaver goes and, in a zone of more than five, the next-ranked member comes in.
          expect(shrunk.includes(gone)).toBe(false)
          expect(seatChanges(voters, shrunk)).toBe(members.length > VOTERS_MAX ? 2 : 1)
          const fresh = ids.find(id => !members.includes(id))
          if (fresh === undefined) return
          const grown = zoneVoters('z', zoneOf([...members, fresh])).voters
          expect(seatChanges(voters, grown)).toBeLessThanOrEqual(members.length >= VOTERS_MAX ? 2 : 1)
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

  test('a member without a seat votes in no zone but is still a member (a candidate) of its own', () => {
    const seven = ['g1', 'g2', 'g3', 'g4', 'g5', 'g6', 'g7'].map(id => ({ id, zone: 'g' }))
    const voters = zoneVoters('g', seven).voters
    const seatless = seven.map(m => m.id).filter(id => !voters.includes(id))
    expect(seatless).toHaveLength(2)
    for (const id of seatless) {
      expect(votingZones(id, seven)).toEqual([])
      expect(memberZone(id, seven)).toBe('g')
    }
    expect(memberZone('nobody', seven)).toBeNull()
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
