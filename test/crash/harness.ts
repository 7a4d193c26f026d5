/**
 * Helpers of the crash-consistency test (crash-consistency.int.test.ts): real `mesh` processes run from a
 * private copy of the built CLI, the killer process (fixtures/killer.mjs) that sends SIGKILL at a chosen
 * file event, control-socket calls, ticket redemption in this process, and readers of what a home holds
 * on disk. Every wait is bounded; processes are stopped by PID only.
 */
import { type ChildProcess, execFileSync, spawn } from 'node:child_process'
import { copyFileSync, existsSync, mkdirSync, readdirSync } from 'node:fs'
import { readFile } from 'node:fs/promises'
import { join, resolve } from 'node:path'
import { createInterface } from 'node:readline'
import { homePaths } from '../../src/agent/home.js'
import { isStateTempFileName } from '../../src/agent/state-file.js'
import { decodeIssuerState, type IssuerState } from '../../src/ca/issuer-state.js'
import { connectControl } from '../../src/control/client.js'
import { controlSocketPath } from '../../src/control/protocol.js'
import { JoinError, requestCertificate } from '../../src/node/enrolment/joiner.js'
import type { SigningKey } from '../../src/wire/ed25519.js'

export const REPO = resolve(import.meta.dirname, '../..')
const KILLER = join(import.meta.dirname, 'fixtures', 'killer.mjs')

/** A small seeded generator (mulberry32), so a failing run replays with MESH_SEED. */
export interface SeededRandom {
  /** Uniform in [0, 1). */
  next(): number
  /** Uniform integer in [0, n). */
  int(n: number): number
  pick<T>(items: readonly T[]): T
}

export function seededRandom(seed: number): SeededRandom {
  let a = seed >>> 0
  const next = (): number => {
    a = (a + 0x6d2b79f5) >>> 0
    let t = a
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
  const int = (n: number): number => Math.floor(next() * n)
  return { next, int, pick: items => items[int(items.length)]! }
}

/**
 * Copies the built CLI (dist/mesh.cjs and the two bundle files it loads) to `root`/cli, so a rebuild of
 * dist/ during the run cannot swap the program under the test; `MESH_CRASH_DIST` names another build
 * directory. Bundles dist/ first when it holds no build (as test/cli/process.int.test.ts does).
 */
export function prepareCli(root: string): string {
  const source = process.env.MESH_CRASH_DIST ?? join(REPO, 'dist')
  if (!existsSync(join(source, 'mesh.cjs')) && process.env.MESH_CRASH_DIST === undefined)
    execFileSync(process.execPath, ['scripts/bundle.mjs'], { cwd: REPO, timeout: 120_000 })
  const dir = join(root, 'cli')
  mkdirSync(dir, { recursive: true })
  for (const file of ['mesh.cjs', 'mesh-main.cjs', 'mesh-node.cjs']) {
    copyFileSync(join(source, file), join(dir, file))
  }
  return join(dir, 'mesh.cjs')
}

/** How a process ended. */
export interface Exit {
  readonly code: number | null
  readonly signal: NodeJS.Signals | null
}

/** A `mesh` process the test started. */
export interface MeshProcess {
  readonly pid: number
  readonly exit: Promise<Exit>
  exited(): boolean
  stdout(): string
  stderr(): string
  /** SIGKILL by PID (if still running) and wait for the exit. */
  kill(): Promise<Exit>
}

/** Starts and kills the test's processes; the killer fixture owns them so none outlives the test. */
export interface Processes {
  spawn(args: readonly string[], env: Record<string, string | undefined>): MeshProcess
  /** Runs a command to its end (bounded by `timeoutMs`, then SIGKILL). */
  run(
    args: readonly string[],
    env: Record<string, string | undefined>,
    timeoutMs?: number,
  ): Promise<{ status: number | null; stdout: string; stderr: string }>
  /** Kills the process at the K-th matching file event or after `afterMs` (see fixtures/killer.mjs). */
  arm(trigger: ArmedTrigger): Promise<{ readonly fired: Promise<Fired> }>
  /** Cancels an armed trigger that has not fired. */
  disarm(pid: number): Promise<void>
  /** SIGKILLs everything still running and stops the killer. */
  close(): Promise<void>
}

/** What the killer waits for. */
export interface ArmedTrigger {
  readonly pid: number
  readonly dirs: readonly string[]
  /** File names to count (null: only the timer). */
  readonly pattern: RegExp | null
  readonly nth: number
  /** Count only events whose file exists at that moment (creations and renames onto the name). */
  readonly created: boolean
  readonly afterMs: number
}

/** What the killer did. */
export interface Fired {
  readonly file: string | null
  readonly cause: 'event' | 'timer' | 'disarmed'
  readonly seen: number
}

export function createProcesses(cli: string, lifetimeMs: number): Processes {
  const killer = spawn(process.execPath, [KILLER, String(lifetimeMs)], { stdio: ['pipe', 'pipe', 'inherit'] })
  const waiting = new Map<string, (message: Record<string, unknown>) => void>()
  createInterface({ input: killer.stdout! }).on('line', line => {
    const message = JSON.parse(line) as Record<string, unknown>
    const key = `${message.type === 'fired' || message.type === 'disarmed' ? 'end' : message.type}:${message.id}`
    const resolve = waiting.get(key)
    waiting.delete(key)
    resolve?.(message)
  })
  const tell = (message: object): void => void killer.stdin!.write(`${JSON.stringify(message)}\n`)
  const next = (key: string): Promise<Record<string, unknown>> =>
    new Promise(resolve => waiting.set(key, resolve))
  const live = new Set<MeshProcess>()
  const armedIds = new Map<number, number>() // pid → arm id
  let ids = 0

  const spawnOne = (args: readonly string[], env: Record<string, string | undefined>): MeshProcess => {
    const child: ChildProcess = spawn(process.execPath, [cli, ...args], {
      env,
      stdio: ['ignore', 'pipe', 'pipe'],
    })
    if (child.pid === undefined) throw new Error(`could not start mesh ${args.join(' ')}`)
    const pid = child.pid
    tell({ type: 'own', pid })
    let out = ''
    let err = ''
    child.stdout!.on('data', d => (out += d))
    child.stderr!.on('data', d => (err += d))
    let done = false
    const exit = new Promise<Exit>(resolve =>
      child.once('exit', (code, signal) => {
        done = true
        tell({ type: 'disown', pid })
        live.delete(proc)
        resolve({ code, signal })
      }),
    )
    const proc: MeshProcess = {
      pid,
      exit,
      exited: () => done,
      stdout: () => out,
      stderr: () => err,
      async kill() {
        if (!done) {
          try {
            process.kill(pid, 'SIGKILL')
          } catch {
            // exited between the check and the kill
          }
        }
        return exit
      },
    }
    live.add(proc)
    return proc
  }

  return {
    spawn: spawnOne,
    async run(args, env, timeoutMs = 30_000) {
      const proc = spawnOne(args, env)
      const timer = setTimeout(() => void proc.kill(), timeoutMs)
      const exit = await proc.exit
      clearTimeout(timer)
      return { status: exit.code, stdout: proc.stdout(), stderr: proc.stderr() }
    },
    async arm(trigger) {
      const id = ++ids
      armedIds.set(trigger.pid, id)
      const armed = next(`armed:${id}`)
      const ended = next(`end:${id}`)
      tell({
        type: 'arm',
        id,
        pid: trigger.pid,
        dirs: trigger.dirs,
        pattern: trigger.pattern?.source ?? null,
        nth: trigger.nth,
        created: trigger.created,
        afterMs: trigger.afterMs,
      })
      await armed
      const fired = ended.then(
        (message): Fired => ({
          file: (message.file as string | null | undefined) ?? null,
          cause: message.type === 'disarmed' ? 'disarmed' : (message.cause as 'event' | 'timer'),
          seen: (message.seen as number | undefined) ?? 0,
        }),
      )
      return { fired }
    },
    async disarm(pid) {
      const id = armedIds.get(pid)
      if (id === undefined) return
      armedIds.delete(pid)
      tell({ type: 'disarm', id })
    },
    async close() {
      await Promise.all([...live].map(p => p.kill()))
      killer.stdin!.end()
      await new Promise<void>(resolve => {
        if (killer.exitCode !== null) resolve()
        else killer.once('exit', () => resolve())
      })
    },
  }
}

/** One control-socket call to the agent of `home` (what the CLI commands do). */
export async function control<T>(
  home: string,
  method: string,
  params?: unknown,
  timeoutMs = 10_000,
): Promise<T> {
  const client = await connectControl(controlSocketPath(home), { connectTimeoutMs: 2_000 })
  try {
    return (await client.call(method, params, { timeoutMs })) as T
  } finally {
    client.close()
  }
}

/** What `status` answers (the fields the test reads). */
export interface Status {
  readonly name: string
  readonly peerId: string
  readonly addrs: string[]
  readonly certificateSerial: string
  readonly certificateExpiresAtMs: number
}

/** A running `mesh agent`. */
export interface AgentProcess extends MeshProcess {
  readonly home: string
  /** The status once it answered (addresses of this run). */
  readonly status: Status
}

/**
 * Starts `mesh agent` on `home` and waits (bounded) until its control socket answers `status` with
 * the addresses the node listens on.
 * @throws when it exits first or does not answer in time, with its output
 */
export async function startAgentProcess(
  processes: Processes,
  home: string,
  env: Record<string, string | undefined>,
  timeoutMs = 30_000,
): Promise<AgentProcess> {
  const proc = processes.spawn(['--home', home, 'agent'], env)
  const deadline = Date.now() + timeoutMs
  for (;;) {
    if (proc.exited()) {
      const exit = await proc.exit
      throw new Error(
        `mesh agent on ${home} exited (${exit.code ?? exit.signal}) before it answered: ${proc.stderr().slice(-2000)}`,
      )
    }
    try {
      // The control socket opens before the node listens: wait for its addresses too.
      const status = await control<Status>(home, 'status', undefined, 2_000)
      if (status.addrs.length > 0) return { ...proc, home, status }
    } catch {
      // not listening yet
    }
    if (Date.now() > deadline) {
      await proc.kill()
      throw new Error(
        `mesh agent on ${home} did not answer within ${timeoutMs} ms: ${proc.stderr().slice(-2000)}`,
      )
    }
    await sleep(50)
  }
}

export const sleep = (ms: number): Promise<void> => new Promise(r => setTimeout(r, ms))

/** Waits (bounded) until `check` returns a value; undefined when the time is up. */
export async function poll<T>(
  check: () => Promise<T | undefined>,
  timeoutMs: number,
): Promise<T | undefined> {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    const value = await check().catch(() => undefined)
    if (value !== undefined) return value
    if (Date.now() > deadline) return undefined
    await sleep(50)
  }
}

/** The temporary files of interrupted writes in `home` and its ca/ directory. */
export function tempFilesIn(home: string): string[] {
  const out: string[] = []
  for (const dir of [home, join(home, 'ca')]) {
    if (!existsSync(dir)) continue
    for (const name of readdirSync(dir)) if (isStateTempFileName(name)) out.push(join(dir, name))
  }
  return out
}

/** Every name in `home` and ca/ that is neither a known state file nor a recognised temporary file. */
export function strangeFilesIn(home: string): string[] {
  const known = new Set(
    Object.values(homePaths(home)).filter(path => path !== home && !path.endsWith('agent.sock')),
  )
  const out: string[] = []
  for (const dir of [home, join(home, 'ca')]) {
    if (!existsSync(dir)) continue
    for (const name of readdirSync(dir)) {
      const path = join(dir, name)
      if (known.has(path) || isStateTempFileName(name) || name === 'agent.sock' || name === 'network.key')
        continue
      out.push(path)
    }
  }
  return out
}

/** The CA state `home` holds on disk. */
export async function issuerStateOf(home: string): Promise<IssuerState> {
  return decodeIssuerState(await readFile(homePaths(home).issuerState))
}

/** How one ticket redemption ended. */
export type Redemption =
  | { readonly kind: 'issued'; readonly serial: string }
  | { readonly kind: 'refused'; readonly reason: string }
  | { readonly kind: 'unknown'; readonly detail: string }

/** Redeems `ticket` with `key` at `bootstrap` (this process, as `mesh join` does), bounded. */
export async function redeem(
  ticket: string,
  key: SigningKey,
  bootstrap: readonly string[],
  signal?: AbortSignal,
): Promise<Redemption> {
  try {
    const result = await requestCertificate({
      key,
      ticket,
      bootstrap,
      timeoutMs: 8_000,
      reachTimeoutMs: 4_000,
      attemptTimeoutMs: 4_000,
      pollIntervalMs: 200,
      ...(signal !== undefined ? { signal } : {}),
    })
    return { kind: 'issued', serial: result.certificate.certificate.serial }
  } catch (err) {
    if (err instanceof JoinError && (err.code === 'refused' || err.code === 'rejected'))
      return { kind: 'refused', reason: err.reason ?? err.code }
    return { kind: 'unknown', detail: err instanceof JoinError ? err.code : String(err) }
  }
}

/** Lines of an agent's stderr that are not pino JSON (a stack trace, a crash) or are fatal. */
export function crashLines(stderr: string): string[] {
  return stderr
    .split('\n')
    .filter(line => line.trim() !== '')
    .filter(line => {
      try {
        const entry = JSON.parse(line) as { level?: number }
        return (entry.level ?? 0) >= 60
      } catch {
        return true
      }
    })
}
