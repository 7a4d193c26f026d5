// `mesh exec --async`, `mesh jobs`, `mesh jobs show|wait` and `mesh exec --retarget` through the real
// CLI, the real control server and handlers, over a real in-process mesh (memory transport): an async
// job's id comes back at once and `jobs wait` prints its results; a failing action on some nodes is
// re-run with --retarget on exactly the failed ones (the signed filter names them); a job is shown
// from an operator node that never saw it; bad ids and bad --retarget values are usage errors.
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { startTestMesh, type TestMesh } from '../node/harness.js'
import { type InProcessAgents, serveAgents } from './in-process-agents.js'

const policy = [{ actions: ['flaky'], roles: ['operator' as const] }]

let mesh: TestMesh
let agents: InProcessAgents

beforeAll(async () => {
  mesh = await startTestMesh(
    [
      { name: 'op', zone: 'core', operator: true, config: { policy } },
      { name: 'w1', zone: 'web', config: { policy } },
      { name: 'w2', zone: 'web', config: { policy } },
      { name: 'w3', zone: 'web', config: { policy } },
      { name: 'op2', zone: 'core', operator: true, config: { policy } },
    ],
    { transport: 'memory' },
  )
  await mesh.converge()
  // `flaky` fails on w2 the first time only.
  let w2Runs = 0
  for (const name of ['w1', 'w2', 'w3']) {
    mesh.node(name).registerAction('flaky', async () => {
      if (name === 'w2' && w2Runs++ === 0) return { exitCode: 3, output: 'broken\n' }
      return { exitCode: 0, output: `fine on ${name}\n` }
    })
  }
  agents = await serveAgents(mesh, ['op', 'op2'])
}, 60_000)

afterAll(async () => {
  await agents?.stop()
  await mesh?.stop()
})

const cli = (node: string, argv: string[]) => agents.cli(node, argv)

describe('jobs from the command line', () => {
  it('--async prints the job id at once; jobs wait prints the results; jobs lists it', async () => {
    const started = await cli('op', ['exec', 'ping', '--zone', 'web', '--async'])
    expect(started.code).toBe(0)
    const job = started.out.trim()
    expect(job).toMatch(/^[0-9a-f]{32}$/)
    expect(started.err).toContain(`mesh jobs wait ${job}`)

    const waited = await cli('op', ['--json', 'jobs', 'wait', job, '--timeout', '10s'])
    expect(waited.code).toBe(0)
    const doc = JSON.parse(waited.out)
    expect(doc).toMatchObject({ job, action: 'ping', source: 'local', missing: [] })
    expect(doc.replies.map((r: { node: string }) => r.node)).toEqual(['w1', 'w2', 'w3'])

    const listed = await cli('op', ['jobs'])
    expect(listed.code).toBe(0)
    expect(listed.out).toContain(job)
    expect(listed.out).toMatch(/ping/)
  }, 30_000)

  it('--retarget JOB:failed runs again on exactly the nodes that failed', async () => {
    const first = await cli('op', ['--json', 'exec', 'flaky', '--zone', 'web'])
    expect(first.code).toBe(1)
    const job = JSON.parse(first.out).id as string
    const failed = JSON.parse(first.out).replies.filter((r: { status: string }) => r.status !== 'ok')
    expect(failed.map((r: { node: string }) => r.node)).toEqual(['w2'])

    const again = await cli('op', ['--json', 'exec', 'flaky', '--retarget', `${job}:failed`])
    expect(again.code).toBe(0)
    const doc = JSON.parse(again.out)
    expect(doc.expected).toEqual(['w2'])
    expect(doc.replies.map((r: { node: string; status: string }) => [r.node, r.status])).toEqual([
      ['w2', 'ok'],
    ])

    // A node that never saw the first job shows it from the mesh, verified.
    const shown = await cli('op2', ['jobs', 'show', job])
    expect(shown.out).toContain(`job ${job}: flaky by op-operator`)
    expect(shown.out).toMatch(/w2\s+web\s+failed\s+3/)
    expect(shown.code).toBe(1) // the job had a failure
  }, 30_000)

  it('refuses bad ids, bad --retarget values and conflicting flags as usage errors', async () => {
    const cases: string[][] = [
      ['jobs', 'show', 'nothex'],
      ['jobs', 'wait', 'ab'.repeat(16), '--timeout', '2h'],
      ['exec', 'ping', '--retarget', 'xyz'],
      ['exec', 'ping', '--retarget', `${'ab'.repeat(16)}:lost`],
      ['exec', 'ping', '--retarget', `${'ab'.repeat(16)}:ok`, '--zone', 'web'],
      ['exec', 'ping', '--async', '--table'],
    ]
    for (const argv of cases) {
      const r = await cli('op', argv)
      expect(r.code, argv.join(' ')).toBe(2)
      expect(r.err.trim().split('\n'), argv.join(' ')).toHaveLength(1)
    }
    // A job nobody knows: a clear failure, not a usage error.
    const unknown = await cli('op', ['exec', 'ping', '--retarget', `${'ab'.repeat(16)}:ok`])
    expect(unknown.code).toBe(1)
    expect(unknown.err).toMatch(/no node that answered knows job/)
  }, 30_000)
})
