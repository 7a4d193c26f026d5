// Proves the traffic counters (src/node/traffic.ts) on a manual clock: totals per protocol and
// direction; rates over the window from the ring of buckets (steady traffic reads as its rate whether
// the snapshot falls on a bucket edge or inside one, a node younger than the window is not under-read,
// idle traffic decays to zero while totals stay); the bounded name table; the gossip breakdown left out
// of the total; the gossip adapters (publications, gossipsub's metrics hooks); and, as a property,
// that the ring keeps exactly the traffic of the buckets a naive list of every event puts in the window.
import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { createManualClock } from '../../src/node/clock.js'
import { countedPublish, gossipsubTrafficMetrics, gossipTrafficName } from '../../src/node/gossip-traffic.js'
import { TOPICS } from '../../src/node/host.js'
import {
  createTraffic,
  TRAFFIC_BUCKETS,
  TRAFFIC_OTHER,
  TRAFFIC_PROTOCOLS_MAX,
  TRAFFIC_WINDOW_MS_DEFAULT,
} from '../../src/node/traffic.js'

describe('traffic counters', () => {
  it('counts messages and bytes per protocol and direction since the start', () => {
    const clock = createManualClock()
    const traffic = createTraffic({ clock })
    traffic.count('authority', 'in', 100)
    traffic.count('authority', 'in', 50)
    traffic.count('authority', 'out', 70)
    traffic.count('hello', 'out', 1_000)
    clock.advance(60_000)
    const { protocols, total, windowMs } = traffic.snapshot()
    expect(windowMs).toBe(TRAFFIC_WINDOW_MS_DEFAULT)
    expect(Object.keys(protocols)).toEqual(['authority', 'hello'])
    expect(protocols.authority).toMatchObject({ msgsIn: 2, bytesIn: 150, msgsOut: 1, bytesOut: 70 })
    expect(protocols.hello).toMatchObject({ msgsIn: 0, bytesIn: 0, msgsOut: 1, bytesOut: 1_000 })
    expect(total).toMatchObject({ msgsIn: 2, bytesIn: 150, msgsOut: 2, bytesOut: 1_070 })
    // A minute later nothing is recent any more.
    expect(total).toMatchObject({ msgsInPerS: 0, msgsOutPerS: 0, bytesInPerS: 0, bytesOutPerS: 0 })
  })

  it('reads steady traffic as its rate, on a bucket edge and inside a bucket', () => {
    const clock = createManualClock()
    const traffic = createTraffic({ clock })
    // 10 messages of 100 bytes a second, in, and 2 out, for 20 s.
    for (let i = 0; i < 200; i++) {
      traffic.count('replies', 'in', 100)
      if (i % 5 === 0) traffic.count('replies', 'out', 10)
      clock.advance(100)
    }
    const edge = traffic.snapshot().protocols.replies
    expect(edge).toMatchObject({ msgsInPerS: 10, bytesInPerS: 1_000, msgsOutPerS: 2, bytesOutPerS: 20 })
    for (let i = 0; i < 5; i++) {
      traffic.count('replies', 'in', 100)
      clock.advance(100)
    }
    expect(traffic.snapshot().protocols.replies).toMatchObject({ msgsInPerS: 10, bytesInPerS: 1_000 })
  })

  it('does not under-read a node younger than the window', () => {
    const clock = createManualClock()
    clock.advance(12_345)
    const traffic = createTraffic({ clock })
    for (let i = 0; i < 5; i++) {
      traffic.count('membership', 'out', 200)
      clock.advance(100)
    }
    expect(traffic.snapshot().protocols.membership).toMatchObject({ msgsOutPerS: 10, bytesOutPerS: 2_000 })
  })

  it('decays to zero when idle and keeps the totals', () => {
    const clock = createManualClock()
    const traffic = createTraffic({ clock, windowMs: 1_000 })
    for (let i = 0; i < 10; i++) {
      traffic.count('authority', 'out', 10)
      clock.advance(100)
    }
    expect(traffic.snapshot().protocols.authority?.msgsOutPerS).toBe(10)
    clock.advance(500)
    // Half the window idle: the 4 messages of its last 900 ms (600..900) are left in it.
    expect(traffic.snapshot().protocols.authority?.msgsOutPerS).toBe(4.444)
    clock.advance(1_000)
    expect(traffic.snapshot().protocols.authority).toMatchObject({
      msgsOut: 10,
      bytesOut: 100,
      msgsOutPerS: 0,
    })
  })

  it('keeps at most TRAFFIC_PROTOCOLS_MAX names and counts the rest as other', () => {
    const clock = createManualClock()
    const traffic = createTraffic({ clock })
    for (let i = 0; i < TRAFFIC_PROTOCOLS_MAX + 10; i++) traffic.count(`p${i}`, 'in', 1)
    traffic.count('p0', 'in', 1) // a known name still has its own row
    const { protocols, total } = traffic.snapshot()
    expect(Object.keys(protocols)).toHaveLength(TRAFFIC_PROTOCOLS_MAX)
    expect(protocols[TRAFFIC_OTHER]?.msgsIn).toBe(11)
    expect(protocols.p0?.msgsIn).toBe(2)
    expect(total.msgsIn).toBe(TRAFFIC_PROTOCOLS_MAX + 11)
  })

  it('leaves the gossip topic breakdown out of the total', () => {
    const clock = createManualClock()
    const traffic = createTraffic({ clock })
    traffic.count('gossipsub', 'out', 300) // the RPC on the wire...
    traffic.count('gossip:request', 'out', 250) // ...carrying this request
    traffic.count('authority', 'out', 40)
    const { protocols, total } = traffic.snapshot()
    expect(protocols['gossip:request']?.bytesOut).toBe(250)
    expect(total).toMatchObject({ msgsOut: 2, bytesOut: 340 })
  })

  it('refuses a bad window and a bad byte count (assertions)', () => {
    const clock = createManualClock()
    expect(() => createTraffic({ clock, windowMs: 0 })).toThrow(/assertion/)
    expect(() => createTraffic({ clock, windowMs: Number.NaN })).toThrow(/assertion/)
    const traffic = createTraffic({ clock })
    expect(() => traffic.count('hello', 'in', -1)).toThrow(/assertion/)
    expect(() => traffic.count('hello', 'in', Number.NaN)).toThrow(/assertion/)
  })

  it('keeps exactly the buckets a naive event list says are inside the window (property)', () => {
    const windowMs = 2_000
    const bucketMs = windowMs / TRAFFIC_BUCKETS
    fc.assert(
      fc.property(
        fc.array(
          fc.record({
            waitMs: fc.integer({ min: 0, max: 700 }),
            protocol: fc.constantFrom('a', 'b'),
            direction: fc.constantFrom<'in' | 'out'>('in', 'out'),
            bytes: fc.integer({ min: 0, max: 5_000 }),
          }),
          { maxLength: 200 },
        ),
        fc.integer({ min: 0, max: 3_000 }),
        (events, finalWaitMs) => {
          const clock = createManualClock()
          const traffic = createTraffic({ clock, windowMs })
          const seen: Array<{ atMs: number; protocol: string; direction: 'in' | 'out'; bytes: number }> = []
          for (const e of events) {
            clock.advance(e.waitMs)
            traffic.count(e.protocol, e.direction, e.bytes)
            seen.push({ atMs: clock.monotonicMs(), ...e })
          }
          clock.advance(finalWaitMs)
          const nowMs = clock.monotonicMs()
          const current = Math.floor(nowMs / bucketMs)
          const coveredMs = Math.min((TRAFFIC_BUCKETS - 1) * bucketMs + (nowMs % bucketMs), nowMs)
          const snapshot = traffic.snapshot()
          for (const protocol of ['a', 'b']) {
            const mine = seen.filter(e => e.protocol === protocol)
            const row = snapshot.protocols[protocol]
            if (mine.length === 0) {
              expect(row).toBeUndefined()
              continue
            }
            const recent = mine.filter(e => Math.floor(e.atMs / bucketMs) > current - TRAFFIC_BUCKETS)
            const sum = (list: typeof seen, d: 'in' | 'out', f: (e: (typeof seen)[0]) => number) =>
              list.filter(e => e.direction === d).reduce((n, e) => n + f(e), 0)
            const rate = (n: number) => (coveredMs > 0 ? Math.round((n * 1000 * 1000) / coveredMs) / 1000 : 0)
            expect(row).toEqual({
              msgsIn: sum(mine, 'in', () => 1),
              msgsOut: sum(mine, 'out', () => 1),
              bytesIn: sum(mine, 'in', e => e.bytes),
              bytesOut: sum(mine, 'out', e => e.bytes),
              msgsInPerS: rate(sum(recent, 'in', () => 1)),
              msgsOutPerS: rate(sum(recent, 'out', () => 1)),
              bytesInPerS: rate(sum(recent, 'in', e => e.bytes)),
              bytesOutPerS: rate(sum(recent, 'out', e => e.bytes)),
            })
          }
        },
      ),
    )
  })
})

describe('gossip traffic', () => {
  it('names our topics and counts publications once each, after they went out', async () => {
    expect(gossipTrafficName(TOPICS.request)).toBe('gossip:request')
    expect(gossipTrafficName('someone/else')).toBe('gossip:other')
    const traffic = createTraffic({ clock: createManualClock() })
    const publish = countedPublish({ publish: async () => ({ recipients: [] }) }, traffic)
    await publish(TOPICS.roster, new Uint8Array(12))
    const failing = countedPublish({ publish: async () => Promise.reject(new Error('no')) }, traffic)
    await expect(failing(TOPICS.roster, new Uint8Array(5))).rejects.toThrow('no')
    expect(traffic.snapshot().protocols['gossip:roster']).toMatchObject({ msgsOut: 1, bytesOut: 12 })
  })

  it('takes gossipsub RPC bytes from its metrics hooks and ignores every other metric', () => {
    const traffic = createTraffic({ clock: createManualClock() })
    const register = gossipsubTrafficMetrics(traffic)
    const sent = register.gauge({ name: 'gossipsub_rpc_sent_bytes_total', help: '' })
    const received = register.gauge({ name: 'gossipsub_rpc_recv_bytes_total', help: '' })
    const other = register.gauge<{ topic: string }>({ name: 'gossipsub_x', help: '', labelNames: ['topic'] })
    sent.inc(120)
    received.inc(80)
    received.inc(8)
    other.inc({ topic: 't' }, 5)
    register.histogram({ name: 'h', help: '' }).startTimer()()
    expect(traffic.snapshot().protocols).toEqual({
      gossipsub: expect.objectContaining({ msgsOut: 1, bytesOut: 120, msgsIn: 2, bytesIn: 88 }),
    })
  })
})
