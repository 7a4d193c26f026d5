/**
 * Proves the live-output chunker (src/node/live-output.ts) on the manual clock: written data waits
 * the coalescing delay and leaves as one chunk, a full chunk leaves at once, streams keep their order
 * and never share a chunk, seq counts 0, 1, 2…, a character split across writes arrives whole, the
 * token bucket bounds chunks per second, output faster than the rate or past the byte bound stops the
 * stream (a prefix, never a hole) and is counted, and `finish` sends what is pending at once, before
 * the caller's done, dropping and counting only what the bucket does not allow. A property test runs
 * random writes and pauses and checks every invariant against the input: chunks in order and in
 * bounds, their data a prefix of what was written, sent plus dropped equal to what was written, and
 * no interval holding more chunks than the bucket allows.
 */
import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { OUTPUT_CHUNK_BYTES_MAX, type OutputStream } from '../../src/gossip/reply.js'
import { createManualClock, type ManualClock } from '../../src/node/clock.js'
import {
  createLiveOutput,
  createLiveOutputCounters,
  LIVE_OUTPUT_CHUNKS_PER_SECOND,
  LIVE_OUTPUT_COALESCE_MS,
  type LiveChunk,
  type LiveOutputInit,
} from '../../src/node/live-output.js'

const bytes = (text: string) => new TextEncoder().encode(text)

function setup(init: Partial<LiveOutputInit> = {}, clock: ManualClock = createManualClock()) {
  const sent: (LiveChunk & { atMs: number })[] = []
  const counters = createLiveOutputCounters()
  const live = createLiveOutput(
    { clock, counters, send: chunk => sent.push({ ...chunk, atMs: clock.monotonicMs() }) },
    init,
  )
  const write = (text: string, stream: OutputStream = 'stdout') => live.push(stream, bytes(text))
  return { clock, sent, counters, live, write }
}

describe('live output chunker', () => {
  it('coalesces writes for the delay, then sends them as one chunk', () => {
    const { clock, sent, write } = setup()
    write('one\n')
    clock.advance(50)
    write('two\n')
    clock.advance(LIVE_OUTPUT_COALESCE_MS - 51)
    expect(sent).toEqual([])
    clock.advance(1)
    expect(sent).toEqual([{ stream: 'stdout', seq: 0, data: 'one\ntwo\n', atMs: LIVE_OUTPUT_COALESCE_MS }])
    // The next write starts a new delay of its own.
    write('three\n')
    clock.advance(LIVE_OUTPUT_COALESCE_MS)
    expect(sent.map(c => [c.seq, c.data])).toEqual([
      [0, 'one\ntwo\n'],
      [1, 'three\n'],
    ])
  })

  it('sends a full chunk at once and the rest after the delay', () => {
    const { clock, sent, write } = setup()
    write('x'.repeat(OUTPUT_CHUNK_BYTES_MAX + 10))
    expect(sent.map(c => c.data.length)).toEqual([OUTPUT_CHUNK_BYTES_MAX])
    clock.advance(LIVE_OUTPUT_COALESCE_MS)
    expect(sent.map(c => c.data.length)).toEqual([OUTPUT_CHUNK_BYTES_MAX, 10])
  })

  it('keeps stdout and stderr in order, one stream per chunk', () => {
    const { clock, sent, write } = setup()
    write('a', 'stdout')
    write('b', 'stderr')
    write('c', 'stderr')
    write('d', 'stdout')
    clock.advance(LIVE_OUTPUT_COALESCE_MS)
    expect(sent.map(c => [c.seq, c.stream, c.data])).toEqual([
      [0, 'stdout', 'a'],
      [1, 'stderr', 'bc'],
      [2, 'stdout', 'd'],
    ])
  })

  it('joins a character written in two pieces, and marks one left incomplete at the end', () => {
    const { clock, sent, live } = setup()
    const euro = bytes('€')
    live.push('stdout', euro.subarray(0, 2))
    live.push('stderr', bytes('!'))
    live.push('stdout', euro.subarray(2))
    clock.advance(LIVE_OUTPUT_COALESCE_MS)
    expect(sent.map(c => c.data)).toEqual(['!', '€'])
    live.push('stdout', euro.subarray(0, 1))
    live.finish()
    expect(sent.map(c => c.data)).toEqual(['!', '€', '\ufffd'])
  })

  it('never sends more than the bucket allows: a burst, then one chunk per interval', () => {
    // Big enough a pending buffer that the rate, not the buffer, is what binds here.
    const { clock, sent, write, counters } = setup({ pendingBytesMax: 64 * OUTPUT_CHUNK_BYTES_MAX })
    write('x'.repeat(30 * OUTPUT_CHUNK_BYTES_MAX))
    expect(sent).toHaveLength(LIVE_OUTPUT_CHUNKS_PER_SECOND)
    clock.advance(1000 / LIVE_OUTPUT_CHUNKS_PER_SECOND - 1)
    expect(sent).toHaveLength(LIVE_OUTPUT_CHUNKS_PER_SECOND)
    clock.advance(1)
    expect(sent).toHaveLength(LIVE_OUTPUT_CHUNKS_PER_SECOND + 1)
    clock.advance(1000)
    expect(sent).toHaveLength(2 * LIVE_OUTPUT_CHUNKS_PER_SECOND + 1)
    expect(counters.cutRate).toBe(0)
  })

  it('stops streaming, counted, when output outruns the rate: the stream is a prefix', () => {
    const { clock, sent, write, counters } = setup()
    const pendingMax = OUTPUT_CHUNK_BYTES_MAX * LIVE_OUTPUT_CHUNKS_PER_SECOND
    write('a'.repeat(pendingMax + 100))
    write('b'.repeat(50))
    clock.advance(10_000)
    write('c')
    clock.advance(10_000)
    expect(sent.map(c => c.data).join('')).toBe('a'.repeat(pendingMax))
    expect(counters).toMatchObject({
      cutRate: 1,
      cutTotal: 0,
      droppedBytes: 100 + 50 + 1,
      chunks: sent.length,
    })
  })

  it('stops at the byte bound, counted', () => {
    const { clock, sent, write, counters } = setup({ bytesMax: 10 })
    write('0123456')
    write('789abc')
    write('def')
    clock.advance(LIVE_OUTPUT_COALESCE_MS)
    expect(sent.map(c => c.data)).toEqual(['0123456789'])
    expect(counters).toMatchObject({ cutTotal: 1, cutRate: 0, droppedBytes: 3 + 3, bytes: 10 })
  })

  it('finish sends what is pending at once, then ignores further writes and leaves no timer', () => {
    const { clock, sent, write, live } = setup()
    write('last line\n')
    live.finish()
    expect(sent.map(c => c.data)).toEqual(['last line\n'])
    write('after the end')
    live.finish()
    clock.advance(10_000)
    expect(sent).toHaveLength(1)
    expect(clock.pending()).toBe(0)
  })

  it('finish drops and counts what the bucket does not allow, without waiting', () => {
    const { sent, write, live, counters, clock } = setup({ pendingBytesMax: 64 * OUTPUT_CHUNK_BYTES_MAX })
    write('x'.repeat(12 * OUTPUT_CHUNK_BYTES_MAX + 5))
    expect(sent).toHaveLength(LIVE_OUTPUT_CHUNKS_PER_SECOND)
    clock.advance(1000 / LIVE_OUTPUT_CHUNKS_PER_SECOND - 1)
    live.finish()
    expect(sent).toHaveLength(LIVE_OUTPUT_CHUNKS_PER_SECOND)
    expect(counters.droppedBytes).toBe(2 * OUTPUT_CHUNK_BYTES_MAX + 5)
    expect(clock.pending()).toBe(0)
  })

  it('survives a send callback that throws, counting it', () => {
    const clock = createManualClock()
    const counters = createLiveOutputCounters()
    const live = createLiveOutput({
      clock,
      counters,
      send: () => {
        throw new Error('boom')
      },
    })
    live.push('stdout', bytes('x'))
    expect(() => clock.advance(LIVE_OUTPUT_COALESCE_MS)).not.toThrow()
    expect(counters).toMatchObject({ sendErrors: 1, chunks: 1, runs: 1 })
  })

  it('keeps every invariant under random writes and pauses (property)', () => {
    const rate = 5
    const chunkBytesMax = 16
    const op = fc.record({
      waitMs: fc.integer({ min: 0, max: 400 }),
      stream: fc.constantFrom<OutputStream>('stdout', 'stderr'),
      // BMP text and astral characters, never split inside a write: the prefix check is then exact.
      text: fc.string({ unit: fc.constantFrom('a', 'b', '\n', 'é', '€', '😀'), minLength: 1, maxLength: 40 }),
    })
    fc.assert(
      fc.property(
        fc.array(op, { maxLength: 60 }),
        fc.integer({ min: 20, max: 4000 }),
        fc.integer({ min: 1, max: 4 }),
        (ops, bytesMax, pendingChunks) => {
          const { clock, sent, write, live, counters } = setup({
            chunkBytesMax,
            chunksPerSecond: rate,
            bytesMax,
            pendingBytesMax: pendingChunks * chunkBytesMax,
          })
          const written: { stream: OutputStream; text: string }[] = []
          for (const { waitMs, stream, text } of ops) {
            clock.advance(waitMs)
            write(text, stream)
            written.push({ stream, text })
          }
          clock.advance(300)
          live.finish()
          // In order, in bounds, one stream each.
          sent.forEach((c, i) => {
            expect(c.seq).toBe(i)
            const size = Buffer.byteLength(c.data, 'utf8')
            expect(size).toBeGreaterThan(0)
            expect(size).toBeLessThanOrEqual(chunkBytesMax)
          })
          // Per stream, what was sent is a prefix of what was written on it; overall within bytesMax.
          for (const stream of ['stdout', 'stderr'] as const) {
            const out = sent
              .filter(c => c.stream === stream)
              .map(c => c.data)
              .join('')
            const input = written
              .filter(w => w.stream === stream)
              .map(w => w.text)
              .join('')
            expect(input.startsWith(out)).toBe(true)
          }
          const total = written.reduce((n, w) => n + Buffer.byteLength(w.text, 'utf8'), 0)
          expect(counters.bytes).toBeLessThanOrEqual(bytesMax)
          expect(counters.bytes + counters.droppedBytes).toBe(total)
          expect(counters.cutRate + counters.cutTotal).toBeLessThanOrEqual(1)
          if (counters.droppedBytes > 0 && counters.cutRate + counters.cutTotal === 0) {
            // Only finish may drop without a cut: the pending tail the bucket did not allow.
            expect(counters.droppedBytes).toBeLessThanOrEqual(pendingChunks * chunkBytesMax)
          }
          // Token bucket: any run of chunks i..j fits in the burst plus what the interval refills.
          for (let i = 0; i < sent.length; i++) {
            for (let j = i; j < sent.length; j++) {
              const refill = ((sent[j]!.atMs - sent[i]!.atMs) * rate) / 1000
              expect(j - i + 1).toBeLessThanOrEqual(rate + refill + 1e-9)
            }
          }
          expect(clock.pending()).toBe(0)
        },
      ),
      { numRuns: 200 },
    )
  })
})
