/**
 * Logging: pino, one child logger per component (`component` field), constant messages with a context
 * object (STYLE.md §7). Agents log JSON lines to stderr; libraries and tests get a silent logger unless
 * they pass one. Chosen over hand-written logging for its speed, levels and child loggers.
 */
import { type Logger, pino } from 'pino'

export type { Logger } from 'pino'

/** Log levels the config accepts. */
export type LogLevel = 'silent' | 'error' | 'warn' | 'info' | 'debug' | 'trace'

/** A logger writing JSON lines to stderr (fd 2) at `level`, with `name` on every line. */
export function createLogger(level: LogLevel, name?: string): Logger {
  return pino(
    { level, base: name === undefined ? {} : { node: name } },
    pino.destination({ fd: 2, sync: true }),
  )
}

/** A logger that writes nothing (the default for libraries and tests). */
export function silentLogger(): Logger {
  return pino({ level: 'silent' })
}
