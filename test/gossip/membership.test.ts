/**
 * Proves heartbeats verify only when signed by the node whose certificate they carry and within the
 * time window, and that the membership table moves members alive → suspect → dead → removed by
 * missed heartbeats, revives them, refuses stale and superseded heartbeats, removes revoked members,
 * stays within its bound, and computes the expected repliers for a filter. Driven by a virtual clock.
 */
import { describe, expect, it } from 'vitest'
import {
  createMembership,
  expectedNodes,
  HEARTBEAT_STRETCH_MAX,
  MembershipConfigError,
  type MembershipTimings,
} from '../../src/gossip/membership.js'
import {
  createHeartbeat,
  HEARTBEAT_INTERVAL_MS_MAX,
  type VerifiedHeartbeat,
  verifyHeartbeat,
} from '../../src/gossip/presence.js'
import { signingKeyFromSeed } from '../../src/wire/ed25519.js'
import { FakeCa, type TestIdentity } from './fixtures.js'

const NOW = 1_800_000_000_000
const timings: MembershipTimings = {
  heartbeatIntervalMs: 1000,
  suspectAfterMs: 3000,
  deadAfterMs: 10_000,
  forgetAfterMs: 60_000,
}
const check = (ca: FakeCa, nowMs = NOW) => ({
  verifier: ca.verifier,
  nowMs,
  clockSkewToleranceMs: 2000,
  maxAgeMs: 10_000,
})

function beat(
  who: TestIdentity,
  seq: number,
  sentAtMs = NOW,
  facts: Record<string, string> = { os: 'linux' },
  intervalMs = 1000,
) {
  return createHeartbeat(who.key, who.certificate, {
    addrs: ['/ip4/127.0.0.1/tcp/1'],
    facts,
    seq,
    sentAtMs,
    intervalMs,
  })
}

function verified(ca: FakeCa, bytes: Uint8Array, nowMs = NOW): VerifiedHeartbeat {
  const verdict = verifyHeartbeat(bytes, check(ca, nowMs))
  if (!verdict.ok) throw new Error(`${verdict.reason}: ${verdict.detail}`)
  return verdict.verified
}

describe('presence heartbeat', () => {
  it('verifies and carries the node identity and facts', () => {
    const ca = new FakeCa()
    const n = ca.issue('web1', { zone: 'web', roles: ['agent', 'ca'] })
    const v = verified(ca, beat(n, 5, NOW, { os: 'linux', hostname: 'h1' }))
    expect(v.heartbeat).toMatchObject({ name: 'web1', zone: 'web', roles: ['agent', 'ca'], seq: 5 })
    expect(v.heartbeat.facts.hostname).toBe('h1')
  })

  it.each<[string, (ca: FakeCa, n: TestIdentity) => Uint8Array, number, string]>([
    [
      'forged',
      (_ca, n) =>
        beat({ key: signingKeyFromSeed(new Uint8Array(32).fill(5)), certificate: n.certificate }, 1),
      NOW,
      'bad-signature',
    ],
    ['from the future', (_ca, n) => beat(n, 1, NOW + 2001), NOW, 'from-the-future'],
    ['too old (a replay)', (_ca, n) => beat(n, 1, NOW - 10_001), NOW, 'too-old'],
    ['unknown CA', () => beat(new FakeCa().issue('x'), 1), NOW, 'bad-certificate'],
    ['garbage', () => new Uint8Array([1, 2, 3]), NOW, 'malformed'],
  ])('refuses %s', (_label, make, nowMs, reason) => {
    const ca = new FakeCa()
    const n = ca.issue('web1')
    const verdict = verifyHeartbeat(make(ca, n), check(ca, nowMs))
    expect(verdict).toMatchObject({ ok: false, reason })
  })

  it('refuses every single altered byte', () => {
    const ca = new FakeCa()
    const bytes = beat(ca.issue('web1'), 1)
    for (let i = 0; i < bytes.byteLength; i++) {
      const altered = bytes.slice()
      altered[i] = (altered[i] ?? 0) ^ 0x04
      expect(verifyHeartbeat(altered, check(ca)).ok).toBe(false)
    }
  })
})

describe('membership table', () => {
  it('moves alive → suspect → dead → removed by silence, and revives on a heartbeat', () => {
    const ca = new FakeCa()
    const n = ca.issue('web1', { zone: 'web' })
    const m = createMembership({ timings })
    expect(m.step(verified(ca, beat(n, 1)), NOW)).toBe('added')
    const states: string[] = []
    for (const t of [1000, 3000, 3001, 10_000, 10_001]) {
      m.tick(NOW + t)
      states.push(m.get('web1')?.state ?? 'gone')
    }
    expect(states).toEqual(['alive', 'alive', 'suspect', 'suspect', 'dead'])
    expect(m.step(verified(ca, beat(n, 2, NOW + 11_000), NOW + 11_000), NOW + 11_000)).toBe('updated')
    expect(m.get('web1')?.state).toBe('alive')
    m.tick(NOW + 11_000 + 60_001)
    expect(m.get('web1')).toBeUndefined()
    expect(m.drain()).toEqual([
      { kind: 'joined', name: 'web1' },
      { kind: 'state', name: 'web1', from: 'alive', to: 'suspect' },
      { kind: 'state', name: 'web1', from: 'suspect', to: 'dead' },
      { kind: 'state', name: 'web1', from: 'dead', to: 'alive' },
      { kind: 'state', name: 'web1', from: 'alive', to: 'dead' },
      { kind: 'removed', name: 'web1', reason: 'forgotten' },
    ])
    expect(m.drain()).toEqual([])
  })

  it('ignores a stale or repeated heartbeat', () => {
    const ca = new FakeCa()
    const n = ca.issue('web1')
    const m = createMembership({ timings })
    m.step(verified(ca, beat(n, 5)), NOW)
    expect(m.step(verified(ca, beat(n, 5)), NOW + 1)).toBe('stale')
    expect(m.step(verified(ca, beat(n, 4)), NOW + 1)).toBe('stale')
    expect(m.get('web1')?.lastSeenMs).toBe(NOW)
    expect(m.counters.stale).toBe(2)
  })

  it('lets a re-issued certificate take over a name, never an older one', () => {
    const ca = new FakeCa()
    const old = ca.issue('web1', { notBeforeMs: 1 })
    const renewed = ca.issue('web1', { notBeforeMs: 2 })
    const m = createMembership({ timings })
    m.step(verified(ca, beat(old, 100)), NOW)
    expect(m.step(verified(ca, beat(renewed, 1)), NOW + 1)).toBe('updated')
    expect(m.step(verified(ca, beat(old, 101)), NOW + 2)).toBe('stale')
    expect(m.get('web1')?.peerId).toBe(renewed.certificate.certificate.peerId)
  })

  it('removes a revoked member', () => {
    const ca = new FakeCa()
    const n = ca.issue('web1')
    const m = createMembership({ timings })
    m.step(verified(ca, beat(n, 1)), NOW)
    expect(m.revoke(n.certificate.certificate.serial)).toBe(true)
    expect(m.revoke(n.certificate.certificate.serial)).toBe(false)
    expect(m.list()).toEqual([])
    expect(m.drain().at(-1)).toEqual({ kind: 'removed', name: 'web1', reason: 'revoked' })
  })

  it('is bounded: a new member evicts the longest-dead one, or is refused', () => {
    const ca = new FakeCa()
    const ids = ['a', 'b', 'c', 'd'].map(name => ca.issue(name))
    const m = createMembership({ timings, entriesMax: 2 })
    m.step(verified(ca, beat(ids[0]!, 1)), NOW)
    m.step(verified(ca, beat(ids[1]!, 1, NOW + 5000), NOW + 5000), NOW + 5000)
    expect(m.step(verified(ca, beat(ids[2]!, 1, NOW + 6000), NOW + 6000), NOW + 6000)).toBe('full')
    expect(m.counters.full).toBe(1)
    m.tick(NOW + 16_000) // a is dead (16 s), b is suspect (11 s → dead too at >10 s)
    const t = NOW + 16_000
    expect(m.step(verified(ca, beat(ids[2]!, 2, t), t), t)).toBe('added')
    expect(m.list().map(x => x.name)).toEqual(['b', 'c'])
  })

  it("lists members in CLI.md's shape", () => {
    const ca = new FakeCa()
    const m = createMembership({ timings })
    m.step(verified(ca, beat(ca.issue('web1', { zone: 'web' }), 1)), NOW)
    expect(m.list()).toEqual([
      {
        name: 'web1',
        peerId: '12D3KooFakeweb1',
        zone: 'web',
        roles: ['agent'],
        addrs: ['/ip4/127.0.0.1/tcp/1'],
        state: 'alive',
        lastSeenMs: NOW,
        facts: { os: 'linux' },
        certificateNotAfterMs: expect.any(Number),
      },
    ])
  })

  it('stretches the timeouts of a member that announces a longer heartbeat period', () => {
    const ca = new FakeCa()
    const m = createMembership({ timings })
    const slow = ca.issue('slow', { zone: 'web' })
    const fast = ca.issue('fast', { zone: 'web' })
    m.step(verified(ca, beat(slow, 1, NOW, { os: 'linux' }, 5000)), NOW)
    m.step(verified(ca, beat(fast, 1, NOW, { os: 'linux' }, 1000)), NOW)
    m.tick(NOW + 4000)
    // 4 s of silence: past 3 s (fast) but within 5 × 3 s (slow, beating every 5 s).
    expect(m.get('fast')?.state).toBe('suspect')
    expect(m.get('slow')?.state).toBe('alive')
    m.tick(NOW + 16_000)
    expect(m.get('slow')?.state).toBe('suspect')
    m.tick(NOW + 51_000)
    expect(m.get('slow')?.state).toBe('dead')
  })

  it('bounds how far an announced period stretches timeouts (a peer cannot stay alive for 100 min)', () => {
    const ca = new FakeCa()
    // forgetAfterMs as the agent sets it (30 × dead), so the liar is still listed when it should be dead.
    const m = createMembership({ timings: { ...timings, forgetAfterMs: 30 * timings.deadAfterMs } })
    const liar = ca.issue('liar', { zone: 'web' })
    // The largest period the codec accepts: 600 × ours. Honest nodes stretch at most HEARTBEAT_STRETCH_MAX.
    m.step(verified(ca, beat(liar, 1, NOW, { os: 'linux' }, HEARTBEAT_INTERVAL_MS_MAX)), NOW)
    m.tick(NOW + timings.deadAfterMs * HEARTBEAT_STRETCH_MAX - 1)
    expect(m.get('liar')?.state).toBe('suspect')
    m.tick(NOW + timings.deadAfterMs * HEARTBEAT_STRETCH_MAX + 1)
    expect(m.get('liar')?.state).toBe('dead')
  })

  it('checks the timing relationships', () => {
    expect(() => createMembership({ timings: { ...timings, suspectAfterMs: 1000 } })).toThrow(
      MembershipConfigError,
    )
    expect(() => createMembership({ timings: { ...timings, deadAfterMs: 2000 } })).toThrow(/deadAfterMs/)
  })

  it('expects the alive agents that match the filter', () => {
    const ca = new FakeCa()
    const m = createMembership({ timings })
    const add = (
      name: string,
      zone: string,
      os: string,
      roles: ('agent' | 'operator')[] = ['agent'],
      at = NOW,
    ) => m.step(verified(ca, beat(ca.issue(name, { zone, roles }), 1, at, { os }), at), at)
    add('d1', 'db', 'linux')
    add('d2', 'db', 'freebsd')
    add('w1', 'web', 'linux')
    add('op', 'web', 'linux', ['operator'])
    add('late', 'web', 'linux', ['agent'], NOW - 9000)
    m.tick(NOW + 1)
    expect(expectedNodes(m.list(), { zone: 'web' })).toEqual(['w1'])
    expect(expectedNodes(m.list(), { where: 'os=linux' })).toEqual(['d1', 'w1'])
    expect(expectedNodes(m.list(), { zone: 'db', once: true }, new Set(['d2']))).toEqual(['d2'])
  })
})
