// Proves rollouts end to end on an in-process mesh of six real nodes over @libp2p/memory: a declared
// action that fails on two of five web nodes, run with --batch 2 and --max-failures 1, runs wave 1
// (w1 ok, w2 failed) and wave 2 (w3 failed, w4 ok), then stops with w5 not run; every web node saw
// both waves' signed requests and ran only the one naming it (its own filter check: accept-execute
// once, accept-not-for-us for the other), and w5 ran nothing. A --limit with a seed picks the same
// nodes as the pure choice function, and every wave shares the job id.
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { AgentConfig } from '../../src/node/config.js'
import type { MeshNode } from '../../src/node/node-types.js'
import { chooseLimited } from '../../src/node/rollout.js'
import { startTestMesh, type TestMesh, waitFor } from './harness.js'

/** Members stay alive through event-loop stalls of a loaded machine, so `expected` is stable. */
const config = (deploy: string[]): Partial<AgentConfig> => ({
  suspectAfterMs: 3_000,
  deadAfterMs: 6_000,
  actions: { deploy: { argv: deploy } },
  policy: [{ actions: ['deploy'], roles: ['operator'] }],
})
const OK = ['true']
const FAIL = ['sh', '-c', 'echo broken; exit 3']
const WEB = ['w1', 'w2', 'w3', 'w4', 'w5']

const outcome = (node: MeshNode, code: 'accept-execute' | 'accept-not-for-us'): number =>
  node.counters().requests[code] ?? 0

describe('rollout on a memory-transport mesh', () => {
  let mesh: TestMesh
  beforeAll(async () => {
    mesh = await startTestMesh(
      [
        { name: 'c1', zone: 'core', ca: true, operator: true, config: config(OK) },
        { name: 'w1', zone: 'web', config: config(OK) },
        { name: 'w2', zone: 'web', config: config(FAIL) },
        { name: 'w3', zone: 'web', config: config(FAIL) },
        { name: 'w4', zone: 'web', config: config(OK) },
        { name: 'w5', zone: 'web', config: config(OK) },
      ],
      { transport: 'memory' },
    )
    await mesh.converge()
  })
  afterAll(async () => {
    await mesh?.stop()
  })

  it('runs waves, stops at the failure budget and leaves the last wave unrun', async () => {
    const before = new Map(WEB.map(n => [n, outcome(mesh.node(n), 'accept-not-for-us')]))
    const waves: string[][] = []
    const result = await mesh.node('c1').rollout({
      action: 'deploy',
      filter: { zone: 'web' },
      timeoutMs: 10_000,
      batch: { count: 2 },
      maxFailures: { count: 1 },
      onEvent: event => {
        if (event.kind === 'wave') waves.push([...event.nodes])
      },
    })
    expect(result.expected).toEqual(WEB)
    expect(waves).toEqual([
      ['w1', 'w2'],
      ['w3', 'w4'],
    ])
    expect(result.waves.map(w => [w.nodes, w.ok, w.failed, w.missing])).toEqual([
      [['w1', 'w2'], 1, 1, 0],
      [['w3', 'w4'], 1, 1, 0],
    ])
    expect(result.stoppedBy).toBe('max-failures')
    expect(result.notRun).toEqual(['w5'])
    expect(result.missing).toEqual([])
    const byNode = Object.fromEntries(result.replies.map(r => [r.node, r]))
    expect(Object.keys(byNode).sort()).toEqual(['w1', 'w2', 'w3', 'w4'])
    expect(byNode.w2).toMatchObject({ status: 'failed', exitCode: 3, output: 'broken\n' })
    expect(byNode.w1?.status).toBe('ok')
    expect(result.waves[0]?.id).not.toBe(result.waves[1]?.id)

    // Both waves reached every web node; each decided from the signed names whether to run.
    await waitFor(
      () =>
        WEB.every(n => {
          const named = n === 'w5' ? 0 : 1
          return outcome(mesh.node(n), 'accept-not-for-us') - (before.get(n) ?? 0) === 2 - named
        }),
      10_000,
      'every web node to see both waves',
    )
    expect(outcome(mesh.node('w5'), 'accept-execute')).toBe(0)
    for (const n of ['w1', 'w2', 'w3', 'w4']) expect(outcome(mesh.node(n), 'accept-execute')).toBe(1)
  })

  it('a seeded --limit runs on exactly the nodes the choice function names', async () => {
    const result = await mesh.node('c1').rollout({
      action: 'deploy',
      filter: { zone: 'web' },
      timeoutMs: 10_000,
      limit: { count: 2 },
      limitSeed: 'canary-1',
    })
    const chosen = chooseLimited(WEB, 2, 'canary-1')
    expect(result.expected).toEqual(chosen)
    expect(result.replies.map(r => r.node).sort()).toEqual(chosen)
    expect(result.limitSeed).toBe('canary-1')
    expect(result.unexpected).toEqual([])
  })
})
