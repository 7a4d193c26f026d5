/**
 * Connection upkeep on a manual clock with a fake host: a node alone in the mesh dials its bootstrap
 * address every round at first, then, while the address keeps failing, less and less often (doubling
 * waits with jitter, never more than DIAL_BACKOFF_MAX_MS × 1.5 apart), and at once again after a dial
 * that succeeded; neighbour dials are never held back.
 */
import type { PeerId } from '@libp2p/interface'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import { describe, expect, it } from 'vitest'
import type { MemberView } from '../../src/membership/view.js'
import { createManualClock, createSeededRandom } from '../../src/node/clock.js'
import { createConnections, DIAL_BACKOFF_MAX_MS } from '../../src/node/connections.js'
import type { Host } from '../../src/node/host.js'
import { libp2pKeyOf } from '../../src/node/keys.js'
import { silentLogger } from '../../src/node/log.js'
import { randomKey } from './harness.js'

const UPKEEP_MS = 2_000
const BOOTSTRAP = '/ip4/127.0.0.1/tcp/4001/p2p/12D3KooWRPgQ4hAn412rpbY7nYd7PLpXsHDH6QYgfEexJPHk5zqJ'

/** A host with no connections whose dials all settle (failing unless `succeed` says so) when `settle` runs. */
function fakeHost(self: PeerId) {
  const dials: { target: string; atMs: number }[] = []
  const pending: Array<() => void> = []
  let succeed = false
  const host = {
    peerId: self,
    getConnections: () => [],
    services: { pubsub: { getPeers: () => [] } },
    addEventListener: () => {},
    removeEventListener: () => {},
    hangUp: async () => {},
    dial: (target: PeerId | { toString(): string }[]) =>
      new Promise<void>((resolve, reject) => {
        dials.push({ target: Array.isArray(target) ? String(target[0]) : String(target), atMs: now() })
        pending.push(() => (succeed ? resolve() : reject(new Error('connection refused'))))
      }),
  } as unknown as Host
  let now = () => 0
  return {
    host,
    dials,
    setNow: (fn: () => number) => {
      now = fn
    },
    succeedFromNowOn: () => {
      succeed = true
    },
    /** Settles every dial in flight and lets their handlers run. */
    settle: async () => {
      for (const fn of pending.splice(0)) fn()
      for (let i = 0; i < 5; i++) await Promise.resolve()
    },
  }
}

async function alone(members: () => MemberView[] = () => [], neighbours: () => string[] = () => []) {
  const clock = createManualClock()
  const self = peerIdFromPrivateKey(libp2pKeyOf(randomKey()))
  const fake = fakeHost(self)
  fake.setNow(() => clock.monotonicMs())
  const connections = createConnections(
    {
      host: fake.host,
      members,
      neighbours,
      remembered: () => [],
      clock,
      random: createSeededRandom(7),
      log: silentLogger(),
    },
    { bootstrap: [BOOTSTRAP], helloTimeoutMs: 5_000, upkeepIntervalMs: UPKEEP_MS },
  )
  /** Runs `ms` of upkeep rounds, settling each round's dials before the next. */
  const run = async (ms: number) => {
    for (let t = 0; t < ms; t += UPKEEP_MS) {
      await fake.settle()
      clock.advance(UPKEEP_MS)
    }
    await fake.settle()
  }
  return { clock, fake, connections, run }
}

describe('connection upkeep', () => {
  it('backs off a bootstrap address that keeps failing, and dials it every round again after a success', async () => {
    const { fake, connections, run } = await alone()
    connections.start()
    await run(10 * 60_000)
    const times = fake.dials.filter(d => d.target === BOOTSTRAP).map(d => d.atMs)
    const gaps = times.slice(1).map((t, i) => t - times[i]!)
    // First retries come within a round or two, later ones far apart, none beyond the cap (with jitter).
    expect(gaps[0]).toBeLessThanOrEqual(2 * UPKEEP_MS)
    expect(Math.max(...gaps)).toBeLessThanOrEqual(1.5 * DIAL_BACKOFF_MAX_MS + UPKEEP_MS)
    const late = gaps.slice(-5)
    for (const gap of late) expect(gap).toBeGreaterThanOrEqual(0.5 * DIAL_BACKOFF_MAX_MS)
    // Ten minutes alone: about 20 tries at the cap instead of 300 (one per round).
    expect(times.length).toBeLessThan(40)
    expect(connections.dialsDeferred()).toBeGreaterThan(200)
    // Once a dial succeeds, its back-off is forgotten: the next rounds may dial at once again.
    fake.succeedFromNowOn()
    await run(DIAL_BACKOFF_MAX_MS * 2)
    const before = fake.dials.length
    await run(3 * UPKEEP_MS)
    expect(fake.dials.length - before).toBeGreaterThanOrEqual(2)
    connections.stop()
  })

  it('never holds back a dial to a membership neighbour', async () => {
    const neighbour = peerIdFromPrivateKey(libp2pKeyOf(randomKey())).toString()
    const member: MemberView = {
      name: 'n1',
      peerId: neighbour,
      zone: 'web',
      roles: ['agent'],
      addrs: ['/ip4/127.0.0.1/tcp/4002'],
      state: 'alive',
      lastSeenMs: 0,
      facts: {},
    }
    const { fake, connections, run } = await alone(
      () => [member],
      () => [neighbour],
    )
    connections.start()
    await run(20 * UPKEEP_MS)
    const toNeighbour = fake.dials.filter(d => d.target.includes(neighbour))
    // One dial per round (each fails before the next round starts).
    expect(toNeighbour.length).toBeGreaterThanOrEqual(20)
    connections.stop()
  })
})
