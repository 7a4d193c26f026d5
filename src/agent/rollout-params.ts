/**
 * The rollout parameters of the `exec` control method (`batch`, `batchSleepMs`, `maxFailures`,
 * `limit`, `limitSeed`), read from untrusted JSON and bounded here; the CLI imports the same limits to
 * refuse bad flags before it asks the agent. Imports no libp2p (the CLI loads this module).
 */
import { ControlError } from '../control/index.js'
import type { Portion } from '../node/rollout.js'

/** Largest node count in `batch`, `limit` or `maxFailures`. */
export const ROLLOUT_COUNT_MAX = 100_000
/** Longest pause between waves, ms (1 h). */
export const BATCH_SLEEP_MS_MAX = 3_600_000
/** Longest `limitSeed`, in characters. */
export const LIMIT_SEED_CHARS_MAX = 256

/** The rollout part of an exec call; every field optional. */
export interface RolloutParams {
  readonly batch?: Portion
  readonly batchSleepMs?: number
  readonly maxFailures?: Portion
  readonly limit?: Portion
  readonly limitSeed?: string
}

const invalid = (message: string) => new ControlError('invalid-params', message)

/**
 * `{ count: n }` (n in countMin..{@link ROLLOUT_COUNT_MAX}) or `{ percent: p }` (p in 1..100), integers.
 * @throws ControlError `invalid-params`
 */
export function readPortion(value: unknown, key: string, countMin = 1): Portion {
  if (value === null || typeof value !== 'object' || Array.isArray(value)) {
    throw invalid(`${key} must be { count } or { percent }`)
  }
  const keys = Object.keys(value)
  const record = value as Record<string, unknown>
  const whole = (n: unknown): n is number => typeof n === 'number' && Number.isSafeInteger(n)
  if (keys.length === 1 && keys[0] === 'count') {
    const n = record.count
    if (!whole(n) || n < countMin || n > ROLLOUT_COUNT_MAX) {
      throw invalid(`${key}.count must be an integer from ${countMin} to ${ROLLOUT_COUNT_MAX}`)
    }
    return { count: n }
  }
  if (keys.length === 1 && keys[0] === 'percent') {
    const p = record.percent
    if (!whole(p) || p < 1 || p > 100) throw invalid(`${key}.percent must be an integer from 1 to 100`)
    return { percent: p }
  }
  throw invalid(`${key} must be { count } or { percent }`)
}

/**
 * The rollout fields of exec params, or undefined when none is present (a plain exec).
 * @throws ControlError `invalid-params`
 */
export function readRolloutParams(p: Record<string, unknown>): RolloutParams | undefined {
  const { batch, batchSleepMs, maxFailures, limit, limitSeed } = p
  if ([batch, batchSleepMs, maxFailures, limit, limitSeed].every(v => v === undefined)) return undefined
  if (
    batchSleepMs !== undefined &&
    (typeof batchSleepMs !== 'number' ||
      !Number.isSafeInteger(batchSleepMs) ||
      batchSleepMs < 0 ||
      batchSleepMs > BATCH_SLEEP_MS_MAX)
  ) {
    throw invalid(`batchSleepMs must be an integer from 0 to ${BATCH_SLEEP_MS_MAX}`)
  }
  if (
    limitSeed !== undefined &&
    (typeof limitSeed !== 'string' || limitSeed.length === 0 || limitSeed.length > LIMIT_SEED_CHARS_MAX)
  ) {
    throw invalid(`limitSeed must be text of 1 to ${LIMIT_SEED_CHARS_MAX} characters`)
  }
  if (limitSeed !== undefined && limit === undefined) throw invalid('limitSeed needs limit')
  if (batchSleepMs !== undefined && batch === undefined) throw invalid('batchSleepMs needs batch')
  return {
    ...(batch === undefined ? {} : { batch: readPortion(batch, 'batch') }),
    ...(batchSleepMs === undefined ? {} : { batchSleepMs }),
    ...(maxFailures === undefined ? {} : { maxFailures: readPortion(maxFailures, 'maxFailures', 0) }),
    ...(limit === undefined ? {} : { limit: readPortion(limit, 'limit') }),
    ...(limitSeed === undefined ? {} : { limitSeed }),
  }
}
