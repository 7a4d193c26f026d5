// Proves on real libp2p over 127.0.0.1 that a certified member cannot fill the CA's pending table
// (security item 6): the member opens `/mesh/ca/1.0.0` itself, as the attack did, and sends 200
// ticketless signing requests with a fresh key each. The CA's per-peer token bucket answers most of
// them `rate-limited`, the issuer's per-origin bound answers the rest `limit` once 16 wait, so the
// table holds at most `pendingPerOriginMax` requests from that member; a ticketless join from another
// origin still gets `pending`, and `reject-all-pending` for the member clears exactly its requests.
import { lpStream } from '@libp2p/utils'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { fingerprintOf } from '../../src/ca/fingerprint.js'
import { PENDING_PER_ORIGIN_MAX_DEFAULT } from '../../src/ca/issuer.js'
import {
  CA_PROTOCOL,
  decodeJoinAnswer,
  encodeJoinRequest,
  JOIN_ANSWER_BYTES_MAX,
} from '../../src/ca/join-wire.js'
import { createSigningRequest } from '../../src/ca/signing-request.js'
import { dialTarget } from '../../src/node/dial.js'
import { DEFAULT_CA_RATE_LIMIT } from '../../src/node/enrolment/index.js'
import { JoinError, requestCertificate } from '../../src/node/enrolment/joiner.js'
import { generateSigningKey, secureRandomBytes } from '../../src/node/keys.js'
import { startTestMesh, type TestMesh, type TestNode } from './harness.js'

const FLOOD_REQUESTS = 200
const PARALLEL = 10
const EXCHANGE_TIMEOUT_MS = 5_000

let mesh: TestMesh

beforeAll(async () => {
  mesh = await startTestMesh([
    { name: 'ca1', zone: 'core', ca: true },
    { name: 'mal', zone: 'edge' },
  ])
  const [ca1, mal] = [mesh.node('ca1'), mesh.node('mal')]
  const [fromCa, fromMal] = await Promise.all([
    ca1.admission.waitFor(mal.peerId, 10_000),
    mal.admission.waitFor(ca1.peerId, 10_000),
  ])
  if (fromCa === undefined || fromMal === undefined) throw new Error('ca1 and mal did not admit each other')
}, 30_000)

afterAll(async () => {
  await mesh?.stop()
})

/** One ticketless request with a fresh key, sent from `from` to `ca` over `/mesh/ca`; the answer's code. */
async function ticketlessOverCa(from: TestNode, ca: TestNode, n: number): Promise<string> {
  const signal = AbortSignal.timeout(EXCHANGE_TIMEOUT_MS)
  const bytes = createSigningRequest(generateSigningKey(), {
    createdAtMs: Date.now(),
    nonce: secureRandomBytes(16),
    name: `flood${n}`,
    zone: 'edge',
  }).bytes
  const target = dialTarget(ca.peerId, ca.addrs(), peer => from.host.getConnections(peer).length > 0)
  const stream = await from.host.dialProtocol(target, CA_PROTOCOL, { signal })
  try {
    const lp = lpStream(stream, { maxDataLength: JOIN_ANSWER_BYTES_MAX })
    await lp.write(encodeJoinRequest({ type: 'csr', bytes }), { signal })
    const answer = decodeJoinAnswer((await lp.read({ signal })).subarray())
    if (!answer.ok) return 'bad-answer'
    if (answer.message.type === 'error') return answer.message.code
    if (answer.message.type !== 'result') return answer.message.type
    const result = answer.message.result
    return result.status === 'refused' ? result.reason : result.status
  } finally {
    await stream.close({ signal }).catch(() => stream.abort(new Error('done')))
  }
}

describe('CA flood: ticketless requests over /mesh/ca from one member', () => {
  it('refuses most of 200 requests, holds at most 16 from the member, still admits another origin', async () => {
    const [ca1, mal] = [mesh.node('ca1'), mesh.node('mal')]
    const codes: string[] = []
    const startedMs = Date.now()
    for (let sent = 0; sent < FLOOD_REQUESTS; sent += PARALLEL) {
      const batch = Array.from({ length: PARALLEL }, (_, i) =>
        ticketlessOverCa(mal, ca1, sent + i).catch((err: Error) => `error: ${err.message}`),
      )
      codes.push(...(await Promise.all(batch)))
    }
    const floodS = (Date.now() - startedMs) / 1000
    const tally: Record<string, number> = {}
    for (const code of codes) tally[code] = (tally[code] ?? 0) + 1

    expect(Object.keys(tally).sort()).toEqual(['limit', 'pending', 'rate-limited'])
    expect(tally.pending).toBe(PENDING_PER_ORIGIN_MAX_DEFAULT)
    // The bucket lets through its burst plus what refills while the flood runs (measured: on a loaded
    // machine the flood takes longer and more refills), never the whole flood.
    const { burst, ratePerSecond } = DEFAULT_CA_RATE_LIMIT.perKey
    const letThrough = burst + Math.ceil(ratePerSecond * floodS) + 1
    expect(tally['rate-limited']).toBeGreaterThanOrEqual(
      Math.min(FLOOD_REQUESTS - letThrough, FLOOD_REQUESTS / 2),
    )
    expect(ca1.enrolment.counters.caRateLimited).toBe(tally['rate-limited'])
    const fromMal = ca1.issuer!.listPending().filter(p => p.origin === 'mal')
    expect(fromMal).toHaveLength(PENDING_PER_ORIGIN_MAX_DEFAULT)
    expect(ca1.issuer!.listPending()).toHaveLength(PENDING_PER_ORIGIN_MAX_DEFAULT)

    // A ticketless join straight to the CA node is another origin (its IP): it still waits.
    let pendingId: string | undefined
    const joining = requestCertificate({
      key: generateSigningKey(),
      bootstrap: ca1.addrs(),
      fingerprint: fingerprintOf(mesh.ca.key.publicKey),
      name: 'honest',
      zone: 'edge',
      pollIntervalMs: 100,
      attemptTimeoutMs: 5_000,
      timeoutMs: 10_000,
      onPending: id => {
        pendingId = id
      },
    })
    const deadline = Date.now() + 5_000
    while (pendingId === undefined && Date.now() < deadline) await new Promise(r => setTimeout(r, 25))
    expect(pendingId).toBeDefined()
    expect(ca1.issuer!.listPending().find(p => p.id === pendingId)?.origin).toBe('ip:127.0.0.1')

    // The operator clears the member's requests in one command; the honest one stays.
    const effects = await ca1.issuer!.run({ type: 'reject-all-pending', requestId: 'bulk', origin: 'mal' })
    const reply = effects.find(e => e.type === 'command-reply')
    expect(reply?.type === 'command-reply' ? reply.result : undefined).toMatchObject({
      ok: true,
      command: 'reject-all',
      rejected: PENDING_PER_ORIGIN_MAX_DEFAULT,
    })
    expect(ca1.issuer!.listPending().map(p => p.id)).toEqual([pendingId])

    await ca1.issuer!.run({ type: 'reject-pending', requestId: 'end', id: pendingId! })
    const error = await joining.then(
      () => undefined,
      (err: unknown) => err,
    )
    expect(error).toBeInstanceOf(JoinError)
    expect((error as JoinError).code).toBe('rejected')
  }, 30_000)
})
