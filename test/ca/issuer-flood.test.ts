// Proves that one requester cannot fill the CA's table of requests waiting for the operator
// (security item 6): each origin gets at most `pendingPerOriginMax` pending requests while another
// origin still gets in; bulk rejection (`reject-all-pending`, all or one origin) rejects exactly the
// chosen requests with one persist; a table full of rejected records makes room for new requests.
// Scenarios on the pure issuer with deterministic keys and a fixed clock.
import { describe, expect, it } from 'vitest'
import {
  createIssuer,
  type Issuer,
  type IssuerConfig,
  IssuerConfigError,
  type IssuerEffect,
  PENDING_PER_ORIGIN_MAX_DEFAULT,
  type SigningResult,
  validateIssuerConfig,
} from '../../src/ca/issuer.js'
import { decodeIssuerState, encodeIssuerState } from '../../src/ca/issuer-state.js'
import { createSigningRequest } from '../../src/ca/signing-request.js'
import { keyFor, secretFor, seededRandomBytes, T0 } from './fixtures.js'

const caKey = keyFor('ca')
const ticketSecret = secretFor('ticket')
const csrRandom = seededRandomBytes('flood-csr')
let keyCounter = 0
let requestCounter = 0

function newIssuer(config: Partial<IssuerConfig> = {}): Issuer {
  return createIssuer({ caKey, ticketSecret, randomBytes: seededRandomBytes('flood'), config })
}

/** A ticketless request with a fresh key each time, as the attack sent them. */
function freshRequest(): Uint8Array {
  const n = ++keyCounter
  return createSigningRequest(keyFor(`flood-${n}`), {
    createdAtMs: T0,
    nonce: csrRandom(16),
    name: `n${n}`,
    zone: 'z',
  }).bytes
}

function send(issuer: Issuer, bytes: Uint8Array, origin: string | undefined, nowMs = T0) {
  issuer.step(
    { type: 'signing-request', requestId: `r${++requestCounter}`, bytes, ...(origin ? { origin } : {}) },
    nowMs,
  )
  const effects = issuer.drainEffects()
  const last = effects[effects.length - 1]
  if (last?.type !== 'reply') throw new Error('no reply')
  return { effects, result: last.result }
}

function statusOf(result: SigningResult): string {
  return result.status === 'refused' ? result.reason : result.status
}

function types(effects: IssuerEffect[]): string[] {
  return effects.map(effect => effect.type)
}

function rejectAll(issuer: Issuer, origin?: string, nowMs = T0) {
  issuer.step({ type: 'reject-all-pending', requestId: 'bulk', ...(origin ? { origin } : {}) }, nowMs)
  const effects = issuer.drainEffects()
  const last = effects[effects.length - 1]
  if (last?.type !== 'command-reply') throw new Error('no command reply')
  return { effects, result: last.result }
}

describe('issuer: pending requests per origin', () => {
  it('refuses the 17th pending request of one origin with limit; another origin still gets in', () => {
    const issuer = newIssuer()
    expect(PENDING_PER_ORIGIN_MAX_DEFAULT).toBe(16)
    for (let i = 0; i < 16; i++)
      expect(statusOf(send(issuer, freshRequest(), 'mallory').result)).toBe('pending')
    const refused = send(issuer, freshRequest(), 'mallory')
    expect(types(refused.effects)).toEqual(['reply']) // nothing persisted for a refusal
    expect(refused.result).toMatchObject({ status: 'refused', reason: 'limit' })
    if (refused.result.status === 'refused')
      expect(refused.result.message).toMatch(/16 requests from mallory/)
    expect(statusOf(send(issuer, freshRequest(), 'alice').result)).toBe('pending')
    expect(statusOf(send(issuer, freshRequest(), 'ip:192.0.2.7').result)).toBe('pending')
    expect(issuer.counters()).toMatchObject({ originLimitHits: 1, limitHits: 1 })
    const pending = issuer.listPending()
    expect(pending.filter(p => p.origin === 'mallory')).toHaveLength(16)
    expect(pending.filter(p => p.origin === 'alice')).toHaveLength(1)
  })

  it('a flood of 1,024 fresh keys from one member leaves 16 pending and the state small', () => {
    const issuer = newIssuer()
    const outcomes: Record<string, number> = {}
    for (let i = 0; i < 1024; i++) {
      const status = statusOf(send(issuer, freshRequest(), 'mallory').result)
      outcomes[status] = (outcomes[status] ?? 0) + 1
    }
    expect(outcomes).toEqual({ pending: 16, limit: 1008 })
    expect(encodeIssuerState(issuer.state()).byteLength).toBeLessThan(8 * 1024)
    expect(statusOf(send(issuer, freshRequest(), 'alice').result)).toBe('pending')
  })

  it('a resend by a key already pending is answered with its id even at the origin limit', () => {
    const issuer = newIssuer({ pendingPerOriginMax: 1 })
    const request = freshRequest()
    const first = send(issuer, request, 'bob').result
    expect(send(issuer, request, 'bob').result).toEqual(first)
    expect(statusOf(send(issuer, freshRequest(), 'bob').result)).toBe('limit')
  })

  it('decided requests no longer count against their origin', () => {
    const issuer = newIssuer({ pendingPerOriginMax: 2 })
    send(issuer, freshRequest(), 'bob')
    send(issuer, freshRequest(), 'bob')
    expect(statusOf(send(issuer, freshRequest(), 'bob').result)).toBe('limit')
    const [oldest] = issuer.listPending()
    issuer.step({ type: 'sign-pending', requestId: 's', id: oldest?.id ?? '' }, T0)
    issuer.drainEffects()
    expect(statusOf(send(issuer, freshRequest(), 'bob').result)).toBe('pending')
  })

  it('an origin the state file cannot hold is refused as malformed', () => {
    const issuer = newIssuer()
    expect(statusOf(send(issuer, freshRequest(), 'x'.repeat(161)).result)).toBe('malformed')
    expect(issuer.listPending()).toEqual([])
  })

  it('records keep their origin across encode/decode; states without origins still decode', () => {
    const issuer = newIssuer()
    send(issuer, freshRequest(), 'alice')
    send(issuer, freshRequest(), undefined)
    const state = decodeIssuerState(encodeIssuerState(issuer.state()))
    expect(state).toEqual(issuer.state())
    expect(state.requests.map(r => r.origin)).toEqual(['alice', undefined])
    const restarted = createIssuer({ caKey, ticketSecret, randomBytes: seededRandomBytes('again'), state })
    expect(restarted.listPending().map(p => p.origin)).toEqual(['alice', undefined])
  })
})

describe('issuer: bulk rejection', () => {
  function floodedIssuer() {
    const issuer = newIssuer()
    for (let i = 0; i < 5; i++) send(issuer, freshRequest(), 'mallory')
    const alice = freshRequest()
    send(issuer, alice, 'alice')
    send(issuer, freshRequest(), 'ip:192.0.2.7')
    return { issuer, alice }
  }

  it('--requester rejects exactly that origin’s pending requests, with one persist', () => {
    const { issuer, alice } = floodedIssuer()
    const { effects, result } = rejectAll(issuer, 'mallory')
    expect(types(effects)).toEqual(['persist', 'command-reply'])
    expect(result).toEqual({ ok: true, command: 'reject-all', rejected: 5, origin: 'mallory' })
    expect(issuer.listPending().map(p => p.origin)).toEqual(['alice', 'ip:192.0.2.7'])
    expect(statusOf(send(issuer, alice, 'alice').result)).toBe('pending')
    // Nothing left from mallory: the answer says so and nothing is written.
    const again = rejectAll(issuer, 'mallory')
    expect(types(again.effects)).toEqual(['command-reply'])
    expect(again.result).toMatchObject({ ok: true, rejected: 0 })
  })

  it('--all rejects every pending request and leaves signed ones alone; a poll is refused rejected', () => {
    const { issuer, alice } = floodedIssuer()
    const signedId = issuer.listPending()[0]?.id ?? ''
    issuer.step({ type: 'sign-pending', requestId: 's', id: signedId }, T0)
    issuer.drainEffects()
    const { effects, result } = rejectAll(issuer)
    expect(types(effects)).toEqual(['persist', 'command-reply'])
    expect(result).toEqual({ ok: true, command: 'reject-all', rejected: 6 })
    expect(issuer.listPending()).toEqual([])
    expect(issuer.state().requests.find(r => r.id === signedId)?.status).toBe('signed')
    expect(statusOf(send(issuer, alice, 'alice').result)).toBe('rejected')
  })

  it('a table full of rejected records makes room for new requests, oldest first', () => {
    const issuer = newIssuer({ pendingMax: 4, pendingPerOriginMax: 4 })
    const first = freshRequest()
    send(issuer, first, 'mallory')
    for (let i = 0; i < 3; i++) send(issuer, freshRequest(), 'mallory')
    expect(statusOf(send(issuer, freshRequest(), 'alice').result)).toBe('limit')
    rejectAll(issuer, 'mallory')
    expect(statusOf(send(issuer, freshRequest(), 'alice').result)).toBe('pending')
    expect(issuer.counters().rejectedEvicted).toBe(1)
    expect(issuer.state().requests).toHaveLength(4)
    // The evicted one was the oldest: its key is unknown again and starts anew.
    expect(statusOf(send(issuer, first, 'mallory').result)).toBe('pending')
  })
})

describe('issuer: pendingPerOriginMax config', () => {
  it('defaults to 16, is lowered for a smaller table, and may not exceed pendingMax', () => {
    expect(validateIssuerConfig().pendingPerOriginMax).toBe(16)
    expect(validateIssuerConfig({ pendingMax: 2 }).pendingPerOriginMax).toBe(2)
    expect(() => validateIssuerConfig({ pendingMax: 8, pendingPerOriginMax: 9 })).toThrow(IssuerConfigError)
    expect(() => validateIssuerConfig({ pendingPerOriginMax: 0 })).toThrow(IssuerConfigError)
  })
})
