/**
 * Named fault scenarios for the zone-authority protocol. Each builds a simulator with a fixed seed,
 * scripts its faults, and returns facts the test asserts on; the simulator's transcript is the golden
 * file. Safety (never two authorities, epochs never backwards) is checked by the simulator after every
 * event in every scenario.
 */
import { authorityProfiles, rankCandidates, zoneVoters } from '../../src/authority/index.js'
import { type SimNodeSpec, Simulator } from './simulator.js'
import { livenessBoundMs } from './swarm.js'

/** What a scenario observed, for its assertions. */
export interface ScenarioOutcome {
  readonly sim: Simulator
  /** Free-form facts (holders, times, epochs) keyed by name. */
  readonly facts: Record<string, string | number | null>
}

/** A named scenario. */
export interface Scenario {
  readonly name: string
  readonly run: () => ScenarioOutcome
}

const config = authorityProfiles.test
const DRIFT_MAX = config.leaseDriftBudgetMs / config.leaseTtlMs
const bound = livenessBoundMs(config, 5)

function nodesOf(
  zone: string,
  ids: readonly string[],
  drift: (id: string) => number = () => 0,
): SimNodeSpec[] {
  return ids.map(id => ({ id, zone, driftRate: drift(id), offsetMs: 1_000_000 * (ids.indexOf(id) + 1) }))
}

function build(nodes: SimNodeSpec[], seed: number): Simulator {
  return new Simulator({ seed, nodes, config, transcript: true, wire: true })
}

function holder(sim: Simulator, zone: string): string | null {
  return sim.authorityOf(zone)?.id ?? null
}

function epoch(sim: Simulator, zone: string): number | null {
  return sim.authorityOf(zone)?.epoch ?? null
}

const FIVE = ['n1', 'n2', 'n3', 'n4', 'n5']

/** Every named scenario, in transcript-file order. */
export const scenarios: readonly Scenario[] = [
  {
    name: 'isolate holder',
    run: () => {
      const sim = build(nodesOf('core', FIVE), 11)
      sim.runUntil(3_000)
      const first = holder(sim, 'core')
      const firstEpoch = epoch(sim, 'core')
      sim.note(`** isolate ${first}`)
      sim.isolate(first!)
      const takeoverAt = sim.runUntilAuthorityOtherThan('core', first!, 3_000 + bound)
      sim.runUntil(6_000)
      const second = holder(sim, 'core')
      const secondEpoch = epoch(sim, 'core')
      sim.note('** heal')
      sim.heal()
      sim.runUntil(9_000)
      return {
        sim,
        facts: { first, firstEpoch, takeoverAt, second, secondEpoch, afterHeal: holder(sim, 'core') },
      }
    },
  },
  {
    name: 'isolate holder, asymmetric: outbound cut',
    run: () => {
      const sim = build(nodesOf('core', FIVE), 12)
      sim.runUntil(3_000)
      const first = holder(sim, 'core')
      sim.note(`** cut everything ${first} sends`)
      sim.isolate(first!, 'out')
      const takeoverAt = sim.runUntilAuthorityOtherThan('core', first!, 3_000 + bound)
      sim.runUntil(6_000)
      const second = holder(sim, 'core')
      sim.note('** heal')
      sim.heal()
      sim.runUntil(8_000)
      return { sim, facts: { first, takeoverAt, second, afterHeal: holder(sim, 'core') } }
    },
  },
  {
    name: 'partition 2-3',
    run: () => {
      const sim = build(nodesOf('core', FIVE), 13)
      sim.runUntil(3_000)
      const first = holder(sim, 'core')!
      const minority = [first, FIVE.find(id => id !== first)!]
      const majority = FIVE.filter(id => !minority.includes(id))
      sim.note(`** partition ${minority.join(',')} | ${majority.join(',')}`)
      sim.partition([minority, majority])
      const takeoverAt = sim.runUntilAuthorityOtherThan('core', first, 3_000 + bound)
      sim.runUntil(6_000)
      const second = holder(sim, 'core')
      sim.note('** heal')
      sim.heal()
      sim.runUntil(9_000)
      return {
        sim,
        facts: {
          first,
          takeoverAt,
          second,
          secondInMajority: majority.includes(second ?? '') ? 1 : 0,
          afterHeal: holder(sim, 'core'),
        },
      }
    },
  },
  ...(['fast', 'slow'] as const).map(
    (pace): Scenario => ({
      name: `holder's clock runs ${pace}`,
      run: () => {
        // One node gets the extreme clock, all others the opposite extreme; pick (deterministically)
        // the first node in preference order that ends up holding with that clock.
        const rate = pace === 'fast' ? DRIFT_MAX : -DRIFT_MAX
        let sim: Simulator | null = null
        let top: string | null = null
        for (const candidate of rankCandidates('core', FIVE)) {
          const trial = build(
            nodesOf('core', FIVE, id => (id === candidate ? rate : -rate)),
            14,
          )
          const others = FIVE.filter(id => id !== candidate)
          // A slow clock also makes its quiet period longer: let the others start a little later.
          trial.at(0, pace === 'slow' ? `others start late` : null, () => {
            if (pace === 'slow') for (const id of others) trial.crash(id)
          })
          trial.at(400, null, () => {
            for (const id of others) trial.restart(id)
          })
          trial.runUntil(3_000)
          if (holder(trial, 'core') === candidate) {
            sim = trial
            top = candidate
            break
          }
        }
        if (sim === null) throw new Error('no node holds with the extreme clock')
        const first = holder(sim, 'core')
        sim.note(`** cut everything ${first} sends`)
        sim.isolate(first!, 'out')
        const takeoverAt = sim.runUntilAuthorityOtherThan('core', first!, 3_000 + bound)
        sim.runUntil(6_000)
        return { sim, facts: { top, first, takeoverAt, second: holder(sim, 'core') } }
      },
    }),
  ),
  {
    // The tightest take-over the protocol allows: the holder's clock runs slow at the drift limit and
    // everyone else's fast, messages are instant, and the others hear at once that the holder is dead
    // (so the next candidate campaigns with no stagger) while it is merely cut off and still acting.
    // Only the holder-side skew budget separates its last acting instant from the new grant.
    name: 'cut-off holder, slow clock, instant suspicion',
    run: () => {
      let sim: Simulator | null = null
      let top: string | null = null
      for (const candidate of rankCandidates('core', FIVE)) {
        const trial = build(
          nodesOf('core', FIVE, id => (id === candidate ? -DRIFT_MAX : DRIFT_MAX)),
          21,
        )
        trial.setDelay(0, 1)
        // A slow clock makes its own start-up quiet period longer: let the others start a little later.
        const others = FIVE.filter(id => id !== candidate)
        trial.at(0, 'others start late', () => {
          for (const id of others) trial.crash(id)
        })
        trial.at(400, null, () => {
          for (const id of others) trial.restart(id)
        })
        trial.runUntil(3_000)
        if (holder(trial, 'core') === candidate) {
          sim = trial
          top = candidate
          break
        }
      }
      if (sim === null) throw new Error('no node holds with the slow clock')
      const first = holder(sim, 'core')!
      sim.note(`** cut ${first} off and have everyone suspect it at once`)
      sim.isolate(first)
      sim.suspect(first)
      const takeoverAt = sim.runUntilAuthorityOtherThan('core', first, 3_000 + bound)
      sim.runUntil(6_000)
      return { sim, facts: { top, first, takeoverAt, second: holder(sim, 'core') } }
    },
  },
  {
    name: 'restart voter during grant',
    run: () => {
      const three = ['v1', 'v2', 'v3']
      const sim = build(nodesOf('core', three), 15)
      sim.runUntil(3_000)
      const first = holder(sim, 'core')!
      const voter = three.find(id => id !== first)!
      sim.note(`** crash ${voter} (it holds a grant for ${first})`)
      sim.crash(voter)
      sim.runUntil(3_050)
      sim.note(`** restart ${voter}`)
      sim.restart(voter)
      sim.runUntil(3_100)
      sim.note(`** isolate ${first}`)
      sim.isolate(first)
      const restartedAt = 3_050
      const takeoverAt = sim.runUntilAuthorityOtherThan('core', first, 3_100 + bound)
      sim.runUntil(6_000)
      return { sim, facts: { first, voter, restartedAt, takeoverAt, second: holder(sim, 'core') } }
    },
  },
  {
    name: 'zone of two: one dies, witness breaks the tie',
    run: () => {
      const nodes = [...nodesOf('pair', ['p1', 'p2']), ...nodesOf('core', ['w1', 'w2', 'w3'])]
      const sim = build(nodes, 16)
      const witness = zoneVoters('pair', nodes).witness
      sim.runUntil(3_000)
      const first = holder(sim, 'pair')!
      sim.note(`** crash ${first}`)
      sim.crash(first)
      const takeoverAt = sim.runUntilAuthorityOtherThan('pair', first, 3_000 + bound)
      sim.runUntil(5_000)
      return { sim, facts: { witness, first, takeoverAt, second: holder(sim, 'pair') } }
    },
  },
  {
    name: 'zone of one',
    run: () => {
      const nodes = [...nodesOf('solo', ['s1']), ...nodesOf('core', ['c1', 'c2', 'c3'])]
      const sim = build(nodes, 17)
      const acquiredAt = sim.runUntilAuthority('solo', bound)
      sim.runUntil(2_000)
      sim.note('** isolate s1')
      sim.isolate('s1')
      sim.runUntil(4_000)
      return {
        sim,
        facts: { acquiredAt, isolatedHolder: holder(sim, 'solo'), voters: sim.voters('solo').join(',') },
      }
    },
  },
  {
    name: 'membership change: add a member',
    run: () => {
      const core = nodesOf('core', ['c1', 'c2', 'c3'])
      const pair = nodesOf('pair', ['p1', 'p2'])
      const sim = build([...pair, ...core], 18)
      sim.runUntil(2_500)
      const before = holder(sim, 'pair')
      const votersBefore = sim.voters('pair').join(',')
      sim.note('** roster: p3 joins pair (the witness is replaced by a member)')
      sim.changeRoster([...pair, { id: 'p3', zone: 'pair', driftRate: 0, offsetMs: 7_000_000 }, ...core], 300)
      sim.runUntil(4_000)
      const during = holder(sim, 'pair')
      sim.note(`** crash ${during ?? 'nobody'}`)
      if (during !== null) sim.crash(during)
      sim.runUntil(8_000)
      return {
        sim,
        facts: {
          before,
          votersBefore,
          votersAfter: sim.voters('pair').join(','),
          during,
          after: holder(sim, 'pair'),
        },
      }
    },
  },
  {
    name: 'preferred node restarts: no flapping',
    run: () => {
      const sim = new Simulator({
        seed: 19,
        nodes: nodesOf('core', FIVE),
        config,
        transcript: true,
        wire: true,
        failureDetectorMs: 300,
      })
      sim.runUntil(3_000)
      const first = holder(sim, 'core')!
      sim.note(`** crash ${first}`)
      sim.crash(first)
      sim.runUntil(5_000)
      const second = holder(sim, 'core')
      sim.note(`** restart ${first}`)
      sim.restart(first)
      sim.runUntil(9_000)
      return { sim, facts: { first, second, afterReturn: holder(sim, 'core') } }
    },
  },
  {
    name: 'lossy network: loss, duplication, reordering',
    run: () => {
      const sim = build(nodesOf('core', FIVE), 20)
      sim.runUntil(2_000)
      sim.note('** degrade loss=0.2 dup=0.2, delay 1..120')
      sim.degrade(0.2, 0.2)
      sim.setDelay(1, 120)
      sim.runUntil(6_000)
      sim.note('** heal')
      sim.heal()
      const healedAt = sim.nowMs
      const backAt = sim.runUntilAuthority('core', healedAt + bound)
      sim.runUntil(8_000)
      return { sim, facts: { healedAt, backAt, final: holder(sim, 'core') } }
    },
  },
  {
    name: 'signed rosters: member stops, another restarts',
    run: () => {
      // The defect from the "trying mesh as a new user" issue: w3 stops, w1 restarts. Every node holds
      // the same roster version, and w1 saved the epochs it granted, so w1 recovers with w2 alone.
      const nodes = [...nodesOf('core', ['a']), ...nodesOf('web', ['w1', 'w2', 'w3'])]
      const sim = versionedBuild(nodes, 21)
      sim.runUntil(3_000)
      const first = holder(sim, 'web')
      sim.note('** crash w3 (stopped for good)')
      sim.crash('w3')
      sim.runUntil(6_000)
      sim.note('** crash w1, restart it')
      sim.crash('w1')
      sim.restart('w1')
      const restartedAt = sim.nowMs
      const backAt = sim.runUntilAuthority('web', restartedAt + bound)
      let gaps = 0
      for (let t = sim.nowMs; t < 16_000; t += 100) {
        sim.runUntil(t)
        if (holder(sim, 'web') === null) gaps++
      }
      return { sim, facts: { first, restartedAt, backAt, gaps, final: holder(sim, 'web') } }
    },
  },
  {
    name: 'signed rosters: restart two versions behind',
    run: () => {
      // w1 is down while w4 joins (r2) and w3 is revoked (r3); it comes back with r1, is refused with
      // `roster`, gets r3 from the peer that refused it, and the zone keeps one authority throughout.
      const nodes = [...nodesOf('core', ['a']), ...nodesOf('web', ['w1', 'w2', 'w3'])]
      const w4 = { id: 'w4', zone: 'web', driftRate: 0, offsetMs: 9_000_000 }
      const sim = versionedBuild(nodes, 22)
      sim.runUntil(3_000)
      sim.note('** crash w1')
      sim.crash('w1')
      sim.runUntil(4_000)
      sim.note('** roster r2: w4 joins web')
      sim.changeRoster([...nodes, w4], 200)
      sim.runUntil(6_000)
      sim.note('** roster r3: w3 revoked')
      sim.crash('w3')
      sim.changeRoster([...nodes.filter(n => n.id !== 'w3'), w4], 200, { gone: ['w3'] })
      sim.runUntil(8_000)
      sim.note('** restart w1 with roster r1')
      sim.restartWithVersion('w1', 1)
      const restartedAt = sim.nowMs
      let gaps = 0
      for (let t = sim.nowMs; t < 16_000; t += 100) {
        sim.runUntil(t)
        if (holder(sim, 'web') === null) gaps++
      }
      return {
        sim,
        facts: { restartedAt, w1Version: sim.versionOf('w1'), gaps, voters: sim.voters('web').join(',') },
      }
    },
  },
  {
    name: 'signed rosters: revocation swaps a member for the witness, under a partition',
    run: () => {
      // web {w1, w2, w3} loses w3 (revoked): r2 makes it a zone of two with a witness from core — two
      // voters change at once. Only w2 and the witness hear of r2 while w1 is cut off with w3's old vote; joint majorities of r1
      // and r2 keep the two sides from both holding.
      const nodes = [...nodesOf('core', ['c1', 'c2', 'c3']), ...nodesOf('web', ['w1', 'w2', 'w3'])]
      const sim = versionedBuild(nodes, 23)
      sim.runUntil(3_000)
      const first = holder(sim, 'web')
      const after = nodes.filter(n => n.id !== 'w3')
      const witness = zoneVoters('web', after).witness ?? 'none'
      sim.note(`** partition w1,w3 | the rest; roster r2 (w3 revoked) reaches w2 and ${witness} only`)
      sim.partition([
        ['w1', 'w3'],
        ['w2', 'c1', 'c2', 'c3'],
      ])
      sim.changeRoster(after, 100, { gone: ['w3'], reach: ['w2', witness] })
      sim.runUntil(8_000)
      const during = holder(sim, 'web')
      sim.note('** heal')
      sim.heal()
      sim.crash('w3')
      sim.runUntil(14_000)
      return {
        sim,
        facts: {
          first,
          during,
          after: holder(sim, 'web'),
          votersAfter: sim.voters('web').join(','),
          witness,
          w1Version: sim.versionOf('w1'),
        },
      }
    },
  },
]

function versionedBuild(nodes: SimNodeSpec[], seed: number): Simulator {
  return new Simulator({
    seed,
    nodes,
    config,
    transcript: true,
    wire: true,
    failureDetectorMs: 300,
    versioned: true,
    durableEpochs: true,
  })
}
