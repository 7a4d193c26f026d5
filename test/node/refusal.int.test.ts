// Proves on real libp2p over 127.0.0.1 that refused peers get nothing and give nothing: nodes holding
// a self-made certificate, a certificate of another CA or an expired one, and a bare gossipsub peer that
// never says hello (and so stays connected for the whole hello window), receive zero gossip messages
// and none of what they publish reaches a member's validators; and that a revoked node is dropped
// within seconds, refused on re-dial, and still refused by a node restarted with the saved list; and
// that a peer's word alone (a refusal saying `revoked`, with no list or a list not signed by our CA)
// never makes a node believe its own certificate is revoked.
import { noise } from '@chainsafe/libp2p-noise'
import { yamux } from '@chainsafe/libp2p-yamux'
import { gossipsub } from '@libp2p/gossipsub'
import { identify } from '@libp2p/identify'
import { tcp } from '@libp2p/tcp'
import { lpStream } from '@libp2p/utils'
import { multiaddr } from '@multiformats/multiaddr'
import { createLibp2p } from 'libp2p'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { controlHandlers } from '../../src/agent/control-methods.js'
import { issueCertificate, newSerial } from '../../src/ca/certificate.js'
import { signRevocationList } from '../../src/ca/revocation.js'
import { requestCertificate } from '../../src/node/enrolment/joiner.js'
import { encodeHelloRefusal, HELLO_BYTES_MAX, HELLO_PROTOCOL } from '../../src/node/hello.js'
import { TOPICS } from '../../src/node/host.js'
import { generateSigningKey, libp2pKeyOf, secureRandomBytes } from '../../src/node/keys.js'
import { createMeshNode, internalsOf } from '../../src/node/node.js'
import type { MeshNode } from '../../src/node/node-types.js'
import { createTestCa, startTestMesh, type TestMesh, testConfig, waitFor } from './harness.js'

const sleep = (ms: number) => new Promise(r => setTimeout(r, ms))

/** Request-topic messages a node's validator refused (any code but the accept ones). */
const refusedRequests = (node: {
  counters(): { topics: Readonly<Record<string, Readonly<Record<string, number>>>> }
}) =>
  Object.entries(node.counters().topics[TOPICS.request] ?? {}).reduce(
    (sum, [code, n]) => (code.startsWith('accept') ? sum : sum + n),
    0,
  )

describe('refused peers get no gossip', () => {
  let mesh: TestMesh
  const outsiders: MeshNode[] = []
  beforeAll(async () => {
    mesh = await startTestMesh([
      { name: 'ca1', zone: 'core', ca: true, operator: true },
      { name: 'm1', zone: 'edge' },
    ])
    await mesh.converge()
  })
  afterAll(async () => {
    await Promise.all(outsiders.map(n => n.stop().catch(() => {})))
    await mesh?.stop()
  })

  it('refuses self-made, foreign and expired certificates and exchanges no gossip with them', async () => {
    const selfKey = generateSigningKey()
    const now = Date.now()
    const selfMade = {
      key: selfKey,
      certificate: issueCertificate(selfKey, {
        serial: newSerial(secureRandomBytes),
        name: 'selfie',
        publicKey: selfKey.publicKey,
        zone: 'edge',
        roles: ['agent', 'operator'],
        notBeforeMs: now - 1000,
        notAfterMs: now + 3_600_000,
      }),
    }
    const foreignCa = createTestCa('foreign')
    const foreign = foreignCa.identity('foreigner', 'edge', ['agent'])
    const expired = mesh.ca.identity('stale', 'edge', ['agent'], {
      notBeforeMs: now - 7_200_000,
      notAfterMs: now - 3_600_000,
    })
    const specs = [
      { identity: selfMade, caPublicKey: selfKey.publicKey },
      { identity: foreign, caPublicKey: foreignCa.key.publicKey },
      { identity: expired, caPublicKey: mesh.ca.key.publicKey },
    ]
    const received = new Map<string, number>()
    const members = mesh.nodes
    const refusedBefore = members.map(n => n.admission.counters.refused)
    const requestTopicBefore = members.map(refusedRequests)
    const fromOutsiders = { count: 0 }
    for (const member of members) {
      member.host.services.pubsub.addEventListener('gossipsub:message', evt => {
        if (outsiders.some(o => o.peerId === evt.detail.propagationSource.toString())) fromOutsiders.count++
      })
    }
    for (const spec of specs) {
      const node = await createMeshNode({
        node: spec.identity,
        caPublicKey: spec.caPublicKey,
        config: testConfig({ bootstrap: [mesh.node('ca1').addrs()[0]!, mesh.node('m1').addrs()[0]!] }),
      })
      outsiders.push(node)
      const name = spec.identity.certificate.certificate.name
      received.set(name, 0)
      internalsOf(node).host.services.pubsub.addEventListener('message', () => {
        received.set(name, (received.get(name) ?? 0) + 1)
      })
      await node.start()
    }
    // Control: a member does receive gossip in the same window.
    let memberReceived = 0
    mesh.node('m1').host.services.pubsub.addEventListener('message', () => {
      memberReceived++
    })
    // Members probe each other every 200 ms and publish a request; outsiders keep trying to connect and publish.
    await mesh.node('ca1').exec({ action: 'ping', timeoutMs: 1_500 })
    await sleep(1_500)
    expect([...received.values()]).toEqual([0, 0, 0])
    expect(memberReceived).toBeGreaterThan(0)
    expect(fromOutsiders.count).toBe(0)
    members.forEach((member, i) => {
      expect(refusedRequests(member)).toBe(requestTopicBefore[i])
      expect(member.members().map(m => m.name)).not.toContain('selfie')
      expect(member.members().map(m => m.name)).not.toContain('foreigner')
      expect(member.members().map(m => m.name)).not.toContain('stale')
      for (const outsider of outsiders)
        expect(member.admission.certificateOf(outsider.peerId)).toBeUndefined()
    })
    expect(
      members.reduce((sum, m, i) => sum + m.admission.counters.refused - (refusedBefore[i] ?? 0), 0),
    ).toBeGreaterThanOrEqual(3)
    for (const outsider of outsiders) {
      expect(internalsOf(outsider).host.services.pubsub.getSubscribers(TOPICS.request)).toEqual([])
    }
  })

  it('gives a peer that never says hello nothing during the hello window, then cuts it', async () => {
    const ca1 = mesh.node('ca1')
    const raw = await createLibp2p({
      privateKey: libp2pKeyOf(generateSigningKey()),
      transports: [tcp()],
      connectionEncrypters: [noise()],
      streamMuxers: [yamux()],
      services: {
        identify: identify(),
        pubsub: gossipsub({
          globalSignaturePolicy: 'StrictNoSign',
          fallbackToFloodsub: false,
          allowPublishToZeroTopicPeers: true,
          scoreParams: { IPColocationFactorWeight: 0 },
        }),
      },
    })
    try {
      let got = 0
      raw.services.pubsub.addEventListener('message', () => {
        got++
      })
      for (const topic of Object.values(TOPICS)) raw.services.pubsub.subscribe(topic)
      const refusedBefore = refusedRequests(ca1)
      const connection = await raw.dial(multiaddr(ca1.addrs()[0]!))
      const openedAt = Date.now()
      const publishes: Promise<unknown>[] = []
      while (Date.now() - openedAt < 2_000) {
        publishes.push(raw.services.pubsub.publish(TOPICS.request, new Uint8Array([1, 2, 3])).catch(() => {}))
        await sleep(200)
      }
      await Promise.all(publishes)
      expect(connection.status).toBe('open') // still inside the 3 s hello window
      expect(got).toBe(0)
      expect(refusedRequests(ca1)).toBe(refusedBefore)
      expect(raw.services.pubsub.getSubscribers(TOPICS.request)).toEqual([])
      await waitFor(() => connection.status !== 'open', 5_000, 'the silent peer to be cut')
    } finally {
      await raw.stop()
    }
  })
})

describe('revocation', () => {
  let mesh: TestMesh
  const extra: MeshNode[] = []
  afterAll(async () => {
    await Promise.all(extra.map(n => n.stop().catch(() => {})))
    await mesh?.stop()
  })

  it('drops a revoked node within seconds, refuses its re-dial, also after a restart', async () => {
    const saved: Uint8Array[] = []
    const ca = createTestCa()
    const m1Identity = ca.identity('m1', 'edge', ['agent'])
    mesh = await startTestMesh(
      [
        { name: 'ca1', zone: 'core', ca: true },
        {
          name: 'm1',
          zone: 'edge',
          identity: m1Identity,
          init: { store: { saveRevocations: async bytes => void saved.push(bytes) } },
        },
      ],
      { ca },
    )
    const ca1 = mesh.node('ca1')
    const m1 = mesh.node('m1')
    // The victim must hold a certificate the issuer knows: join with a ticket.
    const effects = await ca1.issuer!.run({
      type: 'create-ticket',
      requestId: 't',
      name: 'victim',
      zone: 'edge',
      roles: ['agent'],
      ttlMs: 60_000,
      bootstrap: ca1.addrs(),
    })
    const reply = effects[0]
    if (reply?.type !== 'command-reply' || !reply.result.ok || reply.result.command !== 'create-ticket') {
      throw new Error('no ticket')
    }
    const key = generateSigningKey()
    const joined = await requestCertificate({ key, ticket: reply.result.ticket, pollIntervalMs: 100 })
    const victim = await createMeshNode({
      node: { key, certificate: joined.certificate },
      caPublicKey: joined.caPublicKey,
      revocations: joined.revocationList,
      config: testConfig({ bootstrap: [ca1.addrs()[0]!, m1.addrs()[0]!] }),
    })
    extra.push(victim)
    await victim.start()
    await victim.dial(m1.addrs()[0]!).catch(() => {})
    await waitFor(
      () => [ca1, m1].every(n => n.admission.certificateOf(victim.peerId) !== undefined),
      10_000,
      'the victim to be admitted by ca1 and m1',
    )

    const revokedAt = Date.now()
    const revoke = await ca1.issuer!.run({ type: 'revoke', requestId: 'r', target: 'victim' })
    expect(revoke.some(e => e.type === 'command-reply' && e.result.ok)).toBe(true)
    await waitFor(
      () =>
        [ca1, m1].every(n => n.host.getConnections().every(c => c.remotePeer.toString() !== victim.peerId)),
      5_000,
      'ca1 and m1 to drop the victim',
    )
    console.info(`revocation: victim dropped by every member after ${Date.now() - revokedAt} ms`)
    expect(m1.isRevoked(joined.certificate.certificate.serial)).toBe(true)

    // Re-dial: refused (denied by the gater or refused at hello), never admitted.
    await victim.dial(m1.addrs()[0]!).catch(() => {})
    await sleep(300)
    expect(m1.admission.certificateOf(victim.peerId)).toBeUndefined()
    expect(m1.host.getConnections().some(c => c.remotePeer.toString() === victim.peerId)).toBe(false)

    // m1 restarted with the list it saved still refuses the victim.
    await waitFor(() => saved.length > 0, 2_000, 'm1 to save the revocation list')
    await m1.stop()
    const restarted = await createMeshNode({
      node: m1Identity,
      caPublicKey: mesh.ca.key.publicKey,
      revocations: saved.at(-1),
      config: testConfig(),
    })
    extra.push(restarted)
    await restarted.start()
    const refusedBefore = internalsOf(restarted).admission.counters.refused
    await victim.dial(restarted.addrs()[0]!).catch(() => {})
    await waitFor(
      () => internalsOf(restarted).admission.counters.refused > refusedBefore,
      5_000,
      'the restarted node to refuse',
    )
    expect(internalsOf(restarted).admission.certificateOf(victim.peerId)).toBeUndefined()
    expect(restarted.isRevoked(joined.certificate.certificate.serial)).toBe(true)
  })
})

describe("a peer's word", () => {
  let mesh: TestMesh
  afterAll(async () => {
    await mesh?.stop()
  })

  it('does not make a node believe it is revoked: only a list signed by our CA does', async () => {
    mesh = await startTestMesh([{ name: 'm1', zone: 'edge' }])
    const m1 = mesh.node('m1')
    const serial = m1.certificate().certificate.serial
    const forger = createTestCa('forger')
    const forged = signRevocationList(forger.key, {
      version: 99,
      issuedAtMs: Date.now(),
      entries: [
        { serial, name: 'm1', peerId: m1.peerId, revokedAtMs: Date.now(), notAfterMs: Date.now() + 1 },
      ],
    })
    // A liar that refuses every hello "because you are revoked": first bare, then with the forged list.
    const refusals = [
      encodeHelloRefusal('certificate revoked: you are out'),
      encodeHelloRefusal('revoked', forged.bytes),
    ]
    const liar = await createLibp2p({
      privateKey: libp2pKeyOf(generateSigningKey()),
      addresses: { listen: ['/ip4/127.0.0.1/tcp/0'] },
      transports: [tcp()],
      connectionEncrypters: [noise()],
      streamMuxers: [yamux()],
    })
    let told = 0
    await liar.handle(HELLO_PROTOCOL, async stream => {
      const lp = lpStream(stream, { maxDataLength: HELLO_BYTES_MAX })
      await lp.read()
      await lp.write(refusals[Math.min(told, refusals.length - 1)]!)
      told += 1
      await stream.close().catch(() => {})
    })
    try {
      for (let i = 0; i < refusals.length; i++) {
        await m1.dial(liar.getMultiaddrs()[0]!.toString()).catch(() => {})
        await waitFor(() => told > i, 5_000, `refusal ${i + 1} to be sent`)
        await sleep(200)
      }
      expect(m1.isRevoked(serial)).toBe(false)
      const status = controlHandlers(m1, mesh.ca.key.publicKey).status as () => Promise<{
        certificateState: string
      }>
      expect((await status()).certificateState).toBe('valid')
    } finally {
      await liar.stop()
    }
  })
})
