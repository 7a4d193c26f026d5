/**
 * Proves the SWIM membership core at scale in the virtual-time simulator (test/sim/swim-sim.ts), with
 * fixed seeds: a 1,000-node mesh stays stable; crashes are detected everywhere within 5 s at p95 (n = 50);
 * 10 % message loss for minutes declares no live node dead; idle traffic per node does not grow with
 * the mesh; partitions heal; goodbyes and revocations spread; a hostile insider cannot get a live node
 * declared dead and floods stay bounded; and a driver ticking only at nextDeadlineMs() behaves exactly
 * as one that also ticks every 10 ms. Set MESH_SIM_REPORT=1 to print the measured numbers.
 */
import { describe, expect, test } from 'vitest'
import { SWIM_DEFAULTS } from '../../src/membership/swim.js'
import { percentile, type SimMessage, SwimSim } from './swim-sim.js'

const report = process.env.MESH_SIM_REPORT === '1'
function note(line: string): void {
  if (report) console.log(`[swim-sim] ${line}`)
}

/** Counts alive→suspect transitions seen anywhere. */
function countSuspicions(sim: SwimSim): { count: number } {
  const counter = { count: 0 }
  sim.onChange(change => {
    if (change.effect.type === 'state' && change.effect.to === 'suspect') counter.count++
  })
  return counter
}

/** Total messages (in + out) per second of every up node, over the current traffic window. */
function messageRates(sim: SwimSim): number[] {
  return sim.traffic().map(node => node.sentPerS + node.receivedPerS)
}

/** True when every up node holds `target` as something other than alive or suspect (or not at all). */
function goneEverywhere(sim: SwimSim, target: string): boolean {
  return sim.upIds().every(id => {
    const state = sim.state(id, target)
    return state !== 'alive' && state !== 'suspect'
  })
}

function allAliveEverywhere(sim: SwimSim, ids: readonly string[]): boolean {
  return ids.every(observer => ids.every(target => sim.state(observer, target) === 'alive'))
}

/** A formed mesh of `n` run 5 s, then measured over 15 s at 0 % loss. */
function idleRun(n: number, seed: number): { sim: SwimSim; rates: number[]; suspicions: number } {
  const sim = new SwimSim({ seed, n })
  const suspicions = countSuspicions(sim)
  sim.run(5_000)
  sim.resetTraffic()
  sim.run(20_000)
  return { sim, rates: messageRates(sim), suspicions: suspicions.count }
}

describe('swim simulation', () => {
  let large: ReturnType<typeof idleRun> | undefined
  const largeRun = (): ReturnType<typeof idleRun> => {
    large ??= idleRun(1000, 1000)
    return large
  }

  test('1,000 nodes, formed: 20 s at 0 % loss without one suspicion; idle traffic ≤ 5 msgs/s per node', () => {
    const { sim, rates, suspicions } = largeRun()
    expect(sim.deaths).toEqual([])
    expect(suspicions).toBe(0)
    note(
      `n=1000 idle msgs/node/s p50 ${percentile(rates, 50).toFixed(2)} max ${percentile(rates, 100).toFixed(2)}`,
    )
    expect(percentile(rates, 95)).toBeLessThanOrEqual(5)
    expect(sim.sentByType.gossip).toBe(0) // nothing to spread, so no gossip at all
    // Everyone still holds everyone, alive, and watches through at most 2·rings neighbours.
    for (const id of ['n0', 'n499', 'n999']) {
      const core = sim.core(id)!
      expect(core.size).toBe(1000)
      expect(core.members().every(member => member.state === 'alive')).toBe(true)
      expect(core.neighbours().length).toBeLessThanOrEqual(2 * SWIM_DEFAULTS.rings)
      expect(core.neighbours().length).toBeGreaterThanOrEqual(SWIM_DEFAULTS.rings)
    }
  })

  test('idle traffic per node is flat from n = 100 to n = 1,000 (within 1.5×)', () => {
    const small = percentile(idleRun(100, 107).rates, 50)
    const big = percentile(largeRun().rates, 50)
    note(`idle msgs/node/s p50: n=100 ${small.toFixed(2)}, n=1000 ${big.toFixed(2)}`)
    expect(small).toBeGreaterThan(3) // one probe out and about one in per second: ping, ack, ack, ping
    expect(big / small).toBeLessThan(1.5)
    expect(small / big).toBeLessThan(1.5)
  })

  test('150 nodes joining one every 20 ms through one contact each: all know all, alive, no death', () => {
    const n = 150
    const sim = new SwimSim({ seed: 200, n, start: 'join', joinSpacingMs: 20 })
    const suspicions = countSuspicions(sim)
    const formedAt = sim.runUntil(
      () => sim.upIds().length === n && sim.upIds().every(id => sim.core(id)!.size === n),
      60_000,
      100,
    )
    expect(formedAt).not.toBeNull()
    sim.run(sim.now + 20_000)
    note(`join of ${n} (last at 3 s): all hold all at ${formedAt} ms; suspicions ${suspicions.count}`)
    expect(sim.deaths).toEqual([])
    expect(allAliveEverywhere(sim, sim.ids)).toBe(true)
  })

  test('n = 50: a crashed node is dead on every other node within 5 s at p95 (60 crashes, 6 seeds)', () => {
    const everywhere: number[] = []
    const perObserver: number[] = []
    let falsePositives = 0
    for (let seed = 1; seed <= 6; seed++) {
      const sim = new SwimSim({ seed: seed * 7919, n: 50 })
      sim.run(5_000)
      for (let round = 0; round < 10; round++) {
        const victim = sim.random.pick(sim.upIds())
        const crashedAt = sim.now
        sim.crash(victim)
        const doneAt = sim.runUntil(() => goneEverywhere(sim, victim), 30_000, 10)
        everywhere.push(doneAt === null ? Infinity : doneAt - crashedAt)
        for (const death of sim.deaths)
          if (death.target === victim && death.atMs >= crashedAt) perObserver.push(death.atMs - crashedAt)
        sim.restart(victim)
        sim.run(sim.now + 3_000 + sim.random.int(0, 1_000))
      }
      falsePositives += sim.deaths.filter(death => death.falsePositive).length
    }
    note(
      `n=50 detection, dead on all: p50 ${percentile(everywhere, 50)} p95 ${percentile(everywhere, 95)} ` +
        `max ${percentile(everywhere, 100)} ms; per observer p50 ${percentile(perObserver, 50)} ` +
        `p95 ${percentile(perObserver, 95)} ms`,
    )
    expect(falsePositives).toBe(0)
    expect(percentile(everywhere, 95)).toBeLessThanOrEqual(5_000)
    expect(percentile(everywhere, 100)).toBeLessThan(10_000)
  })

  test.each([
    { n: 50, seeds: 2, durationMs: 150_000 },
    { n: 200, seeds: 1, durationMs: 60_000 },
  ])('10 % loss for $durationMs ms at n = $n: no live node declared dead', ({ n, seeds, durationMs }) => {
    let suspicions = 0
    let distinct = 0
    for (let seed = 1; seed <= seeds; seed++) {
      const sim = new SwimSim({ seed: seed * 104_729 + n, n, loss: 0.1 })
      const counted = countSuspicions(sim)
      const accused = new Set<string>()
      sim.onChange(change => {
        if (change.effect.type !== 'state' || change.effect.to !== 'suspect') return
        accused.add(`${change.effect.id}@${sim.core(change.observer)?.get(change.effect.id)?.incarnation}`)
      })
      sim.run(durationMs)
      expect(sim.deaths).toEqual([])
      suspicions += counted.count
      distinct += accused.size
    }
    note(
      `n=${n} 10% loss ${(seeds * durationMs) / 1000} s: 0 deaths; ${distinct} suspicions (${suspicions} node-level)`,
    )
    expect(distinct).toBeGreaterThan(0) // the loss was real enough to cause suspicions, all refuted
  })

  test('partition of n = 50 into halves for 40 s, then heal: sides see each other dead, then alive again', () => {
    const sim = new SwimSim({ seed: 4242, n: 50 })
    sim.run(10_000)
    const left = sim.ids.slice(0, 25)
    const right = sim.ids.slice(25)
    sim.partition(left, right)
    sim.run(50_000)
    // Within a side nobody died; across, the great majority already holds the other side dead (the rest
    // learn it by push-pull).
    expect(sim.deaths.filter(death => sim.reachable(death.observer, death.target))).toEqual([])
    let deadAcross = 0
    for (const a of left) for (const b of right) deadAcross += Number(sim.state(a, b) === 'dead')
    expect(deadAcross).toBeGreaterThan(0.9 * 25 * 25)
    sim.heal()
    const healedAt = sim.now
    const aliveAt = sim.runUntil(() => allAliveEverywhere(sim, sim.ids), 120_000, 100)
    note(
      `partition heal: all alive everywhere ${aliveAt === null ? 'never' : aliveAt - healedAt} ms after healing`,
    )
    expect(aliveAt).not.toBeNull()
    // The way back is refutation: the members were dead at their old incarnation.
    expect(sim.ids.filter(id => sim.incarnation(id) > 1).length).toBeGreaterThan(25)
    expect(sim.deaths.filter(death => death.falsePositive)).toEqual([])
  })

  test('a goodbye is seen as left on all 100 nodes within 2 s, and nobody declares it dead', () => {
    const sim = new SwimSim({ seed: 66, n: 100 })
    sim.run(10_000)
    const leftAt = sim.now
    sim.leave('n42')
    const seenAt = sim.runUntil(() => sim.upIds().every(id => sim.state(id, 'n42') === 'left'), 10_000, 10)
    note(`leave: left on all ${seenAt === null ? 'never' : seenAt - leftAt} ms after the goodbye`)
    expect(seenAt).not.toBeNull()
    expect(seenAt! - leftAt).toBeLessThanOrEqual(2_000)
    sim.run(sim.now + 20_000)
    expect(sim.deaths.filter(death => death.target === 'n42')).toEqual([])
    expect(sim.upIds().every(id => sim.state(id, 'n42') === 'left')).toBe(true)
  })

  test('revocation removes a member wherever applied; its records and messages are refused after', () => {
    const sim = new SwimSim({ seed: 77, n: 60 })
    sim.run(10_000)
    const appliedOn = sim.ids.filter(id => id !== 'n13' && Number(id.slice(1)) % 2 === 0)
    sim.revoke('n13', appliedOn)
    for (const id of appliedOn) expect(sim.state(id, 'n13')).toBeUndefined()
    // n13 keeps running (and even signs a fresh record) as a revoked node would until disconnected.
    sim.restart('n13', 'n0')
    sim.run(40_000)
    for (const id of appliedOn) {
      const core = sim.core(id)!
      expect(core.get('n13')).toBeUndefined()
      expect(core.wants('n13', sim.incarnation('n13') + 1)).toBe(false)
    }
    const refused = appliedOn.reduce((sum, id) => sum + sim.core(id)!.counters.unknownSenders, 0)
    expect(refused).toBeGreaterThan(0)
    // Where it was not applied, the restarted n13 is a member again (revocation is the driver's to spread).
    const notApplied = sim.ids.filter(id => id !== 'n13' && !appliedOn.includes(id))
    expect(notApplied.some(id => sim.state(id, 'n13') === 'alive')).toBe(true)
    expect(sim.deaths.filter(death => death.falsePositive)).toEqual([])
  })

  test('a hostile insider accusing a live node every 300 ms for 40 s cannot get it declared dead', () => {
    const sim = new SwimSim({ seed: 88, n: 50 })
    sim.run(5_000)
    const victim = 'n20'
    for (let atMs = 5_000; atMs < 45_000; atMs += 300) {
      sim.at(atMs, () => {
        // It accuses at the incarnation it holds (what it heard), as itself, to everyone.
        const incarnation = sim.core('n7')!.get(victim)!.incarnation
        const message: SimMessage = {
          type: 'gossip',
          updates: [{ kind: 'suspect', id: victim, incarnation, from: 'n7', proof: { from: 'n7' } }],
        }
        for (const id of sim.ids) if (id !== 'n7') sim.inject('n7', id, message)
      })
    }
    sim.run(50_000)
    expect(sim.deaths.filter(death => death.target === victim)).toEqual([])
    const refutations = sim.core(victim)!.counters.refutations
    note(`hostile accuser: ${refutations} refutations by the victim in 40 s, never dead`)
    expect(refutations).toBeGreaterThan(10)
    expect(sim.upIds().every(id => sim.state(id, victim) !== 'dead')).toBe(true)
  })

  test('floods stay bounded: bogus high incarnations, forged proofs, unknown ids and strangers', () => {
    const membersMax = 80
    const sim = new SwimSim({ seed: 99, n: 40, config: { membersMax } })
    sim.run(5_000)
    const victim = 'n3'
    const rounds = 30
    for (let round = 0; round < rounds; round++) {
      sim.at(5_000 + round * 100, () => {
        for (const id of sim.ids) {
          if (id === 'n9') continue
          // Claims about an incarnation nobody holds, a proof signed by someone else, fake members,
          // a stranger's pings and ping-reqs for unknown targets.
          const bogus: SimMessage = {
            type: 'gossip',
            updates: [
              {
                kind: 'suspect',
                id: victim,
                incarnation: 1_000_000 + round,
                from: 'n9',
                proof: { from: 'n9' },
              },
              { kind: 'suspect', id: victim, incarnation: 1, from: 'n5', proof: { from: 'n9' } },
              ...Array.from({ length: 8 }, (_, k) => ({
                kind: 'alive' as const,
                id: `fake${round * 8 + k}`,
                incarnation: 1,
                left: false,
                record: { id: `fake${round * 8 + k}`, inc: 1 },
              })),
            ],
          }
          sim.inject('n9', id, bogus)
          sim.inject(`stranger${round}`, id, { type: 'ping', seq: round, updates: [] })
          sim.inject('n9', id, { type: 'ping-req', seq: round, target: `nobody${round}`, updates: [] })
        }
      })
    }
    sim.run(25_000)
    expect(sim.forged).toBeGreaterThan(0)
    for (const id of sim.upIds()) {
      const core = sim.core(id)!
      expect(core.size).toBeLessThanOrEqual(membersMax)
      // A claim above what a node holds moves nothing; one about the victim itself makes it refute,
      // one incarnation at a time, never jumping to the claimed number.
      expect(core.get(victim)!.incarnation).toBeLessThanOrEqual(1 + rounds)
    }
    expect(sim.core(victim)!.counters.refutations).toBeGreaterThan(0)
    const counters = sim.upIds().map(id => sim.core(id)!.counters)
    expect(counters.reduce((sum, c) => sum + c.tableFull, 0)).toBeGreaterThan(0)
    expect(counters.reduce((sum, c) => sum + c.unknownSenders, 0)).toBeGreaterThan(0)
    expect(counters.reduce((sum, c) => sum + c.updatesStale, 0)).toBeGreaterThan(0)
    // The real members are never pushed out by the fakes (which die, as nobody answers for them), and no
    // real member died.
    for (const id of sim.upIds()) for (const other of sim.ids) expect(sim.state(id, other)).toBe('alive')
    expect(sim.deaths.filter(death => !death.target.startsWith('fake'))).toEqual([])
    expect(sim.deaths.length).toBeGreaterThan(0)
  })

  test('a CPU-starved mesh (every node stalls 0.3–1.5 s, a third of the time): no death, half the suspicions', () => {
    // A stalled process reads what arrived only after its late timer fired, and meanwhile others find it
    // silent. Lifeguard's local health stretches the probes of a node that fails probes, refutes or
    // stalls, and outcomes due during a stall get once the time the stall took: suspicions (each a
    // signed refutation every node verifies, CPU a starved mesh lacks) and messages go down.
    const run = (healthMax: number): { sim: SwimSim; suspicions: number; messages: number } => {
      const sim = new SwimSim({ seed: 31, n: 30, loss: 0.02, config: { healthMax } })
      const suspicions = countSuspicions(sim)
      sim.run(3_000)
      for (let at = 3_000; at < 90_000; at += 500) {
        sim.run(at)
        for (const id of sim.ids) if (sim.random.chance(0.25)) sim.stall(id, sim.random.int(300, 1_500))
      }
      sim.run(100_000)
      const messages = Object.values(sim.sentByType).reduce((a, b) => a + b, 0)
      return { sim, suspicions: suspicions.count, messages }
    }
    const aware = run(SWIM_DEFAULTS.healthMax ?? 8)
    const blind = run(1)
    const counters = aware.sim.ids.map(id => aware.sim.core(id)!.counters)
    const sum = (key: 'lateTicks' | 'graced'): number => counters.reduce((a, c) => a + (c[key] ?? 0), 0)
    note(
      `starved n=30: ${aware.suspicions} suspicions, ${aware.messages} messages with local health; ` +
        `${blind.suspicions}, ${blind.messages} without; late ticks ${sum('lateTicks')}, graced ${sum('graced')}`,
    )
    expect(aware.sim.deaths).toEqual([])
    expect(sum('lateTicks')).toBeGreaterThan(0)
    expect(sum('graced')).toBeGreaterThan(0)
    expect(aware.suspicions * 1.5).toBeLessThan(blind.suspicions)
    expect(aware.messages * 1.2).toBeLessThan(blind.messages)
    for (const id of aware.sim.upIds())
      for (const other of aware.sim.ids) expect(aware.sim.state(id, other)).toBe('alive')
  })

  test('a driver ticking only at nextDeadlineMs() runs exactly as one that also ticks every 10 ms', () => {
    const scenario = (driver: 'deadline' | 'deadline+poll' | 'poll'): SwimSim => {
      const sim = new SwimSim({
        seed: 5,
        n: 20,
        loss: 0.05,
        driver,
        start: 'join',
        joinSpacingMs: 50,
        transcript: true,
      })
      sim.run(10_000)
      sim.crash('n7')
      sim.run(17_000)
      sim.leave('n9')
      sim.run(19_000)
      sim.partition(sim.ids.slice(0, 8))
      sim.run(35_000)
      sim.heal()
      sim.run(75_000)
      return sim
    }
    const exact = scenario('deadline')
    const polled = scenario('deadline+poll')
    expect(polled.lines.length).toBe(exact.lines.length)
    expect(polled.lines).toEqual(exact.lines)
    // A naive 10 ms poller (ticks late by up to 10 ms) reaches the same end state.
    const naive = scenario('poll')
    const view = (sim: SwimSim): string[] =>
      sim.upIds().map(
        id =>
          `${id}:${sim
            .core(id)!
            .members()
            .map(m => `${m.id}=${m.state}`)
            .join(',')}`,
      )
    expect(view(naive)).toEqual(view(exact))
    expect(naive.deaths.filter(death => death.falsePositive)).toEqual([])
    expect(exact.deaths.filter(death => death.falsePositive)).toEqual([])
  })
})
