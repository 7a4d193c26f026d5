/**
 * The actions a node can run for `mesh exec`, and the runner that bounds them.
 *
 * Three kinds share one pipeline: built-ins (`uptime`, `ping`, `facts`), actions declared in the node's
 * config (an argv run without a shell) and custom in-process handlers registered by a program that embeds
 * the agent. Every run gets a concurrency slot (a bounded queue waits for one), a wall-clock limit that
 * counts from the call (queueing included, so the requester hears back in time) and a bounded output
 * buffer. A declared action runs in its own process group; when its time is up or its caller cancels, the
 * whole group gets SIGTERM and, after a grace period, SIGKILL, so grandchildren do not outlive it.
 * As in serf, slow runs are logged while they are still running, and every limit hit is counted.
 *
 * `run` never rejects: an unknown action, a binary that does not exist or a handler that throws become a
 * result with status `error`, an `errorCode` and a message in `output`.
 */
import { spawn } from 'node:child_process'
import { open } from 'node:fs/promises'
import * as os from 'node:os'
import { isAbsolute } from 'node:path'
import { performance } from 'node:perf_hooks'
import type { Facts } from './facts.js'

/** `ok`: ran and succeeded; `failed`: ran and failed (exit code, signal, timeout); `error`: could not run. */
export type ActionStatus = 'ok' | 'failed' | 'error'

/** Why a run has status `error`. A closed set. */
export type ActionErrorCode =
  | 'unknown-action'
  | 'bad-arguments'
  | 'spawn-failed'
  | 'busy'
  | 'queue-timeout'
  | 'aborted'
  | 'handler-threw'
  | 'closed'

/** The outcome of one run. Plain data; safe to encode into a reply. */
export interface ActionResult {
  readonly status: ActionStatus
  /** The process's (or handler's) exit code; null when it did not exit by itself. */
  readonly exitCode: number | null
  /** The signal that ended the process when mesh did not send it (e.g. `SIGSEGV`). */
  readonly signal?: string
  /** stdout and stderr interleaved as they arrived, at most `outputBytesMax` bytes of it, as UTF-8. */
  readonly output: string
  /** Bytes the action produced in total, kept or not. */
  readonly outputBytes: number
  /** True when `outputBytes` exceeded the limit and the tail was dropped. */
  readonly truncated: boolean
  /** True when the wall-clock limit ended the run. */
  readonly timedOut: boolean
  /** From the call to the result, queueing included. */
  readonly durationMs: number
  /** Machine-readable result of built-ins and custom handlers. */
  readonly structured?: unknown
  /** Set exactly when status is `error`. */
  readonly errorCode?: ActionErrorCode
}

/** An action declared in the node's config. Structurally compatible with the config's action table. */
export interface DeclaredActionSpec {
  /** Program and arguments, run without a shell; argv[0] is looked up in PATH when it has no slash. */
  readonly argv: readonly string[]
  readonly timeoutMs?: number
  readonly outputBytesMax?: number
  /** Added to (and overriding) the minimal base environment. */
  readonly env?: Readonly<Record<string, string>>
  /** Absolute working directory; default the agent's. */
  readonly cwd?: string
  /** When true, request arguments are appended to argv (still without a shell); otherwise refused. */
  readonly acceptsArgs?: boolean
  readonly description?: string
}

/** Who asked, as far as the gossip layer knows; passed through to custom handlers and the environment. */
export interface ActionRequestInfo {
  readonly id?: string
  readonly operator?: string
  readonly [key: string]: unknown
}

/** What a custom handler receives. */
export interface ActionContext {
  readonly name: string
  readonly args: readonly string[]
  /** Aborted when the caller cancels, the time limit passes or the registry closes. Handlers must honour it. */
  readonly signal: AbortSignal
  readonly request: ActionRequestInfo
}

/** What a custom handler returns; output beyond the limit is cut like a process's. */
export interface ActionHandlerResult {
  readonly exitCode: number
  readonly output: string | Uint8Array
  readonly structured?: unknown
}

/** An in-process action. Its promise may reject; that becomes an `error` result (`handler-threw`). */
export type ActionHandler = (context: ActionContext) => Promise<ActionHandlerResult>

/** Per-action options for {@link ActionRegistry.register}. */
export interface ActionHandlerOptions {
  readonly timeoutMs?: number
  readonly outputBytesMax?: number
  readonly description?: string
}

/** Options of one run. */
export interface ActionRunOptions {
  /** Cancels the run (queued or running); the result then has errorCode `aborted`. */
  readonly signal?: AbortSignal
  /** Shortens the action's own limit (e.g. to the request's remaining lifetime); never lengthens it. */
  readonly timeoutMs?: number
  readonly request?: ActionRequestInfo
}

/** One entry of {@link ActionRegistry.list}. */
export interface ActionDescription {
  readonly name: string
  readonly kind: 'builtin' | 'declared' | 'custom'
  readonly timeoutMs: number
  readonly outputBytesMax: number
  readonly description?: string
}

/** Named limits of the runner. */
export interface ActionLimits {
  /** Wall-clock limit of an action that does not set its own. */
  readonly timeoutMsDefault: number
  /** No action or run may ask for more. */
  readonly timeoutMsMax: number
  /** Output kept of an action that does not set its own. */
  readonly outputBytesMaxDefault: number
  /** Runs executing at once. */
  readonly concurrentRunsMax: number
  /** Runs waiting for a slot; beyond it a run is refused with `busy`. */
  readonly queuedRunsMax: number
  /** Between SIGTERM and SIGKILL to the process group, and after SIGKILL before giving up on the pipes. */
  readonly killGraceMs: number
  /** After the main process exits, how long to wait for descendants still holding its output pipes. */
  readonly exitDrainMs: number
  /** A run still going after this long is logged as slow (once). */
  readonly slowRunWarnMs: number
  /** Request arguments per run. */
  readonly argsMax: number
  /** Bytes of one request argument (UTF-8). */
  readonly argBytesMax: number
}

/** Defaults of {@link ActionLimits}. */
export const DEFAULT_ACTION_LIMITS: ActionLimits = {
  timeoutMsDefault: 60_000,
  timeoutMsMax: 3_600_000,
  outputBytesMaxDefault: 64 * 1024,
  concurrentRunsMax: 8,
  queuedRunsMax: 32,
  killGraceMs: 2_000,
  exitDrainMs: 500,
  slowRunWarnMs: 5_000,
  argsMax: 64,
  argBytesMax: 4_096,
}

/** Largest `outputBytesMax` an action may declare. */
export const ACTION_OUTPUT_BYTES_CEILING = 16 * 1024 * 1024
/** Most argv entries of a declared action. */
export const ACTION_ARGV_LENGTH_MAX = 256
/** The built-in action names. */
export const BUILTIN_ACTIONS = ['uptime', 'ping', 'facts'] as const
/** A built-in action name. */
export type BuiltinActionName = (typeof BUILTIN_ACTIONS)[number]

const ACTION_NAME = /^[a-z][\w.-]{0,63}$/
/** The environment variables passed through from the agent to declared actions; everything else is dropped. */
const BASE_ENV_KEYS = ['PATH', 'HOME', 'LANG', 'LC_ALL', 'LC_CTYPE', 'TZ', 'USER', 'LOGNAME', 'TMPDIR']

/** Counters of the runner; every limit hit is counted. Monotonic. */
export interface ActionCounters {
  runs: number
  ok: number
  failed: number
  errors: number
  busyRejections: number
  queueTimeouts: number
  timeouts: number
  truncations: number
  slowRuns: number
  aborts: number
}

/** Log callback: constant message, context object. */
export type ActionLog = (
  level: 'debug' | 'info' | 'warn',
  message: string,
  context: Record<string, unknown>,
) => void

/** What the built-ins read from the system; the real one is {@link systemActionSystem}. */
export interface ActionSystem {
  nowMs(): number
  uptimeSeconds(): number
  loadAverage(): readonly [number, number, number]
  /** Logged-in users; 0 when unknown. Never rejects. */
  countUsers(): Promise<number>
  /** Local wall-clock time of `nowMs`, for the `uptime` line. */
  localClock(nowMs: number): LocalClock
}

/** Hours, minutes and seconds of a local time. */
export interface LocalClock {
  readonly hours: number
  readonly minutes: number
  readonly seconds: number
}

/** What {@link createActionRegistry} needs. */
export interface ActionRegistryInit {
  /** The node's current facts, for the `facts` built-in. */
  readonly facts: () => Facts
  /** Declared actions by name (the config's `[actions.NAME]` tables). */
  readonly actions?: Readonly<Record<string, DeclaredActionSpec>>
  /** Which built-ins exist: all (default, `true`), none (`false`) or a list. */
  readonly builtins?: boolean | readonly BuiltinActionName[]
  readonly limits?: Partial<ActionLimits>
  readonly log?: ActionLog
  /** Default {@link systemActionSystem}. */
  readonly system?: ActionSystem
  /** Environment every declared action starts from; default a few variables of the agent's (PATH, HOME, LANG…). */
  readonly baseEnv?: Readonly<Record<string, string>>
}

/** The registry and runner. Owned by the agent; {@link close} it on stop. */
export interface ActionRegistry {
  has(name: string): boolean
  /** All actions, sorted by name. */
  list(): ActionDescription[]
  /**
   * Adds a custom in-process action.
   * @throws ActionRegistryError `invalid-name`, `duplicate-name` or `invalid-options` (programming errors)
   */
  register(name: string, handler: ActionHandler, options?: ActionHandlerOptions): void
  /** Runs an action. Never rejects. */
  run(name: string, args: readonly string[], options?: ActionRunOptions): Promise<ActionResult>
  /** A copy of the counters. */
  counters(): ActionCounters
  /** Runs executing and waiting now. */
  load(): { running: number; queued: number }
  /** Cancels queued and running actions, waits for them to finish; later runs get errorCode `closed`. Idempotent. */
  close(): Promise<void>
}

/** A misuse of the registry (bad config or registration). */
export class ActionRegistryError extends Error {
  override name = 'ActionRegistryError'
  readonly code: 'invalid-config' | 'invalid-name' | 'duplicate-name' | 'invalid-options'
  /** Every problem found, for configs: reported all at once. */
  readonly problems: readonly string[]
  constructor(code: ActionRegistryError['code'], problems: readonly string[]) {
    super(problems.join('; '))
    this.code = code
    this.problems = problems
  }
}

// ---------------------------------------------------------------------------------------------------
// The `uptime` built-in: pure parts

/** Size of one utmp record with glibc on x86_64 (and other 64-bit Linux ABIs with 32-bit time in utmp). */
export const UTMP_RECORD_BYTES = 384
/** `ut_type` of a logged-in user's session. */
const UTMP_USER_PROCESS = 7
/** Offset of `ut_user[32]` in a record. */
const UTMP_USER_OFFSET = 44
/** Most bytes of utmp read (about 2700 sessions). */
export const UTMP_BYTES_MAX = 1024 * 1024
/** Where glibc keeps the login records. */
export const UTMP_PATH = '/var/run/utmp'

/**
 * Counts logged-in users in a utmp image as `uptime` does: records of type USER_PROCESS with a non-empty
 * user name. A partial trailing record is ignored. Pure.
 */
export function countUtmpUsers(bytes: Uint8Array): number {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength)
  let users = 0
  for (let at = 0; at + UTMP_RECORD_BYTES <= bytes.byteLength; at += UTMP_RECORD_BYTES) {
    if (view.getInt16(at, true) === UTMP_USER_PROCESS && bytes[at + UTMP_USER_OFFSET] !== 0) users++
  }
  return users
}

/** Fields of the `uptime` built-in's structured result. */
export interface UptimeReport {
  readonly nowMs: number
  /** Local time of day, `HH:MM:SS`. */
  readonly time: string
  readonly uptimeSeconds: number
  readonly users: number
  readonly load1: number
  readonly load5: number
  readonly load15: number
}

/**
 * Formats the line printed by procps `uptime`, e.g.
 * ` 10:14:03 up 3 days,  4:02,  2 users,  load average: 0.15, 0.10, 0.05`. Pure.
 */
export function formatUptimeLine(report: Omit<UptimeReport, 'nowMs'>): string {
  const total = Math.max(0, Math.floor(report.uptimeSeconds))
  const days = Math.floor(total / 86_400)
  const hours = Math.floor(total / 3_600) % 24
  const minutes = Math.floor(total / 60) % 60
  let line = ` ${report.time} up `
  if (days > 0) line += `${days} day${days === 1 ? '' : 's'}, `
  line += hours > 0 ? `${String(hours).padStart(2)}:${pad2(minutes)}, ` : `${minutes} min, `
  line += `${String(report.users).padStart(2)} user${report.users === 1 ? '' : 's'}, `
  line += ` load average: ${report.load1.toFixed(2)}, ${report.load5.toFixed(2)}, ${report.load15.toFixed(2)}`
  return line
}

function pad2(n: number): string {
  return String(n).padStart(2, '0')
}

/** The system as the built-ins see it. */
export const systemActionSystem: ActionSystem = {
  nowMs: () => Date.now(),
  uptimeSeconds: () => os.uptime(),
  loadAverage: () => {
    const [a = 0, b = 0, c = 0] = os.loadavg()
    return [a, b, c]
  },
  countUsers: () => countUsersIn(UTMP_PATH),
  localClock: nowMs => {
    const date = new Date(nowMs)
    return { hours: date.getHours(), minutes: date.getMinutes(), seconds: date.getSeconds() }
  },
}

/** Counts users in the utmp file at `path`; 0 on other platforms or when unreadable. Never rejects. */
export async function countUsersIn(path: string): Promise<number> {
  // The record layout is glibc's; other systems use other formats.
  if (os.platform() !== 'linux') return 0
  try {
    const handle = await open(path, 'r')
    try {
      const buffer = new Uint8Array(UTMP_BYTES_MAX)
      let length = 0
      while (length < buffer.byteLength) {
        const { bytesRead } = await handle.read(buffer, length, buffer.byteLength - length, length)
        if (bytesRead === 0) break
        length += bytesRead
      }
      return countUtmpUsers(buffer.subarray(0, length))
    } finally {
      await handle.close()
    }
  } catch {
    return 0
  }
}

// ---------------------------------------------------------------------------------------------------
// Output bound

/** Keeps the first `bytesMax` bytes written to it and counts the rest. */
class OutputBuffer {
  private readonly chunks: Uint8Array[] = []
  private kept = 0
  private readonly bytesMax: number
  total = 0
  constructor(bytesMax: number) {
    this.bytesMax = bytesMax
  }

  push(chunk: Uint8Array): void {
    this.total += chunk.byteLength
    const room = this.bytesMax - this.kept
    if (room <= 0) return
    const part = chunk.byteLength <= room ? chunk : chunk.subarray(0, room)
    this.chunks.push(part)
    this.kept += part.byteLength
  }

  get truncated(): boolean {
    return this.total > this.bytesMax
  }

  text(): string {
    const bytes = Buffer.concat(this.chunks, this.kept)
    // A cut inside a multi-byte character would decode as U+FFFD; drop the partial character instead.
    const end = this.truncated ? completeUtf8Length(bytes) : bytes.byteLength
    return bytes.toString('utf8', 0, end)
  }
}

/** Length of `bytes` without a trailing incomplete UTF-8 sequence. */
function completeUtf8Length(bytes: Uint8Array): number {
  let start = bytes.byteLength - 1
  // Walk back over at most 3 continuation bytes to the lead byte.
  while (start >= 0 && bytes.byteLength - start <= 4 && (bytes[start]! & 0xc0) === 0x80) start--
  if (start < 0) return bytes.byteLength
  const lead = bytes[start]!
  const needed = lead >= 0xf0 ? 4 : lead >= 0xe0 ? 3 : lead >= 0xc0 ? 2 : 1
  return bytes.byteLength - start >= needed ? bytes.byteLength : start
}

// ---------------------------------------------------------------------------------------------------
// The registry

interface Entry {
  readonly name: string
  readonly kind: ActionDescription['kind']
  readonly timeoutMs: number
  readonly outputBytesMax: number
  readonly description?: string
  readonly acceptsArgs: boolean
  readonly declared?: DeclaredActionSpec
  readonly handler?: ActionHandler
}

interface Waiter {
  grant(): void
  cancel(): void
}

/**
 * Lists what is wrong with declared actions (bad name, empty argv, limits out of range, relative cwd,
 * a NUL byte, a clash with a built-in); empty when valid. Pure.
 */
export function declaredActionProblems(
  actions: Readonly<Record<string, DeclaredActionSpec>>,
  limits: Pick<ActionLimits, 'timeoutMsMax'> = DEFAULT_ACTION_LIMITS,
): string[] {
  const problems: string[] = []
  for (const [name, spec] of Object.entries(actions)) {
    const at = `action '${name}'`
    if (!ACTION_NAME.test(name))
      problems.push(`${at}: names are a lower-case letter then up to 63 of [a-z0-9_.-]`)
    if ((BUILTIN_ACTIONS as readonly string[]).includes(name))
      problems.push(`${at}: a built-in has this name`)
    if (!Array.isArray(spec.argv) || spec.argv.length === 0 || spec.argv[0] === '') {
      problems.push(`${at}: argv needs a program`)
    } else if (spec.argv.length > ACTION_ARGV_LENGTH_MAX) {
      problems.push(`${at}: argv has more than ${ACTION_ARGV_LENGTH_MAX} entries`)
    } else if (spec.argv.some(arg => typeof arg !== 'string' || arg.includes('\0'))) {
      problems.push(`${at}: argv entries must be strings without NUL bytes`)
    }
    if (spec.timeoutMs !== undefined && !isPositiveInteger(spec.timeoutMs, limits.timeoutMsMax)) {
      problems.push(`${at}: timeout must be between 1ms and ${limits.timeoutMsMax}ms`)
    }
    if (
      spec.outputBytesMax !== undefined &&
      !isPositiveInteger(spec.outputBytesMax, ACTION_OUTPUT_BYTES_CEILING)
    ) {
      problems.push(`${at}: outputBytesMax must be between 1 and ${ACTION_OUTPUT_BYTES_CEILING}`)
    }
    if (spec.cwd !== undefined && !isAbsolute(spec.cwd)) problems.push(`${at}: cwd must be an absolute path`)
    for (const [key, value] of Object.entries(spec.env ?? {})) {
      if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(key) || typeof value !== 'string' || value.includes('\0')) {
        problems.push(`${at}: env '${key}' is not a valid variable`)
      }
    }
  }
  return problems
}

function isPositiveInteger(value: number, max: number): boolean {
  return Number.isSafeInteger(value) && value >= 1 && value <= max
}

/**
 * Creates the registry with the built-ins and the declared actions.
 * @throws ActionRegistryError `invalid-config` with every problem of the declared actions or limits
 */
export function createActionRegistry(init: ActionRegistryInit): ActionRegistry {
  const limits: ActionLimits = { ...DEFAULT_ACTION_LIMITS, ...init.limits }
  const limitProblems = Object.entries(limits)
    .filter(([, value]) => !Number.isSafeInteger(value) || value < 0)
    .map(([key]) => `limit ${key} must be a non-negative integer`)
  if (limits.concurrentRunsMax < 1) limitProblems.push('limit concurrentRunsMax must be at least 1')
  const problems = [...limitProblems, ...declaredActionProblems(init.actions ?? {}, limits)]
  if (problems.length > 0) throw new ActionRegistryError('invalid-config', problems)

  const system = init.system ?? systemActionSystem
  const log: ActionLog = init.log ?? (() => undefined)
  const baseEnv = init.baseEnv ?? pickBaseEnv(process.env)
  const entries = new Map<string, Entry>()
  const counters: ActionCounters = {
    runs: 0,
    ok: 0,
    failed: 0,
    errors: 0,
    busyRejections: 0,
    queueTimeouts: 0,
    timeouts: 0,
    truncations: 0,
    slowRuns: 0,
    aborts: 0,
  }
  let running = 0
  const queue: Waiter[] = []
  const inFlight = new Set<Promise<ActionResult>>()
  const closing = new AbortController()

  const builtins = init.builtins ?? true
  const enabled = builtins === true ? BUILTIN_ACTIONS : builtins === false ? [] : builtins
  const builtinHandlers: Record<BuiltinActionName, { handler: ActionHandler; description: string }> = {
    uptime: { handler: () => uptimeHandler(system), description: 'time, uptime, users and load averages' },
    ping: {
      handler: async () => {
        const nowMs = system.nowMs()
        return { exitCode: 0, output: `pong ${new Date(nowMs).toISOString()}\n`, structured: { nowMs } }
      },
      description: 'answers pong with the node time',
    },
    facts: {
      handler: async () => {
        const facts = sortedFacts(init.facts())
        return { exitCode: 0, output: `${JSON.stringify(facts, null, 2)}\n`, structured: facts }
      },
      description: "the node's facts as JSON",
    },
  }
  for (const name of enabled) {
    const builtin = builtinHandlers[name]
    entries.set(name, {
      name,
      kind: 'builtin',
      timeoutMs: Math.min(10_000, limits.timeoutMsMax),
      outputBytesMax: limits.outputBytesMaxDefault,
      description: builtin.description,
      acceptsArgs: false,
      handler: builtin.handler,
    })
  }
  for (const [name, spec] of Object.entries(init.actions ?? {})) {
    entries.set(name, {
      name,
      kind: 'declared',
      timeoutMs: spec.timeoutMs ?? Math.min(limits.timeoutMsDefault, limits.timeoutMsMax),
      outputBytesMax: spec.outputBytesMax ?? limits.outputBytesMaxDefault,
      ...(spec.description === undefined ? {} : { description: spec.description }),
      acceptsArgs: spec.acceptsArgs === true,
      declared: spec,
    })
  }

  /** Waits at most `waitMs` for a run slot; a free slot is taken at once. */
  function acquire(signal: AbortSignal, waitMs: number): Promise<'granted' | 'busy' | 'aborted' | 'timeout'> {
    if (signal.aborted) return Promise.resolve('aborted')
    if (running < limits.concurrentRunsMax) {
      running++
      return Promise.resolve('granted')
    }
    if (queue.length >= limits.queuedRunsMax) return Promise.resolve('busy')
    return new Promise(resolve => {
      let done = false
      const finish = (outcome: 'granted' | 'aborted' | 'timeout') => {
        if (done) return
        done = true
        clearTimeout(timer)
        signal.removeEventListener('abort', onAbort)
        const index = queue.indexOf(waiter)
        if (index >= 0) queue.splice(index, 1)
        resolve(outcome)
      }
      const waiter: Waiter = { grant: () => finish('granted'), cancel: () => finish('aborted') }
      const onAbort = () => finish('aborted')
      const timer = setTimeout(() => finish('timeout'), waitMs)
      signal.addEventListener('abort', onAbort, { once: true })
      queue.push(waiter)
    })
  }

  function release(): void {
    const next = queue.shift()
    // The slot passes straight to the next waiter, so `running` stays the same.
    if (next !== undefined) next.grant()
    else running--
  }

  async function execute(
    entry: Entry,
    args: readonly string[],
    options: ActionRunOptions,
  ): Promise<ActionResult> {
    const startedMs = performance.now()
    const elapsed = () => Math.round(performance.now() - startedMs)
    const fail = (errorCode: ActionErrorCode, message: string): ActionResult => ({
      status: 'error',
      exitCode: null,
      output: message,
      outputBytes: 0,
      truncated: false,
      timedOut: errorCode === 'queue-timeout',
      durationMs: elapsed(),
      errorCode,
    })
    const argsProblem = checkArgs(entry, args, limits)
    if (argsProblem !== undefined) return fail('bad-arguments', argsProblem)

    const requested = options.timeoutMs ?? Number.POSITIVE_INFINITY
    const timeoutMs = Math.max(1, Math.floor(Math.min(entry.timeoutMs, requested, limits.timeoutMsMax)))
    const signal = anySignal([closing.signal, options.signal])
    const slot = await acquire(signal.signal, timeoutMs)
    if (slot !== 'granted') {
      signal.dispose()
      if (slot === 'busy') {
        counters.busyRejections++
        return fail(
          'busy',
          `too many actions: ${limits.concurrentRunsMax} running and ${limits.queuedRunsMax} waiting; try again later`,
        )
      }
      if (slot === 'timeout') {
        counters.queueTimeouts++
        return fail('queue-timeout', `no free slot to run '${entry.name}' within ${timeoutMs}ms`)
      }
      return abortedResult(fail)
    }

    counters.runs++
    const remainingMs = Math.max(1, timeoutMs - elapsed())
    const slow = setTimeout(() => {
      counters.slowRuns++
      log('warn', 'action is slow', { action: entry.name, elapsedMs: elapsed(), timeoutMs })
    }, limits.slowRunWarnMs)
    try {
      const outcome =
        entry.declared !== undefined
          ? await runProcess({
              argv: [...entry.declared.argv, ...args],
              env: {
                ...baseEnv,
                MESH_ACTION: entry.name,
                ...requestEnv(options.request),
                ...entry.declared.env,
              },
              ...(entry.declared.cwd === undefined ? {} : { cwd: entry.declared.cwd }),
              timeoutMs: remainingMs,
              outputBytesMax: entry.outputBytesMax,
              killGraceMs: limits.killGraceMs,
              exitDrainMs: limits.exitDrainMs,
              signal: signal.signal,
            })
          : await runHandler(entry, args, options.request ?? {}, remainingMs, signal.signal)
      if (outcome.kind === 'spawn-failed') {
        return fail(
          'spawn-failed',
          `cannot start '${entry.name}' (${entry.declared?.argv[0]}): ${outcome.message}`,
        )
      }
      if (outcome.kind === 'threw')
        return fail('handler-threw', `action '${entry.name}' failed: ${outcome.message}`)
      if (outcome.aborted && !outcome.timedOut) return abortedResult(fail)
      if (outcome.truncated) counters.truncations++
      if (outcome.timedOut) counters.timeouts++
      const ok = !outcome.timedOut && outcome.exitCode === 0
      return {
        status: ok ? 'ok' : 'failed',
        exitCode: outcome.exitCode,
        ...(outcome.signal === undefined ? {} : { signal: outcome.signal }),
        output: outcome.output,
        outputBytes: outcome.outputBytes,
        truncated: outcome.truncated,
        timedOut: outcome.timedOut,
        durationMs: elapsed(),
        ...(outcome.structured === undefined ? {} : { structured: outcome.structured }),
      }
    } finally {
      clearTimeout(slow)
      signal.dispose()
      release()
    }
  }

  function abortedResult(fail: (code: ActionErrorCode, message: string) => ActionResult): ActionResult {
    counters.aborts++
    return closing.signal.aborted
      ? fail('closed', 'the agent is stopping')
      : fail('aborted', 'cancelled by the caller')
  }

  async function runHandler(
    entry: Entry,
    args: readonly string[],
    request: ActionRequestInfo,
    timeoutMs: number,
    outer: AbortSignal,
  ): Promise<RunOutcome> {
    const controller = new AbortController()
    let timedOut = false
    const stop = new Promise<'stopped'>(resolve => {
      const onStop = () => resolve('stopped')
      controller.signal.addEventListener('abort', onStop, { once: true })
    })
    const onOuterAbort = () => controller.abort(outer.reason)
    outer.addEventListener('abort', onOuterAbort, { once: true })
    const timer = setTimeout(() => {
      timedOut = true
      controller.abort(new Error(`time limit of ${timeoutMs}ms reached`))
    }, timeoutMs)
    try {
      const context: ActionContext = { name: entry.name, args: [...args], signal: controller.signal, request }
      const settled = await Promise.race([
        // Through a promise chain so a handler that throws synchronously is caught like a rejection.
        Promise.resolve()
          .then(() => entry.handler!(context))
          .then(
            value => ({ value }),
            (error: unknown) => ({ error }),
          ),
        stop,
      ])
      if (settled === 'stopped') {
        return timedOut
          ? { ...emptyOutcome(), timedOut: true, exitCode: null }
          : { ...emptyOutcome(), aborted: true, exitCode: null }
      }
      if ('error' in settled) {
        return {
          kind: 'threw',
          message: settled.error instanceof Error ? settled.error.message : String(settled.error),
        }
      }
      const result = settled.value
      const buffer = new OutputBuffer(entry.outputBytesMax)
      buffer.push(typeof result.output === 'string' ? Buffer.from(result.output, 'utf8') : result.output)
      return {
        kind: 'completed',
        exitCode: Number.isSafeInteger(result.exitCode) ? result.exitCode : 1,
        output: buffer.text(),
        outputBytes: buffer.total,
        truncated: buffer.truncated,
        timedOut: false,
        aborted: false,
        ...(result.structured === undefined ? {} : { structured: result.structured }),
      }
    } finally {
      clearTimeout(timer)
      outer.removeEventListener('abort', onOuterAbort)
      // Tell a handler still running (it lost the race) to stop.
      if (!controller.signal.aborted) controller.abort(new Error('run finished'))
    }
  }

  const registry: ActionRegistry = {
    has: name => entries.has(name),
    list: () =>
      [...entries.values()]
        .map(e => ({
          name: e.name,
          kind: e.kind,
          timeoutMs: e.timeoutMs,
          outputBytesMax: e.outputBytesMax,
          ...(e.description === undefined ? {} : { description: e.description }),
        }))
        .sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0)),
    register(name, handler, options = {}) {
      if (!ACTION_NAME.test(name)) {
        throw new ActionRegistryError('invalid-name', [`'${name}' is not a valid action name`])
      }
      if (entries.has(name))
        throw new ActionRegistryError('duplicate-name', [`action '${name}' already exists`])
      const timeoutMs = options.timeoutMs ?? Math.min(limits.timeoutMsDefault, limits.timeoutMsMax)
      const outputBytesMax = options.outputBytesMax ?? limits.outputBytesMaxDefault
      if (!isPositiveInteger(timeoutMs, limits.timeoutMsMax)) {
        throw new ActionRegistryError('invalid-options', [
          `timeoutMs must be between 1 and ${limits.timeoutMsMax}`,
        ])
      }
      if (!isPositiveInteger(outputBytesMax, ACTION_OUTPUT_BYTES_CEILING)) {
        throw new ActionRegistryError('invalid-options', [
          `outputBytesMax must be between 1 and ${ACTION_OUTPUT_BYTES_CEILING}`,
        ])
      }
      entries.set(name, {
        name,
        kind: 'custom',
        timeoutMs,
        outputBytesMax,
        ...(options.description === undefined ? {} : { description: options.description }),
        acceptsArgs: true,
        handler,
      })
    },
    async run(name, args, options = {}) {
      const entry = entries.get(name)
      if (entry === undefined || closing.signal.aborted) {
        counters.errors++
        const known = [...entries.keys()].sort().join(', ')
        return {
          status: 'error',
          exitCode: null,
          output: closing.signal.aborted
            ? 'the agent is stopping'
            : `unknown action '${name}'; this node has: ${known === '' ? 'none' : known}`,
          outputBytes: 0,
          truncated: false,
          timedOut: false,
          durationMs: 0,
          errorCode: closing.signal.aborted ? 'closed' : 'unknown-action',
        }
      }
      const run = execute(entry, args, options).catch(
        (err: unknown): ActionResult => ({
          // A bug in the runner itself; still a result, never a rejection.
          status: 'error',
          exitCode: null,
          output: `internal error running '${name}': ${(err as Error)?.message ?? String(err)}`,
          outputBytes: 0,
          truncated: false,
          timedOut: false,
          durationMs: 0,
          errorCode: 'handler-threw',
        }),
      )
      inFlight.add(run)
      try {
        const result = await run
        if (result.status === 'ok') counters.ok++
        else if (result.status === 'failed') counters.failed++
        else counters.errors++
        log('debug', 'action finished', {
          action: name,
          status: result.status,
          durationMs: result.durationMs,
          requestId: options.request?.id,
        })
        return result
      } finally {
        inFlight.delete(run)
      }
    },
    counters: () => ({ ...counters }),
    load: () => ({ running, queued: queue.length }),
    async close() {
      closing.abort(new Error('registry closed'))
      for (const waiter of [...queue]) waiter.cancel()
      await Promise.all([...inFlight])
    },
  }
  return registry
}

async function uptimeHandler(system: ActionSystem): Promise<ActionHandlerResult> {
  const nowMs = system.nowMs()
  const clock = system.localClock(nowMs)
  const [load1, load5, load15] = system.loadAverage()
  const report: UptimeReport = {
    nowMs,
    time: `${pad2(clock.hours)}:${pad2(clock.minutes)}:${pad2(clock.seconds)}`,
    uptimeSeconds: Math.floor(system.uptimeSeconds()),
    users: await system.countUsers(),
    load1,
    load5,
    load15,
  }
  return { exitCode: 0, output: `${formatUptimeLine(report)}\n`, structured: report }
}

function sortedFacts(facts: Facts): Record<string, string> {
  const out: Record<string, string> = {}
  for (const key of Object.keys(facts).sort()) out[key] = facts[key]!
  return out
}

function checkArgs(entry: Entry, args: readonly string[], limits: ActionLimits): string | undefined {
  if (args.length === 0) return undefined
  if (!entry.acceptsArgs) return `action '${entry.name}' takes no arguments`
  if (args.length > limits.argsMax)
    return `${args.length} arguments, more than the limit of ${limits.argsMax}`
  for (const arg of args) {
    if (typeof arg !== 'string' || arg.includes('\0')) return 'arguments must be text without NUL bytes'
    if (Buffer.byteLength(arg, 'utf8') > limits.argBytesMax) {
      return `an argument is longer than ${limits.argBytesMax} bytes`
    }
  }
  return undefined
}

function pickBaseEnv(env: NodeJS.ProcessEnv): Record<string, string> {
  const out: Record<string, string> = {}
  for (const key of BASE_ENV_KEYS) {
    const value = env[key]
    if (value !== undefined) out[key] = value
  }
  return out
}

function requestEnv(request: ActionRequestInfo | undefined): Record<string, string> {
  const out: Record<string, string> = {}
  if (typeof request?.id === 'string') out.MESH_REQUEST_ID = request.id
  if (typeof request?.operator === 'string') out.MESH_OPERATOR = request.operator
  return out
}

/** One signal aborted by any of `signals`; `dispose` detaches it so long-lived signals do not leak listeners. */
function anySignal(signals: readonly (AbortSignal | undefined)[]): { signal: AbortSignal; dispose(): void } {
  const controller = new AbortController()
  const attached: AbortSignal[] = []
  const onAbort = () => controller.abort()
  for (const signal of signals) {
    if (signal === undefined) continue
    if (signal.aborted) {
      controller.abort()
      break
    }
    signal.addEventListener('abort', onAbort, { once: true })
    attached.push(signal)
  }
  return {
    signal: controller.signal,
    dispose: () => {
      for (const signal of attached) signal.removeEventListener('abort', onAbort)
    },
  }
}

// ---------------------------------------------------------------------------------------------------
// Processes

type RunOutcome =
  | {
      readonly kind: 'completed'
      readonly exitCode: number | null
      readonly signal?: string
      readonly output: string
      readonly outputBytes: number
      readonly truncated: boolean
      readonly timedOut: boolean
      readonly aborted: boolean
      readonly structured?: unknown
    }
  | { readonly kind: 'spawn-failed'; readonly message: string }
  | { readonly kind: 'threw'; readonly message: string }

function emptyOutcome(): Extract<RunOutcome, { kind: 'completed' }> {
  return {
    kind: 'completed',
    exitCode: null,
    output: '',
    outputBytes: 0,
    truncated: false,
    timedOut: false,
    aborted: false,
  }
}

interface ProcessSpec {
  readonly argv: readonly string[]
  readonly env: Record<string, string>
  readonly cwd?: string
  readonly timeoutMs: number
  readonly outputBytesMax: number
  readonly killGraceMs: number
  readonly exitDrainMs: number
  readonly signal: AbortSignal
}

/**
 * Runs argv in its own process group with stdin closed, capturing stdout and stderr into one bounded
 * buffer. Resolves when the output pipes close, or `exitDrainMs` after the main process exits when
 * descendants keep them open, or `killGraceMs` after SIGKILL when something escaped the group.
 */
function runProcess(spec: ProcessSpec): Promise<RunOutcome> {
  return new Promise(resolve => {
    const output = new OutputBuffer(spec.outputBytesMax)
    let child: ReturnType<typeof spawn>
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
    let settled = false
    let timedOut = false
    let aborted = false
    let terminating = false
    let exit: { code: number | null; signal: NodeJS.Signals | null } | undefined
    const timers: NodeJS.Timeout[] = []
    const later = (ms: number, fn: () => void) => timers.push(setTimeout(fn, ms))

    const killGroup = (signal: NodeJS.Signals) => {
      if (child.pid === undefined) return
      try {
        process.kill(-child.pid, signal)
      } catch {
        // ESRCH: the group is already gone
      }
    }
    const terminate = () => {
      if (terminating) return
      terminating = true
      killGroup('SIGTERM')
      later(spec.killGraceMs, () => {
        killGroup('SIGKILL')
        later(spec.killGraceMs, finish)
      })
    }
    const onAbort = () => {
      aborted = true
      terminate()
    }
    function finish(): void {
      if (settled) return
      settled = true
      for (const timer of timers) clearTimeout(timer)
      spec.signal.removeEventListener('abort', onAbort)
      // Whatever of the group survived SIGTERM (or ignored it) goes now.
      if (terminating) killGroup('SIGKILL')
      child.stdout?.destroy()
      child.stderr?.destroy()
      const signalName = exit?.signal ?? undefined
      resolve({
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
      settled = true
      for (const timer of timers) clearTimeout(timer)
      spec.signal.removeEventListener('abort', onAbort)
      resolve({ kind: 'spawn-failed', message: err.message })
    })
    child.stdout?.on('data', (chunk: Buffer) => output.push(chunk))
    child.stderr?.on('data', (chunk: Buffer) => output.push(chunk))
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
  })
}
