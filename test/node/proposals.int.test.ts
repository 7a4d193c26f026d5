// The two-person rule end to end over an in-process mesh: `restart-db` in zone db needs the
// signatures of two distinct operators. A proposal runs nowhere; it reaches the other operators'
// nodes; the proposer cannot approve it; a second operator's approval publishes it and each db node
// runs it once, its replies landing in the proposer's job record; a repeated approval and an
// approval of an expired proposal are refused; the same action sent without approvals is denied
// by every target, with the reason naming the signatures it counted.
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { ProposalError } from '../../src/node/proposals.js'
import { startTestMesh, type TestMesh, waitFor } from './harness.js'

const policy = [{ actions: ['restart-db'], roles: ['operator' as const], zones: ['db'], signatures: 2 }]

let mesh: TestMesh
const runs: Record<string, number> = { d1: 0, d2: 0 }

beforeAll(async () => {
  mesh = await startTestMesh(
    [
      { name: 'alice', zone: 'core', operator: true, config: { policy } },
      { name: 'bob', zone: 'core', operator: true, config: { policy } },
      { name: 'carol', zone: 'core', operator: true, config: { policy } },
      { name: 'd1', zone: 'db', config: { policy } },
      { name: 'd2', zone: 'db', config: { policy } },
    ],
    { transport: 'memory' },
  )
  await mesh.converge()
  for (const name of ['d1', 'd2']) {
    mesh.node(name).registerAction('restart-db', async () => {
      runs[name] = (runs[name] ?? 0) + 1
      return { exitCode: 0, output: `restarted on ${name}\n` }
    })
  }
}, 60_000)

afterAll(async () => {
  await mesh?.stop()
})

const refusal = async (promise: Promise<unknown>): Promise<string> => {
  try {
    await promise
  } catch (err) {
    if (err instanceof ProposalError) return err.code
    throw err
  }
  return 'none'
}

describe('two-person rule', () => {
  it('runs only once a second operator approved, once per node', async () => {
    const alice = mesh.node('alice')
    const bob = mesh.node('bob')
    const proposal = await alice.proposals.propose({
      action: 'restart-db',
      filter: { zone: 'db' },
      timeoutMs: 30_000,
    })
    expect(proposal.text).toMatch(/^restart-db on zone=db by alice-operator, until /)
    expect(proposal.approvers).toEqual([])
    await waitFor(
      () => bob.proposals.list().some(p => p.id === proposal.id),
      10_000,
      'bob to see the proposal',
    )
    await new Promise(r => setTimeout(r, 300))
    expect(runs).toEqual({ d1: 0, d2: 0 })

    expect(await refusal(alice.proposals.approve(proposal.id))).toBe('proposer')
    expect(await refusal(bob.proposals.approve('ff'.repeat(16)))).toBe('unknown')

    const approved = await bob.proposals.approve(proposal.id)
    expect(approved.approvers).toEqual(['bob-operator'])
    await waitFor(() => runs.d1 === 1 && runs.d2 === 1, 10_000, 'both db nodes to run it')
    expect(await refusal(bob.proposals.approve(proposal.id))).toBe('already-approved')

    // Replies go to the proposer's node, into its job record.
    let shown = await alice.jobs.show(proposal.id)
    for (let i = 0; i < 50 && (shown?.replies.length ?? 0) < 2; i++) {
      await new Promise(r => setTimeout(r, 100))
      shown = await alice.jobs.show(proposal.id)
    }
    expect(shown?.replies.map(r => [r.node, r.status])).toEqual([
      ['d1', 'ok'],
      ['d2', 'ok'],
    ])
    // Looked up from the mesh, the job names its approvers (verified from the approvals it carries).
    const looked = await bob.jobs.show(proposal.id, { mesh: true })
    expect(looked?.requests.map(r => r.approvers)).toEqual([['bob-operator']])
    // A third approval after it ran changes nothing: at most once per node.
    await mesh.node('carol').proposals.approve(proposal.id)
    await new Promise(r => setTimeout(r, 500))
    expect(runs).toEqual({ d1: 1, d2: 1 })
  }, 60_000)

  it('denies the action without approvals, naming the signatures counted', async () => {
    const result = await mesh
      .node('alice')
      .exec({ action: 'restart-db', filter: { zone: 'db' }, timeoutMs: 10_000 })
    expect(result.replies.map(r => r.status)).toEqual(['denied', 'denied'])
    expect(result.replies[0]?.reason).toMatch(
      /needs 2 signatures of distinct operators .* has 1 \(alice-operator\)/,
    )
    expect(runs).toEqual({ d1: 1, d2: 1 })
  }, 30_000)

  it('refuses to approve an expired proposal', async () => {
    const proposal = await mesh
      .node('alice')
      .proposals.propose({ action: 'restart-db', filter: { zone: 'db' }, timeoutMs: 1_000 })
    await waitFor(
      () =>
        mesh
          .node('carol')
          .proposals.list()
          .some(p => p.id === proposal.id),
      5_000,
      'carol to see it',
    )
    await new Promise(r => setTimeout(r, 1_200))
    expect(await refusal(mesh.node('carol').proposals.approve(proposal.id))).toBe('expired')
    expect(runs).toEqual({ d1: 1, d2: 1 })
  }, 30_000)
})
