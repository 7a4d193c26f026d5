/**
 * Proves `nextDeadlineMs`: a node ticked only when its clock reaches its core's next deadline does
 * exactly what a node ticked every millisecond does. Two copies of one random cluster (zones of three to
 * nine, a pair with a witness, a zone of one, drifting integer clocks) run in lockstep over the same
 * seeded faults (message loss, cuts, crashes with restart, dead and alive hints, roster changes,
 * lookups); every true millisecond the first copy ticks every node, the second only the nodes whose
 * deadline has come, then both deliver the same messages. Their transcripts (every effect, with the
 * node's local time) must be identical, and the second must tick far less. It also checks the contract:
 * the deadline is never at or before the last time seen, and Infinity for a node with nothing pending;
 * and, by hand, the one deadline random runs rarely reach: an unsigned roster's settle period. Removing
 * any one deadline source from `nextDeadlineMs` fails one of these tests.
 */
import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import {
  type Authority,
  type AuthorityEffect,
  type AuthorityMessage,
  authorityProfiles,
  createAuthority,
  describeMessage,
  type RosterMember,
  rankCandidates,
  zoneVoters,
} from '../../src/authority/index.js'
import { type SimRandom, simRandom } from '../sim/random.js'

const config = authorityProfiles.test

interface LockstepNode {
  readonly id: string
  readonly rate: number
  readonly offsetMs: number
  readonly random: SimRandom
  core: Authority | null
}

interface InFlight {
  readonly atMs: number
  readonly seq: number
  readonly from: string
  readonly to: string
  readonly message: AuthorityMessage
}

function describeEffect(effect: AuthorityEffect): string {
  if (effect.type === 'send') return `send ${effect.to} ${describeMessage(effect.message)}`
  return JSON.stringify(effect)
}

/** Runs one cluster for `durationMs` true ms; `deadline` ticks only at next deadlines. */
function lockstep(seed: number, deadline: boolean, durationMs: number): { lines: string[]; ticks: number } {
  const r = simRandom(seed)
  const big = r.int(3, 9)
  let roster: RosterMember[] = Array.from({ length: big }, (_, i) => ({ id: `g${i}`, zone: 'g' }))
  if (r.chance(0.5)) roster.push({ id: 'p1', zone: 'pair' }, { id: 'p2', zone: 'pair' })
  if (r.chance(0.5)) roster.push({ id: 's1', zone: 'solo' })
  const driftMax = config.leaseDriftBudgetMs / config.leaseTtlMs
  const nodes = new Map<string, LockstepNode>()
  const lines: string[] = []
  let ticks = 0
  let seq = 0
  /** Messages in flight by the true ms they arrive, each list in sending order. */
  const inFlight = new Map<number, InFlight[]>()
  const cuts = new Set<string>()
  let loss = 0
  const localOf = (node: LockstepNode, trueMs: number) => Math.floor(trueMs * (1 + node.rate) + node.offsetMs)

  const drain = (node: LockstepNode, trueMs: number): void => {
    const core = node.core
    if (core === null) return
    const localMs = localOf(node, trueMs)
    for (const effect of core.drainEffects()) {
      lines.push(`${trueMs} ${node.id}@${localMs} ${describeEffect(effect)}`)
      if (effect.type !== 'send') continue
      // Drawn for every send, lost or not, so both copies draw alike while their transcripts agree.
      const delayMs = r.int(1, 40)
      const lost = r.next() < loss
      if (lost || cuts.has(`${node.id}>${effect.to}`)) continue
      const atMs = trueMs + delayMs
      const due = inFlight.get(atMs) ?? []
      due.push({ atMs, seq: seq++, from: node.id, to: effect.to, message: effect.message })
      inFlight.set(atMs, due)
    }
    const next = core.nextDeadlineMs()
    if (!(next > localMs)) throw new Error(`${node.id}: deadline ${next} not after ${localMs}`)
  }
  const boot = (node: LockstepNode, trueMs: number): void => {
    const fork = node.random.fork()
    node.core = createAuthority({
      self: node.id,
      config,
      random: () => fork.next(),
      nowMs: localOf(node, trueMs),
    })
    node.core.step({ type: 'roster', members: roster }, localOf(node, trueMs))
    drain(node, trueMs)
  }
  for (const m of roster) {
    const node: LockstepNode = {
      id: m.id,
      rate: (r.next() * 2 - 1) * driftMax,
      offsetMs: r.int(0, 1_000_000),
      random: r.fork(),
      core: null,
    }
    nodes.set(m.id, node)
    boot(node, 0)
  }
  const ids = [...nodes.keys()].sort()
  const everyone = (trueMs: number, input: Parameters<Authority['step']>[0], except?: string) => {
    for (const id of ids) {
      const node = nodes.get(id)!
      if (id === except || node.core === null) continue
      node.core.step(input, localOf(node, trueMs))
      drain(node, trueMs)
    }
  }
  /** One random fault at `trueMs`, drawn from the shared generator (both copies draw the same). */
  const fault = (trueMs: number): void => {
    const id = r.pick(ids)
    const node = nodes.get(id)!
    switch (r.int(0, 8)) {
      case 0: {
        lines.push(`${trueMs} ** crash ${id}`)
        node.core = null
        everyone(trueMs, { type: 'peer', id, state: 'dead' })
        // Someone asks who holds the crashed node's zone: a voter that never answers makes it time out.
        const asker = nodes.get(r.pick(ids))!
        const zone = roster.find(m => m.id === id)?.zone
        if (asker.core === null || zone === undefined) break
        asker.core.step({ type: 'lookup', zone, query: seq++ }, localOf(asker, trueMs))
        drain(asker, trueMs)
        break
      }
      case 1:
        if (node.core !== null) break
        lines.push(`${trueMs} ** restart ${id}`)
        boot(node, trueMs)
        everyone(trueMs, { type: 'peer', id, state: 'alive' }, id)
        break
      case 2: {
        const other = r.pick(ids)
        lines.push(`${trueMs} ** cut ${id} > ${other}`)
        cuts.add(`${id}>${other}`)
        break
      }
      case 3:
        lines.push(`${trueMs} ** heal`)
        cuts.clear()
        loss = 0
        break
      case 4:
        loss = r.next() * 0.3
        lines.push(`${trueMs} ** loss ${loss.toFixed(2)}`)
        break
      case 5:
        lines.push(`${trueMs} ** ${id} suspected`)
        everyone(trueMs, { type: 'peer', id, state: 'dead' }, id)
        break
      case 6: {
        if (node.core === null) break
        const zone = r.pick([...new Set(roster.map(m => m.zone))])
        lines.push(`${trueMs} ** ${id} looks up ${zone}`)
        node.core.step({ type: 'lookup', zone, query: seq++ }, localOf(node, trueMs))
        drain(node, trueMs)
        break
      }
      case 7: {
        // A member of g leaves the roster (a voter or not), as a revocation does; half the time it stops,
        // else it keeps running with the new roster until its old zone's settle period ends.
        const members = roster.filter(m => m.zone === 'g')
        if (members.length <= 3) break
        const gone = r.pick(members).id
        lines.push(`${trueMs} ** roster without ${gone}`)
        roster = roster.filter(m => m.id !== gone)
        if (r.chance(0.5)) nodes.get(gone)!.core = null
        everyone(trueMs, { type: 'roster', members: roster })
        break
      }
      default:
        if (node.core === null) break
        lines.push(`${trueMs} ** ${id} restarts in place`)
        node.core.step({ type: 'restart' }, localOf(node, trueMs))
        drain(node, trueMs)
    }
  }
  let nextFaultMs = 1_500 + r.int(0, 500)
  for (let t = 1; t <= durationMs; t++) {
    for (const id of ids) {
      const node = nodes.get(id)!
      const core = node.core
      if (core === null) continue
      const localMs = localOf(node, t)
      if (deadline && localMs < core.nextDeadlineMs()) continue
      ticks++
      core.tick(localMs)
      drain(node, t)
    }
    if (t === nextFaultMs) {
      fault(t)
      nextFaultMs += r.int(100, 900)
    }
    const due = inFlight.get(t) ?? []
    inFlight.delete(t)
    for (const m of due) {
      const node = nodes.get(m.to)!
      if (node.core === null) continue
      lines.push(`${t} ${m.to} <- ${m.from} ${describeMessage(m.message)}`)
      node.core.step({ type: 'message', from: m.from, message: m.message }, localOf(node, t))
      drain(node, t)
    }
  }
  return { lines, ticks }
}

describe('nextDeadlineMs', () => {
  it('ticking only at the next deadline does what ticking every millisecond does', () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 2 ** 31 }), seed => {
        const everyMs = lockstep(seed, false, 8_000)
        const atDeadlines = lockstep(seed, true, 8_000)
        expect(atDeadlines.lines).toEqual(everyMs.lines)
        expect(everyMs.lines.some(line => line.includes('"acquired"'))).toBe(true)
        // Every node ticks every ms in the first copy; at deadlines, a few dozen times a second at most.
        expect(atDeadlines.ticks).toBeLessThan(everyMs.ticks / 10)
      }),
      { numRuns: 12 },
    )
  }, 120_000)

  it('is Infinity for a node that knows no zone, and for a member without a seat (it has nothing to recover)', () => {
    const seven = Array.from({ length: 7 }, (_, i) => ({ id: `g${i}`, zone: 'g' }))
    const voters = zoneVoters('g', seven).voters
    // The lower-ranked of the two members without a seat.
    const seatless = rankCandidates(
      'g',
      seven.map(m => m.id).filter(id => !voters.includes(id)),
    )
    const self = seatless[1]!
    const a = createAuthority({ self, config, random: () => 0.5, nowMs: 0 })
    expect(a.nextDeadlineMs()).toBe(Number.POSITIVE_INFINITY)
    a.step({ type: 'roster', members: seven }, 0)
    // It grants nothing, so it has no quiet period and asks nobody for epochs: no message, no deadline
    // (a zone of 25 used to have all 20 of these poll the 5 voters every sync interval while they
    // recovered).
    expect(a.drainEffects().filter(e => e.type === 'send')).toEqual([])
    expect(a.zones(0).find(z => z.zone === 'g')?.recovering).toBe(false)
    expect(a.nextDeadlineMs()).toBe(Number.POSITIVE_INFINITY)
    // A voter's state message still teaches it the zone's epoch.
    const quietMs = config.leaseTtlMs + config.leaseDriftBudgetMs
    const from = voters[0]!
    a.step(
      { type: 'message', from, message: { type: 'state', zone: 'g', from, maxEpoch: 4, recovering: false } },
      quietMs,
    )
    expect(a.nextDeadlineMs()).toBe(Number.POSITIVE_INFINITY)
    // Every voter reported dead: it campaigns in its turn among the members without a seat.
    for (const id of voters) a.step({ type: 'peer', id, state: 'dead' }, quietMs + 1)
    const at = a.nextDeadlineMs()
    expect(at).toBeGreaterThan(quietMs)
    expect(at).toBeLessThanOrEqual(quietMs + 1 + 2 * config.campaignStaggerMs)
    a.tick(a.nextDeadlineMs())
    expect(a.drainEffects().find(e => e.type === 'campaign')).toMatchObject({ zone: 'g', epoch: 5 })
  })

  it('an unsigned roster change: the old voters’ settle period is a deadline of its own', () => {
    const three = ['g1', 'g2', 'x'].map(id => ({ id, zone: 'g' }))
    const a = createAuthority({ self: 'x', config, random: () => 0.5, nowMs: 0 })
    a.step({ type: 'roster', members: three }, 0)
    const quietMs = config.leaseTtlMs + config.leaseDriftBudgetMs
    for (const from of ['g1', 'g2']) {
      const message = { type: 'state', zone: 'g', from, maxEpoch: 0, recovering: false } as const
      a.step({ type: 'message', from, message }, quietMs)
    }
    // x is revoked but still running: it keeps voting with the old set until the settle period ends.
    a.step({ type: 'roster', members: three.filter(m => m.id !== 'x') }, quietMs + 10)
    a.drainEffects()
    expect(a.nextDeadlineMs()).toBe(quietMs + 10 + config.membershipSettleMs)
    a.tick(a.nextDeadlineMs())
    expect(a.nextDeadlineMs()).toBe(Number.POSITIVE_INFINITY)
    const request = {
      type: 'request',
      zone: 'g',
      from: 'g1',
      epoch: 1,
      incarnation: 1,
      attempt: 1,
      rosterVersion: 0,
    } as const
    a.step({ type: 'message', from: 'g1', message: request }, quietMs + 20 + config.membershipSettleMs)
    expect(a.drainEffects()).toEqual([]) // no longer a voter of g: no grant, no refusal
  })
})

describe('recovery asks voters without flooding them', () => {
  const five = Array.from({ length: 5 }, (_, i) => ({ id: `v${i}`, zone: 'z' }))
  const quietMs = config.leaseTtlMs + config.leaseDriftBudgetMs
  const state = (from: string, recovering: boolean) =>
    ({ type: 'state', zone: 'z', from, maxEpoch: 2, recovering }) as const
  const syncsTo = (effects: AuthorityEffect[]) =>
    effects.flatMap(e => (e.type === 'send' && e.message.type === 'sync' ? [e.to] : []))

  it('after the quiet period, rounds to voters that are still recovering back off to 8 sync intervals', () => {
    const a = createAuthority({ self: 'v0', config, random: () => 0.5, nowMs: 0 })
    a.step({ type: 'roster', members: five }, 0)
    expect(syncsTo(a.drainEffects()).sort()).toEqual(['v1', 'v2', 'v3', 'v4'])
    // Two voters answer that they are recovering themselves; two stay silent: it cannot finish.
    a.step({ type: 'message', from: 'v1', message: state('v1', true) }, 1)
    a.step({ type: 'message', from: 'v2', message: state('v2', true) }, 1)
    const rounds: number[] = []
    for (let now = 2; now < quietMs + 30 * config.syncIntervalMs; now = a.nextDeadlineMs()) {
      a.tick(now)
      if (syncsTo(a.drainEffects()).length > 0 && now >= quietMs) rounds.push(now)
    }
    const gaps = rounds.slice(1).map((t, i) => (t - (rounds[i] ?? 0)) / config.syncIntervalMs)
    expect(gaps.slice(0, 4)).toEqual([2, 4, 8, 8])
    expect(Math.max(...gaps)).toBe(8)
    expect(a.zones(rounds.at(-1) ?? 0)[0]?.recovering).toBe(true)
  })

  it('a voter that finishes tells the voters that asked it meanwhile, once', () => {
    const a = createAuthority({ self: 'v0', config, random: () => 0.5, nowMs: 0 })
    a.step({ type: 'roster', members: five }, 0)
    a.drainEffects()
    // v1 asks while v0 recovers: told "recovering".
    a.step({ type: 'message', from: 'v1', message: { type: 'sync', zone: 'z', from: 'v1' } }, 10)
    expect(a.drainEffects()).toContainEqual({
      type: 'send',
      to: 'v1',
      message: { ...state('v0', true), maxEpoch: 0 },
    })
    // Three voters vouch after the quiet period: v0 is done and tells v1 (and nobody else) at once.
    for (const from of ['v2', 'v3', 'v4'])
      a.step({ type: 'message', from, message: state(from, false) }, quietMs)
    const effects = a.drainEffects()
    expect(effects).toContainEqual({ type: 'recovered', zone: 'z', maxEpoch: 2 })
    const told = effects.flatMap(e => (e.type === 'send' && e.message.type === 'state' ? [e] : []))
    expect(told).toEqual([{ type: 'send', to: 'v1', message: state('v0', false) }])
    a.tick(quietMs + 5 * config.syncIntervalMs)
    expect(a.drainEffects().filter(e => e.type === 'send' && e.message.type === 'state')).toEqual([])
  })
})
