/**
 * `mesh exec`: asks the local agent to sign and gossip a request, then prints each reply as it arrives
 * and a summary. Exit 0 only when every expected node completed with status ok (docs/cli.md).
 *
 * With `--batch`, `--max-failures`, `--limit` or `--one` the agent runs a rollout (src/node/rollout.ts):
 * waves of signed requests naming their nodes; the events `rollout`, `wave` and `wave-done` drive the
 * progress line and the summary names the nodes not run. Live `output` events (a node's stdout and
 * stderr as it runs) are printed line by line, prefixed with the node's name; a partial line waits for
 * its newline or the node's `done`.
 */

import { EXEC_TIMEOUT_MS_MAX } from '../agent/control-methods.js'
import {
  BATCH_SLEEP_MS_MAX,
  LIMIT_SEED_CHARS_MAX,
  ROLLOUT_COUNT_MAX,
  type RolloutParams,
} from '../agent/rollout-params.js'
import { formatDurationMs } from '../duration.js'
import {
  type FactFilter,
  FilterParseError,
  parseFactFlag,
  parseWhere,
  type TargetFilter,
} from '../gossip/filter.js'
import { isUnknownActionDone, type ReplyStatus } from '../gossip/reply.js'
import { every, systemClock } from '../node/clock.js'
import type { Portion } from '../node/rollout.js'
import { table, withAgent } from './agent-client.js'
import { CliError, UsageError } from './errors.js'
import { type CliIo, type GlobalOptions, printJson, useColour } from './io.js'

export interface ExecFlags {
  readonly zone?: string
  readonly node?: string
  readonly fact?: string[]
  readonly where?: string
  readonly once?: boolean
  readonly timeout: number
  /** `N` or `N%` (rollouts). */
  readonly batch?: string
  /** Milliseconds between waves. */
  readonly batchSleep?: number
  readonly maxFailures?: string
  readonly limit?: string
  readonly limitSeed?: string
  readonly one?: boolean
  readonly display?: string
  readonly table?: boolean
  /** Print the job id and exit at once; results via `mesh jobs show/wait`. */
  readonly async?: boolean
  /** `JOBID:ok|failed|missing`: run on exactly the nodes of that job with that outcome. */
  readonly retarget?: string
  /** Sign a proposal (two-person rule) instead of running. */
  readonly propose?: boolean
}

/** `--retarget JOBID:OUTCOME` parsed. */
export interface RetargetFlag {
  readonly job: string
  readonly outcome: 'ok' | 'failed' | 'missing'
}

/** Parses `--retarget`; a usage error names what is wrong. */
export function parseRetarget(text: string): RetargetFlag {
  const match = /^([0-9a-f]{32}):(ok|failed|missing)$/.exec(text)
  if (match === null)
    throw new UsageError(
      `--retarget '${text}' must be JOBID:ok, JOBID:failed or JOBID:missing (a job id as 'mesh jobs' lists it)`,
    )
  return { job: match[1] as string, outcome: match[2] as RetargetFlag['outcome'] }
}

/** Values of `--display`: which replies human output shows. */
export const DISPLAY_CHOICES = ['ok', 'failed', 'all', 'none'] as const
/** One of {@link DISPLAY_CHOICES}. */
export type Display = (typeof DISPLAY_CHOICES)[number]
/** Longest partial output line held per node and stream before it is printed anyway, characters. */
export const PARTIAL_LINE_CHARS_MAX = 16_384
/** Most node-and-stream partial lines held at once; beyond it the oldest is printed. */
export const PARTIAL_LINES_MAX = 4096
/** Widest `--table` output column (the first line of output), characters. */
export const TABLE_OUTPUT_CHARS_MAX = 60
/** How often the progress line's elapsed time is redrawn, ms. */
const PROGRESS_REDRAW_MS = 1_000
/** How long past the flags' own bounds the CLI waits for a silent agent, ms. */
const AGENT_SLACK_MS = 10_000

interface Reply {
  node: string
  zone: string
  status: ReplyStatus
  exitCode: number | null
  output: string
  durationMs: number
  outputTruncated?: boolean
  epoch?: number
  reason?: string
  expected: boolean
}

interface Result {
  id: string
  action: string
  expected: string[]
  replies: Reply[]
  missing: string[]
  acked: string[]
  unexpected: string[]
  /** The local node's action names (absent from older agents). */
  localActions?: string[]
  // Rollouts only (node/rollout.ts RolloutResult).
  job?: string
  waves?: Array<{ id: string; nodes: string[]; ok: number; failed: number; missing: number }>
  notRun?: string[]
  limitSeed?: string
  limitClamped?: { requested: number; available: number }
  stoppedBy?: 'max-failures' | 'aborted' | 'error'
  maxFailures?: number
  error?: string
}

/** A live `output` event: a chunk of one node's stdout or stderr while its action runs. */
interface OutputEvent {
  node: string
  stream: 'stdout' | 'stderr'
  seq: number
  data: string
}

/** Exit code after Ctrl-C (128 + SIGINT), as shells report it. */
export const EXIT_INTERRUPTED = 130
/** Largest edit distance between a typed action and a local action name offered as "did you mean". */
export const SUGGESTION_DISTANCE_MAX = 2

/** Levenshtein distance between `a` and `b` (action names are ≤ 64 characters). */
export function editDistance(a: string, b: string): number {
  let previous = Array.from({ length: b.length + 1 }, (_, j) => j)
  for (let i = 1; i <= a.length; i++) {
    const current = [i]
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1
      current[j] = Math.min((previous[j] ?? 0) + 1, (current[j - 1] ?? 0) + 1, (previous[j - 1] ?? 0) + cost)
    }
    previous = current
  }
  return previous[b.length] ?? 0
}

/** Names within {@link SUGGESTION_DISTANCE_MAX} edits of `action`, nearest first, then by name. */
export function similarActions(action: string, names: readonly string[]): string[] {
  return names
    .filter(name => name !== action)
    .map(name => ({ name, distance: editDistance(action, name) }))
    .filter(c => c.distance <= SUGGESTION_DISTANCE_MAX)
    .sort((x, y) => x.distance - y.distance || (x.name < y.name ? -1 : x.name > y.name ? 1 : 0))
    .map(c => c.name)
}

/** Builds the signed target filter from the flags; a bad pattern is a usage error (exit 2). */
export function filterFromFlags(flags: ExecFlags): TargetFilter {
  try {
    const facts: FactFilter[] = (flags.fact ?? []).map(parseFactFlag)
    if (flags.where !== undefined) parseWhere(flags.where)
    return {
      ...(flags.zone !== undefined ? { zone: flags.zone } : {}),
      ...(flags.node !== undefined ? { node: flags.node } : {}),
      ...(facts.length > 0 ? { facts } : {}),
      ...(flags.where !== undefined ? { where: flags.where } : {}),
      ...(flags.once === true ? { once: true } : {}),
    }
  } catch (err) {
    if (err instanceof FilterParseError) throw new UsageError(err.message)
    throw err
  }
}

/** Refuses a --timeout the agent would refuse (above {@link EXEC_TIMEOUT_MS_MAX}) as a usage error. */
export function checkTimeout(timeoutMs: number): void {
  if (!Number.isSafeInteger(timeoutMs) || timeoutMs <= 0 || timeoutMs > EXEC_TIMEOUT_MS_MAX) {
    throw new UsageError(
      `--timeout ${formatDurationMs(timeoutMs)} is too long: at most ${formatDurationMs(EXEC_TIMEOUT_MS_MAX)}`,
    )
  }
}

/**
 * Parses `N` or `N%` of a rollout flag: a count from `countMin` to {@link ROLLOUT_COUNT_MAX}, or a
 * percentage from 1 to 100; anything else is a usage error naming the flag.
 */
export function parsePortionFlag(text: string, flag: string, countMin = 1): Portion {
  const match = /^(-?\d+)(%?)$/.exec(text.trim())
  if (match === null)
    throw new UsageError(`${flag} '${text}' is not a number of nodes (N) or a percentage (N%)`)
  const n = Number(match[1])
  if (match[2] === '%') {
    if (!Number.isSafeInteger(n) || n < 1 || n > 100) {
      throw new UsageError(`${flag} ${text}: a percentage must be from 1% to 100%`)
    }
    return { percent: n }
  }
  if (!Number.isSafeInteger(n) || n < countMin || n > ROLLOUT_COUNT_MAX) {
    throw new UsageError(
      `${flag} ${text}: the number of nodes must be from ${countMin} to ${ROLLOUT_COUNT_MAX}`,
    )
  }
  return { count: n }
}

/**
 * The rollout part of the flags, or undefined for a plain exec. Conflicts (`--one` with `--limit`,
 * `--once` with any rollout flag, `--batch-sleep` without `--batch`, `--limit-seed` without a limit)
 * are usage errors.
 */
export function rolloutFromFlags(flags: ExecFlags): RolloutParams | undefined {
  if (flags.one === true && flags.limit !== undefined)
    throw new UsageError("choose one of '--one' and '--limit'")
  const batch = flags.batch === undefined ? undefined : parsePortionFlag(flags.batch, '--batch')
  const limit =
    flags.one === true
      ? { count: 1 }
      : flags.limit === undefined
        ? undefined
        : parsePortionFlag(flags.limit, '--limit')
  const maxFailures =
    flags.maxFailures === undefined ? undefined : parsePortionFlag(flags.maxFailures, '--max-failures', 0)
  if (flags.batchSleep !== undefined) {
    if (batch === undefined) throw new UsageError('--batch-sleep needs --batch')
    if (flags.batchSleep > BATCH_SLEEP_MS_MAX) {
      throw new UsageError(
        `--batch-sleep ${formatDurationMs(flags.batchSleep)} is too long: at most ${formatDurationMs(BATCH_SLEEP_MS_MAX)}`,
      )
    }
  }
  if (flags.limitSeed !== undefined) {
    if (limit === undefined) throw new UsageError('--limit-seed needs --limit or --one')
    if (flags.limitSeed.length === 0 || flags.limitSeed.length > LIMIT_SEED_CHARS_MAX) {
      throw new UsageError(`--limit-seed must be 1 to ${LIMIT_SEED_CHARS_MAX} characters`)
    }
  }
  if (batch === undefined && limit === undefined && maxFailures === undefined) return undefined
  if (flags.once === true) {
    const used = [
      batch !== undefined ? '--batch' : '',
      flags.one === true ? '--one' : flags.limit !== undefined ? '--limit' : '',
      maxFailures !== undefined ? '--max-failures' : '',
    ].filter(f => f !== '')
    throw new UsageError(`--once runs on one node per zone; it cannot be combined with ${used.join(', ')}`)
  }
  return {
    ...(batch === undefined ? {} : { batch }),
    ...(flags.batchSleep === undefined ? {} : { batchSleepMs: flags.batchSleep }),
    ...(maxFailures === undefined ? {} : { maxFailures }),
    ...(limit === undefined ? {} : { limit }),
    ...(flags.limitSeed === undefined ? {} : { limitSeed: flags.limitSeed }),
  }
}

/** `--display` and `--table`: human output only, so with `--json`/`--jsonl` they are usage errors. */
function displayFromFlags(flags: ExecFlags, globals: GlobalOptions): Display {
  const machine = globals.json ? '--json' : globals.jsonl ? '--jsonl' : undefined
  if (machine !== undefined && flags.table === true)
    throw new UsageError(`--table is for human output; drop it or ${machine}`)
  if (flags.display === undefined) return 'all'
  if (!(DISPLAY_CHOICES as readonly string[]).includes(flags.display)) {
    throw new UsageError(`--display '${flags.display}' must be one of ${DISPLAY_CHOICES.join(', ')}`)
  }
  if (machine !== undefined) throw new UsageError(`--display is for human output; drop it or ${machine}`)
  return flags.display as Display
}

/** Whether `--display` shows a node whose status is `status` (`missing` and `not-run` count as failed). */
function shown(display: Display, status: string): boolean {
  if (display === 'all') return true
  if (display === 'none') return false
  if (display === 'ok') return status === 'ok'
  return status !== 'ok' && status !== 'not-run'
}

/**
 * Prints live output events as lines, `NODE: line` (stdout) or `NODE (stderr): line`. A chunk's
 * text up to its last newline is printed at once; the rest waits, per node and stream, for more, for
 * the node's `done` ({@link OutputLines.flush}) or the end. Repeated or late chunks (a `seq` not above
 * the last one of that node and stream) are dropped. Bounded by {@link PARTIAL_LINE_CHARS_MAX} and
 * {@link PARTIAL_LINES_MAX}.
 */
export interface OutputLines {
  add(event: OutputEvent): void
  /** Prints the held partial lines of `node`, or of every node. */
  flush(node?: string): void
  /** Nodes that sent any output. */
  readonly nodes: ReadonlySet<string>
}

/** Creates an {@link OutputLines} writing through `write`. */
export function createOutputLines(write: (text: string) => void): OutputLines {
  const held = new Map<string, { node: string; stream: string; text: string; seq: number }>()
  const nodes = new Set<string>()
  const line = (node: string, stream: string, text: string) =>
    write(`${node}${stream === 'stderr' ? ' (stderr)' : ''}: ${text.replace(/\r$/, '')}\n`)
  const flushEntry = (key: string) => {
    const entry = held.get(key)
    if (entry !== undefined && entry.text.length > 0) line(entry.node, entry.stream, entry.text)
    if (entry !== undefined) entry.text = ''
  }
  return {
    nodes,
    add(event) {
      if (typeof event.node !== 'string' || typeof event.data !== 'string') return
      const stream = event.stream === 'stderr' ? 'stderr' : 'stdout'
      const key = `${event.node}\u0000${stream}`
      let entry = held.get(key)
      if (entry === undefined) {
        if (held.size >= PARTIAL_LINES_MAX) {
          const oldest = held.keys().next().value as string
          flushEntry(oldest)
          held.delete(oldest)
        }
        entry = { node: event.node, stream, text: '', seq: Number.NEGATIVE_INFINITY }
        held.set(key, entry)
      }
      if (typeof event.seq === 'number') {
        if (event.seq <= entry.seq) return
        entry.seq = event.seq
      }
      nodes.add(event.node)
      const parts = (entry.text + event.data).split('\n')
      entry.text = parts.pop() ?? ''
      for (const part of parts) line(event.node, stream, part)
      while (entry.text.length > PARTIAL_LINE_CHARS_MAX) {
        line(event.node, stream, entry.text.slice(0, PARTIAL_LINE_CHARS_MAX))
        entry.text = entry.text.slice(PARTIAL_LINE_CHARS_MAX)
      }
    },
    flush(node) {
      for (const [key, entry] of held) if (node === undefined || entry.node === node) flushEntry(key)
    },
  }
}

/**
 * True when the agent refused the request's parameters rather than failing to run it: `invalid-params`,
 * or a timeout beyond the mesh's request lifetime (the node's `ExecRefusedError` `lifetime-too-long`,
 * which reaches the control socket as `failed` with a message naming `requestLifetimeMsMax`).
 */
function isRefusedParams(err: CliError): boolean {
  return (
    err.code === 'invalid-params' || (err.code === 'failed' && err.message.includes('requestLifetimeMsMax'))
  )
}

export async function exec(
  io: CliIo,
  globals: GlobalOptions,
  action: string,
  args: string[],
  flags: ExecFlags,
): Promise<number> {
  checkTimeout(flags.timeout)
  const filter = filterFromFlags(flags)
  const rollout = rolloutFromFlags(flags)
  const display = displayFromFlags(flags, globals)
  const retarget = flags.retarget === undefined ? undefined : parseRetarget(flags.retarget)
  if (retarget !== undefined && Object.keys(filter).length > 0)
    throw new UsageError('--retarget names its nodes itself: drop --zone, --node, --fact, --where and --once')
  if (flags.async === true && (flags.table === true || flags.display !== undefined))
    throw new UsageError("--async prints only the job id: see the results with 'mesh jobs show ID'")
  if (flags.propose === true) {
    if (rollout !== undefined || flags.async === true || retarget !== undefined)
      throw new UsageError(
        '--propose signs one request: no --batch, --limit, --one, --async or --retarget with it',
      )
    const { propose } = await import('./proposals.js')
    return propose(io, globals, { action, args, filter, timeoutMs: flags.timeout })
  }
  if (flags.async === true) return execAsync(io, globals, action, args, flags, filter, rollout, retarget)
  const tableMode = flags.table === true
  const colour = useColour(io, io.stdout)
  const paint = (code: number, s: string) => (colour ? `\u001b[${code}m${s}\u001b[0m` : s)
  const noColor = io.env.NO_COLOR !== undefined && io.env.NO_COLOR !== ''
  const progress =
    io.stderr.isTTY === true && io.stdout.isTTY === true && !noColor && !globals.json && !globals.jsonl
  const startedAtMs = systemClock.monotonicMs()
  const state = { expected: 0, completed: 0, ok: 0, failed: 0, missing: 0, wave: 0, waves: 0 }
  const showProgress = () => {
    if (!progress) return
    if (rollout === undefined) {
      io.stderr.write(`\r\u001b[K${state.completed}/${state.expected} replied`)
      return
    }
    const elapsed = formatElapsed(systemClock.monotonicMs() - startedAtMs)
    io.stderr.write(
      `\r\u001b[Kwave ${state.wave}/${state.waves}  ${state.completed}/${state.expected} done  ${state.ok} ok  ${state.failed} failed  ${state.missing} missing  ${elapsed}`,
    )
  }
  const clearProgress = () => {
    if (progress) io.stderr.write('\r\u001b[K')
  }
  /** Human output on stdout, with the progress line taken away and put back around it. */
  const print = (text: string) => {
    clearProgress()
    io.stdout.write(text)
    showProgress()
  }
  const lines = createOutputLines(print)
  const redraw =
    progress && rollout !== undefined ? every(systemClock, PROGRESS_REDRAW_MS, showProgress) : undefined

  // A rollout runs for an unknown number of waves, so instead of one deadline the CLI gives up only
  // when the agent stays silent longer than a wave and a pause can take.
  const stall = new AbortController()
  const stallMs = flags.timeout + (flags.batchSleep ?? 0) + AGENT_SLACK_MS
  let stallTimer = rollout === undefined ? undefined : systemClock.setTimer(() => stall.abort(), stallMs)
  const alive = () => {
    if (stallTimer === undefined) return
    stallTimer.cancel()
    stallTimer = systemClock.setTimer(() => stall.abort(), stallMs)
  }

  const onRollout = (data: {
    expected: string[]
    waves: number
    limitSeed?: string
    limitClamped?: Result['limitClamped']
  }) => {
    state.expected = data.expected.length
    state.waves = data.waves
    clearProgress()
    const clamped = data.limitClamped
    if (clamped !== undefined && clamped.available > 0) {
      const what = flags.one === true ? '--one' : `--limit ${flags.limit ?? ''}`
      io.stderr.write(
        `mesh: warning: ${what} asks for ${clamped.requested} nodes but only ${clamped.available} match; running on all of them\n`,
      )
    } else if (
      !globals.json &&
      !globals.jsonl &&
      data.limitSeed !== undefined &&
      flags.limitSeed === undefined
    ) {
      io.stderr.write(
        `mesh: chose ${data.expected.length} nodes; repeat this choice with --limit-seed ${data.limitSeed}\n`,
      )
    }
  }

  const onEvent = (event: string, data: unknown) => {
    alive()
    if (event === 'rollout') onRollout(data as Parameters<typeof onRollout>[0])
    if (globals.jsonl) {
      io.stdout.write(`${JSON.stringify({ event, ...(data as object) })}\n`)
      return
    }
    if (globals.json) return
    if (event === 'published' && rollout === undefined) {
      state.expected = (data as { expected: string[] }).expected.length
      showProgress()
    } else if (event === 'wave') {
      const wave = data as { index: number; count: number; nodes: string[] }
      state.wave = wave.index
      if (wave.count > 1 && !tableMode && display !== 'none') {
        print(`${paint(1, `wave ${wave.index}/${wave.count}`)} (${wave.nodes.length} nodes)\n`)
      }
      showProgress()
    } else if (event === 'wave-done') {
      state.missing += (data as { missing: number }).missing
      showProgress()
    } else if (event === 'output') {
      if (display === 'all' && !tableMode) lines.add(data as OutputEvent)
    } else if (event === 'done') {
      const reply = (data as { reply: Reply }).reply
      if (reply.expected) {
        state.completed += 1
        if (reply.status === 'ok') state.ok += 1
        else state.failed += 1
      }
      lines.flush(reply.node)
      if (!tableMode && shown(display, reply.status)) {
        // The output was printed live already: the status line is enough.
        print(formatReply(lines.nodes.has(reply.node) ? { ...reply, output: '' } : reply, paint))
      } else {
        showProgress()
      }
    }
  }

  const signal =
    rollout === undefined ? io.signal : AbortSignal.any([stall.signal, ...(io.signal ? [io.signal] : [])])
  let result: Result
  try {
    if (io.signal?.aborted === true) return interrupted(io)
    result = (await withAgent(globals, client =>
      client.call('exec', execParams(action, args, filter, flags, rollout, retarget), {
        onEvent,
        signal,
        ...(rollout === undefined ? { timeoutMs: flags.timeout + AGENT_SLACK_MS } : {}),
      }),
    )) as Result
  } catch (err) {
    // Ctrl-C: the control call was cancelled, which cancels the agent's wait for replies.
    if (io.signal?.aborted === true && err instanceof CliError && err.code === 'aborted')
      return interrupted(io)
    if (stall.signal.aborted && err instanceof CliError && err.code === 'aborted') {
      throw new CliError(
        'timeout',
        `the agent sent nothing for ${formatDurationMs(stallMs)} during the rollout; check 'mesh status' and the agent's log`,
      )
    }
    if (err instanceof CliError && !(err instanceof UsageError) && isRefusedParams(err))
      throw new UsageError(err.message)
    throw err
  } finally {
    stallTimer?.cancel()
    redraw?.cancel()
    lines.flush()
    clearProgress()
  }

  const failed = result.replies.filter(r => r.expected && r.status !== 'ok')
  const notRun = result.notRun ?? []
  const success =
    result.expected.length > 0 && result.missing.length === 0 && failed.length === 0 && notRun.length === 0
  if (globals.json) {
    printJson(io, {
      id: result.id,
      action: result.action,
      expected: result.expected,
      replies: result.replies.map(r => ({
        node: r.node,
        zone: r.zone,
        status: r.status,
        exitCode: r.exitCode,
        output: r.output,
        durationMs: r.durationMs,
        ...(r.epoch !== undefined ? { epoch: r.epoch } : {}),
        ...(r.reason !== undefined ? { reason: r.reason } : {}),
        ...(r.expected ? {} : { unexpected: true }),
      })),
      missing: result.missing,
      ...rolloutFields(result),
    })
  } else if (globals.jsonl) {
    io.stdout.write(
      `${JSON.stringify({ event: 'summary', id: result.id, expected: result.expected, missing: result.missing, failed: failed.map(r => r.node), ...(result.waves !== undefined ? { notRun, waves: result.waves.length } : {}) })}\n`,
    )
  } else if (result.expected.length > 0 || result.replies.length > 0) {
    // Nothing expected and nothing answered: the one-line error below says all there is.
    if (tableMode) io.stdout.write(resultTable(result, display))
    io.stdout.write(summary(result, failed, paint, state.waves))
  }
  if (result.expected.length === 0) {
    io.stderr.write("mesh: no alive member matches the filter; check 'mesh members'\n")
  }
  if (result.stoppedBy === 'error' && result.error !== undefined) {
    io.stderr.write(`mesh: wave ${(result.waves?.length ?? 0) + 1} could not start: ${result.error}\n`)
  }
  if (result.replies.length > 0 && result.replies.every(isUnknownActionDone)) {
    const similar = similarActions(action, result.localActions ?? [])
    const hint = similar.length > 0 ? `; did you mean ${similar.map(n => `'${n}'`).join(' or ')}?` : ''
    io.stderr.write(`mesh: no node that answered has an action '${action}'${hint}\n`)
  }
  return success ? 0 : 1
}

/** The `exec` control call's parameters for these flags. */
function execParams(
  action: string,
  args: string[],
  filter: TargetFilter,
  flags: ExecFlags,
  rollout: RolloutParams | undefined,
  retarget: RetargetFlag | undefined,
): Record<string, unknown> {
  return {
    action,
    args,
    filter,
    timeoutMs: flags.timeout,
    ...rollout,
    ...(retarget === undefined ? {} : { retarget }),
  }
}

/** `--async`: the agent answers once the first request is published; print the job id. */
async function execAsync(
  io: CliIo,
  globals: GlobalOptions,
  action: string,
  args: string[],
  flags: ExecFlags,
  filter: TargetFilter,
  rollout: RolloutParams | undefined,
  retarget: RetargetFlag | undefined,
): Promise<number> {
  const answer = (await withAgent(globals, client =>
    client.call(
      'exec',
      { ...execParams(action, args, filter, flags, rollout, retarget), async: true },
      { timeoutMs: AGENT_SLACK_MS + 20_000 },
    ),
  )) as { job: string; expected: readonly string[] }
  if (globals.json) printJson(io, { job: answer.job, expected: answer.expected })
  else if (globals.jsonl)
    io.stdout.write(`${JSON.stringify({ event: 'async', job: answer.job, expected: answer.expected })}\n`)
  else {
    io.stdout.write(`${answer.job}\n`)
    io.stderr.write(
      `mesh: job started on ${answer.expected.length} expected node(s); results: mesh jobs wait ${answer.job}\n`,
    )
  }
  return 0
}

/** The rollout fields of the `--json` document (absent for a plain exec). */
function rolloutFields(result: Result): Record<string, unknown> {
  if (result.waves === undefined) return {}
  return {
    job: result.job,
    waves: result.waves,
    notRun: result.notRun ?? [],
    ...(result.maxFailures !== undefined ? { maxFailures: result.maxFailures } : {}),
    ...(result.limitSeed !== undefined ? { limitSeed: result.limitSeed } : {}),
    ...(result.limitClamped !== undefined ? { limitClamped: result.limitClamped } : {}),
    ...(result.stoppedBy !== undefined ? { stoppedBy: result.stoppedBy } : {}),
    ...(result.error !== undefined ? { error: result.error } : {}),
  }
}

/** `12s`, `3m05s`: the progress line's elapsed time. */
function formatElapsed(ms: number): string {
  const s = Math.floor(ms / 1000)
  return s < 60 ? `${s}s` : `${Math.floor(s / 60)}m${String(s % 60).padStart(2, '0')}s`
}

/**
 * `--table`: one row per expected node (and per unexpected reply) that `display` shows, sorted by
 * name: node, zone, status (`missing` for no answer, `not-run` for a wave never started), exit code,
 * duration and the first line of output.
 */
export function resultTable(result: Result, display: Display): string {
  const rows: string[][] = []
  const answered = new Set<string>()
  for (const r of result.replies) {
    answered.add(r.node)
    const first = (r.output.split('\n').find(l => l.trim() !== '') ?? '').trim()
    const cut =
      first.length > TABLE_OUTPUT_CHARS_MAX ? `${first.slice(0, TABLE_OUTPUT_CHARS_MAX - 1)}…` : first
    const status = r.expected ? r.status : `${r.status} (not expected)`
    if (!shown(display, r.status)) continue
    rows.push([
      r.node,
      r.zone,
      status,
      r.exitCode === null ? '-' : String(r.exitCode),
      `${r.durationMs}ms`,
      cut,
    ])
  }
  const notRun = new Set(result.notRun ?? [])
  for (const name of result.expected) {
    if (answered.has(name)) continue
    const status = notRun.has(name) ? 'not-run' : 'missing'
    if (shown(display, status)) rows.push([name, '-', status, '-', '-', ''])
  }
  if (rows.length === 0) return ''
  rows.sort((a, b) => (a[0]! < b[0]! ? -1 : a[0]! > b[0]! ? 1 : 0))
  const text = table([['NODE', 'ZONE', 'STATUS', 'EXIT', 'DURATION', 'OUTPUT'], ...rows])
  return `${text}\n`
}

function formatReply(reply: Reply, paint: (code: number, s: string) => string): string {
  const colourOf: Record<ReplyStatus, number> = { ok: 32, failed: 31, denied: 33, error: 31, cancelled: 33 }
  const status = paint(colourOf[reply.status], reply.status)
  const tags = [
    reply.expected ? '' : ' (not expected)',
    reply.epoch !== undefined ? ` epoch ${reply.epoch}` : '',
  ].join('')
  const head = `${reply.node} [${reply.zone}] ${status}${reply.exitCode !== null && reply.status !== 'ok' ? ` exit ${reply.exitCode}` : ''} ${reply.durationMs}ms${tags}`
  const body = reply.output.trimEnd()
  const reason = reply.reason !== undefined ? `  ${reply.reason}\n` : ''
  if (body.length === 0) return `${head}\n${reason}`
  if (!body.includes('\n')) return `${head}: ${body}\n${reason}`
  return `${head}:\n${body
    .split('\n')
    .map(line => `  ${line}`)
    .join('\n')}${reply.outputTruncated === true ? '\n  [output truncated]' : ''}\n${reason}`
}

/**
 * The last line: `N/M ok`, the failed and silent nodes, and for a rollout the waves run of those
 * planned and the nodes not run with the reason.
 */
function summary(
  result: Result,
  failed: Reply[],
  paint: (code: number, s: string) => string,
  wavesPlanned: number,
): string {
  const ok = result.replies.filter(r => r.expected && r.status === 'ok').length
  const waves =
    result.waves === undefined || wavesPlanned <= 1 ? '' : ` in ${result.waves.length}/${wavesPlanned} waves`
  const parts = [`${ok}/${result.expected.length} ok${waves}`]
  if (failed.length > 0)
    parts.push(paint(31, `failed: ${failed.map(r => `${r.node} (${r.status})`).join(', ')}`))
  if (result.missing.length > 0) parts.push(paint(31, `no answer: ${result.missing.join(', ')}`))
  if (result.unexpected.length > 0) parts.push(`not expected: ${result.unexpected.join(', ')}`)
  const notRun = result.notRun ?? []
  if (notRun.length > 0) parts.push(paint(31, `not run (${stopReason(result)}): ${notRun.join(', ')}`))
  return `${parts.join('; ')}\n`
}

/** Why a rollout left waves unrun, for the summary. */
function stopReason(result: Result): string {
  if (result.stoppedBy === 'max-failures') {
    const budget = result.maxFailures ?? 0
    return `more than ${budget} node${budget === 1 ? '' : 's'} failed or did not answer`
  }
  if (result.stoppedBy === 'aborted') return 'interrupted'
  return 'a wave could not start'
}

/** After Ctrl-C: the remote runs are not cancelled (docs/exec.md, Open points), so say so. */
function interrupted(io: CliIo): number {
  io.stderr.write(
    '\nmesh: interrupted; actions already started on remote nodes keep running to their time limit\n',
  )
  return EXIT_INTERRUPTED
}
