/**
 * The job store's log as a file in the home (`jobs.log`, mode 0600): records appended, each framed as
 * `length (u32 BE) ‖ crc32 (u32 BE) ‖ bytes`, one write and one fdatasync per batch. A handle is the
 * record's offset.
 *
 * At start the file is read record by record; a torn or corrupt tail (a crash mid-append, a bad
 * checksum) is cut off at the last whole record, logged, and the job records before it are kept. Compaction
 * writes the kept records to a new file with writeFileAtomic (temp, fsync, rename) and reopens it.
 */

import type { FileHandle } from 'node:fs/promises'
import { open, stat } from 'node:fs/promises'
import { crc32 } from 'node:zlib'
import { JOB_RECORD_BYTES_MAX, type JobLog } from '../node/jobs.js'
import type { Logger } from '../node/log.js'
import { STATE_FILE_MODE, writeFileAtomic } from './state-file.js'

const HEADER_BYTES = 8

function frame(record: Uint8Array): Buffer {
  const out = Buffer.allocUnsafe(HEADER_BYTES + record.byteLength)
  out.writeUInt32BE(record.byteLength, 0)
  out.writeUInt32BE(crc32(record), 4)
  out.set(record, HEADER_BYTES)
  return out
}

/** Opens (creating if needed) the job log at `path`. */
export function createFileJobLog(path: string, log: Logger): JobLog {
  let handle: FileHandle | undefined
  let end = 0

  const openFile = async (): Promise<FileHandle> => {
    const h = await open(path, 'a+', STATE_FILE_MODE)
    await h.chmod(STATE_FILE_MODE)
    return h
  }

  const readAt = async (h: FileHandle, offset: number, length: number): Promise<Buffer | undefined> => {
    const buffer = Buffer.allocUnsafe(length)
    const { bytesRead } = await h.read(buffer, 0, length, offset)
    return bytesRead === length ? buffer : undefined
  }

  /** The record at `offset` if it is whole and its checksum holds. */
  const recordAt = async (h: FileHandle, offset: number): Promise<Buffer | undefined> => {
    const header = await readAt(h, offset, HEADER_BYTES)
    if (header === undefined) return undefined
    const length = header.readUInt32BE(0)
    if (length === 0 || length > JOB_RECORD_BYTES_MAX) return undefined
    const body = await readAt(h, offset + HEADER_BYTES, length)
    if (body === undefined || crc32(body) !== header.readUInt32BE(4)) return undefined
    return body
  }

  return {
    async load(visit) {
      handle = await openFile()
      const size = (await handle.stat()).size
      let offset = 0
      while (offset < size) {
        const record = await recordAt(handle, offset)
        if (record === undefined) break
        visit(offset, new Uint8Array(record.buffer, record.byteOffset, record.byteLength))
        offset += HEADER_BYTES + record.byteLength
      }
      if (offset < size) {
        log.warn(
          { path, keptBytes: offset, cutBytes: size - offset },
          'job store: torn or corrupt records at the end of the log were cut off',
        )
        await handle.truncate(offset)
        await handle.sync()
      }
      end = offset
    },
    async append(records) {
      handle ??= await openFile()
      const frames = records.map(frame)
      const handles: number[] = []
      let at = end
      for (const f of frames) {
        handles.push(at)
        at += f.byteLength
      }
      const buffer = Buffer.concat(frames)
      // 'a+' appends at the end whatever the position; `end` tracks it for the handles.
      await handle.write(buffer, 0, buffer.byteLength)
      await handle.datasync()
      end = at
      return handles
    },
    async read(offset) {
      if (handle === undefined || offset < 0 || offset >= end) return undefined
      const record = await recordAt(handle, offset)
      return record === undefined
        ? undefined
        : new Uint8Array(record.buffer, record.byteOffset, record.byteLength)
    },
    async compact(keep) {
      const h = handle ?? (await openFile())
      const frames: Buffer[] = []
      const handles: number[] = []
      let at = 0
      for (const offset of keep) {
        const record = await recordAt(h, offset)
        // A record that cannot be read back keeps a handle past the end, so read() says "gone".
        if (record === undefined) {
          handles.push(Number.MAX_SAFE_INTEGER)
          continue
        }
        const f = frame(record)
        handles.push(at)
        frames.push(f)
        at += f.byteLength
      }
      await writeFileAtomic(path, Buffer.concat(frames))
      await h.close()
      handle = await openFile()
      end = (await stat(path)).size
      return handles
    },
    size: () => end,
    async close() {
      await handle?.close()
      handle = undefined
    },
  }
}
