/** Durations as users write them (`500ms`, `10s`, `5m`, `24h`, `7d`), per CLI.md. */

const UNIT_MS = { ms: 1, s: 1_000, m: 60_000, h: 3_600_000, d: 86_400_000 } as const
const PATTERN = /^(\d+)(ms|s|m|h|d)$/

/** What {@link parseDuration} found: milliseconds, or why `text` is not a usable duration. */
export type DurationParse =
  | { readonly ok: true; readonly ms: number }
  | { readonly ok: false; readonly problem: string }

/**
 * Parses `text` into milliseconds. Refuses text that is not a duration, and durations whose value in
 * milliseconds is not finite or above `Number.MAX_SAFE_INTEGER` (they cannot be computed with exactly),
 * each with a message for the user.
 */
export function parseDuration(text: string): DurationParse {
  const match = PATTERN.exec(text.trim())
  if (match === null) return { ok: false, problem: `'${text}' is not a duration like 500ms, 10s, 5m or 24h` }
  const value = Number(match[1]) * UNIT_MS[match[2] as keyof typeof UNIT_MS]
  if (!Number.isFinite(value) || !Number.isSafeInteger(value)) {
    return {
      ok: false,
      problem: `'${text}' is too long a duration: at most ${Number.MAX_SAFE_INTEGER} ms`,
    }
  }
  return { ok: true, ms: value }
}

/**
 * Parses `text` into milliseconds, or returns `undefined` when it is not a duration or is out of range
 * (not finite, above `Number.MAX_SAFE_INTEGER` ms); {@link parseDuration} says which.
 */
export function parseDurationMs(text: string): number | undefined {
  const parsed = parseDuration(text)
  return parsed.ok ? parsed.ms : undefined
}

/** Formats milliseconds with the largest unit that divides it exactly (`90000` → `90s`). */
export function formatDurationMs(ms: number): string {
  for (const unit of ['d', 'h', 'm', 's'] as const) {
    if (ms !== 0 && ms % UNIT_MS[unit] === 0) return `${ms / UNIT_MS[unit]}${unit}`
  }
  return `${ms}ms`
}
