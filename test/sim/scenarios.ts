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

/** Seven members, one zone: five voters (the top five by HRW) and two candidates without a seat. */
const SEVEN = ['g1', 'g2', 'g3', 'g4', 'g5', 'g6', 'g7']
const SEVEN_RANKED = rankCandidates('big', SEVEN)
const SEVEN_VOTERS = SEVEN_RANKED.slice(0, 5)
const SEVEN_SEATLESS = SEVEN_RANKED.slice(5)

/** Named scenarios of bounded voter sets (zones larger than VOTERS_MAX). */
export const boundedVoterScenarios: readonly Scenario[] = [
  {
    name: 'zone of seven: the holder and another voter crash',
    run: () => {
      const sim = detectedBuild(nodesOf('big', SEVEN), 24)
      sim.runUntil(3_000)
      const first = holder(sim, 'big')!
      const other = SEVEN_VOTERS.find(id => id !== first)!
      sim.note(`** crash ${first} and ${other} (two of the five voters)`)
      sim.crash(first)
      sim.crash(other)
      const takeoverAt = sim.runUntilAuthorityOtherThan('big', first, 3_000 + bound)
      sim.runUntil(7_000)
      const second = holder(sim, 'big')
      return {
        sim,
        facts: {
          voters: sim.voters('big').join(','),
          first,
          firstIsVoter: SEVEN_VOTERS.includes(first) ? 1 : 0,
          takeoverAt,
          second,
          secondIsVoter: SEVEN_VOTERS.includes(second ?? '') ? 1 : 0,
        },
      }
    },
  },
  {
    name: 'zone of seven: both members without a seat and two voters crash',
    run: () => {
      const sim = detectedBuild(nodesOf('big', SEVEN), 25)
      sim.runUntil(3_000)
      const first = holder(sim, 'big')!
      const down = [...SEVEN_SEATLESS, first, SEVEN_VOTERS.find(id => id !== first)!]
      sim.note(`** crash ${down.join(', ')}: three voters are left`)
      for (const id of down) sim.crash(id)
      const takeoverAt = sim.runUntilAuthorityOtherThan('big', first, 3_000 + bound)
      sim.runUntil(7_000)
      return { sim, facts: { first, down: down.join(','), takeoverAt, second: holder(sim, 'big') } }
    },
  },
  {
    name: 'zone of seven: three voters crash, then one returns',
    run: () => {
      const sim = detectedBuild(nodesOf('big', SEVEN), 26)
      sim.runUntil(3_000)
      const first = holder(sim, 'big')!
      const down = [first, ...SEVEN_VOTERS.filter(id => id !== first).slice(0, 2)]
      sim.note(`** crash ${down.join(', ')}: two voters and both members without a seat are left`)
      for (const id of down) sim.crash(id)
      let heldDuring = 0
      for (let t = 3_000; t < 9_000; t += 50) {
        sim.runUntil(t)
        if (holder(sim, 'big') !== null) heldDuring++
      }
      const back = down[2]!
      sim.note(`** restart ${back}`)
      sim.restart(back)
      const backAt = sim.runUntilAuthority('big', 9_000 + bound)
      sim.runUntil(12_000)
      return {
        sim,
        facts: { first, down: down.join(','), heldDuring, back, backAt, after: holder(sim, 'big') },
      }
    },
  },
  {
    name: 'signed rosters: a voter revoked in a zone of seven, under a partition',
    run: () => {
      // One of big's voters is revoked (r2): the next-ranked member takes its seat, one seat change. The
      // revoked voter is still running, cut off with the holder and one more voter, and none of them hears
      // of r2: under r1 they are three of the five voters and keep the lease. The other side holds three
      // of the five new voters, which without the prior would elect a second holder; with it they need
      // three of the four prior voters still certified and have two.
      const nodes = [...nodesOf('core', ['c1']), ...nodesOf('big', SEVEN)]
      const sim = versionedBuild(nodes, 27)
      sim.runUntil(3_000)
      const first = holder(sim, 'big')!
      const kept = SEVEN_VOTERS.find(id => id !== first)!
      const gone = SEVEN_VOTERS.find(id => id !== first && id !== kept)!
      const after = nodes.filter(n => n.id !== gone)
      const cutOff = [first, kept, gone]
      const rest = ['c1', ...SEVEN.filter(id => !cutOff.includes(id))]
      sim.note(
        `** partition ${cutOff.join(',')} | ${rest.join(',')}; r2 (${gone} revoked) reaches ${rest.join(',')}`,
      )
      sim.partition([cutOff, rest])
      sim.changeRoster(after, 100, { gone: [gone], reach: rest })
      let heldByCutOff = 0
      let heldByRest = 0
      for (let t = 3_000; t < 8_000; t += 50) {
        sim.runUntil(t)
        const now = holder(sim, 'big') ?? ''
        if (cutOff.includes(now)) heldByCutOff++
        if (rest.includes(now)) heldByRest++
      }
      sim.note(`** heal; ${gone} stops`)
      sim.heal()
      sim.crash(gone)
      const healedAt = sim.nowMs
      sim.runUntil(14_000)
      return {
        sim,
        facts: {
          first,
          gone,
          votersAfter: sim.voters('big').join(','),
          seatTaker: SEVEN_SEATLESS[0]!,
          heldByCutOff,
          heldByRest,
          healedAt,
          final: holder(sim, 'big'),
        },
      }
    },
  },
  {
    name: 'signed rosters: a member joins a zone of five and takes a seat, then the holder crashes',
    run: () => {
      // A newcomer that ranks into big's top five takes the lowest-ranked voter's seat (one seat change).
      // The displaced voter stays a voter of the prior; the holder keeps the zone, and when it crashes the
      // next one is elected by a majority of the new voters and of the prior.
      const five = SEVEN_RANKED.slice(1, 6)
      const nodes = [...nodesOf('core', ['c1']), ...nodesOf('big', five)]
      const sim = versionedBuild(nodes, 28)
      sim.runUntil(3_000)
      const first = holder(sim, 'big')
      const newcomer = { id: SEVEN_RANKED[0]!, zone: 'big', driftRate: 0, offsetMs: 8_000_000 }
      const votersBefore = sim.voters('big').join(',')
      sim.note(`** roster r2: ${newcomer.id} joins big and ranks first`)
      sim.changeRoster([...nodes, newcomer], 200)
      sim.runUntil(6_000)
      const during = holder(sim, 'big')
      sim.note(`** crash ${during ?? 'nobody'}`)
      if (during !== null) sim.crash(during)
      sim.runUntil(10_000)
      return {
        sim,
        facts: {
          first,
          votersBefore,
          votersAfter: sim.voters('big').join(','),
          displaced: five[4]!,
          during,
          after: holder(sim, 'big'),
        },
      }
    },
  },
  {
    name: 'signed rosters: a zone grown one join at a time loses two of its five voters',
    run: () => {
      // Zones are built by joins, one roster version each. Growing to four and to five voters leaves no
      // prior (every old majority meets every new one), so the zone needs three of its five voters and
      // nothing else: it survives losing any two, here the first two members.
      const five = nodesOf('web', ['w1', 'w2', 'w3', 'w4', 'w5'])
      const core = nodesOf('core', ['c1'])
      const sim = versionedBuild([...core, five[0]!], 29)
      for (let k = 2; k <= 5; k++) {
        sim.runUntil(k * 1_500)
        sim.note(`** roster r${k}: w${k} joins web`)
        sim.changeRoster([...core, ...five.slice(0, k)], 100)
      }
      sim.runUntil(10_000)
      const first = holder(sim, 'web')
      const priorVoters =
        sim
          .authority('w3')
          ?.zones(sim.localMs('w3'))
          .find(z => z.zone === 'web')
          ?.priorVoters.join(',') ?? null
      sim.note('** crash w1 and w2')
      sim.crash('w1')
      sim.crash('w2')
      const backAt = sim.runUntilAuthority('web', 10_000 + bound + 1_000)
      sim.runUntil(14_000)
      return {
        sim,
        facts: {
          first,
          priorVoters: priorVoters === '' ? 'none' : priorVoters,
          voters: sim.voters('web').join(','),
          backAt,
          final: holder(sim, 'web'),
        },
      }
    },
  },
]

/**
 * A simulator as the agent runs: nodes hear of crashes and restarts after 300 ms (connection events)
 * and save the epochs they grant (so a voter restarted while most voters are down still recovers).
 */
function detectedBuild(nodes: SimNodeSpec[], seed: number): Simulator {
  return new Simulator({
    seed,
    nodes,
    config,
    transcript: true,
    wire: true,
    failureDetectorMs: 300,
    durableEpochs: true,
  })
}

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
