// `mesh ca holders` through the real CLI and control handlers: a one-holder CA (what mesh init makes)
// names itself as the issuer; a node without the CA says so in one line (exit 1).
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { startTestMesh, type TestMesh } from '../node/harness.js'
import { type InProcessAgents, serveAgents } from './in-process-agents.js'

let mesh: TestMesh
let agents: InProcessAgents

beforeAll(async () => {
  mesh = await startTestMesh(
    [
      { name: 'hub', zone: 'core', ca: true },
      { name: 'w1', zone: 'web' },
    ],
    { transport: 'memory' },
  )
  agents = await serveAgents(mesh, ['hub', 'w1'])
}, 60_000)

afterAll(async () => {
  await agents?.stop()
  await mesh?.stop()
})

describe('mesh ca holders', () => {
  it('shows a one-holder CA as its own issuer', async () => {
    const human = await agents.cli('hub', ['ca', 'holders'])
    expect(human.code).toBe(0)
    expect(human.out).toMatch(/^one CA holder: hub \(this node\) issues; no replication\n/)
    const json = JSON.parse((await agents.cli('hub', ['--json', 'ca', 'holders'])).out)
    expect(json).toMatchObject({
      issuer: 'hub',
      role: 'issuer',
      single: true,
      holders: [{ name: 'hub', self: true }],
    })
  })

  it('refuses on a node without the CA', async () => {
    const r = await agents.cli('w1', ['ca', 'holders'])
    expect(r.code).toBe(1)
    expect(r.err.trim().split('\n')).toHaveLength(1)
    expect(r.err).toMatch(/does not hold the mesh CA/)
  })
})
