// Proves that a node never acts on a zone-lease epoch before that epoch is on disk: in a zone whose
// only voter is the node itself, the lease core grants itself the lease within one step, before the
// driver has saved the epoch. The SIGKILL campaign (crash-consistency.int.test.ts) caught `mesh zones`
// reporting epoch 2 held while authority-epochs still said 1; a kill there lets the next run grant
// epoch 2 again, after an `exec --once` may already have run under it. Here the save is held back by
// the test: while it is pending the node is no authority (isAuthority, zones), and once the save
// resolves it is. In-process over @libp2p/memory, `test` profile; every wait is bounded.
import { afterEach, describe, expect, it } from 'vitest'
import { createTestCa, createTestNode, type TestNode, waitFor, withZoneRoster } from '../node/harness.js'

const started: TestNode[] = []

afterEach(async () => {
  await Promise.allSettled(started.splice(0).map(n => n.stop()))
})

describe('authority epochs: durable before acted on', () => {
  it('a lone voter holds nothing while its epoch is being saved, and holds once it is saved', async () => {
    const ca = createTestCa()
    let release: (() => void) | undefined
    const saves: Uint8Array[] = []
    const [spec] = withZoneRoster(ca, [
      {
        name: 'solo',
        zone: 'core',
        init: {
          store: {
            saveAuthorityEpochs: bytes =>
              new Promise<void>(resolve => {
                saves.push(bytes)
                release = resolve
              }),
          },
        },
      },
    ])
    const node = await createTestNode(ca, spec!, 'memory')
    await node.start()
    started.push(node)
    await waitFor(() => saves.length > 0, 10_000, 'the epoch save to start')
    // The core holds the lease already; the epoch is not on disk yet.
    const until = Date.now() + 600
    while (Date.now() < until) {
      expect(node.authority.isAuthority('core')).toBeNull()
      expect(node.authority.zones().find(z => z.zone === 'core')?.authority ?? null).toBeNull()
      await new Promise(r => setTimeout(r, 25))
    }
    release?.()
    await waitFor(() => node.authority.isAuthority('core') !== null, 5_000, 'the authority once saved')
    expect(node.authority.isAuthority('core')?.epoch).toBe(1)
    expect(node.authority.zones().find(z => z.zone === 'core')?.authority).toBe('solo')
  })
})
