// Proves the registry's contract: custom handlers get their args, signal and limits, the slot queue runs,
// queues and refuses as configured, slow runs are warned about, close cancels everything (process trees
// included), declared actions are validated all at once, and every failure is a typed result.
import { existsSync } from 'node:fs'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import {
  ACTION_NAME_PATTERN,
  ActionRegistryError,
  createActionRegistry,
  declaredActionProblems,
  isValidActionName,
} from '../../../src/node/actions/index.js'
import { createManualClock } from '../../../src/node/clock.js'
import { isGone, NODE, TREE, treePids, useActionRegistries, waitUntil } from './helpers.js'

const { registry, dir } = useActionRegistries()

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
    const pidFile = join(dir(), 'pids')
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

describe('the registry on a manual clock', () => {
  const turn = () => new Promise(resolve => setImmediate(resolve))

  it('warns about a slow run and ends it at its time limit, both on the clock', async () => {
    const clock = createManualClock()
    const warnings: string[] = []
    const r = registry({
      clock,
      limits: { slowRunWarnMs: 30 },
      log: (level, message) => {
        if (level === 'warn') warnings.push(message)
      },
    })
    r.register('hang', () => new Promise(() => undefined), { timeoutMs: 100 })
    const running = r.run('hang', [])
    await turn()
    clock.advance(30)
    expect(warnings).toEqual(['action is slow'])
    clock.advance(70)
    expect(await running).toMatchObject({ status: 'failed', timedOut: true, durationMs: 100 })
    expect(r.counters()).toMatchObject({ slowRuns: 1, timeouts: 1 })
    expect(clock.pending()).toBe(0)
  })
})

describe('action names', () => {
  it('are a lower-case letter then up to 63 of [A-Za-z0-9_.-]', () => {
    expect(ACTION_NAME_PATTERN.source).toBe('^[a-z][\\w.-]{0,63}$')
    for (const name of ['a', 'restart_web', 'db.backup-2', 'a' + 'B'.repeat(63)]) {
      expect(isValidActionName(name)).toBe(true)
    }
    for (const name of ['', 'Bad', '1st', '_x', 'has space', 'a' + 'b'.repeat(64), 'semi;colon']) {
      expect(isValidActionName(name)).toBe(false)
    }
  })
})
