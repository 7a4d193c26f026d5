// Proves the agent end to end on real libp2p over 127.0.0.1: certified nodes admit each other, learn
// membership from signed heartbeats, and `exec` reaches exactly the targeted nodes with signed replies;
// the status control method then shows the traffic this caused, per protocol, with rates.
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { controlHandlers } from '../../src/agent/control-methods.js'
import type { TrafficSnapshot } from '../../src/node/traffic.js'
import { startTestMesh, type TestMesh, waitFor } from './harness.js'

/** Declared but, as a shell action, allowed by no default rule. */
const SHELL = { argv: ['sh', '-c'], acceptsArgs: true }

describe('agent: a five-node mesh on 127.0.0.1', () => {
  let mesh: TestMesh
  beforeAll(async () => {
    mesh = await startTestMesh([
      { name: 'c1', zone: 'core', ca: true, operator: true },
      { name: 'w1', zone: 'web' },
      { name: 'w2', zone: 'web' },
      // The db nodes have a `shell` action (an action a node lacks is answered unknown-action, not denied).
      { name: 'd1', zone: 'db', config: { actions: { shell: SHELL } } },
      { name: 'd2', zone: 'db', config: { actions: { shell: SHELL } } },
    ])
    await mesh.converge()
  })
  afterAll(async () => {
    await mesh?.stop()
  })

  it('lists every node as an alive member', () => {
    const members = mesh.node('c1').members()
    expect(members.map(m => m.name)).toEqual(['c1', 'd1', 'd2', 'w1', 'w2'])
    expect(members.every(m => m.state === 'alive')).toBe(true)
    expect(members.find(m => m.name === 'w1')?.zone).toBe('web')
  })

  it('runs uptime on exactly the web zone', async () => {
    const result = await mesh
      .node('c1')
      .exec({ action: 'uptime', filter: { zone: 'web' }, timeoutMs: 10_000 })
    expect(result.expected).toEqual(['w1', 'w2'])
    expect(result.missing).toEqual([])
    expect(result.replies.map(r => r.node).sort()).toEqual(['w1', 'w2'])
    for (const reply of result.replies) {
      expect(reply.status).toBe('ok')
      expect(reply.output).toMatch(/load average: [\d.]+, [\d.]+, [\d.]+/)
    }
  })

  it('runs on the requester itself when it matches', async () => {
    const result = await mesh.node('c1').exec({ action: 'ping', timeoutMs: 10_000 })
    expect(result.replies.map(r => r.node).sort()).toEqual(['c1', 'd1', 'd2', 'w1', 'w2'])
  })

  it('replies denied for actions the policy does not allow', async () => {
    const result = await mesh
      .node('c1')
      .exec({ action: 'shell', args: ['id'], filter: { zone: 'db' }, timeoutMs: 10_000 })
    expect(result.replies.map(r => [r.node, r.status])).toEqual(
      expect.arrayContaining([
        ['d1', 'denied'],
        ['d2', 'denied'],
      ]),
    )
    expect(result.replies.every(r => (r.reason ?? '').includes('no policy rule'))).toBe(true)
  })

  it('counts the traffic of every protocol and shows it, with rates, in status', async () => {
    const w1 = mesh.node('w1')
    // w1 and w2 share the web zone's lease; the requests above reached w1 and its replies went back.
    await waitFor(
      () => (w1.counters().traffic.protocols.authority?.msgsIn ?? 0) > 0,
      10_000,
      'authority traffic',
    )
    const status = (await controlHandlers(w1, mesh.ca.key.publicKey).status?.({}, {} as never)) as {
      traffic: TrafficSnapshot
    }
    const { protocols, total } = status.traffic
    expect(protocols.authority?.msgsOut).toBeGreaterThan(0)
    expect(protocols['gossip:request']?.msgsIn).toBeGreaterThan(0)
    expect(protocols['gossip:request']?.bytesIn).toBeGreaterThan(0)
    expect(protocols.replies?.msgsOut).toBeGreaterThan(0)
    expect(protocols.gossipsub?.msgsIn).toBeGreaterThan(0)
    expect(protocols.hello?.msgsIn).toBeGreaterThan(0)
    expect(total.bytesIn).toBeGreaterThan(protocols.authority?.bytesIn ?? 0)
    for (const row of [...Object.values(protocols), total]) {
      for (const rate of [row.msgsInPerS, row.msgsOutPerS, row.bytesInPerS, row.bytesOutPerS]) {
        expect(Number.isFinite(rate) && rate >= 0).toBe(true)
      }
    }
    // c1 published the requests: one publication each, counted on the topic's row.
    expect(mesh.node('c1').counters().traffic.protocols['gossip:request']?.msgsOut).toBeGreaterThanOrEqual(3)
  })
})
