/**
 * Proves the replicated CA issuer (src/ca/replication.ts around the real issuer core) safe and live in
 * the deterministic simulator (ca-replication-sim.ts): with 3 and 5 holders, under partitions, message
 * loss, crashes that keep only the durable record, clock drift, and two would-be issuers with
 * overlapping believed leases, no ticket nonce is accepted twice, no serial is issued twice, and no
 * released revocation is missing from any later issuer's state (checked at every release and recovery).
 * Liveness: after the issuing holder crashes, the next lease (granted after the authority bound) serves
 * and admits a joiner within RECOVERY_BOUND_MS of its grant. A swarm of seeds picks random faults, then heals, kills
 * the issuer, and requires the next grant to serve within RECOVERY_BOUND_MS and every joiner to be
 * admitted after. MESH_SEED=S runs only seed S and prints its transcript.
 */

import { describe, expect, test } from 'vitest'
import { authorityProfiles } from '../../src/authority/config.js'
import { type CaSim, createCaSim } from './ca-replication-sim.js'

const lan = authorityProfiles.lan
/** The authority's failover bound on `lan`: the dead holder's lease runs out, then the next campaigns. */
const AUTHORITY_BOUND_MS = lan.leaseTtlMs + lan.leaseDriftBudgetMs + lan.campaignStaggerMs
/**
 * What replication adds on top: promise, fetch and store rounds, with retries every 250 ms under up to
 * 16 % loss (worst of 300 seeds: 1,380 ms; without loss about 100 ms). Authority bound + this < 5 s.
 */
const RECOVERY_BOUND_MS = 2_000

/** Runs until a holder serves and every client is admitted, or `boundMs` passes; returns the time taken. */
function admitWithin(sim: CaSim, boundMs: number, target?: string): number {
  const start = sim.nowMs
  while (sim.nowMs - start <= boundMs) {
    const serving = sim.serving()[0]
    sim.sendJoins(target ?? serving?.id)
    sim.runUntil(sim.nowMs + 50)
    if (sim.clients.every(c => c.done)) return sim.nowMs - start
  }
  throw new Error(
    `seed: not every joiner admitted within ${boundMs} ms (${sim.admitted()}/${sim.clients.length})\n${sim.transcript.slice(-30).join('\n')}`,
  )
}

describe('CA replication: scenarios', () => {
  test('3 holders: joins commit; kill the issuer mid-burst; the next lease serves within the bound', () => {
    const sim = createCaSim({ seed: 1, holders: 3 })
    sim.grant('h0')
    sim.addClients(10)
    admitWithin(sim, 2_000, 'h0')
    sim.addClients(10)
    sim.sendJoins('h0')
    sim.runUntil(sim.nowMs + 40) // mid-burst: some stored, some not
    sim.crash('h0')
    sim.runUntil(sim.nowMs + AUTHORITY_BOUND_MS)
    sim.grant('h1')
    const took = admitWithin(sim, RECOVERY_BOUND_MS)
    expect(took).toBeLessThanOrEqual(RECOVERY_BOUND_MS)
    expect(sim.readyLog.map(r => r.id)).toEqual(['h0', 'h1'])
    // The restarted old issuer recovers the history too when it is granted again.
    sim.restart('h0')
    sim.grant('h0')
    sim.runUntil(sim.nowMs + 500)
    expect(sim.serving().map(h => h.id)).toEqual(['h0'])
  })

  test('5 holders: the issuer isolated with one follower cannot commit; the majority side serves', () => {
    const sim = createCaSim({ seed: 2, holders: 5 })
    sim.grant('h0')
    sim.addClients(4)
    admitWithin(sim, 2_000, 'h0')
    for (const a of ['h0', 'h1']) for (const b of ['h2', 'h3', 'h4']) sim.cut(a, b)
    sim.addClients(4)
    sim.sendJoins('h0')
    sim.runUntil(sim.nowMs + 1_000)
    expect(sim.admitted()).toBe(4) // minority: nothing committed, nothing released
    sim.grant('h2') // h0 still believes it holds (overlapping believed leases)
    admitWithin(sim, RECOVERY_BOUND_MS, 'h2')
    sim.heal()
    sim.runUntil(sim.nowMs + 1_000)
    expect(sim.serving().map(h => h.id)).toEqual(['h2']) // h0 was fenced by h2's promises
  })

  test('overlapping believed leases: two issuers granted back to back, both fed joins', () => {
    const sim = createCaSim({ seed: 3, holders: 3, loss: 0.1 })
    sim.grant('h0')
    sim.grant('h1')
    sim.addClients(12)
    for (let i = 0; i < 40; i++) {
      sim.sendJoins(i % 2 === 0 ? 'h0' : 'h1')
      sim.runUntil(sim.nowMs + 100)
    }
    expect(sim.serving().map(h => h.id)).toEqual(['h1'])
    expect(sim.admitted()).toBe(12)
  })

  test('fencing: a deposed issuer store that lands after a higher promise is refused, not committed', () => {
    // Fixed 10 ms delays: h2 promises h1's ballot at +10, then h1's stores to h2 are held back while
    // h0 (who still believes it holds) proposes a join to h2. Without the promise check h2 would accept,
    // h0 would release a certificate, and h1 would then overwrite it with a state lacking that nonce.
    const sim = createCaSim({ seed: 5, holders: 3, delayMs: { min: 10, max: 10 } })
    sim.grant('h0')
    sim.addClients(2)
    admitWithin(sim, 1_000, 'h0')
    sim.cut('h0', 'h1')
    sim.grant('h1')
    sim.runUntil(sim.nowMs + 15)
    sim.cutOneWay('h1', 'h2')
    sim.addClients(1)
    sim.sendJoins('h0')
    sim.runUntil(sim.nowMs + 500)
    expect(sim.admitted()).toBe(2) // h0 was fenced by h2: nothing released
    expect(sim.serving().map(h => h.id)).toEqual([])
    sim.heal()
    admitWithin(sim, RECOVERY_BOUND_MS, 'h1')
    expect(sim.serving().map(h => h.id)).toEqual(['h1'])
  })

  test('every holder crashes and restarts: the durable records keep the history', () => {
    const sim = createCaSim({ seed: 4, holders: 3 })
    sim.grant('h1')
    sim.addClients(6)
    admitWithin(sim, 2_000, 'h1')
    sim.revokeOne('h1')
    sim.runUntil(sim.nowMs + 300)
    for (const id of sim.ids) sim.crash(id)
    for (const id of sim.ids) sim.restart(id)
    sim.grant('h2')
    sim.runUntil(sim.nowMs + 500)
    const serving = sim.serving()
    expect(serving.map(h => h.id)).toEqual(['h2'])
    expect(sim.readyLog).toHaveLength(2) // the ready check found every released nonce and revocation
  })
})

/** One random run: faults for a while, then heal, grant, and require admission within the bound. */
function runSeed(seed: number): { readyMs: number } {
  const holders = seed % 2 === 0 ? 3 : 5
  const sim = createCaSim({ seed, holders, loss: (seed % 5) * 0.04, driftMax: 0.1 })
  const r = sim.random
  sim.grant(r.pick(sim.ids))
  for (let step = 0; step < 60; step++) {
    const roll = r.next()
    const id = r.pick(sim.ids)
    if (roll < 0.1) sim.crash(id)
    else if (roll < 0.2) sim.restart(id)
    else if (roll < 0.3) sim.grant(id)
    else if (roll < 0.35) sim.stepDown(id)
    else if (roll < 0.45) sim.cut(id, r.pick(sim.ids))
    else if (roll < 0.5) sim.isolate(id)
    else if (roll < 0.6) sim.heal()
    else if (roll < 0.7) sim.addClients(r.int(1, 4))
    else if (roll < 0.75) sim.revokeOne(id)
    sim.sendJoins(r.chance(0.5) ? sim.serving()[0]?.id : undefined)
    sim.runUntil(sim.nowMs + r.int(20, 400))
  }
  // Heal: everyone back, the old issuer dies, the authority grants a live holder after its bound.
  sim.heal()
  for (const id of sim.ids) sim.restart(id)
  // The issuing one (highest ballot) dies; any other that still believes it serves sees its lease end.
  const serving = sim
    .serving()
    .sort((a, b) => (b.replica?.ballot()?.epoch ?? 0) - (a.replica?.ballot()?.epoch ?? 0))
  for (const [i, h] of serving.entries()) i === 0 ? sim.crash(h.id) : sim.stepDown(h.id)
  sim.runUntil(sim.nowMs + AUTHORITY_BOUND_MS)
  const next = sim.holders.find(h => h.alive)
  if (next === undefined) throw new Error('no live holder')
  sim.grant(next.id)
  const grantedAtMs = sim.nowMs
  while (sim.serving().length === 0 && sim.nowMs - grantedAtMs <= RECOVERY_BOUND_MS)
    sim.runUntil(sim.nowMs + 10)
  const readyMs = sim.nowMs - grantedAtMs
  if (sim.serving().length === 0) throw new Error(`no issuer ${RECOVERY_BOUND_MS} ms after the grant`)
  // Every joiner still waiting is admitted: one change commits at a time (~1 round trip each).
  sim.addClients(2)
  admitWithin(sim, 10_000)
  return { readyMs }
}

describe('CA replication: swarm', () => {
  const single = process.env.MESH_SEED
  if (single !== undefined) {
    test(`seed ${single}`, () => {
      console.log(runSeed(Number(single)))
    })
    return
  }
  const count = Number(process.env.MESH_CA_SWARM_SEEDS ?? 60)
  test(`${count} seeds (3 and 5 holders, random faults): safe, then admits within the bound`, () => {
    let worst = 0
    for (let seed = 1; seed <= count; seed++) {
      try {
        worst = Math.max(worst, runSeed(seed).readyMs)
      } catch (err) {
        throw new Error(`seed ${seed}: ${(err as Error).message}\nrerun with MESH_SEED=${seed}`)
      }
    }
    if (process.env.MESH_CA_SWARM_REPORT !== undefined) console.log(`worst grant → serving: ${worst} ms`)
    expect(worst).toBeLessThanOrEqual(RECOVERY_BOUND_MS)
  }, 120_000)
})
