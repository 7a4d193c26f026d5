// Proves the restart rule of replay protection: the replay cache lives in memory, so a node does not
// run a request issued before its process started (it may have run in the previous process); it
// answers with an error saying why. The requester's clock is set 8 s behind so its fresh request
// looks issued before the target started, while still inside the validity window and clock-skew budget.
// The declined request is not logged as "running request": that line means the action really starts.
// Then through the agent and its home: a request issued 20 s ahead of the agent's clock runs, the agent
// stops and starts again on the same home, and the identical bytes (handed to the new agent's request
// topic validator, as gossipsub would on delivery) are answered "already ran" from the `run-record`
// file, not run; a damaged `run-record` stops the next start with one error naming the file.
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { peerIdFromString } from '@libp2p/peer-id'
import { pino } from 'pino'
import { afterAll, describe, expect, it } from 'vitest'
import { HomeError, homePaths, loadHome } from '../../src/agent/home.js'
import { initHome } from '../../src/agent/init.js'
import { type RunningAgent, startAgent } from '../../src/agent/runtime.js'
import { createRequest } from '../../src/gossip/request.js'
import { systemClock } from '../../src/node/clock.js'
import { TOPICS } from '../../src/node/host.js'
import { secureRandomBytes } from '../../src/node/keys.js'
import { internalsOf } from '../../src/node/node.js'
import { startTestMesh, type TestMesh, waitFor } from './harness.js'

describe('replay protection across restarts', () => {
  let mesh: TestMesh | undefined
  afterAll(async () => {
    await mesh?.stop()
  })

  it('does not run a request issued before the node started', async () => {
    const timings = { suspectAfterMs: 3_000, deadAfterMs: 30_000 }
    const t1Lines: string[] = []
    const running = () => t1Lines.filter(line => line.includes('running request')).length
    mesh = await startTestMesh([
      {
        name: 'op',
        zone: 'core',
        operator: true,
        config: timings,
        init: { clock: { ...systemClock, nowMs: () => Date.now() - 8_000 } },
      },
      {
        name: 't1',
        zone: 'web',
        config: timings,
        init: { logger: pino({ level: 'info' }, { write: (line: string) => void t1Lines.push(line) }) },
      },
    ])
    await mesh.converge()
    const late = await mesh.node('op').exec({ action: 'ping', filter: { zone: 'web' }, timeoutMs: 20_000 })
    expect(late.replies).toHaveLength(1)
    expect(late.replies[0]).toMatchObject({ node: 't1', status: 'error' })
    expect(late.replies[0]?.reason).toMatch(/issued before this agent \(re\)started/)
    expect(mesh.node('t1').counters().notRunBeforeStart).toBe(1)
    expect(running()).toBe(0)

    // A requester whose clock agrees gets the request run.
    const t2 = await mesh.add({ name: 't2', zone: 'web', operator: true, config: timings })
    await mesh.converge()
    await new Promise(r => setTimeout(r, 50))
    const ok = await t2.exec({ action: 'ping', filter: { node: 't1' }, timeoutMs: 10_000 })
    expect(ok.replies[0]).toMatchObject({ node: 't1', status: 'ok' })
    expect(running()).toBe(1)
  })

  it('keeps the run record in the home across an agent restart, and refuses a damaged one', async () => {
    const root = await mkdtemp(join(tmpdir(), 'mesh-run-record-agent-'))
    const home = join(root, 'home')
    const agents: RunningAgent[] = []
    try {
      await initHome(home, { name: 'n1', zone: 'z' }, Date.now())
      const operator = (await loadHome(home)).operator
      if (operator === undefined) throw new Error('mesh init made no operator identity')
      const env = { MESH_LISTEN: '/ip4/127.0.0.1/tcp/0', MESH_MDNS: 'false' }
      const start = async (lines: string[]) => {
        const agent = await startAgent({
          home,
          env,
          logger: pino({ level: 'info' }, { write: (line: string) => void lines.push(line) }),
        })
        agents.push(agent)
        return agent
      }
      /** Hands `bytes` to the agent's request topic validator, as gossipsub does on delivery. */
      const deliver = async (agent: RunningAgent, bytes: Uint8Array) => {
        const validator = internalsOf(agent.node).host.services.pubsub.topicValidators.get(TOPICS.request)
        if (validator === undefined) throw new Error('no request validator')
        const from = peerIdFromString(agent.node.peerId)
        return String(await validator(from, { type: 'unsigned', topic: TOPICS.request, data: bytes }))
      }
      const first: string[] = []
      const agent = await start(first)
      const issuedAtMs = Date.now() + 20_000 // ahead of the agent's clock, inside the skew budget
      const { bytes } = createRequest({
        id: secureRandomBytes(16),
        issuer: operator.certificate.bytes,
        key: operator.key,
        issuedAtMs,
        expiresAtMs: issuedAtMs + 10_000,
        filter: {},
        action: 'ping',
        args: [],
        replyTo: { peerId: agent.node.peerId, addrs: agent.node.addrs() },
      })
      await deliver(agent, bytes)
      const count = (lines: string[], text: string) => lines.filter(line => line.includes(text)).length
      await waitFor(() => count(first, 'running request') === 1, 5_000, 'the request to run')
      await agent.stop()

      const second: string[] = []
      const restarted = await start(second)
      await deliver(restarted, bytes)
      await waitFor(
        () => count(second, 'already ran before this agent restarted') === 1,
        5_000,
        'already ran',
      )
      expect(count(second, 'running request')).toBe(0)
      await restarted.stop()

      await writeFile(homePaths(home).runRecord, 'damaged', { mode: 0o600 })
      const error = await startAgent({ home, env, logger: pino({ level: 'silent' }) }).then(
        a => {
          agents.push(a)
          return undefined
        },
        (err: unknown) => err,
      )
      expect(error).toBeInstanceOf(HomeError)
      expect((error as HomeError).message).toContain(homePaths(home).runRecord)
    } finally {
      await Promise.all(agents.map(a => a.stop().catch(() => {})))
      await rm(root, { recursive: true, force: true })
    }
  })
})
