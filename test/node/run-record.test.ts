/**
 * Proves the run record keeps "this request started here" across a restart, bounded and durably: the
 * pure ledger (src/gossip/run-ledger.ts) is checked with a table and with a property test against a
 * deliberately naive model (a list of entries, scanned), its encoding round-trips and damaged bytes
 * are refused as a whole; the driver (src/node/run-record.ts) resolves `enter` only after a save that
 * holds the key, group-commits entries made during a save into one next save, reloads what it saved
 * into a fresh record (the restart), drops entries after `expiresAtMs + skew`, refuses when full of
 * live entries instead of forgetting one, reports a corrupt store as RunRecordError, and without a
 * store lives in memory (not persistent). The agent's home (src/agent/home.ts) saves the record as the
 * file `run-record` (mode 0600) and reads it back; a damaged file is one HomeError `corrupt` that names
 * the file and says how to start anyway, and loadHome refuses to load such a home.
 */
import { mkdtemp, rm, stat, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { HomeError, homePaths, loadRunRecord, saveRunRecord } from '../../src/agent/home.js'
import {
  createRunLedger,
  decodeRunLedger,
  encodeRunLedger,
  RunLedgerFormatError,
} from '../../src/gossip/run-ledger.js'
import { createManualClock } from '../../src/node/clock.js'
import { createRunRecord, RunRecordError } from '../../src/node/run-record.js'
import { encodeCbor } from '../../src/wire/cbor.js'

const NOW = 1_800_000_000_000
const SKEW = 30_000

describe('run ledger (pure)', () => {
  it.each([
    // [what, entries made before, key, keepUntilMs, nowMs, expected]
    ['a new key is entered', [], 'a', NOW + 10, NOW, { ok: true }],
    [
      'a live key is already entered',
      [['a', NOW + 10]],
      'a',
      NOW + 20,
      NOW,
      { ok: false, code: 'already-entered' },
    ],
    ['a key past its time is entered again', [['a', NOW - 1]], 'a', NOW + 20, NOW, { ok: true }],
    [
      'full of live entries refuses',
      [
        ['a', NOW + 10],
        ['b', NOW + 10],
      ],
      'c',
      NOW + 10,
      NOW,
      { ok: false, code: 'full' },
    ],
    [
      'full, one past its time, admits',
      [
        ['a', NOW - 1],
        ['b', NOW + 10],
      ],
      'c',
      NOW + 10,
      NOW,
      { ok: true },
    ],
    [
      'kept through its keep-until ms',
      [
        ['a', NOW],
        ['b', NOW],
      ],
      'c',
      NOW + 10,
      NOW,
      { ok: false, code: 'full' },
    ],
  ] as const)('%s', (_what, before, key, keepUntilMs, nowMs, expected) => {
    const ledger = createRunLedger({ entriesMax: 2 })
    for (const [k, until] of before) expect(ledger.enter(k, until, NOW - 1_000).ok).toBe(true)
    expect(ledger.enter(key, keepUntilMs, nowMs)).toEqual(expected)
  })

  it('agrees with a naive list model on every sequence of operations', () => {
    const op = fc.oneof(
      fc.record({
        kind: fc.constant('enter' as const),
        key: fc.integer({ min: 0, max: 9 }),
        ttl: fc.integer({ min: 0, max: 50 }),
      }),
      fc.record({ kind: fc.constant('has' as const), key: fc.integer({ min: 0, max: 9 }) }),
      fc.record({ kind: fc.constant('advance' as const), ms: fc.integer({ min: 0, max: 30 }) }),
    )
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 5 }), fc.array(op, { maxLength: 80 }), (entriesMax, ops) => {
        const ledger = createRunLedger({ entriesMax })
        let model: { key: string; until: number }[] = []
        let now = 0
        for (const o of ops) {
          if (o.kind === 'advance') now += o.ms
          else if (o.kind === 'has') {
            const key = `k${o.key}`
            expect(ledger.has(key, now)).toBe(model.some(e => e.key === key && e.until >= now))
          } else {
            const key = `k${o.key}`
            const live = model.filter(e => e.until >= now)
            const expected = live.some(e => e.key === key)
              ? { ok: false, code: 'already-entered' }
              : live.length >= entriesMax
                ? { ok: false, code: 'full' }
                : { ok: true }
            expect(ledger.enter(key, now + o.ttl, now)).toEqual(expected)
            if (expected.ok) model = [...model.filter(e => e.key !== key), { key, until: now + o.ttl }]
          }
          // Never more live entries than the limit, and never a live entry forgotten.
          const entries = ledger.entries(now)
          expect(entries.length).toBeLessThanOrEqual(entriesMax)
          expect(new Set(entries.map(e => e.key))).toEqual(
            new Set(model.filter(e => e.until >= now).map(e => e.key)),
          )
        }
      }),
    )
  })

  it('round-trips its encoding and refuses damaged or oversized bytes as a whole', () => {
    const entries = [
      { key: 'aa:01', keepUntilMs: NOW },
      { key: 'bb:02', keepUntilMs: NOW + 5 },
    ]
    expect(decodeRunLedger(encodeRunLedger(entries))).toEqual(entries)
    const bad: [string, Uint8Array][] = [
      ['not CBOR', new Uint8Array([0xff, 0x00])],
      ['another version', encodeCbor({ v: 2, entries: [] })],
      ['entries not a list', encodeCbor({ v: 1, entries: 'x' })],
      ['an entry without a time', encodeCbor({ v: 1, entries: [['aa:01']] })],
      ['an empty key', encodeCbor({ v: 1, entries: [['', NOW]] })],
      ['a fractional time', encodeCbor({ v: 1, entries: [['aa:01', 1.5]] })],
    ]
    for (const [what, bytes] of bad) expect(() => decodeRunLedger(bytes), what).toThrow(RunLedgerFormatError)
    expect(() => decodeRunLedger(encodeRunLedger(entries), 1)).toThrow(/more than 1/)
  })
})

describe('run record', () => {
  /** A store keeping the last saved bytes, as the agent's file does across restarts. */
  const memoryStore = () => {
    const store = {
      bytes: undefined as Uint8Array | undefined,
      saves: 0,
      load: async () => store.bytes,
      save: async (bytes: Uint8Array) => {
        store.saves++
        store.bytes = bytes
      },
    }
    return store
  }

  it('keeps what it entered across a restart, until expiry + skew', async () => {
    const clock = createManualClock(NOW)
    const store = memoryStore()
    const first = createRunRecord(
      { load: store.load, save: store.save, clock },
      { clockSkewToleranceMs: SKEW },
    )
    await first.start()
    expect(first.persistent).toBe(true)
    expect(await first.enter('id1:s', NOW + 10_000)).toEqual({ ok: true })
    expect(await first.enter('id1:s', NOW + 10_000)).toMatchObject({ ok: false, code: 'already-ran' })
    expect(decodeRunLedger(store.bytes!)).toEqual([{ key: 'id1:s', keepUntilMs: NOW + 10_000 + SKEW }])

    const restarted = createRunRecord(
      { load: store.load, save: store.save, clock },
      { clockSkewToleranceMs: SKEW },
    )
    await restarted.start()
    expect(restarted.has('id1:s')).toBe(true)
    expect(await restarted.enter('id1:s', NOW + 10_000)).toMatchObject({ ok: false, code: 'already-ran' })
    clock.advance(10_000 + SKEW) // the last ms it is kept
    expect(restarted.has('id1:s')).toBe(true)
    clock.advance(1)
    expect(restarted.has('id1:s')).toBe(false)
    // Loading drops what has expired.
    const late = createRunRecord(
      { load: store.load, save: store.save, clock },
      { clockSkewToleranceMs: SKEW },
    )
    await late.start()
    expect(late.counters().entries).toBe(0)
  })

  it('resolves enter only after a save holding the key, and group-commits entries made meanwhile', async () => {
    const clock = createManualClock(NOW)
    const saves: { keys: string[]; resolve: () => void }[] = []
    const record = createRunRecord(
      {
        load: async () => undefined,
        save: bytes =>
          new Promise<void>(resolve => saves.push({ keys: decodeRunLedger(bytes).map(e => e.key), resolve })),
        clock,
      },
      { clockSkewToleranceMs: SKEW },
    )
    await record.start()
    const settled: string[] = []
    const enter = (key: string) => void record.enter(key, NOW + 1_000).then(() => settled.push(key))
    enter('a')
    await new Promise(r => setImmediate(r))
    enter('b')
    enter('c')
    await new Promise(r => setImmediate(r))
    expect(saves.map(s => s.keys)).toEqual([['a']]) // one save at a time
    expect(settled).toEqual([])
    saves[0]!.resolve()
    await new Promise(r => setImmediate(r))
    expect(settled).toEqual(['a'])
    expect(saves.map(s => s.keys)).toEqual([['a'], ['a', 'b', 'c']]) // b and c share the next save
    saves[1]!.resolve()
    await new Promise(r => setImmediate(r))
    expect(settled).toEqual(['a', 'b', 'c'])
  })

  it('refuses new keys when full of live entries, counting it, and admits again once one expires', async () => {
    const clock = createManualClock(NOW)
    const record = createRunRecord({ clock }, { clockSkewToleranceMs: 0, entriesMax: 2 })
    await record.start()
    expect(record.persistent).toBe(false)
    expect(await record.enter('a', NOW + 10)).toEqual({ ok: true })
    expect(await record.enter('b', NOW + 20)).toEqual({ ok: true })
    expect(await record.enter('c', NOW + 20)).toMatchObject({ ok: false, code: 'full' })
    expect(record.has('a')).toBe(true) // nothing live was forgotten
    clock.advance(11)
    expect(await record.enter('c', NOW + 20)).toEqual({ ok: true })
    expect(record.counters()).toMatchObject({ entries: 2, entered: 3, full: 1 })
  })

  it('reports a corrupt store as RunRecordError and may be started again', async () => {
    const clock = createManualClock(NOW)
    let bytes: Uint8Array = new Uint8Array([0xff])
    const record = createRunRecord(
      { load: async () => bytes, save: async () => {}, clock },
      { clockSkewToleranceMs: SKEW },
    )
    await expect(record.start()).rejects.toThrow(RunRecordError)
    await expect(record.start()).rejects.toThrow(/run record is unusable/)
    await expect(record.enter('a', NOW)).rejects.toThrow(/before start/)
    bytes = encodeRunLedger([])
    await record.start()
    expect(await record.enter('a', NOW)).toEqual({ ok: true })
  })

  it('takes both load and save or neither', () => {
    const clock = createManualClock(NOW)
    expect(() => createRunRecord({ save: async () => {}, clock }, { clockSkewToleranceMs: SKEW })).toThrow(
      RangeError,
    )
  })
})

describe('run record file in the agent home', () => {
  it('saves and reloads the record, and refuses a damaged file with one error naming it', async () => {
    const home = await mkdtemp(join(tmpdir(), 'mesh-run-record-'))
    try {
      const path = homePaths(home).runRecord
      expect(await loadRunRecord(home)).toBeUndefined() // a new home has none
      const clock = createManualClock(NOW)
      const record = createRunRecord(
        { load: () => loadRunRecord(home), save: bytes => saveRunRecord(home, bytes), clock },
        { clockSkewToleranceMs: SKEW },
      )
      await record.start()
      expect(await record.enter('id1:s', NOW + 1_000)).toEqual({ ok: true })
      expect((await stat(path)).mode & 0o777).toBe(0o600)
      const again = createRunRecord(
        { load: () => loadRunRecord(home), save: bytes => saveRunRecord(home, bytes), clock },
        { clockSkewToleranceMs: SKEW },
      )
      await again.start()
      expect(again.has('id1:s')).toBe(true)

      await writeFile(path, 'garbage')
      const error = await loadRunRecord(home).catch((err: unknown) => err)
      expect(error).toBeInstanceOf(HomeError)
      expect((error as HomeError).code).toBe('corrupt')
      expect((error as HomeError).message).toContain(path)
      expect((error as HomeError).message).toMatch(/move it aside/)
    } finally {
      await rm(home, { recursive: true, force: true })
    }
  })
})
