// Proves the restart rule of replay protection: the replay cache lives in memory, so a node does not
// run a request issued before its process started (it may have run in the previous process); it
// answers with an error saying why. The requester's clock is set 8 s behind so its fresh request
// looks issued before the target started, while still inside the validity window and clock-skew budget.
import { afterAll, describe, expect, it } from 'vitest'
import { systemClock } from '../../src/node/clock.js'
import { startTestMesh, type TestMesh } from './harness.js'

describe('replay protection across restarts', () => {
  let mesh: TestMesh | undefined
  afterAll(async () => {
    await mesh?.stop()
  })

  it('does not run a request issued before the node started', async () => {
    const timings = { suspectAfterMs: 3_000, deadAfterMs: 30_000 }
    mesh = await startTestMesh([
      {
        name: 'op',
        zone: 'core',
        operator: true,
        config: timings,
        init: { clock: { ...systemClock, nowMs: () => Date.now() - 8_000 } },
      },
      { name: 't1', zone: 'web', config: timings },
    ])
    await mesh.converge()
    const late = await mesh.node('op').exec({ action: 'ping', filter: { zone: 'web' }, timeoutMs: 20_000 })
    expect(late.replies).toHaveLength(1)
    expect(late.replies[0]).toMatchObject({ node: 't1', status: 'error' })
    expect(late.replies[0]?.reason).toMatch(/issued before this agent \(re\)started/)
    expect(mesh.node('t1').counters().notRunBeforeStart).toBe(1)

    // A requester whose clock agrees gets the request run.
    const t2 = await mesh.add({ name: 't2', zone: 'web', operator: true, config: timings })
    await mesh.converge()
    await new Promise(r => setTimeout(r, 50))
    const ok = await t2.exec({ action: 'ping', filter: { node: 't1' }, timeoutMs: 10_000 })
    expect(ok.replies[0]).toMatchObject({ node: 't1', status: 'ok' })
  })
})
