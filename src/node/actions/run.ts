/**
 * One run of an action, from the call to its result: argument checks, a slot, the time limit (counted
 * from the call, queueing included), the slow-run warning, the process or handler runner, and the
 * mapping of how it ended to an {@link ActionResult}, counting every limit hit on the way.
 */
import type { Clock } from '../clock.js'
import { runHandler } from './handler.js'
import { actionEnv, runProcess } from './process.js'
import type { SlotQueue } from './slots.js'
import type {
  ActionCounters,
  ActionDescription,
  ActionErrorCode,
  ActionHandler,
  ActionLimits,
  ActionLog,
  ActionResult,
  ActionRunOptions,
  DeclaredActionSpec,
  RunOutcome,
} from './types.js'

/** An action as the registry holds it: a declared spec or an in-process handler, with its limits. */
export interface Entry {
  readonly name: string
  readonly kind: ActionDescription['kind']
  readonly timeoutMs: number
  readonly outputBytesMax: number
  readonly description?: string
  readonly acceptsArgs: boolean
  readonly declared?: DeclaredActionSpec
  readonly handler?: ActionHandler
}

/** What a run uses of its registry. */
export interface RunEnvironment {
  readonly limits: ActionLimits
  readonly clock: Clock
  readonly counters: ActionCounters
  readonly log: ActionLog
  readonly baseEnv: Readonly<Record<string, string>>
  readonly slots: SlotQueue
  /** Aborted when the registry closes. */
  readonly closing: AbortSignal
}

type Fail = (errorCode: ActionErrorCode, message: string) => ActionResult

/** Runs `entry` once. Rejects only on a bug in the runner itself. */
export async function executeRun(
  env: RunEnvironment,
  entry: Entry,
  args: readonly string[],
  options: ActionRunOptions,
): Promise<ActionResult> {
  const { clock, counters, limits } = env
  const startedMs = clock.monotonicMs()
  const elapsed = () => Math.round(clock.monotonicMs() - startedMs)
  const fail: Fail = (errorCode, message) => ({
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
  // One combined signal per run: the listeners below are all on it and removed when the run ends.
  const signal = AbortSignal.any(options.signal === undefined ? [env.closing] : [env.closing, options.signal])
  const slot = await env.slots.acquire(signal, timeoutMs)
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
  if (slot === 'aborted') return abortedResult(env, fail)

  counters.runs++
  const slow = clock.setTimer(
    () => {
      counters.slowRuns++
      env.log('warn', 'action is slow', { action: entry.name, elapsedMs: elapsed(), timeoutMs })
    },
    limits.slowRunWarnMs,
    { keepAlive: true },
  )
  try {
    const outcome = await start(env, entry, args, options, Math.max(1, timeoutMs - elapsed()), signal)
    return toResult(env, entry, outcome, fail, elapsed())
  } finally {
    slow.cancel()
    env.slots.release()
  }
}

/** Starts the process or handler of `entry` with `remainingMs` of its limit left. */
function start(
  env: RunEnvironment,
  entry: Entry,
  args: readonly string[],
  options: ActionRunOptions,
  remainingMs: number,
  signal: AbortSignal,
): Promise<RunOutcome> {
  const { declared } = entry
  if (declared !== undefined) {
    return runProcess({
      argv: [...declared.argv, ...args],
      env: actionEnv(env.baseEnv, entry.name, options.request, declared.env),
      ...(declared.cwd === undefined ? {} : { cwd: declared.cwd }),
      timeoutMs: remainingMs,
      outputBytesMax: entry.outputBytesMax,
      killGraceMs: env.limits.killGraceMs,
      exitDrainMs: env.limits.exitDrainMs,
      signal,
      clock: env.clock,
      ...(options.onOutput === undefined ? {} : { onOutput: options.onOutput }),
    })
  }
  return runHandler({
    name: entry.name,
    handler: entry.handler!,
    args,
    request: options.request ?? {},
    timeoutMs: remainingMs,
    outputBytesMax: entry.outputBytesMax,
    signal,
    clock: env.clock,
    ...(options.onOutput === undefined ? {} : { onOutput: options.onOutput }),
  })
}

function toResult(
  env: RunEnvironment,
  entry: Entry,
  outcome: RunOutcome,
  fail: Fail,
  durationMs: number,
): ActionResult {
  if (outcome.kind === 'spawn-failed') {
    return fail(
      'spawn-failed',
      `cannot start '${entry.name}' (${entry.declared?.argv[0]}): ${outcome.message}`,
    )
  }
  if (outcome.kind === 'threw')
    return fail('handler-threw', `action '${entry.name}' failed: ${outcome.message}`)
  if (outcome.aborted && !outcome.timedOut) return abortedResult(env, fail)
  if (outcome.truncated) env.counters.truncations++
  if (outcome.timedOut) env.counters.timeouts++
  const ok = !outcome.timedOut && outcome.exitCode === 0
  return {
    status: ok ? 'ok' : 'failed',
    exitCode: outcome.exitCode,
    ...(outcome.signal === undefined ? {} : { signal: outcome.signal }),
    output: outcome.output,
    outputBytes: outcome.outputBytes,
    truncated: outcome.truncated,
    timedOut: outcome.timedOut,
    durationMs,
    ...(outcome.structured === undefined ? {} : { structured: outcome.structured }),
  }
}

function abortedResult(env: RunEnvironment, fail: Fail): ActionResult {
  env.counters.aborts++
  return env.closing.aborted
    ? fail('closed', 'the agent is stopping')
    : fail('aborted', 'cancelled by the caller')
}

/** Why `args` may not be passed to `entry`; undefined when they may. Pure. */
export function checkArgs(entry: Entry, args: readonly string[], limits: ActionLimits): string | undefined {
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
