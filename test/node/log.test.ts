// Proves the readable log format: each pino JSON line becomes `HH:MM:SS.mmm LEVEL component: message
// key=value …` (local time, level padded to five), strings quoted only when needed, errors shown by
// message with the stack indented below, non-JSON passed through; that `auto` means pretty exactly on a
// terminal; and that a real pino logger writing through the destination produces such lines.

import { pino } from 'pino'
import { describe, expect, it } from 'vitest'
import {
  createLogLimiter,
  formatLogLine,
  type Logger,
  prettyDestination,
  resolveLogFormat,
} from '../../src/node/log.js'

const AT = new Date(2030, 0, 2, 3, 4, 5, 6).getTime() // local time 03:04:05.006

describe('formatLogLine', () => {
  it('writes time, level, component, message and the other fields', () => {
    const line = JSON.stringify({
      level: 30,
      time: AT,
      node: 'web1',
      component: 'membership',
      member: 'db2',
      state: 'suspect',
      silentMs: 4_000,
      msg: 'member state changed',
    })
    expect(formatLogLine(`${line}\n`)).toBe(
      '03:04:05.006 INFO  membership: member state changed node=web1 member=db2 state=suspect silentMs=4000\n',
    )
  })

  it.each([
    [10, 'TRACE'],
    [20, 'DEBUG'],
    [40, 'WARN '],
    [50, 'ERROR'],
    [60, 'FATAL'],
  ])('labels level %i as %j', (level, label) => {
    expect(formatLogLine(JSON.stringify({ level, time: AT, msg: 'm' }))).toBe(`03:04:05.006 ${label} m\n`)
  })

  it('quotes strings only when they need it and writes other values as JSON', () => {
    const line = JSON.stringify({
      level: 30,
      time: AT,
      msg: 'x',
      a: 'two words',
      b: '',
      c: 'k=v',
      d: true,
      e: null,
      f: ['/ip4/1.2.3.4/tcp/1'],
      g: { n: 1 },
    })
    expect(formatLogLine(line)).toBe(
      '03:04:05.006 INFO  x a="two words" b="" c="k=v" d=true e=null f=["/ip4/1.2.3.4/tcp/1"] g={"n":1}\n',
    )
  })

  it('shows an error by its message, with its stack indented below', () => {
    const line = JSON.stringify({
      level: 50,
      time: AT,
      component: 'dial',
      err: {
        type: 'Error',
        message: 'connection refused',
        stack: 'Error: connection refused\n    at dial (x.js:1:1)',
      },
      msg: 'dial failed',
    })
    expect(formatLogLine(line)).toBe(
      '03:04:05.006 ERROR dial: dial failed err="connection refused"\n    Error: connection refused\n    at dial (x.js:1:1)\n',
    )
  })

  it('passes lines that are not JSON objects through', () => {
    expect(formatLogLine('not json\n')).toBe('not json\n')
    expect(formatLogLine('[1,2]')).toBe('[1,2]\n')
  })
})

describe('resolveLogFormat', () => {
  it('is pretty on a terminal and JSON otherwise unless set', () => {
    expect(resolveLogFormat('auto', true)).toBe('pretty')
    expect(resolveLogFormat('auto', false)).toBe('json')
    expect(resolveLogFormat('json', true)).toBe('json')
    expect(resolveLogFormat('pretty', false)).toBe('pretty')
  })
})

describe('prettyDestination', () => {
  it('turns what a pino logger writes into readable lines', () => {
    const written: string[] = []
    const log = pino(
      { level: 'info', base: { node: 'n1' } },
      prettyDestination({ write: t => written.push(t) }),
    )
    log.child({ component: 'control' }).info({ method: 'status' }, 'request served')
    log.debug('not shown')
    expect(written).toHaveLength(1)
    expect(written[0]).toMatch(
      /^\d\d:\d\d:\d\d\.\d{3} INFO {2}control: request served node=n1 method=status\n$/,
    )
  })
})

describe('log limiter', () => {
  it('writes one line per key per window and reports how many it suppressed', () => {
    const lines: Array<{ message: string; context: Record<string, unknown> }> = []
    const record = (context: Record<string, unknown>, message: string) => lines.push({ context, message })
    const logger = { warn: record, info: record, error: record, debug: record } as unknown as Logger
    let now = 0
    const limiter = createLogLimiter(logger, { monotonicMs: () => now }, { intervalMs: 1_000, keysMax: 2 })
    for (let i = 0; i < 500; i++) limiter.log('warn', 'bad-frame', { peer: 'p' }, 'bad authority message')
    expect(lines).toHaveLength(1)
    now = 1_000
    limiter.log('warn', 'bad-frame', { peer: 'p' }, 'bad authority message')
    expect(lines[1]?.context).toEqual({ peer: 'p', suppressed: 499 })
    // Keys are bounded: the third distinct key shares one bucket with every later one.
    limiter.log('info', 'a', {}, 'x')
    limiter.log('info', 'b', {}, 'y')
    limiter.log('info', 'c', {}, 'z')
    expect(lines.map(l => l.message)).toEqual(['bad authority message', 'bad authority message', 'x', 'y'])
  })
})
