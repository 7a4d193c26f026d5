// Proves the audit chain check (src/audit/verify.ts) finds each kind of damage and names it: logs are
// built with the real sealer (src/audit/record.ts) and a fixed key, then damaged byte by byte — an
// edited byte, a deleted, swapped or replaced record, a cut or zero-filled end, a lost segment — and
// the verdict (status, reason, index, seq) is checked for each; a property test deletes and swaps
// records at random positions and checks the first broken record is the one a naive reading names.
import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { describeAuditReport } from '../../src/audit/format.js'
import {
  AUDIT_EMPTY_HEAD,
  type AuditChainHead,
  type AuditEntry,
  frameAuditRecords,
  sealAuditRecord,
} from '../../src/audit/record.js'
import { type AuditSegment, verifyAuditLog } from '../../src/audit/verify.js'
import { signingKeyFromSeed } from '../../src/wire/ed25519.js'
import { hash } from '../../src/wire/hash.js'

const key = signingKeyFromSeed(hash(new TextEncoder().encode('audit-verify-test')))
const otherKey = signingKeyFromSeed(hash(new TextEncoder().encode('another node')))

const entry = (i: number): AuditEntry => ({
  type: 'request',
  atMs: 1_700_000_000_000 + i,
  fields: { verdict: 'not-for-us', id: `id-${i}`, action: 'uptime', operator: 'alice' },
})

/** `n` sealed records (envelopes) from seq 1, and the head after them. */
function chain(n: number, head: AuditChainHead = AUDIT_EMPTY_HEAD, signer = key) {
  const records: Uint8Array[] = []
  let at = head
  for (let i = 0; i < n; i++) {
    const sealed = sealAuditRecord(signer, at, entry(at.seq + 1))
    records.push(sealed.bytes)
    at = sealed.head
  }
  return { records, head: at }
}

const segment = (name: string, records: readonly Uint8Array[]): AuditSegment => ({
  name,
  bytes: frameAuditRecords(records),
})
const verify = (segments: AuditSegment[], fromGenesis = false) =>
  verifyAuditLog(segments, key.publicKey, { fromGenesis })

/** Byte offset of frame `i` in a segment of `records`. */
const frameOffset = (records: readonly Uint8Array[], i: number) =>
  records.slice(0, i).reduce((sum, r) => sum + 4 + r.byteLength, 0)

describe('audit verification: a whole log', () => {
  it('verifies a chain across segments from seq 1', () => {
    const { records } = chain(10)
    const report = verify([segment('a', records.slice(0, 4)), segment('b', records.slice(4))], true)
    expect(report).toMatchObject({ status: 'ok', records: 10, firstSeq: 1, lastSeq: 10, rotatedOut: false })
    expect(report.headHash).toBe(Buffer.from(hash(records[9]!)).toString('hex'))
    expect(describeAuditReport(report)).toBe('audit log ok: 10 records, seq 1..10')
  })

  it('verifies an empty log', () => {
    expect(verify([segment('a', [])], true)).toMatchObject({ status: 'ok', records: 0, firstSeq: null })
  })

  it('starts from the first kept record when older segments were rotated out, and says so', () => {
    const { records } = chain(10)
    const report = verify([segment('b', records.slice(4))])
    expect(report).toMatchObject({ status: 'ok', records: 6, firstSeq: 5, lastSeq: 10, rotatedOut: true })
    expect(describeAuditReport(report)).toContain('older records rotated out before seq 5')
  })

  it('refuses a missing start when the first segment is the log’s first (nothing was rotated out)', () => {
    const { records } = chain(10)
    expect(verify([segment('a', records.slice(1))], true).broken).toMatchObject({
      reason: 'seq-gap',
      index: 0,
      seq: 2,
    })
  })
})

describe('audit verification: each kind of damage', () => {
  const { records } = chain(6)

  it('an edited byte in a record: bad-signature at that record', () => {
    const bytes = frameAuditRecords(records)
    // Inside record 3's body (past its length prefix and the envelope's first bytes).
    bytes[frameOffset(records, 2) + 4 + 20]! ^= 0x01
    const report = verify([{ name: 's', bytes }])
    expect(report.status).toBe('broken')
    expect(report.broken).toMatchObject({ index: 2, reason: 'bad-signature', segment: 's' })
    expect(report.broken?.offset).toBe(frameOffset(records, 2))
    expect(report.records).toBe(2)
  })

  it('an edited signature byte: bad-signature, with the seq it claims', () => {
    const bytes = frameAuditRecords(records)
    // Record 4's signature: the envelope is { sig, body } in canonical order, sig after 7 header bytes.
    bytes[frameOffset(records, 3) + 4 + 7 + 10]! ^= 0x80
    expect(verify([{ name: 's', bytes }]).broken).toMatchObject({ index: 3, seq: 4, reason: 'bad-signature' })
  })

  it('any edited byte is found: never ok, and only the last length prefix can read as torn', () => {
    const small = chain(3).records
    const clean = frameAuditRecords(small)
    const lastPrefix = frameOffset(small, 2)
    for (let at = 0; at < clean.byteLength; at++) {
      const bytes = clean.slice()
      bytes[at]! ^= 0x01
      const report = verify([{ name: 's', bytes }])
      expect(report.status, `byte ${at}`).not.toBe('ok')
      if (report.status === 'torn-tail')
        expect(at >= lastPrefix && at < lastPrefix + 4, `byte ${at}`).toBe(true)
    }
  })

  it('a record signed by another key: bad-signature', () => {
    const forged = sealAuditRecord(otherKey, { seq: 2, hash: hash(records[1]!) }, entry(3)).bytes
    const report = verify([segment('s', [...records.slice(0, 2), forged, ...records.slice(3)])])
    expect(report.broken).toMatchObject({ index: 2, seq: 3, reason: 'bad-signature' })
  })

  it('a deleted record: seq-gap at the record after it', () => {
    const report = verify([segment('s', [...records.slice(0, 2), ...records.slice(3)])])
    expect(report.broken).toMatchObject({ index: 2, seq: 4, expectedSeq: 3, reason: 'seq-gap' })
    expect(describeAuditReport(report)).toMatch(/^audit log broken at record 2 \(seq 4, expected 3\) in s/)
  })

  it('two swapped records: reordered', () => {
    const swapped = [...records]
    ;[swapped[1], swapped[3]] = [swapped[3]!, swapped[1]!]
    expect(verify([segment('s', swapped)]).broken).toMatchObject({ index: 1, seq: 4, reason: 'reordered' })
    const adjacent = [...records]
    ;[adjacent[4], adjacent[5]] = [adjacent[5]!, adjacent[4]!]
    expect(verify([segment('s', adjacent)]).broken).toMatchObject({ index: 4, seq: 6, reason: 'reordered' })
  })

  it('a record repeated: reordered', () => {
    expect(verify([segment('s', [...records.slice(0, 3), records[1]!])]).broken).toMatchObject({
      index: 3,
      seq: 2,
      reason: 'reordered',
    })
  })

  it('a record replaced by another the node key signed: broken-link at the next one', () => {
    // Only the key holder can do this: same seq and prev, other content.
    const replaced = sealAuditRecord(key, { seq: 2, hash: hash(records[1]!) }, { ...entry(3), type: 'other' })
    const report = verify([segment('s', [...records.slice(0, 2), replaced.bytes, ...records.slice(3)])])
    expect(report.broken).toMatchObject({ index: 3, seq: 4, reason: 'broken-link' })
  })

  it('a record 1 that does not start from the genesis hash: broken-link', () => {
    const first = sealAuditRecord(key, { seq: 0, hash: hash(new Uint8Array([1])) }, entry(1)).bytes
    expect(verify([segment('s', [first])]).broken).toMatchObject({ index: 0, reason: 'broken-link' })
  })

  it('a length prefix out of range: malformed', () => {
    const bytes = frameAuditRecords(records)
    new DataView(bytes.buffer).setUint32(frameOffset(records, 1), 0x7fffffff, false)
    expect(verify([{ name: 's', bytes }]).broken).toMatchObject({ index: 1, seq: null, reason: 'malformed' })
  })

  it('a whole segment lost in the middle: seq-gap at the next segment', () => {
    const report = verify([segment('a', records.slice(0, 2)), segment('c', records.slice(4))])
    expect(report.broken).toMatchObject({ index: 2, seq: 5, reason: 'seq-gap', segment: 'c', offset: 0 })
  })
})

describe('audit verification: a torn end is not tampering', () => {
  const { records } = chain(5)

  it('a cut inside the last record: torn-tail, everything before it verified', () => {
    const bytes = frameAuditRecords(records)
    const cut = bytes.subarray(0, bytes.byteLength - 10)
    const report = verify([{ name: 's', bytes: cut }])
    expect(report).toMatchObject({
      status: 'torn-tail',
      records: 4,
      lastSeq: 4,
      torn: { segment: 's', offset: frameOffset(records, 4) },
    })
    expect(describeAuditReport(report)).toContain('torn last record')
  })

  it('a cut inside a length prefix: torn-tail', () => {
    const bytes = frameAuditRecords(records).subarray(0, frameOffset(records, 4) + 2)
    expect(verify([{ name: 's', bytes }])).toMatchObject({
      status: 'torn-tail',
      records: 4,
      torn: { bytes: 2 },
    })
  })

  it('a zero-filled end (a file extended but not written): torn-tail', () => {
    const whole = frameAuditRecords(records)
    const bytes = new Uint8Array(whole.byteLength + 300)
    bytes.set(whole)
    expect(verify([{ name: 's', bytes }])).toMatchObject({
      status: 'torn-tail',
      records: 5,
      torn: { bytes: 300 },
    })
  })

  it('a length edited to run past the end, hiding whole records: malformed, not torn', () => {
    const bytes = frameAuditRecords(records)
    const at = frameOffset(records, 2)
    new DataView(bytes.buffer).setUint32(at, bytes.byteLength, false)
    const report = verify([{ name: 's', bytes }])
    expect(report.broken).toMatchObject({ index: 2, reason: 'malformed', offset: at })
    expect(report.broken?.detail).toContain('not a torn write')
  })

  it('a cut in an older segment is not a crash: malformed', () => {
    const older = frameAuditRecords(records.slice(0, 3)).subarray(0, frameOffset(records, 2) + 7)
    const report = verify([{ name: 'a', bytes: older }, segment('b', records.slice(3))])
    expect(report.broken).toMatchObject({ segment: 'a', index: 2, reason: 'malformed' })
  })
})

describe('audit verification against a naive reading (property)', () => {
  const { records } = chain(12)

  it('names the first record out of order after random deletions and swaps', () => {
    fc.assert(
      fc.property(
        fc.oneof(
          fc.record({ kind: fc.constant('delete' as const), i: fc.integer({ min: 0, max: 10 }) }),
          fc.record({
            kind: fc.constant('swap' as const),
            i: fc.integer({ min: 0, max: 11 }),
            j: fc.integer({ min: 0, max: 11 }),
          }),
        ),
        op => {
          const damaged = [...records]
          if (op.kind === 'delete') damaged.splice(op.i, 1)
          else [damaged[op.i], damaged[op.j]] = [damaged[op.j]!, damaged[op.i]!]
          const report = verify([segment('s', damaged)], true)
          // Naive: the first position whose record is not the original one at that place.
          const first = damaged.findIndex((r, at) => r !== records[at])
          if (first === -1) return report.status === 'ok' && report.records === records.length
          return report.status === 'broken' && report.broken?.index === first && report.records === first
        },
      ),
      { numRuns: 300 },
    )
  })
})
