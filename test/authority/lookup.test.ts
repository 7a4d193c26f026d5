/**
 * Proves the lookup that replaces heartbeat claims (the security issue's forged `meshAuthority`): any
 * node asks a zone's voters who holds its lease, and a holder is named only when a joint majority of
 * the voters names it with one epoch. No holder, a minority, or answers under another roster version
 * prove nothing; the lookup then ends with null (early when every voter answered, else at its timeout).
 */
import { describe, expect, it } from 'vitest'
import { authorityProfiles, createAuthority, LOOKUPS_MAX } from '../../src/authority/index.js'
import { Simulator } from '../sim/simulator.js'

const config = authorityProfiles.test
const nodes = [
  { id: 'a', zone: 'core', driftRate: 0, offsetMs: 1_000_000 },
  { id: 'w1', zone: 'web', driftRate: 0, offsetMs: 2_000_000 },
  { id: 'w2', zone: 'web', driftRate: 0, offsetMs: 3_000_000 },
  { id: 'w3', zone: 'web', driftRate: 0, offsetMs: 4_000_000 },
]

describe('zone authority lookup', () => {
  it('a non-voter learns the holder from a majority of the voters', () => {
    const sim = new Simulator({ seed: 31, nodes, config, versioned: true, wire: true })
    expect(sim.runUntilAuthority('web', 5_000)).not.toBeNull()
    const holder = sim.authorityOf('web')!
    const query = sim.lookup('a', 'web')
    sim.runUntil(sim.nowMs + 200)
    expect(sim.lookupResults.get(query)).toEqual({ holder: holder.id, epoch: holder.epoch })
  })

  it('a voter asking counts its own grant with the others', () => {
    const sim = new Simulator({ seed: 32, nodes, config, versioned: true })
    sim.runUntilAuthority('web', 5_000)
    const holder = sim.authorityOf('web')!
    const other = ['w1', 'w2', 'w3'].find(id => id !== holder.id)!
    const query = sim.lookup(other, 'web')
    sim.runUntil(sim.nowMs + 200)
    expect(sim.lookupResults.get(query)?.holder).toBe(holder.id)
  })

  it('proves no holder while only a minority of the voters runs, and ends at its timeout', () => {
    const sim = new Simulator({ seed: 33, nodes, config, versioned: true, failureDetectorMs: 100 })
    sim.runUntilAuthority('web', 5_000)
    sim.crash('w2')
    sim.crash('w3')
    sim.runUntil(sim.nowMs + 3_000)
    expect(sim.authorityOf('web')).toBeNull()
    const query = sim.lookup('a', 'web')
    sim.runUntil(sim.nowMs + 100)
    expect(sim.lookupResults.has(query)).toBe(false)
    sim.runUntil(sim.nowMs + 2 * config.attemptTimeoutMs + 100)
    expect(sim.lookupResults.get(query)).toEqual({ holder: null, epoch: 0 })
  })

  it('one voter naming itself (or anyone) is not a proof', () => {
    // w3 alone answers "w3 holds web at 999999"; w1 and w2 say nobody: no majority names w3.
    const a = createAuthority({ self: 'a', config, random: () => 0.5, nowMs: 0 })
    a.step({ type: 'roster', version: 1, members: nodes.map(n => ({ id: n.id, zone: n.zone })) }, 0)
    a.drainEffects()
    a.step({ type: 'lookup', zone: 'web', query: 7 }, 10)
    const asked = a.drainEffects().flatMap(e => (e.type === 'send' && e.message.type === 'who' ? [e.to] : []))
    expect(asked.sort()).toEqual(['w1', 'w2', 'w3'])
    const answer = (from: string, holder: string | null, epoch: number, rosterVersion = 1) =>
      a.step(
        {
          type: 'message',
          from,
          message: { type: 'holder', zone: 'web', from, query: 7, holder, epoch, rosterVersion },
        },
        20,
      )
    answer('w3', 'w3', 999_999)
    expect(a.drainEffects().filter(e => e.type === 'lookup-result')).toEqual([])
    // w2 names w3 too, but under another roster version: it counts voters by another set.
    answer('w2', 'w3', 999_999, 2)
    expect(a.drainEffects().filter(e => e.type === 'lookup-result')).toEqual([])
    answer('w1', null, 4)
    expect(a.drainEffects().filter(e => e.type === 'lookup-result')).toEqual([
      { type: 'lookup-result', query: 7, zone: 'web', holder: null, epoch: 0 },
    ])
    expect(a.counters()['roster-mismatch']).toBe(1)
  })

  it('bounds open lookups', () => {
    const a = createAuthority({ self: 'a', config, random: () => 0.5, nowMs: 0 })
    a.step({ type: 'roster', version: 1, members: nodes.map(n => ({ id: n.id, zone: n.zone })) }, 0)
    for (let q = 1; q <= LOOKUPS_MAX + 1; q++) a.step({ type: 'lookup', zone: 'web', query: q }, 1)
    const results = a.drainEffects().filter(e => e.type === 'lookup-result')
    expect(results).toEqual([
      { type: 'lookup-result', query: LOOKUPS_MAX + 1, zone: 'web', holder: null, epoch: 0 },
    ])
    expect(a.counters()['lookups-limit']).toBe(1)
  })
})
