// Proves on a three-node mesh over 127.0.0.1 that a target stopped gracefully while running an action
// still answers: its stop kills the process tree and sends a signed `done` with status `cancelled`
// before its streams close, so the requester gets it within moments instead of waiting out its
// timeout and reporting "no answer"; and that an action no node has is answered `error` with reason
// `unknown-action` by every node (checked before policy), not `denied`.
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { AgentConfig } from '../../src/node/config.js'
import { startTestMesh, type TestMesh } from './harness.js'

/** Members stay alive through event-loop stalls of a loaded machine, so `expected` is stable. */
const config = (c: Partial<AgentConfig>): Partial<AgentConfig> => ({
  suspectAfterMs: 3_000,
  deadAfterMs: 6_000,
  ...c,
})
const LONG = { argv: ['sleep', '30'], timeoutMs: 60_000 }

describe('exec: a target that stops mid-run, an unknown action', () => {
  let mesh: TestMesh
  beforeAll(async () => {
    mesh = await startTestMesh([
      { name: 'c1', zone: 'core', ca: true, operator: true, config: config({}) },
      {
        name: 'd1',
        zone: 'db',
        config: config({ actions: { long: LONG }, policy: [{ actions: ['long'] }] }),
      },
      { name: 'd2', zone: 'db', config: config({}) },
    ])
    await mesh.converge()
  })
  afterAll(async () => {
    await mesh?.stop()
  })

  it('answers every node unknown-action for a typo, not denied', async () => {
    const result = await mesh.node('c1').exec({ action: 'uptim', timeoutMs: 10_000 })
    expect(result.missing).toEqual([])
    expect(result.replies.map(r => r.node).sort()).toEqual(['c1', 'd1', 'd2'])
    for (const reply of result.replies) {
      expect(reply.status).toBe('error')
      expect(reply.reason).toBe("unknown-action: this node has no action 'uptim'")
    }
  })

  it('gets a cancelled done from a node stopped gracefully while running, long before the timeout', async () => {
    const d1 = mesh.node('d1')
    let stopping: Promise<void> | undefined
    const startedAt = Date.now()
    const result = await mesh.node('c1').exec({
      action: 'long',
      filter: { node: 'd1' },
      timeoutMs: 15_000,
      onEvent: event => {
        // d1 has accepted and is running the 30 s sleep: stop it as `mesh agent` does on SIGTERM.
        if (event.kind === 'ack' && event.node === 'd1') stopping ??= d1.stop()
      },
    })
    expect(stopping).toBeDefined()
    await stopping
    expect(result.missing).toEqual([])
    expect(result.replies.map(r => [r.node, r.status])).toEqual([['d1', 'cancelled']])
    expect(result.replies[0]?.reason).toMatch(/node is stopping/)
    // The answer came with the stop (kill, then the reply), not at the 15 s deadline.
    expect(Date.now() - startedAt).toBeLessThan(6_000)
  })
})
