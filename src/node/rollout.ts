/**
 * Rollouts: one `exec` run over its expected set in waves (`mesh exec --batch`, `--max-failures`,
 * `--limit`).
 *
 * ```
 *   expected set ──limit (seeded choice)──▶ chosen ──sorted, cut in waves──▶ wave 1, wave 2, …
 *
 *   for each wave:  sign a request whose filter is the operator's AND names = the wave's nodes
 *                   ──▶ exec (publish, collect until every node answered or the timeout)
 *                   ──▶ failures so far > budget?  yes: stop (the rest is `notRun`)
 *                   ──▶ sleep batchSleepMs (abortable) ──▶ next wave
 * ```
 *
 * Each wave is its own signed request naming its nodes exactly (filter.ts `names`), so every node
 * still decides from the signed filter whether it runs, and a node outside the wave ignores it. The
 * waves share one job id (ExecOptions.job). A wave holds at most {@link NAMES_MAX} nodes, the most one
 * request can name; a larger batch is run as waves of that size.
 *
 * The expected set is computed once, at the start, from the membership table (the same rule as a
 * plain exec: live members with the agent role that match the filter). A node that dies before its
 * wave is still named by it and, not answering, counts as missing; one that joins later is not run.
 * `--limit` picks its subset by sorting the expected names by SHA-256(seed ‖ 0 ‖ name): the same
 * seed and set give the same choice on any machine; without a seed one is drawn from `random` and
 * reported. Percentages round up and are at least 1 node. The failure budget counts every chosen
 * node of the waves run so far that did not answer `ok` (failed, denied, error, cancelled) or did not
 * answer at all; once it exceeds `maxFailures` no further wave starts.
 */
import { NAMES_MAX, type TargetFilter } from '../gossip/filter.js'
import type { CollectedReply, ExecResult } from '../gossip/reply-collector.js'
import { expectedNodes, type MemberView } from '../membership/view.js'
import { hash, toHex } from '../wire/hash.js'
import { type Clock, type Random, sleep } from './clock.js'
import type { ExecOptions } from './exec.js'
import type { Logger } from './log.js'

/** Size of a job id, bytes. */
export const JOB_ID_BYTES = 16
/** Size of a limit seed drawn when the caller gives none, bytes (shown as hex). */
export const LIMIT_SEED_BYTES = 8

/** A number of nodes, or a percentage (1..100) of a set. */
export type Portion = { readonly count: number } | { readonly percent: number }

/** An event of one wave's exec (ack, done, published, output, …), passed on unchanged. */
export type ExecEvent = Parameters<NonNullable<ExecOptions['onEvent']>>[0]

/** What a rollout reports besides its waves' exec events. `index` is 1-based. */
export type RolloutEvent =
  | {
      readonly kind: 'rollout'
      readonly job: string
      /** The chosen nodes (after `limit`), sorted. */
      readonly expected: readonly string[]
      /** Waves planned. */
      readonly waves: number
      readonly limitSeed?: string
      readonly limitClamped?: LimitClamped
    }
  | {
      readonly kind: 'wave'
      readonly index: number
      readonly count: number
      readonly nodes: readonly string[]
    }
  | {
      readonly kind: 'wave-done'
      readonly index: number
      readonly id: string
      readonly ok: number
      readonly failed: number
      readonly missing: number
    }

/** Options of {@link Rollout.run}: an exec's, plus how to split it. */
export interface RolloutOptions extends Omit<ExecOptions, 'onEvent'> {
  /** Wave size; default one wave of every chosen node (at most {@link NAMES_MAX} per wave). */
  readonly batch?: Portion
  /** Pause between the end of one wave and the start of the next, ms. */
  readonly batchSleepMs?: number
  /** No further wave starts once more chosen nodes than this failed or went missing. A count may be 0. */
  readonly maxFailures?: Portion
  /** Run on a subset of the expected set of this size. */
  readonly limit?: Portion
  /** Makes the `limit` choice reproducible; default a fresh random seed (reported in the result). */
  readonly limitSeed?: string
  readonly onEvent?: (event: ExecEvent | RolloutEvent) => void
}

/** A `limit` larger than the expected set: every expected node was chosen. */
export interface LimitClamped {
  readonly requested: number
  readonly available: number
}

/** One wave as run. */
export interface RolloutWave {
  /** The wave's request id (hex). */
  readonly id: string
  readonly nodes: readonly string[]
  readonly ok: number
  /** Nodes of the wave that answered anything but `ok`. */
  readonly failed: number
  readonly missing: number
}

/** Why a rollout ended before its last wave. */
export type RolloutStop = 'max-failures' | 'aborted' | 'error'

/**
 * The merged result: ExecResult over every wave (`id` is the job id, `expected` the chosen set,
 * `missing` the chosen nodes of waves run that never completed), plus the waves.
 */
export interface RolloutResult extends ExecResult {
  /** The job id (hex), equal to `id`. */
  readonly job: string
  readonly waves: readonly RolloutWave[]
  /** Chosen nodes of waves never started, sorted. */
  readonly notRun: readonly string[]
  /** The seed the `limit` choice used (given or drawn); absent without a limit. */
  readonly limitSeed?: string
  readonly limitClamped?: LimitClamped
  /** Present when waves were left unrun. */
  readonly stoppedBy?: RolloutStop
  /** The failure budget in nodes (`maxFailures` resolved against the chosen set). */
  readonly maxFailures?: number
  /** With `stoppedBy: 'error'`: why a later wave could not be started. */
  readonly error?: string
}

/** What a rollout needs. */
export interface RolloutComponents {
  readonly exec: (options: ExecOptions) => Promise<ExecResult>
  readonly members: () => readonly MemberView[]
  readonly clock: Clock
  readonly random: Random
  readonly log: Logger
}

/** The rollout component. */
export interface Rollout {
  /**
   * Runs `options` in waves. Rejects when the options are invalid (`RolloutOptionsError`) or the first
   * wave's exec rejects (nothing ran); a later wave's failure to start ends the rollout with
   * `stoppedBy: 'error'` instead, so the waves already run are reported.
   */
  run(options: RolloutOptions): Promise<RolloutResult>
}

/** Rollout options that cannot be used (bad portion, `once` with waves). */
export class RolloutOptionsError extends Error {
  override name = 'RolloutOptionsError'
  readonly code = 'invalid-rollout'
}

/** Checks a portion: a count of at least `countMin`, or an integer percentage 1..100. */
export function checkPortion(portion: Portion, what: string, countMin = 1): void {
  if ('count' in portion) {
    if (!Number.isSafeInteger(portion.count) || portion.count < countMin) {
      throw new RolloutOptionsError(`${what} must be a whole number of at least ${countMin}`)
    }
  } else if (!Number.isSafeInteger(portion.percent) || portion.percent < 1 || portion.percent > 100) {
    throw new RolloutOptionsError(`${what} must be a whole percentage from 1 to 100`)
  }
}

/** Nodes a portion stands for in a set of `total`: a count as is, a percentage rounded up, at least 1. */
export function portionSize(portion: Portion, total: number): number {
  if ('count' in portion) return portion.count
  return Math.max(1, Math.ceil((portion.percent * total) / 100))
}

/**
 * The failure budget in nodes: a count as is; a percentage of the chosen set rounded down (10% of 15
 * allows 1 failure, so a second one stops the rollout).
 */
export function failureBudget(portion: Portion, total: number): number {
  if ('count' in portion) return portion.count
  return Math.floor((portion.percent * total) / 100)
}

/**
 * The first `size` of `names` in the order of SHA-256(seed ‖ 0 ‖ name), returned sorted: a choice
 * that looks random, and is the same for the same seed and set wherever it is computed.
 */
export function chooseLimited(names: readonly string[], size: number, seed: string): string[] {
  const encoder = new TextEncoder()
  const prefix = encoder.encode(seed)
  const keyed = names.map(name => {
    const body = encoder.encode(name)
    const input = new Uint8Array(prefix.byteLength + 1 + body.byteLength)
    input.set(prefix, 0)
    input.set(body, prefix.byteLength + 1)
    return { name, key: toHex(hash(input)) }
  })
  keyed.sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : a.name < b.name ? -1 : 1))
  return keyed
    .slice(0, size)
    .map(k => k.name)
    .sort()
}

/** `names` (sorted) cut into waves of `size` (at most {@link NAMES_MAX}). */
export function planWaves(names: readonly string[], size: number): string[][] {
  const step = Math.min(Math.max(1, size), NAMES_MAX)
  const waves: string[][] = []
  for (let i = 0; i < names.length; i += step) waves.push(names.slice(i, i + step))
  return waves
}

/** Creates the rollout component. */
export function createRollout(components: RolloutComponents): Rollout {
  const { clock, random, log } = components

  const run = async (options: RolloutOptions): Promise<RolloutResult> => {
    const { batch, batchSleepMs, maxFailures, limit, limitSeed, onEvent, ...execOptions } = options
    const filter: TargetFilter = options.filter ?? {}
    if (batch !== undefined) checkPortion(batch, 'batch')
    if (limit !== undefined) checkPortion(limit, 'limit')
    if (maxFailures !== undefined) checkPortion(maxFailures, 'max-failures', 0)
    if (batchSleepMs !== undefined && (!Number.isSafeInteger(batchSleepMs) || batchSleepMs < 0)) {
      throw new RolloutOptionsError('batch sleep must be a whole number of ms, 0 or more')
    }
    // The expected set of a rollout is computed here without the authority lookup `once` needs, and
    // one zone's authority is a single node: waves make no sense for it.
    if (filter.once === true) {
      throw new RolloutOptionsError('--once runs on one node per zone; it cannot be used with a rollout')
    }
    if (filter.names !== undefined) {
      throw new RolloutOptionsError('a rollout names the nodes of each wave itself; give no names filter')
    }
    const job = options.job ?? random.bytes(JOB_ID_BYTES)
    const jobHex = toHex(job)
    const expected = expectedNodes(components.members(), filter, new Set())

    let chosen = expected
    let seed: string | undefined
    let clamped: LimitClamped | undefined
    if (limit !== undefined) {
      seed = limitSeed ?? toHex(random.bytes(LIMIT_SEED_BYTES))
      const size = portionSize(limit, expected.length)
      if (size > expected.length) clamped = { requested: size, available: expected.length }
      chosen = chooseLimited(expected, Math.min(size, expected.length), seed)
    }
    const waves = planWaves(chosen, batch === undefined ? chosen.length : portionSize(batch, chosen.length))
    const budget = maxFailures === undefined ? undefined : failureBudget(maxFailures, chosen.length)
    onEvent?.({
      kind: 'rollout',
      job: jobHex,
      expected: chosen,
      waves: waves.length,
      ...(seed === undefined ? {} : { limitSeed: seed }),
      ...(clamped === undefined ? {} : { limitClamped: clamped }),
    })
    log.info(
      { job: jobHex, action: options.action, nodes: chosen.length, waves: waves.length, budget },
      'rollout started',
    )

    const chosenSet = new Set(chosen)
    const ran: RolloutWave[] = []
    const replies: CollectedReply[] = []
    const completed = new Set<string>()
    const acked = new Set<string>()
    const missing: string[] = []
    let failures = 0
    let stoppedBy: RolloutStop | undefined
    let error: string | undefined
    for (let next = 0; next < waves.length; next++) {
      const nodes = waves[next] as string[]
      if (next > 0) {
        if (options.signal?.aborted === true) {
          stoppedBy = 'aborted'
          break
        }
        if (budget !== undefined && failures > budget) {
          stoppedBy = 'max-failures'
          break
        }
        if (batchSleepMs !== undefined && batchSleepMs > 0) await sleep(clock, batchSleepMs, options.signal)
      }
      if (options.signal?.aborted === true) {
        stoppedBy = 'aborted'
        break
      }
      onEvent?.({ kind: 'wave', index: next + 1, count: waves.length, nodes })
      let result: ExecResult
      try {
        result = await components.exec({
          ...execOptions,
          filter: { ...filter, names: nodes },
          job,
          ...(onEvent === undefined ? {} : { onEvent }),
        })
      } catch (err) {
        if (next === 0) throw err
        stoppedBy = 'error'
        error = (err as Error).message
        log.warn({ job: jobHex, wave: next + 1, err: error }, 'rollout wave could not start')
        break
      }
      const waveSet = new Set(nodes)
      let ok = 0
      let failed = 0
      for (const reply of result.replies) {
        const isChosen = chosenSet.has(reply.node)
        replies.push({ ...reply, expected: isChosen })
        if (!isChosen || !waveSet.has(reply.node) || completed.has(reply.node)) continue
        completed.add(reply.node)
        if (reply.status === 'ok') ok++
        else failed++
      }
      for (const name of result.acked) acked.add(name)
      // The wave's own expected set leaves out named nodes that died meanwhile; they are missing too.
      const waveMissing = nodes.filter(name => !completed.has(name))
      missing.push(...waveMissing)
      failures += failed + waveMissing.length
      ran.push({ id: result.id, nodes, ok, failed, missing: waveMissing.length })
      onEvent?.({
        kind: 'wave-done',
        index: next + 1,
        id: result.id,
        ok,
        failed,
        missing: waveMissing.length,
      })
    }
    const notRun = waves.slice(ran.length).flat().sort()
    if (stoppedBy !== undefined) {
      log.info({ job: jobHex, stoppedBy, notRun: notRun.length, failures, budget }, 'rollout stopped early')
    }
    const unexpected = replies.filter(r => !r.expected).map(r => r.node)
    return {
      id: jobHex,
      action: options.action,
      expected: chosen,
      replies,
      missing: missing.sort(),
      acked: [...acked].filter(name => chosenSet.has(name) && !completed.has(name)).sort(),
      unexpected,
      job: jobHex,
      waves: ran,
      notRun,
      ...(seed === undefined ? {} : { limitSeed: seed }),
      ...(clamped === undefined ? {} : { limitClamped: clamped }),
      ...(stoppedBy === undefined ? {} : { stoppedBy }),
      ...(budget === undefined ? {} : { maxFailures: budget }),
      ...(error === undefined ? {} : { error }),
    }
  }

  return { run }
}
