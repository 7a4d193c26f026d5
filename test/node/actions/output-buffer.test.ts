// Proves the output bound directly: the first bytesMax bytes are kept and the rest only counted, output
// of exactly bytesMax is not truncated, and a cut inside a 2-, 3- or 4-byte UTF-8 character drops the
// partial character instead of decoding it as U+FFFD.
import { describe, expect, it } from 'vitest'
import { completeUtf8Length, OutputBuffer } from '../../../src/node/actions/output-buffer.js'

function buffered(bytesMax: number, ...chunks: string[]): OutputBuffer {
  const buffer = new OutputBuffer(bytesMax)
  for (const chunk of chunks) buffer.push(Buffer.from(chunk, 'utf8'))
  return buffer
}

describe('OutputBuffer', () => {
  it('keeps the first bytesMax bytes across chunks and counts the rest', () => {
    const buffer = buffered(5, 'abc', 'defg', 'hij')
    expect(buffer.text()).toBe('abcde')
    expect(buffer.total).toBe(10)
    expect(buffer.truncated).toBe(true)
  })

  it('is not truncated at exactly bytesMax', () => {
    const buffer = buffered(4, 'ab', 'cd')
    expect(buffer).toMatchObject({ total: 4, truncated: false })
    expect(buffer.text()).toBe('abcd')
  })

  it.each([
    ['é', 2],
    ['€', 3],
    ['😀', 4],
  ])('drops a cut %s (%i bytes) at the end', (char, bytes) => {
    for (let cut = 1; cut < bytes; cut++) {
      expect(buffered(bytes + cut, `${char}${char}`).text()).toBe(char)
    }
  })
})

describe('completeUtf8Length', () => {
  it('keeps complete text and ASCII', () => {
    expect(completeUtf8Length(Buffer.from('aé€😀', 'utf8'))).toBe(10)
    expect(completeUtf8Length(new Uint8Array(0))).toBe(0)
  })
})
