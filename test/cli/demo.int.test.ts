// Proves `mesh demo` as a user runs it: the bundled CLI starts a five-node mesh joined by tickets,
// prints replies from the web zone, answers CLI commands from another process while it is up, and
// stops cleanly (exit 0, temporary homes removed) on SIGINT sent to its PID.
import { type ChildProcess, spawn, spawnSync } from 'node:child_process'
import { existsSync } from 'node:fs'
import { join, resolve } from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'
import { createCli } from '../../src/cli.js'

const repo = resolve(import.meta.dirname, '../..')
const cli = join(repo, 'dist/mesh.cjs')
let child: ChildProcess | undefined

afterAll(() => {
  if (child?.exitCode === null && child.pid !== undefined) process.kill(child.pid, 'SIGKILL')
})

describe('mesh demo', () => {
  it('starts, serves commands, and exits cleanly on SIGINT', async () => {
    if (!existsSync(cli)) spawnSync(process.execPath, ['scripts/bundle.mjs'], { cwd: repo, timeout: 60_000 })
    const demo = spawn(process.execPath, [cli, 'demo'], { cwd: repo, env: { ...process.env, NO_COLOR: '1' } })
    child = demo
    let out = ''
    demo.stdout.on('data', chunk => {
      out += chunk
    })
    demo.stderr.on('data', chunk => {
      out += chunk
    })
    const deadline = Date.now() + 60_000
    while (!out.includes('press Ctrl-C')) {
      if (Date.now() > deadline || demo.exitCode !== null) throw new Error(`demo did not come up:\n${out}`)
      await new Promise(r => setTimeout(r, 100))
    }
    expect(out).toMatch(/3\/3 replied/)
    expect(out.match(/joined zone (web|db) with a ticket/g)).toHaveLength(4)
    const home = /--home (\S+)\/web1 members/.exec(out)?.[1]
    expect(home).toBeDefined()

    const members = spawnSync(process.execPath, [cli, '--home', `${home}/web1`, 'members', '--json'], {
      encoding: 'utf8',
      timeout: 20_000,
    })
    expect(members.status).toBe(0)
    const list = JSON.parse(members.stdout) as Array<{ name: string; state: string }>
    expect(list.map(m => m.name).sort()).toEqual(['db1', 'db2', 'web1', 'web2', 'web3'])

    const status = spawnSync(process.execPath, [cli, '--home', `${home}/web1`, 'status', '--json'], {
      encoding: 'utf8',
      timeout: 20_000,
    })
    expect(status.status).toBe(0)
    expect(JSON.parse(status.stdout)).toMatchObject({ name: 'web1', zone: 'web', ca: true })

    const exec = spawnSync(
      process.execPath,
      [cli, '--home', `${home}/web1`, 'exec', 'uptime', '--zone', 'db'],
      {
        encoding: 'utf8',
        timeout: 20_000,
      },
    )
    expect(exec.status).toBe(0)
    expect(exec.stdout).toMatch(/db1 \[db\] ok/)
    expect(exec.stdout).toMatch(/2\/2 ok/)

    demo.kill('SIGINT')
    const code = await new Promise<number | null>(resolve => {
      if (demo.exitCode !== null) resolve(demo.exitCode)
      demo.once('exit', c => resolve(c))
      setTimeout(() => resolve(null), 20_000)
    })
    expect(code).toBe(0)
    expect(out).toContain('mesh demo stopped')
    expect(existsSync(home!)).toBe(false)
  })

  it('with --exit, runs the request and stops without offering commands against deleted homes', async () => {
    const out: string[] = []
    const err: string[] = []
    const cli = createCli({
      stdout: { write: (s: string) => out.push(s) },
      stderr: { write: (s: string) => err.push(s) },
      env: { NO_COLOR: '1' },
      userHome: '/nonexistent-home',
    })
    expect(await cli.run(['demo', '--nodes', '2', '--exit'])).toBe(0)
    const text = out.join('')
    expect(text).toMatch(/1\/1 replied/)
    expect(text).not.toContain('Try, from another terminal')
    expect(text).not.toContain('--home')
    expect(text).toContain('mesh demo stopped')
    const root = /homes under (\S+)/.exec(text)?.[1]
    expect(root).toBeDefined()
    expect(existsSync(root!)).toBe(false)
    expect(err.join('')).toBe('')
  })
})
