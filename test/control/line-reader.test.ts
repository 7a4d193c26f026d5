// Proves the control channel's framing on its own: lines split anywhere across chunks come out whole
// and in order (multi-byte characters included), a line of exactly the limit passes, one byte more is
// refused once and stops the reader (with or without its newline), and a stopped stream is left unread.
import { describe, expect, it } from 'vitest'
import { createLineReader, encodeLine } from '../../src/control/line-reader.js'

function reader(lineBytesMax: number, stopAfter = Number.POSITIVE_INFINITY) {
  const lines: string[] = []
  let tooLarge = 0
  const push = createLineReader({
    lineBytesMax,
    onLine: line => lines.push(line),
    onTooLarge: () => tooLarge++,
    stopped: () => lines.length >= stopAfter,
  })
  return { push, lines, tooLarge: () => tooLarge }
}

describe('createLineReader', () => {
  it('delivers lines split at every byte boundary whole and in order', () => {
    const text = '{"a":1}\n\n{"b":"ünïcødé ✓"}\nlast\n'
    const bytes = Buffer.from(text)
    for (let cut = 0; cut <= bytes.byteLength; cut++) {
      const r = reader(1_000)
      r.push(bytes.subarray(0, cut))
      r.push(bytes.subarray(cut))
      expect(r.lines).toEqual(['{"a":1}', '', '{"b":"ünïcødé ✓"}', 'last'])
      expect(r.tooLarge()).toBe(0)
    }
  })

  it('delivers a line fed one byte at a time', () => {
    const r = reader(1_000)
    for (const byte of Buffer.from('héllo\nworld\n')) r.push(Buffer.from([byte]))
    expect(r.lines).toEqual(['héllo', 'world'])
  })

  it('keeps an unfinished line until its newline comes', () => {
    const r = reader(1_000)
    r.push(Buffer.from('par'))
    expect(r.lines).toEqual([])
    r.push(Buffer.from('tial\n'))
    expect(r.lines).toEqual(['partial'])
  })

  it('accepts a line of exactly the limit and refuses one byte more, once', () => {
    const exact = reader(10)
    exact.push(Buffer.from(`${'x'.repeat(10)}\n`))
    expect(exact.lines).toEqual(['x'.repeat(10)])
    expect(exact.tooLarge()).toBe(0)

    const over = reader(10)
    over.push(Buffer.from(`ok\n${'x'.repeat(6)}`))
    over.push(Buffer.from(`${'x'.repeat(5)}\nafter\n`))
    over.push(Buffer.from('more\n'))
    expect(over.lines).toEqual(['ok'])
    expect(over.tooLarge()).toBe(1)
  })

  it('refuses an oversized line before its newline arrives', () => {
    const r = reader(10)
    r.push(Buffer.from('y'.repeat(11)))
    expect(r.tooLarge()).toBe(1)
    r.push(Buffer.from('\nok\n'))
    expect(r.lines).toEqual([])
    expect(r.tooLarge()).toBe(1)
  })

  it('reads nothing more once stopped', () => {
    const r = reader(1_000, 1)
    r.push(Buffer.from('one\ntwo\nthree\n'))
    r.push(Buffer.from('four\n'))
    expect(r.lines).toEqual(['one'])
  })
})

describe('encodeLine', () => {
  it('writes one JSON line that the reader reads back', () => {
    const frame = { id: 1, method: 'exec', params: { text: 'a\nb' } }
    const line = encodeLine(frame)
    expect(line.endsWith('\n')).toBe(true)
    expect(line.indexOf('\n')).toBe(line.length - 1)
    const r = reader(1_000)
    r.push(Buffer.from(line))
    expect(r.lines.map(l => JSON.parse(l))).toEqual([frame])
  })

  it('throws on a frame JSON cannot hold', () => {
    expect(() => encodeLine({ id: 1, result: 1n })).toThrow(TypeError)
  })
})
