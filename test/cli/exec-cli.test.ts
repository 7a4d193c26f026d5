// Proves `mesh exec` output and exit codes against a stub agent: the real control server and the
// agent's real control handlers (src/agent/control-methods.ts) over a stub node, in process, so no
// libp2p. Covers: nothing matched (no "0/0 ok", one error line, exit 1; --json still one document),
// a timeout beyond the mesh's request lifetime (usage error, exit 2, with the agent's message), and
// --timeout beyond the agent's maximum refused before the agent is asked; a `cancelled` reply printed
// and counted as not ok; a did-you-mean line when every node answered unknown-action; `--once` with no
// zone authority (exit 1, the node's message); Ctrl-C exiting 130.
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { controlHandlers, EXEC_TIMEOUT_MS_MAX } from '../../src/agent/control-methods.js'
import { createCli } from '../../src/cli.js'
import { type ControlServer, controlSocketPath, createControlServer } from '../../src/control/index.js'
import { ExecNoAuthorityError, ExecRefusedError } from '../../src/node/exec.js'
import type { MeshNode } from '../../src/node/node-types.js'

let home: string
let server: ControlServer | undefined
let execCalls = 0

beforeEach(async () => {
  home = await mkdtemp(join(tmpdir(), 'mesh-exec-'))
  execCalls = 0
})
afterEach(async () => {
  await server?.stop()
  server = undefined
  await rm(home, { recursive: true, force: true })
})

/** Serves the agent's control handlers on `home` over a node whose exec is `exec`. */
async function agentWith(exec: MeshNode['exec'], actionNames: string[] = []): Promise<void> {
  const node = {
    exec: (options: Parameters<MeshNode['exec']>[0]) => {
      execCalls += 1
      return exec(options)
    },
  } as unknown as MeshNode
  server = createControlServer({
    path: controlSocketPath(home),
    handlers: controlHandlers(node, new Uint8Array(32), { actionNames: async () => actionNames }),
  })
  await server.start()
}

async function run(argv: string[], signal?: AbortSignal) {
  const out: string[] = []
  const err: string[] = []
  const cli = createCli({
    stdout: { write: (s: string) => out.push(s) },
    stderr: { write: (s: string) => err.push(s) },
    env: { NO_COLOR: '1' },
    userHome: '/nonexistent-home',
    ...(signal === undefined ? {} : { signal }),
  })
  const code = await cli.run(['--home', home, ...argv])
  return { code, out: out.join(''), err: err.join('') }
}

const nothingMatched: MeshNode['exec'] = async options => {
  options.onEvent?.({ kind: 'published', id: 'r1', expected: [] })
  return {
    id: 'r1',
    action: options.action,
    expected: [],
    replies: [],
    missing: [],
    acked: [],
    unexpected: [],
  }
}

describe('mesh exec', () => {
  it('prints no "ok" summary when nothing was expected and nothing answered', async () => {
    await agentWith(nothingMatched)
    const r = await run(['exec', 'ping', '--zone', 'nosuch'])
    expect(r.code).toBe(1)
    expect(r.out).toBe('')
    expect(r.err.trimEnd().split('\n')).toEqual([
      "mesh: no alive member matches the filter; check 'mesh members'",
    ])
  })

  it('keeps --json one valid document when nothing matched', async () => {
    await agentWith(nothingMatched)
    const r = await run(['--json', 'exec', 'ping', '--zone', 'nosuch'])
    expect(r.code).toBe(1)
    expect(JSON.parse(r.out)).toEqual({ id: 'r1', action: 'ping', expected: [], replies: [], missing: [] })
  })

  it('reports a timeout beyond the request lifetime as a usage error with the agent message', async () => {
    // The message src/node/exec.ts gives an ExecRefusedError 'lifetime-too-long'.
    const message =
      'a timeout of 600000 ms is longer than the longest request lifetime nodes accept (requestLifetimeMsMax, 300000 ms)'
    await agentWith(async () => {
      throw new ExecRefusedError('lifetime-too-long', message)
    })
    const r = await run(['exec', 'uptime', '--timeout', '10m'])
    expect(r.code).toBe(2)
    expect(r.out).toBe('')
    expect(r.err).toBe(`mesh: ${message}\n`)
  })

  it('keeps other agent failures at exit 1', async () => {
    await agentWith(async () => {
      throw new Error('this node is not running')
    })
    const r = await run(['exec', 'uptime'])
    expect(r.code).toBe(1)
    expect(r.err).toBe('mesh: this node is not running\n')
  })

  it.each(['99999999h', '25d', '61m', `${EXEC_TIMEOUT_MS_MAX + 1}ms`])(
    '--timeout %s is a usage error naming the maximum, before the agent is asked',
    async timeout => {
      await agentWith(nothingMatched)
      const r = await run(['exec', 'uptime', '--timeout', timeout])
      expect(r.code).toBe(2)
      expect(r.out).toBe('')
      expect(r.err).toBe(`mesh: --timeout ${timeout} is too long: at most 1h\n`)
      expect(execCalls).toBe(0)
    },
  )

  it('accepts --timeout equal to the maximum', async () => {
    let asked: number | undefined
    await agentWith(async options => {
      asked = options.timeoutMs
      return nothingMatched(options)
    })
    await run(['exec', 'uptime', '--timeout', '1h'])
    expect(asked).toBe(EXEC_TIMEOUT_MS_MAX)
  })

  /** A result in which every node in `statuses` answered with that status and reason. */
  const answered =
    (replies: Array<{ node: string; status: string; reason?: string }>): MeshNode['exec'] =>
    async options => {
      const nodes = replies.map(r => r.node)
      options.onEvent?.({ kind: 'published', id: 'r2', expected: nodes })
      const full = replies.map(r => ({
        zone: 'web',
        exitCode: null,
        output: '',
        durationMs: 3,
        outputTruncated: false,
        expected: true,
        receivedAtMs: 0,
        ...r,
      }))
      for (const reply of full) options.onEvent?.({ kind: 'done', reply: reply as never })
      return {
        id: 'r2',
        action: options.action,
        expected: nodes,
        replies: full as never,
        missing: [],
        acked: [],
        unexpected: [],
      }
    }

  it('prints a cancelled reply and exits 1; --json carries the status', async () => {
    await agentWith(
      answered([{ node: 'w1', status: 'cancelled', reason: 'cancelled: the node is stopping' }]),
    )
    const r = await run(['exec', 'long'])
    expect(r.code).toBe(1)
    expect(r.out).toContain('w1 [web] cancelled 3ms\n  cancelled: the node is stopping\n')
    expect(r.out).toContain('failed: w1 (cancelled)')
    const j = await run(['--json', 'exec', 'long'])
    expect(JSON.parse(j.out).replies[0].status).toBe('cancelled')
  })

  it('offers the local action names within two edits when every node says unknown-action', async () => {
    const unknown = (node: string) => ({
      node,
      status: 'error',
      reason: "unknown-action: this node has no action 'uptim'",
    })
    await agentWith(answered([unknown('w1'), unknown('w2')]), ['facts', 'ping', 'uptime'])
    const r = await run(['exec', 'uptim'])
    expect(r.code).toBe(1)
    expect(r.err).toBe("mesh: no node that answered has an action 'uptim'; did you mean 'uptime'?\n")
  })

  it('does not guess when some node has the action', async () => {
    await agentWith(
      answered([
        { node: 'w1', status: 'error', reason: "unknown-action: this node has no action 'uptim'" },
        { node: 'w2', status: 'ok' },
      ]),
      ['uptime'],
    )
    const r = await run(['exec', 'uptim'])
    expect(r.err).toBe('')
  })

  it('reports --once with no zone authority as the node says, exit 1', async () => {
    await agentWith(async () => {
      throw new ExecNoAuthorityError(['web'])
    })
    const r = await run(['exec', 'uptime', '--zone', 'web', '--once'])
    expect(r.code).toBe(1)
    expect(r.err).toBe('mesh: zone web has no authority right now\n')
  })

  it('exits 130 on Ctrl-C while waiting for replies', async () => {
    const interrupt = new AbortController()
    await agentWith(async options => {
      options.onEvent?.({ kind: 'published', id: 'r3', expected: ['w1'] })
      interrupt.abort() // the operator presses Ctrl-C once the request is out
      await new Promise(resolve => options.signal?.addEventListener('abort', resolve, { once: true }))
      return nothingMatched(options)
    })
    const r = await run(['exec', 'uptime'], interrupt.signal)
    expect(r.code).toBe(130)
    expect(r.err).toMatch(/interrupted/)
  })
})
