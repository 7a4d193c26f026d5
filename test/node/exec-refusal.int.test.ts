// Proves on real libp2p over 127.0.0.1, in a hand-built topology a1–b1–c1 plus a1–d1 (every other pair
// denied by admission, so c1 is two hops from a1 and never connected to it), that forged, altered,
// expired, oversized, replayed, non-operator and revoked-operator requests published raw at a1 are
// refused by each neighbour's validator with the expected code and never forwarded: c1 sees nothing
// (a valid request sent after them through the same path reaches c1 as the only new request), and
// a1's and c1's own validators, handed the same bytes, refuse them too. Valid requests injected the
// same way do reach and run on c1 (the control), and `exec` from a1 gets c1's reply back through b1.
import { peerIdFromString } from '@libp2p/peer-id'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { decodeCertificate } from '../../src/ca/certificate.js'
import type { Role } from '../../src/ca/types.js'
import { filterToCbor, type TargetFilter } from '../../src/gossip/filter.js'
import { createRequest } from '../../src/gossip/request.js'
import type { OutcomeCode } from '../../src/gossip/validate.js'
import { TOPICS } from '../../src/node/host.js'
import { type Identity, secureRandomBytes } from '../../src/node/keys.js'
import type { CborValue } from '../../src/wire/cbor.js'
import { DOMAIN_REQUEST } from '../../src/wire/domains.js'
import { sealEnvelope } from '../../src/wire/envelope.js'
import type { TestNode as MeshNode } from './harness.js'
import { createTestCa, randomKey, startTopology, type TestTopology, waitFor } from './harness.js'

const ca = createTestCa()
/** The operator whose requests the mesh should run. */
const alice = ca.identity('alice', 'core', ['operator'])

/** Members stay alive through event-loop stalls of a loaded machine, so `expected` is stable. */
const LENIENT_TIMINGS = { suspectAfterMs: 3_000, deadAfterMs: 6_000 }

const count = (node: MeshNode, code: OutcomeCode): number => node.counters().requests[code] ?? 0
const total = (node: MeshNode): number =>
  Object.values(node.counters().requests).reduce((sum, n) => sum + n, 0)

describe('exec refusals and multi-hop replies on a line a1–b1–c1 (+ a1–d1)', () => {
  let mesh: TestTopology
  let a1: MeshNode
  let b1: MeshNode
  let c1: MeshNode
  let d1: MeshNode

  beforeAll(async () => {
    mesh = await startTopology(
      [
        { name: 'a1', zone: 'core', ca: true, init: { operator: alice }, config: LENIENT_TIMINGS },
        { name: 'b1', zone: 'relay', config: LENIENT_TIMINGS },
        { name: 'c1', zone: 'edge', config: LENIENT_TIMINGS },
        { name: 'd1', zone: 'side', config: LENIENT_TIMINGS },
      ],
      [
        ['a1', 'b1'],
        ['b1', 'c1'],
        ['a1', 'd1'],
      ],
      { ca },
    )
    ;[a1, b1, c1, d1] = ['a1', 'b1', 'c1', 'd1'].map(name => mesh.node(name)) as [
      MeshNode,
      MeshNode,
      MeshNode,
      MeshNode,
    ]
    // Presence from c1 reaches a1 only through b1, so convergence also proves the path works.
    await mesh.converge()
  })
  afterAll(async () => {
    await mesh?.stop()
  })

  /** A request signed by `signer` (or by `key` while carrying `signer`'s certificate). */
  const request = (
    signer: Identity,
    options: {
      id?: Uint8Array
      key?: Identity['key']
      issuedAtMs?: number
      lifetimeMs?: number
      filter?: TargetFilter
      args?: string[]
    } = {},
  ) => {
    const issuedAtMs = options.issuedAtMs ?? Date.now()
    return createRequest({
      id: options.id ?? secureRandomBytes(16),
      issuer: signer.certificate.bytes,
      key: options.key ?? signer.key,
      issuedAtMs,
      expiresAtMs: issuedAtMs + (options.lifetimeMs ?? 10_000),
      filter: options.filter ?? { zone: 'edge' },
      action: 'ping',
      args: options.args ?? [],
      replyTo: { peerId: a1.peerId, addrs: a1.addrs() },
    })
  }

  /** Publishes raw bytes through a1's gossipsub, as a compromised or buggy node would. */
  const inject = async (bytes: Uint8Array): Promise<void> => {
    await a1.host.services.pubsub.publish(TOPICS.request, bytes)
  }

  /** Runs `node`'s request topic validator on `bytes`, exactly as gossipsub would on delivery. */
  const validateAt = async (node: MeshNode, bytes: Uint8Array): Promise<string> => {
    const validator = node.host.services.pubsub.topicValidators.get(TOPICS.request)
    if (validator === undefined) throw new Error(`${node.name} has no request validator`)
    const from = peerIdFromString(node === a1 ? b1.peerId : a1.peerId)
    return String(await validator(from, { type: 'unsigned', topic: TOPICS.request, data: bytes }))
  }

  /**
   * Sends a valid request for c1 along the same path and waits until c1 has run it: gossip between two
   * peers is delivered in order, so anything a1 published before and b1 forwarded has arrived by then.
   */
  const barrier = async (): Promise<void> => {
    const ran = count(c1, 'accept-execute')
    await inject(request(alice).bytes)
    await waitFor(() => count(c1, 'accept-execute') === ran + 1, 10_000, 'the barrier request to run on c1')
  }

  /** Injects `bytes` at a1 and checks every node refuses it with `code` and c1 never receives it. */
  const expectRefusedEverywhere = async (
    bytes: Uint8Array,
    code: OutcomeCode,
    verdict: 'reject' | 'ignore',
  ): Promise<void> => {
    const neighbours = [b1, d1]
    const before = neighbours.map(n => count(n, code))
    const c1Before = total(c1)
    const executedBefore = [b1, c1, d1].map(n => count(n, 'accept-execute'))
    await inject(bytes)
    await waitFor(
      () => neighbours.every((n, i) => count(n, code) === before[i]! + 1),
      10_000,
      `b1 and d1 to refuse with ${code}`,
    )
    await barrier()
    // Only the barrier reached c1: the refused message was not forwarded by b1.
    expect(total(c1)).toBe(c1Before + 1)
    expect([b1, c1, d1].map(n => count(n, 'accept-execute'))).toEqual([
      executedBefore[0],
      executedBefore[1]! + 1,
      executedBefore[2],
    ])
    // The injecting node and the node it never reached refuse the same bytes on their own.
    for (const node of [a1, c1]) {
      const codeBefore = count(node, code)
      expect(await validateAt(node, bytes)).toBe(verdict)
      expect(count(node, code)).toBe(codeBefore + 1)
    }
  }

  it('runs a valid request injected at a1 on c1, two hops away (the control case)', async () => {
    expect(mesh.connectionsSeen('a1').has('c1')).toBe(false)
    const before = [b1, c1, d1].map(total)
    const notForUs = [b1, d1].map(n => count(n, 'accept-not-for-us'))
    await barrier()
    expect([b1, c1, d1].map(total)).toEqual(before.map(n => n + 1))
    expect([b1, d1].map(n => count(n, 'accept-not-for-us'))).toEqual(notForUs.map(n => n + 1))
  })

  it('refuses a request whose operator certificate comes from another CA', async () => {
    const mallory = createTestCa('another mesh').identity('alice', 'core', ['operator'])
    await expectRefusedEverywhere(request(mallory).bytes, 'certificate-wrong-issuer', 'reject')
  })

  it("refuses a request carrying alice's certificate but signed by another key", async () => {
    const forged = request(alice, { key: randomKey() })
    await expectRefusedEverywhere(forged.bytes, 'bad-signature', 'reject')
  })

  it('refuses a request with one byte flipped after signing', async () => {
    const signed = request(alice, { args: ['marker-0000'] }).bytes
    const altered = Uint8Array.from(signed)
    const at = Buffer.from(altered).indexOf('marker-0000')
    expect(at).toBeGreaterThan(0)
    altered[at + 10] = '1'.charCodeAt(0) // still well-formed CBOR, now 'marker-0001'
    expect(altered).not.toEqual(signed)
    await expectRefusedEverywhere(altered, 'bad-signature', 'reject')
  })

  it('refuses an expired request', async () => {
    // Expired twice the clock-skew budget (30 s in the test profile) ago.
    const expired = request(alice, { issuedAtMs: Date.now() - 70_000, lifetimeMs: 10_000 })
    await expectRefusedEverywhere(expired.bytes, 'expired', 'ignore')
  })

  it('refuses a request beyond the size limit, correctly signed', async () => {
    const issuedAtMs = Date.now()
    const bytes = sealEnvelope(DOMAIN_REQUEST, alice.key, {
      v: 1,
      id: secureRandomBytes(16),
      issuer: alice.certificate.bytes,
      issuedAtMs,
      expiresAtMs: issuedAtMs + 10_000,
      filter: filterToCbor({ zone: 'edge' }) as CborValue,
      action: 'ping',
      args: Array.from({ length: 20 }, () => 'x'.repeat(4000)),
      replyTo: { peerId: a1.peerId, addrs: a1.addrs() },
    })
    expect(bytes.byteLength).toBeGreaterThan(64 * 1024)
    await expectRefusedEverywhere(bytes, 'too-large', 'reject')
  })

  it('refuses a request signed by a node certificate without the operator role', async () => {
    const roles: Role[] = ['agent']
    const agentOnly = ca.identity('bob', 'core', roles)
    await expectRefusedEverywhere(request(agentOnly).bytes, 'not-operator', 'reject')
  })

  it('refuses replays: a fresh envelope reusing an id that ran, and the same bytes again', async () => {
    const id = secureRandomBytes(16)
    const original = request(alice, { id })
    // a1 validates it too, as every node the original reached has (a raw publish skips a1's validator).
    expect(await validateAt(a1, original.bytes)).toBe('accept')
    const ran = count(c1, 'accept-execute')
    await inject(original.bytes)
    await waitFor(() => count(c1, 'accept-execute') === ran + 1, 10_000, 'the original to run on c1')
    await waitFor(
      () => count(d1, 'accept-not-for-us') > 0 && count(b1, 'accept-not-for-us') > 0,
      10_000,
      'b1 and d1 to pass the original on',
    )

    // Different bytes, so gossip's duplicate filter lets it through to every validator.
    const reused = request(alice, { id, args: ['again'] })
    await expectRefusedEverywhere(reused.bytes, 'replayed', 'ignore')

    // The identical bytes, as they would arrive once gossipsub's seen-cache has forgotten them.
    for (const node of [a1, b1, c1, d1]) {
      const before = count(node, 'replayed')
      expect(await validateAt(node, original.bytes)).toBe('ignore')
      expect(count(node, 'replayed')).toBe(before + 1)
    }
    expect(count(c1, 'accept-execute')).toBe(ran + 2) // the original and expectRefusedEverywhere's barrier
  })

  it('refuses requests of an operator once the CA has revoked it, after running them before', async () => {
    const key = randomKey()
    const effects = await a1.issuer!.run({
      type: 'issue',
      requestId: 'mallory',
      publicKey: key.publicKey,
      name: 'mallory',
      zone: 'core',
      roles: ['operator'],
    })
    const issued = effects.find(e => e.type === 'command-reply')
    if (issued?.type !== 'command-reply' || !issued.result.ok || issued.result.command !== 'issue') {
      throw new Error(`issue failed: ${JSON.stringify(issued)}`)
    }
    const serial = issued.result.serial
    const decoded = decodeCertificate(issued.result.certificate)
    if (!decoded.ok) throw new Error('the CA issued an undecodable certificate')
    const mallory: Identity = { key, certificate: decoded.signed }

    // While valid, mallory's requests run like alice's.
    const ran = count(c1, 'accept-execute')
    await inject(request(mallory).bytes)
    await waitFor(() => count(c1, 'accept-execute') === ran + 1, 10_000, "mallory's request to run on c1")

    const revoked = await a1.issuer!.run({ type: 'revoke', requestId: 'revoke-mallory', target: serial })
    expect(revoked.some(e => e.type === 'command-reply' && e.result.ok)).toBe(true)
    await waitFor(
      () => mesh.nodes.every(n => n.isRevoked(serial)),
      10_000,
      'every node to adopt the revocation list',
    )
    await expectRefusedEverywhere(request(mallory).bytes, 'certificate-revoked', 'ignore')
  })

  it('gets the reply of c1 to a1 through b1, although a1 and c1 never connected', async () => {
    const result = await a1.exec({ action: 'uptime', filter: { zone: 'edge' }, timeoutMs: 10_000 })
    expect(result.expected).toEqual(['c1'])
    expect(result.missing).toEqual([])
    expect(result.replies.map(r => [r.node, r.status])).toEqual([['c1', 'ok']])
    expect(result.replies[0]?.output).toMatch(/load average/)
    // Neither end ever had a connection to the other (the direct-dial fallback is denied too).
    expect(mesh.connectionsSeen('a1').has('c1')).toBe(false)
    expect(mesh.connectionsSeen('c1').has('a1')).toBe(false)
    expect([...mesh.connectionsSeen('c1')]).toEqual(['b1'])
  })
})
