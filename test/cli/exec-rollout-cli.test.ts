// Proves `mesh exec`'s rollout and output flags against a stub agent: the real control server, the
// agent's real control handlers and the real rollout component (src/node/rollout.ts) over a fake exec
// that answers from a table and can send live `output` events, in process, so no libp2p. Covers: the
// flags reach the agent as rollout parameters; every bad value and conflict is a usage error (exit 2)
// with one line, before the agent is asked; a limit above the set is a warning; a failure budget
// that stops the rollout names the nodes not run and exits 1; the --json document keeps its fields and
// gains the rollout ones; --display, --table; live output lines prefixed with the node's name, partial
// lines held until the newline or the node's done; --jsonl passes output events through; the progress
// line only on a TTY without NO_COLOR, cleared at the end.
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { controlHandlers } from '../../src/agent/control-methods.js'
import { createOutputLines, PARTIAL_LINE_CHARS_MAX } from '../../src/cli/exec.js'
import { createCli } from '../../src/cli.js'
import { type ControlServer, controlSocketPath, createControlServer } from '../../src/control/index.js'
import type { ReplyStatus } from '../../src/gossip/reply.js'
import type { CollectedReply, ExecResult } from '../../src/gossip/reply-collector.js'
import type { MemberView } from '../../src/membership/view.js'
import { systemClock, systemRandom } from '../../src/node/clock.js'
import type { ExecOptions } from '../../src/node/exec.js'
import { silentLogger } from '../../src/node/log.js'
import type { MeshNode } from '../../src/node/node-types.js'
import { createRollout, type RolloutOptions } from '../../src/node/rollout.js'

let home: string
let server: ControlServer | undefined
let rolloutCalls: RolloutOptions[] = []
let execCalls: ExecOptions[] = []

beforeEach(async () => {
  home = await mkdtemp(join(tmpdir(), 'mesh-rollout-'))
  rolloutCalls = []
  execCalls = []
})
afterEach(async () => {
  await server?.stop()
  server = undefined
  await rm(home, { recursive: true, force: true })
})

/** What a node answers: a status (default ok), `silent`, and optional output chunks sent live first. */
interface Answer {
  status?: ReplyStatus | 'silent'
  output?: string
  chunks?: Array<{ stream?: 'stdout' | 'stderr'; data: string }>
}

const member = (name: string): MemberView => ({
  name,
  peerId: `p-${name}`,
  zone: 'web',
  roles: ['agent'],
  addrs: [],
  state: 'alive',
  lastSeenMs: 0,
  facts: {},
})

/** Serves the real control handlers over a node of `names` whose exec answers from `answers`. */
async function agentWith(names: string[], answers: Record<string, Answer> = {}): Promise<void> {
  const members = names.map(member)
  const exec = async (options: ExecOptions): Promise<ExecResult> => {
    execCalls.push(options)
    const wanted = options.filter?.names
    const expected = names.filter(n => wanted === undefined || wanted.includes(n)).sort()
    const id = `req${execCalls.length}`
    options.onEvent?.({ kind: 'published', id, expected })
    const replies: CollectedReply[] = []
    for (const node of expected) {
      const answer = answers[node] ?? {}
      let seq = 0
      for (const chunk of answer.chunks ?? []) {
        const event = { kind: 'output', node, stream: chunk.stream ?? 'stdout', seq: seq++, data: chunk.data }
        options.onEvent?.(event as never)
      }
      if (answer.status === 'silent') continue
      const status = answer.status ?? 'ok'
      const reply: CollectedReply = {
        node,
        zone: 'web',
        status,
        exitCode: status === 'ok' ? 0 : 3,
        output: answer.output ?? '',
        durationMs: 5,
        outputTruncated: false,
        expected: true,
        receivedAtMs: 0,
      }
      replies.push(reply)
      options.onEvent?.({ kind: 'done', reply })
    }
    const done = new Set(replies.map(r => r.node))
    return {
      id,
      action: options.action,
      expected,
      replies,
      missing: expected.filter(n => !done.has(n)),
      acked: [],
      unexpected: [],
    }
  }
  const rollout = createRollout({
    exec,
    members: () => members,
    clock: systemClock,
    random: systemRandom,
    log: silentLogger(),
  })
  const node = {
    exec,
    rollout: (options: RolloutOptions) => {
      rolloutCalls.push(options)
      return rollout.run(options)
    },
  } as unknown as MeshNode
  server = createControlServer({
    path: controlSocketPath(home),
    handlers: controlHandlers(node, new Uint8Array(32), { actionNames: async () => [] }),
  })
  await server.start()
}

async function run(argv: string[], options: { tty?: boolean; env?: Record<string, string> } = {}) {
  const out: string[] = []
  const err: string[] = []
  const tty = options.tty === true
  const cli = createCli({
    stdout: { write: (s: string) => out.push(s), isTTY: tty },
    stderr: { write: (s: string) => err.push(s), isTTY: tty },
    env: options.env ?? { NO_COLOR: '1' },
    userHome: '/nonexistent-home',
  })
  const code = await cli.run(['--home', home, ...argv])
  return { code, out: out.join(''), err: err.join('') }
}

const fleet = ['a1', 'a2', 'a3', 'a4', 'a5', 'a6']

describe('mesh exec rollout flags', () => {
  it('passes --batch, --batch-sleep, --max-failures, --limit and --limit-seed to the agent', async () => {
    await agentWith(fleet)
    const r = await run([
      'exec',
      'deploy',
      '--batch',
      '50%',
      '--batch-sleep',
      '10ms',
      '--max-failures',
      '1',
      '--limit',
      '4',
      '--limit-seed',
      'seed-1',
    ])
    expect(r.err).toBe('')
    expect(r.code).toBe(0)
    expect(rolloutCalls).toHaveLength(1)
    expect(rolloutCalls[0]).toMatchObject({
      batch: { percent: 50 },
      batchSleepMs: 10,
      maxFailures: { count: 1 },
      limit: { count: 4 },
      limitSeed: 'seed-1',
    })
    // 4 chosen, waves of 50% = 2.
    expect(execCalls.map(c => c.filter?.names?.length)).toEqual([2, 2])
    expect(r.out).toMatch(/^4\/4 ok in 2\/2 waves\n$/m)
  })

  it('--one is --limit 1 and prints the drawn seed so the choice can be repeated', async () => {
    await agentWith(fleet)
    const r = await run(['exec', 'deploy', '--one'])
    expect(r.code).toBe(0)
    expect(rolloutCalls[0]?.limit).toEqual({ count: 1 })
    const seed = /--limit-seed ([0-9a-f]+)/.exec(r.err)?.[1]
    expect(seed).toBeDefined()
    const chosen = execCalls[0]?.filter?.names
    const again = await run(['exec', 'deploy', '--one', '--limit-seed', seed as string])
    expect(again.code).toBe(0)
    expect(again.err).toBe('')
    expect(execCalls[1]?.filter?.names).toEqual(chosen)
  })

  it('a plain exec stays a plain exec', async () => {
    await agentWith(fleet)
    const r = await run(['exec', 'deploy', '--display', 'none'])
    expect(r.code).toBe(0)
    expect(rolloutCalls).toHaveLength(0)
    expect(execCalls[0]?.filter).toEqual({})
  })

  it.each<[string[], string]>([
    [['--batch', '0'], 'mesh: --batch 0: the number of nodes must be from 1 to 100000\n'],
    [['--batch=-2'], 'mesh: --batch -2: the number of nodes must be from 1 to 100000\n'],
    [['--batch', '0%'], 'mesh: --batch 0%: a percentage must be from 1% to 100%\n'],
    [['--batch', '101%'], 'mesh: --batch 101%: a percentage must be from 1% to 100%\n'],
    [['--batch', 'two'], "mesh: --batch 'two' is not a number of nodes (N) or a percentage (N%)\n"],
    [['--batch', '1.5'], "mesh: --batch '1.5' is not a number of nodes (N) or a percentage (N%)\n"],
    [['--limit', '0'], 'mesh: --limit 0: the number of nodes must be from 1 to 100000\n'],
    [['--limit', '250%'], 'mesh: --limit 250%: a percentage must be from 1% to 100%\n'],
    [['--max-failures=-1'], 'mesh: --max-failures -1: the number of nodes must be from 0 to 100000\n'],
    [['--max-failures', '120%'], 'mesh: --max-failures 120%: a percentage must be from 1% to 100%\n'],
    [
      ['--once', '--batch', '2'],
      'mesh: --once runs on one node per zone; it cannot be combined with --batch\n',
    ],
    [['--once', '--one'], 'mesh: --once runs on one node per zone; it cannot be combined with --one\n'],
    [['--one', '--limit', '2'], "mesh: choose one of '--one' and '--limit'\n"],
    [['--batch-sleep', '1s'], 'mesh: --batch-sleep needs --batch\n'],
    [['--batch', '1', '--batch-sleep', '2h'], 'mesh: --batch-sleep 2h is too long: at most 1h\n'],
    [['--limit-seed', 'x'], 'mesh: --limit-seed needs --limit or --one\n'],
    [['--display', 'some'], "mesh: --display 'some' must be one of ok, failed, all, none\n"],
  ])('%j is a usage error before the agent is asked', async (flags, message) => {
    await agentWith(fleet)
    const r = await run(['exec', 'deploy', ...flags])
    expect(r.code).toBe(2)
    expect(r.err).toBe(message)
    expect(r.out).toBe('')
    expect(execCalls).toHaveLength(0)
  })

  it.each([['--json'], ['--jsonl']])('--table and --display with %s are usage errors', async machine => {
    await agentWith(fleet)
    const table = await run([machine, 'exec', 'deploy', '--table'])
    expect(table.code).toBe(2)
    expect(table.err).toBe(`mesh: --table is for human output; drop it or ${machine}\n`)
    const display = await run([machine, 'exec', 'deploy', '--display', 'ok'])
    expect(display.code).toBe(2)
    expect(display.err).toBe(`mesh: --display is for human output; drop it or ${machine}\n`)
    expect(execCalls).toHaveLength(0)
  })

  it('a --batch-sleep of 0 is refused like every duration that is not positive', async () => {
    await agentWith(fleet)
    const r = await run(['exec', 'deploy', '--batch', '1', '--batch-sleep', '0s'])
    expect(r.code).toBe(2)
    expect(execCalls).toHaveLength(0)
  })

  it('a limit above the matching set is a warning, and the rollout runs on all of them', async () => {
    await agentWith(['a1', 'a2'])
    const r = await run(['exec', 'deploy', '--limit', '5'])
    expect(r.code).toBe(0)
    expect(r.err).toBe('mesh: warning: --limit 5 asks for 5 nodes but only 2 match; running on all of them\n')
    expect(r.out).toContain('2/2 ok')
  })
})

describe('mesh exec rollout results', () => {
  const failing = { a2: { status: 'failed' as const }, a3: { status: 'silent' as const } }

  it('stops at the failure budget, names what was not run and exits 1', async () => {
    await agentWith(fleet, failing)
    const r = await run(['exec', 'deploy', '--batch', '2', '--max-failures', '1'])
    expect(r.code).toBe(1)
    expect(execCalls).toHaveLength(2)
    const last = r.out.trimEnd().split('\n').at(-1)
    expect(last).toBe(
      '2/6 ok in 2/3 waves; failed: a2 (failed); no answer: a3; not run (more than 1 node failed or did not answer): a5, a6',
    )
    expect(r.out).toContain('wave 1/3 (2 nodes)\n')
  })

  it('exits 0 when every wave ran and every node answered ok', async () => {
    await agentWith(fleet)
    const r = await run(['exec', 'deploy', '--batch', '4'])
    expect(r.code).toBe(0)
    expect(r.out.trimEnd().split('\n').at(-1)).toBe('6/6 ok in 2/2 waves')
  })

  it('--json keeps the exec document and adds the rollout fields', async () => {
    await agentWith(fleet, failing)
    const r = await run(['--json', 'exec', 'deploy', '--batch', '2', '--max-failures', '1'])
    expect(r.code).toBe(1)
    const doc = JSON.parse(r.out)
    expect(Object.keys(doc)).toEqual([
      'id',
      'action',
      'expected',
      'replies',
      'missing',
      'job',
      'waves',
      'notRun',
      'maxFailures',
      'stoppedBy',
    ])
    expect(doc.id).toBe(doc.job)
    expect(doc.id).toMatch(/^[0-9a-f]{32}$/)
    expect(doc.expected).toEqual(fleet)
    expect(doc.missing).toEqual(['a3'])
    expect(doc.notRun).toEqual(['a5', 'a6'])
    expect(doc.stoppedBy).toBe('max-failures')
    expect(doc.waves).toEqual([
      { id: 'req1', nodes: ['a1', 'a2'], ok: 1, failed: 1, missing: 0 },
      { id: 'req2', nodes: ['a3', 'a4'], ok: 1, failed: 0, missing: 1 },
    ])
    expect(Object.keys(doc.replies[0])).toEqual([
      'node',
      'zone',
      'status',
      'exitCode',
      'output',
      'durationMs',
    ])
  })

  it('--jsonl prints the rollout and wave events and a summary with what was not run', async () => {
    await agentWith(fleet, failing)
    const r = await run(['--jsonl', 'exec', 'deploy', '--batch', '2', '--max-failures', '1'])
    const lines = r.out
      .trimEnd()
      .split('\n')
      .map(l => JSON.parse(l))
    expect(lines.map(l => l.event).filter(e => e !== 'done')).toEqual([
      'rollout',
      'wave',
      'published',
      'wave-done',
      'wave',
      'published',
      'wave-done',
      'summary',
    ])
    expect(lines.at(-1)).toMatchObject({ event: 'summary', notRun: ['a5', 'a6'], waves: 2, missing: ['a3'] })
  })

  it('--display failed shows only the nodes that did not answer ok', async () => {
    await agentWith(['a1', 'a2', 'a3'], { a2: { status: 'failed', output: 'boom' } })
    const r = await run(['exec', 'deploy', '--display', 'failed'])
    expect(r.out).toBe('a2 [web] failed exit 3 5ms: boom\n2/3 ok; failed: a2 (failed)\n')
  })

  it('--display ok shows only the ok ones; none only the summary', async () => {
    await agentWith(['a1', 'a2'], { a2: { status: 'failed' } })
    const ok = await run(['exec', 'deploy', '--display', 'ok'])
    expect(ok.out).toBe('a1 [web] ok 5ms\n1/2 ok; failed: a2 (failed)\n')
    const none = await run(['exec', 'deploy', '--display', 'none'])
    expect(none.out).toBe('1/2 ok; failed: a2 (failed)\n')
  })

  it('--table prints one row per node sorted by name, with missing and not-run rows', async () => {
    await agentWith(['b1', 'a2', 'a1', 'c1', 'c2'], {
      a1: { output: '\n up 3 days, load 0.1\nsecond line' },
      a2: { status: 'failed', output: 'x'.repeat(100) },
      b1: { status: 'silent' },
    })
    const r = await run(['exec', 'deploy', '--table', '--batch', '3', '--max-failures', '0'])
    expect(r.code).toBe(1)
    const rows = r.out.split('\n')
    expect(rows.slice(0, 6)).toEqual([
      'NODE  ZONE  STATUS   EXIT  DURATION  OUTPUT',
      'a1    web   ok       0     5ms       up 3 days, load 0.1',
      `a2    web   failed   3     5ms       ${'x'.repeat(59)}…`,
      'b1    -     missing  -     -',
      'c1    -     not-run  -     -',
      'c2    -     not-run  -     -',
    ])
    // No reply lines and no wave headers besides the table.
    expect(r.out).not.toContain('[web]')
    const failedOnly = await run(['exec', 'deploy', '--table', '--display', 'failed'])
    expect(failedOnly.out.split('\n').slice(0, 3)).toEqual([
      'NODE  ZONE  STATUS   EXIT  DURATION  OUTPUT',
      `a2    web   failed   3     5ms       ${'x'.repeat(59)}…`,
      'b1    -     missing  -     -',
    ])
  })
})

describe('mesh exec live output', () => {
  const chatty = {
    a1: {
      output: 'hello\nworld\n',
      chunks: [
        { data: 'hel' },
        { data: 'lo\nwor' },
        { data: 'ld\n' },
        { stream: 'stderr' as const, data: 'warn: x' },
      ],
    },
    a2: { output: 'plain', chunks: [] },
  }

  it('prints each line prefixed with the node, holds partial lines until the done', async () => {
    await agentWith(['a1', 'a2'], chatty)
    const r = await run(['exec', 'deploy'])
    expect(r.code).toBe(0)
    expect(r.out).toBe(
      // a1's output was shown live, so its done line carries no copy of it.
      'a1: hello\na1: world\na1 (stderr): warn: x\na1 [web] ok 5ms\na2 [web] ok 5ms: plain\n2/2 ok\n',
    )
  })

  it('--jsonl prints output events as they come', async () => {
    await agentWith(['a1'], chatty)
    const r = await run(['--jsonl', 'exec', 'deploy'])
    const events = r.out
      .trimEnd()
      .split('\n')
      .map(l => JSON.parse(l))
      .filter(e => e.event === 'output')
    expect(events).toEqual([
      { event: 'output', kind: 'output', node: 'a1', stream: 'stdout', seq: 0, data: 'hel' },
      { event: 'output', kind: 'output', node: 'a1', stream: 'stdout', seq: 1, data: 'lo\nwor' },
      { event: 'output', kind: 'output', node: 'a1', stream: 'stdout', seq: 2, data: 'ld\n' },
      { event: 'output', kind: 'output', node: 'a1', stream: 'stderr', seq: 3, data: 'warn: x' },
    ])
  })

  it('output lines: repeated chunks dropped, long partial lines cut, flush per node', () => {
    const written: string[] = []
    const lines = createOutputLines(t => written.push(t))
    lines.add({ node: 'n', stream: 'stdout', seq: 1, data: 'a' })
    lines.add({ node: 'n', stream: 'stdout', seq: 1, data: 'a' }) // repeated
    lines.add({ node: 'm', stream: 'stdout', seq: 1, data: 'm-part' })
    lines.add({ node: 'n', stream: 'stdout', seq: 2, data: 'b\r\nc' })
    expect(written).toEqual(['n: ab\n'])
    lines.flush('n')
    expect(written).toEqual(['n: ab\n', 'n: c\n'])
    lines.add({ node: 'n', stream: 'stdout', seq: 3, data: 'y'.repeat(PARTIAL_LINE_CHARS_MAX + 5) })
    expect(written.at(-1)).toBe(`n: ${'y'.repeat(PARTIAL_LINE_CHARS_MAX)}\n`)
    lines.flush()
    expect(written.slice(-2)).toEqual(['n: yyyyy\n', 'm: m-part\n'])
  })
})

describe('mesh exec progress line', () => {
  it('on a TTY shows waves, done/expected, ok, failed, missing and elapsed, then clears it', async () => {
    await agentWith(fleet, { a3: { status: 'silent' } })
    const r = await run(['exec', 'deploy', '--batch', '3'], { tty: true, env: {} })
    expect(r.err).toContain('\r\u001b[Kwave 1/2  0/6 done  0 ok  0 failed  0 missing  0s')
    expect(r.err).toContain('\r\u001b[Kwave 2/2  5/6 done  5 ok  0 failed  1 missing')
    expect(r.err.endsWith('\r\u001b[K')).toBe(true)
  })

  it.each<[string, { tty?: boolean; env?: Record<string, string> }]>([
    ['NO_COLOR is set', { tty: true, env: { NO_COLOR: '1' } }],
    ['the output is not a TTY', { tty: false, env: {} }],
  ])('is not shown when %s', async (_what, options) => {
    await agentWith(fleet)
    const r = await run(['exec', 'deploy', '--batch', '3'], options)
    expect(r.code).toBe(0)
    expect(r.err).toBe('')
  })

  it('is not shown with --json on a TTY', async () => {
    await agentWith(fleet)
    const r = await run(['--json', 'exec', 'deploy', '--batch', '3'], { tty: true, env: {} })
    expect(r.err).toBe('')
    expect(JSON.parse(r.out).waves).toHaveLength(2)
  })
})
