// Proves, on real libp2p over 127.0.0.1, the attack of security item 3 is closed: a request signed with
// `issuedAtMs` ahead of the target's clock (6 s, from a requester whose clock runs 6 s fast, through
// `exec`; and 29 s, hand-signed and published raw — both inside the 30 s skew budget) runs on t1; t1
// restarts (stop, then a new createMeshNode with the same identity and a store that keeps the run record
// in memory, as the agent's file does) before those `issuedAtMs`, so the old `issuedAtMs < startedAtMs`
// rule does not apply; the identical bytes published again then reach the new t1, which accepts them
// (its replay cache is new) and answers "already ran" without running them: each ran exactly once.
// The bytes are published again by a fresh member linked straight to t1: the requester's own gossipsub
// refuses to publish bytes it has seen (PublishError.Duplicate), and drops them as seen when forwarding.
import { pino } from 'pino'
import { afterAll, describe, expect, it, vi } from 'vitest'
import { createRequest, decodeRequest } from '../../src/gossip/request.js'
import type { ActionHandler } from '../../src/node/actions/index.js'
import { systemClock } from '../../src/node/clock.js'
import { TOPICS } from '../../src/node/host.js'
import { secureRandomBytes } from '../../src/node/keys.js'
import type { NodeStore } from '../../src/node/node-types.js'
import {
  createTestCa,
  createTestNode,
  startTestMesh,
  type TestMesh,
  type TestNode,
  waitFor,
} from './harness.js'

const AHEAD_MS = 6_000
const timings = { suspectAfterMs: 3_000, deadAfterMs: 30_000, policy: [{ actions: ['probe'] }] }

describe('at most once across a restart, for requests issued ahead of the target clock', () => {
  let mesh: TestMesh | undefined
  const extra: TestNode[] = []
  afterAll(async () => {
    await Promise.all(extra.map(n => n.stop().catch(() => {})))
    await mesh?.stop()
  })

  it('does not run the identical bytes again after the target restarts', async () => {
    const ca = createTestCa()
    const t1Identity = ca.identity('t1', 'web', ['agent'])
    const alice = ca.identity('alice', 'core', ['operator'])
    // The target's store: keeps the run record across the restart, as the agent's home does.
    let saved: Uint8Array | undefined
    const store: NodeStore = {
      loadRunRecord: async () => saved,
      saveRunRecord: async bytes => {
        saved = bytes
      },
    }
    const runs: string[] = []
    const probe: ActionHandler = async context => {
      runs.push(context.request.id ?? '?')
      return { exitCode: 0, output: 'ran' }
    }
    mesh = await startTestMesh(
      [
        {
          name: 'op',
          zone: 'core',
          config: timings,
          init: { operator: alice, clock: { ...systemClock, nowMs: () => Date.now() + AHEAD_MS } },
        },
        { name: 't1', zone: 'web', identity: t1Identity, config: timings, init: { store } },
      ],
      { ca },
    )
    const op = mesh.node('op')
    const t1 = mesh.node('t1')
    t1.registerAction('probe', probe)
    await mesh.converge()
    const published: Uint8Array[] = []
    const pubsub = op.host.services.pubsub
    const publish = pubsub.publish.bind(pubsub)
    vi.spyOn(pubsub, 'publish').mockImplementation(async (topic: string, data?: Uint8Array) => {
      if (topic === TOPICS.request && data !== undefined) published.push(data)
      return publish(topic, data)
    })

    // 6 s ahead, through exec.
    const first = await op.exec({ action: 'probe', filter: { node: 't1' }, timeoutMs: 20_000 })
    expect(first.replies).toMatchObject([{ node: 't1', status: 'ok' }])
    // 29 s ahead, signed by hand and published raw.
    const issuedAtMs = Date.now() + 29_000
    const raw = createRequest({
      id: secureRandomBytes(16),
      issuer: alice.certificate.bytes,
      key: alice.key,
      issuedAtMs,
      expiresAtMs: issuedAtMs + 30_000,
      filter: { node: 't1' },
      action: 'probe',
      args: [],
      replyTo: { peerId: op.peerId, addrs: op.addrs() },
    })
    await pubsub.publish(TOPICS.request, raw.bytes)
    await waitFor(() => runs.length === 2, 10_000, 'both requests to run on t1')
    const requests = published.map(bytes => decodeRequest(bytes))
    expect(requests).toHaveLength(2)

    // Restart t1: a new node object from the same identity and store.
    await t1.stop()
    mesh.nodes.splice(mesh.nodes.indexOf(t1), 1)
    const lines: string[] = []
    const t1b = await createTestNode(ca, {
      name: 't1',
      zone: 'web',
      identity: t1Identity,
      config: timings,
      init: { store, logger: pino({ level: 'info' }, { write: (line: string) => void lines.push(line) }) },
    })
    extra.push(t1b)
    t1b.registerAction('probe', probe)
    const startedAtMs = Date.now()
    await t1b.start()
    // Otherwise the old issuedAtMs < startedAtMs rule would refuse them and prove nothing here.
    for (const r of requests)
      expect(r.body.issuedAtMs, 'restarted before issuedAtMs').toBeGreaterThan(startedAtMs)

    // A fresh member (it has not seen the bytes) linked straight to t1 publishes them again.
    const m1 = await createTestNode(ca, { name: 'm1', zone: 'core', config: timings })
    extra.push(m1)
    await m1.start()
    await m1.dial(t1b.addrs()[0]!)
    await waitFor(
      () => m1.host.services.pubsub.getSubscribers(TOPICS.request).some(p => p.toString() === t1b.peerId),
      10_000,
      'm1 to see t1 subscribed to the request topic',
    )
    for (const bytes of published) await m1.host.services.pubsub.publish(TOPICS.request, bytes)

    const alreadyRan = () => lines.filter(l => l.includes('already ran before this agent restarted')).length
    // Settled: each replayed request either refused as already run or (the attack) run a second time.
    await waitFor(() => alreadyRan() + runs.length === 4, 10_000, 'the restarted t1 to act on both')
    expect(runs).toEqual(requests.map(r => r.idHex)) // each ran exactly once
    expect(alreadyRan()).toBe(2)
    expect(t1b.counters().requests['accept-execute']).toBe(2) // accepted: its replay cache is new
    expect(t1b.counters().notRunBeforeStart).toBe(0)
    expect(lines.some(l => l.includes('running request'))).toBe(false)
    await new Promise(r => setTimeout(r, 200))
    expect(runs).toHaveLength(2)
  })
})
