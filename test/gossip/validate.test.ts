/**
 * Proves the inbound request pipeline refuses every kind of bad request with the right code and
 * gossipsub action, and accepts good ones with the right disposition: each test builds a real signed
 * request (fabricated certificates, fake verifier), breaks exactly one thing, and checks the outcome,
 * the counters and that the replay cache was only marked by requests that passed the crypto checks.
 */
import { describe, expect, it } from 'vitest'
import { type AuthorizationPolicy, DEFAULT_POLICY } from '../../src/gossip/authorize.js'
import type { FilterSubject, TargetFilter } from '../../src/gossip/filter.js'
import { createReplayCache } from '../../src/gossip/replay.js'
import {
  ARGS_MAX,
  createRequest,
  decodeRequest,
  REQUEST_BYTES_MAX,
  RequestDecodeError,
  type RequestInit,
} from '../../src/gossip/request.js'
import {
  checkValidityWindow,
  createRequestValidator,
  REFUSAL_ACTIONS,
  type RequestOutcome,
  toTopicValidatorResult,
} from '../../src/gossip/validate.js'
import { encodeCbor } from '../../src/wire/cbor.js'
import { DOMAIN_REQUEST } from '../../src/wire/domains.js'
import { signingKeyFromSeed } from '../../src/wire/ed25519.js'
import { sealEnvelope } from '../../src/wire/envelope.js'
import { FakeCa, type TestIdentity, testId } from './fixtures.js'

const NOW = 1_800_000_000_000
const SKEW = 2_000
const LIFETIME_MAX = 60_000

function setup(opts: { self?: FilterSubject; policy?: AuthorizationPolicy; entriesMax?: number } = {}) {
  const ca = new FakeCa()
  const operator = ca.issue('alice', { roles: ['operator'] })
  const replay = createReplayCache({ clockSkewToleranceMs: SKEW, entriesMax: opts.entriesMax ?? 100 })
  const self = opts.self ?? { name: 'web1', zone: 'web', facts: { os: 'linux' } }
  const validator = createRequestValidator(
    { verifier: ca.verifier, replay, self: () => self, policy: () => opts.policy ?? DEFAULT_POLICY },
    { clockSkewToleranceMs: SKEW, requestLifetimeMsMax: LIFETIME_MAX },
  )
  const request = (over: Partial<RequestInit> & { as?: TestIdentity } = {}): Uint8Array => {
    const who = over.as ?? operator
    return createRequest({
      id: testId(1),
      issuer: who.certificate.bytes,
      key: who.key,
      issuedAtMs: NOW,
      expiresAtMs: NOW + 30_000,
      filter: { zone: 'web' },
      action: 'uptime',
      args: [],
      replyTo: { peerId: '12D3KooRequester', addrs: ['/ip4/127.0.0.1/tcp/4001'] },
      ...over,
    }).bytes
  }
  return { ca, operator, replay, validator, request }
}

function refusal(outcome: RequestOutcome): { code: string; action: string } | undefined {
  return outcome.kind === 'refused' ? { code: outcome.code, action: outcome.action } : undefined
}

describe('request envelope', () => {
  it('round-trips every field', () => {
    const { request } = setup()
    const bytes = request({ args: ['-a', 'ünïcode'], filter: { zone: 'web', where: 'os=linux', once: true } })
    const decoded = decodeRequest(bytes)
    expect(decoded.body.action).toBe('uptime')
    expect(decoded.body.args).toEqual(['-a', 'ünïcode'])
    expect(decoded.body.filter).toEqual({ zone: 'web', where: 'os=linux', once: true })
    expect(decoded.body.replyTo.addrs).toEqual(['/ip4/127.0.0.1/tcp/4001'])
    expect(decoded.idHex).toBe('ab000000000000000000000000000001')
    expect(decoded.filter.once).toBe(true)
  })

  it('is deterministic: the same init gives the same bytes', () => {
    const { request } = setup()
    expect(request()).toEqual(request())
  })

  it.each<[string, Partial<RequestInit>, string]>([
    ['bad action name', { action: 'rm -rf' }, 'malformed'],
    ['empty action', { action: '' }, 'malformed'],
    ['too many args', { args: Array.from({ length: ARGS_MAX + 1 }, () => 'x') }, 'malformed'],
    ['short id', { id: new Uint8Array(8) }, 'malformed'],
    ['invalid where', { filter: { where: 'zone=' } }, 'bad-filter'],
    ['unsafe regex', { filter: { node: '/(a+)+/' } }, 'bad-filter'],
    ['oversized', { args: Array.from({ length: 20 }, () => 'x'.repeat(4000)) }, 'too-large'],
  ])('createRequest refuses %s', (_label, over, code) => {
    const { request } = setup()
    expect(() => request(over)).toThrow(RequestDecodeError)
    expect(() => request(over)).toThrow(expect.objectContaining({ code }))
  })
})

describe('validity window (table)', () => {
  const limits = { clockSkewToleranceMs: 1000, requestLifetimeMsMax: 10_000 }
  it.each([
    [0, 5000, 0, undefined],
    [0, 5000, 5000, undefined],
    [0, 5000, 6000, undefined], // within skew after expiry
    [0, 5000, 6001, 'expired'],
    [1000, 5000, 0, undefined], // issued within skew in the future
    [1001, 5000, 0, 'issued-in-future'],
    [0, 10_000, 0, undefined],
    [0, 10_001, 0, 'lifetime-too-long'],
    [5000, 5000, 5000, 'bad-window'],
    [5000, 4000, 5000, 'bad-window'],
  ])('issued %i expires %i at %i → %s', (issued, expires, now, expected) => {
    expect(checkValidityWindow(issued, expires, now, limits)).toBe(expected)
  })
})

describe('validation pipeline', () => {
  it('accepts a good request addressed to us for execution, and marks it', () => {
    const { validator, request, replay } = setup()
    const outcome = validator.validate(request(), NOW)
    expect(outcome.kind).toBe('accept-execute')
    expect(toTopicValidatorResult(outcome)).toBe('accept')
    expect(replay.size).toBe(1)
    expect(validator.counters['accept-execute']).toBe(1)
    if (outcome.kind === 'accept-execute') {
      expect(outcome.request.issuer.certificate.name).toBe('alice')
      expect(outcome.request.body.action).toBe('uptime')
    }
  })

  it('accepts (for forwarding) a request not addressed to us', () => {
    const { validator, request } = setup()
    const outcome = validator.validate(request({ filter: { zone: 'db' } }), NOW)
    expect(outcome.kind).toBe('accept-not-for-us')
    expect(toTopicValidatorResult(outcome)).toBe('accept')
  })

  it('accepts but owes a denied reply when the policy refuses the action', () => {
    const { validator, request } = setup()
    const outcome = validator.validate(request({ action: 'shell', args: ['id'] }), NOW)
    expect(outcome.kind).toBe('accept-denied')
    expect(toTopicValidatorResult(outcome)).toBe('accept')
    if (outcome.kind === 'accept-denied') expect(outcome.reason).toMatch(/shell/)
  })

  it('a request not for us is still remembered, so a replay is refused there too', () => {
    const { validator, request } = setup()
    const bytes = request({ filter: { zone: 'db' } })
    expect(validator.validate(bytes, NOW).kind).toBe('accept-not-for-us')
    expect(refusal(validator.validate(bytes, NOW + 10))).toEqual({ code: 'replayed', action: 'ignore' })
  })

  it('refuses a replay of an executed request (ignore, not reject)', () => {
    const { validator, request } = setup()
    const bytes = request()
    expect(validator.validate(bytes, NOW).kind).toBe('accept-execute')
    expect(refusal(validator.validate(bytes, NOW + 20_000))).toEqual({ code: 'replayed', action: 'ignore' })
    expect(validator.counters.replayed).toBe(1)
  })

  it('the same id from another operator is a different request', () => {
    const { validator, request, ca } = setup()
    const bob = ca.issue('bob', { roles: ['operator'] })
    expect(validator.validate(request(), NOW).kind).toBe('accept-execute')
    expect(validator.validate(request({ as: bob }), NOW).kind).toBe('accept-execute')
  })

  it('refuses a re-signed request reusing an id from the same operator', () => {
    const { validator, request } = setup()
    expect(validator.validate(request(), NOW).kind).toBe('accept-execute')
    expect(refusal(validator.validate(request({ action: 'ping' }), NOW))?.code).toBe('replayed')
  })

  it('refuses oversized bytes before decoding them', () => {
    const { validator } = setup()
    const outcome = validator.validate(new Uint8Array(REQUEST_BYTES_MAX + 1), NOW)
    expect(refusal(outcome)).toEqual({ code: 'too-large', action: 'reject' })
  })

  it('refuses garbage as malformed', () => {
    const { validator } = setup()
    expect(refusal(validator.validate(new Uint8Array([1, 2, 3]), NOW))).toEqual({
      code: 'malformed',
      action: 'reject',
    })
    expect(
      refusal(validator.validate(encodeCbor({ body: new Uint8Array(3), sig: new Uint8Array(64) }), NOW))
        ?.code,
    ).toBe('malformed')
  })

  it('ignores an unknown version (a newer peer is not punished)', () => {
    const { validator, operator } = setup()
    const bytes = sealEnvelope(DOMAIN_REQUEST, operator.key, { v: 2, whatever: 1 })
    expect(refusal(validator.validate(bytes, NOW))).toEqual({ code: 'unsupported-version', action: 'ignore' })
  })

  it('refuses a forged signature (signed by another key, carrying the operator certificate)', () => {
    const { validator, request, operator, replay } = setup()
    const thief = { key: signingKeyFromSeed(new Uint8Array(32).fill(9)), certificate: operator.certificate }
    expect(refusal(validator.validate(request({ as: thief }), NOW))).toEqual({
      code: 'bad-signature',
      action: 'reject',
    })
    expect(replay.size).toBe(0)
    // The forgery did not burn the id: the genuine request still runs.
    expect(validator.validate(request(), NOW).kind).toBe('accept-execute')
  })

  it('refuses any single altered byte', () => {
    const { validator, request } = setup()
    const bytes = request()
    const codes = new Set<string>()
    for (let i = 0; i < bytes.byteLength; i++) {
      const altered = bytes.slice()
      altered[i] = (altered[i] ?? 0) ^ 0x01
      const outcome = validator.validate(altered, NOW)
      expect(outcome.kind).toBe('refused')
      codes.add(refusal(outcome)?.code ?? '')
    }
    expect(codes.has('bad-signature')).toBe(true)
    expect(codes.has('malformed')).toBe(true)
    expect(validator.counters.internal).toBe(0)
  })

  it('refuses an expired request (ignore)', () => {
    const { validator, request } = setup()
    const bytes = request({ issuedAtMs: NOW - 40_000, expiresAtMs: NOW - SKEW - 1 })
    expect(refusal(validator.validate(bytes, NOW))).toEqual({ code: 'expired', action: 'ignore' })
  })

  it('refuses a request issued in the future beyond the skew budget (ignore)', () => {
    const { validator, request } = setup()
    const bytes = request({ issuedAtMs: NOW + SKEW + 1, expiresAtMs: NOW + 30_000 })
    expect(refusal(validator.validate(bytes, NOW))).toEqual({ code: 'issued-in-future', action: 'ignore' })
    expect(validator.validate(request({ issuedAtMs: NOW + SKEW, id: testId(2) }), NOW).kind).toBe(
      'accept-execute',
    )
  })

  it('refuses a too-long lifetime (reject)', () => {
    const { validator, request } = setup()
    const bytes = request({ expiresAtMs: NOW + LIFETIME_MAX + 1 })
    expect(refusal(validator.validate(bytes, NOW))).toEqual({ code: 'lifetime-too-long', action: 'reject' })
  })

  it('refuses an expiry before the issue time (reject)', () => {
    const { validator, request } = setup()
    expect(refusal(validator.validate(request({ expiresAtMs: NOW - 1 }), NOW))?.code).toBe('bad-window')
  })

  it('refuses a request signed by a non-operator (a node key)', () => {
    const { validator, request, ca } = setup()
    const agent = ca.issue('web2', { zone: 'web', roles: ['agent', 'ca'] })
    expect(refusal(validator.validate(request({ as: agent }), NOW))).toEqual({
      code: 'not-operator',
      action: 'reject',
    })
  })

  it('refuses a revoked operator (ignore: revocation may not have reached the forwarder)', () => {
    const { validator, request, ca, operator } = setup()
    const bytes = request()
    ca.revoke(operator)
    expect(refusal(validator.validate(bytes, NOW))).toEqual({ code: 'certificate-revoked', action: 'ignore' })
  })

  it('refuses a certificate from another CA', () => {
    const { validator } = setup()
    const other = new FakeCa().issue('mallory', { roles: ['operator'] })
    const { request } = setup()
    const bytes = request({ as: other })
    expect(refusal(validator.validate(bytes, NOW))).toEqual({
      code: 'certificate-bad-signature',
      action: 'reject',
    })
  })

  it('refuses an expired operator certificate', () => {
    const { validator, request, ca } = setup()
    const old = ca.issue('old', { roles: ['operator'], notAfterMs: NOW - 1 })
    expect(refusal(validator.validate(request({ as: old }), NOW))?.code).toBe('certificate-expired')
  })

  it('says overloaded (and does not forget live ids) when the replay cache is full', () => {
    const { validator, request } = setup({ entriesMax: 2 })
    expect(validator.validate(request({ id: testId(1) }), NOW).kind).toBe('accept-execute')
    expect(validator.validate(request({ id: testId(2) }), NOW).kind).toBe('accept-execute')
    expect(refusal(validator.validate(request({ id: testId(3) }), NOW))).toEqual({
      code: 'overloaded',
      action: 'ignore',
    })
    expect(refusal(validator.validate(request({ id: testId(1) }), NOW))?.code).toBe('replayed')
    // Once the first two can no longer validate anywhere, room is made.
    const later = NOW + 30_000 + SKEW + 1
    const fresh = request({ id: testId(4), issuedAtMs: later, expiresAtMs: later + 1000 })
    expect(validator.validate(fresh, later).kind).toBe('accept-execute')
  })

  it('maps unknown errors to ignore with code internal', () => {
    const ca = new FakeCa()
    const operator = ca.issue('alice', { roles: ['operator'] })
    const validator = createRequestValidator(
      {
        verifier: ca.verifier,
        replay: createReplayCache({ clockSkewToleranceMs: SKEW }),
        self: () => {
          throw new Error('boom')
        },
        policy: () => DEFAULT_POLICY,
      },
      { clockSkewToleranceMs: SKEW, requestLifetimeMsMax: LIFETIME_MAX },
    )
    const bytes = createRequest({
      id: testId(1),
      issuer: operator.certificate.bytes,
      key: operator.key,
      issuedAtMs: NOW,
      expiresAtMs: NOW + 1000,
      filter: {} as TargetFilter,
      action: 'ping',
      replyTo: { peerId: 'p', addrs: [] },
    }).bytes
    const outcome = validator.validate(bytes, NOW)
    expect(refusal(outcome)).toEqual({ code: 'internal', action: 'ignore' })
    expect(toTopicValidatorResult(outcome)).toBe('ignore')
    expect(validator.counters.internal).toBe(1)
  })

  it('uses a filter that matches our facts, and --once only on the authority', () => {
    const self = { name: 'd1', zone: 'db', facts: { os: 'freebsd' }, authority: false }
    const { validator, request } = setup({ self })
    expect(validator.validate(request({ filter: { where: 'os=/bsd/' } }), NOW).kind).toBe('accept-execute')
    expect(validator.validate(request({ id: testId(2), filter: { zone: 'db', once: true } }), NOW).kind).toBe(
      'accept-not-for-us',
    )
  })

  it('answers a --once request that names it as the expected holder after its lease ended', () => {
    // The requester proved d1 the holder; d1 lost the lease before the request arrived. Named in
    // `holders`, it is still ours to answer (the executor then says "no longer the zone authority");
    // a node not named stays silent, and a named one the rest of the filter excludes stays silent too.
    const self = { name: 'd1', zone: 'db', facts: {}, authority: false }
    const { validator, request } = setup({ self })
    const named = request({ filter: { zone: 'db', once: true }, holders: ['d1'] })
    expect(validator.validate(named, NOW).kind).toBe('accept-execute')
    const other = request({ id: testId(3), filter: { zone: 'db', once: true }, holders: ['d2'] })
    expect(validator.validate(other, NOW).kind).toBe('accept-not-for-us')
    const wrongZone = request({ id: testId(4), filter: { zone: 'web', once: true }, holders: ['d1'] })
    expect(validator.validate(wrongZone, NOW).kind).toBe('accept-not-for-us')
    // Holders are signed and sorted; a request without --once ignores them.
    expect(decodeRequest(named).body.holders).toEqual(['d1'])
  })

  it('every refusal code has an action, and it is reject or ignore', () => {
    for (const action of Object.values(REFUSAL_ACTIONS)) expect(['reject', 'ignore']).toContain(action)
  })
})
