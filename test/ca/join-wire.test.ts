// Proves the join protocol's pure parts: every message round-trips, random and truncated bytes never
// crash the decoders (typed `malformed`/`too-large` instead), and the joiner's two checks refuse what
// they must: the mesh proof (wrong CA key, certificate of another CA, expired, another peer's
// certificate) and the issued answer (another CA, another key, name, zone or roles, bad list).
import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { issueCertificate, newSerial } from '../../src/ca/certificate.js'
import { fingerprintOf } from '../../src/ca/fingerprint.js'
import {
  checkIssued,
  checkMeshProof,
  decodeJoinAnswer,
  decodeJoinRequest,
  encodeJoinAnswer,
  encodeJoinRequest,
  JOIN_REQUEST_BYTES_MAX,
  type JoinAnswer,
  type JoinRequest,
} from '../../src/ca/join-wire.js'
import { signRevocationList } from '../../src/ca/revocation.js'
import { secureRandomBytes } from '../../src/node/keys.js'
import { signingKeyFromSeed } from '../../src/wire/ed25519.js'

const key = (n: number) => signingKeyFromSeed(new Uint8Array(32).fill(n))
const ca = key(1)
const otherCa = key(2)
const member = key(3)
const joiner = key(4)
const NOW = 1_800_000_000_000

function cert(
  issuer = ca,
  subject = member,
  overrides: Partial<{ name: string; zone: string; notAfterMs: number }> = {},
) {
  return issueCertificate(issuer, {
    serial: newSerial(secureRandomBytes),
    name: overrides.name ?? 'n1',
    zone: overrides.zone ?? 'edge',
    roles: ['agent'],
    publicKey: subject.publicKey,
    notBeforeMs: NOW - 100_000,
    notAfterMs: overrides.notAfterMs ?? NOW + 86_400_000,
  })
}
const list = (issuer = ca) => signRevocationList(issuer, { version: 0, issuedAtMs: NOW, entries: [] }).bytes

describe('join protocol codec', () => {
  const requests: JoinRequest[] = [{ type: 'hello' }, { type: 'csr', bytes: new Uint8Array([1, 2, 3]) }]
  const answers: JoinAnswer[] = [
    { type: 'hello', caPublicKey: ca.publicKey, cert: cert().bytes },
    {
      type: 'result',
      result: {
        status: 'issued',
        certificate: cert().bytes,
        caPublicKey: ca.publicKey,
        revocationList: list(),
      },
    },
    { type: 'result', result: { status: 'pending', id: 'abcde' } },
    { type: 'result', result: { status: 'refused', reason: 'reused', message: 'ticket was already used' } },
    { type: 'error', code: 'rate-limited', message: 'slow down' },
  ]
  it.each(requests)('round-trips request %#', request => {
    expect(decodeJoinRequest(encodeJoinRequest(request))).toEqual({ ok: true, message: request })
  })
  it.each(answers)('round-trips answer %#', answer => {
    const bytes = encodeJoinAnswer(answer)
    const decoded = decodeJoinAnswer(bytes)
    if (!decoded.ok) throw new Error(decoded.detail)
    expect(decoded.message.type).toBe(answer.type)
    // Byte-exact: re-encoding what was decoded gives the same bytes (Buffer vs Uint8Array aside).
    expect(Buffer.from(encodeJoinAnswer(decoded.message)).equals(Buffer.from(bytes))).toBe(true)
  })

  it('refuses unknown types, reasons and codes, and oversized requests', () => {
    const bad = [
      encodeJoinRequest({ type: 'csr', bytes: new Uint8Array(JOIN_REQUEST_BYTES_MAX) }),
      encodeJoinAnswer({ type: 'error', code: 'nope' as never, message: '' }),
      encodeJoinAnswer({
        type: 'result',
        result: { status: 'refused', reason: 'nope' as never, message: '' },
      }),
      encodeJoinAnswer({ type: 'hello', caPublicKey: new Uint8Array(31), cert: new Uint8Array(1) }),
    ]
    expect(decodeJoinRequest(bad[0]!).ok).toBe(false)
    for (const bytes of bad.slice(1)) expect(decodeJoinAnswer(bytes).ok).toBe(false)
    expect(decodeJoinRequest(encodeJoinAnswer(answers[4]!))).toMatchObject({ ok: false, reason: 'malformed' })
  })

  it('never throws on random or truncated bytes', () => {
    const valid = answers.map(a => encodeJoinAnswer(a))
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 300 }), fc.nat(), (bytes, cut) => {
        for (const input of [bytes, valid[cut % valid.length]!.subarray(0, cut % 200)]) {
          const request = decodeJoinRequest(input)
          const answer = decodeJoinAnswer(input)
          if (!request.ok) expect(['malformed', 'too-large']).toContain(request.reason)
          if (!answer.ok) expect(['malformed', 'too-large']).toContain(answer.reason)
        }
      }),
    )
  })
})

describe('checkMeshProof', () => {
  const expected = { fingerprint: fingerprintOf(ca.publicKey), nowMs: NOW, clockSkewToleranceMs: 1_000 }
  const peer = cert().certificate.peerId
  it.each([
    ['a genuine member', ca.publicKey, cert(), peer, true],
    ['another CA key', otherCa.publicKey, cert(otherCa), peer, false],
    ['our CA key with a certificate of another CA', ca.publicKey, cert(otherCa), peer, false],
    ['an expired certificate', ca.publicKey, cert(ca, member, { notAfterMs: NOW - 10_000 }), peer, false],
    [
      'a real certificate replayed by another peer',
      ca.publicKey,
      cert(),
      cert(ca, joiner).certificate.peerId,
      false,
    ],
  ] as const)('%s → %s', (_label, caPublicKey, certificate, remotePeer, ok) => {
    const proof = checkMeshProof({ caPublicKey, cert: certificate.bytes }, { ...expected, remotePeer })
    expect(proof.ok).toBe(ok)
  })
})

describe('checkIssued', () => {
  const expect0 = {
    caPublicKey: ca.publicKey,
    publicKey: joiner.publicKey,
    name: 'n1',
    zone: 'edge',
    roles: ['agent'],
    nowMs: NOW,
    clockSkewToleranceMs: 1_000,
  }
  const issued = (certificate = cert(ca, joiner), caPublicKey = ca.publicKey, revocationList = list()) =>
    ({ status: 'issued', certificate: certificate.bytes, caPublicKey, revocationList }) as const
  it.each([
    ['the expected certificate', issued(), true],
    ['another CA key in the answer', issued(cert(otherCa, joiner), otherCa.publicKey, list(otherCa)), false],
    ['a certificate for another key', issued(cert(ca, member)), false],
    ['another name', issued(cert(ca, joiner, { name: 'n2' })), false],
    ['another zone', issued(cert(ca, joiner, { zone: 'core' })), false],
    ['a revocation list of another CA', issued(cert(ca, joiner), ca.publicKey, list(otherCa)), false],
  ] as const)('%s → %s', (_label, result, ok) => {
    expect(checkIssued(result, expect0).ok).toBe(ok)
  })
  it('checks roles when they are expected', () => {
    expect(checkIssued(issued(), { ...expect0, roles: ['agent', 'operator'] }).ok).toBe(false)
  })
})
