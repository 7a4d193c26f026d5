// Proves `mesh status` shows traffic against a stub agent: the real control server and the agent's
// real control handlers (src/agent/control-methods.ts) over a stub node whose counters carry a
// traffic snapshot, in process, so no libp2p. The human output ends with the traffic table (gossip
// topics indented under gossipsub, then the total); `--json` carries the snapshot as the top-level
// `traffic` field and not a second copy inside `counters`.
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { controlHandlers } from '../../src/agent/control-methods.js'
import { createCli } from '../../src/cli.js'
import { type ControlServer, controlSocketPath, createControlServer } from '../../src/control/index.js'
import { createManualClock } from '../../src/node/clock.js'
import type { MeshNode, NodeCounters } from '../../src/node/node-types.js'
import { createTraffic, type TrafficSnapshot } from '../../src/node/traffic.js'

let home: string
let server: ControlServer | undefined

beforeEach(async () => {
  home = await mkdtemp(join(tmpdir(), 'mesh-status-'))
})
afterEach(async () => {
  await server?.stop()
  server = undefined
  await rm(home, { recursive: true, force: true })
})

/** Ten seconds of traffic: authority and gossipsub every second, one request in the last one. */
function someTraffic(): TrafficSnapshot {
  const clock = createManualClock()
  const traffic = createTraffic({ clock })
  for (let i = 0; i < 10; i++) {
    traffic.count('authority', 'in', 105)
    traffic.count('authority', 'out', 100)
    traffic.count('gossipsub', 'in', 300)
    if (i === 9) traffic.count('gossip:request', 'in', 250)
    clock.advance(1_000)
  }
  return traffic.snapshot()
}

async function agentWith(traffic: TrafficSnapshot): Promise<void> {
  const node = {
    name: 'n1',
    zone: 'z',
    peerId: '12D3KooStub',
    issuer: undefined,
    addrs: () => ['/ip4/127.0.0.1/tcp/1/p2p/12D3KooStub'],
    certificate: () => ({ certificate: { roles: ['agent'], notAfterMs: 1_900_000_000_000, serial: 's1' } }),
    isRevoked: () => false,
    counters: () => ({ requests: { accepted: 3 }, traffic }) as unknown as NodeCounters,
  } as unknown as MeshNode
  server = createControlServer({
    path: controlSocketPath(home),
    handlers: controlHandlers(node, new Uint8Array(32)),
  })
  await server.start()
}

async function run(argv: string[]) {
  const out: string[] = []
  const err: string[] = []
  const cli = createCli({
    stdout: { write: (s: string) => out.push(s) },
    stderr: { write: (s: string) => err.push(s) },
    env: { NO_COLOR: '1' },
    userHome: '/nonexistent-home',
  })
  const code = await cli.run(['--home', home, ...argv])
  return { code, out: out.join(''), err: err.join('') }
}

describe('mesh status', () => {
  it('ends with the traffic table: a row per protocol, topics under gossipsub, then the total', async () => {
    await agentWith(someTraffic())
    const r = await run(['status'])
    expect([r.code, r.err]).toEqual([0, ''])
    expect(r.out).toContain('requests     accepted 3')
    expect(r.out.trimEnd().split('\n').slice(-5)).toEqual([
      'traffic (last 10 s)  msgs/s in  out  bytes/s in  out',
      '  authority                1.0  1.0         105  100',
      '  gossipsub                1.0  0.0         300    0',
      '    gossip:request         0.1  0.0          28    0',
      '  total                    2.0  1.0         405  100',
    ])
  })

  it('--json carries the snapshot as `traffic`, totals and rates per protocol', async () => {
    const traffic = someTraffic()
    await agentWith(traffic)
    const r = await run(['status', '--json'])
    expect(r.code).toBe(0)
    const status = JSON.parse(r.out) as { traffic: TrafficSnapshot; counters: Record<string, unknown> }
    expect(status.traffic).toEqual(traffic)
    expect(status.traffic.protocols.authority).toMatchObject({ msgsIn: 10, bytesIn: 1_050, msgsInPerS: 1 })
    expect(status.traffic.total).toMatchObject({ msgsIn: 20, bytesOut: 1_000 })
    expect(status.counters).not.toHaveProperty('traffic')
  })
})
