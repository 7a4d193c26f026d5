/**
 * Proves, on real agents in their own network namespaces, what a join does while the CA node is cut
 * off: with the CA's port down, `mesh join --ticket` (the ticket created on the CA before, pointing at
 * the CA's address) fails with exit 1 and one clear line, and writes nothing into the home; once the
 * port is up again the same ticket joins (it was never used), the new agent starts, and every member
 * lists it alive.
 */
import { existsSync } from 'node:fs'
import { afterAll, describe, expect, it, onTestFailed } from 'vitest'
import { buildMesh, createTicket, joinWithTicket, startAll, waitConverged } from './mesh.js'
import { createRig, note, type Rig, rigSupport, warnIfUnsupported } from './rig.js'

warnIfUnsupported('test/hosts/ca-isolation.int.test.ts')

describe.skipIf(!rigSupport().ok)('hosts: the CA node isolated', () => {
  let rig: Rig | undefined
  afterAll(async () => {
    await rig?.teardown()
  })

  it('joins with tickets fail with a clear error, and succeed after the heal', async () => {
    rig = await createRig()
    const r = rig
    onTestFailed(() => {
      r.keep()
      console.warn(`hosts ca-isolation: logs and homes kept in ${r.root}`)
    })
    const t0 = Date.now()
    await buildMesh(r, [
      { name: 'ca', zone: 'core' },
      { name: 'w1', zone: 'web' },
      { name: 'w2', zone: 'web' },
    ])
    await startAll(r, ['w1', 'w2'])
    await waitConverged(r, ['ca', 'w1', 'w2'], ['ca', 'w1', 'w2'], 30_000)
    await r.addNode('w3')
    const ticket = await createTicket(r, 'ca', { name: 'w3', zone: 'web' })

    await r.isolate('ca')
    const refused = await joinWithTicket(r, 'w3', ticket, '5s')
    note(
      `ca-isolation: join while isolated → ${refused.status} in ${refused.endedAtMs - refused.startedAtMs} ms: ${refused.stderr.trim()}`,
    )
    expect(refused.status).toBe(1)
    const lines = refused.stderr.trim().split('\n')
    expect(lines).toHaveLength(1)
    expect(lines[0]).toMatch(/^mesh: /)
    // It names what failed: the CA's address, not reachable.
    expect(lines[0]).toContain(r.node('ca').address)
    expect(refused.stdout).toBe('')
    expect(existsSync(r.node('w3').home)).toBe(false)

    await r.heal()
    const joined = await joinWithTicket(r, 'w3', ticket, '20s')
    expect(joined.stderr).toBe('')
    expect(joined.status).toBe(0)
    expect(joined.stdout).toMatch(/^joined mesh sha256:\S+ as w3 \(zone web/)
    await r.startAgent('w3')
    const all = ['ca', 'w1', 'w2', 'w3']
    await waitConverged(r, all, all, 30_000)
    note(`ca-isolation: total ${Date.now() - t0} ms`)
  }, 180_000)
})
