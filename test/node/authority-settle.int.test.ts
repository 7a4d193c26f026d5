/**
 * Proves that a node without a signed zone roster that hears no one does not crown itself a zone of
 * one, however long it waits: the hosts rig (test/hosts/) saw three ticket-joined agents of one zone
 * each take the lease at epoch 1 at once, because their first connection took longer than the
 * settle period counted from start. Now the period counts from the first peer heard, so a node alone
 * holds nothing, and two nodes of one zone that meet still elect exactly one authority.
 * In-process over @libp2p/memory, `test` profile (settle period 900 ms); every wait is bounded.
 */
import { afterEach, describe, expect, it } from 'vitest'
import { createTestCa, createTestNode, type TestNode, waitFor } from './harness.js'

const started: TestNode[] = []

afterEach(async () => {
  await Promise.allSettled(started.splice(0).map(n => n.stop()))
})

async function start(node: Promise<TestNode>): Promise<TestNode> {
  const n = await node
  await n.start()
  started.push(n)
  return n
}

describe('unsigned roster: the settle period counts from the first peer heard', () => {
  it('a node that reaches no one never holds; two that meet elect one', async () => {
    const ca = createTestCa()
    const a = await start(createTestNode(ca, { name: 'a', zone: 'web' }, 'memory'))
    // Three settle periods, well past the restart quiet period (TTL + skew, 1.1 s): before the fix `a`
    // held `web` alone after about 1.1 s.
    const until = Date.now() + 3_000
    while (Date.now() < until) {
      expect(a.authority.isAuthority('web')).toBeNull()
      await new Promise(r => setTimeout(r, 50))
    }
    const b = await start(createTestNode(ca, { name: 'b', zone: 'web' }, 'memory'))
    await b.dial(a.addrs()[0]!)
    const holders = () => [a, b].filter(n => n.authority.isAuthority('web') !== null)
    await waitFor(() => holders().length === 1, 15_000, 'one authority of web once a and b meet')
    expect(holders()).toHaveLength(1)
  }, 30_000)
})
