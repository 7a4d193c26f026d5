// Proves the CA commands from the shell, as an operator uses them against a running agent: a join
// without a ticket waits, shows up in `mesh ca list`, finishes by itself after `mesh ca sign ID`; a
// second one fails after `mesh ca reject ID`; `mesh ca revoke NAME` removes a running member, which
// is then refused. Real processes on 127.0.0.1; every wait is bounded; agents are stopped by PID.
import { type ChildProcess, spawn, spawnSync } from 'node:child_process'
import { existsSync, mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'

const repo = resolve(import.meta.dirname, '../..')
const cli = join(repo, 'dist/mesh.cjs')
const root = mkdtempSync(join(tmpdir(), 'mesh-ca-'))
const children: ChildProcess[] = []
const env = { ...process.env, MESH_LOG_LEVEL: 'warn', NO_COLOR: '1' }
const hub = join(root, 'hub')

function mesh(...args: string[]) {
  return spawnSync(process.execPath, [cli, ...args], { encoding: 'utf8', env, timeout: 30_000 })
}

function background(...args: string[]): {
  child: ChildProcess
  output: () => string
  exit: Promise<number | null>
} {
  const child = spawn(process.execPath, [cli, ...args], { env })
  children.push(child)
  let out = ''
  child.stdout?.on('data', d => {
    out += d
  })
  child.stderr?.on('data', d => {
    out += d
  })
  const exit = new Promise<number | null>(resolve => child.once('exit', code => resolve(code)))
  return { child, output: () => out, exit }
}

async function until<T>(what: string, check: () => T | undefined, timeoutMs = 20_000): Promise<T> {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    const value = check()
    if (value !== undefined) return value
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
    await new Promise(r => setTimeout(r, 100))
  }
}

async function startAgent(home: string): Promise<void> {
  const agent = background('--home', home, 'agent')
  await until('the agent to listen', () => (agent.output().includes('listening on') ? true : undefined))
}

afterAll(async () => {
  for (const c of children) if (c.exitCode === null && c.pid !== undefined) process.kill(c.pid, 'SIGTERM')
  await new Promise(r => setTimeout(r, 500))
  for (const c of children) if (c.exitCode === null && c.pid !== undefined) process.kill(c.pid, 'SIGKILL')
  rmSync(root, { recursive: true, force: true })
})

describe('mesh ca list | sign | reject | revoke', () => {
  it('approves, refuses and revokes members', async () => {
    if (!existsSync(cli)) spawnSync(process.execPath, ['scripts/bundle.mjs'], { cwd: repo, timeout: 60_000 })
    expect(mesh('--home', hub, 'init', '--name', 'hub', '--listen', '/ip4/127.0.0.1/tcp/0').status).toBe(0)
    await startAgent(hub)
    const status = JSON.parse(mesh('--home', hub, 'status', '--json').stdout) as {
      addrs: string[]
      fingerprint: string
    }
    const manual = (name: string) =>
      background(
        '--home',
        join(root, name),
        'join',
        '--bootstrap',
        status.addrs[0]!,
        '--fingerprint',
        status.fingerprint,
        '--name',
        name,
        '--zone',
        'web',
        '--listen',
        '/ip4/127.0.0.1/tcp/0',
        '--timeout',
        '30s',
      )

    // sign
    const w1 = manual('w1')
    const pending = await until('w1 to be pending', () => {
      const list = JSON.parse(mesh('--home', hub, 'ca', 'list', '--json').stdout) as Array<{
        id: string
        name: string
      }>
      return list.find(p => p.name === 'w1')
    })
    // The CA records the request before it answers, so the joiner's hint may print a moment later.
    await until('the joiner to print the sign command', () =>
      w1.output().includes(`mesh ca sign ${pending.id}`) ? true : undefined,
    )
    const signed = mesh('--home', hub, 'ca', 'sign', pending.id)
    expect(signed.status).toBe(0)
    expect(signed.stdout).toContain('w1')
    expect(await w1.exit).toBe(0)
    expect(existsSync(join(root, 'w1', 'node.cert'))).toBe(true)
    expect(mesh('--home', hub, 'ca', 'list').stdout).toContain('no pending signing requests')

    // reject
    const w2 = manual('w2')
    const pending2 = await until('w2 to be pending', () => {
      const list = JSON.parse(mesh('--home', hub, 'ca', 'list', '--json').stdout) as Array<{
        id: string
        name: string
      }>
      return list.find(p => p.name === 'w2')
    })
    expect(mesh('--home', hub, 'ca', 'reject', pending2.id).status).toBe(0)
    expect(await w2.exit).toBe(1)
    expect(w2.output()).toMatch(/mesh: .*reject/)
    expect(existsSync(join(root, 'w2', 'node.key'))).toBe(false)
    expect(mesh('--home', hub, 'ca', 'sign', pending2.id).status).toBe(1)

    // revoke a running member
    await startAgent(join(root, 'w1'))
    const aliveNames = () =>
      (JSON.parse(mesh('--home', hub, 'members', '--json').stdout) as Array<{ name: string; state: string }>)
        .filter(m => m.state === 'alive')
        .map(m => m.name)
    await until('w1 to be a member', () => (aliveNames().includes('w1') ? true : undefined))
    const revoked = mesh('--home', hub, 'ca', 'revoke', 'w1')
    expect(revoked.status).toBe(0)
    expect(revoked.stdout).toMatch(/revoked w1/)
    await until('w1 to be gone', () => (aliveNames().includes('w1') ? undefined : true))
    const w1Status = JSON.parse(mesh('--home', join(root, 'w1'), 'status', '--json').stdout) as {
      counters: unknown
    }
    expect(w1Status).toBeDefined()
    const exec = mesh('--home', hub, 'exec', 'ping', '--node', 'w1', '--timeout', '2s')
    expect(exec.status).toBe(1)
  })
})
