/**
 * The contract of the action runner: what a run returns, what a handler gets and gives back, the options
 * and limits (with their defaults), the name rule, and the registry's interface. Types and constants
 * only, apart from {@link isValidActionName} and {@link ActionRegistryError}.
 */
import type { OutputStream } from '../../gossip/reply.js'
import type { Clock } from '../clock.js'
import type { Facts } from '../facts.js'

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
  /**
   * Streams a piece of output while the handler runs (live output to the requester, best effort). What
   * is written also leads the run's output, before what the handler returns; together they are cut at
   * the action's output limit. A no-op once the run has ended.
   */
  readonly write: (stream: OutputStream, data: string | Uint8Array) => void
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
  /**
   * Called, synchronously and in order, with each piece of output as the action writes it (a declared
   * action's stdout and stderr, a handler's {@link ActionContext.write}): exactly the bytes the run
   * keeps, so at most the action's output limit in total. The bytes are the caller's to keep. A
   * callback that throws is ignored, never allowed to break the run.
   */
  readonly onOutput?: (stream: OutputStream, data: Uint8Array) => void
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

export { ACTION_NAME_PATTERN, isValidActionName } from '../../gossip/action-name.js'

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

/**
 * What the built-ins read from the system besides time (time comes from the registry's {@link Clock});
 * the real one is `systemActionSystem`.
 */
export interface ActionSystem {
  uptimeSeconds(): number
  loadAverage(): readonly [number, number, number]
  /** Logged-in users; 0 when unknown. Never rejects. */
  countUsers(): Promise<number>
  /** The local time zone's offset from UTC at `nowMs`, in minutes east (UTC+2 is 120), for the `uptime` line. */
  utcOffsetMinutes(nowMs: number): number
}

/** What `createActionRegistry` needs. */
export interface ActionRegistryInit {
  /** The node's current facts, for the `facts` built-in. */
  readonly facts: () => Facts
  /** Declared actions by name (the config's `[actions.NAME]` tables). */
  readonly actions?: Readonly<Record<string, DeclaredActionSpec>>
  /** Which built-ins exist: all (default, `true`), none (`false`) or a list. */
  readonly builtins?: boolean | readonly BuiltinActionName[]
  readonly limits?: Partial<ActionLimits>
  readonly log?: ActionLog
  /** Default `systemActionSystem`. */
  readonly system?: ActionSystem
  /** Time limits, durations, the slow-run warning and the built-ins' time; default `systemClock`. */
  readonly clock?: Clock
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

/** How a process or handler ended, before the registry turns it into an {@link ActionResult}. Internal. */
export type RunOutcome =
  | ({
      readonly kind: 'completed'
      /** True when the caller's signal or the registry's close ended the run. */
      readonly aborted: boolean
    } & Pick<
      ActionResult,
      'exitCode' | 'signal' | 'output' | 'outputBytes' | 'truncated' | 'timedOut' | 'structured'
    >)
  | { readonly kind: 'spawn-failed'; readonly message: string }
  | { readonly kind: 'threw'; readonly message: string }
