// Proves the library example of the README: the code block there is examples/appliance.ts verbatim
// (importing from 'mesh'), and running it joins a real mesh with a ticket, serves its custom action to
// an operator's request, and takes its zone's authority as the zone's only member.
import { readFileSync } from 'node:fs'
import { resolve } from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'
import { startAppliance } from '../../examples/appliance.js'
import type { MeshNode } from '../../src/index.js'
import { startTestMesh, type TestMesh, waitFor } from './harness.js'

const repo = resolve(import.meta.dirname, '../..')

describe('embedding mesh (README example)', () => {
  let mesh: TestMesh | undefined
  let appliance: MeshNode | undefined
  afterAll(async () => {
    await appliance?.stop()
    await mesh?.stop()
  })

  it('is shown verbatim in the README', () => {
    const example = readFileSync(resolve(repo, 'examples/appliance.ts'), 'utf8').replace(
      "'../src/index.js'",
      "'mesh'",
    )
    const readme = readFileSync(resolve(repo, 'README.md'), 'utf8')
    expect(readme).toContain(example.trim())
  })

  it('joins with a ticket, serves its action and holds its zone', async () => {
    mesh = await startTestMesh([{ name: 'hub', zone: 'core', ca: true, operator: true }])
    const hub = mesh.node('hub')
    const effects = await hub.issuer!.run({
      type: 'create-ticket',
      requestId: 't1',
      name: 'modem7',
      zone: 'edge',
      roles: ['agent'],
      ttlMs: 60_000,
      bootstrap: hub.addrs(),
    })
    const reply = effects.find(e => e.type === 'command-reply')
    if (reply?.type !== 'command-reply' || !reply.result.ok || reply.result.command !== 'create-ticket') {
      throw new Error('no ticket')
    }
    const duties: Array<[boolean, number]> = []
    appliance = await startAppliance(reply.result.ticket, (held, epoch) => duties.push([held, epoch]))
    expect(appliance.name).toBe('modem7')
    await waitFor(
      () => hub.members().some(m => m.name === 'modem7' && m.state === 'alive'),
      15_000,
      'the appliance to join',
    )

    const result = await hub.exec({ action: 'modem-status', filter: { node: 'modem7' }, timeoutMs: 5_000 })
    expect(result.replies).toHaveLength(1)
    expect(result.replies[0]).toMatchObject({
      node: 'modem7',
      status: 'ok',
      output: 'modem: up, 2 clients\n',
    })
    // The hub has no such action: it says so (unknown-action) rather than blaming its policy.
    const unknown = await hub.exec({ action: 'modem-status', filter: { node: 'hub' }, timeoutMs: 5_000 })
    expect(unknown.replies[0]).toMatchObject({
      status: 'error',
      reason: expect.stringContaining('unknown-action'),
    })

    await waitFor(() => appliance?.isAuthority('edge') !== null, 15_000, 'the appliance to hold its zone')
    expect(duties[0]?.[0]).toBe(true)
    expect(duties[0]?.[1]).toBeGreaterThan(0)
  })
})
