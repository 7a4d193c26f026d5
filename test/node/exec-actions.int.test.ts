// Proves on a six-node mesh over 127.0.0.1 that declared actions obey each node's own policy (run
// where a rule allows the operator, role and zone; a `denied` reply with the reason everywhere else),
// that an action over its time limit is killed with its whole process tree and reported as such long
// before it would have ended, that a target node that dies while running a request is reported
// missing (acknowledged, never completed) while the others' replies arrive, and that a request the
// requester's own pipeline refuses (a timeout beyond the request lifetime limit) fails at once unpublished.
import { readFileSync } from 'node:fs'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { AgentConfig } from '../../src/node/config.js'
import { ExecRefusedError } from '../../src/node/exec.js'
import { startTestMesh, type TestMesh, testConfig, waitFor } from './harness.js'

/** Declared actions; each node's config picks some, its policy decides who may run them. */
const GREET = { argv: ['echo', 'greetings'] }
const SLOW = { argv: ['sleep', '1'], timeoutMs: 20_000 }
/** Backgrounds a grandchild, prints its pid and waits: only a process-group kill ends both. */
const NAP = { argv: ['sh', '-c', 'sleep 30 & echo "grandchild $!"; wait'], timeoutMs: 300 }

/** Members stay alive through event-loop stalls of a loaded machine, so `expected` is stable. */
const config = (c: Partial<AgentConfig>): Partial<AgentConfig> => ({
  suspectAfterMs: 3_000,
  deadAfterMs: 6_000,
  ...c,
})

/** Whether `pid` is still running; a zombie (ended, not yet reaped, e.g. under a PID 1 that never reaps) is not. */
const isRunning = (pid: number): boolean => {
  try {
    process.kill(pid, 0)
  } catch {
    return false
  }
  try {
    // Field 3 of /proc/PID/stat is the state; the name in field 2 is parenthesised.
    return readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]?.[0] !== 'Z'
  } catch {
    return true // no /proc: trust kill(0)
  }
}

describe('exec actions: policy, time limit, a node dying mid-request', () => {
  let mesh: TestMesh
  beforeAll(async () => {
    mesh = await startTestMesh([
      { name: 'c1', zone: 'core', ca: true, operator: true, config: config({}) },
      {
        name: 'd1',
        zone: 'db',
        config: config({
          actions: { greet: GREET, slow: SLOW, nap: NAP },
          policy: [{ actions: ['greet', 'slow', 'nap'], roles: ['operator'] }],
        }),
      },
      {
        name: 'd2',
        zone: 'db',
        config: config({
          actions: { greet: GREET, slow: SLOW },
          policy: [{ actions: ['gr*', 'slow'] }],
        }),
      },
      {
        name: 'd3',
        zone: 'db',
        config: config({
          actions: { greet: GREET, slow: SLOW },
          // greet only for operators named alice*; the requester is c1-operator.
          policy: [{ actions: ['slow'] }, { actions: ['greet'], operators: ['alice*'] }],
        }),
      },
      {
        name: 'w1',
        zone: 'web',
        // A rule for the db zone only: this node is in web.
        config: config({ actions: { greet: GREET }, policy: [{ actions: ['greet'], zones: ['db'] }] }),
      },
      // Declares greet but has no policy: the default allows only the read-only built-ins.
      { name: 'w2', zone: 'web', config: config({ actions: { greet: GREET } }) },
    ])
    await mesh.converge()
  })
  afterAll(async () => {
    await mesh?.stop()
  })

  it("runs a declared action where the node's policy allows it and replies denied elsewhere", async () => {
    const result = await mesh
      .node('c1')
      .exec({ action: 'greet', filter: { where: 'zone=db or zone=web' }, timeoutMs: 10_000 })
    expect(result.expected).toEqual(['d1', 'd2', 'd3', 'w1', 'w2'])
    expect(result.missing).toEqual([])
    const byNode = Object.fromEntries(result.replies.map(r => [r.node, r]))
    for (const name of ['d1', 'd2']) {
      expect(byNode[name]?.status).toBe('ok')
      expect(byNode[name]?.exitCode).toBe(0)
      expect(byNode[name]?.output).toBe('greetings\n')
    }
    for (const [name, zone] of [
      ['d3', 'db'],
      ['w1', 'web'],
      ['w2', 'web'],
    ] as const) {
      expect(byNode[name]?.status).toBe('denied')
      expect(byNode[name]?.output).toBe('')
      expect(byNode[name]?.reason).toBe(
        `no policy rule allows operator 'c1-operator' to run 'greet' in zone '${zone}'`,
      )
    }
  })

  it('keeps the default rule for built-ins on a node with its own policy', async () => {
    const result = await mesh.node('c1').exec({ action: 'ping', filter: { zone: 'web' }, timeoutMs: 10_000 })
    expect(result.replies.map(r => [r.node, r.status]).sort()).toEqual([
      ['w1', 'ok'],
      ['w2', 'ok'],
    ])
  })

  it('kills an action and its process tree at the time limit and says so', async () => {
    const startedAt = Date.now()
    const result = await mesh.node('c1').exec({ action: 'nap', filter: { node: 'd1' }, timeoutMs: 10_000 })
    const elapsedMs = Date.now() - startedAt
    expect(result.missing).toEqual([])
    const reply = result.replies[0]
    expect(reply?.node).toBe('d1')
    expect(reply?.status).toBe('failed')
    expect(reply?.exitCode).toBeNull()
    expect(reply?.reason).toBe('time limit reached; process tree killed')
    // The 300 ms limit ended it, not the 30 s sleep nor the 10 s request lifetime (which also bounds runs).
    expect(reply?.durationMs).toBeGreaterThanOrEqual(300)
    expect(reply?.durationMs).toBeLessThan(5_000)
    expect(elapsedMs).toBeLessThan(8_000)
    const pid = Number(/grandchild (\d+)/.exec(reply?.output ?? '')?.[1])
    expect(pid).toBeGreaterThan(0)
    await waitFor(() => !isRunning(pid), 1_000, `the backgrounded sleep ${pid} to be killed`)
  })

  it('refuses at once, publishing nothing, a timeout longer than the request lifetime nodes accept', async () => {
    // Before the fix such a request was published, refused by every node (lifetime-too-long), and the
    // requester waited out the whole timeout to report every node missing.
    const tooLong = testConfig().requestLifetimeMsMax + 1
    const refused = () => mesh.nodes.map(n => n.counters().requests['lifetime-too-long'] ?? 0)
    const before = refused()
    const startedAt = Date.now()
    const outcome = await mesh
      .node('c1')
      .exec({
        action: 'ping',
        filter: { zone: 'db' },
        timeoutMs: tooLong,
        signal: AbortSignal.timeout(3_000),
      })
      .then(
        result => ({ result }),
        (error: unknown) => ({ error }),
      )
    expect(outcome).toEqual({ error: expect.any(ExecRefusedError) })
    const error = (outcome as { error: ExecRefusedError }).error
    expect(error.code).toBe('lifetime-too-long')
    expect(error.message).toContain(`(requestLifetimeMsMax, ${tooLong - 1} ms)`)
    expect(Date.now() - startedAt).toBeLessThan(1_000)
    // Only the requester's own check saw it; give a published copy time to arrive anywhere else.
    await new Promise(r => setTimeout(r, 500))
    expect(refused()).toEqual(before.map((n, i) => (mesh.nodes[i]?.name === 'c1' ? n + 1 : n)))
  })

  it('reports a node that dies while running the request as missing, with the others answered', async () => {
    const d3 = mesh.node('d3')
    let crashed: Promise<void> | undefined
    const startedAt = Date.now()
    const result = await mesh.node('c1').exec({
      action: 'slow',
      filter: { zone: 'db' },
      timeoutMs: 4_000,
      onEvent: event => {
        // d3 has accepted and started the 1 s sleep: take its network away as a crash would.
        if (event.kind === 'ack' && event.node === 'd3') crashed ??= Promise.resolve(d3.host.stop())
      },
    })
    expect(crashed).toBeDefined()
    await crashed
    expect(result.expected).toEqual(['d1', 'd2', 'd3'])
    expect(result.replies.map(r => [r.node, r.status]).sort()).toEqual([
      ['d1', 'ok'],
      ['d2', 'ok'],
    ])
    expect(result.missing).toEqual(['d3'])
    expect(result.acked).toEqual(['d3'])
    // It waited for d3 until the deadline, no longer.
    expect(Date.now() - startedAt).toBeGreaterThanOrEqual(3_900)
    expect(Date.now() - startedAt).toBeLessThan(8_000)
  })
})
