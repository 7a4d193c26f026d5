// Proves the audit files (src/agent/audit-file.ts) keep the chain whole on disk: appends are framed
// and durable, a reopened log continues where it ended, a torn end is cut (and a copy taken before
// the cut verifies as `torn-tail`), damage that is not a torn write is left as found with appends
// moved to a new segment, rotation keeps at most segmentsMax files whose chain still verifies, and
// tails are the newest records within the bounds. Real files in a temp dir; records sealed with the
// real sealer and a fixed key.
import { appendFile, mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import {
  type AuditFile,
  auditSegmentName,
  openAuditFile,
  readAuditSegments,
} from '../../src/agent/audit-file.js'
import {
  AUDIT_EMPTY_HEAD,
  type AuditChainHead,
  frameAuditRecords,
  openAuditRecord,
  sealAuditRecord,
} from '../../src/audit/record.js'
import { verifyAuditLog } from '../../src/audit/verify.js'
import { signingKeyFromSeed } from '../../src/wire/ed25519.js'
import { bytesEqual, hash } from '../../src/wire/hash.js'

const key = signingKeyFromSeed(hash(new TextEncoder().encode('audit-file-test')))
let dir: string
let open: AuditFile[] = []

beforeEach(async () => {
  dir = join(await mkdtemp(join(tmpdir(), 'mesh-audit-')), 'audit')
})
afterEach(async () => {
  for (const file of open) await file.close()
  open = []
  await rm(join(dir, '..'), { recursive: true, force: true })
})

async function openLog(options: { segmentBytesMax?: number; segmentsMax?: number; withKey?: boolean } = {}) {
  const file = await openAuditFile({
    directory: dir,
    segmentBytesMax: options.segmentBytesMax ?? 1024 * 1024,
    segmentsMax: options.segmentsMax ?? 4,
    ...(options.withKey === false ? {} : { publicKey: key.publicKey }),
  })
  open.push(file)
  return file
}

/** Seals `n` records after `head` (atMs = 1000 × seq), as the library does. */
function seal(n: number, head: AuditChainHead) {
  const records: Uint8Array[] = []
  let at = head
  for (let i = 0; i < n; i++) {
    const sealed = sealAuditRecord(key, at, {
      type: 'request',
      atMs: 1000 * (at.seq + 1),
      fields: { verdict: 'execute', id: `r${at.seq + 1}`, action: 'uptime', operator: 'alice', args: [] },
    })
    records.push(sealed.bytes)
    at = sealed.head
  }
  return { records, head: at }
}

async function verifyCopy() {
  const copy = await readAuditSegments(dir)
  return verifyAuditLog(copy.segments, key.publicKey, { fromGenesis: copy.fromGenesis })
}

describe('audit files', () => {
  it('creates the directory 0700 and segment 1 0600, and continues the chain after a reopen', async () => {
    const first = await openLog()
    expect(first.head()).toMatchObject({ seq: 0, tornBytes: 0 })
    expect((await stat(dir)).mode & 0o777).toBe(0o700)
    const a = seal(3, AUDIT_EMPTY_HEAD)
    await first.append(a.records)
    const b = seal(2, a.head)
    await first.append(b.records)
    expect((await stat(join(dir, auditSegmentName(1)))).mode & 0o777).toBe(0o600)
    await first.close()
    const second = await openLog()
    expect(second.head().seq).toBe(5)
    expect(bytesEqual(second.head().hash, b.head.hash)).toBe(true)
    await second.append(seal(1, second.head()).records)
    expect(await second.verify(key.publicKey)).toMatchObject({ status: 'ok', records: 6, firstSeq: 1 })
  })

  it('cuts a torn last record at open, logs it and reports tornBytes; a copy before shows torn-tail', async () => {
    const file = await openLog()
    const a = seal(4, AUDIT_EMPTY_HEAD)
    await file.append(a.records)
    await file.close()
    const segmentPath = join(dir, auditSegmentName(1))
    const whole = (await stat(segmentPath)).size
    const next = frameAuditRecords(seal(1, a.head).records)
    await appendFile(segmentPath, next.subarray(0, next.byteLength - 9)) // a write cut short
    expect(await verifyCopy()).toMatchObject({ status: 'torn-tail', records: 4, torn: { offset: whole } })
    const warnings: unknown[] = []
    const reopened = await openAuditFile({
      directory: dir,
      segmentBytesMax: 1024 * 1024,
      segmentsMax: 4,
      publicKey: key.publicKey,
      log: (level, message, context) => warnings.push({ level, message, context }),
    })
    open.push(reopened)
    expect(reopened.head()).toMatchObject({ seq: 4, tornBytes: next.byteLength - 9 })
    expect((await stat(segmentPath)).size).toBe(whole)
    expect(warnings).toEqual([
      expect.objectContaining({ level: 'warn', message: expect.stringContaining('torn') }),
    ])
    expect(await reopened.verify(key.publicKey)).toMatchObject({ status: 'ok', records: 4 })
  })

  it('cuts a zero-filled end (extended, never written) the same way', async () => {
    const file = await openLog()
    await file.append(seal(2, AUDIT_EMPTY_HEAD).records)
    await file.close()
    await appendFile(join(dir, auditSegmentName(1)), new Uint8Array(4096))
    const reopened = await openLog()
    expect(reopened.head()).toMatchObject({ seq: 2, tornBytes: 4096 })
  })

  it('leaves damage that is no torn write as found and appends to a new segment', async () => {
    const file = await openLog()
    const a = seal(4, AUDIT_EMPTY_HEAD)
    await file.append(a.records)
    await file.close()
    const segmentPath = join(dir, auditSegmentName(1))
    const damaged = await readFile(segmentPath)
    // Record 2's length now runs past the end: records 3 and 4 would be hidden by a cut.
    damaged.writeUInt32BE(damaged.byteLength, 4 + a.records[0]!.byteLength)
    await writeFile(segmentPath, damaged)
    const reopened = await openLog()
    expect(reopened.head().problem).toContain('signed record behind it')
    expect(reopened.head().seq).toBe(1)
    expect(Buffer.compare(await readFile(segmentPath), damaged)).toBe(0) // evidence kept
    await reopened.append(seal(1, reopened.head()).records)
    expect(await readdir(dir)).toEqual([auditSegmentName(1), auditSegmentName(2)])
    expect((await reopened.verify(key.publicKey)).broken).toMatchObject({ index: 1, reason: 'malformed' })
  })

  it('without the key such an end is taken for a torn write and cut', async () => {
    const file = await openLog()
    const a = seal(3, AUDIT_EMPTY_HEAD)
    await file.append(a.records)
    await file.close()
    const segmentPath = join(dir, auditSegmentName(1))
    const damaged = await readFile(segmentPath)
    damaged.writeUInt32BE(damaged.byteLength, 4 + a.records[0]!.byteLength)
    await writeFile(segmentPath, damaged)
    expect((await openLog({ withKey: false })).head()).toMatchObject({ seq: 1 })
  })

  it('rotates at segmentBytesMax, keeps segmentsMax files, and the kept chain verifies from the first kept record', async () => {
    const file = await openLog({ segmentBytesMax: 2_000, segmentsMax: 3 })
    let head = AUDIT_EMPTY_HEAD
    for (let i = 0; i < 30; i++) {
      const batch = seal(3, head)
      await file.append(batch.records)
      head = batch.head
    }
    const names = await readdir(dir)
    expect(names).toHaveLength(3)
    for (const name of names) expect((await stat(join(dir, name))).size).toBeLessThanOrEqual(2_000)
    expect(file.counters()).toMatchObject({ segments: 3, fromGenesis: false })
    expect(file.counters().segmentsDeleted).toBeGreaterThan(0)
    const report = await file.verify(key.publicKey)
    expect(report).toMatchObject({ status: 'ok', rotatedOut: true, lastSeq: 90 })
    expect(report.firstSeq).toBeGreaterThan(1)
    expect(report.segments).toBe(3)
  })

  it('a reopened rotated log continues in its newest segment', async () => {
    const file = await openLog({ segmentBytesMax: 2_000, segmentsMax: 2 })
    const a = seal(40, AUDIT_EMPTY_HEAD)
    for (let i = 0; i < 40; i += 4) await file.append(a.records.slice(i, i + 4))
    await file.close()
    const reopened = await openLog({ segmentBytesMax: 2_000, segmentsMax: 2 })
    expect(reopened.head().seq).toBe(40)
    await reopened.append(seal(2, reopened.head()).records)
    expect(await reopened.verify(key.publicKey)).toMatchObject({ status: 'ok', lastSeq: 42 })
  })

  it('tail: the newest records since a time, oldest first, within the byte bound', async () => {
    const file = await openLog({ segmentBytesMax: 2_000, segmentsMax: 4 })
    const a = seal(20, AUDIT_EMPTY_HEAD)
    for (let i = 0; i < 20; i += 5) await file.append(a.records.slice(i, i + 5))
    const seqs = (records: Uint8Array[]) =>
      records.map(r => {
        const opened = openAuditRecord(r)
        return opened.ok ? opened.body.seq : -1
      })
    expect(seqs(await file.tail(15_000, 1 << 20))).toEqual([15, 16, 17, 18, 19, 20])
    const size = a.records[19]!.byteLength
    expect(seqs(await file.tail(0, 3 * size + 1))).toEqual([18, 19, 20])
    const view = await file.view(0, 2)
    expect(view).toMatchObject({ truncated: true, records: [{ seq: 19 }, { seq: 20 }] })
    expect(view.records[0]).toMatchObject({
      type: 'request',
      action: 'uptime',
      operator: 'alice',
      atMs: 19_000,
    })
    expect(typeof view.records[0]?.prev).toBe('string')
  })

  it('refuses appends once closed', async () => {
    const file = await openLog()
    await file.close()
    await expect(file.append(seal(1, AUDIT_EMPTY_HEAD).records)).rejects.toThrow(/closed/)
  })

  it('an unusable directory is one clear error', async () => {
    await writeFile(join(dir, '..', 'plain'), 'x')
    await expect(
      openAuditFile({ directory: join(dir, '..', 'plain'), segmentBytesMax: 4096, segmentsMax: 2 }),
    ).rejects.toThrow(/cannot open the audit log in .*plain: not a directory/)
  })
})
