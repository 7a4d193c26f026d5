/**
 * Proves the signed membership record and suspicion, and the message codec: a record verifies with its
 * certificate and carries what was signed; a record whose identity copies differ from its certificate,
 * one signed by another key, one with a revoked or unknown certificate are refused with their reason;
 * `peekRecord` reads identity and incarnation without checks; a suspicion verifies only under the
 * accuser's key; every message type round-trips and out-of-bounds fields are refused.
 */
import { describe, expect, it } from 'vitest'
import {
  createRecord,
  createSuspicion,
  openSuspicion,
  peekRecord,
  RECORD_ADDRS_MAX,
  verifyRecord,
  verifySuspicion,
} from '../../src/membership/record.js'
import {
  DIGEST_ENTRIES_MAX,
  decodeMemberMessage,
  encodeMemberMessage,
  MESSAGE_UPDATES_MAX,
  type WireMessage,
} from '../../src/membership/wire.js'
import { DecodeError, decodeCbor, encodeCbor } from '../../src/wire/cbor.js'
import { DOMAIN_MEMBER } from '../../src/wire/domains.js'
import { signingKeyFromSeed } from '../../src/wire/ed25519.js'
import { openEnvelope, sealEnvelope } from '../../src/wire/envelope.js'
import { FakeCa } from '../gossip/fixtures.js'

const NOW = 1_800_000_000_000
const init = {
  addrs: ['/ip4/127.0.0.1/tcp/4001'],
  facts: { os: 'linux' },
  bootedAtS: 1_700_000_000,
  incarnation: NOW,
  left: false,
}

describe('member records', () => {
  it('verify with their certificate and carry what was signed', () => {
    const ca = new FakeCa()
    const a = ca.issue('a', { zone: 'web' })
    const bytes = createRecord(a.key, a.certificate, init)
    const verdict = verifyRecord(bytes, ca.verifier, NOW)
    expect(verdict.ok).toBe(true)
    if (!verdict.ok) return
    expect(verdict.verified.record).toMatchObject({
      name: 'a',
      zone: 'web',
      peerId: a.certificate.certificate.peerId,
      addrs: init.addrs,
      facts: { os: 'linux' },
      bootedAtS: init.bootedAtS,
      incarnation: NOW,
      left: false,
    })
    expect(peekRecord(bytes)).toEqual({ peerId: a.certificate.certificate.peerId, incarnation: NOW })
  })

  it('are refused when signed by another key, revoked, or when their identity differs', () => {
    const ca = new FakeCa()
    const a = ca.issue('a', { zone: 'web' })
    const b = ca.issue('b', { zone: 'web' })
    const forged = createRecord(b.key, a.certificate, init)
    expect(verifyRecord(forged, ca.verifier, NOW)).toMatchObject({ ok: false, reason: 'bad-signature' })
    // The body claims zone db while the certificate says web.
    const body = { ...openEnvelope(createRecord(a.key, a.certificate, init), 1 << 20).body, zone: 'db' }
    const lying = sealEnvelope(DOMAIN_MEMBER, a.key, body as never)
    expect(verifyRecord(lying, ca.verifier, NOW)).toMatchObject({ ok: false, reason: 'identity-mismatch' })
    ca.revoke(a)
    expect(verifyRecord(createRecord(a.key, a.certificate, init), ca.verifier, NOW)).toMatchObject({
      ok: false,
      reason: 'bad-certificate',
    })
    const stranger = new FakeCa().issue('a', { zone: 'web' })
    expect(verifyRecord(createRecord(stranger.key, stranger.certificate, init), ca.verifier, NOW).ok).toBe(
      false,
    )
  })

  it('refuse out-of-bounds content when created', () => {
    const ca = new FakeCa()
    const a = ca.issue('a')
    const addrs = Array.from({ length: RECORD_ADDRS_MAX + 1 }, (_, i) => `/ip4/127.0.0.1/tcp/${i}`)
    expect(() => createRecord(a.key, a.certificate, { ...init, addrs })).toThrow(TypeError)
    expect(() => createRecord(a.key, a.certificate, { ...init, incarnation: -1 })).toThrow(TypeError)
    expect(() => createRecord(a.key, a.certificate, { ...init, incarnation: 1.5 })).toThrow(TypeError)
  })
})

describe('suspicions', () => {
  it('verify under the accuser key only', () => {
    const accuser = signingKeyFromSeed(new Uint8Array(32).fill(3))
    const other = signingKeyFromSeed(new Uint8Array(32).fill(4))
    const bytes = createSuspicion(accuser, { subject: 'peer-b', incarnation: 7, from: 'peer-a' })
    const opened = openSuspicion(bytes)
    expect(opened.suspicion).toEqual({ v: 1, subject: 'peer-b', incarnation: 7, from: 'peer-a' })
    expect(verifySuspicion(opened, accuser.publicKey)).toBe(true)
    expect(verifySuspicion(opened, other.publicKey)).toBe(false)
    expect(() => openSuspicion(encodeCbor({ body: new Uint8Array(3), sig: new Uint8Array(64) }))).toThrow(
      DecodeError,
    )
  })
})

describe('member messages', () => {
  const record = { kind: 'record', bytes: new Uint8Array([1, 2, 3]) } as const
  const suspicion = { kind: 'suspicion', bytes: new Uint8Array([4, 5]) } as const
  const messages: WireMessage[] = [
    { type: 'ping', seq: 1, updates: [record] },
    { type: 'ack', seq: 2 ** 40, updates: [] },
    { type: 'ping-req', seq: 9, target: 'peer-c', updates: [suspicion] },
    { type: 'gossip', updates: [record, suspicion] },
    {
      type: 'sync',
      reply: true,
      digest: [{ id: 'peer-a', incarnation: 5, state: 'suspect' }],
      updates: [record],
    },
  ]
  it('round-trip every type', () => {
    for (const m of messages) expect(decodeMemberMessage(encodeMemberMessage(m))).toEqual(m)
  })

  it('refuse unknown types, missing fields and lists over their bounds', () => {
    const bad = [
      encodeCbor({ t: 9, u: [] }),
      encodeCbor({ t: 0, u: [] }), // ping without seq
      encodeCbor({ t: 0, s: -1, u: [] }),
      encodeCbor({ t: 2, s: 1, u: [] }), // ping-req without target
      encodeCbor({ t: 4, u: [], d: [] }), // sync without reply flag
      encodeCbor({ t: 3, u: [[2, new Uint8Array(1)]] }),
      encodeCbor({ t: 3, u: [[0, new Uint8Array(0)]] }),
      encodeCbor({ t: 3, u: Array.from({ length: MESSAGE_UPDATES_MAX + 1 }, () => [0, new Uint8Array(1)]) }),
      encodeCbor({
        t: 4,
        r: false,
        u: [],
        d: Array.from({ length: DIGEST_ENTRIES_MAX + 1 }, () => ['p', 1, 0]),
      }),
      encodeCbor({ t: 4, r: false, u: [], d: [['p', 1, 7]] }),
      encodeCbor({ t: 3, u: [], extra: 1 }),
    ]
    for (const bytes of bad) expect(() => decodeMemberMessage(bytes)).toThrow(DecodeError)
    expect(decodeCbor(encodeMemberMessage(messages[0] as WireMessage), 1 << 20)).toHaveProperty('t', 0)
  })
})
