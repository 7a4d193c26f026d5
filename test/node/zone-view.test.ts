// Proves the one zone view: a zone this node votes in shows its first-hand lease (time left); a zone
// whose holder was proven by a lookup of its voters names it but says the lease is unknown (null,
// `unknown` in `mesh zones`), never a false 0; a member's own authority claim in its heartbeat decides
// nothing; no holder shows null and `-`.
import { describe, expect, it } from 'vitest'
import { formatLease } from '../../src/cli/members.js'
import type { MemberView } from '../../src/membership/view.js'
import {
  AUTHORITY_FACT,
  authorityNames,
  type ProvenHolder,
  provenHolders,
  type ZoneView,
  zoneViews,
} from '../../src/node/zone-view.js'

function member(name: string, zone: string, facts: Record<string, string> = {}): MemberView {
  return {
    name,
    peerId: `peer-${name}`,
    zone,
    roles: ['agent'],
    addrs: [],
    state: 'alive',
    lastSeenMs: 0,
    facts,
  }
}

describe('zoneViews', () => {
  const members = [
    member('w1', 'web', { [AUTHORITY_FACT]: 'web:3' }),
    member('w2', 'web'),
    member('d1', 'db', { [AUTHORITY_FACT]: 'db:7' }),
    member('d2', 'db'),
    member('e1', 'edge'),
  ]
  const voted: ZoneView[] = [
    { zone: 'web', members: ['w1', 'w2'], authority: 'w1', epoch: 3, leaseRemainingMs: 1_234 },
  ]

  it('shows the first-hand lease for a zone this node votes in', () => {
    const web = zoneViews(members, voted).find(z => z.zone === 'web')
    expect(web).toEqual({
      zone: 'web',
      members: ['w1', 'w2'],
      authority: 'w1',
      epoch: 3,
      leaseRemainingMs: 1_234,
    })
    expect(formatLease(web!)).toBe('1234ms')
  })

  const proven = new Map<string, ProvenHolder>([['db', { holder: 'd1', epoch: 7 }]])

  it('ignores authority claims in heartbeats: d1 claims db, nothing proves it', () => {
    const db = zoneViews(members, voted).find(z => z.zone === 'db')
    expect(db).toMatchObject({ authority: null, epoch: 0, leaseRemainingMs: null })
  })

  it('says the lease is unknown (null) for a holder proven by a lookup', () => {
    const db = zoneViews(members, voted, proven).find(z => z.zone === 'db')
    expect(db).toEqual({
      zone: 'db',
      members: ['d1', 'd2'],
      authority: 'd1',
      epoch: 7,
      leaseRemainingMs: null,
    })
    expect(JSON.parse(JSON.stringify(db)).leaseRemainingMs).toBeNull()
    expect(formatLease(db!)).toBe('unknown')
  })

  it('shows no lease for a zone without a holder', () => {
    const edge = zoneViews(members, voted).find(z => z.zone === 'edge')
    expect(edge).toMatchObject({ authority: null, epoch: 0, leaseRemainingMs: null })
    expect(formatLease(edge!)).toBe('-')
    expect(zoneViews(members, voted).map(z => z.zone)).toEqual(['db', 'edge', 'web'])
  })

  it('prefers the first-hand view over heartbeats and falls back when it knows no holder', () => {
    const firstHandOnly = zoneViews(members, [
      { zone: 'db', members: ['d1', 'd2'], authority: 'd2', epoch: 8, leaseRemainingMs: 900 },
      { zone: 'web', members: ['w1', 'w2'], authority: null, epoch: 3, leaseRemainingMs: null },
    ])
    expect(firstHandOnly.find(z => z.zone === 'db')).toMatchObject({
      authority: 'd2',
      epoch: 8,
      leaseRemainingMs: 900,
    })
    // web: this node votes but knows no holder, and no lookup proved one; w1's claim is not read.
    expect(firstHandOnly.find(z => z.zone === 'web')).toMatchObject({
      authority: null,
      leaseRemainingMs: null,
    })
  })

  it('provenHolders looks up each zone and names the holders; authorityNames lists them', async () => {
    const lookups: string[] = []
    const found = await provenHolders(
      ['db', 'edge', 'web'],
      async zone => {
        lookups.push(zone)
        return zone === 'db' ? { holder: 'peer-d2', epoch: 9 } : null
      },
      peerId => peerId.replace('peer-', ''),
    )
    expect(lookups.sort()).toEqual(['db', 'edge', 'web'])
    expect([...found]).toEqual([['db', { holder: 'd2', epoch: 9 }]])
    expect(authorityNames(found)).toEqual(new Set(['d2']))
  })
})
