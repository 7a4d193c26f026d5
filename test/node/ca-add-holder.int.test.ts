// `mesh ca add-holder` on real libp2p in one process (127.0.0.1 TCP): a one-holder CA ca1 in zone
// `ca` hands the CA key, ticket secret and state to ca2 (certificate role `ca`, same zone). Refused
// first, each with its one-line reason: an unknown name, this node, a member without the ca role, one
// in another zone, and any holder while the holders' zone has a member that is no holder. Then it
// succeeds: ca2's store gets exactly the CA key, the secret, ca1's current state and the holder set
// [ca1, ca2]; ca1 stores the same set and stops issuing until the holders restart.
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createHandover, decodeHandoverAnswer, type Handover } from '../../src/ca/handover.js'
import { emptyIssuerState, encodeIssuerState } from '../../src/ca/issuer-state.js'
import { CA_HANDOVER_PROTOCOL } from '../../src/node/ca-handover.js'
import { CaHolderError } from '../../src/node/ca-holders.js'
import { createTestCa, randomKey, startTestMesh, type TestMesh, type TestNode, waitFor } from './harness.js'
import { createHostilePeer } from './hostile-peer.js'

describe('mesh ca add-holder', () => {
  const ca = createTestCa()
  let mesh: TestMesh
  const handovers: Record<string, Handover[]> = { ca2: [], d1: [] }
  const ca1Holders: (readonly string[])[] = []

  beforeAll(async () => {
    mesh = await startTestMesh(
      [
        {
          name: 'ca1',
          zone: 'ca',
          roles: ['ca', 'agent'],
          ca: true,
          init: { store: { saveCaHolders: async h => void ca1Holders.push(h) } },
        },
        {
          name: 'ca2',
          zone: 'ca',
          roles: ['ca', 'agent'],
          init: { store: { saveCaHandover: async h => void handovers.ca2!.push(h) } },
        },
        { name: 'w1', zone: 'web', roles: ['ca', 'agent'] },
        {
          name: 'd1',
          zone: 'db',
          init: { store: { saveCaHandover: async h => void handovers.d1!.push(h) } },
        },
        { name: 'x1', zone: 'ca' },
      ],
      { ca },
    )
    await mesh.converge()
  }, 40_000)
  afterAll(async () => {
    await mesh?.stop()
  })

  const add = (node: TestNode, name: string) => node.addCaHolder!(name)

  it('refuses, with a reason, names that cannot be holders', async () => {
    const ca1 = mesh.node('ca1')
    await expect(add(ca1, 'nobody')).rejects.toThrow(/no live member named nobody/)
    await expect(add(ca1, 'ca1')).rejects.toThrow(/this node/)
    await expect(add(ca1, 'd1')).rejects.toThrow(/no ca role .* --role ca --role agent/)
    await expect(add(ca1, 'w1')).rejects.toThrow(/in zone web; CA holders share the zone ca/)
    // x1 sits in the holders' zone without being one: it could win the lease.
    await expect(add(ca1, 'ca2')).rejects.toThrow(/zone ca also has x1/)
    await expect(add(ca1, 'ca2')).rejects.toBeInstanceOf(CaHolderError)
    // A node without the CA key cannot hand it over.
    await expect(add(mesh.node('ca2'), 'ca1')).rejects.toThrow(/holds no CA key/)
    expect(handovers.ca2).toHaveLength(0)
    expect(handovers.d1).toHaveLength(0)
    expect(ca1Holders).toHaveLength(0)
  }, 20_000)

  it('hands the CA to ca2 once the zone holds holders only; ca1 then stops issuing', async () => {
    const ca1 = mesh.node('ca1')
    const ca2 = mesh.node('ca2')
    await mesh.node('x1').stop()
    // Left, or dead when its goodbye was lost: either way no longer a member that could win the lease.
    const gone = () => ['left', 'dead'].includes(ca1.members().find(m => m.name === 'x1')?.state ?? '')
    await waitFor(gone, 15_000, 'x1 to have left or be dead')
    // Issue something first, so the state handed over is not the empty one.
    const ticket = await ca1.issuer!.run({
      type: 'create-ticket',
      requestId: 't1',
      name: 'later',
      zone: 'web',
      roles: ['agent'],
      ttlMs: 60_000,
      bootstrap: ca1.addrs(),
    })
    expect(ticket.some(e => e.type === 'command-reply')).toBe(true)
    const before = encodeIssuerState(await ca1.issuer!.handOver(async state => state, {}))
    const result = await add(ca1, 'ca2')
    expect(result.holders.map(h => h.name)).toEqual(['ca1', 'ca2'])
    expect(result.told).toEqual(['ca2'])
    expect(result.notTold).toEqual([])
    expect(result.retired).toBe(true)
    const got = handovers.ca2!
    expect(got).toHaveLength(1)
    expect(got[0]!.caKey.publicKey).toEqual(ca.key.publicKey)
    expect(got[0]!.caKey.secretKey).toEqual(ca.key.secretKey)
    expect(got[0]!.ticketSecret).toEqual(ca.ticketSecret)
    expect(got[0]!.holders).toEqual([ca1.peerId, ca2.peerId])
    expect(got[0]!.from).toBe(ca1.peerId)
    expect(got[0]!.to).toBe(ca2.peerId)
    expect(ca1Holders).toEqual([[ca1.peerId, ca2.peerId]])
    // The state handed over is ca1's as it stood, byte for byte; retired, ca1 keeps it frozen (so one
    // more holder may still be added before the restart, with the same state).
    expect(Buffer.from(got[0]!.issuerStateBytes).equals(Buffer.from(before))).toBe(true)
    const frozen = encodeIssuerState(await ca1.issuer!.handOver(async state => state, {}))
    expect(Buffer.from(frozen).equals(Buffer.from(before))).toBe(true)
    // Retired: every later input is refused until the holders restart.
    await expect(
      ca1.issuer!.run({
        type: 'create-ticket',
        requestId: 't2',
        name: 'later2',
        zone: 'web',
        roles: ['agent'],
        ttlMs: 60_000,
        bootstrap: ca1.addrs(),
      }),
    ).rejects.toThrow(/restart the agents of all of them/)
  }, 30_000)

  it('a receiver refuses a handover it may not hold, or one not signed by the CA key, and stores nothing', async () => {
    const mallory = await createHostilePeer({ ca, certify: { name: 'mallory', zone: 'db' } })
    try {
      const send = async (to: TestNode, signer = ca.key) => {
        await mallory.connect(to.addrs()[0]!)
        const s = await mallory.open(to.peerId, CA_HANDOVER_PROTOCOL, 5_000)
        const bytes = createHandover({
          caKey: signer,
          from: mallory.peerId,
          to: to.peerId,
          issuedAtMs: Date.now(),
          holders: [mallory.peerId, to.peerId],
          ticketSecret: ca.ticketSecret,
          issuerState: encodeIssuerState(emptyIssuerState()),
        })
        await s.writeFrame(bytes, 5_000)
        return decodeHandoverAnswer((await s.readFrame(5_000))!)
      }
      // d1's certificate has no ca role: even the real CA key does not make it a holder.
      expect(await send(mesh.node('d1'))).toMatchObject({ ok: false, reason: 'not-a-ca-member' })
      // ca2 may hold, but not a CA key that is not the mesh's.
      expect(await send(mesh.node('ca2'), randomKey())).toMatchObject({ ok: false, reason: 'bad-signature' })
      expect(handovers.d1).toHaveLength(0)
      expect(handovers.ca2).toHaveLength(1) // only the real add-holder's
      // And counted where `mesh status --json` shows them.
      expect(mesh.node('d1').counters().caHandover).toMatchObject({
        stored: 0,
        refused: { 'not-a-ca-member': 1 },
      })
      expect(mesh.node('ca2').counters().caHandover).toMatchObject({
        stored: 1,
        refused: { 'bad-signature': 1 },
      })
    } finally {
      await mallory.stop()
    }
  }, 20_000)
})
