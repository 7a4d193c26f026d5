// Proves the zone roster format and its pure helpers: signed rosters round-trip and verify only under
// the mesh CA key; tampered, non-canonical, inconsistent or oversize rosters are refused with the right
// reason and never throw (a body that still lists departures, `left`, among them); the largest roster
// the limits allow signs and verifies within ZONE_ROSTER_BYTES_MAX; nextZoneRoster follows its table.
// Priors: a zone whose voters change so that an old and a new majority could miss each other records
// its old voters that are still members (a prior with none left is dropped; a voter added or removed
// makes none), and the entry stays through changes elsewhere (so a node that missed versions still
// knows them) until the zone's voters change again; in a zone of more than five, priors are the bounded
// voter sets (a revoked voter's seat is one change, a member without a seat coming or going none); a
// fast-check property chains nextZoneRoster over random member maps (zones of up to nine) and checks
// members, since and priors against a naive history of every version.
import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { rankCandidates } from '../../src/authority/rendezvous.js'
import { rosterZones, zoneVoters } from '../../src/authority/voters.js'
import { fingerprintOf } from '../../src/ca/fingerprint.js'
import { peerIdOfPublicKey } from '../../src/ca/identity.js'
import {
  newerZoneRoster,
  nextZoneRoster,
  type SignedZoneRoster,
  signZoneRoster,
  verifyZoneRoster,
  ZONE_ROSTER_BYTES_MAX,
  ZONE_ROSTER_FORMAT_VERSION,
  ZONE_ROSTER_MEMBERS_MAX,
  type ZonePrior,
  type ZoneRoster,
  ZoneRosterError,
  type ZoneRosterMember,
} from '../../src/ca/zone-roster.js'
import type { CborValue } from '../../src/wire/cbor.js'
import { DOMAIN_ZONE_ROSTER } from '../../src/wire/domains.js'
import { signingKeyFromSeed } from '../../src/wire/ed25519.js'
import { sealEnvelope } from '../../src/wire/envelope.js'
import { keyFor, T0 } from './fixtures.js'

const caKey = keyFor('ca')

function sign(version: number, members: ZoneRosterMember[], priors: ZonePrior[] = []): SignedZoneRoster {
  return signZoneRoster(caKey, { version, issuedAtMs: T0, members, priors })
}

/** A roster body signed as is (no sorting or checks), to reach the verifier's own checks. */
function sealRaw(overrides: Record<string, CborValue> = {}): Uint8Array {
  return sealEnvelope(DOMAIN_ZONE_ROSTER, caKey, {
    version: ZONE_ROSTER_FORMAT_VERSION,
    rosterVersion: 2,
    issuedAtMs: T0,
    issuer: fingerprintOf(caKey.publicKey),
    members: [
      { peerId: 'a', zone: 'z1', since: 1 },
      { peerId: 'b', zone: 'z2', since: 2 },
    ],
    priors: [],
    ...overrides,
  })
}

function reasonOf(bytes: Uint8Array): string {
  const verdict = verifyZoneRoster(bytes, caKey.publicKey)
  return verdict.ok ? 'ok' : verdict.reason
}

const pairs = (list: readonly { peerId: string; zone: string }[]) => list.map(m => `${m.peerId}@${m.zone}`)

describe('zone roster: sign and verify', () => {
  it('round-trips, sorting members by peer id', () => {
    const signed = sign(3, [
      { peerId: 'b', zone: 'z2', since: 3 },
      { peerId: 'a', zone: 'z1', since: 1 },
    ])
    expect(signed.roster.members.map(m => m.peerId)).toEqual(['a', 'b'])
    const verdict = verifyZoneRoster(signed.bytes, caKey.publicKey)
    if (!verdict.ok) throw new Error(verdict.detail)
    expect(verdict.signed.roster).toEqual(signed.roster)
    expect(verdict.signed.roster).toMatchObject({ version: 3, issuedAtMs: T0 })
    expect(verdict.signed.roster.issuer).toEqual(fingerprintOf(caKey.publicKey))
    expect(reasonOf(sealRaw())).toBe('ok') // the raw fixture itself is valid
  })

  it('the empty version 0 verifies', () => {
    expect(reasonOf(sign(0, []).bytes)).toBe('ok')
  })

  it('signs only the known member fields', () => {
    const rich = { peerId: 'a', zone: 'z', since: 1, extra: 'x' } as ZoneRosterMember
    expect(sign(1, [rich]).roster.members).toEqual([{ peerId: 'a', zone: 'z', since: 1 }])
  })

  it('a roster of another CA is wrong-issuer; a key of the wrong size too', () => {
    const signed = sign(1, [{ peerId: 'a', zone: 'z', since: 1 }])
    expect(verifyZoneRoster(signed.bytes, keyFor('other-ca').publicKey)).toMatchObject({
      ok: false,
      reason: 'wrong-issuer',
    })
    expect(verifyZoneRoster(signed.bytes, new Uint8Array(31))).toMatchObject({ reason: 'wrong-issuer' })
    // Signed by another key but naming our fingerprint: the signature does not verify.
    const forged = sealEnvelope(DOMAIN_ZONE_ROSTER, keyFor('other-ca'), {
      version: ZONE_ROSTER_FORMAT_VERSION,
      rosterVersion: 1,
      issuedAtMs: T0,
      issuer: fingerprintOf(caKey.publicKey),
      members: [],
      priors: [],
    })
    expect(reasonOf(forged)).toBe('bad-signature')
  })

  it('any changed byte is refused, never accepted and never thrown', () => {
    const { bytes } = sign(2, [{ peerId: 'a', zone: 'z', since: 2 }])
    const reasons = new Set<string>()
    for (let i = 0; i < bytes.length; i++) {
      const altered = Uint8Array.from(bytes)
      altered[i] = (altered[i] ?? 0) ^ 0x01
      reasons.add(reasonOf(altered))
    }
    expect(reasons.has('ok')).toBe(false)
    expect(reasons.has('bad-signature')).toBe(true)
    expect(reasons.has('malformed')).toBe(true)
    // A flipped bit in the issuer fingerprint is a roster of "another" CA; nothing else is possible.
    for (const reason of reasons) expect(['bad-signature', 'malformed', 'wrong-issuer']).toContain(reason)
  })

  it.each<[string, Record<string, CborValue>]>([
    [
      'unsorted members',
      {
        members: [
          { peerId: 'b', zone: 'z2', since: 2 },
          { peerId: 'a', zone: 'z1', since: 1 },
        ],
      },
    ],
    [
      'duplicate members',
      {
        members: [
          { peerId: 'a', zone: 'z1', since: 1 },
          { peerId: 'a', zone: 'z2', since: 2 },
        ],
      },
    ],
    ['since above the version', { members: [{ peerId: 'a', zone: 'z1', since: 3 }] }],
    ['since 0', { members: [{ peerId: 'a', zone: 'z1', since: 0 }] }],
    ['version 0 with members', { rosterVersion: 0, members: [{ peerId: 'a', zone: 'z', since: 0 }] }],
    ['an unknown top-level field', { extra: 1 }],
    ['a left field (departures are no longer listed: an unknown field)', { left: [] }],
    ['an unknown member field', { members: [{ peerId: 'a', zone: 'z1', since: 1, x: 1 }] }],
    ['an invalid zone name', { members: [{ peerId: 'a', zone: '-bad', since: 1 }] }],
    ['a peer id too long', { members: [{ peerId: 'p'.repeat(129), zone: 'z', since: 1 }] }],
    ['an older format version', { version: 0 }],
    ['a newer format version', { version: ZONE_ROSTER_FORMAT_VERSION + 1 }],
    ['a version beyond the maximum', { rosterVersion: 2 ** 40 + 1 }],
    ['a short issuer', { issuer: new Uint8Array(31) }],
  ])('%s is malformed', (_, overrides) => {
    expect(reasonOf(sealRaw(overrides))).toBe('malformed')
  })

  it('oversize input is too-large; too many members cannot be signed', () => {
    expect(reasonOf(new Uint8Array(ZONE_ROSTER_BYTES_MAX + 1))).toBe('too-large')
    const many = Array.from({ length: ZONE_ROSTER_MEMBERS_MAX + 1 }, (_, i) => ({
      peerId: `p${String(i).padStart(5, '0')}`,
      zone: 'z',
      since: 1,
    }))
    expect(() => sign(1, many)).toThrow(ZoneRosterError)
    try {
      sign(1, many)
    } catch (err) {
      expect((err as ZoneRosterError).code).toBe('too-large')
    }
    expect(reasonOf(sealRaw({ members: many }))).toBe('malformed') // over the item bound
  })

  it('the largest roster the limits allow signs and verifies within ZONE_ROSTER_BYTES_MAX', () => {
    // Real ed25519 peer ids (the longest a member has), one distinct seed each.
    const peers = Array.from({ length: ZONE_ROSTER_MEMBERS_MAX }, (_, i) => {
      const seed = new Uint8Array(32).fill(0x5a)
      new DataView(seed.buffer).setUint32(0, i + 1)
      const peerId = peerIdOfPublicKey(signingKeyFromSeed(seed).publicKey)
      if (peerId === undefined) throw new Error('no peer id')
      return peerId
    })
    expect(new Set(peers).size).toBe(ZONE_ROSTER_MEMBERS_MAX)
    // Zones of two with 64-character names, each with a prior of three voters (a pair and its witness).
    const zoneOf = (k: number) => `z${String(k).padStart(63, '0')}`
    const zones = ZONE_ROSTER_MEMBERS_MAX / 2
    const members = peers.map((peerId, i) => ({ peerId, zone: zoneOf(Math.floor(i / 2)), since: 1 }))
    const priors = Array.from({ length: zones }, (_, k) => ({
      zone: zoneOf(k),
      voters: [2 * k, 2 * k + 1, (2 * k + 2) % ZONE_ROSTER_MEMBERS_MAX].map(i => peers[i] ?? ''),
      since: 2,
    }))
    expect(zoneOf(0)).toHaveLength(64)
    // With the former bound of 1 MiB, signZoneRoster refused this roster as too-large.
    const { bytes } = sign(3, members, priors)
    expect(bytes.byteLength).toBeLessThanOrEqual(ZONE_ROSTER_BYTES_MAX)
    const verdict = verifyZoneRoster(bytes, caKey.publicKey)
    if (!verdict.ok) throw new Error(verdict.detail)
    expect(verdict.signed.roster.members).toHaveLength(ZONE_ROSTER_MEMBERS_MAX)
    expect(verdict.signed.roster.priors).toHaveLength(zones)
  })

  it('signing refuses content that could not verify', () => {
    const invalid = (members: ZoneRosterMember[]) => () => sign(2, members)
    expect(invalid([{ peerId: 'a', zone: 'z', since: 3 }])).toThrow(ZoneRosterError)
    expect(
      invalid([
        { peerId: 'a', zone: 'z', since: 1 },
        { peerId: 'a', zone: 'y', since: 2 },
      ]),
    ).toThrow(/sorted by unique/)
  })

  it('newerZoneRoster: a higher version wins; anything beats none', () => {
    const v1 = sign(1, [{ peerId: 'a', zone: 'z', since: 1 }]).roster
    const v2 = sign(2, [{ peerId: 'a', zone: 'z', since: 1 }]).roster
    expect(newerZoneRoster(v1, undefined)).toBe(true)
    expect(newerZoneRoster(v2, v1)).toBe(true)
    expect(newerZoneRoster(v1, v2)).toBe(false)
    expect(newerZoneRoster(v1, v1)).toBe(false)
  })
})

describe('zone roster: nextZoneRoster', () => {
  const v1 = { version: 1, members: [{ peerId: 'a', zone: 'z1', since: 1 }], priors: [] }

  it('returns undefined when nothing changed', () => {
    expect(nextZoneRoster(v1, new Map([['a', 'z1']]))).toBeUndefined()
    expect(nextZoneRoster({ version: 0, members: [], priors: [] }, new Map())).toBeUndefined()
  })

  it('adds a member at the next version and keeps the others’ since', () => {
    expect(
      nextZoneRoster(
        v1,
        new Map([
          ['b', 'z2'],
          ['a', 'z1'],
        ]),
      ),
    ).toEqual({
      version: 2,
      members: [
        { peerId: 'a', zone: 'z1', since: 1 },
        { peerId: 'b', zone: 'z2', since: 2 },
      ],
      priors: [],
    })
  })

  it('removes a member', () => {
    expect(nextZoneRoster(v1, new Map())).toEqual({ version: 2, members: [], priors: [] })
  })

  it('a zone change re-adds the member at the next version', () => {
    expect(nextZoneRoster(v1, new Map([['a', 'z2']]))).toEqual({
      version: 2,
      members: [{ peerId: 'a', zone: 'z2', since: 2 }],
      priors: [],
    })
  })

  it('a member kept over later versions keeps its since', () => {
    const v2 = nextZoneRoster(v1, new Map([['b', 'z1']]))
    if (v2 === undefined) throw new Error('no change')
    const v3 = nextZoneRoster(
      v2,
      new Map([
        ['b', 'z1'],
        ['c', 'z1'],
      ]),
    )
    expect(v3?.members).toEqual([
      { peerId: 'b', zone: 'z1', since: 2 },
      { peerId: 'c', zone: 'z1', since: 3 },
    ])
    expect(v3?.members.find(m => m.peerId === 'b')?.since).toBe(2)
  })
})

describe('zone roster: priors', () => {
  type Members = Record<string, string>
  const v0 = { version: 0, members: [] as ZoneRosterMember[], priors: [] as ZonePrior[] }
  /** The next roster for `members` (peer id → zone), signed, so each step also passes the verifier. */
  function step(
    previous: { version: number; members: readonly ZoneRosterMember[]; priors: readonly ZonePrior[] },
    members: Members,
  ): ZoneRoster {
    const next = nextZoneRoster(previous, new Map(Object.entries(members)))
    if (next === undefined) throw new Error('no change')
    const signed = sign(next.version, next.members, next.priors)
    const verdict = verifyZoneRoster(signed.bytes, caKey.publicKey)
    if (!verdict.ok) throw new Error(verdict.detail)
    expect(verdict.signed.roster.priors).toEqual(next.priors)
    return verdict.signed.roster
  }
  const votersOf = (zone: string, members: Members) =>
    zoneVoters(
      zone,
      Object.entries(members).map(([id, z]) => ({ id, zone: z })),
    ).voters
  /** A fresh peer id that `top` outranks as witness of `zone`, so adding it keeps that zone's voters. */
  function rankedBelow(zone: string, top: string, prefix: string): string {
    for (let i = 0; ; i++) {
      const id = `${prefix}${i}`
      if (rankCandidates(zone, [top, id])[0] === top) return id
    }
  }

  it('a zone of three losing a member records its old voters still in the roster at the new version', () => {
    const v1 = step(v0, { a: 'z1', b: 'z1', c: 'z1', x: 'z2' })
    expect(v1.priors).toEqual([]) // version 1 follows the empty roster
    const v2 = step(v1, { a: 'z1', b: 'z1', x: 'z2' })
    expect(votersOf('z1', { a: 'z1', b: 'z1', x: 'z2' })).toEqual(['a', 'b', 'x']) // x is the witness
    expect(v2.priors).toEqual([{ zone: 'z1', voters: ['a', 'b'], since: 2 }]) // c left the roster
  })

  it('later changes in other zones keep the prior unchanged (a node that missed them still sees it)', () => {
    const v1 = step(v0, { a: 'z1', b: 'z1', c: 'z1', x: 'z2' })
    const v2 = step(v1, { a: 'z1', b: 'z1', x: 'z2' })
    const prior = { zone: 'z1', voters: ['a', 'b'], since: 2 } // c left the roster
    // Newcomers that rank below x for z1, so z1's witness (and voters) stay [a, b, x].
    const y = rankedBelow('z1', 'x', 'y')
    const w = rankedBelow('z1', 'x', 'w')
    const m3 = { a: 'z1', b: 'z1', x: 'z2', [y]: 'z2' }
    const v3 = step(v2, m3)
    expect(votersOf('z1', m3)).toEqual(['a', 'b', 'x'])
    // z2 went from [x] to a pair with a witness: its own prior, at version 3.
    expect(v3.priors).toEqual([prior, { zone: 'z2', voters: ['x'], since: 3 }])
    const m4 = { ...m3, [w]: 'z3' }
    const v4 = step(v3, m4)
    expect(votersOf('z1', m4)).toEqual(['a', 'b', 'x'])
    expect(v4.priors.find(p => p.zone === 'z1')).toEqual(prior)
    const v5 = step(v4, m3) // w leaves again
    expect(v5.version).toBe(5)
    expect(v5.priors.find(p => p.zone === 'z1')).toEqual(prior)
    expect(v5.priors.find(p => p.zone === 'z3')).toBeUndefined() // z3 has no members left
  })

  it('a change that does not alter a zone’s voters keeps its prior', () => {
    const v1 = step(v0, { a: 'z1', b: 'z1', c: 'z1', x: 'z2' })
    // c leaves and d joins in one version: a majority of [a, b, c] can miss one of [a, b, d].
    const v2 = step(v1, { a: 'z1', b: 'z1', d: 'z1', x: 'z2' })
    const prior = { zone: 'z1', voters: ['a', 'b'], since: 2 } // c left the roster
    expect(v2.priors).toEqual([prior])
    // A zone of three has no witness: outsiders coming and going never change its voters.
    const v3 = step(v2, { a: 'z1', b: 'z1', d: 'z1', y: 'z3' })
    expect(v3.priors).toEqual([prior]) // z2 emptied (no prior), z3 is new (no old voters)
    const v4 = step(v3, { a: 'z1', b: 'z1', d: 'z1', y: 'z3', x: 'z3' })
    expect(v4.priors).toEqual([prior, { zone: 'z3', voters: ['y'], since: 4 }])
  })

  it('a voter added or removed leaves no prior: every old majority meets every new one', () => {
    const v1 = step(v0, { a: 'z1', b: 'z1', c: 'z1', x: 'z2' })
    // c leaves and d joins: a prior, as above.
    const v2 = step(v1, { a: 'z1', b: 'z1', d: 'z1', x: 'z2' })
    expect(v2.priors).toHaveLength(1)
    // A fourth and a fifth member: 3 + 2 > 4 and 3 + 3 > 5 voters, so no prior; the older one goes too.
    const v3 = step(v2, { a: 'z1', b: 'z1', d: 'z1', e: 'z1', x: 'z2' })
    expect(v3.priors).toEqual([])
    const five = { a: 'z1', b: 'z1', d: 'z1', e: 'z1', f: 'z1', x: 'z2' }
    const v4 = step(v3, five)
    expect(v4.priors).toEqual([])
    // Without a prior, losing any two of the five voters leaves a majority: nothing else is counted.
    expect(votersOf('z1', five)).toEqual(['a', 'b', 'd', 'e', 'f'])
    // A voter revoked from the five: 3 + 3 > 5, still no prior.
    const v5 = step(v4, { a: 'z1', b: 'z1', d: 'z1', e: 'z1', x: 'z2' })
    expect(v5.priors).toEqual([])
  })

  it('a zone of one gaining a member records that member; the new voters include a witness', () => {
    const v1 = step(v0, { a: 'z1', x: 'z2' })
    const m2 = { a: 'z1', b: 'z1', x: 'z2' }
    const v2 = step(v1, m2)
    expect(
      zoneVoters(
        'z1',
        Object.entries(m2).map(([id, zone]) => ({ id, zone })),
      ),
    ).toMatchObject({
      voters: ['a', 'b', 'x'],
      witness: 'x',
    })
    expect(v2.priors).toEqual([{ zone: 'z1', voters: ['a'], since: 2 }]) // z2's voters stayed [x]
  })

  it('a prior lists only the old voters still in the roster (in any zone) and is dropped when none are', () => {
    const v1 = step(v0, { a: 'z1', b: 'z1', c: 'z1', e: 'z1', x: 'z2' })
    // c leaves the roster, e moves to z3 and d joins z1: z1's voters change from [a, b, c, e].
    const m2 = { a: 'z1', b: 'z1', d: 'z1', e: 'z3', x: 'z2' }
    const v2 = step(v1, m2)
    expect(votersOf('z1', m2)).toEqual(['a', 'b', 'd'])
    expect(v2.priors).toEqual([{ zone: 'z1', voters: ['a', 'b', 'e'], since: 2 }])

    // A zone of one gains a member (prior [a]); then all its old voters, witness included, leave.
    const w1 = step(v0, { a: 'z1', x: 'z2' })
    const w2 = step(w1, { a: 'z1', b: 'z1', x: 'z2' })
    expect(w2.priors).toEqual([{ zone: 'z1', voters: ['a'], since: 2 }])
    const m3 = { c: 'z1', d: 'z1', y: 'z2' }
    const w3 = step(w2, m3)
    // z1's voters [a, b, x] and z2's [x] changed, and none of the old voters is still a member.
    expect(votersOf('z1', m3)).toEqual(['c', 'd', 'y'])
    expect(votersOf('z2', m3)).toEqual(['y'])
    expect(w3.priors).toEqual([])
  })

  it('a zone of seven: priors hold the five voters, a seat change is one prior, seatless members none', () => {
    const seven: Members = Object.fromEntries(
      ['g1', 'g2', 'g3', 'g4', 'g5', 'g6', 'g7'].map(id => [id, 'z1']),
    )
    const v1 = step(v0, { ...seven, x: 'z2' })
    const voters = votersOf('z1', seven)
    expect(voters).toHaveLength(5)
    const seatless = Object.keys(seven).filter(id => !voters.includes(id))
    // A member without a seat leaves: the voters, so the priors, stay.
    const { [seatless[0]!]: _, ...six } = seven
    const v2 = step(v1, { ...six, x: 'z2' })
    expect(v2.priors).toEqual([])
    // A voter is revoked: the one seatless member left takes its seat; the prior is the four voters kept.
    const gone = voters[0]!
    const { [gone]: __, ...five } = six
    const v3 = step(v2, { ...five, x: 'z2' })
    const after = votersOf('z1', five)
    expect(after).toEqual([...voters.filter(id => id !== gone), seatless[1]!].sort())
    expect(v3.priors).toEqual([{ zone: 'z1', voters: voters.filter(id => id !== gone), since: 3 }])
  })

  it('a zone whose members all leave has no prior, even one it had', () => {
    const v1 = step(v0, { a: 'z1', b: 'z1', c: 'z1', x: 'z2' })
    const v2 = step(v1, { a: 'z1', b: 'z1', x: 'z2' })
    expect(v2.priors).toHaveLength(1)
    const v3 = step(v2, { x: 'z2' })
    expect(v3.priors).toEqual([])
    // Coming back later, the zone starts from no voters: still no prior.
    const v4 = step(v3, { x: 'z2', a: 'z1' })
    expect(v4.priors).toEqual([])
  })

  it('signing sorts zones and voters and keeps only the known fields', () => {
    const rich = { zone: 'z2', voters: ['c', 'a'], since: 2, extra: 1 } as ZonePrior
    const signed = sign(
      2,
      [{ peerId: 'a', zone: 'z1', since: 1 }],
      [rich, { zone: 'z1', voters: ['b'], since: 2 }],
    )
    expect(signed.roster.priors).toEqual([
      { zone: 'z1', voters: ['b'], since: 2 },
      { zone: 'z2', voters: ['a', 'c'], since: 2 },
    ])
    expect(() => sign(2, [], [{ zone: 'z1', voters: ['a'], since: 3 }])).toThrow(ZoneRosterError)
    expect(() => sign(2, [], [{ zone: 'z1', voters: [], since: 2 }])).toThrow(ZoneRosterError)
  })

  const prior = (zone: string, voters: CborValue[], since: CborValue = 2) => ({ zone, voters, since })

  it('a valid priors list verifies', () => {
    expect(reasonOf(sealRaw({ priors: [prior('z1', ['a', 'c']), prior('z2', ['b'])] }))).toBe('ok')
  })

  it.each<[string, CborValue]>([
    ['unsorted zones', [prior('z2', ['b']), prior('z1', ['a'])]],
    ['duplicate zones', [prior('z1', ['a']), prior('z1', ['b'])]],
    ['unsorted voters', [prior('z1', ['c', 'a'])]],
    ['duplicate voters', [prior('z1', ['a', 'a'])]],
    ['empty voters', [prior('z1', [])]],
    ['an empty voter id', [prior('z1', [''])]],
    ['a voter that is not text', [prior('z1', [7])]],
    ['a voter id too long', [prior('z1', ['p'.repeat(129)])]],
    ['since 1', [prior('z1', ['a'], 1)]],
    ['since 0', [prior('z1', ['a'], 0)]],
    ['since above the version', [prior('z1', ['a'], 3)]],
    ['an unknown prior field', [{ ...prior('z1', ['a']), x: 1 }]],
    ['a prior without since', [{ zone: 'z1', voters: ['a'] }]],
    ['an invalid zone name', [prior('-bad', ['a'])]],
    ['priors that are not a list', { z1: ['a'] }],
  ])('priors with %s are malformed', (_, priors) => {
    expect(reasonOf(sealRaw({ priors }))).toBe('malformed')
  })

  it('a roster without priors is malformed', () => {
    const { priors: _, ...rest } = {
      version: ZONE_ROSTER_FORMAT_VERSION,
      rosterVersion: 1,
      issuedAtMs: T0,
      issuer: fingerprintOf(caKey.publicKey),
      members: [],
      priors: [],
    }
    expect(reasonOf(sealEnvelope(DOMAIN_ZONE_ROSTER, caKey, rest))).toBe('malformed')
  })
})

describe('zone roster: chained versions (property)', () => {
  const memberMap = fc
    .dictionary(
      fc.constantFrom('p1', 'p2', 'p3', 'p4', 'p5', 'p6', 'p7', 'p8', 'p9'),
      fc.constantFrom('za', 'za', 'za', 'zb', 'zc'),
      { maxKeys: 9 },
    )
    .map(record => new Map(Object.entries(record)))

  /** The voters of `zone` for a member map, as src/authority/voters.ts computes them. */
  const votersIn = (zone: string, members: ReadonlyMap<string, string>) =>
    zoneVoters(
      zone,
      [...members].map(([id, z]) => ({ id, zone: z })),
    ).voters

  /**
   * The naive model of priors at the last version of `history` (member maps of versions 0, 1, …): for
   * each zone with members, the last version u whose voters differ from those of u − 1, and the voters
   * of u − 1 that are still members (of any zone) — at every version from u on, since one that left
   * is dropped then — when any remain and a majority of u − 1's voters can miss a majority of u's.
   */
  function expectedPriors(history: readonly ReadonlyMap<string, string>[]): ZonePrior[] {
    const last = history.at(-1) ?? new Map<string, string>()
    const out: ZonePrior[] = []
    for (const zone of rosterZones([...last].map(([id, z]) => ({ id, zone: z })))) {
      for (let u = history.length - 1; u >= 1; u--) {
        const before = votersIn(zone, history[u - 1] ?? new Map())
        const now = votersIn(zone, history[u] ?? new Map())
        if (before.join() === now.join()) continue
        // No prior when two majorities, one of each set, always share a voter.
        const majority = (n: number) => Math.floor(n / 2) + 1
        if (majority(before.length) + majority(now.length) > new Set([...before, ...now]).size) break
        const stayed = before.filter(id => history.slice(u).every(members => members.has(id)))
        if (stayed.length > 0) out.push({ zone, voters: stayed, since: u })
        break
      }
    }
    return out
  }

  it('members and since follow the member maps; priors follow the voters of the history', () => {
    fc.assert(
      fc.property(fc.array(memberMap, { maxLength: 12 }), maps => {
        let current: ZoneRoster = sign(0, []).roster
        // The member map of every version so far (index = version).
        const history: ReadonlyMap<string, string>[] = [new Map()]
        for (const members of maps) {
          const wanted = [...members].sort(([a], [b]) => (a < b ? -1 : 1)).map(([p, z]) => `${p}@${z}`)
          const next = nextZoneRoster(current, members)
          if (next === undefined) {
            expect(pairs(current.members)).toEqual(wanted) // undefined only when nothing changed
            continue
          }
          expect(next.version).toBe(current.version + 1)
          // Signing also proves every chained roster passes the verifier's own checks.
          const roster = sign(next.version, next.members, next.priors).roster
          expect(pairs(roster.members)).toEqual(wanted)
          // Members kept with their zone keep their since; the others are new at this version.
          for (const m of roster.members) {
            const before = current.members.find(o => o.peerId === m.peerId)
            expect(m.since).toBe(
              before !== undefined && before.zone === m.zone ? before.since : roster.version,
            )
          }
          history.push(members)
          expect(roster.priors).toEqual(expectedPriors(history))
          current = roster
        }
      }),
      { numRuns: 150 },
    )
  })
})
