/**
 * The process-group runner of declared actions. A run is an argv spawned without a shell, in its own
 * process group, with stdin closed and stdout and stderr captured into one bounded buffer. When its time
 * is up or its caller cancels, the whole group gets SIGTERM and, after a grace period, SIGKILL, so
 * grandchildren do not outlive it. Timers come from a {@link Clock}.
 */
import { type ChildProcess, spawn } from 'node:child_process'
import type { OutputStream } from '../../gossip/reply.js'
import type { Clock, Timer } from '../clock.js'
import { OutputBuffer } from './output-buffer.js'
import type { ActionRequestInfo, ActionRunOptions, RunOutcome } from './types.js'

/** The environment variables passed through from the agent to declared actions; everything else is dropped. */
const BASE_ENV_KEYS = ['PATH', 'HOME', 'LANG', 'LC_ALL', 'LC_CTYPE', 'TZ', 'USER', 'LOGNAME', 'TMPDIR']

/** The variables of `env` that declared actions inherit (PATH, HOME, LANG…). */
export function pickBaseEnv(env: NodeJS.ProcessEnv): Record<string, string> {
  const out: Record<string, string> = {}
  for (const key of BASE_ENV_KEYS) {
    const value = env[key]
    if (value !== undefined) out[key] = value
  }
  return out
}

/** A declared action's environment: the base, then MESH_ACTION and the request's, then its own. */
export function actionEnv(
  baseEnv: Readonly<Record<string, string>>,
  name: string,
  request: ActionRequestInfo | undefined,
  own: Readonly<Record<string, string>> | undefined,
): Record<string, string> {
  const fromRequest: Record<string, string> = {}
  if (typeof request?.id === 'string') fromRequest.MESH_REQUEST_ID = request.id
  if (typeof request?.operator === 'string') fromRequest.MESH_OPERATOR = request.operator
  return { ...baseEnv, MESH_ACTION: name, ...fromRequest, ...own }
}

/** One process run. */
export interface ProcessSpec {
  readonly argv: readonly string[]
  readonly env: Record<string, string>
  readonly cwd?: string
  readonly timeoutMs: number
  readonly outputBytesMax: number
  readonly killGraceMs: number
  readonly exitDrainMs: number
  readonly signal: AbortSignal
  readonly clock: Clock
  /** Gets each piece of output the buffer keeps, as it arrives (live output). */
  readonly onOutput?: ActionRunOptions['onOutput']
}

/** `onOutput` guarded: nothing for empty pieces, and a callback that throws cannot break the run. */
export function liveOutputSink(
  onOutput: ActionRunOptions['onOutput'],
): (stream: OutputStream, kept: Uint8Array) => void {
  return (stream, kept) => {
    if (onOutput === undefined || kept.byteLength === 0) return
    try {
      onOutput(stream, kept)
    } catch {
      // The caller's bug; the run and its bounded output go on.
    }
  }
}

/** Signals every process of the group led by `child`; a group already gone is fine. */
function killGroup(child: ChildProcess, signal: NodeJS.Signals): void {
  if (child.pid === undefined) return
  try {
    process.kill(-child.pid, signal)
  } catch {
    // ESRCH: the group is already gone
  }
}

/**
 * Runs argv in its own process group with stdin closed, capturing stdout and stderr into one bounded
 * buffer. Resolves when the output pipes close, or `exitDrainMs` after the main process exits when
 * descendants keep them open, or `killGraceMs` after SIGKILL when something escaped the group.
 */
export function runProcess(spec: ProcessSpec): Promise<RunOutcome> {
  return new Promise(resolve => {
    let child: ChildProcess
    try {
      child = spawn(spec.argv[0]!, spec.argv.slice(1), {
        shell: false,
        detached: true,
        stdio: ['ignore', 'pipe', 'pipe'],
        env: spec.env,
        ...(spec.cwd === undefined ? {} : { cwd: spec.cwd }),
        windowsHide: true,
      })
    } catch (err) {
      resolve({ kind: 'spawn-failed', message: (err as Error).message })
      return
    }
    superviseChild(child, spec, resolve)
  })
}

/** Watches a spawned child until it ends (or is given up on) and resolves its outcome once. */
function superviseChild(
  child: ChildProcess,
  spec: ProcessSpec,
  resolve: (outcome: RunOutcome) => void,
): void {
  const output = new OutputBuffer(spec.outputBytesMax)
  let settled = false
  let timedOut = false
  let aborted = false
  let terminating = false
  let exit: { code: number | null; signal: NodeJS.Signals | null } | undefined
  const timers: Timer[] = []
  // Ref'd: a caller awaits the run, so its timers keep the process alive.
  const later = (ms: number, fn: () => void) => timers.push(spec.clock.setTimer(fn, ms, { keepAlive: true }))

  const terminate = () => {
    if (terminating) return
    terminating = true
    killGroup(child, 'SIGTERM')
    later(spec.killGraceMs, () => {
      killGroup(child, 'SIGKILL')
      later(spec.killGraceMs, finish)
    })
  }
  const onAbort = () => {
    aborted = true
    terminate()
  }
  const settle = (outcome: RunOutcome) => {
    settled = true
    for (const timer of timers) timer.cancel()
    spec.signal.removeEventListener('abort', onAbort)
    resolve(outcome)
  }
  function finish(): void {
    if (settled) return
    settled = true
    // Whatever of the group survived SIGTERM (or ignored it) goes now.
    if (terminating) killGroup(child, 'SIGKILL')
    child.stdout?.destroy()
    child.stderr?.destroy()
    const signalName = exit?.signal ?? undefined
    settle({
      kind: 'completed',
      exitCode: exit?.code ?? null,
      // A signal we sent is reported as timedOut/aborted, not as the action's own failure.
      ...(signalName === undefined || terminating ? {} : { signal: signalName }),
      output: output.text(),
      outputBytes: output.total,
      truncated: output.truncated,
      timedOut,
      aborted,
    })
  }

  child.on('error', err => {
    // Without a pid the process never started (ENOENT, EACCES); later errors (kill) are ignored.
    if (child.pid !== undefined || settled) return
    settle({ kind: 'spawn-failed', message: err.message })
  })
  const live = liveOutputSink(spec.onOutput)
  child.stdout?.on('data', (chunk: Buffer) => {
    if (!settled) live('stdout', output.push(chunk))
  })
  child.stderr?.on('data', (chunk: Buffer) => {
    if (!settled) live('stderr', output.push(chunk))
  })
  child.on('exit', (code, signal) => {
    exit = { code, signal }
    later(spec.exitDrainMs, finish)
  })
  child.on('close', (code, signal) => {
    exit ??= { code, signal }
    finish()
  })
  later(spec.timeoutMs, () => {
    timedOut = true
    terminate()
  })
  spec.signal.addEventListener('abort', onAbort, { once: true })
  if (spec.signal.aborted) onAbort()
}
