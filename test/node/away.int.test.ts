// Requests reach nodes that were away: a member that is offline when a request is sent and back
// before it expires is offered the request by the nodes holding it, runs it once, and its reply lands
// in the requester's job record. A member that restarts while running a request is offered it again
// and does not run it a second time: its run record (persisted through the node's store) says it ran.
import { afterEach, describe, expect, it } from 'vitest'
import type { ActionHandler } from '../../src/node/actions/index.js'
import type { NodeStore } from '../../src/node/node-types.js'
import { createTestNode, startTestMesh, type TestMesh, type TestNode, waitFor } from './harness.js'

/** A run record kept in memory across node objects, as a home keeps it across processes. */
function durableStore(): NodeStore {
  let saved: Uint8Array | undefined
  return {
    loadRunRecord: async () => saved,
    saveRunRecord: async bytes => {
      saved = bytes.slice()
    },
  }
}

const policy = [{ actions: ['slow'], roles: ['operator' as const] }]

describe('requests reach nodes that were away', () => {
  let mesh: TestMesh | undefined
  const extra: TestNode[] = []
  afterEach(async () => {
    await Promise.all(extra.map(n => n.stop().catch(() => {})))
    extra.length = 0
    await mesh?.stop()
    mesh = undefined
  })

  it('runs a request on a member that comes back before it expires, once', async () => {
    mesh = await startTestMesh(
      [
        { name: 'op', zone: 'core', operator: true },
        { name: 'w1', zone: 'web' },
        { name: 'w2', zone: 'web' },
      ],
      { transport: 'memory' },
    )
    await mesh.converge()
    const op = mesh.node('op')
    const identity = mesh.ca.identity('w3', 'web', ['agent'])
    const store = durableStore()

    // w3 is not there when the request is sent.
    const result = await op.exec({ action: 'ping', filter: { zone: 'web' }, timeoutMs: 20_000 })
    expect(result.expected).toEqual(['w1', 'w2'])
    expect(result.missing).toEqual([])

    const w3 = await createTestNode(mesh.ca, { name: 'w3', zone: 'web', identity, init: { store } }, 'memory')
    extra.push(w3)
    await w3.start()
    await w3.dial(op.addrs()[0]!)
    await waitFor(() => w3.jobs.list().some(j => j.job === result.id), 15_000, 'w3 to run the held request')
    expect(w3.jobs.list().find(j => j.job === result.id)?.ownStatus).toBe('ok')
    expect(w3.counters().held.offeredRun).toBe(1)

    // Its reply reaches the requester's job record, though exec had returned.
    let shown = await op.jobs.show(result.id)
    for (let i = 0; i < 40 && !shown?.replies.some(r => r.node === 'w3'); i++) {
      await new Promise(r => setTimeout(r, 100))
      shown = await op.jobs.show(result.id)
    }
    expect(shown?.replies.map(r => [r.node, r.status])).toEqual([
      ['w1', 'ok'],
      ['w2', 'ok'],
      ['w3', 'ok'],
    ])
    // w1 and w2 were offered nothing new: they had it (their run once is the replay cache's).
    expect(mesh.node('w1').counters().held.offeredRun).toBe(0)
  }, 60_000)

  it('does not run a request twice on a member that restarts while running it', async () => {
    let runs = 0
    const slow: ActionHandler = async context => {
      runs += 1
      await new Promise<void>(resolve => {
        const timer = setTimeout(resolve, 3_000)
        context.signal?.addEventListener('abort', () => {
          clearTimeout(timer)
          resolve()
        })
      })
      return { exitCode: 0, output: 'slow done\n' }
    }
    mesh = await startTestMesh(
      [
        { name: 'op', zone: 'core', operator: true, config: { policy } },
        { name: 'w1', zone: 'web', config: { policy } },
      ],
      { transport: 'memory' },
    )
    await mesh.converge()
    mesh.node('w1').registerAction('slow', async () => ({ exitCode: 0, output: 'w1\n' }))
    const op = mesh.node('op')
    const identity = mesh.ca.identity('w3', 'web', ['agent'])
    const store = durableStore()
    const start = async (): Promise<TestNode> => {
      const node = await createTestNode(
        mesh!.ca,
        { name: 'w3', zone: 'web', identity, config: { policy }, init: { store } },
        'memory',
      )
      extra.push(node)
      node.registerAction('slow', slow)
      await node.start()
      await node.dial(op.addrs()[0]!)
      return node
    }
    const first = await start()
    await waitFor(
      () => op.members().some(m => m.name === 'w3' && m.state === 'alive'),
      15_000,
      'op to see w3',
    )
    const execution = op.exec({ action: 'slow', filter: { zone: 'web' }, timeoutMs: 25_000 })
    await waitFor(() => runs === 1, 10_000, 'w3 to start the slow action')
    await first.stop() // mid-run: the run is cancelled, the record says it started
    const second = await start()
    await waitFor(() => second.counters().held.offersReceived > 0, 15_000, 'the request to be offered again')
    await new Promise(r => setTimeout(r, 500))
    expect(runs).toBe(1)
    const result = await execution
    const w3 = result.replies.filter(r => r.node === 'w3')
    // The first done is the one that counts: cancelled by the stop, never run a second time.
    expect(w3[0]?.status).toBe('cancelled')
    // The offer reached the restarted w3, whose stored run record refused it: "already ran".
    await waitFor(
      () => second.jobs.list().some(j => j.action === 'slow' && j.ownStatus === 'error'),
      5_000,
      'the restarted w3 to answer already-ran',
    )
  }, 60_000)
})
