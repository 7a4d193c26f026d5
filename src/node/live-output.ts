/**
 * Live output: turns what one running action writes into a bounded stream of chunks for the requester
 * (`output` replies, src/gossip/reply.ts), while the run's own buffer still collects the output its
 * `done` carries. One chunker per run; the caller signs and routes each chunk it is handed.
 *
 * ```
 *   stdout/stderr pieces ──▶ decode (UTF-8, per stream) ──▶ pending (≤ 1 s of chunks) ──▶ chunks
 *                                                        │                      coalesced ≤ 100 ms or full,
 *            past the run's byte bound, or pending full ─┘ stop: the rest is    ≤ 10/s (token bucket),
 *            (output faster than the rate): streaming stops   not streamed      seq 0, 1, 2…
 * ```
 *
 * Bounds, and why: a chunk is at most {@link OUTPUT_CHUNK_BYTES_MAX} bytes and holds one stream; data
 * waits up to {@link LIVE_OUTPUT_COALESCE_MS} for more to join it (a line-by-line printer costs ≤ 10
 * chunks a second, not one per line); at most {@link LIVE_OUTPUT_CHUNKS_PER_SECOND} chunks a second on
 * average with bursts of as many, so each run costs the requester a bounded number of signature checks
 * however much it prints (a fan-out of N nodes still costs N times that: the rate is per run). Output
 * faster than the rate fills the pending buffer; then streaming stops for the rest of the run rather
 * than skip data, so the live stream is always a prefix of what the action wrote. The `done` still
 * carries the bounded output whatever happened to the chunks.
 *
 * `finish` (called once the run ended, before the `done` is sent) sends what is pending as far as the
 * bucket allows at once, so chunks normally reach the requester before the `done`; what the bucket
 * does not allow is dropped and counted, never waited for (the `done` must not be late).
 *
 * Pure logic on the {@link Clock} port: a test drives it with the manual clock.
 */
import { TextDecoder } from 'node:util'
import {
  OUTPUT_CHUNK_BYTES_MAX,
  OUTPUT_SEQ_MAX,
  OUTPUT_STREAM_BYTES_MAX,
  type OutputStream,
  utf8ByteLength,
} from '../gossip/reply.js'
import type { Clock, Timer } from './clock.js'

/** How long written data waits for more to join its chunk, ms. */
export const LIVE_OUTPUT_COALESCE_MS = 100
/** Chunks per second per run, on average; also the largest burst. */
export const LIVE_OUTPUT_CHUNKS_PER_SECOND = 10

/** One chunk to sign and send. */
export interface LiveChunk {
  readonly stream: OutputStream
  readonly seq: number
  /** 1 to `chunkBytesMax` UTF-8 bytes. */
  readonly data: string
}

/** Settings of one chunker; every field has the default named after it. */
export interface LiveOutputInit {
  /** Most UTF-8 bytes per chunk; default {@link OUTPUT_CHUNK_BYTES_MAX}. */
  readonly chunkBytesMax: number
  /** Default {@link LIVE_OUTPUT_COALESCE_MS}. */
  readonly coalesceMs: number
  /** Default {@link LIVE_OUTPUT_CHUNKS_PER_SECOND}. */
  readonly chunksPerSecond: number
  /**
   * Most bytes streamed per run; default {@link OUTPUT_STREAM_BYTES_MAX}. The action registry already
   * hands over at most the action's output limit; this bounds what decoding can add (U+FFFD for bad bytes).
   */
  readonly bytesMax: number
  /** Most bytes waiting to be sent; default one second of chunks (`chunkBytesMax × chunksPerSecond`). */
  readonly pendingBytesMax: number
}

/** What chunkers did, summed over runs (a chunker adds into the object it is given). Monotonic. */
export interface LiveOutputCounters {
  runs: number
  chunks: number
  /** UTF-8 bytes streamed. */
  bytes: number
  /** Runs whose streaming stopped early: output faster than the rate (pending full). */
  cutRate: number
  /** Runs whose streaming stopped at `bytesMax` or at the last seq. */
  cutTotal: number
  /** Bytes written after streaming stopped, or pending at the end beyond what the bucket allowed. */
  droppedBytes: number
  /** Chunks the send callback threw on (a bug; the run goes on). */
  sendErrors: number
}

/** Fresh, zeroed counters. */
export function createLiveOutputCounters(): LiveOutputCounters {
  return { runs: 0, chunks: 0, bytes: 0, cutRate: 0, cutTotal: 0, droppedBytes: 0, sendErrors: 0 }
}

/** The chunker of one run. */
export interface LiveOutput {
  /** Takes a piece of output as the action wrote it (raw bytes; a character may span pieces). */
  push(stream: OutputStream, data: Uint8Array): void
  /** The run ended: sends what is pending as far as the rate allows now, then ignores further pushes. */
  finish(): void
}

/** What a chunker needs. */
export interface LiveOutputComponents {
  readonly clock: Clock
  /** Called with each chunk, in seq order; must not block. */
  readonly send: (chunk: LiveChunk) => void
  /** Where to add what this run did; default counters of its own. */
  readonly counters?: LiveOutputCounters
}

interface Piece {
  readonly stream: OutputStream
  text: string
  bytes: number
  /** Monotonic time the oldest data in it was written. */
  readonly atMs: number
}

/**
 * Splits `text` after at most `bytesMax` UTF-8 bytes, on a character boundary. Pure.
 * @returns the head (≤ bytesMax bytes), its size, and the rest
 */
export function splitUtf8(text: string, bytesMax: number): { head: string; headBytes: number; rest: string } {
  let bytes = 0
  let end = 0
  while (end < text.length) {
    const unit = text.charCodeAt(end)
    const pair = unit >= 0xd800 && unit < 0xdc00 && end + 1 < text.length
    const next = pair ? text.charCodeAt(end + 1) : 0
    const isPair = pair && next >= 0xdc00 && next < 0xe000
    const size = isPair ? 4 : unit < 0x80 ? 1 : unit < 0x800 ? 2 : 3
    if (bytes + size > bytesMax) break
    bytes += size
    end += isPair ? 2 : 1
  }
  return { head: text.slice(0, end), headBytes: bytes, rest: text.slice(end) }
}

/** Creates the chunker of one run. */
export function createLiveOutput(
  components: LiveOutputComponents,
  init: Partial<LiveOutputInit> = {},
): LiveOutput {
  const { clock, send } = components
  const counters = components.counters ?? createLiveOutputCounters()
  const chunkBytesMax = init.chunkBytesMax ?? OUTPUT_CHUNK_BYTES_MAX
  const coalesceMs = init.coalesceMs ?? LIVE_OUTPUT_COALESCE_MS
  const rate = init.chunksPerSecond ?? LIVE_OUTPUT_CHUNKS_PER_SECOND
  const bytesMax = init.bytesMax ?? OUTPUT_STREAM_BYTES_MAX
  const pendingBytesMax = init.pendingBytesMax ?? chunkBytesMax * rate
  if (
    !(chunkBytesMax >= 4 && coalesceMs >= 0 && rate > 0 && bytesMax >= 0 && pendingBytesMax >= chunkBytesMax)
  ) {
    throw new RangeError('assertion: live output settings out of range')
  }
  counters.runs++

  const decoders: Record<OutputStream, TextDecoder> = {
    stdout: new TextDecoder('utf-8'),
    stderr: new TextDecoder('utf-8'),
  }
  const pending: Piece[] = []
  let pendingBytes = 0
  /** Bytes taken into the stream so far (sent or pending). */
  let acceptedBytes = 0
  let seq = 0
  /** `open`: streaming; `cut`: a bound stopped it (pending still goes out); `finished`: the run ended. */
  let state: 'open' | 'cut' | 'finished' = 'open'
  let tokens = rate
  let refilledAtMs = clock.monotonicMs()
  let timer: Timer | undefined

  const refill = (nowMs: number): void => {
    tokens = Math.min(rate, tokens + ((nowMs - refilledAtMs) * rate) / 1000)
    refilledAtMs = nowMs
  }

  const cut = (reason: 'rate' | 'total'): void => {
    if (state !== 'open') return
    state = 'cut'
    if (reason === 'rate') counters.cutRate++
    else counters.cutTotal++
  }

  /** Takes the next chunk off the front of `pending`. */
  const takeChunk = (): LiveChunk => {
    const front = pending[0]!
    const { head, headBytes, rest } = splitUtf8(front.text, chunkBytesMax)
    if (rest === '') pending.shift()
    else {
      front.text = rest
      front.bytes -= headBytes
    }
    pendingBytes -= headBytes
    return { stream: front.stream, seq: seq++, data: head }
  }

  const emit = (chunk: LiveChunk): void => {
    counters.chunks++
    counters.bytes += utf8ByteLength(chunk.data)
    try {
      send(chunk)
    } catch {
      counters.sendErrors++
    }
  }

  /** Sends every chunk that is due and that the bucket allows; arms the timer for the next one. */
  const pump = (finishing: boolean): void => {
    const nowMs = clock.monotonicMs()
    refill(nowMs)
    while (pending.length > 0 && tokens >= 1) {
      const front = pending[0]!
      const due = finishing || front.bytes >= chunkBytesMax || nowMs - front.atMs >= coalesceMs
      if (!due) break
      if (seq > OUTPUT_SEQ_MAX) {
        cut('total')
        break
      }
      tokens -= 1
      emit(takeChunk())
    }
    if (finishing || seq > OUTPUT_SEQ_MAX) {
      counters.droppedBytes += pendingBytes
      pending.length = 0
      pendingBytes = 0
      return
    }
    if (pending.length === 0 || timer !== undefined) return
    const front = pending[0]!
    const tokenWaitMs = tokens >= 1 ? 0 : ((1 - tokens) * 1000) / rate
    const dueWaitMs = front.bytes >= chunkBytesMax ? 0 : front.atMs + coalesceMs - nowMs
    timer = clock.setTimer(
      () => {
        timer = undefined
        if (state !== 'finished') pump(false)
      },
      Math.max(1, Math.ceil(Math.max(tokenWaitMs, dueWaitMs))),
    )
  }

  /** Adds decoded text to the stream, within the bounds; a bound that cuts it stops streaming. */
  const accept = (stream: OutputStream, text: string, nowMs: number): void => {
    if (text === '') return
    const bytes = utf8ByteLength(text)
    const roomTotal = bytesMax - acceptedBytes
    const roomPending = pendingBytesMax - pendingBytes
    let part = text
    let partBytes = bytes
    if (bytes > Math.min(roomTotal, roomPending)) {
      const split = splitUtf8(text, Math.max(0, Math.min(roomTotal, roomPending)))
      part = split.head
      partBytes = split.headBytes
      counters.droppedBytes += bytes - partBytes
      cut(roomTotal <= roomPending ? 'total' : 'rate')
    }
    if (part === '') return
    acceptedBytes += partBytes
    pendingBytes += partBytes
    const last = pending[pending.length - 1]
    if (last !== undefined && last.stream === stream) {
      last.text += part
      last.bytes += partBytes
    } else pending.push({ stream, text: part, bytes: partBytes, atMs: nowMs })
  }

  return {
    push(stream, data) {
      if (state !== 'open') {
        if (state === 'cut') counters.droppedBytes += data.byteLength
        return
      }
      // `stream: true` keeps a character split across pieces for the next piece of the same stream.
      accept(stream, decoders[stream].decode(data, { stream: true }), clock.monotonicMs())
      pump(false)
    },
    finish() {
      if (state === 'finished') return
      timer?.cancel()
      timer = undefined
      if (state === 'open') {
        // A character left incomplete at the end decodes as U+FFFD, as the done's output would show it.
        const nowMs = clock.monotonicMs()
        for (const stream of ['stdout', 'stderr'] as const) accept(stream, decoders[stream].decode(), nowMs)
      }
      state = 'finished'
      pump(true)
    },
  }
}
