/**
 * Proves what bounded voter sets promise, in the simulator (safety checked after every event):
 * - a zone of seven (five voters) keeps electing after ANY two of its voters crash, even with both
 *   members without a seat crashed too, and elects no one while any three of its voters are down (the
 *   members without a seat do not stand in for them), for every pair and every triple of voters;
 * - a holder's traffic is flat: in a zone of 25 each renewal goes to the four other voters, no message
 *   reaches or leaves a member without a seat once the zone is stable;
 * - with deadline timers (the driver's one timer at `nextDeadlineMs`), an idle zone's holder wakes once
 *   per renewal and nobody else wakes at all, and a crash of the holder is handled as with a 10 ms tick:
 *   the same successor, the same epoch, no two holders.
 */
import { describe, expect, it } from 'vitest'
import { authorityProfiles, rankCandidates, zoneVoters } from '../../src/authority/index.js'
import { type SimNodeSpec, Simulator } from './simulator.js'
import { livenessBoundMs } from './swarm.js'

const config = authorityProfiles.test
const bound = livenessBoundMs(config, 5)

function zone(name: string, count: number): SimNodeSpec[] {
  return Array.from({ length: count }, (_, i) => ({
    id: `${name}${i + 1}`,
    zone: name,
    driftRate: 0,
    offsetMs: 1_000_000 * (i + 1),
  }))
}

function build(
  nodes: SimNodeSpec[],
  seed: number,
  options: { timers?: 'interval' | 'deadline'; tickMs?: number; lan?: boolean } = {},
): Simulator {
  return new Simulator({
    seed,
    nodes,
    config: options.lan === true ? authorityProfiles.lan : config,
    failureDetectorMs: 300,
    durableEpochs: true,
    timers: options.timers ?? 'interval',
    tickMs: options.tickMs ?? 20,
  })
}

function subsets<T>(items: readonly T[], size: number): T[][] {
  if (size === 0) return [[]]
  return items.flatMap((item, i) => subsets(items.slice(i + 1), size - 1).map(rest => [item, ...rest]))
}

const seven = zone('g', 7)
const ranked = rankCandidates(
  'g',
  seven.map(n => n.id),
)
const voters = ranked.slice(0, 5)
const seatless = ranked.slice(5)

describe('bounded voters: what a zone of seven survives', () => {
  it('has five voters, the top five by HRW, and two members without a seat', () => {
    expect(zoneVoters('g', seven).voters).toEqual([...voters].sort())
  })

  it.each(subsets(voters, 2))(
    'elects after voters %s and %s crash, with every seatless member down',
    (a, b) => {
      const sim = build(seven, 40)
      expect(sim.runUntilAuthority('g', 3_000)).not.toBeNull()
      sim.runUntil(3_000)
      for (const id of [a!, b!, ...seatless]) sim.crash(id)
      // Whoever held may be among the crashed: the zone has an authority again within the bound.
      sim.runUntil(3_000 + config.leaseTtlMs + config.leaseDriftBudgetMs)
      const backAt = sim.runUntilAuthority('g', 3_000 + bound)
      expect(backAt).not.toBeNull()
      const held = sim.authorityOf('g')!
      expect([a, b, ...seatless]).not.toContain(held.id)
      sim.runUntil(backAt! + 3_000)
      expect(sim.authorityOf('g')?.id).toBe(held.id) // and keeps it
    },
  )

  it.each(subsets(voters, 3))('elects no one while voters %s, %s and %s are down', (a, b, c) => {
    const sim = build(seven, 41)
    expect(sim.runUntilAuthority('g', 3_000)).not.toBeNull()
    sim.runUntil(3_000)
    for (const id of [a!, b!, c!]) sim.crash(id)
    // The old lease ends within one TTL (plus drift); from then on, nobody, members without a seat included.
    sim.runUntil(3_000 + config.leaseTtlMs + config.leaseDriftBudgetMs)
    for (let t = sim.nowMs; t < 12_000; t += 25) {
      sim.runUntil(t)
      expect(sim.authorityOf('g')).toBeNull()
    }
    // Members without a seat stayed followers: the two voters left are live to them.
    for (const id of seatless) expect(sim.sent.get(id)?.get('request') ?? 0).toBe(0)
    sim.restart(a!)
    expect(sim.runUntilAuthority('g', 12_000 + bound)).not.toBeNull()
  })
})

describe('bounded voters: a holder renews with four peers', () => {
  it('in a zone of 25, each renewal goes to the four other voters and nothing reaches the others', () => {
    const nodes = zone('w', 25)
    const sim = build(nodes, 42, { lan: true })
    expect(sim.runUntilAuthority('w', 8_000)).not.toBeNull()
    sim.runUntil(10_000)
    const holder = sim.authorityOf('w')!.id
    const voterSet = zoneVoters('w', nodes).voters
    expect(voterSet).toContain(holder)
    const counts = (id: string) => ({
      requests: sim.sent.get(id)?.get('request') ?? 0,
      sent: [...(sim.sent.get(id)?.values() ?? [])].reduce((a, b) => a + b, 0),
      addressed: sim.addressed.get(id) ?? 0,
    })
    const start = new Map(nodes.map(n => [n.id, counts(n.id)]))
    const windowMs = 20_000
    sim.runUntil(10_000 + windowMs)
    expect(sim.authorityOf('w')?.id).toBe(holder)
    const delta = (id: string) => {
      const now = counts(id)
      const then = start.get(id)!
      return {
        requests: now.requests - then.requests,
        sent: now.sent - then.sent,
        addressed: now.addressed - then.addressed,
      }
    }
    const renewals = windowMs / authorityProfiles.lan.renewIntervalMs
    const held = delta(holder)
    expect(held.requests).toBeGreaterThanOrEqual(4 * (renewals - 1))
    expect(held.requests).toBeLessThanOrEqual(4 * (renewals + 1))
    expect(held.sent).toBe(held.requests)
    for (const id of voterSet.filter(v => v !== holder)) {
      // One request in, one grant out per renewal.
      expect(delta(id).addressed).toBeLessThanOrEqual(renewals + 1)
      expect(delta(id).sent).toBeLessThanOrEqual(renewals + 1)
    }
    for (const id of nodes.map(n => n.id).filter(id => !voterSet.includes(id))) {
      expect(delta(id)).toEqual({ requests: 0, sent: 0, addressed: 0 })
    }
  })
})

describe('bounded voters: deadline timers', () => {
  it('an idle zone wakes its holder once per renewal and nobody else', () => {
    for (const size of [5, 7, 25]) {
      const nodes = zone('d', size)
      const sim = build(nodes, 43, { timers: 'deadline', lan: true })
      expect(sim.runUntilAuthority('d', 8_000)).not.toBeNull()
      sim.runUntil(10_000)
      const holder = sim.authorityOf('d')!.id
      const start = new Map(nodes.map(n => [n.id, sim.wakeups.get(n.id) ?? 0]))
      const windowMs = 30_000
      sim.runUntil(10_000 + windowMs)
      expect(sim.authorityOf('d')?.id).toBe(holder)
      const woke = (id: string) => (sim.wakeups.get(id) ?? 0) - (start.get(id) ?? 0)
      const renewals = windowMs / authorityProfiles.lan.renewIntervalMs
      expect(woke(holder)).toBeGreaterThanOrEqual(renewals - 1)
      expect(woke(holder)).toBeLessThanOrEqual(renewals + 1)
      for (const n of nodes) if (n.id !== holder) expect(woke(n.id)).toBe(0)
    }
  })

  it('a crashed holder is replaced as with a 10 ms tick: same successor and epoch, sooner or as soon', () => {
    for (const [size, seed] of [
      [5, 44],
      [7, 45],
      [12, 46],
    ] as const) {
      const outcome = (timers: 'interval' | 'deadline') => {
        const sim = build(zone('e', size), seed, { timers, tickMs: 10 })
        expect(sim.runUntilAuthority('e', 3_000)).not.toBeNull()
        sim.runUntil(3_000)
        const first = sim.authorityOf('e')!
        sim.crash(first.id)
        const takeoverAt = sim.runUntilAuthorityOtherThan('e', first.id, 3_000 + bound)
        const second = sim.authorityOf('e')
        return { first, second, takeoverAt }
      }
      const ticked = outcome('interval')
      const deadline = outcome('deadline')
      expect(deadline.first).toEqual(ticked.first)
      expect(deadline.second).toEqual(ticked.second)
      expect(deadline.takeoverAt).not.toBeNull()
      // Deadlines are met at once; a 10 ms tick meets them up to 10 ms late at every step.
      expect(deadline.takeoverAt!).toBeLessThanOrEqual(ticked.takeoverAt! + 5)
    }
  })
})
