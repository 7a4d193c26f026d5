/**
 * The control channel's framing, for both ends: one JSON value per line, lines ended by `\n`, each at
 * most a given number of bytes. {@link createLineReader} cuts a byte stream into lines (a line may span
 * any number of chunks, and a multi-byte character split between chunks is decoded whole);
 * {@link encodeLine} writes one frame. Depends on nothing.
 */

/** What {@link createLineReader} needs. */
export interface LineReaderOptions {
  /** Longest line, in bytes, newline excluded. A line of exactly this length is accepted. */
  readonly lineBytesMax: number
  /** Receives each complete line (without its newline), in order. Empty lines included. */
  readonly onLine: (line: string) => void
  /**
   * Called once when a line is longer than `lineBytesMax`, as soon as that is known (before its newline
   * arrives). The reader then ignores all further input: the stream is out of sync.
   */
  readonly onTooLarge: () => void
  /** Asked before each line is delivered; once true (say the socket was destroyed) nothing more is read. */
  readonly stopped?: () => boolean
}

/** Feeds one chunk of the stream to the reader. */
export type LineReader = (chunk: Buffer) => void

const NEWLINE = 0x0a

/** Creates a reader; pass each chunk of the stream to the function it returns. */
export function createLineReader(options: LineReaderOptions): LineReader {
  const { lineBytesMax, onLine, onTooLarge } = options
  const stopped = options.stopped ?? (() => false)
  let pending: Buffer[] = []
  let pendingBytes = 0
  let broken = false

  function tooLarge(): void {
    broken = true
    pending = []
    pendingBytes = 0
    onTooLarge()
  }

  return chunk => {
    let start = 0
    for (;;) {
      if (broken || stopped()) return
      const newline = chunk.indexOf(NEWLINE, start)
      if (newline < 0) break
      const part = chunk.subarray(start, newline)
      start = newline + 1
      if (pendingBytes + part.byteLength > lineBytesMax) return tooLarge()
      const line = pending.length === 0 ? part : Buffer.concat([...pending, part])
      pending = []
      pendingBytes = 0
      onLine(line.toString('utf8'))
    }
    const rest = chunk.subarray(start)
    if (rest.byteLength === 0) return
    if (pendingBytes + rest.byteLength > lineBytesMax) return tooLarge()
    pending.push(rest)
    pendingBytes += rest.byteLength
  }
}

/**
 * One frame as a line.
 * @throws TypeError when `frame` is not JSON-serialisable (a BigInt, a cycle)
 */
export function encodeLine(frame: object): string {
  return `${JSON.stringify(frame)}\n`
}
