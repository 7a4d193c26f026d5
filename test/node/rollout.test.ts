/**
 * Proves the rollout component (src/node/rollout.ts) over a fake exec that answers from a table: waves
 * of the right size and order, each a request naming exactly its nodes with the operator's filter and
 * one shared job; percentages rounded up; the failure budget (counts, 0, percentages, missing nodes
 * count too) stops further waves and reports them as not run; the pause between waves runs on the
 * injected clock and an abort during it stops the rollout; `limit` is reproducible from its seed (also
 * a drawn one), independent of input order and nested as it grows (fast-check); a limit above the set
 * is clamped and reported; waves are cut at NAMES_MAX; bad options and `once` are refused; a first
 * wave that cannot start rejects, a later one ends the rollout with what ran.
 */
import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { NAMES_MAX, type TargetFilter } from '../../src/gossip/filter.js'
import type { ReplyStatus } from '../../src/gossip/reply.js'
import type { CollectedReply, ExecResult } from '../../src/gossip/reply-collector.js'
import type { MemberView } from '../../src/membership/view.js'
import { createManualClock, createSeededRandom } from '../../src/node/clock.js'
import type { ExecOptions } from '../../src/node/exec.js'
import { silentLogger } from '../../src/node/log.js'
import {
  chooseLimited,
  createRollout,
  type RolloutEvent,
  type RolloutOptions,
  RolloutOptionsError,
} from '../../src/node/rollout.js'

const member = (name: string, zone = 'web', state: MemberView['state'] = 'alive'): MemberView => ({
  name,
  peerId: `p-${name}`,
  zone,
  roles: ['agent'],
  addrs: [],
  state,
  lastSeenMs: 0,
  facts: {},
})

/** What each node answers; absent: ok. `silent` never answers. */
type Answer = ReplyStatus | 'silent'

/** A rollout over `members` whose fake exec answers from `answers` and records every call. */
function setup(members: MemberView[], answers: Record<string, Answer> = {}) {
  const clock = createManualClock()
  const calls: ExecOptions[] = []
  let failOnCall: number | undefined
  const exec = async (options: ExecOptions): Promise<ExecResult> => {
    calls.push(options)
    if (failOnCall === calls.length) throw new Error('the node is not running')
    const names = new Set(options.filter?.names ?? [])
    const expected = members
      .filter(m => m.state === 'alive' && names.has(m.name))
      .map(m => m.name)
      .sort()
    const id = `req${calls.length}`
    options.onEvent?.({ kind: 'published', id, expected })
    const replies: CollectedReply[] = []
    for (const node of expected) {
      const answer = answers[node] ?? 'ok'
      if (answer === 'silent') continue
      const reply: CollectedReply = {
        node,
        zone: 'web',
        status: answer,
        exitCode: answer === 'ok' ? 0 : 1,
        output: '',
        durationMs: 1,
        outputTruncated: false,
        expected: true,
        receivedAtMs: clock.nowMs(),
      }
      replies.push(reply)
      options.onEvent?.({ kind: 'done', reply })
    }
    const done = new Set(replies.map(r => r.node))
    return {
      id,
      action: options.action,
      expected,
      replies,
      missing: expected.filter(n => !done.has(n)),
      acked: [],
      unexpected: [],
    }
  }
  const rollout = createRollout({
    exec,
    members: () => members,
    clock,
    random: createSeededRandom(7),
    log: silentLogger(),
  })
  const events: Array<{ kind: string } & Record<string, unknown>> = []
  const run = (options: Partial<RolloutOptions>) =>
    rollout.run({
      action: 'deploy',
      timeoutMs: 1_000,
      onEvent: e => events.push(e as never),
      ...options,
    })
  return {
    clock,
    calls,
    events,
    run,
    failOn(call: number) {
      failOnCall = call
    },
  }
}

const names = (n: number, prefix = 'n') =>
  Array.from({ length: n }, (_, i) => `${prefix}${String(i + 1).padStart(2, '0')}`)
const fleet = (n: number) => names(n).map(name => member(name))

/** Lets pending promise callbacks run (the fake exec resolves at once). */
const settle = () => new Promise(resolve => setImmediate(resolve))

describe('rollout waves', () => {
  it('runs waves of --batch nodes in name order, each naming exactly its nodes with the same job', async () => {
    const r = setup([...fleet(5), member('d1', 'db')])
    const filter: TargetFilter = { zone: 'web', where: 'name!=n99' }
    const result = await r.run({ filter, batch: { count: 2 } })
    expect(r.calls.map(c => c.filter)).toEqual([
      { ...filter, names: ['n01', 'n02'] },
      { ...filter, names: ['n03', 'n04'] },
      { ...filter, names: ['n05'] },
    ])
    const job = r.calls[0]?.job
    expect(job?.byteLength).toBe(16)
    expect(r.calls.every(c => c.job === job)).toBe(true)
    expect(result.job).toBe(Buffer.from(job as Uint8Array).toString('hex'))
    expect(result.id).toBe(result.job)
    expect(result.expected).toEqual(names(5))
    expect(result.waves.map(w => [w.id, w.nodes, w.ok, w.failed, w.missing])).toEqual([
      ['req1', ['n01', 'n02'], 2, 0, 0],
      ['req2', ['n03', 'n04'], 2, 0, 0],
      ['req3', ['n05'], 1, 0, 0],
    ])
    expect(result.notRun).toEqual([])
    expect(result.stoppedBy).toBeUndefined()
    expect(result.replies.map(x => x.node)).toEqual(names(5))
    const kinds = r.events.map(e => e.kind).filter(k => k !== 'done')
    expect(kinds).toEqual([
      'rollout',
      'wave',
      'published',
      'wave-done',
      'wave',
      'published',
      'wave-done',
      'wave',
      'published',
      'wave-done',
    ])
    expect(r.events[0]).toMatchObject({ kind: 'rollout', expected: names(5), waves: 3 })
    expect(r.events[1]).toEqual({ kind: 'wave', index: 1, count: 3, nodes: ['n01', 'n02'] })
  })

  it.each([
    [{ percent: 30 }, 10, [3, 3, 3, 1]],
    [{ percent: 1 }, 3, [1, 1, 1]],
    [{ percent: 34 }, 3, [2, 1]],
    [{ percent: 100 }, 7, [7]],
    [{ count: 10 }, 4, [4]],
  ] as const)('batch %j of %i nodes gives waves of %j (percentages round up)', async (batch, n, sizes) => {
    const r = setup(fleet(n))
    const result = await r.run({ batch })
    expect(result.waves.map(w => w.nodes.length)).toEqual(sizes)
  })

  it('without a batch runs one wave, cut at NAMES_MAX nodes per request', async () => {
    const r = setup(
      Array.from({ length: NAMES_MAX + 88 }, (_, i) => member(`m${String(i).padStart(4, '0')}`)),
    )
    const result = await r.run({ maxFailures: { count: 5 } })
    expect(result.waves.map(w => w.nodes.length)).toEqual([NAMES_MAX, 88])
  })

  it('runs nothing when nothing matches', async () => {
    const r = setup(fleet(3))
    const result = await r.run({ filter: { zone: 'db' }, batch: { count: 1 } })
    expect(r.calls).toEqual([])
    expect(result).toMatchObject({ expected: [], waves: [], notRun: [], replies: [], missing: [] })
  })
})

describe('failure budget', () => {
  it('stops after the wave that takes failures over --max-failures and names what was not run', async () => {
    const r = setup(fleet(6), { n02: 'failed', n03: 'denied' })
    const result = await r.run({ batch: { count: 2 }, maxFailures: { count: 1 } })
    expect(r.calls).toHaveLength(2)
    expect(result.waves.map(w => [w.ok, w.failed, w.missing])).toEqual([
      [1, 1, 0],
      [1, 1, 0],
    ])
    expect(result.notRun).toEqual(['n05', 'n06'])
    expect(result.stoppedBy).toBe('max-failures')
    expect(result.maxFailures).toBe(1)
    expect(result.expected).toEqual(names(6))
    expect(result.missing).toEqual([])
  })

  it('at exactly the budget the rollout goes on', async () => {
    const r = setup(fleet(6), { n02: 'failed' })
    const result = await r.run({ batch: { count: 2 }, maxFailures: { count: 1 } })
    expect(r.calls).toHaveLength(3)
    expect(result.notRun).toEqual([])
    expect(result.stoppedBy).toBeUndefined()
  })

  it('--max-failures 0 stops at the first failure', async () => {
    const r = setup(fleet(4), { n01: 'error' })
    const result = await r.run({ batch: { count: 1 }, maxFailures: { count: 0 } })
    expect(r.calls).toHaveLength(1)
    expect(result.notRun).toEqual(['n02', 'n03', 'n04'])
  })

  it('counts missing nodes, including a named node that died before its wave', async () => {
    const members = fleet(6)
    const r = setup(members, { n01: 'silent' })
    // The expected set is taken at the start; the first wave runs before run() returns its promise.
    const started = r.run({ batch: { count: 2 }, maxFailures: { count: 1 } })
    members[2] = member('n03', 'web', 'dead') // dies before wave 2: still named, never answers
    const result = await started
    expect(result.expected).toContain('n03')
    expect(r.calls[1]?.filter?.names).toEqual(['n03', 'n04'])
    expect(result.waves.map(w => w.missing)).toEqual([1, 1])
    expect(result.missing).toEqual(['n01', 'n03'])
    expect(result.notRun).toEqual(['n05', 'n06'])
    expect(result.stoppedBy).toBe('max-failures')
  })

  it('a percentage budget is of the chosen set, rounded down', async () => {
    // 10% of 15 = 1.5: one failure is allowed, the second stops the rollout.
    const r = setup(fleet(15), { n01: 'failed', n06: 'failed' })
    const result = await r.run({ batch: { count: 5 }, maxFailures: { percent: 10 } })
    expect(result.maxFailures).toBe(1)
    expect(result.waves).toHaveLength(2)
    expect(result.notRun).toEqual(names(15).slice(10))
  })
})

describe('pause between waves', () => {
  it('waits --batch-sleep on the injected clock before each later wave', async () => {
    const r = setup(fleet(3))
    const done = r.run({ batch: { count: 1 }, batchSleepMs: 1_000 })
    await settle()
    expect(r.calls).toHaveLength(1)
    r.clock.advance(999)
    await settle()
    expect(r.calls).toHaveLength(1)
    r.clock.advance(1)
    await settle()
    expect(r.calls).toHaveLength(2)
    r.clock.advance(1_000)
    const result = await done
    expect(r.calls).toHaveLength(3)
    expect(result.notRun).toEqual([])
  })

  it('an abort during the pause starts no further wave', async () => {
    const r = setup(fleet(3))
    const abort = new AbortController()
    const done = r.run({ batch: { count: 1 }, batchSleepMs: 60_000, signal: abort.signal })
    await settle()
    abort.abort()
    const result = await done
    expect(r.calls).toHaveLength(1)
    expect(result.stoppedBy).toBe('aborted')
    expect(result.notRun).toEqual(['n02', 'n03'])
  })
})

describe('abort during a wave', () => {
  it('ends the rollout as aborted, not as over its budget', async () => {
    const r = setup(fleet(3), { n01: 'silent' })
    const abort = new AbortController()
    const result = await r.run({
      batch: { count: 1 },
      maxFailures: { count: 0 },
      signal: abort.signal,
      onEvent: e => {
        if (e.kind === 'wave') abort.abort() // Ctrl-C while wave 1 runs
      },
    })
    expect(r.calls).toHaveLength(1)
    expect(r.calls[0]?.signal).toBe(abort.signal)
    expect(result.stoppedBy).toBe('aborted')
    expect(result.notRun).toEqual(['n02', 'n03'])
  })
})

describe('limit', () => {
  it('picks the same subset for the same seed, and reports the seed', async () => {
    const a = await setup(fleet(20)).run({ limit: { count: 5 }, limitSeed: 'canary' })
    const b = await setup(fleet(20)).run({ limit: { count: 5 }, limitSeed: 'canary' })
    expect(a.expected).toHaveLength(5)
    expect(a.expected).toEqual(b.expected)
    expect(a.limitSeed).toBe('canary')
    expect(a.replies.map(x => x.node).sort()).toEqual(a.expected)
    // Different seeds choose differently (for 5 of 20, a collision over 8 seeds is negligible).
    const others = new Set<string>()
    for (let i = 0; i < 8; i++) others.add(chooseLimited(names(20), 5, `seed-${i}`).join(','))
    expect(others.size).toBeGreaterThan(1)
  })

  it('draws a seed when none is given, and that seed reproduces the choice', async () => {
    const first = await setup(fleet(30)).run({ limit: { percent: 10 } })
    expect(first.expected).toHaveLength(3)
    expect(first.limitSeed).toMatch(/^[0-9a-f]{16}$/)
    const again = await setup(fleet(30)).run({ limit: { percent: 10 }, limitSeed: first.limitSeed as string })
    expect(again.expected).toEqual(first.expected)
  })

  it('a limit above the set runs on every node and says so', async () => {
    const r = setup(fleet(3))
    const result = await r.run({ limit: { count: 10 } })
    expect(result.expected).toEqual(names(3))
    expect(result.limitClamped).toEqual({ requested: 10, available: 3 })
    expect(r.events[0]).toMatchObject({ kind: 'rollout', limitClamped: { requested: 10, available: 3 } })
  })

  it('the choice ignores input order and grows by adding nodes (property)', () => {
    fc.assert(
      fc.property(
        fc.uniqueArray(fc.stringMatching(/^[a-z0-9]{1,8}$/), { minLength: 1, maxLength: 30 }),
        fc.string({ maxLength: 12 }),
        fc.nat(30),
        (set, seed, k) => {
          const size = Math.min(k, set.length)
          const chosen = chooseLimited(set, size, seed)
          expect(chosen).toHaveLength(size)
          expect(chosen).toEqual([...chosen].sort())
          expect(chosen.every(n => set.includes(n))).toBe(true)
          expect(chooseLimited([...set].reverse(), size, seed)).toEqual(chosen)
          const bigger = chooseLimited(set, Math.min(size + 1, set.length), seed)
          expect(chosen.every(n => bigger.includes(n))).toBe(true)
        },
      ),
      { numRuns: 200 },
    )
  })
})

describe('refusals and errors', () => {
  it.each<[string, Partial<RolloutOptions>]>([
    ['a zero batch', { batch: { count: 0 } }],
    ['a negative batch', { batch: { count: -1 } }],
    ['a fractional batch', { batch: { count: 1.5 } }],
    ['a batch over 100%', { batch: { percent: 101 } }],
    ['a 0% limit', { limit: { percent: 0 } }],
    ['a negative max-failures', { maxFailures: { count: -1 } }],
    ['a negative sleep', { batch: { count: 1 }, batchSleepMs: -5 }],
    ['once', { batch: { count: 1 }, filter: { once: true } }],
    ['a names filter', { batch: { count: 1 }, filter: { names: ['n01'] } }],
  ])('refuses %s', async (_what, options) => {
    const r = setup(fleet(3))
    await expect(r.run(options)).rejects.toBeInstanceOf(RolloutOptionsError)
    expect(r.calls).toEqual([])
  })

  it('a first wave that cannot start rejects', async () => {
    const r = setup(fleet(3))
    r.failOn(1)
    await expect(r.run({ batch: { count: 1 } })).rejects.toThrow('the node is not running')
  })

  it('a later wave that cannot start ends the rollout with what ran', async () => {
    const r = setup(fleet(3))
    r.failOn(2)
    const result = await r.run({ batch: { count: 1 } })
    expect(result.stoppedBy).toBe('error')
    expect(result.error).toBe('the node is not running')
    expect(result.waves).toHaveLength(1)
    expect(result.notRun).toEqual(['n02', 'n03'])
    expect(result.replies.map(x => x.node)).toEqual(['n01'])
  })
})

describe('events', () => {
  it('reports wave-done with the counts of each wave', async () => {
    const r = setup(fleet(4), { n02: 'failed', n04: 'silent' })
    await r.run({ batch: { count: 2 } })
    const doneEvents = r.events.filter(
      (e): e is RolloutEvent & { kind: 'wave-done' } => e.kind === 'wave-done',
    )
    expect(doneEvents.map(e => [e.index, e.id, e.ok, e.failed, e.missing])).toEqual([
      [1, 'req1', 1, 1, 0],
      [2, 'req2', 1, 0, 1],
    ])
  })
})
