// Proves the one set of field readers: each reader's size or range rule (a table of accepted and
// refused values), that every refusal is a DecodeError `malformed` naming the field, and that
// readFormatVersion tells an older format apart from an unknown one.
import { describe, expect, it } from 'vitest'
import { DecodeError } from '../../src/wire/cbor.js'
import {
  readBytes,
  readFormatVersion,
  readInteger,
  readName,
  readRecord,
  readTextList,
  readTextMap,
  tryRead,
} from '../../src/wire/fields.js'

function outcome(read: () => unknown): string {
  const result = tryRead(read)
  return result.ok ? 'ok' : `${result.reason}: ${result.detail}`
}

describe('field readers', () => {
  const bytes = (n: number) => ({ x: new Uint8Array(n) })
  const table: [string, () => unknown, RegExp | 'ok'][] = [
    ['exact length', () => readBytes(bytes(4), 'x', { length: 4 }), 'ok'],
    ['wrong length', () => readBytes(bytes(3), 'x', { length: 4 }), /^malformed: x is 3 bytes/],
    ['within bounds', () => readBytes(bytes(1), 'x', { bytesMin: 1, bytesMax: 2 }), 'ok'],
    ['below bytesMin', () => readBytes(bytes(0), 'x', { bytesMin: 1, bytesMax: 2 }), /^malformed: x /],
    ['above bytesMax', () => readBytes(bytes(3), 'x', { bytesMax: 2 }), /^malformed: x /],
    ['not bytes', () => readBytes({ x: 'a' }, 'x', { bytesMax: 2 }), /^malformed: x is not bytes/],
    ['default integer range', () => readInteger({ x: 0 }, 'x'), 'ok'],
    ['negative by default', () => readInteger({ x: -1 }, 'x'), /^malformed: x /],
    ['custom range', () => readInteger({ x: -5 }, 'x', { min: -10, max: 0 }), 'ok'],
    ['above max', () => readInteger({ x: 11 }, 'x', { min: 1, max: 10 }), /^malformed: x /],
    ['not an integer', () => readInteger({ x: 1.5 }, 'x'), /^malformed: x /],
    ['name', () => readName({ x: 'web-1.a_b' }, 'x'), 'ok'],
    ['bad name', () => readName({ x: '-web' }, 'x'), /^malformed: x is not a valid name/],
    ['exact keys', () => readRecord({ a: 1 }, 'thing', ['a'], ['b']), 'ok'],
    ['missing key', () => readRecord({}, 'thing', ['a']), /^malformed: thing lacks a/],
    ['unknown key', () => readRecord({ a: 1, c: 2 }, 'thing', ['a']), /^malformed: thing has unknown/],
    ['text list', () => readTextList({ x: ['a', 'bb'] }, 'x', 2, 2), 'ok'],
    ['text list item too long', () => readTextList({ x: ['abc'] }, 'x', 2, 2), /^malformed: x\[0\]/],
    ['text map', () => readTextMap({ x: { k: 'v' } }, 'x', 1, 1, 1), 'ok'],
    ['text map too many', () => readTextMap({ x: { k: 'v', l: 'w' } }, 'x', 1, 1, 1), /^malformed: x /],
  ]
  it.each(table)('%s', (_label, read, expected) => {
    if (expected === 'ok') expect(outcome(read)).toBe('ok')
    else expect(outcome(read)).toMatch(expected)
  })

  it('throws DecodeError, which tryRead turns into a result', () => {
    expect(() => readInteger({}, 'x')).toThrow(DecodeError)
    expect(() =>
      tryRead(() => {
        throw new TypeError('not ours')
      }),
    ).toThrow(TypeError)
  })

  it('readFormatVersion: current, older (with the remedy) and unknown versions', () => {
    const read = (version: unknown) => () => readFormatVersion({ version }, 'widget', 3, 'do the thing')
    expect(outcome(read(3))).toBe('ok')
    expect(outcome(read(2))).toBe('malformed: widget format version 2 is from an older mesh; do the thing')
    expect(outcome(read(4))).toMatch(/^malformed: widget format version 4 is not supported/)
    expect(outcome(read('3'))).toMatch(/^malformed: widget format version 3 is not supported/)
  })
})
