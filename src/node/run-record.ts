/**
 * The run record: which requests this node has started, kept across restarts, so a request runs at
 * most once per node even when its signed bytes come back after the node restarted.
 *
 * Why: the replay cache (src/gossip/replay.ts) lives in memory. A request signed with `issuedAtMs` up
 * to `clockSkewToleranceMs` (30 s) ahead of our clock passes the validity window, runs, and, after a
 * restart that takes less than that lead, also passes the `issuedAtMs < startedAtMs` rule: without a
 * record, its identical bytes published again would run a second time.
 *
 * Contract. {@link RunRecord.enter} puts the request's replay key in the record and resolves only after
 * `save` has resolved for a version of the record that holds it; the executor starts the action only
 * then. So whatever the process dies of, a request that started is in the stored record. The reverse
 * need not hold: a request entered whose action never started (the save failed, the node stopped) is
 * still "ran" to the record; that errs towards at most once. Writes are group-committed: entries made
 * while a save is in progress share the next one, so at most one save runs and one waits.
 *
 * Each entry is kept until `expiresAtMs + clockSkewToleranceMs`, after which the validity window
 * refuses the bytes anyway; at most `entriesMax` live entries (default 8,192), and a full record
 * refuses new requests (`full`, counted) rather than forget one that is still live. The decisions are
 * the pure ledger's (src/gossip/run-ledger.ts); this driver adds loading, saving and counting.
 *
 * Without `load` and `save` (an embedding whose NodeStore has no run-record methods) the record lives
 * in memory only: it survives `stop()`/`start()` of the same node object, not a new process.
 *
 * Later uses (the operator-workflow job history) read the same record; keep the key the replay key and
 * add fields to the entry rather than a second store.
 */
import {
  createRunLedger,
  decodeRunLedger,
  encodeRunLedger,
  RUN_LEDGER_ENTRIES_MAX,
  type RunLedger,
} from '../gossip/run-ledger.js'
import type { Clock } from './clock.js'

/** Default most live entries of a run record. */
export const RUN_RECORD_ENTRIES_MAX = RUN_LEDGER_ENTRIES_MAX

/** What a run record needs. Both storage functions are optional together: without them it is in memory. */
export interface RunRecordComponents {
  /** The bytes last given to `save` (possibly by an earlier process), or undefined when none. Called by start(). */
  readonly load?: () => Promise<Uint8Array | undefined>
  /**
   * Replaces the stored record with `bytes` (the record keeps no reference to them). Must resolve only
   * once they are durable and a crash leaves either the old or the new bytes (the agent uses
   * writeFileAtomic); a rejection means "not stored".
   */
  readonly save?: (bytes: Uint8Array) => Promise<void>
  readonly clock: Clock
}

/** Settings. */
export interface RunRecordInit {
  /** Most live entries; default {@link RUN_RECORD_ENTRIES_MAX}. */
  readonly entriesMax?: number
  /** How long an entry outlives its request's expiry (the request clock-skew tolerance), ms. */
  readonly clockSkewToleranceMs: number
}

/** Result of {@link RunRecord.enter}. */
export type RunRecordVerdict =
  | { readonly ok: true }
  | {
      readonly ok: false
      /** `already-ran`: the key is in the record; `full`: limit hit; `unsaved`: the save failed. */
      readonly code: 'already-ran' | 'full' | 'unsaved'
      readonly detail?: string
    }

/** Counters, for status and tests. */
export interface RunRecordCounters {
  /** Live entries now (at the last change). */
  readonly entries: number
  /** Requests entered (and saved, when there is a store). */
  readonly entered: number
  /** Requests refused because their key was already in the record. */
  readonly alreadyRan: number
  /** Requests refused because the record was full of live entries (the limit hit). */
  readonly full: number
  /** Requests refused because the save that was to store them failed. */
  readonly saveFailures: number
}

/** A run-record problem at start, with a message that says what is wrong. */
export class RunRecordError extends Error {
  override name = 'RunRecordError'
  readonly code: 'corrupt'
  constructor(code: RunRecordError['code'], message: string) {
    super(message)
    this.code = code
  }
}

/** The record of requests started on this node. */
export interface RunRecord {
  /**
   * Loads the stored record (once; later calls return the same promise). Until it resolves,
   * {@link enter} throws. A load that rejects is passed on; a load can be retried.
   * @throws RunRecordError `corrupt` when the stored bytes are not a record; whatever `load` throws
   */
  start(): Promise<void>
  /** True when `key` (a replay key) is in the record: that request started here, maybe in an earlier process. */
  has(key: string): boolean
  /**
   * Enters `key` for a request expiring at `expiresAtMs` and resolves once that is stored, or says why
   * not. Rejects only on the assertion that {@link start} has resolved. Only after `{ ok: true }` may
   * the request's action start.
   */
  enter(key: string, expiresAtMs: number): Promise<RunRecordVerdict>
  /** True when the record is stored (has `load` and `save`), false when it lives in memory only. */
  readonly persistent: boolean
  counters(): RunRecordCounters
}

/** Creates a run record. @throws RangeError on a non-positive size, or only one of load/save given */
export function createRunRecord(components: RunRecordComponents, init: RunRecordInit): RunRecord {
  const { load, save, clock } = components
  if ((load === undefined) !== (save === undefined))
    throw new RangeError('give both load and save, or neither')
  if (!(init.clockSkewToleranceMs >= 0)) throw new RangeError('clockSkewToleranceMs must be ≥ 0')
  const entriesMax = init.entriesMax ?? RUN_RECORD_ENTRIES_MAX
  let ledger: RunLedger = createRunLedger({ entriesMax })
  let loading: Promise<void> | undefined
  let loaded = load === undefined
  const counts = { entered: 0, alreadyRan: 0, full: 0, saveFailures: 0 }
  /** The save in progress (never rejects), and the next one, shared by every entry made meanwhile. */
  let saving: Promise<void> = Promise.resolve()
  let queued: Promise<void> | undefined

  const persist = (): Promise<void> => {
    if (save === undefined) return Promise.resolve()
    if (queued !== undefined) return queued
    const next = saving.then(() => {
      // From here on, new entries are not in this snapshot: they queue the next save.
      queued = undefined
      return save(encodeRunLedger(ledger.entries(clock.nowMs())))
    })
    queued = next
    saving = next.catch(() => {})
    return next
  }

  return {
    persistent: save !== undefined,
    start() {
      loading ??= (async () => {
        if (load === undefined) return
        const bytes = await load()
        if (bytes !== undefined) {
          try {
            ledger = createRunLedger({ entriesMax }, decodeRunLedger(bytes, entriesMax), clock.nowMs())
          } catch (err) {
            throw new RunRecordError('corrupt', `the run record is unusable (${(err as Error).message})`)
          }
        }
        loaded = true
      })().catch((err: unknown) => {
        loading = undefined
        throw err
      })
      return loading
    },
    has: key => ledger.has(key, clock.nowMs()),
    async enter(key, expiresAtMs) {
      if (!loaded) throw new Error('assertion: run record used before start() resolved')
      const verdict = ledger.enter(key, expiresAtMs + init.clockSkewToleranceMs, clock.nowMs())
      if (!verdict.ok) {
        if (verdict.code === 'full') counts.full++
        else counts.alreadyRan++
        return { ok: false, code: verdict.code === 'full' ? 'full' : 'already-ran' }
      }
      try {
        await persist()
      } catch (err) {
        // The entry stays: the request is not run, and a record that says "ran" errs towards at most once.
        counts.saveFailures++
        return { ok: false, code: 'unsaved', detail: (err as Error).message }
      }
      counts.entered++
      return { ok: true }
    },
    counters: () => ({ entries: ledger.size, ...counts }),
  }
}
