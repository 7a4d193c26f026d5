/**
 * Proves mDNS discovery on the rig's bridge with no bootstrap configured: three agents whose homes
 * were made by `mesh init` and `mesh join --ticket` get `bootstrap = []` in their config.toml and no
 * memory of each other (the joined nodes' agents never ran; the CA's agent is restarted, so it holds
 * nothing it learnt while issuing). First, with `mdns = false`, each stays alone for 8 s: nothing
 * else could connect them. Then, with `mdns = true`, they find each other, every node lists all
 * three alive at their rig addresses, and an exec reaches all three.
 */
import { afterAll, describe, expect, it, onTestFailed } from 'vitest'
import { aliveSeenBy, buildMesh, exec, members, startAll, waitConverged } from './mesh.js'
import { createRig, note, type Rig, rigSupport, sleep, warnIfUnsupported } from './rig.js'

warnIfUnsupported('test/hosts/mdns.int.test.ts')

const NAMES = ['ca', 'w1', 'w2']
/** How long the nodes must stay apart without mDNS (several upkeep rounds and probe periods). */
const ALONE_MS = 8_000

describe.skipIf(!rigSupport().ok)('hosts: mDNS discovery on the bridge, no bootstrap configured', () => {
  let rig: Rig | undefined
  afterAll(async () => {
    await rig?.teardown()
  })

  it('finds every node by mDNS alone', async () => {
    rig = await createRig()
    const r = rig
    onTestFailed(() => {
      r.keep()
      console.warn(`hosts mdns: logs and homes kept in ${r.root}`)
    })
    const t0 = Date.now()
    await buildMesh(r, [
      { name: 'ca', zone: 'core' },
      { name: 'w1', zone: 'web' },
      { name: 'w2', zone: 'web' },
    ])
    await r.stopAgent('ca')
    const configure = (mdns: boolean) => {
      for (const name of NAMES) {
        r.editConfig(name, config => {
          config.bootstrap = []
          config.mdns = mdns
        })
      }
    }

    configure(false)
    await startAll(r, NAMES)
    await sleep(ALONE_MS)
    for (const name of NAMES)
      expect(await aliveSeenBy(r, name), `${name} found someone without mDNS`).toEqual([name])
    await Promise.all(NAMES.map(name => r.stopAgent(name)))

    configure(true)
    const startedAt = Date.now()
    await startAll(r, NAMES)
    await waitConverged(r, NAMES, NAMES, 30_000)
    note(`mdns: every node lists all three alive ${Date.now() - startedAt} ms after the agents started`)
    for (const viewer of NAMES) {
      for (const m of await members(r, viewer)) {
        const address = r.node(m.name).address
        expect(
          m.addrs.some(a => a.startsWith(`/ip4/${address}/`)),
          `${m.name} at ${m.addrs}`,
        ).toBe(true)
      }
    }
    const reached = await exec(r, 'ca', ['uptime', '--timeout', '5s'])
    expect(reached.status, reached.stderr).toBe(0)
    expect(reached.report?.replies.map(x => x.node).sort()).toEqual(NAMES)
    note(`mdns: total ${Date.now() - t0} ms`)
  }, 180_000)
})
