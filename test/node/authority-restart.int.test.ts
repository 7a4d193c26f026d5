/**
 * The first defect of the "trying mesh as a new user" issue, on real nodes: zone web has w1, w2, w3 and
 * core has a. w3 stops for good; w1 stops and starts again. Before the fix w1 came back counting other
 * voters than w2 (its learnt roster had lost w3) and, even with agreeing rosters, could not finish its
 * recovery with w2 alone, so web had no authority for good. With the CA-signed zone roster (every node
 * counts the same voters) and saved epochs (a restarted voter recovers with one peer), web elects
 * again within seconds and keeps one authority. In-process over @libp2p/memory; every wait is bounded.
 */
import { afterEach, describe, expect, it } from 'vitest'
import type { NodeSpec, TestCa, TestNode } from './harness.js'
import { createTestCa, createTestNode, waitFor, withZoneRoster } from './harness.js'

/** Per-node in-memory stand-in for the home's `authority-epochs` file. */
function epochStore() {
  let bytes: Uint8Array | undefined
  return {
    initial: () => bytes,
    save: async (next: Uint8Array) => {
      bytes = next
    },
  }
}

const started: TestNode[] = []

async function start(
  ca: TestCa,
  spec: NodeSpec,
  store: ReturnType<typeof epochStore>,
  dial?: TestNode,
): Promise<TestNode> {
  const node = await createTestNode(
    ca,
    {
      ...spec,
      init: {
        ...spec.init,
        authorityEpochs: store.initial(),
        store: { saveAuthorityEpochs: store.save },
      },
    },
    'memory',
  )
  await node.start()
  started.push(node)
  if (dial !== undefined) await node.dial(dial.addrs()[0]!)
  return node
}

/** Names of the nodes that hold `zone` right now. */
function holders(nodes: readonly TestNode[], zone: string): string[] {
  return nodes.filter(n => n.authority.isAuthority(zone) !== null).map(n => n.name)
}

afterEach(async () => {
  await Promise.allSettled(started.splice(0).map(n => n.stop()))
})

describe('zone authority across a restart (signed roster, saved epochs)', () => {
  it('a zone of three with one member stopped and another restarted elects again and stays stable', async () => {
    const ca = createTestCa()
    const specs = withZoneRoster(ca, [
      { name: 'a', zone: 'core' },
      { name: 'w1', zone: 'web' },
      { name: 'w2', zone: 'web' },
      { name: 'w3', zone: 'web' },
    ])
    const stores = new Map(specs.map(s => [s.name, epochStore()]))
    const spec = (name: string) => specs.find(s => s.name === name)!
    const a = await start(ca, spec('a'), stores.get('a')!)
    const w1 = await start(ca, spec('w1'), stores.get('w1')!, a)
    const w2 = await start(ca, spec('w2'), stores.get('w2')!, a)
    const w3 = await start(ca, spec('w3'), stores.get('w3')!, a)
    let nodes = [a, w1, w2, w3]
    await waitFor(() => holders(nodes, 'web').length === 1, 15_000, 'an authority of web')
    // Every node counts web's voters from the signed roster.
    for (const node of nodes) {
      const web = node.authority.zones().find(z => z.zone === 'web')
      expect(web?.members).toEqual(['w1', 'w2', 'w3'])
    }

    await w3.stop()
    await new Promise(resolve => setTimeout(resolve, 2_000))
    await w1.stop()
    nodes = [a, w2]
    const w1b = await start(ca, spec('w1'), stores.get('w1')!, a)
    nodes = [a, w1b, w2]
    // While w1 restarts only w2 runs, a minority: w2's lease runs out, and web is without an authority
    // until w1 has waited out its quiet period and recovered with w2 alone (it saved its epochs).
    // Then an authority whose lease w1 granted: w1's own view names the holder.
    await waitFor(
      () =>
        holders(nodes, 'web').length === 1 &&
        // (A string: before w1 has fed its roster to the core, the zone is missing and the field undefined.)
        typeof w1b.authority.zones().find(z => z.zone === 'web')?.authority === 'string',
      20_000,
      'an authority of web granted by the restarted w1',
    )
    // Stable: one holder at every sample over three seconds (a lease lasts ~1 s in the test profile).
    let gaps = 0
    for (let i = 0; i < 30; i++) {
      await new Promise(resolve => setTimeout(resolve, 100))
      const now = holders(nodes, 'web')
      expect(now.length).toBeLessThanOrEqual(1)
      if (now.length === 0) gaps++
    }
    expect(gaps).toBe(0)
  }, 60_000)
})
