// Proves `mesh agent` behaves as packaging/systemd/mesh.service expects of it: started the way the unit
// starts it (its ExecStart arguments, the home from the unit's MESH_HOME variable, output to pipes as
// to the journal), with a declared action running as a process group that has a grandchild, one
// SIGTERM to the agent's process alone (what KillMode=mixed sends) makes it stop within the unit's
// TimeoutStopSec: exit 0, control socket removed, and the action's shell and its grandchild gone, so
// systemd's final SIGKILL finds nothing. On the way, `mesh status` shows the agent's build. Runs the built CLI (dist/mesh.cjs) on 127.0.0.1; every wait is
// bounded; processes are stopped by PID.
import { type ChildProcess, execFileSync, spawn, spawnSync } from 'node:child_process'
import { appendFileSync, existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { CONTROL_SOCKET_NAME } from '../../src/control/protocol.js'

const repo = resolve(import.meta.dirname, '../..')
const cli = join(repo, 'dist/mesh.cjs')
const unit = readFileSync(join(repo, 'packaging/systemd/mesh.service'), 'utf8')
const root = mkdtempSync(join(tmpdir(), 'mesh-service-'))
const children: ChildProcess[] = []

/** The unit's `Environment=MESH_HOME=%S/mesh`, with %S (/var/lib for a system unit) in `root`. */
function unitEnvironment(): Record<string, string> {
  const env: Record<string, string> = {}
  for (const [, assignment] of unit.matchAll(/^Environment=(.+)$/gm)) {
    const eq = assignment!.indexOf('=')
    env[assignment!.slice(0, eq)] = assignment!.slice(eq + 1).replaceAll('%S', join(root, 'var-lib'))
  }
  return env
}
/** ExecStart's arguments after the program: `agent`. */
const execArgs = /^ExecStart=\S+ (.*)$/m.exec(unit)![1]!.split(' ')

const serviceEnv: Record<string, string | undefined> = {
  ...Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('MESH_'))),
  ...unitEnvironment(),
  MESH_LOG_LEVEL: 'warn',
  NO_COLOR: '1',
}
const home = serviceEnv.MESH_HOME!
const pidFile = join(root, 'action.pids')

function mesh(...args: string[]) {
  return spawnSync(process.execPath, [cli, ...args], {
    encoding: 'utf8',
    env: serviceEnv,
    timeout: 30_000,
    killSignal: 'SIGKILL',
  })
}

function start(...args: string[]) {
  const child = spawn(process.execPath, [cli, ...args], {
    env: serviceEnv,
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  children.push(child)
  let output = ''
  child.stdout!.on('data', d => (output += d))
  child.stderr!.on('data', d => (output += d))
  const exit = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>(done =>
    child.once('exit', (code, signal) => done({ code, signal })),
  )
  return { child, output: () => output, exit }
}

async function until(what: string, check: () => boolean, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`)
    await new Promise(r => setTimeout(r, 50))
  }
}

/** A process that no longer runs: gone, or a zombie nobody has reaped yet (a container's PID 1 may not). */
function gone(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
    return stat.slice(stat.lastIndexOf(')') + 2).startsWith('Z')
  } catch {
    return true
  }
}

function seconds(span: string): number {
  const m = /^(\d+)s$/.exec(span)
  if (m === null) throw new Error(`expected a TimeoutStopSec in seconds, got ${span}`)
  return Number(m[1])
}

beforeAll(() => {
  if (!existsSync(cli))
    execFileSync(process.execPath, ['scripts/bundle.mjs'], { cwd: repo, timeout: 120_000 })
  const init = mesh('init', '--name', 'svc1', '--listen', '/ip4/127.0.0.1/tcp/0')
  expect(init.status, init.stderr).toBe(0)
  // An action whose shell starts a grandchild and waits: both are in the group the agent made for it.
  appendFileSync(
    join(home, 'config.toml'),
    `
[actions.hold]
argv = ["sh", "-c", "sleep 300 & echo $! > ${pidFile}; echo $$ >> ${pidFile}; wait"]
timeout = "5m"

[[policy]]
actions = ["hold"]
`,
  )
}, 60_000)

afterAll(() => {
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL')
  if (existsSync(pidFile)) {
    for (const pid of readFileSync(pidFile, 'utf8').split('\n').filter(Boolean).map(Number)) {
      try {
        process.kill(pid, 'SIGKILL')
      } catch {
        // already gone
      }
    }
  }
  rmSync(root, { recursive: true, force: true })
})

describe('mesh agent under the systemd unit', () => {
  it('stops on one SIGTERM to its own process, taking its running action group with it', async () => {
    expect(execArgs).toEqual(['agent'])
    const agent = start(...execArgs)
    const socket = join(home, CONTROL_SOCKET_NAME)
    await until('the control socket', () => existsSync(socket), 20_000)
    await until('the agent to print its addresses', () => agent.output().includes('listening on'), 5_000)

    // `mesh status` shows the running agent's build, the line `mesh --version` prints.
    const version = mesh('--version').stdout.trim()
    expect(version).toMatch(/^\S+ \(commit \S+, built \S+\)$/)
    const status = mesh('status')
    expect(status.status, status.stderr).toBe(0)
    expect(status.stdout.split('\n').map(l => l.replace(/^version +/, 'version '))).toContain(
      `version ${version}`,
    )

    const exec = start('exec', 'hold', '--timeout', '60s')
    await until(
      'the action to start its grandchild',
      () => existsSync(pidFile) && readFileSync(pidFile, 'utf8').trim().split('\n').length === 2,
      20_000,
    )
    const [grandchild, shell] = readFileSync(pidFile, 'utf8').trim().split('\n').map(Number)
    expect(gone(shell!)).toBe(false)
    expect(gone(grandchild!)).toBe(false)

    const stopS = seconds(/^TimeoutStopSec=(\S+)$/m.exec(unit)![1]!)
    const stoppedAt = Date.now()
    agent.child.kill('SIGTERM') // KillMode=mixed: the main process only
    const result = await Promise.race([
      agent.exit,
      new Promise<'timeout'>(r => setTimeout(() => r('timeout'), stopS * 1000)),
    ])
    expect(result, agent.output()).toEqual({ code: 0, signal: null })
    expect(Date.now() - stoppedAt).toBeLessThan(stopS * 1000)
    expect(agent.output()).toContain('mesh agent svc1 stopped')
    expect(existsSync(socket)).toBe(false)
    await until(
      'the action shell and its grandchild to be gone',
      () => gone(shell!) && gone(grandchild!),
      5_000,
    )

    // The operator's exec learns that its agent went away and fails instead of waiting out 60 s.
    const execResult = await Promise.race([
      exec.exit,
      new Promise<'timeout'>(r => setTimeout(() => r('timeout'), 10_000)),
    ])
    expect(execResult).toEqual({ code: 1, signal: null })
  })
})
