// Proves the action runner's contract with real processes and a fake system clock: the uptime line matches
// procps' format (tables) and utmp counting, argv runs without a shell, output is bounded, a time limit or a
// cancel kills the whole process group (PIDs checked afterwards), and every failure is a typed result.
import { existsSync, readFileSync } from 'node:fs'
import { mkdtemp, readFile, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import {
  type ActionRegistry,
  ActionRegistryError,
  type ActionRegistryInit,
  type ActionSystem,
  countUtmpUsers,
  createActionRegistry,
  declaredActionProblems,
  formatUptimeLine,
  UTMP_RECORD_BYTES,
} from '../../src/node/actions.js'

const NODE = process.execPath
const TREE = fileURLToPath(new URL('./fixtures/process-tree.mjs', import.meta.url))

const fakeSystem: ActionSystem = {
  nowMs: () => Date.UTC(2026, 0, 2, 10, 14, 3),
  uptimeSeconds: () => 3 * 86_400 + 4 * 3_600 + 2 * 60 + 59.5,
  loadAverage: () => [0.15, 0.1, 0.05],
  countUsers: async () => 2,
  localClock: () => ({ hours: 10, minutes: 14, seconds: 3 }),
}

let dir: string
const registries: ActionRegistry[] = []
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'mesh-actions-'))
})
afterEach(async () => {
  await Promise.all(registries.splice(0).map(r => r.close()))
  await rm(dir, { recursive: true, force: true })
})

function registry(init: Partial<ActionRegistryInit> = {}): ActionRegistry {
  const r = createActionRegistry({
    facts: () => ({ os: 'linux', hostname: 'web-1' }),
    system: fakeSystem,
    ...init,
    limits: { killGraceMs: 300, exitDrainMs: 200, ...init.limits },
  })
  registries.push(r)
  return r
}

/** True when `pid` no longer runs (absent, or a zombie waiting for a reaper that is not us). */
function isGone(pid: number): boolean {
  try {
    process.kill(pid, 0)
  } catch {
    return true
  }
  try {
    return readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]?.startsWith('Z') === true
  } catch {
    return true
  }
}

async function waitUntil(condition: () => boolean, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs
  while (Date.now() < deadline) {
    if (condition()) return true
    await new Promise(resolve => setTimeout(resolve, 25))
  }
  return condition()
}

async function treePids(pidFile: string): Promise<[number, number]> {
  const [parent, grandchild] = (await readFile(pidFile, 'utf8')).split(' ').map(Number)
  return [parent!, grandchild!]
}

describe('formatUptimeLine', () => {
  const load = { load1: 0.15, load5: 0.1, load15: 0.05 }
  it.each([
    [
      3 * 86_400 + 4 * 3_600 + 2 * 60,
      2,
      ' 10:14:03 up 3 days,  4:02,  2 users,  load average: 0.15, 0.10, 0.05',
    ],
    [86_400 + 5 * 60 + 59, 1, ' 10:14:03 up 1 day, 5 min,  1 user,  load average: 0.15, 0.10, 0.05'],
    [0, 0, ' 10:14:03 up 0 min,  0 users,  load average: 0.15, 0.10, 0.05'],
    [23 * 3_600 + 59 * 60, 12, ' 10:14:03 up 23:59, 12 users,  load average: 0.15, 0.10, 0.05'],
    [400 * 86_400 + 3_600, 3, ' 10:14:03 up 400 days,  1:00,  3 users,  load average: 0.15, 0.10, 0.05'],
  ])('%i s, %i users', (uptimeSeconds, users, line) => {
    expect(formatUptimeLine({ time: '10:14:03', uptimeSeconds, users, ...load })).toBe(line)
  })

  it('rounds load averages to two decimals', () => {
    const line = formatUptimeLine({
      time: '00:00:00',
      uptimeSeconds: 60,
      users: 1,
      load1: 1.006,
      load5: 12.5,
      load15: 0,
    })
    expect(line.endsWith('load average: 1.01, 12.50, 0.00')).toBe(true)
  })
})

describe('countUtmpUsers', () => {
  function record(type: number, user: string): Uint8Array {
    const bytes = new Uint8Array(UTMP_RECORD_BYTES)
    new DataView(bytes.buffer).setInt16(0, type, true)
    bytes.set(new TextEncoder().encode(user), 44)
    return bytes
  }
  function utmp(...records: Uint8Array[]): Uint8Array {
    return Buffer.concat(records)
  }

  it('counts USER_PROCESS records with a user name', () => {
    const image = utmp(
      record(2, 'reboot'),
      record(7, 'alice'),
      record(8, ''),
      record(7, 'bob'),
      record(7, ''),
    )
    expect(countUtmpUsers(image)).toBe(2)
  })

  it('ignores a partial trailing record and empty input', () => {
    expect(countUtmpUsers(utmp(record(7, 'alice'), record(7, 'bob').subarray(0, 100)))).toBe(1)
    expect(countUtmpUsers(new Uint8Array(0))).toBe(0)
  })
})

describe('built-ins', () => {
  it('uptime returns the line and its fields', async () => {
    const result = await registry().run('uptime', [])
    expect(result).toMatchObject({ status: 'ok', exitCode: 0, timedOut: false, truncated: false })
    expect(result.output).toBe(' 10:14:03 up 3 days,  4:02,  2 users,  load average: 0.15, 0.10, 0.05\n')
    expect(result.structured).toEqual({
      nowMs: fakeSystem.nowMs(),
      time: '10:14:03',
      uptimeSeconds: 273_779,
      users: 2,
      load1: 0.15,
      load5: 0.1,
      load15: 0.05,
    })
  })

  it('uptime on the real system has the procps shape', async () => {
    const result = await registry({ system: undefined }).run('uptime', [])
    expect(result.status).toBe('ok')
    expect(result.output).toMatch(
      /^ \d\d:\d\d:\d\d up (\d+ days?, )?(\d+ min|[ \d]\d:\d\d), [ \d]\d users?, {2}load average: \d+\.\d\d, \d+\.\d\d, \d+\.\d\d\n$/,
    )
  })

  it('ping answers pong with the node time', async () => {
    const result = await registry().run('ping', [])
    expect(result.output).toBe('pong 2026-01-02T10:14:03.000Z\n')
    expect(result.structured).toEqual({ nowMs: fakeSystem.nowMs() })
  })

  it('facts returns the facts as JSON', async () => {
    const result = await registry().run('facts', [])
    expect(JSON.parse(result.output)).toEqual({ hostname: 'web-1', os: 'linux' })
    expect(result.structured).toEqual({ hostname: 'web-1', os: 'linux' })
  })

  it('refuses arguments to a built-in', async () => {
    const result = await registry().run('ping', ['x'])
    expect(result).toMatchObject({ status: 'error', errorCode: 'bad-arguments' })
  })

  it('can be limited or disabled', () => {
    expect(
      registry({ builtins: ['ping'] })
        .list()
        .map(a => a.name),
    ).toEqual(['ping'])
    expect(registry({ builtins: false }).has('uptime')).toBe(false)
  })
})

describe('declared actions', () => {
  it('pass arguments literally, without a shell', async () => {
    const marker = join(dir, 'pwned')
    const script = 'process.stdout.write(JSON.stringify(process.argv.slice(1)))'
    const args = ['a; touch ' + marker, `$(touch ${marker})`, '`id`', '"quoted" *']
    const r = registry({ actions: { echo: { argv: [NODE, '-e', script, 'fixed;arg'], acceptsArgs: true } } })
    const result = await r.run('echo', args)
    expect(result.status).toBe('ok')
    expect(JSON.parse(result.output)).toEqual(['fixed;arg', ...args])
    expect(existsSync(marker)).toBe(false)
  })

  it('refuse request arguments unless the action accepts them', async () => {
    const r = registry({ actions: { fixed: { argv: [NODE, '-e', ''] } } })
    expect(await r.run('fixed', ['x'])).toMatchObject({ status: 'error', errorCode: 'bad-arguments' })
  })

  it('report a non-zero exit as failed, with stderr in the output', async () => {
    const script = "process.stderr.write('broken\\n'); process.exitCode = 3"
    const result = await registry({ actions: { bad: { argv: [NODE, '-e', script] } } }).run('bad', [])
    expect(result).toMatchObject({ status: 'failed', exitCode: 3, output: 'broken\n', timedOut: false })
  })

  it('report death by a signal the process got elsewhere', async () => {
    const script = "process.kill(process.pid, 'SIGSEGV')"
    const result = await registry({ actions: { crash: { argv: [NODE, '-e', script] } } }).run('crash', [])
    expect(result).toMatchObject({ status: 'failed', exitCode: null, signal: 'SIGSEGV' })
  })

  it('start from a minimal environment plus their own variables', async () => {
    const script = 'process.stdout.write(JSON.stringify(process.env))'
    const r = registry({
      baseEnv: { PATH: '/usr/bin:/bin' },
      actions: { env: { argv: [NODE, '-e', script], env: { COLOR: 'blue' } } },
    })
    const env = JSON.parse((await r.run('env', [], { request: { id: 'req-1', operator: 'alice' } })).output)
    expect(env).toEqual({
      PATH: '/usr/bin:/bin',
      MESH_ACTION: 'env',
      MESH_REQUEST_ID: 'req-1',
      MESH_OPERATOR: 'alice',
      COLOR: 'blue',
    })
  })

  it('keep only the first outputBytesMax bytes and count the rest', async () => {
    const script = "process.stdout.write('x'.repeat(100000)); process.stderr.write('y'.repeat(5000))"
    const r = registry({ actions: { loud: { argv: [NODE, '-e', script], outputBytesMax: 1000 } } })
    const result = await r.run('loud', [])
    expect(result).toMatchObject({ status: 'ok', truncated: true, outputBytes: 105_000 })
    expect(result.output).toHaveLength(1000)
    expect(r.counters().truncations).toBe(1)
  })

  it('cut output at a character boundary', async () => {
    const script = "process.stdout.write('é'.repeat(10))"
    const r = registry({ actions: { utf: { argv: [NODE, '-e', script], outputBytesMax: 5 } } })
    expect((await r.run('utf', [])).output).toBe('éé')
  })

  it('kill the whole process tree at the time limit', async () => {
    const pidFile = join(dir, 'pids')
    const r = registry({ actions: { tree: { argv: [NODE, TREE, pidFile], timeoutMs: 800 } } })
    const result = await r.run('tree', [])
    expect(result).toMatchObject({ status: 'failed', timedOut: true, exitCode: null, output: 'started\n' })
    expect(result.signal).toBeUndefined()
    const [parent, grandchild] = await treePids(pidFile)
    expect(await waitUntil(() => isGone(parent) && isGone(grandchild), 2_000)).toBe(true)
    expect(result.durationMs).toBeLessThan(800 + 1_000)
    expect(r.counters().timeouts).toBe(1)
  })

  it('SIGKILL a tree that ignores SIGTERM after the grace period', async () => {
    const pidFile = join(dir, 'pids')
    const r = registry({
      actions: { stubborn: { argv: [NODE, TREE, pidFile, 'ignore-term'], timeoutMs: 700 } },
    })
    const result = await r.run('stubborn', [])
    expect(result).toMatchObject({ status: 'failed', timedOut: true })
    expect(result.durationMs).toBeGreaterThanOrEqual(700 + 300 - 5)
    const [parent, grandchild] = await treePids(pidFile)
    expect(await waitUntil(() => isGone(parent) && isGone(grandchild), 2_000)).toBe(true)
  })

  it('are cancelled by an AbortSignal, tree included', async () => {
    const pidFile = join(dir, 'pids')
    const r = registry({ actions: { tree: { argv: [NODE, TREE, pidFile] } } })
    const controller = new AbortController()
    const running = r.run('tree', [], { signal: controller.signal })
    expect(await waitUntil(() => existsSync(pidFile), 5_000)).toBe(true)
    controller.abort()
    const result = await running
    expect(result).toMatchObject({ status: 'error', errorCode: 'aborted', timedOut: false })
    const [parent, grandchild] = await treePids(pidFile)
    expect(await waitUntil(() => isGone(parent) && isGone(grandchild), 2_000)).toBe(true)
    expect(r.load()).toEqual({ running: 0, queued: 0 })
  })

  it('finish soon after the main process exits even if a descendant keeps the pipe open', async () => {
    const script = [
      "const c = require('node:child_process')",
      "const g = c.spawn(process.execPath, ['-e', 'setTimeout(() => {}, 5000)'], { stdio: 'inherit' })",
      'g.unref()',
      'console.log(g.pid)',
    ].join('; ')
    const result = await registry({ actions: { bg: { argv: [NODE, '-e', script] } } }).run('bg', [])
    const grandchild = Number(result.output.trim())
    try {
      expect(result).toMatchObject({ status: 'ok', exitCode: 0, timedOut: false })
      // exitDrainMs is 200 here; without it the run would wait 5 s for the grandchild.
      expect(result.durationMs).toBeLessThan(2_000)
      expect(isGone(grandchild)).toBe(false)
    } finally {
      if (grandchild > 0) process.kill(grandchild, 'SIGKILL')
    }
  })

  it('report a missing binary as a spawn error', async () => {
    const r = registry({ actions: { ghost: { argv: [join(dir, 'no-such-binary'), '--x'] } } })
    const result = await r.run('ghost', [])
    expect(result).toMatchObject({ status: 'error', errorCode: 'spawn-failed', exitCode: null })
    expect(result.output).toContain('ENOENT')
    expect(r.load().running).toBe(0)
  })

  it('report a missing cwd as a spawn error', async () => {
    const r = registry({ actions: { lost: { argv: [NODE, '-e', ''], cwd: join(dir, 'absent') } } })
    expect(await r.run('lost', [])).toMatchObject({ status: 'error', errorCode: 'spawn-failed' })
  })
})

describe('custom handlers', () => {
  it('receive args and request info and return structured results', async () => {
    const r = registry()
    r.register('greet', async ({ args, request }) => ({
      exitCode: 0,
      output: `hello ${args.join(' ')} from ${request.operator}`,
      structured: { n: args.length },
    }))
    const result = await r.run('greet', ['a', 'b'], { request: { operator: 'alice' } })
    expect(result).toMatchObject({ status: 'ok', output: 'hello a b from alice', structured: { n: 2 } })
  })

  it('are stopped at their time limit and see their signal aborted', async () => {
    const r = registry()
    let sawAbort = false
    r.register(
      'hang',
      ({ signal }) =>
        new Promise(() => {
          signal.addEventListener('abort', () => {
            sawAbort = true
          })
        }),
      { timeoutMs: 100 },
    )
    const result = await r.run('hang', [])
    expect(result).toMatchObject({ status: 'failed', timedOut: true, exitCode: null })
    expect(sawAbort).toBe(true)
  })

  it('can be given less time by the caller, never more', async () => {
    const r = registry()
    r.register(
      'slow',
      () => new Promise(resolve => setTimeout(() => resolve({ exitCode: 0, output: '' }), 300)),
      {
        timeoutMs: 5_000,
      },
    )
    expect((await r.run('slow', [], { timeoutMs: 50 })).timedOut).toBe(true)
    expect((await r.run('slow', [], { timeoutMs: 60_000 })).status).toBe('ok')
  })

  it('turn a throw into an error result', async () => {
    const r = registry()
    r.register('boom', () => {
      throw new Error('kaput')
    })
    expect(await r.run('boom', [])).toMatchObject({ status: 'error', errorCode: 'handler-threw' })
    expect((await r.run('boom', [])).output).toContain('kaput')
  })

  it('bound their output like processes', async () => {
    const r = registry()
    r.register('big', async () => ({ exitCode: 0, output: 'z'.repeat(50) }), { outputBytesMax: 10 })
    expect(await r.run('big', [])).toMatchObject({ output: 'z'.repeat(10), truncated: true, outputBytes: 50 })
  })

  it('refuse duplicate and invalid names', () => {
    const r = registry()
    const handler = async () => ({ exitCode: 0, output: '' })
    expect(() => r.register('ping', handler)).toThrow(ActionRegistryError)
    expect(() => r.register('Bad Name', handler)).toThrow(/not a valid action name/)
    expect(() => r.register('x', handler, { timeoutMs: 0 })).toThrow(ActionRegistryError)
  })
})

describe('the registry', () => {
  it('answers an unknown action with the known ones', async () => {
    const result = await registry().run('reboot', [])
    expect(result).toMatchObject({ status: 'error', errorCode: 'unknown-action' })
    expect(result.output).toBe("unknown action 'reboot'; this node has: facts, ping, uptime")
  })

  it('runs at most concurrentRunsMax, queues queuedRunsMax and refuses the rest', async () => {
    const r = registry({ limits: { concurrentRunsMax: 1, queuedRunsMax: 1 } })
    const gates: (() => void)[] = []
    r.register(
      'gate',
      () => new Promise(resolve => gates.push(() => resolve({ exitCode: 0, output: 'done' }))),
    )
    const first = r.run('gate', [])
    const second = r.run('gate', [])
    const third = await r.run('gate', [])
    expect(third).toMatchObject({ status: 'error', errorCode: 'busy' })
    await waitUntil(() => gates.length === 1, 1_000)
    expect(r.load()).toEqual({ running: 1, queued: 1 })
    gates[0]!()
    expect((await first).status).toBe('ok')
    await waitUntil(() => gates.length === 2, 1_000)
    gates[1]!()
    expect((await second).status).toBe('ok')
    expect(r.load()).toEqual({ running: 0, queued: 0 })
    expect(r.counters()).toMatchObject({ runs: 2, ok: 2, errors: 1, busyRejections: 1 })
  })

  it('gives up on a queued run when its time runs out, and on cancel', async () => {
    const r = registry({ limits: { concurrentRunsMax: 1 } })
    let open: () => void = () => undefined
    r.register('hold', () => new Promise(resolve => (open = () => resolve({ exitCode: 0, output: '' }))))
    const holding = r.run('hold', [])
    const late = await r.run('hold', [], { timeoutMs: 50 })
    expect(late).toMatchObject({ status: 'error', errorCode: 'queue-timeout', timedOut: true })
    const controller = new AbortController()
    const cancelled = r.run('hold', [], { signal: controller.signal })
    controller.abort()
    expect(await cancelled).toMatchObject({ status: 'error', errorCode: 'aborted' })
    open()
    await holding
    expect(r.load()).toEqual({ running: 0, queued: 0 })
  })

  it('warns while an action is slow', async () => {
    const warnings: unknown[] = []
    const r = registry({
      limits: { slowRunWarnMs: 30 },
      log: (level, message, context) => {
        if (level === 'warn') warnings.push({ message, action: context.action })
      },
    })
    r.register(
      'nap',
      () => new Promise(resolve => setTimeout(() => resolve({ exitCode: 0, output: '' }), 120)),
    )
    await r.run('nap', [])
    await r.run('ping', [])
    expect(warnings).toEqual([{ message: 'action is slow', action: 'nap' }])
    expect(r.counters().slowRuns).toBe(1)
  })

  it('close cancels running and queued work and refuses new runs', async () => {
    const pidFile = join(dir, 'pids')
    const r = registry({
      limits: { concurrentRunsMax: 1 },
      actions: { tree: { argv: [NODE, TREE, pidFile] } },
    })
    const running = r.run('tree', [])
    const queued = r.run('tree', [])
    expect(await waitUntil(() => existsSync(pidFile), 5_000)).toBe(true)
    await r.close()
    expect(await running).toMatchObject({ errorCode: 'closed' })
    expect(await queued).toMatchObject({ errorCode: 'closed' })
    expect(await r.run('ping', [])).toMatchObject({ errorCode: 'closed' })
    const [parent, grandchild] = await treePids(pidFile)
    expect(await waitUntil(() => isGone(parent) && isGone(grandchild), 2_000)).toBe(true)
  })

  it('lists actions with their limits', () => {
    const r = registry({
      actions: { df: { argv: ['df', '-h'], timeoutMs: 5_000, description: 'disk usage' } },
    })
    expect(r.list().find(a => a.name === 'df')).toEqual({
      name: 'df',
      kind: 'declared',
      timeoutMs: 5_000,
      outputBytesMax: 64 * 1024,
      description: 'disk usage',
    })
  })
})

describe('declared action validation', () => {
  it('reports every problem at once', () => {
    const problems = declaredActionProblems({
      ping: { argv: ['x'] },
      Bad: { argv: ['x'] },
      empty: { argv: [] },
      slow: { argv: ['x'], timeoutMs: 0 },
      huge: { argv: ['x'], outputBytesMax: 10 ** 9 },
      here: { argv: ['x'], cwd: 'relative' },
      nul: { argv: ['x\0'], env: { 'A=B': 'c' } },
    })
    expect(problems).toHaveLength(8)
    expect(() => createActionRegistry({ facts: () => ({}), actions: { empty: { argv: [] } } })).toThrow(
      ActionRegistryError,
    )
  })
})
