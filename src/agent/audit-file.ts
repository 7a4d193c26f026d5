/**
 * The audit log on disk: the files behind NodeStore.appendAudit / loadAuditHead / readAuditTail.
 *
 * `audit/` in the home (0700) holds segment files `audit-NNNNNNNNNN.log` (0600), numbered from 1, each
 * a run of frames (src/audit/record.ts). Appends go to the newest segment: one `write` and one
 * `fdatasync` per call, and the library hands over in one call what arrived while the last one was in
 * flight (group commit, src/node/audit.ts). When a write would take the segment past
 * `segmentBytesMax`, a new segment is started first, and the oldest is deleted once more than
 * `segmentsMax` exist, so the log takes at most about `segmentsMax × segmentBytesMax` bytes. The chain
 * runs across segments: a segment's first record links to the last of the one before.
 *
 * Opening checks the newest segment. A torn end (a length running past the end, or zero bytes: a crash
 * during a write) is cut back to the last whole record, fsynced, logged and reported to the node,
 * which puts `tornBytes` in its `start` record. Any other damage is left as it is (it is evidence) and
 * appends go to a fresh segment; `mesh audit --verify` then names the broken record. Nothing here
 * decides what a record means; the only decoding is of `seq` and `atMs`.
 *
 * Reads (tail, verification) take a snapshot of the segment list and sizes and read without holding up
 * appends: appends only add bytes past the snapshot, and a segment rotated away meanwhile is skipped.
 */
import { constants } from 'node:fs'
import { chmod, type FileHandle, mkdir, open, readdir, stat, unlink } from 'node:fs/promises'
import { join } from 'node:path'
import { setImmediate as nextTurn } from 'node:timers/promises'
import type { AuditRecordView } from '../audit/format.js'
import {
  AUDIT_EMPTY_HEAD,
  type AuditFrame,
  type AuditStoreHead,
  auditFrames,
  auditRecordHash,
  auditRecordView,
  frameAuditRecords,
  openAuditRecord,
} from '../audit/record.js'
import { type AuditVerifyReport, auditVerification, signedRecordAfter } from '../audit/verify.js'
import { HOME_DIRECTORY_MODE, STATE_FILE_MODE, syncDirectory } from './state-file.js'

/** A segment's file name: `audit-` and ten digits. */
const SEGMENT_NAME = /^audit-(\d{10})\.log$/
/** Records read between two turns of the event loop when a read decodes many. */
const READ_STEP_RECORDS = 512
/** Beyond twice the segment bound: room for one oversized batch (the library's batch bound × record bound). */
const SEGMENT_SLACK_BYTES = 64 * 1024 * 1024
/** Default bound of a tail read for the control channel: records. */
export const AUDIT_TAIL_RECORDS_MAX = 10_000

/** The file name of segment `number`. */
export function auditSegmentName(number: number): string {
  return `audit-${String(number).padStart(10, '0')}.log`
}

/** Settings of {@link openAuditFile}. */
export interface AuditFileInit {
  /** The audit directory (`homePaths(home).auditDir`); created 0700 when missing. */
  readonly directory: string
  /** Start a new segment when a write would pass this size (config `auditSegmentBytesMax`). */
  readonly segmentBytesMax: number
  /** Segments kept (config `auditSegmentsMax`). */
  readonly segmentsMax: number
  /**
   * The node's public key: at open, a "torn" end with a record this key signed behind it is damage,
   * not a crash, and is left as found rather than cut. Without it every such end is cut.
   */
  readonly publicKey?: Uint8Array
  readonly log?: (level: 'info' | 'warn' | 'error', message: string, context: Record<string, unknown>) => void
}

/** Counters of the files. */
export interface AuditFileCounters {
  readonly segments: number
  /** Bytes in all segments. */
  readonly bytes: number
  /** The segment appends go to. */
  readonly currentSegment: string
  /** Segments this process deleted by rotation. */
  readonly segmentsDeleted: number
  /** Whether segment 1 is still kept (nothing was ever rotated out). */
  readonly fromGenesis: boolean
}

/** Records read for the control channel, decoded. */
export interface AuditTailView {
  readonly records: AuditRecordView[]
  /** True when older records matched but were left out by the bound. */
  readonly truncated: boolean
}

/** The open audit log. */
export interface AuditFile {
  /** Where the chain ends, as found at open (the node's loadAuditHead). */
  head(): AuditStoreHead
  /** Appends `records` (envelopes) with one write and one fdatasync; see the module note. */
  append(records: readonly Uint8Array[]): Promise<void>
  /** The newest records with `atMs >= sinceMs`, oldest first, at most `bytesMax` envelope bytes. */
  tail(sinceMs: number, bytesMax: number): Promise<Uint8Array[]>
  /** {@link tail} decoded for JSON, at most `recordsMax` records. */
  view(sinceMs: number, recordsMax?: number): Promise<AuditTailView>
  /** Verifies every kept segment against `publicKey` (verify.ts), yielding to the event loop as it goes. */
  verify(publicKey: Uint8Array): Promise<AuditVerifyReport>
  counters(): AuditFileCounters
  /** Waits for the write in flight and closes the file. Idempotent. */
  close(): Promise<void>
}

/** An operating error of the audit files (cannot create, read or write them), with the path. */
export class AuditFileError extends Error {
  override name = 'AuditFileError'
  readonly code = 'audit-unusable'
  readonly path: string
  constructor(path: string, message: string) {
    super(message)
    this.path = path
  }
}

interface Segment {
  readonly number: number
  readonly name: string
  readonly path: string
}

/** Reads `length` bytes of `path` from the start; undefined when the file is gone (rotated away). */
async function readPrefix(path: string, length?: number): Promise<Uint8Array | undefined> {
  let handle: FileHandle
  try {
    handle = await open(path, constants.O_RDONLY | constants.O_NONBLOCK)
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined
    throw err
  }
  try {
    const size = length ?? (await handle.stat()).size
    const buffer = new Uint8Array(size)
    let at = 0
    while (at < size) {
      const { bytesRead } = await handle.read(buffer, at, size - at, at)
      if (bytesRead === 0) break
      at += bytesRead
    }
    return buffer.subarray(0, at)
  } finally {
    await handle.close().catch(() => undefined)
  }
}

/** The record frames of a segment and how it ends. */
function scan(bytes: Uint8Array, newest: boolean) {
  const records: Extract<AuditFrame, { kind: 'record' }>[] = []
  let end: Exclude<AuditFrame, { kind: 'record' }> | undefined
  for (const frame of auditFrames(bytes, newest)) {
    if (frame.kind === 'record') records.push(frame)
    else end = frame
  }
  return { records, end }
}

/** The segments in `directory`, oldest first. */
async function listSegments(directory: string): Promise<Segment[]> {
  const names = await readdir(directory)
  return names
    .map(name => ({ name, match: SEGMENT_NAME.exec(name) }))
    .filter((e): e is { name: string; match: RegExpExecArray } => e.match !== null)
    .map(e => ({ number: Number(e.match[1]), name: e.name, path: join(directory, e.name) }))
    .sort((a, b) => a.number - b.number)
}

/**
 * Reads every segment of an audit directory (a live one or a copy), oldest first, for verification;
 * `fromGenesis` when segment 1 is among them (nothing was rotated out). Nothing is changed: a torn
 * tail stays for the verifier to report.
 * @throws AuditFileError when the directory or a segment cannot be read
 */
export async function readAuditSegments(
  directory: string,
): Promise<{ segments: Array<{ name: string; bytes: Uint8Array }>; fromGenesis: boolean }> {
  try {
    const segments: Array<{ name: string; bytes: Uint8Array }> = []
    for (const segment of await listSegments(directory)) {
      const bytes = await readPrefix(segment.path)
      if (bytes !== undefined) segments.push({ name: segment.name, bytes })
    }
    return { segments, fromGenesis: segments[0]?.name === auditSegmentName(1) }
  } catch (err) {
    throw new AuditFileError(
      directory,
      `cannot read the audit log in ${directory}: ${(err as Error).message}`,
    )
  }
}

/**
 * Opens the audit log in `init.directory`: creates it when missing, cuts a torn tail of the newest
 * segment, and finds the chain's head.
 * @throws AuditFileError when the directory or the newest segment cannot be created, read or written
 */
export async function openAuditFile(init: AuditFileInit): Promise<AuditFile> {
  const { directory } = init
  const log = init.log ?? (() => undefined)
  const fail = (err: unknown, what: string): AuditFileError =>
    new AuditFileError(directory, `cannot ${what} the audit log in ${directory}: ${(err as Error).message}`)
  try {
    await mkdir(directory, { mode: HOME_DIRECTORY_MODE })
    await syncDirectory(join(directory, '..')).catch(() => undefined)
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw fail(err, 'create')
  }
  let segments: Segment[]
  try {
    if (!(await stat(directory)).isDirectory()) throw new Error('not a directory')
    await chmod(directory, HOME_DIRECTORY_MODE)
    segments = await listSegments(directory)
  } catch (err) {
    throw fail(err, 'open')
  }

  // The head: the last whole record of the newest segment that has one; a torn end is cut first.
  let head: AuditStoreHead = { ...AUDIT_EMPTY_HEAD, tornBytes: 0 }
  let problem: string | undefined
  let tornBytes = 0
  /** Frames after the last decodable record, in newer segments (counted into the seq). */
  let undecodable = 0
  let lastHash: Uint8Array | undefined
  let freshSegment = false
  for (let i = segments.length - 1; i >= 0; i--) {
    const segment = segments[i] as Segment
    const newest = i === segments.length - 1
    let bytes: Uint8Array | undefined
    try {
      // A segment far beyond its bound is not ours to read whole (someone put it there): left as found.
      if ((await stat(segment.path)).size > 2 * init.segmentBytesMax + SEGMENT_SLACK_BYTES) {
        problem = `${segment.name} is larger than any segment this agent writes; left as found`
        freshSegment = newest
        log('error', 'audit log: oversized segment left as found', { segment: segment.name })
        break
      }
      bytes = await readPrefix(segment.path)
    } catch (err) {
      throw fail(err, 'read')
    }
    if (bytes === undefined) continue
    const { records, end } = scan(bytes, newest)
    const hidden =
      end?.kind === 'torn' && init.publicKey !== undefined
        ? signedRecordAfter(bytes, end.offset, init.publicKey)
        : undefined
    if (end?.kind === 'torn' && hidden !== undefined) {
      // Not a crash: a write leaves a prefix of itself, never a whole record after a cut one.
      problem = `${segment.name} offset ${end.offset}: a frame runs past the end with a signed record behind it; left as found, appends go to a new segment`
      freshSegment = true
      log('error', 'audit log: damaged segment left as found; a new segment is started', {
        segment: segment.name,
        offset: end.offset,
      })
    } else if (end?.kind === 'torn') {
      // Only the newest segment can be torn (scan says malformed elsewhere).
      tornBytes = end.bytes
      try {
        const handle = await open(segment.path, 'r+')
        try {
          await handle.truncate(end.offset)
          await handle.datasync()
        } finally {
          await handle.close()
        }
      } catch (err) {
        throw fail(err, 'cut the torn tail of')
      }
      log('warn', 'audit log: torn last record cut (a crash during a write)', {
        segment: segment.name,
        offset: end.offset,
        bytes: end.bytes,
      })
    } else if (end?.kind === 'malformed' && newest) {
      problem = `${segment.name} offset ${end.offset}: ${end.detail}; left as found, appends go to a new segment`
      freshSegment = true
      log('error', 'audit log: damaged segment left as found; a new segment is started', {
        segment: segment.name,
        offset: end.offset,
        detail: end.detail,
      })
    }
    lastHash ??=
      records.length > 0
        ? auditRecordHash((records[records.length - 1] as { bytes: Uint8Array }).bytes)
        : undefined
    let found = false
    for (let r = records.length - 1; r >= 0; r--) {
      const opened = openAuditRecord((records[r] as { bytes: Uint8Array }).bytes)
      if (!opened.ok) {
        undecodable += 1
        continue
      }
      head = {
        seq: opened.body.seq + undecodable,
        hash: lastHash ?? AUDIT_EMPTY_HEAD.hash,
        tornBytes,
      }
      if (undecodable > 0) {
        problem ??= `${undecodable} records after seq ${opened.body.seq} do not decode`
      }
      found = true
      break
    }
    if (found) break
  }
  if (head.seq === 0 && undecodable > 0) {
    problem ??= `no record decodes; ${undecodable} records counted`
    head = { seq: undecodable, hash: lastHash ?? AUDIT_EMPTY_HEAD.hash, tornBytes }
  }
  head = { ...head, tornBytes, ...(problem === undefined ? {} : { problem }) }

  // The segment appends go to.
  let current: Segment
  const newestSegment = segments[segments.length - 1]
  if (newestSegment === undefined || freshSegment) {
    const number = (newestSegment?.number ?? 0) + 1
    current = { number, name: auditSegmentName(number), path: join(directory, auditSegmentName(number)) }
  } else current = newestSegment
  let handle: FileHandle
  let size: number
  try {
    handle = await open(current.path, 'a', STATE_FILE_MODE)
    await handle.chmod(STATE_FILE_MODE)
    size = (await handle.stat()).size
    if (!segments.some(s => s.number === current.number)) {
      segments.push(current)
      await syncDirectory(directory)
    }
  } catch (err) {
    throw fail(err, 'open for appending')
  }
  let segmentsDeleted = 0
  /** Set when a failed write could not be undone: the next append starts a new segment. */
  let dirty = false
  let chain: Promise<unknown> = Promise.resolve()
  let closed = false
  let closing: Promise<void> | undefined
  /** Sizes of the older segments (the current one's is `size`). */
  const sizes = new Map<number, number>()
  for (const segment of segments) {
    if (segment.number === current.number) continue
    sizes.set(
      segment.number,
      await stat(segment.path)
        .then(s => s.size)
        .catch(() => 0),
    )
  }

  const serialised = <T>(work: () => Promise<T>): Promise<T> => {
    const next = chain.then(work)
    chain = next.catch(() => undefined)
    return next
  }

  /** Starts segment `current.number + 1` and deletes the oldest beyond `segmentsMax`. */
  const rotate = async (): Promise<void> => {
    await handle.close()
    sizes.set(current.number, size)
    const number = current.number + 1
    current = { number, name: auditSegmentName(number), path: join(directory, auditSegmentName(number)) }
    handle = await open(current.path, 'ax', STATE_FILE_MODE)
    await handle.chmod(STATE_FILE_MODE)
    size = 0
    segments.push(current)
    while (segments.length > init.segmentsMax) {
      const oldest = segments.shift() as Segment
      sizes.delete(oldest.number)
      await unlink(oldest.path).catch(err => {
        if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err
      })
      segmentsDeleted += 1
      log('info', 'audit segment rotated out', { segment: oldest.name })
    }
    await syncDirectory(directory)
  }

  const writeAll = async (bytes: Uint8Array): Promise<void> => {
    let at = 0
    while (at < bytes.byteLength) {
      const { bytesWritten } = await handle.write(bytes, at, bytes.byteLength - at)
      at += bytesWritten
    }
  }

  /** A snapshot of the segments and their sizes, taken between appends. */
  const snapshot = (): Promise<Array<Segment & { size: number }>> =>
    serialised(async () =>
      segments.map(s => ({ ...s, size: s.number === current.number ? size : (sizes.get(s.number) ?? 0) })),
    )

  const tail = async (sinceMs: number, bytesMax: number, recordsMax = Number.POSITIVE_INFINITY) => {
    const picked: Uint8Array[] = []
    let bytes = 0
    let truncated = false
    let decoded = 0
    const segmentsNow = await snapshot()
    outer: for (let i = segmentsNow.length - 1; i >= 0; i--) {
      const segment = segmentsNow[i] as Segment & { size: number }
      const content = await readPrefix(segment.path, segment.size)
      if (content === undefined) break // rotated away since the snapshot: older ones are gone too
      const { records } = scan(content, i === segmentsNow.length - 1)
      for (let r = records.length - 1; r >= 0; r--) {
        const record = (records[r] as { bytes: Uint8Array }).bytes
        const opened = openAuditRecord(record)
        if (++decoded % READ_STEP_RECORDS === 0) await nextTurn()
        // Read back to the first older record: times run forward except across clock steps.
        if (opened.ok && opened.body.atMs < sinceMs) break outer
        if (bytes + record.byteLength > bytesMax || picked.length >= recordsMax) {
          truncated = true
          break outer
        }
        bytes += record.byteLength
        // A copy: the segment buffer is dropped, the record may be kept.
        picked.push(record.slice())
      }
    }
    return { records: picked.reverse(), truncated }
  }

  return {
    head: () => head,
    append(records) {
      return serialised(async () => {
        if (closed) throw new AuditFileError(directory, 'the audit log is closed')
        if (records.length === 0) return
        const bytes = frameAuditRecords(records)
        try {
          if (dirty || (size > 0 && size + bytes.byteLength > init.segmentBytesMax)) {
            await rotate()
            dirty = false
          }
        } catch (err) {
          throw fail(err, 'rotate')
        }
        const before = size
        try {
          await writeAll(bytes)
          await handle.datasync()
          size += bytes.byteLength
        } catch (err) {
          // Undo what may have landed, so the retry does not leave a half record before its copy.
          try {
            await handle.truncate(before)
            await handle.datasync()
          } catch {
            dirty = true
          }
          throw fail(err, 'write')
        }
      })
    },
    async tail(sinceMs, bytesMax) {
      return (await tail(sinceMs, bytesMax)).records
    },
    async view(sinceMs, recordsMax = AUDIT_TAIL_RECORDS_MAX) {
      const { records, truncated } = await tail(sinceMs, Number.POSITIVE_INFINITY, recordsMax)
      const views: AuditRecordView[] = []
      for (const bytes of records) {
        const opened = openAuditRecord(bytes)
        if (opened.ok) views.push(auditRecordView(opened.body))
      }
      return { records: views, truncated }
    },
    async verify(publicKey) {
      const segmentsNow = await snapshot()
      const contents: Array<{ name: string; bytes: Uint8Array }> = []
      for (const segment of segmentsNow) {
        const bytes = await readPrefix(segment.path, segment.size)
        // Rotated away since the snapshot: verification starts at the first one still there.
        if (bytes === undefined) contents.length = 0
        else contents.push({ name: segment.name, bytes })
      }
      const fromGenesis = contents.length > 0 && contents[0]?.name === auditSegmentName(1)
      const steps = auditVerification(contents, publicKey, { fromGenesis })
      for (;;) {
        const step = steps.next()
        if (step.done === true) return step.value
        await nextTurn()
      }
    },
    counters: () => ({
      segments: segments.length,
      bytes: size + [...sizes.values()].reduce((a, b) => a + b, 0),
      currentSegment: current.name,
      segmentsDeleted,
      fromGenesis: segments[0]?.number === 1,
    }),
    close() {
      // Behind the appends already handed over; later ones are refused.
      closing ??= serialised(async () => {
        closed = true
        await handle.close().catch(() => undefined)
      })
      return closing
    },
  }
}
