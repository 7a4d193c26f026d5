/**
 * The run ledger: the pure part of the record of requests this node has started (src/node/run-record.ts
 * persists it). It answers "did a request with this replay key start here, in this process or an
 * earlier one?" and decides whether a new one may be entered.
 *
 * An entry is the request's replay key (`idHex:serial`, see validate.ts) and the time until which it is
 * kept: `expiresAtMs + clockSkewToleranceMs` on our clock. After that the validity window refuses the
 * request's bytes anyway, so the entry can go. That is the same keep-until rule as the replay cache
 * (replay.ts); the ledger exists because the replay cache lives in memory and is lost on restart.
 *
 * Bounded by `entriesMax`. A full ledger first drops the entries past their keep-until time; if it is
 * still full it refuses the new key (`full`) rather than forget a live one, because forgetting it would
 * let the request run a second time after a restart. With lifetimes bounded by `requestLifetimeMsMax`
 * (5 min) plus the skew (30 s), N entries sustain N / 330 s started requests per second: 8,192 → ~25/s
 * at the longest lifetime, ~200/s at the CLI's default 10 s timeout.
 *
 * Entries live in a Map in insertion order; pruning is a linear scan, done only when the ledger is full
 * and when it is encoded (every save encodes the whole ledger, O(n) anyway), so no heap is needed.
 * Pure: time comes in as arguments; no I/O.
 */
import { decodeCbor, encodeCbor } from '../wire/cbor.js'

/** Default most entries of a run ledger. */
export const RUN_LEDGER_ENTRIES_MAX = 8_192
/** Longest replay key accepted from a stored ledger (`idHex:serial` is 32 + 1 + at most 64 chars). */
export const RUN_LEDGER_KEY_CHARS_MAX = 256
/** Largest encoded ledger accepted (bytes); 8,192 entries of the longest keys stay below it. */
export const RUN_LEDGER_BYTES_MAX = 4 * 1024 * 1024
/** Format version of the encoded ledger. */
const RUN_LEDGER_VERSION = 1

/** One started request: its replay key and when it may be forgotten (ms since the epoch, our clock). */
export interface RunLedgerEntry {
  readonly key: string
  readonly keepUntilMs: number
}

/** Result of {@link RunLedger.enter}. */
export type RunLedgerVerdict =
  | { readonly ok: true }
  | { readonly ok: false; readonly code: 'already-entered' | 'full' }

/** The ledger. Pure: time comes in as arguments. */
export interface RunLedger {
  /** True when `key` was entered and is still kept at `nowMs`. Marks nothing. */
  has(key: string, nowMs: number): boolean
  /** Enters `key`, kept until `keepUntilMs`, or says why not (already there; full of live entries). */
  enter(key: string, keepUntilMs: number, nowMs: number): RunLedgerVerdict
  /** Drops entries whose keep-until time has passed at `nowMs`; returns how many. */
  prune(nowMs: number): number
  /** The live entries at `nowMs`, oldest entered first (prunes first). */
  entries(nowMs: number): RunLedgerEntry[]
  readonly size: number
  readonly entriesMax: number
}

/**
 * Creates a ledger holding `initial` (entries past their time at `nowMs` are dropped).
 * @throws RangeError on a non-positive size, or more live `initial` entries than `entriesMax`
 */
export function createRunLedger(
  init: { readonly entriesMax?: number } = {},
  initial: readonly RunLedgerEntry[] = [],
  nowMs = Number.NEGATIVE_INFINITY,
): RunLedger {
  const entriesMax = init.entriesMax ?? RUN_LEDGER_ENTRIES_MAX
  if (!Number.isSafeInteger(entriesMax) || entriesMax < 1) throw new RangeError('entriesMax must be ≥ 1')
  const keepUntil = new Map<string, number>()
  const prune = (at: number): number => {
    let dropped = 0
    for (const [key, untilMs] of keepUntil) {
      if (untilMs < at) {
        keepUntil.delete(key)
        dropped++
      }
    }
    return dropped
  }
  const ledger: RunLedger = {
    has(key, at) {
      const untilMs = keepUntil.get(key)
      return untilMs !== undefined && untilMs >= at
    },
    enter(key, keepUntilMs, at) {
      if (ledger.has(key, at)) return { ok: false, code: 'already-entered' }
      keepUntil.delete(key) // a stale entry of the same key: re-entered at the end, with its new time
      if (keepUntil.size >= entriesMax && prune(at) === 0) return { ok: false, code: 'full' }
      keepUntil.set(key, keepUntilMs)
      return { ok: true }
    },
    prune,
    entries(at) {
      prune(at)
      return [...keepUntil].map(([key, keepUntilMs]) => ({ key, keepUntilMs }))
    },
    get size() {
      return keepUntil.size
    },
    entriesMax,
  }
  for (const entry of initial) {
    if (entry.keepUntilMs >= nowMs) keepUntil.set(entry.key, entry.keepUntilMs)
  }
  // Dropping live entries to fit would let their requests run again: the caller must refuse instead.
  if (keepUntil.size > entriesMax) throw new RangeError(`more than ${entriesMax} live entries`)
  return ledger
}

/** Why stored ledger bytes could not be decoded. */
export class RunLedgerFormatError extends Error {
  override name = 'RunLedgerFormatError'
  readonly code = 'corrupt'
}

/** Deterministic CBOR `{ v: 1, entries: [[key, keepUntilMs], …] }`. */
export function encodeRunLedger(entries: readonly RunLedgerEntry[]): Uint8Array {
  return encodeCbor({ v: RUN_LEDGER_VERSION, entries: entries.map(e => [e.key, e.keepUntilMs]) })
}

/**
 * Decodes what {@link encodeRunLedger} wrote. At most `entriesMax` entries are accepted; more, an
 * unknown version, or any malformed entry is refused as a whole (a partial record would let the
 * requests it lost run again).
 * @throws RunLedgerFormatError
 */
export function decodeRunLedger(bytes: Uint8Array, entriesMax = RUN_LEDGER_ENTRIES_MAX): RunLedgerEntry[] {
  let value: unknown
  try {
    value = decodeCbor(bytes, RUN_LEDGER_BYTES_MAX)
  } catch (err) {
    throw new RunLedgerFormatError(`not a run record (${(err as Error).message})`)
  }
  const record = value as { v?: unknown; entries?: unknown }
  if (typeof value !== 'object' || value === null || record.v !== RUN_LEDGER_VERSION) {
    throw new RunLedgerFormatError(`not a version ${RUN_LEDGER_VERSION} run record`)
  }
  if (!Array.isArray(record.entries)) throw new RunLedgerFormatError('its entries are not a list')
  if (record.entries.length > entriesMax) {
    throw new RunLedgerFormatError(`it has ${record.entries.length} entries, more than ${entriesMax}`)
  }
  return record.entries.map((item: unknown, index) => {
    const [key, keepUntilMs] = Array.isArray(item) && item.length === 2 ? item : []
    if (
      typeof key !== 'string' ||
      key.length === 0 ||
      key.length > RUN_LEDGER_KEY_CHARS_MAX ||
      !Number.isSafeInteger(keepUntilMs)
    ) {
      throw new RunLedgerFormatError(`entry ${index} is malformed`)
    }
    return { key, keepUntilMs: keepUntilMs as number }
  })
}
