// Proves zone authority on a real mesh (five agents, one zone, 127.0.0.1): exactly one node holds the
// lease, stopping it hands the lease to another with a higher epoch, and `exec --once` runs exactly
// once per request throughout, on the current holder, with its epoch in the reply.
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { MeshNode } from '../../src/node/node-types.js'
import { startTestMesh, type TestMesh, waitFor } from './harness.js'

function holders(nodes: MeshNode[]): MeshNode[] {
  return nodes.filter(n => n.isAuthority('web') !== null)
}

describe('zone authority across five agents', () => {
  let mesh: TestMesh
  beforeAll(async () => {
    mesh = await startTestMesh([
      { name: 'w1', zone: 'web', operator: true },
      { name: 'w2', zone: 'web', operator: true },
      { name: 'w3', zone: 'web', operator: true },
      { name: 'w4', zone: 'web', operator: true },
      { name: 'w5', zone: 'web', operator: true },
    ])
    await mesh.converge()
  })
  afterAll(async () => {
    await mesh?.stop()
  })

  it('elects exactly one authority, and a new one with a higher epoch when it stops', async () => {
    await waitFor(() => holders(mesh.nodes).length === 1, 15_000, 'one authority')
    const first = holders(mesh.nodes)[0]!
    const firstEpoch = first.isAuthority('web')!.epoch
    expect(holders(mesh.nodes)).toHaveLength(1)

    const requester = first.name === 'w1' ? mesh.node('w2') : mesh.node('w1')
    // The requester learns the holder from heartbeats; --once then runs exactly once.
    await waitFor(
      () => requester.zones().find(z => z.zone === 'web')?.authority === first.name,
      10_000,
      'requester to see the holder',
    )
    const once = await requester.exec({
      action: 'ping',
      filter: { zone: 'web', once: true },
      timeoutMs: 5_000,
    })
    expect(once.replies).toHaveLength(1)
    expect(once.replies[0]?.node).toBe(first.name)
    expect(once.replies[0]?.epoch).toBe(firstEpoch)
    expect(once.missing).toEqual([])

    await first.stop()
    const rest = mesh.nodes.filter(n => n !== first)
    await waitFor(() => holders(rest).length === 1, 15_000, 'a new authority after the holder stopped')
    const second = holders(rest)[0]!
    expect(second).not.toBe(first)
    expect(second.isAuthority('web')!.epoch).toBeGreaterThan(firstEpoch)

    const survivor = rest.find(n => n !== second)!
    await waitFor(
      () => survivor.zones().find(z => z.zone === 'web')?.authority === second.name,
      10_000,
      'the new holder to be seen',
    )
    const again = await survivor.exec({
      action: 'ping',
      filter: { zone: 'web', once: true },
      timeoutMs: 5_000,
    })
    expect(again.replies.map(r => r.node)).toEqual([second.name])
  })
})
