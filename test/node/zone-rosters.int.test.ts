/**
 * Proves on real libp2p nodes in one process (@libp2p/memory) that CA-signed zone rosters spread the
 * three ways revocation lists do: through the hello (a node started with an older roster adopts its
 * peer's newer one whichever side dials, and saves it), through the gossip topic (a roster offered and
 * republished at a running node reaches nodes two hops away, and a republication of the same roster is
 * not dropped as a duplicate), and from the CA's own issuer (a certificate it issues changes the roster,
 * which it publishes). And in an agent home: `mesh init` saves the CA's first roster as `zone-roster`,
 * and a corrupt `zone-roster` does not stop the agent (it is logged and left out, the issuer's roster
 * adopted instead and saved over it). Every wait is bounded.
 */
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { pino } from 'pino'
import { afterEach, describe, expect, it } from 'vitest'
import { homePaths } from '../../src/agent/home.js'
import { initHome } from '../../src/agent/init.js'
import { startAgent } from '../../src/agent/runtime.js'
import { verifyZoneRoster } from '../../src/ca/zone-roster.js'
import { TOPICS } from '../../src/node/host.js'
import { ZONE_ROSTER_REPUBLISH_INTERVAL_MS } from '../../src/node/zone-rosters.js'
import {
  createTestCa,
  createTestNode,
  randomKey,
  startTestMesh,
  startTopology,
  type TestMesh,
  type TestNode,
  type TestTopology,
  waitFor,
} from './harness.js'

const versionOf = (node: TestNode): number | undefined => node.counters().zoneRoster.version
const rosterAccepts = (node: TestNode): number => node.counters().topics[TOPICS.roster]?.accept ?? 0

describe('zone rosters between running nodes', () => {
  let nodes: TestNode[] = []
  let mesh: TestMesh | TestTopology | undefined
  afterEach(async () => {
    await Promise.all(nodes.map(n => n.stop().catch(() => {})))
    nodes = []
    await mesh?.stop()
    mesh = undefined
  })

  it('a node started with an older roster adopts its peer’s newer one through the hello, both ways', async () => {
    const ca = createTestCa()
    const ids = ['fresh', 'old-dialer', 'old-listener'].map(name => ({
      name,
      identity: ca.identity(name, 'db', ['agent']),
    }))
    const members = ids.map(i => ({ peerId: i.identity.certificate.certificate.peerId, zone: 'db' }))
    const older = ca.zoneRoster(members, 1).bytes
    const newer = ca.zoneRoster(members, 2).bytes
    const saved = new Map<string, number[]>()
    nodes = await Promise.all(
      ids.map(({ name, identity }) =>
        createTestNode(
          ca,
          {
            name,
            zone: 'db',
            identity,
            init: {
              zoneRoster: name === 'fresh' ? newer : older,
              store: {
                saveZoneRoster: async bytes =>
                  void saved.set(name, [...(saved.get(name) ?? []), bytes.byteLength]),
              },
            },
          },
          'memory',
        ),
      ),
    )
    const [fresh, oldDialer, oldListener] = nodes as [TestNode, TestNode, TestNode]
    for (const node of nodes) await node.start()
    expect(nodes.map(versionOf)).toEqual([2, 1, 1])
    // The older node dials: the listener's answer carries the newer roster.
    await oldDialer.dial(fresh.addrs()[0]!)
    await waitFor(() => versionOf(oldDialer) === 2, 5_000, 'the dialer to adopt version 2')
    // The newer node dials: its own hello carries the roster to the listener.
    await fresh.dial(oldListener.addrs()[0]!)
    await waitFor(() => versionOf(oldListener) === 2, 5_000, 'the listener to adopt version 2')
    expect(versionOf(fresh)).toBe(2)
    expect(fresh.counters().zoneRoster.adopted).toBe(1) // its own, from the home; the older ones ignored
    expect(saved.get('old-dialer')).toEqual([newer.byteLength])
    expect(saved.get('old-listener')).toEqual([newer.byteLength])
    expect(saved.get('fresh')).toBeUndefined() // the home's copy is not written back
  })

  it('a roster offered at a running node reaches the others through gossip, two hops on', async () => {
    const topology = await startTopology(
      [
        { name: 'a', zone: 'db' },
        { name: 'b', zone: 'db' },
        { name: 'c', zone: 'web' },
      ],
      [
        ['a', 'b'],
        ['b', 'c'],
      ],
      { transport: 'memory', zoneRoster: true },
    )
    mesh = topology
    await topology.converge()
    const [a, b, c] = ['a', 'b', 'c'].map(n => topology.node(n)) as [TestNode, TestNode, TestNode]
    expect([a, b, c].map(versionOf)).toEqual([1, 1, 1])
    const members = [a, b, c].map(n => ({ peerId: n.peerId, zone: n.zone }))
    const next = topology.ca.zoneRoster(members, 2).bytes
    expect(a.zoneRosters.offer(next, 'test')).toBe(true)
    a.zoneRosters.republish()
    await waitFor(() => versionOf(b) === 2 && versionOf(c) === 2, 10_000, 'b and c to adopt version 2')
    expect(rosterAccepts(b)).toBeGreaterThanOrEqual(1)
    expect(rosterAccepts(c)).toBeGreaterThanOrEqual(1) // c is not linked to a: b forwarded it
    // The same roster again, past the rate limit: a fresh nonce, so b receives it (and ignores it).
    await new Promise(r => setTimeout(r, ZONE_ROSTER_REPUBLISH_INTERVAL_MS + 100))
    a.zoneRosters.republish()
    await waitFor(
      () => (b.counters().topics[TOPICS.roster]?.['not-newer'] ?? 0) >= 1,
      5_000,
      'b to receive the republication',
    )
    expect(a.counters().zoneRoster).toMatchObject({ version: 2, republished: 2 })
  })

  it('the CA node publishes the roster its issuer signs when it issues a certificate', async () => {
    mesh = await startTestMesh(
      [
        { name: 'ca1', zone: 'core', ca: true },
        { name: 'n1', zone: 'db' },
        { name: 'n2', zone: 'db' },
      ],
      { transport: 'memory' },
    )
    await mesh.converge()
    const [ca1, n1, n2] = ['ca1', 'n1', 'n2'].map(n => mesh!.node(n)) as [TestNode, TestNode, TestNode]
    // The issuer's roster at creation (nothing issued through it yet), passed on in every hello.
    const start = versionOf(ca1)
    expect(start).toBeDefined()
    await waitFor(() => versionOf(n1) === start && versionOf(n2) === start, 5_000, 'the start roster')
    const effects = await ca1.issuer!.run({
      type: 'issue',
      requestId: 'n3',
      publicKey: randomKey().publicKey,
      name: 'n3',
      zone: 'web',
      roles: ['agent'],
    })
    expect(effects.some(e => e.type === 'command-reply' && e.result.ok)).toBe(true)
    const after = versionOf(ca1)
    expect(after).toBe((start ?? 0) + 1)
    expect(ca1.zoneRosters.current()?.roster.members.map(m => m.zone)).toEqual(['web'])
    await waitFor(() => versionOf(n1) === after && versionOf(n2) === after, 10_000, 'n1 and n2 to adopt it')
    expect(rosterAccepts(n1) + rosterAccepts(n2)).toBeGreaterThanOrEqual(2)
  })
})

describe('zone roster in an agent home', () => {
  it('is saved by mesh init, and a corrupt copy is logged and replaced, not fatal', async () => {
    const root = await mkdtemp(join(tmpdir(), 'mesh-zone-roster-'))
    try {
      const home = join(root, 'home')
      await initHome(home, { name: 'n1', zone: 'core' }, Date.now())
      const path = homePaths(home).zoneRoster
      const caPublicKey = await readFile(homePaths(home).caPublicKey)
      const first = verifyZoneRoster(await readFile(path), caPublicKey)
      expect(first.ok).toBe(true)
      // The init node (roles ca and agent) is the first member.
      expect(first.ok && first.signed.roster.members.map(m => m.zone)).toEqual(['core'])
      await writeFile(path, Uint8Array.of(0xde, 0xad, 0xbe, 0xef))
      const lines: Record<string, unknown>[] = []
      const logger = pino({ level: 'info' }, { write: (line: string) => void lines.push(JSON.parse(line)) })
      const env = { MESH_LISTEN: '/ip4/127.0.0.1/tcp/0', MESH_MDNS: 'false' }
      const agent = await startAgent({ home: join(root, 'home'), env, logger })
      try {
        const counters = agent.node.counters().zoneRoster
        expect(counters.refused).toEqual({ malformed: 1 })
        expect(counters.version).toBe(first.ok ? first.signed.roster.version : -1)
        expect(lines.some(l => l.msg === 'zone roster refused' && l.origin === 'home')).toBe(true)
        // The issuer's roster, adopted at start, is saved over the corrupt copy (in the background).
        const deadline = Date.now() + 5_000
        while (!verifyZoneRoster(await readFile(path), caPublicKey).ok) {
          if (Date.now() > deadline) throw new Error('timed out waiting for zone-roster to be rewritten')
          await new Promise(r => setTimeout(r, 25))
        }
      } finally {
        await agent.stop()
      }
    } finally {
      await rm(root, { recursive: true, force: true })
    }
  })
})
