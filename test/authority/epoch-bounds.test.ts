/**
 * Proves that only a zone's voters move its epochs, and only by bounded steps (the "a non-voter freezes
 * a zone" attack): a non-voter's `state` or `refuse` carrying a huge epoch is ignored and counted; a
 * voter's reported epoch raises ours by at most EPOCH_STEP_MAX; a request jumping further is refused
 * stale; the parser refuses epochs above EPOCH_MAX. Driven by hand on one node, like authority.test.ts.
 */
import { describe, expect, test } from 'vitest'
import { EPOCH_STEP_MAX } from '../../src/authority/authority.js'
import {
  type Authority,
  type AuthorityEffect,
  type AuthorityMessage,
  authorityProfiles,
  createAuthority,
} from '../../src/authority/index.js'
import { EPOCH_MAX, parseAuthorityMessage } from '../../src/authority/messages.js'

const config = authorityProfiles.test
const quietMs = config.leaseTtlMs + config.leaseDriftBudgetMs
/** Three voters of `core`, and `x1`, a certified member of another zone (not a voter of `core`). */
const roster = [
  { id: 'n1', zone: 'core' },
  { id: 'n2', zone: 'core' },
  { id: 'n3', zone: 'core' },
  { id: 'x1', zone: 'web' },
  { id: 'x2', zone: 'web' },
  { id: 'x3', zone: 'web' },
]

function voter(): Authority {
  const a = createAuthority({ self: 'n2', config, random: () => 0.5, nowMs: 0 })
  a.step({ type: 'roster', members: roster }, 0)
  for (const other of ['n1', 'n3']) {
    a.step({ type: 'message', from: other, message: state(other, 0) }, quietMs)
  }
  a.tick(quietMs)
  a.drainEffects()
  return a
}

const state = (from: string, maxEpoch: number): AuthorityMessage => ({
  type: 'state',
  zone: 'core',
  from,
  maxEpoch,
  recovering: false,
})
const request = (from: string, epoch: number, attempt = 1): AuthorityMessage => ({
  type: 'request',
  zone: 'core',
  from,
  epoch,
  incarnation: 7,
  attempt,
  rosterVersion: 0,
})
const answer = (effects: AuthorityEffect[]) =>
  effects.flatMap(e => (e.type === 'send' ? [e.message] : []))[0] as Record<string, unknown> | undefined

describe('epochs are moved only by voters, in bounded steps', () => {
  test('a non-voter state message with a huge epoch is ignored; the zone still grants epoch 1', () => {
    const v = voter()
    v.step({ type: 'message', from: 'x1', message: state('x1', EPOCH_MAX) }, quietMs + 1)
    expect(v.counters()['non-voter-epoch']).toBe(1)
    v.step({ type: 'message', from: 'n1', message: request('n1', 1) }, quietMs + 2)
    expect(answer(v.drainEffects())).toMatchObject({ type: 'grant', epoch: 1 })
  })

  test("a voter's reported epoch raises ours by at most EPOCH_STEP_MAX", () => {
    const v = voter()
    v.step({ type: 'message', from: 'n3', message: state('n3', EPOCH_MAX) }, quietMs + 1)
    // Proposing just above the bounded step is accepted; the attacker's number was not learnt whole.
    v.step({ type: 'message', from: 'n1', message: request('n1', EPOCH_STEP_MAX + 1) }, quietMs + 2)
    expect(answer(v.drainEffects())).toMatchObject({ type: 'grant', epoch: EPOCH_STEP_MAX + 1 })
  })

  test('a request jumping more than EPOCH_STEP_MAX past the known epoch is refused stale', () => {
    const v = voter()
    v.step({ type: 'message', from: 'n1', message: request('n1', EPOCH_STEP_MAX + 1) }, quietMs + 1)
    expect(answer(v.drainEffects())).toMatchObject({ type: 'refuse', reason: 'stale', maxEpoch: 0 })
    expect(v.counters()['epoch-jump']).toBe(1)
    v.step({ type: 'message', from: 'n1', message: request('n1', 1, 2) }, quietMs + 2)
    expect(answer(v.drainEffects())).toMatchObject({ type: 'grant', epoch: 1 })
  })

  test('the parser refuses epochs above EPOCH_MAX (and the unsafe 2^53 - 1 of the attack)', () => {
    const limits = { idLengthMax: 128, zoneLengthMax: 64 }
    for (const maxEpoch of [EPOCH_MAX + 1, Number.MAX_SAFE_INTEGER]) {
      expect(parseAuthorityMessage({ ...state('x1', 0), maxEpoch }, limits)).toMatchObject({ ok: false })
      expect(parseAuthorityMessage({ ...request('n1', 0), epoch: maxEpoch }, limits)).toMatchObject({
        ok: false,
      })
    }
    expect(parseAuthorityMessage(state('x1', EPOCH_MAX), limits)).toMatchObject({ ok: true })
  })
})
