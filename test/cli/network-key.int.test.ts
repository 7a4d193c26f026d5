// Proves the pnet outer fence from the command line, as a user runs it: `mesh init --network-key`
// creates the key, a machine that joins with a copy (`mesh join --network-key FILE`) becomes a member,
// and one that joins without it cannot even reach the mesh (its ticket is never sent).
import { type ChildProcess, spawn, spawnSync } from 'node:child_process'
import { existsSync, mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'

const repo = resolve(import.meta.dirname, '../..')
const cli = join(repo, 'dist/mesh.cjs')
const root = mkdtempSync(join(tmpdir(), 'mesh-pnet-'))
const agents: ChildProcess[] = []
const env = { ...process.env, MESH_LOG_LEVEL: 'warn', NO_COLOR: '1' }

function mesh(...args: string[]) {
  return spawnSync(process.execPath, [cli, ...args], { encoding: 'utf8', env, timeout: 30_000 })
}

async function startAgent(home: string): Promise<void> {
  const child = spawn(process.execPath, [cli, '--home', home, 'agent'], { env })
  agents.push(child)
  let out = ''
  child.stdout.on('data', d => {
    out += d
  })
  const deadline = Date.now() + 30_000
  while (!out.includes('listening on')) {
    if (Date.now() > deadline || child.exitCode !== null) throw new Error(`agent did not start: ${out}`)
    await new Promise(r => setTimeout(r, 50))
  }
}

afterAll(async () => {
  for (const a of agents) if (a.exitCode === null && a.pid !== undefined) process.kill(a.pid, 'SIGTERM')
  await new Promise(r => setTimeout(r, 500))
  for (const a of agents) if (a.exitCode === null && a.pid !== undefined) process.kill(a.pid, 'SIGKILL')
  rmSync(root, { recursive: true, force: true })
})

describe('mesh init/join --network-key', () => {
  it('admits holders of the key and shuts out the others', async () => {
    if (!existsSync(cli)) spawnSync(process.execPath, ['scripts/bundle.mjs'], { cwd: repo, timeout: 60_000 })
    const hub = join(root, 'hub')
    const init = mesh(
      '--home',
      hub,
      'init',
      '--name',
      'hub',
      '--network-key',
      '--listen',
      '/ip4/127.0.0.1/tcp/0',
    )
    expect(init.status).toBe(0)
    expect(init.stdout).toContain('network.key')
    await startAgent(hub)

    const outsiderTicket = mesh('--home', hub, 'ticket', 'create', 'out1', '--zone', 'web').stdout.trim()
    const outsider = mesh('--home', join(root, 'out1'), 'join', '--ticket', outsiderTicket, '--timeout', '3s')
    expect(outsider.status).toBe(1)
    expect(outsider.stderr).toMatch(/^mesh: /)
    expect(existsSync(join(root, 'out1', 'node.key'))).toBe(false)

    const ticket = mesh('--home', hub, 'ticket', 'create', 'web1', '--zone', 'web').stdout.trim()
    const joined = mesh(
      '--home',
      join(root, 'web1'),
      'join',
      '--ticket',
      ticket,
      '--network-key',
      join(hub, 'network.key'),
      '--listen',
      '/ip4/127.0.0.1/tcp/0',
    )
    expect(joined.stderr).toBe('')
    expect(joined.status).toBe(0)
    await startAgent(join(root, 'web1'))
    const deadline = Date.now() + 20_000
    let names: string[] = []
    while (Date.now() < deadline) {
      const r = mesh('--home', hub, 'members', '--json')
      names = (JSON.parse(r.stdout) as Array<{ name: string; state: string }>)
        .filter(m => m.state === 'alive')
        .map(m => m.name)
      if (names.includes('web1')) break
      await new Promise(r => setTimeout(r, 200))
    }
    expect(names.sort()).toEqual(['hub', 'web1'])
  })
})
