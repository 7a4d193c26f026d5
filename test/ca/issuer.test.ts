// Proves the CA decision core by scenarios on a virtual clock with seeded randomness: admission by
// ticket (and every way a ticket is refused, changing nothing), pending requests through sign,
// reject and expiry, renewal, revocation, restart from persisted state, limits and config checks.
// Each scenario inspects the drained effects, including that `persist` precedes what depends on it.
import { describe, expect, it } from 'vitest'
import { verifyCertificate } from '../../src/ca/certificate.js'
import { fingerprintOf, shortFingerprint } from '../../src/ca/fingerprint.js'
import {
  createIssuer,
  type Issuer,
  type IssuerConfig,
  IssuerConfigError,
  type IssuerEffect,
  type IssuerInit,
  type SigningResult,
  validateIssuerConfig,
} from '../../src/ca/issuer.js'
import { decodeIssuerState, encodeIssuerState } from '../../src/ca/issuer-state.js'
import { verifyRevocationList } from '../../src/ca/revocation.js'
import { createSigningRequest, type SigningRequestFields } from '../../src/ca/signing-request.js'
import { checkTicket, createTicket, parseTicket } from '../../src/ca/ticket.js'
import type { Role } from '../../src/ca/types.js'
import type { SigningKey } from '../../src/wire/ed25519.js'
import { toHex } from '../../src/wire/hash.js'
import { DAY_MS, HOUR_MS, keyFor, secretFor, seededRandomBytes, T0 } from './fixtures.js'

const caKey = keyFor('ca')
const ticketSecret = secretFor('ticket')
const meshFingerprint = fingerprintOf(caKey.publicKey)

function newIssuer(overrides: Partial<IssuerInit> = {}, config: Partial<IssuerConfig> = {}): Issuer {
  return createIssuer({ caKey, ticketSecret, randomBytes: seededRandomBytes('issuer'), config, ...overrides })
}

let requestCounter = 0
const csrRandom = seededRandomBytes('csr')

function csr(key: SigningKey, fields: Partial<SigningRequestFields> = {}): Uint8Array {
  return createSigningRequest(key, { createdAtMs: T0, nonce: csrRandom(16), ...fields }).bytes
}

/** Steps one signing request and returns its effects. */
function send(issuer: Issuer, bytes: Uint8Array, nowMs = T0): IssuerEffect[] {
  issuer.step({ type: 'signing-request', requestId: `r${++requestCounter}`, bytes }, nowMs)
  return issuer.drainEffects()
}

function resultOf(effects: IssuerEffect[]): SigningResult {
  const replies = effects.filter(effect => effect.type === 'reply')
  expect(replies).toHaveLength(1)
  const last = effects[effects.length - 1]
  expect(last?.type).toBe('reply') // nothing may follow the answer
  if (last?.type !== 'reply') throw new Error('no reply')
  return last.result
}

function reasonOf(effects: IssuerEffect[]): string {
  const result = resultOf(effects)
  return result.status === 'refused' ? result.reason : result.status
}

function types(effects: IssuerEffect[]): string[] {
  return effects.map(effect => effect.type)
}

function ticketFor(
  overrides: {
    name?: string
    zone?: string
    roles?: Role[]
    expiresAtMs?: number
    secret?: Uint8Array
    fingerprint?: Uint8Array
  } = {},
): string {
  return createTicket(overrides.secret ?? ticketSecret, {
    meshFingerprint: overrides.fingerprint ?? meshFingerprint,
    bootstrap: ['/ip4/127.0.0.1/tcp/4001'],
    name: overrides.name ?? 'web1',
    zone: overrides.zone ?? 'edge',
    roles: overrides.roles ?? ['agent'],
    expiresAtMs: overrides.expiresAtMs ?? T0 + DAY_MS,
    nonce: csrRandom(16),
  })
}

function certificateOf(result: SigningResult, nowMs = T0) {
  expect(result.status).toBe('issued')
  if (result.status !== 'issued') throw new Error('not issued')
  expect(toHex(fingerprintOf(result.caPublicKey))).toBe(toHex(meshFingerprint))
  const verdict = verifyCertificate(result.certificate, { caPublicKey: result.caPublicKey, nowMs })
  if (!verdict.ok) throw new Error(`certificate refused: ${verdict.reason}`)
  return verdict.signed
}

function command(issuer: Issuer, input: Parameters<Issuer['step']>[0], nowMs = T0) {
  issuer.step(input, nowMs)
  const effects = issuer.drainEffects()
  const last = effects[effects.length - 1]
  if (last?.type !== 'command-reply') throw new Error(`no command reply: ${types(effects).join()}`)
  return { effects, result: last.result }
}

describe('issuer: admission by ticket', () => {
  it('issues the ticket’s name, zone and roles, never the requester’s; persist precedes the reply', () => {
    const issuer = newIssuer()
    const joiner = keyFor('joiner')
    const ticket = ticketFor({ roles: ['agent', 'operator'] })
    const effects = send(issuer, csr(joiner, { ticket, name: 'evil', zone: 'core' }))
    // A new agent member: the roster that lists it is published right after the persist holding it.
    expect(types(effects)).toEqual(['persist', 'publish-roster', 'reply'])
    const signed = certificateOf(resultOf(effects))
    expect(signed.certificate).toMatchObject({ name: 'web1', zone: 'edge', roles: ['agent', 'operator'] })
    expect(toHex(signed.certificate.publicKey)).toBe(toHex(joiner.publicKey))
    expect(signed.certificate.notAfterMs - signed.certificate.notBeforeMs).toBe(30 * DAY_MS)
    const persisted = effects[0]?.type === 'persist' ? effects[0].state : undefined
    expect(persisted?.usedNonces.map(used => used.nonce)).toEqual([parseTicket(ticket).nonceHex])
    expect(issuer.counters().issued).toBe(1)
  })

  it('a second use by another key is refused and changes nothing; a retry by the same key gets the same certificate', () => {
    const issuer = newIssuer()
    const ticket = ticketFor()
    const first = certificateOf(resultOf(send(issuer, csr(keyFor('joiner'), { ticket }))))
    const before = encodeIssuerState(issuer.state())
    const reused = send(issuer, csr(keyFor('thief'), { ticket }), T0 + 1000)
    expect(types(reused)).toEqual(['reply'])
    expect(reasonOf(reused)).toBe('reused')
    const retry = send(issuer, csr(keyFor('joiner'), { ticket }), T0 + 2000)
    expect(types(retry)).toEqual(['reply'])
    expect(toHex(certificateOf(resultOf(retry)).bytes)).toBe(toHex(first.bytes))
    expect(encodeIssuerState(issuer.state())).toEqual(before)
  })

  it.each([
    ['expired', () => ticketFor({ expiresAtMs: T0 - 1 }), 'expired'],
    [
      'of another mesh',
      () => ticketFor({ fingerprint: fingerprintOf(keyFor('other-ca').publicKey) }),
      'wrong-mesh',
    ],
    ['forged with another secret', () => ticketFor({ secret: secretFor('guess'), roles: ['ca'] }), 'bad-mac'],
    ['cut short', () => ticketFor().slice(0, -4), 'malformed'],
    ['not a ticket', () => 'hello', 'malformed'],
  ])('a ticket %s is refused and changes nothing', (_label, make, reason) => {
    const issuer = newIssuer()
    const before = encodeIssuerState(issuer.state())
    const effects = send(issuer, csr(keyFor('joiner'), { ticket: make() }))
    expect(types(effects)).toEqual(['reply'])
    expect(reasonOf(effects)).toBe(reason)
    expect(encodeIssuerState(issuer.state())).toEqual(before)
    expect(issuer.counters().refused[reason as 'expired']).toBe(1)
  })

  it('an altered ticket is refused whatever character is changed', () => {
    const issuer = newIssuer()
    const ticket = ticketFor()
    const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_'
    for (let position = 6; position < ticket.length; position += 7) {
      const original = ticket[position] ?? 'A'
      const replacement = alphabet[(alphabet.indexOf(original) + 1) % alphabet.length]
      const altered = ticket.slice(0, position) + replacement + ticket.slice(position + 1)
      expect(['malformed', 'bad-mac', 'wrong-mesh']).toContain(
        reasonOf(send(issuer, csr(keyFor('joiner'), { ticket: altered }))),
      )
    }
    expect(issuer.state().usedNonces).toHaveLength(0)
  })

  it('a request signed by another key than it names is refused (proof of possession)', () => {
    const issuer = newIssuer()
    const bytes = csr(keyFor('joiner'), { ticket: ticketFor() })
    const altered = Uint8Array.from(bytes)
    altered[altered.length - 1] = (altered[altered.length - 1] ?? 0) ^ 1
    expect(reasonOf(send(issuer, altered))).toBe('bad-signature')
  })

  it('create-ticket makes a ticket this CA accepts', () => {
    const issuer = newIssuer()
    const { result } = command(issuer, {
      type: 'create-ticket',
      requestId: 't',
      name: 'db1',
      zone: 'db',
      roles: ['agent'],
      ttlMs: HOUR_MS,
      bootstrap: ['/ip4/127.0.0.1/tcp/4001'],
    })
    if (!result.ok || result.command !== 'create-ticket') throw new Error('no ticket')
    expect(result.expiresAtMs).toBe(T0 + HOUR_MS)
    const ticket = parseTicket(result.ticket)
    expect(checkTicket(ticket, { secret: ticketSecret, meshFingerprint, nowMs: T0 }).ok).toBe(true)
    const signed = certificateOf(resultOf(send(issuer, csr(keyFor('db1'), { ticket: result.ticket }))))
    expect(signed.certificate.name).toBe('db1')
    const tooLong = command(issuer, {
      type: 'create-ticket',
      requestId: 't2',
      name: 'db1',
      zone: 'db',
      roles: ['agent'],
      ttlMs: 31 * DAY_MS,
      bootstrap: [],
    })
    expect(tooLong.result).toMatchObject({ ok: false, code: 'invalid' })
  })
})

describe('issuer: requests without ticket', () => {
  it('pending → listed → signed → the polling joiner gets the certificate', () => {
    const issuer = newIssuer()
    const joiner = keyFor('joiner')
    const request = csr(joiner, { name: 'db2', zone: 'db' })
    const first = send(issuer, request)
    expect(types(first)).toEqual(['persist', 'reply'])
    const pending = resultOf(first)
    if (pending.status !== 'pending') throw new Error('not pending')
    expect(issuer.listPending()).toEqual([
      {
        id: pending.id,
        name: 'db2',
        zone: 'db',
        peerId: expect.stringMatching(/^12D3KooW/),
        keyFingerprint: shortFingerprint(fingerprintOf(joiner.publicKey)),
        requestedAtMs: T0,
        expiresAtMs: T0 + 7 * DAY_MS,
      },
    ])
    // The identical request, polled later, gets the same id and changes nothing.
    const poll = send(issuer, request, T0 + HOUR_MS)
    expect(types(poll)).toEqual(['reply'])
    expect(resultOf(poll)).toEqual({ status: 'pending', id: pending.id })

    const signed = command(issuer, { type: 'sign-pending', requestId: 's', id: pending.id }, T0 + 2 * HOUR_MS)
    expect(types(signed.effects)).toEqual(['persist', 'publish-roster', 'command-reply'])
    if (!signed.result.ok || signed.result.command !== 'sign') throw new Error('not signed')
    expect(issuer.listPending()).toEqual([])

    const answer = certificateOf(resultOf(send(issuer, request, T0 + 3 * HOUR_MS)), T0 + 3 * HOUR_MS)
    expect(toHex(answer.bytes)).toBe(toHex(signed.result.certificate))
    expect(answer.certificate).toMatchObject({ name: 'db2', zone: 'db', roles: ['agent'] })
    expect(command(issuer, { type: 'sign-pending', requestId: 's2', id: pending.id }).result).toMatchObject({
      ok: false,
      code: 'not-pending',
    })
  })

  it('reject: the polling joiner is refused; unknown ids are reported', () => {
    const issuer = newIssuer()
    const request = csr(keyFor('joiner'), { name: 'x1', zone: 'db' })
    const pending = resultOf(send(issuer, request))
    if (pending.status !== 'pending') throw new Error('not pending')
    const rejected = command(issuer, { type: 'reject-pending', requestId: 'r', id: pending.id })
    expect(types(rejected.effects)).toEqual(['persist', 'command-reply'])
    expect(reasonOf(send(issuer, request))).toBe('rejected')
    expect(command(issuer, { type: 'reject-pending', requestId: 'r', id: 'nope' }).result).toMatchObject({
      ok: false,
      code: 'unknown-id',
    })
  })

  it('a request without name or zone is refused', () => {
    expect(reasonOf(send(newIssuer(), csr(keyFor('joiner'), { name: 'x' })))).toBe('malformed')
  })

  it('pending requests expire after a week', () => {
    const issuer = newIssuer()
    const request = csr(keyFor('joiner'), { name: 'db3', zone: 'db' })
    send(issuer, request)
    issuer.tick(T0 + 7 * DAY_MS)
    expect(issuer.drainEffects()).toEqual([])
    expect(issuer.listPending()).toHaveLength(1)
    issuer.tick(T0 + 7 * DAY_MS + 1)
    expect(types(issuer.drainEffects())).toEqual(['persist'])
    expect(issuer.listPending()).toHaveLength(0)
    expect(issuer.counters().pendingExpired).toBe(1)
    // The same request is now too old to start again.
    expect(reasonOf(send(issuer, request, T0 + 7 * DAY_MS + 1))).toBe('stale')
  })

  it('listPending shows who asked (the origin), when the driver said', () => {
    const issuer = newIssuer()
    issuer.step(
      {
        type: 'signing-request',
        requestId: 'o1',
        bytes: csr(keyFor('via-member'), { name: 'db4', zone: 'db' }),
        origin: 'web1',
      },
      T0,
    )
    issuer.drainEffects()
    expect(issuer.listPending()).toEqual([expect.objectContaining({ name: 'db4', origin: 'web1' })])
    expect(issuer.state().requests[0]?.origin).toBe('web1')
  })

  it('pendingMax is enforced and counted', () => {
    const issuer = newIssuer({}, { pendingMax: 2 })
    expect(reasonOf(send(issuer, csr(keyFor('a'), { name: 'a', zone: 'z' })))).toBe('pending')
    expect(reasonOf(send(issuer, csr(keyFor('b'), { name: 'b', zone: 'z' })))).toBe('pending')
    expect(reasonOf(send(issuer, csr(keyFor('c'), { name: 'c', zone: 'z' })))).toBe('limit')
    expect(issuer.counters().limitHits).toBe(1)
  })
})

describe('issuer: renewal', () => {
  function admitted(issuer: Issuer) {
    const joiner = keyFor('joiner')
    const signed = certificateOf(
      resultOf(send(issuer, csr(joiner, { ticket: ticketFor({ roles: ['agent', 'operator'] }) }))),
    )
    return { joiner, signed }
  }

  it('renews at two thirds of the lifetime with the same name, zone and roles; a resend gets the same certificate', () => {
    const issuer = newIssuer()
    const { joiner, signed } = admitted(issuer)
    const at = T0 + 20 * DAY_MS
    const request = csr(joiner, { certificate: signed.bytes, createdAtMs: at })
    const effects = send(issuer, request, at)
    expect(types(effects)).toEqual(['persist', 'reply'])
    const renewed = certificateOf(resultOf(effects), at)
    expect(renewed.certificate).toMatchObject({
      name: 'web1',
      zone: 'edge',
      roles: ['agent', 'operator'],
      notBeforeMs: at,
    })
    expect(renewed.certificate.serial).not.toBe(signed.certificate.serial)
    const again = send(issuer, request, at + 1000)
    expect(types(again)).toEqual(['reply'])
    expect(toHex(certificateOf(resultOf(again), at).bytes)).toBe(toHex(renewed.bytes))
  })

  it('refuses renewal too early, with another key’s certificate, with an expired or revoked certificate', () => {
    const issuer = newIssuer()
    const { joiner, signed } = admitted(issuer)
    expect(reasonOf(send(issuer, csr(joiner, { certificate: signed.bytes }), T0 + DAY_MS))).toBe('too-early')
    expect(
      reasonOf(
        send(
          issuer,
          csr(keyFor('thief'), { certificate: signed.bytes, createdAtMs: T0 + 20 * DAY_MS }),
          T0 + 20 * DAY_MS,
        ),
      ),
    ).toBe('bad-certificate')
    const late = T0 + 31 * DAY_MS
    expect(reasonOf(send(issuer, csr(joiner, { certificate: signed.bytes, createdAtMs: late }), late))).toBe(
      'bad-certificate',
    )
    command(issuer, { type: 'revoke', requestId: 'v', target: 'web1' })
    const at = T0 + 20 * DAY_MS
    expect(reasonOf(send(issuer, csr(joiner, { certificate: signed.bytes, createdAtMs: at }), at))).toBe(
      'revoked',
    )
  })
})

describe('issuer: revocation', () => {
  it('revoke by name bumps the version, persists, then publishes a list that verifies', () => {
    const issuer = newIssuer()
    expect(issuer.revocationList().list.version).toBe(0)
    const usedTicket = ticketFor()
    const signed = certificateOf(resultOf(send(issuer, csr(keyFor('joiner'), { ticket: usedTicket }))))
    const { effects, result } = command(issuer, { type: 'revoke', requestId: 'v', target: 'web1' }, T0 + 5)
    expect(types(effects)).toEqual(['persist', 'publish-roster', 'publish-revocations', 'command-reply'])
    expect(result).toMatchObject({
      ok: true,
      command: 'revoke',
      serials: [signed.certificate.serial],
      listVersion: 1,
    })
    const publish = effects.find(effect => effect.type === 'publish-revocations')
    const published = publish?.type === 'publish-revocations' ? publish.list : new Uint8Array()
    const verdict = verifyRevocationList(published, caKey.publicKey)
    if (!verdict.ok) throw new Error(verdict.reason)
    expect(verdict.signed.list.version).toBe(1)
    expect(verdict.signed.list.entries.map(entry => entry.peerId)).toEqual([signed.certificate.peerId])
    expect(issuer.isRevoked(signed.certificate.serial)).toBe(true)
    expect(command(issuer, { type: 'revoke', requestId: 'v', target: 'web1' }).result).toMatchObject({
      code: 'already-revoked',
    })
    expect(command(issuer, { type: 'revoke', requestId: 'v', target: 'nobody' }).result).toMatchObject({
      code: 'unknown-target',
    })
    // The same key retrying its (used) ticket no longer gets the revoked certificate.
    expect(reasonOf(send(issuer, csr(keyFor('joiner'), { ticket: usedTicket }), T0 + 10))).toBe('reused')
  })

  it('revoke by serial takes only that certificate', () => {
    const issuer = newIssuer()
    const a = command(issuer, {
      type: 'issue',
      requestId: 'i',
      publicKey: keyFor('a').publicKey,
      name: 'same',
      zone: 'z',
      roles: ['agent'],
    })
    command(issuer, {
      type: 'issue',
      requestId: 'i',
      publicKey: keyFor('b').publicKey,
      name: 'same',
      zone: 'z',
      roles: ['agent'],
    })
    if (!a.result.ok || a.result.command !== 'issue') throw new Error('not issued')
    const { result } = command(issuer, { type: 'revoke', requestId: 'v', target: a.result.serial })
    expect(result).toMatchObject({ ok: true, serials: [a.result.serial] })
    expect(issuer.revocationList().list.entries).toHaveLength(1)
  })

  it('entries leave the list once their certificate has expired (new version, published)', () => {
    const issuer = newIssuer()
    certificateOf(resultOf(send(issuer, csr(keyFor('joiner'), { ticket: ticketFor() }))))
    command(issuer, { type: 'revoke', requestId: 'v', target: 'web1' })
    issuer.tick(T0 + 2 * DAY_MS) // the used ticket nonce goes first: the ticket expired after a day
    expect(types(issuer.drainEffects())).toEqual(['persist'])
    expect(issuer.state().usedNonces).toEqual([])
    issuer.tick(T0 + 30 * DAY_MS)
    expect(issuer.drainEffects()).toEqual([])
    issuer.tick(T0 + 30 * DAY_MS + 60_001)
    const effects = issuer.drainEffects()
    expect(types(effects)).toEqual(['persist', 'publish-revocations'])
    expect(issuer.revocationList().list).toMatchObject({ version: 2, entries: [] })
    expect(issuer.state().issued).toEqual([])
  })
})

describe('issuer: restart from persisted state', () => {
  it('keeps used tickets, pending requests and the revocation list across encode/decode', () => {
    const first = newIssuer()
    const ticket = ticketFor()
    send(first, csr(keyFor('joiner'), { ticket }))
    const pending = resultOf(send(first, csr(keyFor('waiting'), { name: 'w1', zone: 'db' })))
    command(first, { type: 'revoke', requestId: 'v', target: 'web1' })
    const state = decodeIssuerState(encodeIssuerState(first.state()))
    expect(state).toEqual(first.state())

    const second = newIssuer({ state, randomBytes: seededRandomBytes('after-restart') })
    expect(reasonOf(send(second, csr(keyFor('thief'), { ticket }), T0 + 10))).toBe('reused')
    expect(second.listPending().map(p => p.id)).toEqual([pending.status === 'pending' ? pending.id : ''])
    expect(toHex(second.revocationList().bytes)).toBe(toHex(first.revocationList().bytes))
  })
})

describe('issuer: config', () => {
  it('fills defaults (7-day pending) and reports every problem at once', () => {
    expect(validateIssuerConfig().pendingTtlMs).toBe(7 * DAY_MS)
    try {
      validateIssuerConfig({ certificateTtlMs: 1000, pendingMax: 1e9, pendingTtlMs: -1 })
      throw new Error('accepted')
    } catch (err) {
      expect(err).toBeInstanceOf(IssuerConfigError)
      expect((err as IssuerConfigError).problems.length).toBeGreaterThanOrEqual(3)
    }
    expect(() =>
      createIssuer({ caKey, ticketSecret: new Uint8Array(3), randomBytes: seededRandomBytes('x') }),
    ).toThrow(TypeError)
  })
})
