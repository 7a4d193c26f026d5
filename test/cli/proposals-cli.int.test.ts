// `mesh exec … --propose`, `mesh proposals` and `mesh approve` through the real CLI, control server and
// handlers over an in-process mesh: the proposal id comes first on stdout; another operator's node
// lists it; the proposer's own approval is refused (exit 1, one line); the second operator's approval
// runs it; a bad id and --propose with rollout flags are usage errors.
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { startTestMesh, type TestMesh, waitFor } from '../node/harness.js'
import { type InProcessAgents, serveAgents } from './in-process-agents.js'

const policy = [{ actions: ['restart-db'], roles: ['operator' as const], zones: ['db'], signatures: 2 }]
let mesh: TestMesh
let agents: InProcessAgents
let runs = 0

beforeAll(async () => {
  mesh = await startTestMesh(
    [
      { name: 'alice', zone: 'core', operator: true, config: { policy } },
      { name: 'bob', zone: 'core', operator: true, config: { policy } },
      { name: 'd1', zone: 'db', config: { policy } },
    ],
    { transport: 'memory' },
  )
  await mesh.converge()
  mesh.node('d1').registerAction('restart-db', async () => {
    runs += 1
    return { exitCode: 0, output: 'restarted\n' }
  })
  agents = await serveAgents(mesh, ['alice', 'bob'])
}, 60_000)

afterAll(async () => {
  await agents?.stop()
  await mesh?.stop()
})

const cli = (node: string, argv: string[]) => agents.cli(node, argv)

describe('two-person rule from the command line', () => {
  it('proposes, lists, refuses the proposer, runs on the second approval', async () => {
    const proposed = await cli('alice', [
      'exec',
      'restart-db',
      '--zone',
      'db',
      '--propose',
      '--timeout',
      '30s',
    ])
    expect(proposed.code).toBe(0)
    const [id, text] = proposed.out.trim().split('\n')
    expect(id).toMatch(/^[0-9a-f]{32}$/)
    expect(text).toMatch(/^restart-db on zone=db by alice-operator/)
    await waitFor(
      () =>
        mesh
          .node('bob')
          .proposals.list()
          .some(p => p.id === id),
      10_000,
      'bob to see it',
    )
    const listed = await cli('bob', ['proposals'])
    expect(listed.out).toContain(id)
    expect(listed.out).toMatch(/waiting/)

    const own = await cli('alice', ['approve', id as string])
    expect(own.code).toBe(1)
    expect(own.err.trim().split('\n')).toHaveLength(1)
    expect(own.err).toMatch(/proposed .* and cannot approve it too/)
    expect(runs).toBe(0)

    const approved = await cli('bob', ['approve', id as string])
    expect(approved.code).toBe(0)
    expect(approved.out).toContain('approved by bob-operator')
    await waitFor(() => runs === 1, 10_000, 'd1 to run it')
  }, 60_000)

  it('refuses bad input as usage errors', async () => {
    for (const argv of [
      ['approve', 'xyz'],
      ['exec', 'restart-db', '--propose', '--batch', '1'],
      ['exec', 'restart-db', '--propose', '--async'],
    ]) {
      const r = await cli('alice', argv)
      expect(r.code, argv.join(' ')).toBe(2)
    }
  })
})
