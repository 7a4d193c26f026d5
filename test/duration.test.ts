// Proves duration parsing as CLI.md writes durations: units, refusals, and that values beyond what a
// number holds exactly (not finite, above Number.MAX_SAFE_INTEGER ms) are refused with a message.
import { describe, expect, it } from 'vitest'
import { formatDurationMs, parseDuration, parseDurationMs } from '../src/duration.js'

describe('parseDurationMs', () => {
  it.each([
    ['500ms', 500],
    ['10s', 10_000],
    ['5m', 300_000],
    ['24h', 86_400_000],
    ['7d', 604_800_000],
    [' 1s ', 1_000],
    [`${Number.MAX_SAFE_INTEGER}ms`, Number.MAX_SAFE_INTEGER],
  ])('%j is %d ms', (text, ms) => {
    expect(parseDurationMs(text)).toBe(ms)
    expect(parseDuration(text)).toEqual({ ok: true, ms })
  })

  it.each(['', '10', '10x', '-1s', '1.5s', 's'])('%j is not a duration', text => {
    expect(parseDurationMs(text)).toBeUndefined()
    expect(parseDuration(text)).toEqual({
      ok: false,
      problem: `'${text}' is not a duration like 500ms, 10s, 5m or 24h`,
    })
  })

  it.each([
    `${Number.MAX_SAFE_INTEGER + 1}ms`,
    '9999999999999d',
    `${'9'.repeat(400)}ms`,
    `${'9'.repeat(400)}d`,
  ])('%j is refused as too long (not finite or above MAX_SAFE_INTEGER)', text => {
    expect(parseDurationMs(text)).toBeUndefined()
    expect(parseDuration(text)).toEqual({
      ok: false,
      problem: `'${text}' is too long a duration: at most ${Number.MAX_SAFE_INTEGER} ms`,
    })
  })

  it('formats with the largest exact unit', () => {
    expect(formatDurationMs(90_000)).toBe('90s')
    expect(formatDurationMs(3_600_000)).toBe('1h')
    expect(formatDurationMs(1_500)).toBe('1500ms')
  })
})
