// Proves joining on real libp2p over 127.0.0.1: a new key gets a certificate with a ticket (directly
// from the CA node and forwarded by a non-CA member), the new node then runs as a certified member;
// altered, forged, reused, expired and foreign tickets and an impostor bootstrap node are refused
// (the impostor before the request is sent); a request without ticket waits until the operator
// signs or rejects it; and the join protocol's per-IP rate limit answers "rate-limited".

import { mkdtemp, rm } from 'node:fs/promises'
import { type AddressInfo, createServer } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { noise } from '@chainsafe/libp2p-noise'
import { yamux } from '@chainsafe/libp2p-yamux'
import { tcp } from '@libp2p/tcp'
import { lpStream } from '@libp2p/utils'
import { multiaddr } from '@multiformats/multiaddr'
import { createLibp2p } from 'libp2p'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { loadHome, saveNodeIdentity, saveRevocations } from '../../src/agent/home.js'
import { fingerprintOf } from '../../src/ca/fingerprint.js'
import type { Role } from '../../src/ca/index.js'
import {
  decodeJoinAnswer,
  encodeJoinRequest,
  JOIN_ANSWER_BYTES_MAX,
  JOIN_PROTOCOL,
} from '../../src/ca/join-wire.js'
import { createTicket, parseTicket } from '../../src/ca/ticket.js'
import { DEFAULT_JOIN_RATE_LIMIT } from '../../src/node/enrolment/index.js'
import {
  JoinError,
  type JoinProgress,
  type JoinResult,
  requestCertificate,
} from '../../src/node/enrolment/joiner.js'
import { TOPICS } from '../../src/node/host.js'
import { generateSigningKey, libp2pKeyOf } from '../../src/node/keys.js'
import { createMeshNode, internalsOf } from '../../src/node/node.js'
import type { MeshNode } from '../../src/node/node-types.js'
import { createTestCa, startTestMesh, type TestMesh, testConfig, waitFor } from './harness.js'

const FAST = { pollIntervalMs: 100, attemptTimeoutMs: 5_000, timeoutMs: 10_000 }

async function ticketFrom(
  node: MeshNode,
  name: string,
  options: { zone?: string; roles?: Role[]; ttlMs?: number; bootstrap?: string[] } = {},
): Promise<string> {
  const effects = await node.issuer!.run({
    type: 'create-ticket',
    requestId: `t-${name}`,
    name,
    zone: options.zone ?? 'edge',
    roles: options.roles ?? ['agent'],
    ttlMs: options.ttlMs ?? 60_000,
    bootstrap: options.bootstrap ?? node.addrs(),
  })
  const reply = effects.find(e => e.type === 'command-reply')
  if (reply?.type !== 'command-reply' || !reply.result.ok || reply.result.command !== 'create-ticket') {
    throw new Error('ticket not created')
  }
  return reply.result.ticket
}

/** A 127.0.0.1 TCP port that was just bound and closed: nothing listens there. */
async function closedPort(): Promise<number> {
  const server = createServer()
  await new Promise<void>(resolve => server.listen(0, '127.0.0.1', resolve))
  const { port } = server.address() as AddressInfo
  await new Promise(resolve => server.close(resolve))
  return port
}

async function joinError(promise: Promise<unknown>): Promise<JoinError> {
  try {
    await promise
  } catch (err) {
    if (err instanceof JoinError) return err
    throw err
  }
  throw new Error('expected the join to fail')
}

describe('enrolment: joining a mesh on 127.0.0.1', () => {
  let mesh: TestMesh
  let impostor: TestMesh
  const extra: MeshNode[] = []
  const homes: string[] = []

  const startJoined = async (result: JoinResult, key: ReturnType<typeof generateSigningKey>) => {
    const node = await createMeshNode({
      node: { key, certificate: result.certificate },
      caPublicKey: result.caPublicKey,
      revocations: result.revocationList,
      config: testConfig({ bootstrap: [...result.bootstrap] }),
    })
    extra.push(node)
    return node
  }

  beforeAll(async () => {
    mesh = await startTestMesh([
      { name: 'ca1', zone: 'core', ca: true },
      { name: 'sat', zone: 'edge' },
    ])
    impostor = await startTestMesh([{ name: 'fake', zone: 'core', ca: true }], {
      ca: createTestCa('impostor'),
    })
    await mesh.converge()
  })
  afterAll(async () => {
    await Promise.all(extra.map(n => n.stop().catch(() => {})))
    await mesh?.stop()
    await impostor?.stop()
    await Promise.all(homes.map(h => rm(h, { recursive: true, force: true })))
  })

  it('joins with a ticket, stores the certificate and runs as a member both sides see', async () => {
    const ca1 = mesh.node('ca1')
    const ticket = await ticketFrom(ca1, 'n1', { zone: 'edge' })
    const key = generateSigningKey()
    const home = await mkdtemp(join(tmpdir(), 'mesh-join-'))
    homes.push(home)
    const t0 = performance.now()
    const result = await requestCertificate({ key, ticket, ...FAST })
    await saveRevocations(home, result.revocationList)
    await saveNodeIdentity(home, { key, certificate: result.certificate }, result.caPublicKey)
    const storedMs = performance.now() - t0
    const loaded = await loadHome(home)
    expect(loaded.node.certificate.certificate.name).toBe('n1')

    const cert = result.certificate.certificate
    expect([cert.name, cert.zone, cert.roles]).toEqual(['n1', 'edge', ['agent']])
    expect(result.caPublicKey).toEqual(mesh.ca.key.publicKey)
    expect(result.answeredBy).toBe(ca1.addrs()[0])

    const node = await createMeshNode({
      node: loaded.node,
      caPublicKey: loaded.caPublicKey,
      revocations: loaded.revocations,
      config: testConfig({ bootstrap: [...result.bootstrap] }),
    })
    extra.push(node)
    await node.start()
    await waitFor(
      () =>
        ca1.members().some(m => m.name === 'n1' && m.state === 'alive') &&
        node.members().some(m => m.name === 'ca1' && m.state === 'alive'),
      10_000,
      'n1 and ca1 to see each other',
    )
    const memberMs = performance.now() - t0
    // And n1 takes part in gossip: ca1 is its peer on the request topic.
    await waitFor(
      () =>
        internalsOf(node)
          .host.services.pubsub.getSubscribers(TOPICS.request)
          .some(p => p.toString() === ca1.peerId),
      5_000,
      'n1 to see ca1 on the request topic',
    )
    console.info(
      `join timing: requestCertificate → stored certificate ${storedMs.toFixed(0)} ms, → members of each other ${memberMs.toFixed(0)} ms`,
    )
  })

  it('joins through a member without the CA, which forwards the request', async () => {
    const sat = mesh.node('sat')
    const ticket = await ticketFrom(mesh.node('ca1'), 'n2', { bootstrap: sat.addrs() })
    const before = sat.enrolment.counters.forwarded
    const key = generateSigningKey()
    const result = await requestCertificate({ key, ticket, ...FAST })
    expect(result.certificate.certificate.name).toBe('n2')
    expect(result.answeredBy).toBe(sat.addrs()[0])
    expect(sat.enrolment.counters.forwarded).toBe(before + 1)
    const node = await startJoined(result, key)
    await node.start()
    await waitFor(
      () =>
        mesh
          .node('ca1')
          .members()
          .some(m => m.name === 'n2' && m.state === 'alive'),
      10_000,
      'ca1 to see n2',
    )
  })

  it('refuses a forged ticket (wrong MAC) and changes nothing', async () => {
    const real = parseTicket(await ticketFrom(mesh.node('ca1'), 'forged'))
    const forged = createTicket(new Uint8Array(32).fill(7), { ...real, name: 'forged' })
    const error = await joinError(requestCertificate({ key: generateSigningKey(), ticket: forged, ...FAST }))
    expect([error.code, error.reason]).toEqual(['refused', 'bad-mac'])
    expect(error.message).toMatch(/not genuine/)
    // The genuine ticket is still unused.
    const ok = await requestCertificate({ key: generateSigningKey(), ticket: real.text, ...FAST })
    expect(ok.certificate.certificate.name).toBe('forged')
  })

  it('refuses an altered ticket line before dialling', async () => {
    const ticket = await ticketFrom(mesh.node('ca1'), 'altered')
    const altered = `${ticket.slice(0, 20)}${ticket[20] === 'A' ? 'B' : 'A'}${ticket.slice(21)}`
    const error = await joinError(requestCertificate({ key: generateSigningKey(), ticket: altered, ...FAST }))
    // Either unreadable locally or refused by the CA's MAC check; never accepted.
    expect(['invalid-input', 'refused', 'wrong-mesh']).toContain(error.code)
  })

  it('refuses a reused ticket', async () => {
    const ticket = await ticketFrom(mesh.node('ca1'), 'once')
    await requestCertificate({ key: generateSigningKey(), ticket, ...FAST })
    const error = await joinError(requestCertificate({ key: generateSigningKey(), ticket, ...FAST }))
    expect([error.code, error.reason]).toEqual(['refused', 'reused'])
    expect(error.message).toMatch(/already used/)
  })

  it('refuses an expired ticket', async () => {
    const ticket = await ticketFrom(mesh.node('ca1'), 'late', { ttlMs: 1 })
    await new Promise(r => setTimeout(r, 20))
    const error = await joinError(requestCertificate({ key: generateSigningKey(), ticket, ...FAST }))
    expect([error.code, error.reason]).toEqual(['refused', 'expired'])
  })

  it('refuses a ticket of another mesh without sending the request', async () => {
    const other = createTestCa('other-mesh')
    const ticket = createTicket(other.ticketSecret, {
      meshFingerprint: fingerprintOf(other.key.publicKey),
      bootstrap: mesh.node('ca1').addrs(),
      name: 'stranger',
      zone: 'edge',
      roles: ['agent'],
      expiresAtMs: Date.now() + 60_000,
      nonce: new Uint8Array(16).fill(1),
    })
    const answeredBefore = mesh.node('ca1').enrolment.counters.joinAnswered
    const error = await joinError(requestCertificate({ key: generateSigningKey(), ticket, ...FAST }))
    expect(error.code).toBe('wrong-mesh')
    expect(error.message).toMatch(/could not prove the mesh fingerprint/)
    expect(mesh.node('ca1').enrolment.counters.joinAnswered).toBe(answeredBefore)
  })

  it('refuses a bootstrap node of another CA before revealing the ticket', async () => {
    const fake = impostor.node('fake')
    const ticket = await ticketFrom(mesh.node('ca1'), 'victim', { bootstrap: fake.addrs() })
    const error = await joinError(requestCertificate({ key: generateSigningKey(), ticket, ...FAST }))
    expect(error.code).toBe('wrong-mesh')
    expect(fake.enrolment.counters.joinStreams).toBeGreaterThan(0)
    expect(fake.enrolment.counters.joinAnswered).toBe(0) // it never received the signing request
    // The ticket was never spent: it still works at the real mesh.
    const ok = await requestCertificate({
      key: generateSigningKey(),
      ticket,
      bootstrap: mesh.node('ca1').addrs(),
      ...FAST,
    })
    expect(ok.certificate.certificate.name).toBe('victim')
  })

  it('waits for the operator without a ticket and finishes once signed', async () => {
    const ca1 = mesh.node('ca1')
    const key = generateSigningKey()
    const pending: string[] = []
    const joining = requestCertificate({
      key,
      bootstrap: mesh.node('sat').addrs(),
      fingerprint: fingerprintOf(mesh.ca.key.publicKey),
      name: 'asked',
      zone: 'edge',
      ...FAST,
      onPending: id => {
        pending.push(id)
      },
    })
    await waitFor(() => pending.length > 0, 5_000, 'the request to be pending')
    expect(ca1.issuer!.listPending().map(p => p.id)).toContain(pending[0])
    await new Promise(r => setTimeout(r, 300)) // a few polls see the same pending id
    const effects = await ca1.issuer!.run({ type: 'sign-pending', requestId: 's', id: pending[0]! })
    expect(effects.some(e => e.type === 'command-reply' && e.result.ok)).toBe(true)
    const result = await joining
    expect(pending).toHaveLength(1)
    expect([result.certificate.certificate.name, result.certificate.certificate.roles]).toEqual([
      'asked',
      ['agent'],
    ])
  })

  it('reports a rejected request', async () => {
    const ca1 = mesh.node('ca1')
    let id: string | undefined
    const joining = requestCertificate({
      key: generateSigningKey(),
      bootstrap: ca1.addrs(),
      fingerprint: fingerprintOf(mesh.ca.key.publicKey),
      name: 'unwanted',
      zone: 'edge',
      ...FAST,
      onPending: pendingId => {
        id = pendingId
      },
    })
    await waitFor(() => id !== undefined, 5_000, 'the request to be pending')
    await ca1.issuer!.run({ type: 'reject-pending', requestId: 'r', id: id! })
    const error = await joinError(joining)
    expect([error.code, error.reason]).toEqual(['rejected', 'rejected'])
  })

  it('times out while pending and says what to run', async () => {
    const error = await joinError(
      requestCertificate({
        key: generateSigningKey(),
        bootstrap: mesh.node('ca1').addrs(),
        fingerprint: fingerprintOf(mesh.ca.key.publicKey),
        name: 'patient',
        zone: 'edge',
        ...FAST,
        timeoutMs: 600,
      }),
    )
    expect(error.code).toBe('timeout')
    expect(error.message).toMatch(/mesh ca sign [a-z2-7]+/)
  })

  it('reports an unreachable bootstrap address', async () => {
    const error = await joinError(
      requestCertificate({
        key: generateSigningKey(),
        bootstrap: ['/ip4/127.0.0.1/tcp/9'],
        fingerprint: fingerprintOf(mesh.ca.key.publicKey),
        name: 'lost',
        zone: 'edge',
        ...FAST,
        timeoutMs: 700,
      }),
    )
    expect(error.code).toBe('unreachable')
    expect(error.message).toMatch(/cannot reach the mesh/)
  })

  it('gives up on a never-reached mesh at the reach limit, even without a ticket (no 1 h wait)', async () => {
    const address = `/ip4/127.0.0.1/tcp/${await closedPort()}`
    const progress: JoinProgress[] = []
    const startedAt = Date.now()
    // No timeoutMs: the approval wait is the 1 h default; only the reach limit may end this join.
    const error = await joinError(
      requestCertificate({
        key: generateSigningKey(),
        bootstrap: [address],
        fingerprint: fingerprintOf(mesh.ca.key.publicKey),
        name: 'u',
        zone: 'web',
        pollIntervalMs: 200,
        reachTimeoutMs: 1_000,
        onProgress: p => progress.push(p),
      }),
    )
    expect(Date.now() - startedAt).toBeLessThan(5_000)
    expect(error.code).toBe('unreachable')
    expect(error.message).toMatch(new RegExp(`^cannot reach the mesh at ${address}: connection refused \\(`))
    expect(progress.length).toBeGreaterThanOrEqual(2)
    expect(progress[0]).toMatchObject({
      address,
      attempt: 1,
      state: 'unreachable',
      detail: 'connection refused',
    })
    expect(progress[0]!.retryInMs).toBe(200)
    expect(progress[0]!.leftMs).toBeLessThanOrEqual(1_000)
    expect(progress.map(p => p.attempt)).toEqual(progress.map((_, i) => i + 1))
  }, 15_000)

  it('keeps waiting past the reach limit once the request is pending, reporting each poll', async () => {
    const progress: JoinProgress[] = []
    const joining = requestCertificate({
      key: generateSigningKey(),
      bootstrap: mesh.node('ca1').addrs(),
      fingerprint: fingerprintOf(mesh.ca.key.publicKey),
      name: 'waits',
      zone: 'edge',
      ...FAST,
      reachTimeoutMs: 300,
      onProgress: p => progress.push(p),
    })
    await waitFor(() => progress.some(p => p.state === 'pending'), 5_000, 'a pending progress report')
    await new Promise(resolve => setTimeout(resolve, 600)) // well past the reach limit
    const pending = progress.filter(p => p.state === 'pending')
    expect(pending.length).toBeGreaterThanOrEqual(2)
    expect(pending[0]).toMatchObject({ retryInMs: 100, address: mesh.node('ca1').addrs()[0] })
    expect(pending[0]!.detail).toMatch(/^request [a-z2-7]+ is waiting for approval$/)
    expect(pending[0]!.leftMs).toBeGreaterThan(5_000)
    const id = /request ([a-z2-7]+)/.exec(pending[0]!.detail)![1]!
    await mesh.node('ca1').issuer!.run({ type: 'sign-pending', requestId: 'wait-sign', id })
    const result = await joining
    expect(result.certificate.certificate.name).toBe('waits')
  }, 15_000)

  it('rate-limits join exchanges per remote IP', async () => {
    const target = await mesh.add({ name: 'rl', zone: 'edge' })
    const key = generateSigningKey()
    const raw = await createLibp2p({
      privateKey: libp2pKeyOf(key),
      transports: [tcp()],
      connectionEncrypters: [noise()],
      streamMuxers: [yamux()],
    })
    try {
      const connection = await raw.dial(multiaddr(target.addrs()[0]!))
      const codes: string[] = []
      const { burst, ratePerSecond } = DEFAULT_JOIN_RATE_LIMIT.perIp
      const startedMs = performance.now()
      // Until the first refusal (bounded): on a loaded machine the bucket refills while we send, so the
      // refusal may come a little after `burst` answers; how much later is bounded by the refill rate.
      for (let i = 0; i < burst + 60 && codes.at(-1) !== 'rate-limited'; i++) {
        const stream = await connection.newStream(JOIN_PROTOCOL)
        const lp = lpStream(stream, { maxDataLength: JOIN_ANSWER_BYTES_MAX })
        await lp.write(encodeJoinRequest({ type: 'hello' }))
        const answer = decodeJoinAnswer((await lp.read()).subarray())
        codes.push(
          answer.ok ? (answer.message.type === 'error' ? answer.message.code : answer.message.type) : 'bad',
        )
        stream.abort(new Error('done'))
      }
      const elapsedS = (performance.now() - startedMs) / 1000
      const answered = codes.filter(c => c === 'hello').length
      expect(codes.at(-1)).toBe('rate-limited')
      expect(answered).toBeGreaterThanOrEqual(burst)
      expect(answered).toBeLessThanOrEqual(burst + Math.ceil(elapsedS * ratePerSecond) + 1)
      expect(target.enrolment.counters.joinRateLimited).toBeGreaterThan(0)
    } finally {
      await raw.stop()
    }
  })
})
