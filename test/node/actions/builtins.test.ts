// Proves the built-ins against a fake system and a manual clock: the uptime line matches procps' format
// (tables) and its time of day follows the clock and the time zone, utmp images are counted as `uptime`
// counts them, ping answers with the clock's time and facts with the node's facts.
import { describe, expect, it } from 'vitest'
import {
  countUtmpUsers,
  formatTimeOfDay,
  formatUptimeLine,
  UTMP_RECORD_BYTES,
} from '../../../src/node/actions/index.js'
import { createManualClock, systemClock } from '../../../src/node/clock.js'
import { fakeSystem, useActionRegistries } from './helpers.js'

const NOW_MS = Date.UTC(2026, 0, 2, 10, 14, 3)
const { registry } = useActionRegistries()

describe('formatUptimeLine', () => {
  const load = { load1: 0.15, load5: 0.1, load15: 0.05 }
  it.each([
    [
      3 * 86_400 + 4 * 3_600 + 2 * 60,
      2,
      ' 10:14:03 up 3 days,  4:02,  2 users,  load average: 0.15, 0.10, 0.05',
    ],
    [86_400 + 5 * 60 + 59, 1, ' 10:14:03 up 1 day, 5 min,  1 user,  load average: 0.15, 0.10, 0.05'],
    [0, 0, ' 10:14:03 up 0 min,  0 users,  load average: 0.15, 0.10, 0.05'],
    [23 * 3_600 + 59 * 60, 12, ' 10:14:03 up 23:59, 12 users,  load average: 0.15, 0.10, 0.05'],
    [400 * 86_400 + 3_600, 3, ' 10:14:03 up 400 days,  1:00,  3 users,  load average: 0.15, 0.10, 0.05'],
  ])('%i s, %i users', (uptimeSeconds, users, line) => {
    expect(formatUptimeLine({ time: '10:14:03', uptimeSeconds, users, ...load })).toBe(line)
  })

  it('rounds load averages to two decimals', () => {
    const line = formatUptimeLine({
      time: '00:00:00',
      uptimeSeconds: 60,
      users: 1,
      load1: 1.006,
      load5: 12.5,
      load15: 0,
    })
    expect(line.endsWith('load average: 1.01, 12.50, 0.00')).toBe(true)
  })
})

describe('formatTimeOfDay', () => {
  it('shows the time of day in the given zone', () => {
    expect(formatTimeOfDay(NOW_MS, 0)).toBe('10:14:03')
    expect(formatTimeOfDay(NOW_MS, 120)).toBe('12:14:03')
    expect(formatTimeOfDay(NOW_MS, -11 * 60)).toBe('23:14:03')
  })
})

describe('countUtmpUsers', () => {
  function record(type: number, user: string): Uint8Array {
    const bytes = new Uint8Array(UTMP_RECORD_BYTES)
    new DataView(bytes.buffer).setInt16(0, type, true)
    bytes.set(new TextEncoder().encode(user), 44)
    return bytes
  }
  function utmp(...records: Uint8Array[]): Uint8Array {
    return Buffer.concat(records)
  }

  it('counts USER_PROCESS records with a user name', () => {
    const image = utmp(
      record(2, 'reboot'),
      record(7, 'alice'),
      record(8, ''),
      record(7, 'bob'),
      record(7, ''),
    )
    expect(countUtmpUsers(image)).toBe(2)
  })

  it('ignores a partial trailing record and empty input', () => {
    expect(countUtmpUsers(utmp(record(7, 'alice'), record(7, 'bob').subarray(0, 100)))).toBe(1)
    expect(countUtmpUsers(new Uint8Array(0))).toBe(0)
  })
})

describe('built-ins', () => {
  it('uptime returns the line and its fields', async () => {
    const result = await registry({ clock: createManualClock(NOW_MS) }).run('uptime', [])
    expect(result).toMatchObject({ status: 'ok', exitCode: 0, timedOut: false, truncated: false })
    expect(result.output).toBe(' 10:14:03 up 3 days,  4:02,  2 users,  load average: 0.15, 0.10, 0.05\n')
    expect(result.structured).toEqual({
      nowMs: NOW_MS,
      time: '10:14:03',
      uptimeSeconds: 273_779,
      users: 2,
      load1: 0.15,
      load5: 0.1,
      load15: 0.05,
    })
  })

  it('uptime on the real system has the procps shape', async () => {
    const result = await registry({ system: undefined, clock: systemClock }).run('uptime', [])
    expect(result.status).toBe('ok')
    expect(result.output).toMatch(
      /^ \d\d:\d\d:\d\d up (\d+ days?, )?(\d+ min|[ \d]\d:\d\d), [ \d]\d users?, {2}load average: \d+\.\d\d, \d+\.\d\d, \d+\.\d\d\n$/,
    )
  })

  it('ping answers pong with the node time', async () => {
    const result = await registry({ clock: createManualClock(NOW_MS) }).run('ping', [])
    expect(result.output).toBe('pong 2026-01-02T10:14:03.000Z\n')
    expect(result.structured).toEqual({ nowMs: NOW_MS })
  })

  it('facts returns the facts as JSON', async () => {
    const result = await registry({ clock: createManualClock(NOW_MS) }).run('facts', [])
    expect(JSON.parse(result.output)).toEqual({ hostname: 'web-1', os: 'linux' })
    expect(result.structured).toEqual({ hostname: 'web-1', os: 'linux' })
  })

  it('refuses arguments to a built-in', async () => {
    const result = await registry({ clock: createManualClock(NOW_MS) }).run('ping', ['x'])
    expect(result).toMatchObject({ status: 'error', errorCode: 'bad-arguments' })
  })

  it('can be limited or disabled', () => {
    expect(
      registry({ builtins: ['ping'] })
        .list()
        .map(a => a.name),
    ).toEqual(['ping'])
    expect(registry({ builtins: false }).has('uptime')).toBe(false)
  })
})

describe('built-ins on a moving clock', () => {
  it('read the time from the clock and the zone from the system', async () => {
    const clock = createManualClock(NOW_MS)
    const r = registry({ clock, system: { ...fakeSystem, utcOffsetMinutes: () => 90 } })
    clock.advance(60_000)
    expect((await r.run('ping', [])).structured).toEqual({ nowMs: NOW_MS + 60_000 })
    expect((await r.run('uptime', [])).output.startsWith(' 11:45:03 up ')).toBe(true)
  })
})
