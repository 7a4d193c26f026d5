/** Durations as users write them (`500ms`, `10s`, `5m`, `24h`, `7d`), per CLI.md. */

const UNIT_MS = { ms: 1, s: 1_000, m: 60_000, h: 3_600_000, d: 86_400_000 } as const
const PATTERN = /^(\d+)(ms|s|m|h|d)$/

/** Parses `text` into milliseconds, or returns `undefined` when it is not a duration. */
export function parseDurationMs(text: string): number | undefined {
  const match = PATTERN.exec(text.trim())
  if (match === null) return undefined
  const value = Number(match[1]) * UNIT_MS[match[2] as keyof typeof UNIT_MS]
  return Number.isSafeInteger(value) ? value : undefined
}

/** Formats milliseconds with the largest unit that divides it exactly (`90000` → `90s`). */
export function formatDurationMs(ms: number): string {
  for (const unit of ['d', 'h', 'm', 's'] as const) {
    if (ms !== 0 && ms % UNIT_MS[unit] === 0) return `${ms / UNIT_MS[unit]}${unit}`
  }
  return `${ms}ms`
}
