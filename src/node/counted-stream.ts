/**
 * A length-prefixed stream that counts what it carries: `lpStream` from @libp2p/utils with every frame
 * read and written counted on the node's traffic counters (traffic.ts). The stream protocols (hello,
 * authority, replies, join, CA) open their streams through it, so a frame added later is counted too.
 */
import type { MessageStream } from '@libp2p/interface'
import { type LengthPrefixedStream, type LengthPrefixedStreamOpts, lpStream } from '@libp2p/utils'
import type { Traffic } from './traffic.js'

/**
 * `lpStream(stream, options)` whose every frame read and written is counted on `protocol` (payload
 * bytes, without the length prefix). A frame counts once it has been read whole or handed to the
 * stream; a failed read or write is not counted.
 */
export function countedLpStream<S extends MessageStream>(
  stream: S,
  options: Partial<LengthPrefixedStreamOpts>,
  traffic: Traffic,
  protocol: string,
): LengthPrefixedStream<S> {
  const lp = lpStream(stream, options)
  return {
    async read(readOptions) {
      const frame = await lp.read(readOptions)
      traffic.count(protocol, 'in', frame.byteLength)
      return frame
    },
    async write(data, writeOptions) {
      await lp.write(data, writeOptions)
      traffic.count(protocol, 'out', data.byteLength)
    },
    async writeV(data, writeOptions) {
      await lp.writeV(data, writeOptions)
      for (const frame of data) traffic.count(protocol, 'out', frame.byteLength)
    },
    unwrap: () => lp.unwrap(),
  }
}
