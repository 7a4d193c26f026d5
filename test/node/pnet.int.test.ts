// Proves the optional pnet outer fence: nodes sharing a pre-shared network key form a mesh; a node with
// another key (or none) cannot even complete a connection, so it never reaches the certificate hello.
import { generateKey } from '@libp2p/pnet'
import { afterAll, describe, expect, it } from 'vitest'
import { createTestCa, startTestMesh, type TestMesh } from './harness.js'

function networkKey(): Uint8Array {
  const key = new Uint8Array(95)
  generateKey(key)
  return key
}

describe('pre-shared network key (pnet)', () => {
  const meshes: TestMesh[] = []
  afterAll(async () => {
    await Promise.all(meshes.map(m => m.stop()))
  })

  it('admits nodes with the key and shuts out a certified node without it', async () => {
    const ca = createTestCa()
    const key = networkKey()
    const mesh = await startTestMesh(
      [
        { name: 'p1', zone: 'web', init: { pnetKey: key } },
        { name: 'p2', zone: 'web', init: { pnetKey: key } },
      ],
      { ca },
    )
    meshes.push(mesh)
    await mesh.converge()

    for (const otherKey of [networkKey(), undefined]) {
      const outsider = await startTestMesh([{ name: 'p3', zone: 'web', init: { pnetKey: otherKey } }], { ca })
      meshes.push(outsider)
      const p3 = outsider.node('p3')
      await expect(p3.dial(mesh.node('p1').addrs()[0]!)).rejects.toThrow()
      expect(mesh.node('p1').host.getConnections(p3.host.peerId)).toHaveLength(0)
      expect(mesh.node('p1').admission.counters.admitted).toBe(1)
    }
  })
})
