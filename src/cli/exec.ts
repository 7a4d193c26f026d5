/**
 * `mesh exec`: asks the local agent to sign and gossip a request, then prints each reply as it arrives
 * and a summary. Exit 0 only when every expected node completed with status ok (docs/cli.md).
 */

import { EXEC_TIMEOUT_MS_MAX } from '../agent/control-methods.js'
import { formatDurationMs } from '../duration.js'
import {
  type FactFilter,
  FilterParseError,
  parseFactFlag,
  parseWhere,
  type TargetFilter,
} from '../gossip/filter.js'
import { isUnknownActionDone, type ReplyStatus } from '../gossip/reply.js'
import { withAgent } from './agent-client.js'
import { CliError, UsageError } from './errors.js'
import { type CliIo, type GlobalOptions, printJson, useColour } from './io.js'

export interface ExecFlags {
  readonly zone?: string
  readonly node?: string
  readonly fact?: string[]
  readonly where?: string
  readonly once?: boolean
  readonly timeout: number
}

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
  const colour = useColour(io, io.stdout)
  const paint = (code: number, s: string) => (colour ? `\u001b[${code}m${s}\u001b[0m` : s)
  const progress = io.stderr.isTTY === true && !globals.json && !globals.jsonl
  let expected: string[] = []
  let completed = 0
  const showProgress = () => {
    if (progress) io.stderr.write(`\r\u001b[K${completed}/${expected.length} replied`)
  }
  const clearProgress = () => {
    if (progress) io.stderr.write('\r\u001b[K')
  }

  const onEvent = (event: string, data: unknown) => {
    if (globals.jsonl) {
      io.stdout.write(`${JSON.stringify({ event, ...(data as object) })}\n`)
      return
    }
    if (globals.json) return
    if (event === 'published') {
      expected = [...(data as { expected: string[] }).expected]
      showProgress()
    } else if (event === 'done') {
      const reply = (data as { reply: Reply }).reply
      completed += reply.expected ? 1 : 0
      clearProgress()
      io.stdout.write(formatReply(reply, paint))
      showProgress()
    }
  }

  const signal = io.signal
  let result: Result
  try {
    if (signal?.aborted === true) return interrupted(io)
    result = (await withAgent(globals, client =>
      client.call(
        'exec',
        { action, args, filter, timeoutMs: flags.timeout },
        { onEvent, signal, timeoutMs: flags.timeout + 10_000 },
      ),
    )) as Result
  } catch (err) {
    // Ctrl-C: the control call was cancelled, which cancels the agent's wait for replies.
    if (signal?.aborted === true && err instanceof CliError && err.code === 'aborted') return interrupted(io)
    if (err instanceof CliError && !(err instanceof UsageError) && isRefusedParams(err))
      throw new UsageError(err.message)
    throw err
  } finally {
    clearProgress()
  }

  const failed = result.replies.filter(r => r.expected && r.status !== 'ok')
  const success = result.expected.length > 0 && result.missing.length === 0 && failed.length === 0
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
    })
  } else if (globals.jsonl) {
    io.stdout.write(
      `${JSON.stringify({ event: 'summary', id: result.id, expected: result.expected, missing: result.missing, failed: failed.map(r => r.node) })}\n`,
    )
  } else if (result.expected.length > 0 || result.replies.length > 0) {
    // Nothing expected and nothing answered: the one-line error below says all there is.
    io.stdout.write(summary(result, failed, paint))
  }
  if (result.expected.length === 0) {
    io.stderr.write("mesh: no alive member matches the filter; check 'mesh members'\n")
  }
  if (result.replies.length > 0 && result.replies.every(isUnknownActionDone)) {
    const similar = similarActions(action, result.localActions ?? [])
    const hint = similar.length > 0 ? `; did you mean ${similar.map(n => `'${n}'`).join(' or ')}?` : ''
    io.stderr.write(`mesh: no node that answered has an action '${action}'${hint}\n`)
  }
  return success ? 0 : 1
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

function summary(result: Result, failed: Reply[], paint: (code: number, s: string) => string): string {
  const ok = result.replies.filter(r => r.expected && r.status === 'ok').length
  const parts = [`${ok}/${result.expected.length} ok`]
  if (failed.length > 0)
    parts.push(paint(31, `failed: ${failed.map(r => `${r.node} (${r.status})`).join(', ')}`))
  if (result.missing.length > 0) parts.push(paint(31, `no answer: ${result.missing.join(', ')}`))
  if (result.unexpected.length > 0) parts.push(`not expected: ${result.unexpected.join(', ')}`)
  return `${parts.join('; ')}\n`
}

/** After Ctrl-C: the remote runs are not cancelled (docs/exec.md, Open points), so say so. */
function interrupted(io: CliIo): number {
  io.stderr.write(
    '\nmesh: interrupted; actions already started on remote nodes keep running to their time limit\n',
  )
  return EXIT_INTERRUPTED
}
