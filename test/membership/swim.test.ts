/**
 * Proves the SWIM membership core (src/membership/swim.ts) one rule at a time, driving a single core by
 * hand: the timeout and period arithmetic against tables and a naive formula (fast-check), ring
 * neighbours against a naive sort, the probe cycle (ping, ping-req, suspicion), relays, Lifeguard
 * suspicion timing, refutation, records and the table's limits, revocation, the dissemination queue,
 * push-pull, strangers, goodbyes, the bounds on what a message can make the core do, and that a driver
 * ticking only at nextDeadlineMs() sees exactly what one ticking more often sees.
 */
import fc from 'fast-check'
import { describe, expect, test } from 'vitest'
import {
  createSwim,
  retransmitLimit,
  ringPosition,
  SWIM_DEFAULTS,
  SWIM_RELAYS_MAX,
  type Swim,
  type SwimConfig,
  SwimConfigError,
  type SwimEffect,
  type SwimInput,
  SwimInvariantError,
  type SwimMessage,
  type SwimUpdate,
  suspicionFloorMs,
  suspicionTimeoutMs,
  syncPeriodMs,
  validateSwimConfig,
} from '../../src/membership/swim.js'
import { simRandom } from '../sim/random.js'

interface Rec {
  readonly id: string
  readonly inc: number
}
interface Proof {
  readonly from: string
}
type Core = Swim<Rec, Proof>
type Effect = SwimEffect<Rec, Proof>
type Update = SwimUpdate<Rec, Proof>
type Message = SwimMessage<Rec, Proof>

const alive = (id: string, incarnation = 1, left = false): Update => ({
  kind: 'alive',
  id,
  incarnation,
  left,
  record: { id, inc: incarnation },
})
const suspect = (id: string, incarnation: number, from: string): Update => ({
  kind: 'suspect',
  id,
  incarnation,
  from,
  proof: { from },
})

function makeCore(
  self: string,
  others: readonly string[],
  options: {
    config?: Partial<SwimConfig>
    seed?: number
    updateBytes?: (u: Update) => number
    messageBytesMax?: number
  } = {},
): Core {
  const core = createSwim<Rec, Proof>({
    self,
    incarnation: 1,
    record: { id: self, inc: 1 },
    random: simRandom(options.seed ?? 1).next,
    nowMs: 0,
    members: others.map(id => alive(id)),
    ...(options.config === undefined ? {} : { config: options.config }),
    ...(options.updateBytes === undefined ? {} : { updateBytes: options.updateBytes }),
    ...(options.messageBytesMax === undefined ? {} : { messageBytesMax: options.messageBytesMax }),
  })
  core.drain()
  return core
}

const msg = (from: string, message: Message): SwimInput<Rec, Proof> => ({ type: 'message', from, message })
const gossip = (...updates: Update[]): Message => ({ type: 'gossip', updates })

/** Ticks at every deadline up to `untilMs`; returns the effects. */
function runTo(core: Core, untilMs: number): Effect[] {
  const out: Effect[] = []
  for (let guard = 0; guard < 100_000; guard++) {
    const at = core.nextDeadlineMs()
    if (at > untilMs) return out
    core.tick(at)
    out.push(...core.drain())
  }
  throw new Error('runaway deadlines')
}

function sends(effects: readonly Effect[], type?: Message['type']): { to: string; message: Message }[] {
  return effects.flatMap(e =>
    e.type === 'send' && (type === undefined || e.message.type === type)
      ? [{ to: e.to, message: e.message }]
      : [],
  )
}

/** Lets the core's own news (its record at start) drain, so later gossip is about what a test did. */
function quiet(core: Core, fromMs: number): number {
  let at = fromMs
  for (let i = 0; i < 200; i++) {
    runTo(core, at)
    if (core.nextDeadlineMs() > at + SWIM_DEFAULTS.gossipIntervalMs) return at
    at += SWIM_DEFAULTS.gossipIntervalMs
  }
  return at
}

/**
 * Ticks at each deadline until a ping of a new probe goes out (seq above `afterSeq`: not the second
 * direct ping of a probe already seen); returns it with the time it was sent.
 */
function nextPing(core: Core, afterSeq = 0): { to: string; seq: number; atMs: number } {
  for (let guard = 0; guard < 1000; guard++) {
    const atMs = core.nextDeadlineMs()
    core.tick(atMs)
    for (const ping of sends(core.drain(), 'ping'))
      if (ping.message.type === 'ping' && ping.message.seq > afterSeq)
        return { to: ping.to, seq: ping.message.seq, atMs }
  }
  throw new Error('no ping')
}

const ids = (n: number): string[] => Array.from({ length: n }, (_, i) => `m${i}`)

describe('arithmetic', () => {
  test('suspicion timeout: table (floor 1000 ms, scale 3, two confirmations expected)', () => {
    expect(suspicionTimeoutMs(1000, 3, 2, 0)).toBe(3000)
    expect(suspicionTimeoutMs(1000, 3, 2, 1)).toBe(1738) // 3 − 2·log 2 / log 3
    expect(suspicionTimeoutMs(1000, 3, 2, 2)).toBe(1000)
    expect(suspicionTimeoutMs(1000, 3, 2, 5)).toBe(1000) // clamped to the floor
    expect(suspicionTimeoutMs(1000, 3, 0, 0)).toBe(1000) // no confirmation can come
  })

  test('suspicion timeout: against the formula written naively, monotone in confirmations', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 100_000 }),
        fc.double({ min: 1, max: 10, noNaN: true }),
        fc.integer({ min: 0, max: 8 }),
        fc.integer({ min: 0, max: 10 }),
        (floor, scale, k, c) => {
          const got = suspicionTimeoutMs(floor, scale, k, c)
          // Written as the brief states it: max − (max − floor) · log(C + 1) / log(K + 1), max = scale · floor.
          const max = scale * floor
          const naive =
            k < 1 ? floor : Math.max(floor, max - ((max - floor) * Math.log(c + 1)) / Math.log(k + 1))
          expect(Math.abs(got - naive)).toBeLessThanOrEqual(1) // the core floors to whole ms
          expect(got).toBeGreaterThanOrEqual(floor)
          expect(got).toBeLessThanOrEqual(Math.floor(floor * scale))
          expect(suspicionTimeoutMs(floor, scale, k, c + 1)).toBeLessThanOrEqual(got)
        },
      ),
    )
  })

  test('suspicion floor, retransmissions and push-pull period grow with log n', () => {
    const config = SWIM_DEFAULTS
    expect(suspicionFloorMs(config, 1)).toBe(config.suspicionMinMs)
    expect(suspicionFloorMs(config, 10_000)).toBe(
      Math.floor(config.suspicionMult * 4 * config.probeIntervalMs),
    )
    expect([1, 9, 10, 99, 100, 1000].map(n => retransmitLimit(config, n))).toEqual(
      [1, 1, 2, 2, 3, 4].map(x => x * config.retransmitMult),
    )
    expect([1, 32, 33, 64, 65, 1000, 4096].map(n => syncPeriodMs(config, n) / config.syncIntervalMs)).toEqual(
      [1, 1, 2, 2, 3, 6, 8],
    )
  })

  test('config: the defaults are valid; every problem is reported at once', () => {
    expect(validateSwimConfig(SWIM_DEFAULTS)).toEqual([])
    const bad = { ...SWIM_DEFAULTS, probeTimeoutMs: 2000, rings: 0, queueMax: 1.5 }
    expect(validateSwimConfig(bad).length).toBe(2) // relations are checked once the types are right
    expect(validateSwimConfig({ ...SWIM_DEFAULTS, probeTimeoutMs: 2000 })).toEqual([
      expect.stringContaining('probeTimeoutMs must be below probeIntervalMs'),
    ])
    expect(() => makeCore('a', [], { config: { suspicionMinMs: 10 } })).toThrow(SwimConfigError)
  })
})

describe('rings', () => {
  /** Naive neighbours: sort everyone live (self included) by position on each ring, take the ones next to self. */
  function naiveNeighbours(self: string, live: readonly string[], rings: number): string[] {
    const subjects: string[] = []
    const observers: string[] = []
    for (let ring = 0; ring < rings; ring++) {
      const all = [self, ...live].sort(
        (a, b) => ringPosition(ring, a) - ringPosition(ring, b) || (a < b ? -1 : 1),
      )
      if (all.length < 2) continue
      const at = all.indexOf(self)
      subjects.push(all[(at + 1) % all.length]!)
      observers.push(all[(at - 1 + all.length) % all.length]!)
    }
    return [...new Set([...subjects, ...observers])].sort()
  }

  test('positions are SHA-256 based, stable and spread over [0, 2^48)', () => {
    expect(ringPosition(0, 'a')).toBe(ringPosition(0, 'a'))
    expect(ringPosition(0, 'a')).not.toBe(ringPosition(1, 'a'))
    const positions = ids(1000).map(id => ringPosition(0, id))
    const quarter = positions.filter(p => p < 2 ** 46).length
    expect(quarter).toBeGreaterThan(200)
    expect(quarter).toBeLessThan(300)
  })

  test('neighbours match the naive sort through joins, goodbyes and revocations', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 30 }),
        fc.array(fc.tuple(fc.constantFrom('join', 'leave', 'revoke'), fc.integer({ min: 0, max: 59 })), {
          maxLength: 40,
        }),
        (initial, ops) => {
          const all = ids(60)
          const live = new Set(all.slice(0, initial))
          const core = makeCore('self', [...live])
          const known = new Set(live)
          let now = 0
          expect([...core.neighbours()].sort()).toEqual(naiveNeighbours('self', [...live], 3))
          for (const [op, index] of ops) {
            const id = all[index]!
            now += 1
            if (op === 'join' && !known.has(id)) {
              core.step(msg(all[0]!, gossip(alive(id))), now)
              if (core.get(id)?.state === 'alive') {
                known.add(id)
                live.add(id)
              }
            } else if (op === 'leave' && live.has(id)) {
              core.step(msg(id, gossip(alive(id, 2, true))), now)
              live.delete(id)
            } else if (op === 'revoke') {
              core.step({ type: 'revoke', id }, now)
              live.delete(id)
              known.add(id) // refused from now on
            }
            core.drain()
            expect([...core.neighbours()].sort()).toEqual(naiveNeighbours('self', [...live], 3))
          }
        },
      ),
      { numRuns: 60 },
    )
  })
})

describe('probing', () => {
  const members = ids(8)

  test('no ack: a second ping and ping-reqs to 3 other neighbours at the timeout, suspicion at the end', () => {
    const core = makeCore('self', members)
    const ping = nextPing(core)
    expect(core.neighbours()).toContain(ping.to)
    const atTimeout = runTo(core, ping.atMs + SWIM_DEFAULTS.probeTimeoutMs)
    const requests = sends(atTimeout, 'ping-req')
    expect(requests.length).toBe(3)
    for (const request of requests) {
      expect(request.to).not.toBe(ping.to)
      expect(core.neighbours()).toContain(request.to)
      expect(request.message).toMatchObject({ seq: ping.seq, target: ping.to })
    }
    expect(sends(atTimeout, 'ping').map(s => s.to)).toEqual([ping.to])
    expect(core.get(ping.to)!.state).toBe('alive')
    const atEnd = runTo(core, ping.atMs + SWIM_DEFAULTS.probeIntervalMs)
    expect(atEnd).toContainEqual({ type: 'sign-suspect', id: ping.to, incarnation: 1 })
    expect(atEnd).toContainEqual({ type: 'state', id: ping.to, from: 'alive', to: 'suspect' })
    expect(core.counters.probesFailed).toBe(1)
    // The signed accusation comes back in and is spread.
    const now = ping.atMs + SWIM_DEFAULTS.probeIntervalMs
    core.step(msg('self', gossip(suspect(ping.to, 1, 'self'))), now)
    const spread = sends(runTo(core, now + 1), 'gossip').flatMap(s => s.message.updates)
    expect(spread).toContainEqual(suspect(ping.to, 1, 'self'))
  })

  test('a direct ack, or an ack relayed by a helper, before the end keeps the member alive', () => {
    for (const via of ['target', 'helper'] as const) {
      const core = makeCore('self', members)
      const ping = nextPing(core)
      const requests = sends(runTo(core, ping.atMs + SWIM_DEFAULTS.probeTimeoutMs), 'ping-req')
      const from = via === 'target' ? ping.to : requests[0]!.to
      core.step(msg(from, { type: 'ack', seq: ping.seq, updates: [] }), ping.atMs + 900)
      const later = runTo(core, ping.atMs + SWIM_DEFAULTS.probeIntervalMs)
      expect(later.filter(e => e.type === 'sign-suspect')).toEqual([])
      expect(core.counters.probesFailed).toBe(0)
      expect(core.get(ping.to)!.state).toBe('alive')
    }
  })

  test('an ack from anyone else, or arriving at the end of the round, does not count', () => {
    const core = makeCore('self', members)
    const ping = nextPing(core)
    const stranger = members.find(id => id !== ping.to && !core.neighbours().includes(id))!
    core.step(msg(stranger, { type: 'ack', seq: ping.seq, updates: [] }), ping.atMs + 10)
    runTo(core, ping.atMs + SWIM_DEFAULTS.probeIntervalMs - 1)
    core.step(
      msg(ping.to, { type: 'ack', seq: ping.seq, updates: [] }),
      ping.atMs + SWIM_DEFAULTS.probeIntervalMs,
    )
    const atEnd = runTo(core, ping.atMs + SWIM_DEFAULTS.probeIntervalMs)
    expect(atEnd).toContainEqual({ type: 'sign-suspect', id: ping.to, incarnation: 1 })
  })

  test('subjects are probed round robin, one per interval', () => {
    const core = makeCore('self', ids(30))
    const order: string[] = []
    const times: number[] = []
    for (let round = 0; round < 6; round++) {
      const ping = nextPing(core)
      order.push(ping.to)
      times.push(ping.atMs)
      core.step(msg(ping.to, { type: 'ack', seq: ping.seq, updates: [] }), ping.atMs)
    }
    const subjects = [...new Set(order)]
    expect(subjects.length).toBe(new Set(core.neighbours().slice(0, subjects.length)).size)
    expect(order).toEqual([...subjects, ...subjects, ...subjects, ...subjects].slice(0, 6))
    for (let i = 1; i < times.length; i++)
      expect(times[i]! - times[i - 1]!).toBe(SWIM_DEFAULTS.probeIntervalMs)
  })

  test('a helper pings the target with its own seq and relays the ack under the requester seq', () => {
    const core = makeCore('self', ['req', 'target', 'other'])
    core.step(msg('req', { type: 'ping-req', seq: 77, target: 'target', updates: [] }), 10)
    const ping = sends(core.drain(), 'ping')[0]!
    expect(ping.to).toBe('target')
    const ourSeq = (ping.message as { seq: number }).seq
    core.step(msg('other', { type: 'ack', seq: ourSeq, updates: [] }), 20) // not the target
    expect(sends(core.drain(), 'ack')).toEqual([])
    core.step(msg('target', { type: 'ack', seq: ourSeq, updates: [] }), 30)
    expect(sends(core.drain(), 'ack')).toEqual([{ to: 'req', message: expect.objectContaining({ seq: 77 }) }])
    // Targets not in the table, or the requester itself, are never pinged.
    core.step(msg('req', { type: 'ping-req', seq: 78, target: 'nobody', updates: [] }), 40)
    core.step(msg('req', { type: 'ping-req', seq: 79, target: 'req', updates: [] }), 40)
    expect(sends(core.drain())).toEqual([])
  })

  test(`relays are bounded: beyond ${SWIM_RELAYS_MAX} pending, ping-reqs are refused and counted`, () => {
    const core = makeCore('self', ['req', 'target'])
    for (let i = 0; i < SWIM_RELAYS_MAX + 5; i++)
      core.step(msg('req', { type: 'ping-req', seq: i, target: 'target', updates: [] }), 10)
    expect(sends(core.drain(), 'ping').length).toBe(SWIM_RELAYS_MAX)
    expect(core.counters.pingRequestsDropped).toBe(5)
    // Expired relays make room again.
    core.step(msg('req', { type: 'ping-req', seq: 1000, target: 'target', updates: [] }), 10 + 2000)
    expect(sends(core.drain(), 'ping').length).toBe(1)
  })
})

describe('local health (Lifeguard)', () => {
  const members = ids(30)
  test('failed probes raise the score and stretch the next probe; acked probes lower it', () => {
    const core = makeCore('self', members)
    expect(core.localHealth()).toBe(0)
    let ping = nextPing(core)
    for (let failed = 1; failed <= 3; failed++) {
      runTo(core, ping.atMs + SWIM_DEFAULTS.probeIntervalMs * failed - 1)
      expect(core.counters.probesFailed).toBe(failed - 1)
      // The round (stretched by the score when it began) ends, and the next begins at once.
      const next = nextPing(core, ping.seq)
      expect(next.atMs).toBe(ping.atMs + SWIM_DEFAULTS.probeIntervalMs * failed)
      expect(core.counters.probesFailed).toBe(failed)
      expect(core.localHealth()).toBe(failed)
      ping = next
    }
    // Score 3: ping-reqs only after 4 × the probe timeout, the round lasts 4 × the interval.
    expect(sends(runTo(core, ping.atMs + 4 * SWIM_DEFAULTS.probeTimeoutMs - 1), 'ping-req')).toEqual([])
    expect(sends(runTo(core, ping.atMs + 4 * SWIM_DEFAULTS.probeTimeoutMs), 'ping-req').length).toBe(3)
    core.step(msg(ping.to, { type: 'ack', seq: ping.seq, updates: [] }), ping.atMs + 3000)
    expect(core.localHealth()).toBe(2)
    expect(core.counters.probesFailed).toBe(3)
    // The next probe comes 4 intervals after this one started (it was scheduled then), not sooner.
    expect(nextPing(core, ping.seq).atMs).toBeGreaterThanOrEqual(
      ping.atMs + 4 * SWIM_DEFAULTS.probeIntervalMs,
    )
  })

  test('the score is bounded by healthMax (1 turns it off)', () => {
    for (const [healthMax, most] of [
      [3, 2],
      [1, 0],
    ] as const) {
      const core = makeCore('self', members, { config: { healthMax } })
      runTo(core, 60_000)
      expect(core.counters.probesFailed).toBeGreaterThan(5)
      expect(core.localHealth()).toBe(most)
    }
    expect(validateSwimConfig({ ...SWIM_DEFAULTS, healthMax: 0 })).toEqual([
      'healthMax must be an integer in [1, 64] (got 0)',
    ])
  })

  test('a refutation raises the score', () => {
    const core = makeCore('self', members)
    core.step(msg('m1', gossip(suspect('self', 1, 'm1'))), 10)
    expect(core.drain()).toContainEqual({ type: 'sign-self', incarnation: 2 })
    expect(core.localHealth()).toBe(1)
  })

  test('after a stall, a probe whose round ended meanwhile waits once for the messages read after the tick', () => {
    const core = makeCore('self', members)
    const ping = nextPing(core)
    // The process stalled: its next tick comes 2 s late, and the ack sits behind it in the socket.
    const lateAt = ping.atMs + SWIM_DEFAULTS.probeIntervalMs + 2000
    core.tick(lateAt)
    const effects = core.drain()
    expect(effects.filter(e => e.type === 'sign-suspect')).toEqual([])
    expect(core.counters.lateTicks).toBe(1)
    expect(core.counters.graced).toBe(1)
    core.step(msg(ping.to, { type: 'ack', seq: ping.seq, updates: [] }), lateAt + 5)
    // A late tick counts once per probe interval against the score, the ack once for it.
    expect(core.localHealth()).toBe(0)
    runTo(core, lateAt + 3 * SWIM_DEFAULTS.probeIntervalMs)
    expect(core.get(ping.to)!.state).toBe('alive')
    // Without the ack, the grace runs out and the probe fails as usual.
    const other = makeCore('self', members)
    const second = nextPing(other)
    other.tick(second.atMs + SWIM_DEFAULTS.probeIntervalMs + 2000)
    runTo(other, second.atMs + 2 * SWIM_DEFAULTS.probeIntervalMs + 2000)
    expect(other.counters.probesFailed).toBeGreaterThanOrEqual(1)
    expect(other.get(second.to)!.state).toBe('suspect')
  })

  test('after a stall, a suspicion that ran out meanwhile waits once for a refutation read after the tick', () => {
    const core = makeCore('self', members)
    core.step(msg('m1', gossip(suspect('m5', 1, 'm1'))), 10)
    const longest = Math.ceil(suspicionFloorMs(SWIM_DEFAULTS, 31) * SWIM_DEFAULTS.suspicionMaxScale)
    const lateAt = 10 + longest + 1500
    core.tick(lateAt)
    expect(core.get('m5')!.state).toBe('suspect')
    core.step(msg('m2', gossip(alive('m5', 2))), lateAt + 3)
    expect(core.get('m5')!.state).toBe('alive')
    // Held to its deadline, with no refutation, it is dead after the grace.
    const other = makeCore('self', members)
    other.step(msg('m1', gossip(suspect('m5', 1, 'm1'))), 10)
    other.tick(lateAt)
    other.tick(lateAt + 2 * longest)
    expect(other.get('m5')!.state).toBe('dead')
  })
})

describe('suspicion', () => {
  const members = ids(20)

  /** Naive count of a member's observers: its predecessors among the live members, over the rings. */
  function naiveObservers(target: string, live: readonly string[]): number {
    const observers = new Set<string>()
    for (let ring = 0; ring < SWIM_DEFAULTS.rings; ring++) {
      const order = [...live].sort(
        (a, b) => ringPosition(ring, a) - ringPosition(ring, b) || (a < b ? -1 : 1),
      )
      observers.add(order[(order.indexOf(target) - 1 + order.length) % order.length]!)
    }
    return observers.size
  }

  test.each([0, 1, 2, 3])(
    'Lifeguard timeout with %i confirmations: from the first accusation, dead exactly then',
    c => {
      const core = makeCore('self', members)
      const target = members.find(id => !core.neighbours().includes(id))!
      const expected = naiveObservers(target, ['self', ...members]) - 1
      const floor = suspicionFloorMs(SWIM_DEFAULTS, 21)
      core.step(msg('m1', gossip(suspect(target, 1, 'm1'))), 1000)
      expect(core.get(target)!.state).toBe('suspect')
      for (let k = 0; k < c; k++) {
        const accuser = `m${k + 2}`
        core.step(msg(accuser, gossip(suspect(target, 1, accuser))), 1100 + k)
        core.step(msg(accuser, gossip(suspect(target, 1, accuser))), 1100 + k) // the same accuser counts once
      }
      // Confirmations beyond the member's other observers do not shorten it further.
      const deadline =
        1000 + suspicionTimeoutMs(floor, SWIM_DEFAULTS.suspicionMaxScale, expected, Math.min(c, expected))
      core.tick(deadline - 1)
      expect(core.get(target)!.state).toBe('suspect')
      core.tick(deadline)
      expect(core.get(target)!.state).toBe('dead')
      expect(core.counters.declaredDead).toBe(1)
    },
  )

  test('a lone suspicion is announced again at half its timeout, so a node that missed a refutation hears it', () => {
    const core = makeCore('self', ids(20))
    const target = ids(20).find(id => !core.neighbours().includes(id))!
    const now = quiet(core, 0)
    core.step(msg('m1', gossip(suspect(target, 1, 'm1'))), now)
    const timeout = suspicionTimeoutMs(
      suspicionFloorMs(SWIM_DEFAULTS, 21),
      3,
      naiveObservers(target, ['self', ...ids(20)]) - 1,
      0,
    )
    const spreadAt = (from: number, to: number): number[] => {
      const times: number[] = []
      for (let t = from; t <= to; t += 10)
        for (const e of runTo(core, t))
          if (e.type === 'send' && e.message.updates.some(u => u.kind === 'suspect')) times.push(t)
      return times
    }
    expect(spreadAt(now, now + 1000).length).toBeGreaterThan(0)
    expect(spreadAt(now + 1010, now + Math.floor(timeout / 2) - 10)).toEqual([])
    expect(
      spreadAt(now + Math.floor(timeout / 2), now + Math.floor(timeout / 2) + 1000).length,
    ).toBeGreaterThan(0)
  })

  test('claims at another incarnation than the one held are stale; same-incarnation alive does not clear', () => {
    const core = makeCore('self', members)
    core.step(msg('m1', gossip(suspect('m5', 7, 'm1'), suspect('m5', 0, 'm1'))), 10)
    expect(core.get('m5')!.state).toBe('alive')
    expect(core.counters.updatesStale).toBe(2)
    core.step(msg('m1', gossip(suspect('m5', 1, 'm1'))), 20)
    core.step(msg('m5', gossip(alive('m5', 1))), 30) // it talking, or its record at the same incarnation
    expect(core.get('m5')!.state).toBe('suspect')
    core.step(msg('m5', gossip(alive('m5', 2))), 40)
    expect(core.get('m5')!.state).toBe('alive')
    expect(core.get('m5')!.incarnation).toBe(2)
  })

  test('a subject suspected by another is probed out of turn, at most once per interval', () => {
    const core = makeCore('self', members)
    const subject = core.neighbours()[0]!
    core.step(msg('m1', gossip(suspect(subject, 1, 'm1'))), 10)
    expect(sends(core.drain(), 'ping').map(s => s.to)).toEqual([subject])
    core.step(msg('m2', gossip(suspect(subject, 1, 'm2'))), 20)
    expect(sends(core.drain(), 'ping')).toEqual([])
  })

  test('accusations count only from members held alive and known for the longest suspicion', () => {
    const core = makeCore('self', members)
    const longest = Math.ceil(suspicionFloorMs(SWIM_DEFAULTS, 21) * SWIM_DEFAULTS.suspicionMaxScale)
    core.step(msg('m1', gossip(suspect('m6', 1, 'm1'), suspect('m8', 1, 'm1'))), 10)
    // Two late ticks: the first gives what was due once more time (it came late), by the second the
    // suspicions are over, and no probe failed (late probes get the same grace).
    core.tick(56_000)
    core.tick(60_000)
    expect(core.get('m6')!.state).toBe('dead')
    core.step(msg('m1', gossip(suspect('m9', 1, 'm1'))), 60_000) // m9 is suspect from now on
    // A dead accuser, a suspect one (both: a partition's other side speaking)…
    core.step(msg('m2', gossip(suspect('m5', 1, 'm6'), suspect('m5', 1, 'm9'))), 60_000)
    expect(core.get('m5')!.state).toBe('alive')
    // …one just taken back from the dead, until it has been alive for the longest suspicion…
    core.step(msg('m8', gossip(alive('m8', 2))), 60_000)
    core.step(msg('m2', gossip(suspect('m5', 1, 'm8'))), 60_000 + longest - 1)
    expect(core.get('m5')!.state).toBe('alive')
    core.step(msg('m2', gossip(suspect('m5', 1, 'm8'))), 60_000 + longest)
    expect(core.get('m5')!.state).toBe('suspect')
    // …and a newcomer likewise; a live member known from the start is heard at once.
    core.step(msg('m2', gossip(alive('new'))), 60_000 + longest)
    core.step(msg('m2', gossip(suspect('m4', 1, 'new'))), 60_000 + longest + 1)
    expect(core.get('m4')!.state).toBe('alive')
    core.step(msg('m2', gossip(suspect('m4', 1, 'm7'))), 60_000 + longest + 1)
    expect(core.get('m4')!.state).toBe('suspect')
  })

  test('queued news about a member dead longer than the longest suspicion is dropped, not sent on', () => {
    const all = ids(250)
    const core = makeCore('self', all)
    const now = quiet(core, 0)
    const accused = all.slice(50)
    for (let i = 0; i < accused.length; i += 8)
      core.step(msg('m0', gossip(...accused.slice(i, i + 8).map(id => suspect(id, 1, 'm0')))), now)
    const sentAt = new Map<string, number[]>()
    for (let t = now; t <= now + 60_000; t += 100)
      for (const e of runTo(core, t))
        if (e.type === 'send')
          for (const u of e.message.updates)
            if (u.kind === 'suspect') sentAt.set(u.id, [...(sentAt.get(u.id) ?? []), t])
    // Longest suspicion, pushed back once by the backlog (at most one more), then the purge.
    const longest = Math.ceil(suspicionFloorMs(SWIM_DEFAULTS, 251) * SWIM_DEFAULTS.suspicionMaxScale)
    const purgeBy = now + 3 * longest + 300
    expect(accused.every(id => core.get(id)!.state === 'dead')).toBe(true)
    // The backlog (200 suspicions at 24 per round) was cut short: some never got all their sends…
    const counts = accused.map(id => sentAt.get(id)?.length ?? 0)
    expect(Math.min(...counts)).toBeLessThan(retransmitLimit(SWIM_DEFAULTS, 251))
    // …and nothing about them went out once they had been dead for the longest suspicion.
    expect(accused.flatMap(id => sentAt.get(id) ?? []).filter(t => t > purgeBy)).toEqual([])
  })

  test('with a dissemination backlog (a mass event) a running-out suspicion gets once the time to send it', () => {
    const all = ids(250)
    const core = makeCore('self', all)
    const now = quiet(core, 0)
    const accused = all.filter(id => id !== 'm0' && !core.neighbours().includes(id)).slice(0, 100)
    for (let i = 0; i < accused.length; i += 8)
      core.step(msg('m0', gossip(...accused.slice(i, i + 8).map(id => suspect(id, 1, 'm0')))), now)
    const longest = Math.ceil(suspicionFloorMs(SWIM_DEFAULTS, 251) * SWIM_DEFAULTS.suspicionMaxScale)
    runTo(core, now + longest)
    expect(accused.every(id => core.get(id)!.state === 'suspect')).toBe(true)
    runTo(core, now + 2 * longest)
    expect(accused.every(id => core.get(id)!.state === 'dead')).toBe(true)
    // A lone suspicion (short queue) is not pushed back.
    const lone = makeCore('self', all)
    const quietAt = quiet(lone, 0)
    lone.step(msg('m0', gossip(suspect(accused[0]!, 1, 'm0'))), quietAt)
    lone.tick(quietAt + longest)
    expect(lone.get(accused[0]!)!.state).toBe('dead')
  })

  test('a node held dead that talks to us is told of its suspicion (once per interval)', () => {
    const core = makeCore('self', members)
    core.step(msg('m1', gossip(suspect('m5', 1, 'm1'))), 10)
    runTo(core, 60_000)
    expect(core.get('m5')!.state).toBe('dead')
    core.step(msg('m5', { type: 'ping', seq: 3, updates: [] }), 60_000)
    const out = sends(core.drain())
    expect(out).toContainEqual({ to: 'm5', message: gossip(suspect('m5', 1, 'm1')) })
    expect(out).toContainEqual({ to: 'm5', message: { type: 'ack', seq: 3, updates: [] } })
    core.step(msg('m5', { type: 'ping', seq: 4, updates: [] }), 60_100)
    expect(sends(core.drain(), 'gossip')).toEqual([])
  })
})

describe('refutation', () => {
  test('suspected at its own incarnation (or above): sign-self at +1 only, once; the new record spreads', () => {
    const core = makeCore('self', ids(10))
    quiet(core, 0)
    core.step(msg('m1', gossip(suspect('self', 1, 'm2'))), 5000)
    core.step(msg('m3', gossip(suspect('self', 999, 'm3'))), 5001)
    expect(core.drain().filter(e => e.type === 'sign-self')).toEqual([{ type: 'sign-self', incarnation: 2 }])
    expect(core.counters.refutations).toBe(1)
    core.step({ type: 'local', incarnation: 2, record: { id: 'self', inc: 2 } }, 5002)
    const direct = sends(core.drain(), 'gossip')
    // Straight to whoever told us, then by dissemination.
    expect(direct.map(s => s.to).sort()).toEqual(['m1', 'm3'])
    const spread = sends(runTo(core, 5300), 'gossip').flatMap(s => s.message.updates)
    expect(spread).toContainEqual(alive('self', 2))
  })

  test('an old suspicion about itself is answered with its current record, not a new incarnation', () => {
    const core = makeCore('self', ids(10))
    core.step({ type: 'local', incarnation: 5, record: { id: 'self', inc: 5 } }, 1)
    core.drain()
    core.step(msg('m1', gossip(suspect('self', 3, 'm2'))), 10)
    const out = core.drain()
    expect(out.filter(e => e.type === 'sign-self')).toEqual([])
    expect(sends(out, 'gossip')).toEqual([{ to: 'm1', message: gossip(alive('self', 5)) }])
  })

  test('a node behind on someone else gets the newer record back', () => {
    const core = makeCore('self', ids(10))
    core.step(msg('m2', gossip(alive('m2', 4))), 1)
    core.drain()
    core.step(msg('m1', gossip(suspect('m2', 2, 'm1'))), 10)
    expect(sends(core.drain(), 'gossip')).toEqual([{ to: 'm1', message: gossip(alive('m2', 4)) }])
  })
})

describe('records and the table', () => {
  test('a goodbye makes a member left at once; dead and left members are forgotten after forgetAfterMs', () => {
    const core = makeCore('self', ids(10))
    core.step(msg('m1', gossip(alive('m4', 2, true))), 100)
    expect(core.drain()).toContainEqual({ type: 'state', id: 'm4', from: 'alive', to: 'left' })
    expect(core.neighbours()).not.toContain('m4')
    expect(core.wants('m4', 2)).toBe(false)
    const removed = runTo(core, 100 + SWIM_DEFAULTS.forgetAfterMs).filter(e => e.type === 'removed')
    expect(removed).toEqual([{ type: 'removed', id: 'm4', reason: 'forgotten' }])
    expect(core.get('m4')).toBeUndefined()
  })

  test('membersMax: a newcomer evicts the member down the longest, else is refused and counted', () => {
    const core = makeCore('self', ['a', 'b', 'c'], { config: { membersMax: 4 } })
    expect(core.wants('d', 1)).toBe(false)
    core.step(msg('a', gossip(alive('d'))), 1)
    expect(core.get('d')).toBeUndefined()
    expect(core.counters.tableFull).toBe(1)
    core.step(msg('a', gossip(alive('c', 2, true))), 2) // c leaves: its slot may go
    expect(core.wants('d', 1)).toBe(true)
    core.step(msg('a', gossip(alive('d'))), 3)
    expect(core.drain()).toContainEqual({ type: 'removed', id: 'c', reason: 'evicted' })
    expect(core.get('d')!.state).toBe('alive')
    expect(core.size).toBe(4)
  })

  test('revocation removes a member at once and refuses its records and messages from then on', () => {
    const core = makeCore('self', ids(5))
    core.step({ type: 'revoke', id: 'm2' }, 1)
    expect(core.drain()).toContainEqual({ type: 'removed', id: 'm2', reason: 'revoked' })
    expect(core.wants('m2', 99)).toBe(false)
    core.step(msg('m1', gossip(alive('m2', 99))), 2)
    core.step(msg('m2', { type: 'ping', seq: 1, updates: [alive('m9')] }), 3)
    expect(core.get('m2')).toBeUndefined()
    expect(core.get('m9')).toBeUndefined()
    expect(sends(core.drain())).toEqual([])
    expect(core.counters.unknownSenders).toBe(2)
  })

  test('wants: only news (higher incarnation, or a new id with room), never self or a revoked id', () => {
    const core = makeCore('self', ['a'])
    expect(core.wants('a', 1)).toBe(false)
    expect(core.wants('a', 2)).toBe(true)
    expect(core.wants('new', 1)).toBe(true)
    expect(core.wants('self', 50)).toBe(false)
    expect(core.wants('a', -1)).toBe(false)
    expect(core.wants('a', 2 ** 60)).toBe(false)
  })
})

describe('dissemination', () => {
  test('news is gossiped every gossipIntervalMs to ≤ fanout neighbours, sent retransmitLimit times, then silence', () => {
    const core = makeCore('self', ids(40))
    let now = quiet(core, 0)
    expect(core.nextDeadlineMs()).toBeGreaterThan(now + SWIM_DEFAULTS.gossipIntervalMs) // idle: probes only
    core.step(msg('m1', gossip(alive('m7', 2))), now)
    let sent = 0
    const rounds: number[] = []
    for (let i = 0; i < 60; i++, now += 50) {
      for (const effect of runTo(core, now)) {
        if (effect.type !== 'send') continue
        const count = effect.message.updates.filter(u => u.id === 'm7').length
        sent += count
        if (effect.message.type === 'gossip') rounds.push(now)
      }
    }
    expect(sent).toBe(retransmitLimit(SWIM_DEFAULTS, 41))
    const perRound = new Map<number, number>()
    for (const at of rounds) perRound.set(at, (perRound.get(at) ?? 0) + 1)
    expect(Math.max(...perRound.values())).toBeLessThanOrEqual(SWIM_DEFAULTS.gossipFanout)
    const times = [...perRound.keys()]
    for (let i = 1; i < times.length; i++)
      expect(times[i]! - times[i - 1]!).toBeGreaterThanOrEqual(SWIM_DEFAULTS.gossipIntervalMs - 50)
    expect(core.nextDeadlineMs()).toBeGreaterThan(now) // queue empty again: no gossip deadline
  })

  test('a newer update about an id replaces the queued one; piggyback holds at most piggybackMax', () => {
    const core = makeCore('self', ids(40))
    const now = quiet(core, 0)
    core.step(
      msg(
        'm1',
        gossip(
          ...ids(12)
            .slice(2)
            .map(id => alive(id, 2)),
        ),
      ),
      now,
    )
    core.step(msg('m1', gossip(alive('m5', 3))), now)
    const first = sends(runTo(core, now), 'gossip')[0]!.message.updates
    expect(first.length).toBe(SWIM_DEFAULTS.piggybackMax)
    expect(first).toContainEqual(alive('m5', 3)) // newest first
    const all = sends(runTo(core, now + 5000)).flatMap(s => s.message.updates)
    expect(all).not.toContainEqual(alive('m5', 2))
  })

  test('queueMax: when full, the most transmitted update goes, counted', () => {
    const core = makeCore('self', ids(40), { config: { queueMax: 4 } })
    const now = quiet(core, 0)
    core.step(msg('m1', gossip(alive('m2', 2), alive('m3', 2))), now)
    runTo(core, now) // one gossip round: both transmitted
    core.step(msg('m1', gossip(alive('m4', 2), alive('m5', 2), alive('m6', 2))), now + 1)
    expect(core.counters.updatesDropped).toBe(1)
    const later = sends(runTo(core, now + 10_000)).flatMap(s => s.message.updates.map(u => u.id))
    expect(later).toContain('m6')
  })

  test('messages stay under messageBytesMax; an update that can never fit is dropped and counted', () => {
    const bytes = (u: Update): number => (u.id === 'm9' ? 5000 : 300)
    const core = makeCore('self', ids(40), { updateBytes: bytes, messageBytesMax: 1024 })
    const now = quiet(core, 0)
    core.step(msg('m1', gossip(...['m2', 'm3', 'm4', 'm5', 'm9'].map(id => alive(id, 2)))), now)
    const out = sends(runTo(core, now + 5000))
    for (const { message } of out) {
      const total = message.updates.reduce((sum, u) => sum + bytes(u), 0)
      expect(total).toBeLessThanOrEqual(1024)
    }
    expect(out.flatMap(s => s.message.updates.map(u => u.id))).not.toContain('m9')
    expect(core.counters.updatesDropped).toBeGreaterThanOrEqual(1)
  })
})

describe('push-pull', () => {
  test('contact starts one exchange per syncIntervalMs; the request carries our digest and record', () => {
    const core = makeCore('self', ['a', 'b'])
    core.step({ type: 'contact', id: 'x' }, 10)
    const [request] = sends(core.drain(), 'sync')
    expect(request!.to).toBe('x')
    expect(request!.message).toMatchObject({ reply: false, updates: [alive('self')] })
    const digest = request!.message.type === 'sync' ? request!.message.digest.map(e => e.id) : []
    expect(digest.sort()).toEqual(['a', 'b', 'self'])
    core.step({ type: 'contact', id: 'x' }, 1000)
    expect(sends(core.drain())).toEqual([])
    core.step({ type: 'contact', id: 'x' }, 10 + SWIM_DEFAULTS.syncIntervalMs)
    expect(sends(core.drain(), 'sync').length).toBe(1)
  })

  test('a member held dead that connects again gets an exchange within two probe periods, not a sync interval', () => {
    const core = makeCore('self', ['a', 'b', 'c'])
    core.step({ type: 'contact', id: 'a' }, 10)
    expect(sends(core.drain(), 'sync').map(s => s.to)).toEqual(['a'])
    // a is then declared dead (a partition): suspected by b, the timeout runs out.
    core.step(msg('b', gossip(suspect('a', 1, 'b'))), 20)
    core.tick(20 + 10_000)
    core.tick(20 + 20_000)
    expect(core.get('a')!.state).toBe('dead')
    core.drain()
    // The partition heals and a connects again, long before a sync interval has passed.
    const at = 20 + 20_000 + 2 * SWIM_DEFAULTS.probeIntervalMs
    core.step({ type: 'contact', id: 'a' }, at)
    expect(sends(core.drain(), 'sync').map(s => s.to)).toEqual(['a'])
    // A live member synced as recently is still left alone.
    core.step({ type: 'contact', id: 'b' }, at)
    expect(sends(core.drain(), 'sync').map(s => s.to)).toEqual(['b'])
    core.step({ type: 'contact', id: 'b' }, at + 2 * SWIM_DEFAULTS.probeIntervalMs)
    expect(sends(core.drain(), 'sync')).toEqual([])
  })

  test('the responder sends what the digest lacks or holds older, and suspicions; the closing leg is not answered', () => {
    const core = makeCore('self', ['a', 'b', 'c'])
    core.step(msg('a', gossip(alive('b', 3), suspect('c', 1, 'a'))), 1)
    core.drain()
    const request: Message = {
      type: 'sync',
      reply: false,
      digest: [
        { id: 'j', incarnation: 1, state: 'alive' },
        { id: 'b', incarnation: 2, state: 'alive' },
        { id: 'c', incarnation: 1, state: 'alive' },
        { id: 'self', incarnation: 1, state: 'alive' },
      ],
      updates: [alive('j')],
    }
    core.step(msg('j', request), 10)
    const [reply] = sends(core.drain(), 'sync')
    expect(reply!.to).toBe('j')
    expect(reply!.message).toMatchObject({ reply: true })
    expect(reply!.message.updates).toEqual(
      expect.arrayContaining([alive('a'), alive('b', 3), suspect('c', 1, 'a')]),
    )
    expect(reply!.message.updates.map(u => u.id)).not.toContain('self')
    expect(core.get('j')!.state).toBe('alive')
    core.step(msg('j', { type: 'sync', reply: true, digest: [], updates: [alive('k')] }), 20)
    expect(sends(core.drain())).toEqual([])
    expect(core.get('k')!.state).toBe('alive')
  })

  test('a truncated reply is followed by another exchange gossipIntervalMs later, while it makes progress', () => {
    const core = makeCore('self', [], { updateBytes: () => 400, messageBytesMax: 1024 })
    core.step({ type: 'contact', id: 'big' }, 0)
    core.drain()
    const held = ids(10)
    const digest = [
      { id: 'big', incarnation: 1, state: 'alive' as const },
      ...held.map(id => ({ id, incarnation: 1, state: 'alive' as const })),
    ]
    core.step(msg('big', { type: 'sync', reply: true, digest, updates: [alive('big'), alive('m0')] }), 5)
    core.drain()
    const syncsTo = (effects: Effect[]): string[] => sends(effects, 'sync').map(s => s.to)
    expect(syncsTo(runTo(core, 5 + SWIM_DEFAULTS.gossipIntervalMs - 1))).toEqual([])
    expect(syncsTo(runTo(core, 5 + SWIM_DEFAULTS.gossipIntervalMs))).toEqual(['big'])
    // No progress (nothing applied): no further follow-up.
    core.step(msg('big', { type: 'sync', reply: true, digest, updates: [] }), 300)
    core.drain()
    expect(syncsTo(runTo(core, 2000))).toEqual([])
  })

  test('deaths the peer has not seen go out as at most piggybackMax suspicions per exchange', () => {
    const members = ids(30)
    const core = makeCore('self', members)
    for (const id of members.slice(10)) core.step(msg('m0', gossip(suspect(id, 1, 'm0'))), 1)
    runTo(core, 60_000)
    expect(members.slice(10).every(id => core.get(id)!.state === 'dead')).toBe(true)
    const digest = ['self', ...members].map(id => ({ id, incarnation: 1, state: 'alive' as const }))
    core.step(msg('m1', { type: 'sync', reply: false, digest, updates: [] }), 60_000)
    const [reply] = sends(core.drain(), 'sync')
    expect(reply!.message.updates.filter(u => u.kind === 'suspect').length).toBe(SWIM_DEFAULTS.piggybackMax)
  })

  test('a suspicion learnt by push-pull runs our own timer and is told to the member, not gossiped', () => {
    const core = makeCore('self', ids(20))
    const now = quiet(core, 0)
    core.step({ type: 'contact', id: 'm1' }, now)
    core.drain()
    const digest = [{ id: 'm1', incarnation: 1, state: 'alive' as const }]
    core.step(msg('m1', { type: 'sync', reply: true, digest, updates: [suspect('m4', 1, 'm1')] }), now + 5)
    expect(core.get('m4')!.state).toBe('suspect')
    expect(sends(core.drain(), 'gossip')).toEqual([{ to: 'm4', message: gossip(suspect('m4', 1, 'm1')) }])
    const later = sends(runTo(core, now + 1000)).flatMap(s => s.message.updates)
    expect(later.filter(u => u.kind === 'suspect' && u.id === 'm4')).toEqual([])
  })

  test('an unsolicited reply is applied but not answered', () => {
    const core = makeCore('self', ['a'])
    const reply: Message = {
      type: 'sync',
      reply: true,
      digest: [{ id: 'a', incarnation: 1, state: 'alive' }],
      updates: [alive('z')],
    }
    core.step(msg('a', reply), 5)
    expect(sends(core.drain())).toEqual([])
    expect(core.get('z')!.state).toBe('alive')
  })
})

describe('strangers, bounds and leaving', () => {
  test('a stranger is acked and asked for a push-pull, but none of its updates are taken', () => {
    const core = makeCore('self', ['a'])
    core.step(msg('s', { type: 'ping', seq: 9, updates: [alive('q')] }), 10)
    const out = sends(core.drain())
    expect(out.map(s => [s.to, s.message.type])).toEqual([
      ['s', 'ack'],
      ['s', 'sync'],
    ])
    core.step(msg('s', gossip(alive('q'))), 500)
    expect(core.get('q')).toBeUndefined()
    expect(core.counters.unknownSenders).toBe(2)
    expect(sends(core.drain(), 'sync')).toEqual([]) // one push-pull per stranger per interval
  })

  test('numbers and lists from messages are bounded before use', () => {
    const core = makeCore('self', ['a', 'b'])
    for (const seq of [-1, 1.5, Number.NaN, 2 ** 60])
      core.step(msg('a', { type: 'ping', seq, updates: [] }), 1)
    expect(sends(core.drain())).toEqual([])
    const many = Array.from({ length: 100 }, (_, i) => alive(`x${i}`))
    core.step(msg('a', gossip(...many)), 2)
    expect(core.size).toBe(3 + SWIM_DEFAULTS.piggybackMax)
    const junk = [
      { kind: 'alive', id: '', incarnation: 1, left: false },
      { kind: 'what' },
      null,
    ] as unknown as Update[]
    core.step(msg('a', gossip(...junk)), 3)
    expect(core.counters.updatesStale).toBe(3)
    expect(() => core.tick(0)).toThrow(SwimInvariantError) // time went backwards
  })

  test('leave: the goodbye goes to every neighbour at once, probing stops', () => {
    const core = makeCore('self', ids(20))
    runTo(core, 3000)
    const neighbours = core.neighbours()
    core.step({ type: 'leave', incarnation: 2, record: { id: 'self', inc: 2 } }, 3000)
    const out = core.drain()
    expect(out).toContainEqual({ type: 'state', id: 'self', from: 'alive', to: 'left' })
    const goodbyes = sends(out, 'gossip')
    expect(goodbyes.map(s => s.to).sort()).toEqual([...neighbours].sort())
    for (const g of goodbyes) expect(g.message.updates).toContainEqual(alive('self', 2, true))
    expect(sends(runTo(core, 20_000), 'ping')).toEqual([])
    expect(() =>
      core.step({ type: 'leave', incarnation: 1, record: { id: 'self', inc: 1 } }, 20_000),
    ).not.toThrow()
    const fresh = makeCore('x', ['a'])
    expect(() => fresh.step({ type: 'leave', incarnation: 1, record: { id: 'x', inc: 1 } }, 1)).toThrow(
      SwimInvariantError,
    )
  })
})

describe('deadlines', () => {
  /** A random script of inputs a core may see, at increasing times. */
  const script = fc.array(
    fc.tuple(
      fc.integer({ min: 0, max: 700 }),
      fc.oneof(
        fc.record({
          kind: fc.constant('ping' as const),
          from: fc.integer({ min: 0, max: 9 }),
          seq: fc.nat(50),
        }),
        fc.record({
          kind: fc.constant('ack' as const),
          from: fc.integer({ min: 0, max: 9 }),
          seq: fc.nat(50),
        }),
        fc.record({
          kind: fc.constant('suspect' as const),
          about: fc.integer({ min: 0, max: 9 }),
          from: fc.integer({ min: 0, max: 9 }),
        }),
        fc.record({
          kind: fc.constant('refresh' as const),
          about: fc.integer({ min: 0, max: 9 }),
          inc: fc.integer({ min: 1, max: 4 }),
        }),
        fc.record({ kind: fc.constant('contact' as const), about: fc.integer({ min: 0, max: 12 }) }),
        fc.record({ kind: fc.constant('self-suspect' as const), from: fc.integer({ min: 0, max: 9 }) }),
      ),
    ),
    { maxLength: 60 },
  )

  test('ticking only at nextDeadlineMs() gives exactly the effects of also ticking at random times', () => {
    fc.assert(
      fc.property(
        script,
        fc.array(fc.integer({ min: 1, max: 400 }), { minLength: 1, maxLength: 30 }),
        (events, extras) => {
          const exact = makeCore('self', ids(10), { seed: 3 })
          const eager = makeCore('self', ids(10), { seed: 3 })
          let now = 0
          let extra = 0
          const same = (): void => expect(eager.drain()).toEqual(exact.drain())
          const advance = (to: number): void => {
            for (;;) {
              const at = exact.nextDeadlineMs()
              expect(eager.nextDeadlineMs()).toBe(at)
              // The eager driver also ticks at points before the deadline: nothing may happen there.
              const poke = now + extras[extra++ % extras.length]!
              if (poke < Math.min(at, to)) {
                eager.tick(poke)
                expect(eager.drain()).toEqual([])
                now = poke
                continue
              }
              if (at > to) break
              exact.tick(at)
              eager.tick(at)
              same()
              now = at
            }
            now = to
          }
          for (const [gap, event] of events) {
            advance(now + gap)
            let input: SwimInput<Rec, Proof>
            if (event.kind === 'ping' || event.kind === 'ack')
              input = msg(`m${event.from}`, { type: event.kind, seq: event.seq, updates: [] })
            else if (event.kind === 'suspect')
              input = msg(
                `m${event.from}`,
                gossip(
                  suspect(
                    `m${event.about}`,
                    exact.get(`m${event.about}`)?.incarnation ?? 1,
                    `m${event.from}`,
                  ),
                ),
              )
            else if (event.kind === 'refresh')
              input = msg(`m${event.about}`, gossip(alive(`m${event.about}`, event.inc)))
            else if (event.kind === 'contact') input = { type: 'contact', id: `m${event.about}` }
            else
              input = msg(
                `m${event.from}`,
                gossip(suspect('self', exact.get('self')!.incarnation, `m${event.from}`)),
              )
            exact.step(input, now)
            eager.step(input, now)
            same()
          }
          advance(now + 60_000)
          expect(eager.members()).toEqual(exact.members())
        },
      ),
      { numRuns: 40 },
    )
  })
})
