// Proves the process-group runner through the registry with real processes: argv runs without a shell,
// from a minimal environment, output is bounded and cut at a character boundary, a time limit or a cancel
// kills the whole process group (PIDs checked afterwards), and a spawn failure is a typed result.
import { existsSync } from 'node:fs'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { isGone, NODE, TREE, treePids, useActionRegistries, waitUntil } from './helpers.js'

const { registry, dir } = useActionRegistries()

describe('declared actions', () => {
  it('pass arguments literally, without a shell', async () => {
    const marker = join(dir(), 'pwned')
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
    const pidFile = join(dir(), 'pids')
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
    const pidFile = join(dir(), 'pids')
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
    const pidFile = join(dir(), 'pids')
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
    const r = registry({ actions: { ghost: { argv: [join(dir(), 'no-such-binary'), '--x'] } } })
    const result = await r.run('ghost', [])
    expect(result).toMatchObject({ status: 'error', errorCode: 'spawn-failed', exitCode: null })
    expect(result.output).toContain('ENOENT')
    expect(r.load().running).toBe(0)
  })

  it('report a missing cwd as a spawn error', async () => {
    const r = registry({ actions: { lost: { argv: [NODE, '-e', ''], cwd: join(dir(), 'absent') } } })
    expect(await r.run('lost', [])).toMatchObject({ status: 'error', errorCode: 'spawn-failed' })
  })
})
