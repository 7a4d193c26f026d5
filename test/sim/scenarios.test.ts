/**
 * Proves the zone-authority protocol on named faults: each scenario runs in the deterministic simulator
 * (safety checked after every event), its transcript must match the golden file in test/sim/golden/
 * (regenerate with MESH_UPDATE_GOLDEN=1 after reading the diff), and its outcome is asserted: who takes
 * over, how fast (within the liveness bound), and that nothing flaps back once healed. Zones of seven
 * (five voters) prove what a zone with members without a seat survives: any two voters down, even with
 * every seatless member down too; three voters down stops it until one returns; a revoked voter's seat
 * and a newcomer's seat are each one change, covered by the prior's joint majority; a zone grown one
 * join at a time keeps no prior and survives losing two of its five voters.
 */
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { describe, expect, test } from 'vitest'
import { authorityProfiles } from '../../src/authority/index.js'
import { boundedVoterScenarios, scenarios as namedScenarios, type ScenarioOutcome } from './scenarios.js'
import { livenessBoundMs } from './swarm.js'

const goldenDir = join(dirname(fileURLToPath(import.meta.url)), 'golden')
const update = process.env.MESH_UPDATE_GOLDEN === '1'
const config = authorityProfiles.test
const bound = livenessBoundMs(config, 5)
const scenarios = [...namedScenarios, ...boundedVoterScenarios]

function slug(name: string): string {
  return name
    .toLowerCase()
    .replace(/[^a-z0-9]+/g, '-')
    .replace(/^-|-$/g, '')
}

function checkGolden(name: string, outcome: ScenarioOutcome): void {
  const file = join(goldenDir, `${slug(name)}.txt`)
  const facts = Object.entries(outcome.facts).map(([k, v]) => `# ${k}: ${v}`)
  const text = [`# scenario: ${name}`, ...facts, ...outcome.sim.lines, ''].join('\n')
  if (update || !existsSync(file)) {
    if (!update) throw new Error(`missing golden file ${file}: run with MESH_UPDATE_GOLDEN=1`)
    mkdirSync(goldenDir, { recursive: true })
    writeFileSync(file, text)
    return
  }
  expect(text, `transcript of "${name}" changed; regenerate with MESH_UPDATE_GOLDEN=1 if intended`).toBe(
    readFileSync(file, 'utf8'),
  )
}

const outcomes = new Map<string, ScenarioOutcome>()
function run(name: string): ScenarioOutcome {
  const known = outcomes.get(name)
  if (known) return known
  const scenario = scenarios.find(s => s.name === name)
  if (!scenario) throw new Error(`no scenario ${name}`)
  const outcome = scenario.run()
  outcomes.set(name, outcome)
  return outcome
}

describe('zone authority scenarios', () => {
  for (const scenario of scenarios) {
    test(`${scenario.name}: transcript matches golden`, () => checkGolden(scenario.name, run(scenario.name)))
  }

  test('isolate holder: another takes over within the bound, and the old holder does not return', () => {
    const { facts } = run('isolate holder')
    expect(facts.first).not.toBeNull()
    expect(facts.second).not.toBe(facts.first)
    expect(Number(facts.takeoverAt) - 3_000).toBeLessThanOrEqual(bound)
    expect(Number(facts.secondEpoch)).toBeGreaterThan(Number(facts.firstEpoch))
    expect(facts.afterHeal).toBe(facts.second)
  })

  test('isolate holder, asymmetric: a holder that cannot send loses the zone', () => {
    const { facts } = run('isolate holder, asymmetric: outbound cut')
    expect(facts.second).not.toBe(facts.first)
    expect(facts.takeoverAt).not.toBeNull()
    expect(facts.afterHeal).toBe(facts.second)
  })

  test('partition 2-3: the majority side elects, the minority side has none, no flap after heal', () => {
    const { facts } = run('partition 2-3')
    expect(facts.secondInMajority).toBe(1)
    expect(Number(facts.takeoverAt) - 3_000).toBeLessThanOrEqual(bound)
    expect(facts.afterHeal).toBe(facts.second)
  })

  test("holder's clock at either edge of the drift budget: takeover without overlap", () => {
    for (const pace of ['fast', 'slow']) {
      const { facts } = run(`holder's clock runs ${pace}`)
      expect(facts.first).toBe(facts.top)
      expect(facts.second).not.toBe(facts.first)
      expect(Number(facts.takeoverAt) - 3_000).toBeLessThanOrEqual(bound)
    }
  })

  test('cut-off holder, slow clock, instant suspicion: takeover without overlap, within the bound', () => {
    const { facts } = run('cut-off holder, slow clock, instant suspicion')
    expect(facts.first).toBe(facts.top)
    expect(facts.takeoverAt).not.toBeNull()
    expect(facts.second).not.toBe(facts.first)
  })

  test('restart voter during grant: the restarted voter grants nothing for one lease period', () => {
    const { facts } = run('restart voter during grant')
    expect(facts.second).not.toBe(facts.first)
    // The restarted voter is needed for a majority of the two left, so takeover waits for its quiet period.
    const quietEnd = Number(facts.restartedAt) + (config.leaseTtlMs + config.leaseDriftBudgetMs) * 0.9
    expect(Number(facts.takeoverAt)).toBeGreaterThanOrEqual(quietEnd)
    expect(Number(facts.takeoverAt) - 3_100).toBeLessThanOrEqual(bound)
  })

  test('zone of two: the survivor wins with the witness', () => {
    const { facts } = run('zone of two: one dies, witness breaks the tie')
    expect(facts.witness).not.toBeNull()
    expect(facts.second).not.toBe(facts.first)
    expect(['p1', 'p2']).toContain(facts.second)
  })

  test('zone of one: its own authority, even when isolated', () => {
    const { facts } = run('zone of one')
    expect(facts.voters).toBe('s1')
    expect(Number(facts.acquiredAt)).toBeLessThanOrEqual(bound)
    expect(facts.isolatedHolder).toBe('s1')
  })

  test('membership change: the witness is replaced by the new member, and the zone still fails over', () => {
    const { facts } = run('membership change: add a member')
    expect(facts.votersAfter).toBe('p1,p2,p3')
    expect(facts.votersBefore).not.toBe(facts.votersAfter)
    expect(facts.during).not.toBeNull()
    expect(facts.after).not.toBeNull()
    expect(facts.after).not.toBe(facts.during)
  })

  test('preferred node restarts: it does not take the zone back', () => {
    const { facts } = run('preferred node restarts: no flapping')
    expect(facts.second).not.toBeNull()
    expect(facts.second).not.toBe(facts.first)
    expect(facts.afterReturn).toBe(facts.second)
  })

  test('signed rosters, member stops and another restarts: an authority within the bound, then no gap', () => {
    const { facts } = run('signed rosters: member stops, another restarts')
    expect(facts.first).not.toBeNull()
    expect(facts.backAt).not.toBeNull()
    expect(facts.gaps).toBe(0)
  })

  test('signed rosters, restart two versions behind: the node catches up and the zone never flaps', () => {
    const { facts } = run('signed rosters: restart two versions behind')
    expect(facts.w1Version).toBe(3)
    expect(facts.voters).toBe('w1,w2,w4')
    expect(facts.gaps).toBe(0)
  })

  test('signed rosters, witness swap under a partition: safe throughout, one holder after heal', () => {
    const { facts } = run('signed rosters: revocation swaps a member for the witness, under a partition')
    expect(facts.first).not.toBeNull()
    expect(facts.votersAfter).toBe([facts.witness, 'w1', 'w2'].sort().join(','))
    expect(facts.w1Version).toBe(2)
    expect(facts.after).not.toBeNull()
  })

  test('zone of seven, holder and another voter crash: a remaining voter takes over within the bound', () => {
    const { facts } = run('zone of seven: the holder and another voter crash')
    expect(facts.voters!.toString().split(',')).toHaveLength(5)
    expect(facts.firstIsVoter).toBe(1)
    expect(Number(facts.takeoverAt) - 3_000).toBeLessThanOrEqual(bound)
    expect(facts.second).not.toBe(facts.first)
    expect(facts.secondIsVoter).toBe(1)
  })

  test('zone of seven, only three voters left: they elect without the members without a seat', () => {
    const { facts } = run('zone of seven: both members without a seat and two voters crash')
    expect(Number(facts.takeoverAt) - 3_000).toBeLessThanOrEqual(bound)
    expect(facts.down!.toString().split(',')).not.toContain(facts.second)
  })

  test('zone of seven, three voters down: no authority at all, one again when a voter returns', () => {
    const { facts } = run('zone of seven: three voters crash, then one returns')
    // The crashed holder's lease runs out within the first TTL; after it nobody holds.
    expect(Number(facts.heldDuring)).toBeLessThanOrEqual(Math.ceil(config.leaseTtlMs / 50))
    expect(Number(facts.backAt) - 9_000).toBeLessThanOrEqual(bound)
    expect(facts.after).not.toBeNull()
  })

  test('zone of seven, a voter revoked under a partition: one seat moves, the other side may not elect on the new voters alone', () => {
    const { facts } = run('signed rosters: a voter revoked in a zone of seven, under a partition')
    const after = facts.votersAfter!.toString().split(',')
    expect(after).toHaveLength(5)
    expect(after).toContain(facts.seatTaker)
    expect(after).not.toContain(facts.gone)
    expect(Number(facts.heldByCutOff)).toBeGreaterThan(90) // the holder's side keeps it throughout
    expect(facts.heldByRest).toBe(0)
    expect(facts.final).not.toBeNull()
  })

  test('zone of five gains a top-ranked member: it takes one seat, and the zone still fails over', () => {
    const { facts } = run(
      'signed rosters: a member joins a zone of five and takes a seat, then the holder crashes',
    )
    const before = facts.votersBefore!.toString().split(',')
    const after = facts.votersAfter!.toString().split(',')
    expect(before.filter(id => !after.includes(id))).toEqual([facts.displaced])
    expect(facts.during).not.toBeNull()
    expect(facts.after).not.toBeNull()
    expect(facts.after).not.toBe(facts.during)
  })

  test('zone grown one join at a time: no prior left, so losing two of five voters still elects', () => {
    const { facts } = run('signed rosters: a zone grown one join at a time loses two of its five voters')
    expect(facts.first).not.toBeNull()
    expect(facts.priorVoters).toBe('none')
    expect(Number(facts.backAt) - 10_000).toBeLessThanOrEqual(bound + 1_000)
    expect(['w3', 'w4', 'w5']).toContain(facts.final)
  })

  test('lossy network: an authority exists again within the bound after heal', () => {
    const { facts } = run('lossy network: loss, duplication, reordering')
    expect(facts.backAt).not.toBeNull()
    expect(Number(facts.backAt) - Number(facts.healedAt)).toBeLessThanOrEqual(bound)
  })
})
