/**
 * Proves the membership driver's heartbeat loop and presence verdicts on a manual clock, with a fake
 * `publish` that records what was sent and when: the first beat at start then one per interval, the
 * period stretching with the number of alive members (capped at HEARTBEAT_STRETCH_MAX, shrinking back
 * when they die), `beatSoon` coalescing into one early beat, `stop` leaving no timer armed, forged or
 * out-of-window heartbeats kept out of the table, and the node listing itself from its own beats.
 * Certificates are fabricated (test/gossip/fixtures.ts) and every heartbeat is really signed.
 */
import { describe, expect, it } from 'vitest'
import { createMembership } from '../../src/gossip/membership.js'
import { createHeartbeat, type Heartbeat, verifyHeartbeat } from '../../src/gossip/presence.js'
import { createManualClock } from '../../src/node/clock.js'
import { silentLogger } from '../../src/node/log.js'
import {
  createMembershipDriver,
  EARLY_HEARTBEAT_DELAY_MS,
  HEARTBEAT_MEMBERS_PER_INTERVAL,
  HEARTBEAT_STRETCH_MAX,
} from '../../src/node/membership-driver.js'
import { signingKeyFromSeed } from '../../src/wire/ed25519.js'
import { FakeCa, type TestIdentity } from '../gossip/fixtures.js'

const NOW = 1_800_000_000_000
const INTERVAL = 1000
const SKEW = 2000
const DEAD_AFTER = 10_000

function setup() {
  const ca = new FakeCa()
  const self = ca.issue('self', { zone: 'web' })
  const clock = createManualClock(NOW)
  const membership = createMembership({
    timings: {
      heartbeatIntervalMs: INTERVAL,
      suspectAfterMs: 3 * INTERVAL,
      deadAfterMs: DEAD_AFTER,
      forgetAfterMs: 60_000,
    },
  })
  const published: { atMs: number; heartbeat: Heartbeat }[] = []
  const driver = createMembershipDriver(
    {
      membership,
      verifier: ca.verifier,
      signer: self,
      publish: async bytes => {
        const verdict = verifyHeartbeat(bytes, {
          verifier: ca.verifier,
          nowMs: clock.nowMs(),
          clockSkewToleranceMs: SKEW,
          maxAgeMs: DEAD_AFTER,
        })
        if (!verdict.ok) throw new Error(`published an invalid heartbeat: ${verdict.reason}`)
        published.push({ atMs: clock.monotonicMs(), heartbeat: verdict.verified.heartbeat })
      },
      facts: () => ({ os: 'linux' }),
      addrs: () => ['/ip4/127.0.0.1/tcp/4001'],
      clock,
      log: silentLogger(),
    },
    { heartbeatIntervalMs: INTERVAL, clockSkewToleranceMs: SKEW, deadAfterMs: DEAD_AFTER },
  )
  /** A heartbeat of `who`, signed by `key` (its own by default), sent at `sentAtMs` (now by default). */
  const beatOf = (
    who: TestIdentity,
    opts: { sentAtMs?: number; seq?: number; key?: TestIdentity['key'] } = {},
  ) =>
    createHeartbeat(opts.key ?? who.key, who.certificate, {
      addrs: [],
      facts: {},
      seq: opts.seq ?? 1,
      sentAtMs: opts.sentAtMs ?? clock.nowMs(),
      intervalMs: INTERVAL,
    })
  /** Feeds verified heartbeats of `count` other certified members through the presence verdict. */
  const addMembers = (count: number, prefix = 'peer') => {
    for (let i = 0; i < count; i++) {
      expect(driver.verdict(beatOf(ca.issue(`${prefix}${i}`)))).toEqual({ kind: 'accept' })
    }
  }
  const times = () => published.map(p => p.atMs)
  return { ca, self, clock, membership, driver, published, beatOf, addMembers, times }
}

describe('membership driver', () => {
  it('beats at start, then once per interval, with growing seq and its own identity', () => {
    const { clock, driver, published, times } = setup()
    driver.start()
    driver.start() // idempotent: no second loop
    expect(times()).toEqual([0])
    clock.advance(INTERVAL - 1)
    expect(times()).toEqual([0])
    clock.advance(1)
    clock.advance(3 * INTERVAL)
    expect(times()).toEqual([0, 1000, 2000, 3000, 4000])
    expect(published.map(p => p.heartbeat.seq)).toEqual([NOW, NOW + 1, NOW + 2, NOW + 3, NOW + 4])
    expect(published[2]?.heartbeat).toMatchObject({
      name: 'self',
      zone: 'web',
      sentAtMs: NOW + 2000,
      intervalMs: INTERVAL,
      addrs: ['/ip4/127.0.0.1/tcp/4001'],
      facts: { os: 'linux' },
    })
    expect(clock.pending()).toBe(1)
  })

  it('lists itself in its own table from its own beat (gossipsub never delivers it back)', () => {
    const { driver, membership } = setup()
    expect(membership.get('self')).toBeUndefined()
    driver.start()
    expect(membership.get('self')).toMatchObject({ state: 'alive', zone: 'web', lastSeenMs: NOW })
  })

  it('stretches the period with the alive members: 12 members beat every 3 intervals', () => {
    const { clock, driver, published, addMembers, times } = setup()
    driver.start() // at 0, alone: next beat in one interval
    addMembers(11) // 11 others + self = 12 alive → ceil(12 / 5) = 3
    expect(Math.ceil(12 / HEARTBEAT_MEMBERS_PER_INTERVAL)).toBe(3)
    clock.advance(7000)
    expect(times()).toEqual([0, 1000, 4000, 7000])
    expect(published.map(p => p.heartbeat.intervalMs)).toEqual([1000, 3000, 3000, 3000])
  })

  it('never stretches beyond HEARTBEAT_STRETCH_MAX, however large the mesh', () => {
    const { clock, driver, published, addMembers, times } = setup()
    const members = HEARTBEAT_MEMBERS_PER_INTERVAL * HEARTBEAT_STRETCH_MAX * 2 // would be 20×
    driver.start()
    addMembers(members - 1)
    const capMs = INTERVAL * HEARTBEAT_STRETCH_MAX
    clock.advance(INTERVAL + 2 * capMs)
    expect(times()).toEqual([0, INTERVAL, INTERVAL + capMs, INTERVAL + 2 * capMs])
    expect(published.at(-1)?.heartbeat.intervalMs).toBe(capMs)
  })

  it('shrinks the period back when the other members are no longer alive', () => {
    const { clock, driver, published, addMembers, membership } = setup()
    driver.start()
    addMembers(11)
    clock.advance(1000) // beat announcing 3000
    expect(published.at(-1)?.heartbeat.intervalMs).toBe(3000)
    // The others fall silent; only self keeps beating.
    clock.advance(4 * 3000)
    driver.tick()
    expect(
      membership
        .list()
        .filter(m => m.state === 'alive')
        .map(m => m.name),
    ).toEqual(['self'])
    const before = published.length
    clock.advance(3000) // the beat already armed with the stretched period
    expect(published.at(-1)?.heartbeat.intervalMs).toBe(INTERVAL)
    clock.advance(INTERVAL)
    expect(published.length).toBe(before + 2)
  })

  it('beatSoon beats once after the short delay, coalescing repeated calls', () => {
    const { clock, driver, times } = setup()
    driver.beatSoon() // not running: nothing
    expect(clock.pending()).toBe(0)
    driver.start()
    clock.advance(100)
    driver.beatSoon()
    clock.advance(EARLY_HEARTBEAT_DELAY_MS / 2)
    driver.beatSoon() // coalesced into the pending one
    driver.beatSoon()
    clock.advance(EARLY_HEARTBEAT_DELAY_MS / 2 - 1)
    expect(times()).toEqual([0])
    clock.advance(1)
    expect(times()).toEqual([0, 100 + EARLY_HEARTBEAT_DELAY_MS])
    clock.advance(EARLY_HEARTBEAT_DELAY_MS * 4)
    expect(times()).toHaveLength(2) // nothing queued behind it
    driver.beatSoon() // a new one may follow once the early beat went out
    clock.advance(EARLY_HEARTBEAT_DELAY_MS)
    expect(times()).toHaveLength(3)
    clock.advance(1000 - clock.monotonicMs()) // the regular loop is unaffected
    expect(times().at(-1)).toBe(1000)
  })

  it('stop cancels every timer, and nothing beats after it', () => {
    const { clock, driver, times } = setup()
    driver.start()
    driver.beatSoon()
    expect(clock.pending()).toBe(2)
    driver.stop()
    expect(clock.pending()).toBe(0)
    driver.beatSoon()
    expect(clock.pending()).toBe(0)
    clock.advance(100 * INTERVAL)
    expect(times()).toEqual([0])
    driver.start() // restartable
    expect(times()).toEqual([0, 100 * INTERVAL])
  })

  it('rejects a forged heartbeat and keeps it out of the table', () => {
    const { ca, driver, membership, beatOf } = setup()
    const victim = ca.issue('victim')
    const forged = beatOf(victim, { key: signingKeyFromSeed(new Uint8Array(32).fill(9)) })
    expect(driver.verdict(forged)).toEqual({ kind: 'refused', code: 'bad-signature', action: 'reject' })
    expect(membership.get('victim')).toBeUndefined()
  })

  it.each([
    ['too old', -DEAD_AFTER - 1, 'too-old'],
    ['from the future', SKEW + 1, 'from-the-future'],
  ])('ignores (does not reject) a heartbeat %s, and keeps it out of the table', (_label, offset, code) => {
    const { ca, driver, membership, beatOf, clock } = setup()
    const peer = ca.issue('peer')
    const verdict = driver.verdict(beatOf(peer, { sentAtMs: clock.nowMs() + offset }))
    expect(verdict).toEqual({ kind: 'refused', code, action: 'ignore' })
    expect(membership.get('peer')).toBeUndefined()
  })

  it('ignores a heartbeat whose certificate it cannot verify, and accepts an in-window one', () => {
    const { driver, membership, beatOf, ca } = setup()
    const stranger = new FakeCa().issue('stranger')
    expect(driver.verdict(beatOf(stranger))).toMatchObject({ code: 'bad-certificate', action: 'ignore' })
    const peer = ca.issue('peer')
    expect(driver.verdict(beatOf(peer, { sentAtMs: NOW - DEAD_AFTER }))).toEqual({ kind: 'accept' })
    expect(membership.get('peer')?.state).toBe('alive')
  })
})
