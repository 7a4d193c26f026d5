// Proves the audit log of a real agent (startAgent over a home made by `mesh init`, 127.0.0.1): the
// files are created 0700/0600 in the home, a request refused in validation, an exec and its done are
// on record, `mesh audit` prints them and `--verify` says ok; after a stop, a torn write left at the
// end (a crash) is cut when the agent restarts, its new `start` record says so, and the chain runs on
// across the restart and still verifies; `audit-tail` on the node itself returns its own records.
import { appendFile, mkdtemp, readdir, rm, stat } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { peerIdFromString } from '@libp2p/peer-id'
import { pino } from 'pino'
import { afterAll, describe, expect, it } from 'vitest'
import { auditSegmentName } from '../../src/agent/audit-file.js'
import { homePaths } from '../../src/agent/home.js'
import { initHome } from '../../src/agent/init.js'
import { type RunningAgent, startAgent } from '../../src/agent/runtime.js'
import { createCli } from '../../src/cli.js'
import { TOPICS } from '../../src/node/host.js'
import { internalsOf } from '../../src/node/node.js'
import { waitFor } from '../node/harness.js'

describe('audit log of a real agent', () => {
  const agents: RunningAgent[] = []
  let root: string | undefined
  afterAll(async () => {
    await Promise.all(agents.map(a => a.stop().catch(() => {})))
    if (root !== undefined) await rm(root, { recursive: true, force: true })
  })

  it('records, prints and verifies, and survives a torn write across a restart', async () => {
    root = await mkdtemp(join(tmpdir(), 'mesh-audit-agent-'))
    const home = join(root, 'home')
    await initHome(home, { name: 'n1', zone: 'z' }, Date.now())
    const env = { MESH_LISTEN: '/ip4/127.0.0.1/tcp/0', MESH_MDNS: 'false' }
    const start = async () => {
      const agent = await startAgent({ home, env, logger: pino({ level: 'silent' }) })
      agents.push(agent)
      return agent
    }
    const cli = async (argv: string[]) => {
      const out: string[] = []
      const err: string[] = []
      const code = await createCli({
        stdout: { write: (s: string) => out.push(s) },
        stderr: { write: (s: string) => err.push(s) },
        env: { NO_COLOR: '1' },
        userHome: '/nonexistent-home',
      }).run(['--home', home, ...argv])
      return { code, out: out.join(''), err: err.join('') }
    }
    const settled = (agent: RunningAgent) =>
      waitFor(() => agent.node.counters().audit?.queued === 0, 5_000, 'the audit queue to empty')

    const agent = await start()
    const dir = homePaths(home).auditDir
    expect((await stat(dir)).mode & 0o777).toBe(0o700)
    expect((await stat(join(dir, auditSegmentName(1)))).mode & 0o777).toBe(0o600)
    // Garbage handed to the request topic's validator, as gossipsub would: refused, and on record.
    const validator = internalsOf(agent.node).host.services.pubsub.topicValidators.get(TOPICS.request)
    await validator?.(peerIdFromString(agent.node.peerId), {
      type: 'unsigned',
      topic: TOPICS.request,
      data: new Uint8Array([1, 2, 3]),
    })
    const ping = await agent.node.exec({ action: 'ping', timeoutMs: 10_000 })
    expect(ping.replies.map(r => r.status)).toEqual(['ok'])
    await waitFor(() => (agent.node.counters().audit?.written ?? 0) >= 4, 5_000, 'the records')
    await settled(agent)

    const listed = await cli(['audit'])
    expect(listed.code).toBe(0)
    expect(listed.out).toMatch(/ #1 start .*name=n1/)
    expect(listed.out).toMatch(/ refused code=malformed /)
    expect(listed.out).toMatch(new RegExp(` request action=ping .*id=${ping.id} .*verdict=execute`))
    expect(listed.out).toMatch(new RegExp(` done .*id=${ping.id} .*ran=true status=ok`))
    expect(await cli(['audit', '--verify'])).toMatchObject({
      code: 0,
      out: expect.stringMatching(/^audit log ok/),
    })
    const tail = await agent.node.exec({ action: 'audit-tail', filter: { node: 'n1' }, timeoutMs: 10_000 })
    expect(tail.replies[0]?.output).toMatch(new RegExp(` request action=ping .*id=${ping.id}`))
    await settled(agent)
    const before = agent.node.counters().audit?.seq ?? 0
    await agent.stop()

    // A crash during a write: half a frame at the end of the segment.
    await appendFile(join(dir, auditSegmentName(1)), new Uint8Array([0, 0, 1, 0, 0xa2, 0x63, 0x73]))
    const copy = await cli(['audit', '--verify', '--dir', dir])
    expect(copy.out).toMatch(/^audit log ok up to a torn last record/)

    const restarted = await start()
    await settled(restarted)
    const json = JSON.parse((await cli(['--json', 'audit'])).out)
    const starts = json.records.filter((r: { type: string }) => r.type === 'start')
    expect(starts).toHaveLength(2)
    expect(starts[1]).toMatchObject({ seq: before + 1, tornBytes: 7 })
    expect(await cli(['audit', '--verify'])).toMatchObject({
      code: 0,
      out: expect.stringMatching(/^audit log ok/),
    })
    expect(await readdir(dir)).toEqual([auditSegmentName(1)])
  })
})
