// Attacks by hostile peers (test/node/hostile-peer.ts: raw libp2p, no mesh logic) against a real
// in-process mesh on 127.0.0.1 — a CA node ca1 and three agents of zone web — each asserting what the
// mesh must do: (1) a certified non-voter's huge epochs are ignored by the web voters; (2) a member
// that answers probes is alive everywhere and, once silent, dead everywhere within the suspicion
// bound; (3) a peer that never says hello is cut at the hello timeout and sees no
// gossip; (4) malformed frames on every protocol and raw gossip garbage on every topic leave every
// node up and answering; (5) a valid request whose outer envelope is re-encoded with its map keys out
// of canonical order is refused by the request validator and never runs.
import { peerIdFromString } from '@libp2p/peer-id'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { EPOCH_MAX } from '../../src/authority/messages.js'
import { CA_PROTOCOL, JOIN_PROTOCOL } from '../../src/ca/join-wire.js'
import { createRequest } from '../../src/gossip/request.js'
import type { OutcomeCode } from '../../src/gossip/validate.js'
import { createSuspicion, openSuspicion, peekRecord } from '../../src/membership/record.js'
import { TOPICS } from '../../src/node/host.js'
import { secureRandomBytes } from '../../src/node/keys.js'
import { decodeCbor, encodeCbor } from '../../src/wire/cbor.js'
import { createTestCa, startTestMesh, type TestMesh, type TestNode, waitFor } from './harness.js'
import { createHostilePeer, delay, garbage, type HostilePeer, MESH_PROTOCOLS } from './hostile-peer.js'

const ca = createTestCa()
const alice = ca.identity('alice', 'core', ['operator'])

/** Short failure-detector timings so a silent member dies within seconds. */
const TIMINGS = { heartbeatIntervalMs: 200, suspectAfterMs: 800, deadAfterMs: 1_600 }
const HELLO_TIMEOUT_MS = 2_000
const WEB = ['web1', 'web2', 'web3']
const ALL = ['ca1', ...WEB]

const count = (node: TestNode, code: OutcomeCode): number => node.counters().requests[code] ?? 0

describe('hostile peers against ca1 + web1..3', () => {
  let mesh: TestMesh
  const peers: HostilePeer[] = []
  const hostile = async (init: Parameters<typeof createHostilePeer>[0] = {}): Promise<HostilePeer> => {
    const peer = await createHostilePeer({ ca, ...init })
    peers.push(peer)
    return peer
  }
  const nodes = (names: readonly string[]): TestNode[] => names.map(n => mesh.node(n))
  const addrOf = (name: string): string => mesh.node(name).addrs()[0]!
  /** The web zone's authority as each web voter sees it. */
  const webAuthorities = () => nodes(WEB).flatMap(n => (n.isAuthority('web') === null ? [] : [n]))

  beforeAll(async () => {
    const config = { ...TIMINGS, helloTimeoutMs: HELLO_TIMEOUT_MS }
    mesh = await startTestMesh(
      [
        { name: 'ca1', zone: 'core', ca: true, init: { operator: alice }, config },
        ...WEB.map(name => ({ name, zone: 'web', config })),
      ],
      { ca },
    )
    await mesh.converge(10_000)
  }, 20_000)

  afterAll(async () => {
    await Promise.all(peers.map(p => p.stop()))
    await mesh?.stop()
  })

  it('ignores huge epochs from a certified non-voter: web keeps an authority with a small epoch', async () => {
    await waitFor(() => webAuthorities().length === 1, 8_000, 'a web authority')
    const before = webAuthorities()[0]!.isAuthority('web')!.epoch
    const mallory = await hostile({ certify: { name: 'mallory-db', zone: 'db' } })
    const from = mallory.peerId
    for (const voter of nodes(WEB)) {
      await mallory.connect(voter.addrs()[0]!)
      await mallory.sendAuthority(voter.peerId, [
        { type: 'state', zone: 'web', from, maxEpoch: EPOCH_MAX, recovering: false },
        { type: 'state', zone: 'web', from, maxEpoch: 2 ** 53 - 1, recovering: false },
        // The same numbers in the other epoch-carrying messages a candidate or voter would send.
        {
          type: 'refuse',
          zone: 'web',
          from,
          reason: 'stale',
          maxEpoch: EPOCH_MAX,
          holder: null,
          incarnation: 1,
          attempt: 1,
          rosterVersion: 0,
        },
        {
          type: 'request',
          zone: 'web',
          from,
          epoch: EPOCH_MAX,
          incarnation: 1,
          attempt: 1,
          rosterVersion: 0,
        },
        // `from` claiming to be a web voter: the driver must use the connection's peer, not this field.
        {
          type: 'state',
          zone: 'web',
          from: mesh.node('web1').peerId,
          maxEpoch: EPOCH_MAX,
          recovering: false,
        },
      ])
    }
    // Several lease renewals (test profile: lease 2 s, renew 1 s) later the zone still has one authority
    // whose epoch moved by elections at most, not towards 2^40.
    await delay(2_500)
    await waitFor(() => webAuthorities().length === 1, 8_000, 'a web authority after the attack')
    const epoch = webAuthorities()[0]!.isAuthority('web')!.epoch
    expect(epoch).toBeLessThan(before + 100)
    for (const node of nodes(ALL)) {
      const web = node.zones().find(z => z.zone === 'web')
      expect(web?.epoch ?? 0).toBeLessThan(before + 100)
    }
    await mallory.stop()
  }, 20_000)

  it('keeps reading an authority stream after garbage frames on it: the next message still counts', async () => {
    const mallory = await hostile({ certify: { name: 'mallory-sync', zone: 'db' } })
    const web1 = mesh.node('web1')
    await mallory.connect(addrOf('web1'))
    const syncsIn = () => web1.counters().traffic.protocols['authority:sync']?.msgsIn ?? 0
    const before = syncsIn()
    // Not CBOR, CBOR of the wrong shape, then a well-formed sync, all on one stream.
    const s = await mallory.sendAuthority(web1.peerId, [
      garbage(64),
      encodeCbor({ type: 'nonsense' }),
      { type: 'sync', zone: 'web', from: mallory.peerId },
    ])
    // The stream stayed open and read: the sync after the garbage was decoded and counted.
    await waitFor(() => syncsIn() === before + 1, 5_000, 'the sync after the garbage')
    await s.close()
    await mallory.stop()
  }, 20_000)

  it('ignores a member claiming the web lease in its record: views and --once follow the voters', async () => {
    await waitFor(() => webAuthorities().length === 1, 10_000, 'a web authority')
    const liar = await hostile({ certify: { name: 'liar', zone: 'web' } })
    for (const name of ALL) await liar.connect(addrOf(name))
    // Validly signed records of a certified web member, each claiming web's authority at a huge epoch.
    const claim = { meshAuthority: 'web:999999' }
    const claimSeen = () =>
      mesh
        .node('ca1')
        .members()
        .some(m => m.name === 'liar' && m.state === 'alive' && m.facts.meshAuthority === 'web:999999')
    for (let round = 1; round <= 20 && !claimSeen(); round++) {
      const record = liar.record({ facts: claim })
      for (const node of nodes(ALL)) {
        await liar.sendMember(node.peerId, [{ type: 'gossip', updates: [{ kind: 'record', bytes: record }] }])
      }
      await delay(100)
    }
    expect(claimSeen()).toBe(true)
    const holder = webAuthorities()[0]!.name
    // ca1 votes in no web lease: it asks web's voters, and only they decide.
    const web = (await mesh.node('ca1').provenZones()).find(z => z.zone === 'web')
    expect(web?.authority).toBe(holder)
    expect(
      mesh
        .node('ca1')
        .zones()
        .find(z => z.zone === 'web')?.authority,
    ).not.toBe('liar')
    const result = await mesh.node('ca1').exec({
      action: 'ping',
      filter: { zone: 'web', once: true },
      timeoutMs: 5_000,
    })
    expect(result.expected).toEqual([holder])
    expect(result.expected).not.toContain('liar')
    await liar.stop()
  }, 30_000)

  it('holds a member that answers probes alive, and marks it dead everywhere once it goes silent', async () => {
    const slow = await hostile({ certify: { name: 'slowpoke', zone: 'web' } })
    // Made before connecting: each node's first push-pull with the newcomer gets it.
    const record = slow.record()
    for (const name of ALL) await slow.connect(addrOf(name))
    for (const node of nodes(ALL)) {
      await slow.sendMember(node.peerId, [{ type: 'gossip', updates: [{ kind: 'record', bytes: record }] }])
    }
    const stateAt = (node: TestNode) => node.members().find(m => m.name === 'slowpoke')?.state
    await waitFor(() => nodes(ALL).every(n => stateAt(n) === 'alive'), 5_000, 'slowpoke alive everywhere')
    // Probed for a while (several probe rounds of every observer), it is never declared dead: it answers
    // (and refutes a suspicion a slow answer earned it).
    for (let round = 0; round < 20; round++) {
      await delay(TIMINGS.heartbeatIntervalMs)
      expect(nodes(ALL).map(stateAt)).not.toContain('dead')
    }
    await slow.stop()
    const stoppedAt = Date.now()
    // A probe round, its timeout and the indirect checks, the longest suspicion, and spreading.
    const boundMs = 2 * TIMINGS.heartbeatIntervalMs + TIMINGS.deadAfterMs + 1_000
    await waitFor(
      () => nodes(ALL).every(n => stateAt(n) === 'dead'),
      boundMs + 3_000,
      'slowpoke dead everywhere',
    )
    expect(Date.now() - stoppedAt).toBeLessThanOrEqual(boundMs)
  }, 20_000)

  it('checks a repeated suspicion once, and still refuses a forged copy of it', async () => {
    const accuser = await hostile({ certify: { name: 'mallory-accuser', zone: 'db' } })
    const web1 = mesh.node('web1')
    const record = accuser.record()
    await accuser.connect(addrOf('web1'))
    await accuser.sendMember(web1.peerId, [{ type: 'gossip', updates: [{ kind: 'record', bytes: record }] }])
    const known = () => web1.members().some(m => m.name === 'mallory-accuser' && m.state === 'alive')
    await waitFor(known, 5_000, 'the accuser alive on web1')
    // A suspicion of itself (so no honest node is disturbed; it refutes, as the hostile peer does).
    const incarnation = peekRecord(record)!.incarnation
    const suspicion = createSuspicion(accuser.identity!.key, {
      subject: accuser.peerId,
      incarnation,
      from: accuser.peerId,
    })
    // A copy (a Buffer's slice would share the bytes) with one bit of the signature flipped.
    const forged = Uint8Array.from(suspicion)
    const at = Buffer.from(suspicion).indexOf(Buffer.from(openSuspicion(suspicion).envelope.sig))
    expect(at).toBeGreaterThan(0)
    forged[at]! ^= 0x01
    expect(openSuspicion(forged).suspicion).toEqual(openSuspicion(suspicion).suspicion)
    const before = web1.counters().membership
    const gossip = (bytes: Uint8Array) => ({
      type: 'gossip' as const,
      updates: [{ kind: 'suspicion' as const, bytes }],
    })
    await accuser.sendMember(web1.peerId, [
      gossip(suspicion),
      gossip(suspicion),
      gossip(suspicion),
      gossip(forged),
    ])
    const badBefore = before.refused['bad-signature'] ?? 0
    await waitFor(
      () => (web1.counters().membership.refused['bad-signature'] ?? 0) > badBefore,
      5_000,
      'the forged copy refused',
    )
    const after = web1.counters().membership
    // The first copy was verified, the next two were not checked again, the forged one was.
    expect(after.suspicionsCached - before.suspicionsCached).toBe(2)
    expect(after.refused['bad-signature']).toBe(badBefore + 1)
    // Leaves, so the later tests' expected sets are the mesh's own members again.
    await accuser.sendMember(web1.peerId, [
      { type: 'gossip', updates: [{ kind: 'record', bytes: accuser.record({ left: true }) }] },
    ])
    const gone = () =>
      nodes(ALL).every(n => n.members().every(m => m.name !== 'mallory-accuser' || m.state === 'left'))
    await waitFor(gone, 5_000, 'the accuser left everywhere')
    await accuser.stop()
  }, 15_000)

  it('cuts an uncertified peer that never says hello at the hello timeout; it sees no gossip', async () => {
    const silent = await hostile({ answerHello: 'none' })
    const holder = await hostile({ answerHello: 'none' }) // opens a hello stream and sends nothing
    const ca1 = mesh.node('ca1')
    const startedAt = Date.now()
    await silent.connect(addrOf('ca1'), { hello: { kind: 'none' } })
    await holder.connect(addrOf('ca1'), { hello: { kind: 'hold' } })
    expect(silent.connectedTo(ca1.peerId)).toBe(true)
    await waitFor(
      () => !silent.connectedTo(ca1.peerId) && !holder.connectedTo(ca1.peerId),
      HELLO_TIMEOUT_MS + 3_000,
      'ca1 to cut both peers',
    )
    expect(Date.now() - startedAt).toBeLessThan(HELLO_TIMEOUT_MS + 3_000)
    for (const peer of [silent, holder]) {
      expect(Object.values(peer.received()).reduce((a, b) => a + b, 0)).toBe(0)
      for (const topic of Object.values(TOPICS)) {
        expect(peer.host.services.pubsub.getSubscribers(topic).map(String)).not.toContain(ca1.peerId)
      }
    }
    // Not evidence against them: they were not denied, only hung up on.
    expect(await silent.connect(addrOf('ca1'), { hello: { kind: 'none' } }).then(() => true)).toBe(true)
    await silent.stop()
    await holder.stop()
  }, 15_000)

  it('stays up and answering after malformed frames on every protocol and gossip garbage on every topic', async () => {
    const insider = await hostile({ certify: { name: 'garbler', zone: 'db', roles: ['operator'] } })
    const outsider = await hostile()
    const membershipBefore = nodes(ALL).map(n => n.counters().membership.malformed)
    /** Malformed frames; `tag` makes each set distinct (gossip drops a repeated payload as a duplicate). */
    const junkFor = (tag: string): Uint8Array[] => [
      Uint8Array.of(0xff, ...new TextEncoder().encode(tag)), // a CBOR break: never well-formed
      garbage(300),
      new Uint8Array(0),
      encodeCbor(`not a map ${tag}`),
      encodeCbor({ v: 1, type: 'nonsense', tag }),
      encodeCbor({ v: 99, body: encodeCbor(tag), sig: new Uint8Array(64) }),
      encodeCbor({ body: tag, sig: 2 }),
      // A well-formed envelope whose body is not canonical CBOR, and a truncated one.
      encodeCbor({ body: Uint8Array.of(0x18, 0x01), sig: new Uint8Array(64), tag }),
      (envelope => envelope.subarray(0, envelope.byteLength - 5))(
        encodeCbor({ body: new Uint8Array(40), sig: new Uint8Array(64), tag }),
      ),
    ]
    const junk = junkFor('streams')
    /** A length prefix claiming ~2 GiB, then a few bytes: the reader must refuse it, not allocate. */
    const hugePrefix = Uint8Array.from([0xff, 0xff, 0xff, 0xff, 0x07, 1, 2, 3])
    /** What each attempt ended with, for the failure message: refusals (reset streams, unsupported
     * protocols, hung-up connections) are the point, only the mesh's health afterwards is asserted. */
    const outcomes: string[] = []
    const attempt = async (what: string, run: () => Promise<unknown>): Promise<void> => {
      await Promise.resolve()
        .then(run)
        .then(
          () => outcomes.push(`${what}: done`),
          (err: Error) => outcomes.push(`${what}: ${err.name} ${err.message}`.slice(0, 160)),
        )
    }
    for (const name of ALL) {
      const node = mesh.node(name)
      // hello: garbage and a bogus prefix from fresh uncertified peers (a refused hello denies the peer).
      for (const bytes of [...junk, hugePrefix]) {
        const fresh = await hostile({ answerHello: 'none' })
        await attempt('hello', async () => {
          const { connection } = await fresh.connect(node.addrs()[0]!, { hello: { kind: 'none' } })
          const s = await fresh.open(connection, MESH_PROTOCOLS.hello, 2_000)
          if (bytes === hugePrefix) await s.writeRaw(bytes)
          else await s.writeFrame(bytes, 2_000)
          await s.readFrame(2_000)
        })
        await fresh.stop()
      }
      // join (ungated, the outsider's protocol): junk, a csr of junk, a bogus prefix.
      await attempt('join', async () => {
        await outsider.connect(node.addrs()[0]!, { hello: { kind: 'none' } })
        for (const bytes of junk) await outsider.sendJoin(node.peerId, JOIN_PROTOCOL, bytes, 1_000)
        await outsider.sendJoin(node.peerId, JOIN_PROTOCOL, { type: 'csr', bytes: garbage(200) }, 1_000)
        const s = await outsider.open(node.peerId, JOIN_PROTOCOL, 1_000)
        await s.writeRaw(hugePrefix)
      })
      // The certified insider: reply, authority and ca streams with junk, bogus prefixes and silence.
      await attempt('connect', () => insider.connect(node.addrs()[0]!))
      for (const protocol of [
        MESH_PROTOCOLS.reply,
        MESH_PROTOCOLS.authority,
        MESH_PROTOCOLS.member,
        CA_PROTOCOL,
      ]) {
        await attempt(protocol, async () => {
          const s = await insider.open(node.peerId, protocol, 2_000)
          for (const bytes of junk) await s.writeFrame(bytes, 1_000)
          await s.writeRaw(hugePrefix)
        })
        await attempt(`${protocol} held`, () => insider.holdStreams(node.peerId, protocol, 4, 2_000))
      }
      await attempt('ca csr', () =>
        insider.sendJoin(node.peerId, CA_PROTOCOL, { type: 'csr', bytes: garbage(200) }, 1_000),
      )
      await attempt('authority shapes', () =>
        insider.sendAuthority(node.peerId, [
          { type: 'state', zone: 'web', from: insider.peerId, maxEpoch: -1, recovering: false },
          { type: 'state', zone: 'web', from: insider.peerId, maxEpoch: 1.5, recovering: 'yes' },
          {
            type: 'grant',
            zone: 'x'.repeat(10_000),
            from: insider.peerId,
            epoch: 1,
            incarnation: 1,
            attempt: 1,
          },
          { type: 'sync', zone: 'web', from: insider.peerId, extra: 1 },
          encodeCbor({
            type: 'request',
            zone: 'web',
            from: insider.peerId,
            epoch: 2n ** 63n,
            incarnation: 1,
            attempt: 1,
          }),
        ]),
      )
    }
    // Gossip garbage on every topic, to every node.
    const malformedBefore = nodes(ALL).map(n => count(n, 'malformed'))
    await attempt('gossip', async () => {
      await insider.waitForTopicPeers(
        TOPICS.request,
        nodes(ALL).map(n => n.peerId),
        3_000,
      )
      for (const topic of Object.values(TOPICS)) {
        for (const bytes of junkFor(topic)) {
          if (bytes.byteLength > 0) await attempt(`gossip ${topic}`, () => insider.publish(topic, bytes))
        }
      }
    })
    // Each node refused the garbage (requests on gossip, membership messages on their streams).
    await waitFor(
      () =>
        nodes(ALL).every(
          (n, i) =>
            count(n, 'malformed') > malformedBefore[i]! &&
            n.counters().membership.malformed > membershipBefore[i]!,
        ),
      5_000,
      'every node to refuse the gossip garbage',
    )
    await insider.stop()
    await outsider.stop()

    const result = await mesh.node('ca1').exec({ action: 'ping', timeoutMs: 5_000 })
    if (result.missing.length > 0 || process.env.HOSTILE_DEBUG) console.log(outcomes.join('\n'))
    expect(result.expected).toEqual(ALL)
    expect(result.missing).toEqual([])
    expect(result.replies.map(r => r.node).sort()).toEqual(ALL)
  }, 25_000)

  it('refuses a valid request whose outer envelope has its map keys out of canonical order, and never runs it', async () => {
    const ca1 = mesh.node('ca1')
    const issuedAtMs = Date.now()
    const request = createRequest({
      id: secureRandomBytes(16),
      issuer: alice.certificate.bytes,
      key: alice.key,
      issuedAtMs,
      expiresAtMs: issuedAtMs + 10_000,
      filter: { zone: 'web' },
      action: 'ping',
      args: [],
      replyTo: { peerId: ca1.peerId, addrs: ca1.addrs() },
    })
    const outer = decodeCbor(request.bytes, 1 << 20) as { body: Uint8Array; sig: Uint8Array }
    // Canonical order sorts keys by length first ("sig" before "body"); write "body" first.
    const parts = [
      Uint8Array.of(0xa2),
      encodeCbor('body'),
      encodeCbor(outer.body),
      encodeCbor('sig'),
      encodeCbor(outer.sig),
    ]
    const reordered = Uint8Array.from(parts.flatMap(p => [...p]))
    expect(reordered).not.toEqual(request.bytes)
    expect(decodeCbor(reordered, 1 << 20)).toEqual(outer)

    for (const node of nodes(WEB)) {
      const validator = node.host.services.pubsub.topicValidators.get(TOPICS.request)
      if (validator === undefined) throw new Error(`${node.name} has no request validator`)
      const malformed = count(node, 'malformed')
      const verdict = await validator(peerIdFromString(ca1.peerId), {
        type: 'unsigned',
        topic: TOPICS.request,
        data: reordered,
      })
      expect(String(verdict)).toBe('reject')
      expect(count(node, 'malformed')).toBe(malformed + 1)
    }

    // Published raw by a certified insider, then the canonical bytes of the same request after it (gossip
    // between two peers is in order): only the canonical copy runs, once, on each web node.
    const insider = await hostile({ certify: { name: 'reorderer', zone: 'db', roles: ['operator'] } })
    for (const name of WEB) await insider.connect(addrOf(name))
    await insider.waitForTopicPeers(
      TOPICS.request,
      nodes(WEB).map(n => n.peerId),
    )
    const executed = nodes(WEB).map(n => count(n, 'accept-execute'))
    const malformed = nodes(WEB).map(n => count(n, 'malformed'))
    const replayed = nodes(WEB).map(n => count(n, 'replayed'))
    await insider.publish(TOPICS.request, reordered)
    await waitFor(
      () => nodes(WEB).every((n, i) => count(n, 'malformed') > malformed[i]!),
      5_000,
      'every web node to refuse the reordered envelope',
    )
    await insider.publish(TOPICS.request, request.bytes)
    await waitFor(
      () => nodes(WEB).every((n, i) => count(n, 'accept-execute') === executed[i]! + 1),
      5_000,
      'the canonical request to run on every web node',
    )
    await delay(300)
    expect(nodes(WEB).map(n => count(n, 'accept-execute'))).toEqual(executed.map(n => n + 1))
    expect(nodes(WEB).map(n => count(n, 'replayed'))).toEqual(replayed)
    await insider.stop()
  }, 15_000)
})
