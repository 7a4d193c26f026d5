/**
 * Proves the authority state machine's local rules by driving one node by hand: a zone of one acquires
 * after its quiet period and loses at restart; a voter refuses while recovering, grants once, refuses a
 * rival while the grant (plus skew) is open, refuses stale epochs, frees on release; a candidate acts
 * exactly until send time + TTL − skew; malformed or misattributed inputs are counted, not fatal; a
 * clock going backwards is an invariant error.
 */
import { describe, expect, test } from 'vitest'
import {
  type Authority,
  type AuthorityEffect,
  AuthorityInvariantError,
  type AuthorityMessage,
  authorityProfiles,
  createAuthority,
} from '../../src/authority/index.js'

const config = authorityProfiles.test
const quietMs = config.leaseTtlMs + config.leaseDriftBudgetMs
const three = [
  { id: 'n1', zone: 'core' },
  { id: 'n2', zone: 'core' },
  { id: 'n3', zone: 'core' },
]

function node(self: string, roster: { id: string; zone: string }[], nowMs = 0): Authority {
  const a = createAuthority({ self, config, random: () => 0.5, nowMs })
  a.step({ type: 'roster', members: roster }, nowMs)
  return a
}

function sends(effects: AuthorityEffect[]): { to: string; message: AuthorityMessage }[] {
  return effects.flatMap(e => (e.type === 'send' ? [{ to: e.to, message: e.message }] : []))
}

/** Feeds state replies from the other voters so `a` may finish its recovery at `nowMs`. */
function recover(a: Authority, self: string, nowMs: number): void {
  for (const other of ['n1', 'n2', 'n3'].filter(id => id !== self)) {
    a.step(
      {
        type: 'message',
        from: other,
        message: { type: 'state', zone: 'core', from: other, maxEpoch: 0, recovering: false },
      },
      nowMs,
    )
  }
  a.tick(nowMs)
}

const request = (from: string, epoch: number, attempt = 1): AuthorityMessage => ({
  type: 'request',
  zone: 'core',
  from,
  epoch,
  incarnation: 42,
  attempt,
  rosterVersion: 0,
})

describe('zone of one', () => {
  test('acquires after the quiet period, renews alone, stops at restart', () => {
    const a = node('s1', [{ id: 's1', zone: 'solo' }])
    a.tick(quietMs - 1)
    expect(a.isAuthority('solo', quietMs - 1)).toBeNull()
    a.tick(quietMs)
    const effects = a.drainEffects()
    expect(effects.find(e => e.type === 'acquired')).toMatchObject({
      zone: 'solo',
      epoch: 1,
      actUntilMs: quietMs + config.leaseTtlMs - config.leaseDriftBudgetMs,
    })
    expect(sends(effects)).toEqual([])
    a.tick(quietMs + config.renewIntervalMs)
    expect(a.drainEffects().some(e => e.type === 'renewed')).toBe(true)
    expect(a.isAuthority('solo', quietMs + config.renewIntervalMs + 1)).toEqual({ epoch: 1 })
    a.step({ type: 'restart' }, quietMs + config.renewIntervalMs + 2)
    expect(a.drainEffects()).toContainEqual({ type: 'lost', zone: 'solo', epoch: 1, reason: 'restart' })
    expect(a.isAuthority('solo', quietMs + config.renewIntervalMs + 3)).toBeNull()
  })
})

describe('voter rules', () => {
  test('refuses while recovering, then grants once, refuses a rival until expiry + skew, frees on release', () => {
    const v = node('n2', three)
    v.drainEffects()
    v.step({ type: 'message', from: 'n1', message: request('n1', 1) }, 10)
    expect(sends(v.drainEffects())).toEqual([
      { to: 'n1', message: expect.objectContaining({ type: 'refuse', reason: 'recovering' }) },
    ])
    recover(v, 'n2', quietMs)
    expect(v.drainEffects().some(e => e.type === 'recovered')).toBe(true)
    const t = quietMs + 10
    v.step({ type: 'message', from: 'n1', message: request('n1', 1) }, t)
    expect(sends(v.drainEffects())[0]?.message).toMatchObject({ type: 'grant', epoch: 1, attempt: 1 })
    v.step(
      { type: 'message', from: 'n3', message: request('n3', 2) },
      t + config.leaseTtlMs + config.leaseDriftBudgetMs - 1,
    )
    expect(sends(v.drainEffects())[0]?.message).toMatchObject({
      type: 'refuse',
      reason: 'held',
      holder: 'n1',
      maxEpoch: 1,
    })
    v.step(
      { type: 'message', from: 'n3', message: request('n3', 1) },
      t + config.leaseTtlMs + config.leaseDriftBudgetMs,
    )
    expect(sends(v.drainEffects())[0]?.message).toMatchObject({ type: 'refuse', reason: 'stale' })
    v.step(
      { type: 'message', from: 'n3', message: request('n3', 2, 2) },
      t + config.leaseTtlMs + config.leaseDriftBudgetMs,
    )
    expect(sends(v.drainEffects())[0]?.message).toMatchObject({ type: 'grant', epoch: 2 })
    expect(v.zones(t + config.leaseTtlMs + config.leaseDriftBudgetMs + 1)[0]).toMatchObject({
      zone: 'core',
      authority: 'n3',
      epoch: 2,
    })
    // Release by the holder of that exact attempt frees the voter at once.
    const t2 = t + config.leaseTtlMs + config.leaseDriftBudgetMs + 5
    v.step(
      {
        type: 'message',
        from: 'n3',
        message: { type: 'release', zone: 'core', from: 'n3', epoch: 2, incarnation: 42, attempt: 2 },
      },
      t2,
    )
    v.step({ type: 'message', from: 'n1', message: request('n1', 3, 9) }, t2 + 1)
    expect(sends(v.drainEffects()).map(s => s.message.type)).toContain('grant')
  })

  test('a non-member candidate is refused', () => {
    const v = node('n2', [...three, { id: 'x1', zone: 'other' }])
    recover(v, 'n2', quietMs)
    v.drainEffects()
    v.step({ type: 'message', from: 'x1', message: { ...request('x1', 1) } }, quietMs + 1)
    expect(sends(v.drainEffects())[0]?.message).toMatchObject({ type: 'refuse', reason: 'not-member' })
  })
})

describe('candidate rules', () => {
  test('acts exactly until its send time + TTL − skew after a majority grants', () => {
    const c = node('n1', three)
    recover(c, 'n1', quietMs)
    // n1 may not be top-ranked: keep ticking until it campaigns (stagger at most two ranks).
    let sentAt = -1
    let requests: { to: string; message: AuthorityMessage }[] = []
    for (let t = quietMs; t <= quietMs + 3 * config.campaignStaggerMs && sentAt < 0; t += 10) {
      c.tick(t)
      requests = sends(c.drainEffects()).filter(s => s.message.type === 'request')
      if (requests.length > 0) sentAt = t
    }
    expect(requests.map(r => r.to).sort()).toEqual(['n2', 'n3'])
    const req = requests[0]!.message as Extract<AuthorityMessage, { type: 'request' }>
    c.step(
      {
        type: 'message',
        from: 'n2',
        message: {
          type: 'grant',
          zone: 'core',
          from: 'n2',
          epoch: req.epoch,
          incarnation: req.incarnation,
          attempt: req.attempt,
        },
      },
      sentAt + 30,
    )
    const actUntilMs = sentAt + config.leaseTtlMs - config.leaseDriftBudgetMs
    expect(c.drainEffects()).toContainEqual({ type: 'acquired', zone: 'core', epoch: req.epoch, actUntilMs })
    expect(c.isAuthority('core', actUntilMs - 1)).toEqual({ epoch: req.epoch })
    expect(c.isAuthority('core', actUntilMs)).toBeNull()
    // A grant for an old attempt does not count.
    expect(c.counters()['late-reply']).toBe(0)
    c.step(
      {
        type: 'message',
        from: 'n3',
        message: {
          type: 'grant',
          zone: 'core',
          from: 'n3',
          epoch: req.epoch,
          incarnation: req.incarnation,
          attempt: req.attempt,
        },
      },
      sentAt + 40,
    )
    expect(c.counters()['late-reply']).toBe(1)
  })
})

describe('input hygiene', () => {
  test('misattributed, unknown and malformed inputs are counted, not fatal', () => {
    const a = node('n1', three)
    a.step({ type: 'message', from: 'n2', message: request('n3', 1) }, 1)
    a.step({ type: 'message', from: 'zz', message: request('zz', 1) }, 2)
    a.step({ type: 'message', from: 'n2', message: { ...request('n2', 1), zone: 'nowhere' } }, 3)
    a.step(
      {
        type: 'roster',
        members: [
          { id: 'n1', zone: 'a' },
          { id: 'n1', zone: 'b' },
        ],
      },
      4,
    )
    expect(a.counters()).toMatchObject({
      'sender-mismatch': 1,
      'unknown-sender': 1,
      'unknown-zone': 1,
      'roster-refused': 1,
    })
    expect(a.zones(5).map(z => z.zone)).toEqual(['core'])
  })

  test('a clock going backwards is an invariant error', () => {
    const a = node('n1', three, 100)
    expect(() => a.tick(99)).toThrow(AuthorityInvariantError)
  })

  test('the same inputs produce the same effects (determinism)', () => {
    const run = (): AuthorityEffect[] => {
      const a = node('n1', three)
      const out: AuthorityEffect[] = []
      for (let t = 0; t <= 2 * quietMs; t += 20) {
        a.tick(t)
        out.push(...a.drainEffects())
      }
      return out
    }
    expect(run()).toEqual(run())
  })
})
