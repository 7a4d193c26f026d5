/**
 * The CA handover message (src/ca/handover.ts): a valid one opens with every field; each check refuses
 * what it must: another signer, a seed that is not the CA key, another receiver or sender, a stale or
 * replayed copy, a holder set without the two ends or with duplicates, malformed and truncated bytes.
 */
import { describe, expect, it } from 'vitest'
import {
  createHandover,
  decodeHandoverAnswer,
  encodeHandoverAnswer,
  HANDOVER_WINDOW_MS,
  openHandover,
} from '../../src/ca/handover.js'
import { emptyIssuerState, encodeIssuerState } from '../../src/ca/issuer-state.js'
import { DOMAIN_CA_HANDOVER } from '../../src/wire/domains.js'
import { sealEnvelope } from '../../src/wire/envelope.js'
import { keyFor, secretFor, T0 } from './fixtures.js'

const caKey = keyFor('ca')
const A = '12D3KooWA'
const B = '12D3KooWB'
const C = '12D3KooWC'
const base = {
  caKey,
  from: A,
  to: B,
  issuedAtMs: T0,
  holders: [A, B],
  ticketSecret: secretFor('tickets'),
  issuerState: encodeIssuerState(emptyIssuerState()),
}
const check = { caPublicKey: caKey.publicKey, self: B, sender: A, nowMs: T0 + 1_000 }

describe('CA handover', () => {
  it('opens a valid handover with the CA key, secret, state and holders', () => {
    const opened = openHandover(createHandover(base), check)
    expect(opened.ok).toBe(true)
    if (!opened.ok) return
    expect(opened.handover.caKey.publicKey).toEqual(caKey.publicKey)
    expect(opened.handover.ticketSecret).toEqual(base.ticketSecret)
    expect(opened.handover.holders).toEqual([A, B])
    expect(opened.handover.issuerStateBytes).toEqual(base.issuerState)
  })

  const refusal = (bytes: Uint8Array, over: Partial<typeof check> = {}) => {
    const opened = openHandover(bytes, { ...check, ...over })
    return opened.ok ? 'accepted' : opened.reason
  }

  it('refuses one signed by another key, and one carrying a key that is not the CA key', () => {
    const other = keyFor('mallory')
    expect(refusal(createHandover({ ...base, caKey: other }))).toBe('bad-signature')
    // Signed by the CA key, but the seed inside is another key's.
    const body = {
      v: 1,
      from: A,
      to: B,
      issuedAtMs: T0,
      holders: [A, B],
      caKey: other.secretKey,
      ticketSecret: base.ticketSecret,
      issuerState: base.issuerState,
    }
    expect(refusal(sealEnvelope(DOMAIN_CA_HANDOVER, caKey, body))).toBe('wrong-key')
  })

  it('refuses a copy for another node, from another node, or outside the time window', () => {
    expect(refusal(createHandover(base), { self: C })).toBe('not-for-us')
    expect(refusal(createHandover(base), { sender: C })).toBe('wrong-sender')
    expect(refusal(createHandover(base), { nowMs: T0 + HANDOVER_WINDOW_MS + 1 })).toBe('stale')
    expect(refusal(createHandover(base), { nowMs: T0 - HANDOVER_WINDOW_MS - 1 })).toBe('stale')
  })

  it('refuses holder sets that do not name both ends, repeat a holder or are too large', () => {
    expect(refusal(createHandover({ ...base, holders: [A, C] }))).toBe('bad-holders')
    expect(refusal(createHandover({ ...base, holders: [A, B, B] }))).toBe('bad-holders')
    expect(refusal(createHandover({ ...base, holders: [B] }))).toBe('bad-holders')
    const many = Array.from({ length: 8 }, (_, i) => `12D3KooW${i}`)
    expect(refusal(createHandover({ ...base, holders: [A, B, ...many] }))).toBe('malformed')
  })

  it('refuses malformed and truncated bytes and a state that does not decode, without throwing', () => {
    const good = createHandover(base)
    for (let cut = 0; cut < good.byteLength; cut += 7)
      expect(refusal(good.subarray(0, cut))).not.toBe('accepted')
    expect(refusal(new Uint8Array([0xff, 0x00, 0x01]))).toBe('malformed')
    expect(refusal(createHandover({ ...base, issuerState: new Uint8Array([1, 2, 3]) }))).toBe('malformed')
  })

  it('encodes and decodes answers', () => {
    expect(decodeHandoverAnswer(encodeHandoverAnswer({ ok: true }))).toEqual({ ok: true })
    const no = { ok: false as const, reason: 'stale', detail: 'issued 200 s ago' }
    expect(decodeHandoverAnswer(encodeHandoverAnswer(no))).toEqual(no)
    expect(() => decodeHandoverAnswer(new Uint8Array([0xa0]))).toThrow()
  })
})
