/**
 * Proves the exec control method's rollout parameters are read strictly from untrusted JSON: absent
 * means a plain exec, good values pass through, and every malformed, out-of-range or dangling value
 * is an `invalid-params` ControlError naming the field.
 */
import { describe, expect, it } from 'vitest'
import {
  BATCH_SLEEP_MS_MAX,
  LIMIT_SEED_CHARS_MAX,
  ROLLOUT_COUNT_MAX,
  readRolloutParams,
} from '../../src/agent/rollout-params.js'
import { ControlError } from '../../src/control/index.js'

describe('rollout params', () => {
  it('is undefined without any rollout field', () => {
    expect(readRolloutParams({ action: 'x', timeoutMs: 5 })).toBeUndefined()
  })

  it('reads every field', () => {
    expect(
      readRolloutParams({
        batch: { percent: 25 },
        batchSleepMs: 0,
        maxFailures: { count: 0 },
        limit: { count: ROLLOUT_COUNT_MAX },
        limitSeed: 's',
      }),
    ).toEqual({
      batch: { percent: 25 },
      batchSleepMs: 0,
      maxFailures: { count: 0 },
      limit: { count: ROLLOUT_COUNT_MAX },
      limitSeed: 's',
    })
  })

  it.each<[string, Record<string, unknown>, RegExp]>([
    ['a number batch', { batch: 3 }, /batch must be/],
    ['a batch with both keys', { batch: { count: 1, percent: 5 } }, /batch must be/],
    ['a zero batch', { batch: { count: 0 } }, /batch.count/],
    ['a string count', { batch: { count: '2' } }, /batch.count/],
    ['a huge count', { limit: { count: ROLLOUT_COUNT_MAX + 1 } }, /limit.count/],
    ['a fractional percent', { limit: { percent: 2.5 } }, /limit.percent/],
    ['a percent over 100', { maxFailures: { percent: 101 } }, /maxFailures.percent/],
    ['a negative max failures', { maxFailures: { count: -1 } }, /maxFailures.count/],
    ['a sleep too long', { batch: { count: 1 }, batchSleepMs: BATCH_SLEEP_MS_MAX + 1 }, /batchSleepMs/],
    ['a negative sleep', { batch: { count: 1 }, batchSleepMs: -1 }, /batchSleepMs/],
    ['a sleep without batch', { batchSleepMs: 5 }, /needs batch/],
    [
      'a seed too long',
      { limit: { count: 1 }, limitSeed: 'x'.repeat(LIMIT_SEED_CHARS_MAX + 1) },
      /limitSeed/,
    ],
    ['an empty seed', { limit: { count: 1 }, limitSeed: '' }, /limitSeed/],
    ['a seed without limit', { limitSeed: 'x' }, /needs limit/],
    ['a null batch', { batch: null }, /batch must be/],
  ])('refuses %s', (_what, params, message) => {
    let caught: unknown
    try {
      readRolloutParams(params)
    } catch (err) {
      caught = err
    }
    expect(caught).toBeInstanceOf(ControlError)
    expect((caught as ControlError).code).toBe('invalid-params')
    expect((caught as Error).message).toMatch(message)
  })
})
