// Proves how the built CLI (dist/mesh.cjs) behaves as a process: on a Node.js older than 22 it says
// so in one line and exits 1; a foreground agent stops gracefully on SIGHUP (exit 0, control socket
// removed); `init` on an uncreatable home under /proc fails at once; a --home whose control socket
// path would pass the 107-byte limit is a usage error for init and join; and `mesh join` exits 2 for
// an unparsable ticket or address but 1 for a genuine ticket the mesh refuses. Real processes on
// 127.0.0.1 only; every wait is bounded; processes are stopped by PID.
import { type ChildProcess, execFileSync, spawn, spawnSync } from 'node:child_process'
import { existsSync, mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { delimiter, join, resolve } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { formatFingerprint } from '../../src/ca/fingerprint.js'
import { type CliIo, createCli } from '../../src/cli.js'
import { CONTROL_SOCKET_NAME, CONTROL_SOCKET_PATH_BYTES_MAX } from '../../src/control/protocol.js'

const repo = resolve(import.meta.dirname, '../..')
const cli = join(repo, 'dist/mesh.cjs')
const root = mkdtempSync(join(tmpdir(), 'mesh-process-'))
const children: ChildProcess[] = []
const env = { ...process.env, MESH_LOG_LEVEL: 'warn', NO_COLOR: '1' }
const LOCAL = '/ip4/127.0.0.1/tcp/0'

function mesh(...args: string[]) {
  return spawnSync(process.execPath, [cli, ...args], {
    encoding: 'utf8',
    env,
    timeout: 30_000,
    killSignal: 'SIGKILL',
  })
}

/** Runs the CLI without blocking the event loop (so a background child's output keeps flowing). */
function meshAsync(...args: string[]): Promise<{ status: number | null; stdout: string; stderr: string }> {
  return new Promise(done => {
    const child = spawn(process.execPath, [cli, ...args], { env })
    children.push(child)
    let stdout = ''
    let stderr = ''
    child.stdout.on('data', d => (stdout += d))
    child.stderr.on('data', d => (stderr += d))
    const timer = setTimeout(() => stop(child, 'SIGKILL'), 30_000)
    child.once('exit', status => {
      clearTimeout(timer)
      done({ status, stdout, stderr })
    })
  })
}

function background(...args: string[]) {
  const child = spawn(process.execPath, [cli, ...args], { env })
  children.push(child)
  let out = ''
  child.stdout.on('data', d => (out += d))
  child.stderr.on('data', d => (out += d))
  const exit = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>(done =>
    child.once('exit', (code, signal) => done({ code, signal })),
  )
  return { child, output: () => out, exit }
}

async function until<T>(what: string, check: () => Promise<T | undefined>, timeoutMs = 20_000): Promise<T> {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    const value = await check()
    if (value !== undefined) return value
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
    await new Promise(r => setTimeout(r, 100))
  }
}

async function within<T>(what: string, ms: number, promise: Promise<T>): Promise<T> {
  let timer: NodeJS.Timeout | undefined
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} did not happen within ${ms} ms`)), ms)
  })
  try {
    return await Promise.race([promise, timeout])
  } finally {
    clearTimeout(timer)
  }
}

/** A `node` older than 22 on PATH (not the pinned one in node_modules/.bin), with its version. */
function findOldNode(): { path: string; version: string } | undefined {
  for (const dir of (process.env.PATH ?? '').split(delimiter)) {
    if (dir === '' || dir.includes('node_modules')) continue
    const path = join(dir, 'node')
    if (!existsSync(path)) continue
    try {
      const version = execFileSync(path, ['-p', 'process.versions.node'], {
        encoding: 'utf8',
        timeout: 10_000,
      })
      if (Number.parseInt(version, 10) < 22) return { path, version: version.trim() }
    } catch {
      // not runnable: look further
    }
  }
  return undefined
}

function captureIo(): CliIo & { out: () => string; err: () => string } {
  let out = ''
  let err = ''
  return {
    stdout: { write: (s: string) => (out += s) },
    stderr: { write: (s: string) => (err += s) },
    env: {},
    userHome: root,
    out: () => out,
    err: () => err,
  }
}

/** A home under `root` whose control socket path is exactly `bytes` bytes long. */
function homeWithSocketBytes(bytes: number): string {
  const base = join(root, 'h')
  const fill = bytes - Buffer.byteLength(join(base, CONTROL_SOCKET_NAME))
  if (fill < 1) throw new Error(`the temporary directory ${root} is too long for this test`)
  const home = base + 'x'.repeat(fill)
  expect(Buffer.byteLength(join(home, CONTROL_SOCKET_NAME))).toBe(bytes)
  return home
}

beforeAll(() => {
  if (!existsSync(cli))
    execFileSync(process.execPath, ['scripts/bundle.mjs'], { cwd: repo, timeout: 120_000 })
}, 150_000)

/** Sends `signal` to a child that is still running, by PID; a child that just exited is not an error. */
function stop(child: ChildProcess, signal: NodeJS.Signals): void {
  if (child.exitCode !== null || child.signalCode !== null || child.pid === undefined) return
  try {
    process.kill(child.pid, signal)
  } catch {
    // exited between the check and the kill
  }
}

afterAll(async () => {
  for (const c of children) stop(c, 'SIGTERM')
  await new Promise(r => setTimeout(r, 500))
  for (const c of children) stop(c, 'SIGKILL')
  rmSync(root, { recursive: true, force: true })
})

describe('dist/mesh.cjs as a process', () => {
  it('refuses a Node.js older than 22 in one line, exit 1', ctx => {
    const old = findOldNode()
    if (old === undefined) {
      ctx.skip('no Node.js older than 22 on PATH besides node_modules/.bin')
      return
    }
    const r = spawnSync(old.path, [cli, 'agent', '--home', join(root, 'old-node')], {
      encoding: 'utf8',
      env,
      timeout: 20_000,
      killSignal: 'SIGKILL',
    })
    expect(r.stderr).toBe(
      `mesh: needs Node.js 22 or newer (this is ${old.version}); use the single binary dist/mesh, which needs no Node\n`,
    )
    expect([r.status, r.stdout]).toEqual([1, ''])
    expect(existsSync(join(root, 'old-node'))).toBe(false)
  })

  it('fails at once for an uncreatable home under /proc', ctx => {
    if (!existsSync('/proc/self')) {
      ctx.skip('no /proc on this system')
      return
    }
    const started = Date.now()
    const r = spawnSync(process.execPath, [cli, '--home', '/proc/nope', 'init', '--name', 'x'], {
      encoding: 'utf8',
      env,
      timeout: 15_000,
      killSignal: 'SIGKILL',
    })
    expect(r.signal).toBeNull()
    expect(r.status).toBe(1)
    expect(r.stderr).toMatch(/^mesh: .*cannot create \/proc\/nope/)
    expect(Date.now() - started).toBeLessThan(15_000)
  })

  it('stops a foreground agent gracefully on SIGHUP, and join exits 1 for a refused ticket', async () => {
    const home = join(root, 'a')
    expect(mesh('--home', home, 'init', '--name', 'a', '--zone', 'z', '--listen', LOCAL).status).toBe(0)
    const agent = background('--home', home, 'agent')
    await until('mesh status to answer', async () => {
      if (agent.child.exitCode !== null) throw new Error(`the agent exited early: ${agent.output()}`)
      return (await meshAsync('--home', home, 'status')).status === 0 ? true : undefined
    })
    expect(existsSync(join(home, CONTROL_SOCKET_NAME))).toBe(true)

    // A genuine ticket: the first join succeeds, the second is refused by the mesh (exit 1).
    const created = await meshAsync('--home', home, 'ticket', 'create', 'b', '--zone', 'z')
    expect(created.status, created.stderr).toBe(0)
    const ticket = created.stdout.trim()
    const first = await meshAsync('--home', join(root, 'b1'), 'join', '--ticket', ticket, '--listen', LOCAL)
    expect([first.status, first.stderr]).toEqual([0, ''])
    const again = await meshAsync('--home', join(root, 'b2'), 'join', '--ticket', ticket, '--listen', LOCAL)
    expect(again.status).toBe(1)
    expect(again.stderr).toMatch(/^mesh: the mesh refused to join/)
    expect(existsSync(join(root, 'b2'))).toBe(false)

    process.kill(agent.child.pid!, 'SIGHUP')
    const exit = await within('the agent to stop after SIGHUP', 10_000, agent.exit)
    expect(exit, agent.output()).toEqual({ code: 0, signal: null })
    expect(agent.output()).toContain('mesh agent a stopped')
    expect(existsSync(join(home, CONTROL_SOCKET_NAME))).toBe(false)
  }, 90_000)
})

describe('mesh init and join (in process)', () => {
  it('refuses a --home whose control socket path passes the limit, creating nothing', async () => {
    const tooLong = homeWithSocketBytes(CONTROL_SOCKET_PATH_BYTES_MAX + 1)
    for (const argv of [
      ['--home', tooLong, 'init', '--name', 'x'],
      ['--home', tooLong, 'join', '--ticket', 'mesh2.whatever'],
    ]) {
      const io = captureIo()
      expect(await createCli(io).run(argv)).toBe(2)
      expect(io.err()).toMatch(new RegExp(`^mesh: .*${CONTROL_SOCKET_PATH_BYTES_MAX} bytes`))
      expect(io.err().trim().split('\n')).toHaveLength(1)
      expect(existsSync(tooLong)).toBe(false)
    }
    // Exactly at the limit is fine.
    const io = captureIo()
    const atLimit = homeWithSocketBytes(CONTROL_SOCKET_PATH_BYTES_MAX)
    expect(await createCli(io).run(['--home', atLimit, 'init', '--name', 'x', '--listen', LOCAL])).toBe(0)
    expect(existsSync(join(atLimit, 'node.key'))).toBe(true)
  })

  it('exits 2 for an unparsable ticket or bootstrap address, creating nothing', async () => {
    const home = join(root, 'bad-input')
    for (const [argv, message] of [
      [['join', '--ticket', 'not-a-ticket'], /^mesh: the ticket is unreadable/],
      [
        [
          'join',
          '--bootstrap',
          'not-a-multiaddr',
          '--fingerprint',
          formatFingerprint(new Uint8Array(32).fill(7)),
          '--name',
          'x',
          '--zone',
          'z',
        ],
        /^mesh: not-a-multiaddr is not a multiaddr/,
      ],
    ] as const) {
      const io = captureIo()
      expect(await createCli(io).run(['--home', home, ...argv]), io.err()).toBe(2)
      expect(io.err()).toMatch(message)
      expect(existsSync(home)).toBe(false)
    }
  })
})
