// Proves the agent end to end on real libp2p over 127.0.0.1: certified nodes admit each other, learn
// membership from signed heartbeats, and `exec` reaches exactly the targeted nodes with signed replies.
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { startTestMesh, type TestMesh } from './harness.js'

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
})
