/**
 * The output bound of a run: keeps the first `bytesMax` bytes of what an action writes, counts the rest,
 * and decodes what it kept as UTF-8 without a broken character at the cut.
 */

/** Keeps the first `bytesMax` bytes written to it and counts the rest. */
export class OutputBuffer {
  private readonly chunks: Uint8Array[] = []
  private kept = 0
  private readonly bytesMax: number
  total = 0
  constructor(bytesMax: number) {
    this.bytesMax = bytesMax
  }

  /** Keeps what fits of `chunk`; returns the part kept (empty once the buffer is full). */
  push(chunk: Uint8Array): Uint8Array {
    this.total += chunk.byteLength
    const room = this.bytesMax - this.kept
    if (room <= 0) return chunk.subarray(0, 0)
    const part = chunk.byteLength <= room ? chunk : chunk.subarray(0, room)
    this.chunks.push(part)
    this.kept += part.byteLength
    return part
  }

  get truncated(): boolean {
    return this.total > this.bytesMax
  }

  text(): string {
    const bytes = Buffer.concat(this.chunks, this.kept)
    // A cut inside a multi-byte character would decode as U+FFFD; drop the partial character instead.
    const end = this.truncated ? completeUtf8Length(bytes) : bytes.byteLength
    return bytes.toString('utf8', 0, end)
  }
}

/** Length of `bytes` without a trailing incomplete UTF-8 sequence. Pure. */
export function completeUtf8Length(bytes: Uint8Array): number {
  let start = bytes.byteLength - 1
  // Walk back over at most 3 continuation bytes to the lead byte.
  while (start >= 0 && bytes.byteLength - start <= 4 && (bytes[start]! & 0xc0) === 0x80) start--
  if (start < 0) return bytes.byteLength
  const lead = bytes[start]!
  const needed = lead >= 0xf0 ? 4 : lead >= 0xe0 ? 3 : lead >= 0xc0 ? 2 : 1
  return bytes.byteLength - start >= needed ? bytes.byteLength : start
}
