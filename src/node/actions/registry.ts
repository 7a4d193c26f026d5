/**
 * The registry behind `mesh exec`: which actions a node has and the entry point of every run. Three kinds
 * share one pipeline (./run.ts): built-ins, actions declared in the node's config (an argv run without a
 * shell, ./process.ts) and custom in-process handlers registered by a program that embeds the agent
 * (./handler.ts). Runs share the registry's slots (./slots.ts), counters and clock.
 *
 * `run` never rejects: an unknown action, a binary that does not exist or a handler that throws become a
 * result with status `error`, an `errorCode` and a message in `output`.
 */
import { isAbsolute } from 'node:path'
import { type Clock, systemClock } from '../clock.js'
import { builtinActions, systemActionSystem } from './builtins.js'
import { pickBaseEnv } from './process.js'
import { type Entry, executeRun, type RunEnvironment } from './run.js'
import { createSlotQueue } from './slots.js'
import {
  ACTION_ARGV_LENGTH_MAX,
  ACTION_OUTPUT_BYTES_CEILING,
  type ActionCounters,
  type ActionHandler,
  type ActionHandlerOptions,
  type ActionLimits,
  type ActionRegistry,
  ActionRegistryError,
  type ActionRegistryInit,
  type ActionResult,
  type ActionRunOptions,
  BUILTIN_ACTIONS,
  DEFAULT_ACTION_LIMITS,
  type DeclaredActionSpec,
  isValidActionName,
} from './types.js'

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
    if (!isValidActionName(name))
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

/** `init.limits` over the defaults. @throws ActionRegistryError `invalid-config` with every problem */
function checkedLimits(init: ActionRegistryInit): ActionLimits {
  const limits: ActionLimits = { ...DEFAULT_ACTION_LIMITS, ...init.limits }
  const limitProblems = Object.entries(limits)
    .filter(([, value]) => !Number.isSafeInteger(value) || value < 0)
    .map(([key]) => `limit ${key} must be a non-negative integer`)
  if (limits.concurrentRunsMax < 1) limitProblems.push('limit concurrentRunsMax must be at least 1')
  const problems = [...limitProblems, ...declaredActionProblems(init.actions ?? {}, limits)]
  if (problems.length > 0) throw new ActionRegistryError('invalid-config', problems)
  return limits
}

/** The entries of the enabled built-ins and the declared actions. */
function initialEntries(init: ActionRegistryInit, limits: ActionLimits, clock: Clock): Map<string, Entry> {
  const entries = new Map<string, Entry>()
  const builtins = init.builtins ?? true
  const enabled = builtins === true ? BUILTIN_ACTIONS : builtins === false ? [] : builtins
  const handlers = builtinActions({ system: init.system ?? systemActionSystem, clock, facts: init.facts })
  for (const name of enabled) {
    entries.set(name, {
      name,
      kind: 'builtin',
      timeoutMs: Math.min(10_000, limits.timeoutMsMax),
      outputBytesMax: limits.outputBytesMaxDefault,
      description: handlers[name].description,
      acceptsArgs: false,
      handler: handlers[name].handler,
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
  return entries
}

/** The entry of a custom handler. @throws ActionRegistryError on a bad name or options */
function customEntry(
  name: string,
  handler: ActionHandler,
  options: ActionHandlerOptions,
  limits: ActionLimits,
  entries: ReadonlyMap<string, Entry>,
): Entry {
  if (!isValidActionName(name)) {
    throw new ActionRegistryError('invalid-name', [`'${name}' is not a valid action name`])
  }
  if (entries.has(name)) throw new ActionRegistryError('duplicate-name', [`action '${name}' already exists`])
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
  return {
    name,
    kind: 'custom',
    timeoutMs,
    outputBytesMax,
    ...(options.description === undefined ? {} : { description: options.description }),
    acceptsArgs: true,
    handler,
  }
}

/** A result with status `error` that took no time. */
function immediateError(
  errorCode: 'closed' | 'unknown-action' | 'handler-threw',
  output: string,
): ActionResult {
  return {
    status: 'error',
    exitCode: null,
    output,
    outputBytes: 0,
    truncated: false,
    timedOut: false,
    durationMs: 0,
    errorCode,
  }
}

function zeroCounters(): ActionCounters {
  return {
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
}

/**
 * Creates the registry with the built-ins and the declared actions.
 * @throws ActionRegistryError `invalid-config` with every problem of the declared actions or limits
 */
export function createActionRegistry(init: ActionRegistryInit): ActionRegistry {
  const limits = checkedLimits(init)
  const clock = init.clock ?? systemClock
  const closing = new AbortController()
  const counters = zeroCounters()
  const env: RunEnvironment = {
    limits,
    clock,
    counters,
    log: init.log ?? (() => undefined),
    baseEnv: init.baseEnv ?? pickBaseEnv(process.env),
    slots: createSlotQueue(limits, clock),
    closing: closing.signal,
  }
  const entries = initialEntries(init, limits, clock)
  const inFlight = new Set<Promise<ActionResult>>()

  async function run(
    name: string,
    args: readonly string[],
    options: ActionRunOptions = {},
  ): Promise<ActionResult> {
    const entry = entries.get(name)
    if (entry === undefined || closing.signal.aborted) {
      counters.errors++
      if (closing.signal.aborted) return immediateError('closed', 'the agent is stopping')
      const known = [...entries.keys()].sort().join(', ')
      return immediateError(
        'unknown-action',
        `unknown action '${name}'; this node has: ${known === '' ? 'none' : known}`,
      )
    }
    const running = executeRun(env, entry, args, options).catch(
      // A bug in the runner itself; still a result, never a rejection.
      (err: unknown): ActionResult =>
        immediateError(
          'handler-threw',
          `internal error running '${name}': ${(err as Error)?.message ?? String(err)}`,
        ),
    )
    inFlight.add(running)
    try {
      const result = await running
      if (result.status === 'ok') counters.ok++
      else if (result.status === 'failed') counters.failed++
      else counters.errors++
      env.log('debug', 'action finished', {
        action: name,
        status: result.status,
        durationMs: result.durationMs,
        requestId: options.request?.id,
      })
      return result
    } finally {
      inFlight.delete(running)
    }
  }

  return {
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
      entries.set(name, customEntry(name, handler, options, limits, entries))
    },
    run,
    counters: () => ({ ...counters }),
    load: () => env.slots.load(),
    async close() {
      closing.abort(new Error('registry closed'))
      env.slots.cancelAll()
      await Promise.all([...inFlight])
    },
  }
}
