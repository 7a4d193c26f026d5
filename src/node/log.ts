/**
 * Logging: pino, one child logger per component (`component` field), constant messages with a context
 * object (STYLE.md §7). Agents log to stderr: JSON lines, or readable lines when stderr is a terminal
 * (`logFormat` / `MESH_LOG_FORMAT` = `auto`, `json` or `pretty` decides); libraries and tests get a
 * silent logger unless they pass one. Chosen over hand-written logging for its speed, levels and child
 * loggers.
 *
 * The readable form is a destination that rewrites each JSON line pino produces (see
 * {@link formatLogLine}), rather than pino-pretty: a few dozen lines against a dependency with its own
 * transitive tree and worker-thread transport, which the single binary would have to bundle.
 */
import { isatty } from 'node:tty'
import { type DestinationStream, type Logger, pino } from 'pino'
import { systemClock } from './clock.js'

export type { Logger } from 'pino'

/** Log levels the config accepts. */
export type LogLevel = 'silent' | 'error' | 'warn' | 'info' | 'debug' | 'trace'

/** How log lines are written; `auto` is `pretty` on a terminal and `json` otherwise. */
export type LogFormat = 'auto' | 'json' | 'pretty'

/** The format `setting` means when the log's file descriptor is (`tty`) or is not a terminal. */
export function resolveLogFormat(setting: LogFormat, tty: boolean): 'json' | 'pretty' {
  if (setting === 'auto') return tty ? 'pretty' : 'json'
  return setting
}

/**
 * A logger writing to stderr (fd 2) at `level`, with `name` on every line: JSON lines, or readable lines
 * when `format` is `pretty` (or `auto` and stderr is a terminal).
 */
export function createLogger(level: LogLevel, name?: string, format: LogFormat = 'auto'): Logger {
  const fd = 2
  const destination = pino.destination({ fd, sync: true })
  const pretty = resolveLogFormat(format, isatty(fd)) === 'pretty'
  return pino(
    { level, base: name === undefined ? {} : { node: name } },
    pretty ? prettyDestination(destination) : destination,
  )
}

/** A logger that writes nothing (the default for libraries and tests). */
export function silentLogger(): Logger {
  return pino({ level: 'silent' })
}

/** A pino destination that writes each JSON line to `target` as a readable line ({@link formatLogLine}). */
export function prettyDestination(target: { write(text: string): unknown }): DestinationStream {
  return {
    write(line: string) {
      target.write(formatLogLine(line))
    },
  }
}

const LEVEL_LABELS: Readonly<Record<number, string>> = {
  10: 'TRACE',
  20: 'DEBUG',
  30: 'INFO',
  40: 'WARN',
  50: 'ERROR',
  60: 'FATAL',
}

/** Fields a readable line shows in its fixed part (or, for pino's own, not at all). */
const SHOWN = new Set(['level', 'time', 'msg', 'component', 'pid', 'hostname', 'v'])

/**
 * One pino JSON line as `HH:MM:SS.mmm LEVEL component: message key=value …` (local time; the level
 * padded to five characters; strings quoted only when they hold spaces, quotes, `=` or nothing; other
 * values as JSON). An error logged as `err` (pino's serializer: type, message, stack) shows its message
 * as the value and its stack on indented lines below. A line that is not a JSON object passes unchanged.
 * Ends with a newline.
 */
export function formatLogLine(line: string): string {
  let record: unknown
  try {
    record = JSON.parse(line)
  } catch {
    return line.endsWith('\n') ? line : `${line}\n`
  }
  if (typeof record !== 'object' || record === null || Array.isArray(record)) {
    return line.endsWith('\n') ? line : `${line}\n`
  }
  const r = record as Record<string, unknown>
  const level = typeof r.level === 'number' ? (LEVEL_LABELS[r.level] ?? `L${r.level}`) : 'LOG'
  let text = `${clock(typeof r.time === 'number' ? r.time : systemClock.nowMs())} ${level.padEnd(5)} `
  if (typeof r.component === 'string') text += `${r.component}: `
  text += typeof r.msg === 'string' ? r.msg : ''
  const stacks: string[] = []
  for (const [key, value] of Object.entries(r)) {
    if (SHOWN.has(key) || value === undefined) continue
    if (isSerializedError(value)) {
      text += ` ${key}=${scalar(value.message)}`
      if (typeof value.stack === 'string') stacks.push(value.stack)
      continue
    }
    text += ` ${key}=${scalar(value)}`
  }
  for (const stack of stacks) {
    text += `\n${stack
      .split('\n')
      .map(l => `    ${l.trimStart()}`)
      .join('\n')}`
  }
  return `${text}\n`
}

function clock(ms: number): string {
  const d = new Date(ms)
  const two = (n: number) => String(n).padStart(2, '0')
  return `${two(d.getHours())}:${two(d.getMinutes())}:${two(d.getSeconds())}.${String(d.getMilliseconds()).padStart(3, '0')}`
}

function isSerializedError(value: unknown): value is { message: string; stack?: unknown } {
  return (
    typeof value === 'object' &&
    value !== null &&
    typeof (value as { message?: unknown }).message === 'string' &&
    ('stack' in value || 'type' in value)
  )
}

function scalar(value: unknown): string {
  if (typeof value === 'string') return /^[^\s"=]+$/.test(value) ? value : JSON.stringify(value)
  return JSON.stringify(value) ?? String(value)
}

/** Default window of {@link createLogLimiter}: one line per key per this many ms. */
export const LOG_LIMIT_INTERVAL_MS = 10_000
/** Most distinct keys a limiter tracks; beyond, new keys share one bucket. */
export const LOG_LIMIT_KEYS_MAX = 1024

/**
 * Rate-limits lines that a peer can trigger at will (refused messages, bad frames), so a flood cannot
 * grow the log by megabytes: per key, the first line in each window is written and the rest are
 * suppressed; the next line written for that key carries `suppressed: N`. Counters elsewhere stay exact.
 */
export interface LogLimiter {
  log(level: 'error' | 'warn' | 'info' | 'debug', key: string, context: object, message: string): void
}

/** Creates a {@link LogLimiter} over `logger`, timed by `clock` (monotonic). */
export function createLogLimiter(
  logger: Logger,
  clock: { monotonicMs(): number },
  init: { readonly intervalMs?: number; readonly keysMax?: number } = {},
): LogLimiter {
  const intervalMs = init.intervalMs ?? LOG_LIMIT_INTERVAL_MS
  const keysMax = init.keysMax ?? LOG_LIMIT_KEYS_MAX
  const windows = new Map<string, { openedAtMs: number; suppressed: number }>()
  return {
    log(level, key, context, message) {
      const nowMs = clock.monotonicMs()
      const bucket = windows.has(key) || windows.size < keysMax ? key : '(other)'
      const window = windows.get(bucket)
      if (window !== undefined && nowMs - window.openedAtMs < intervalMs) {
        window.suppressed += 1
        return
      }
      const suppressed = window?.suppressed ?? 0
      windows.set(bucket, { openedAtMs: nowMs, suppressed: 0 })
      logger[level](suppressed > 0 ? { ...context, suppressed } : context, message)
    },
  }
}
