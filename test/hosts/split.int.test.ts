/**
 * Proves, on five real agents in their own network namespaces (zone web, lan profile), that a 2|3
 * split keeps the zone authority safe and live: the pre-split holder is put on the minority side with
 * one other node; only the majority side ever has an authority during the split (the minority's
 * acting intervals all end within one lease of the split; none begins), and it elects one with a
 * higher epoch within the failover bound L (docs/authority.md, 7,445 ms on `lan`); the minority
 * answers `mesh exec --once` with "zone web has no authority right now" and publishes nothing; after
 * the heal every node names one authority, with an epoch above the pre-split one, within L, or, where
 * the partition left TCP connections stalled (a known defect, docs/hosts.md), within L of TCP's
 * retransmission on the last of them. Over the whole run, from every node's log: no two nodes' acting
 * intervals overlap, each epoch was acquired by at most one node, every `--once` run lies in an
 * acting interval of its node with the epoch its reply reported, at most one node ran in any epoch,
 * and no `--once` request ran twice (the `mark` action's own file agrees with the logs).
 */
import { afterAll, describe, expect, it, onTestFailed } from 'vitest'
import { authorityProfiles } from '../../src/authority/index.js'
import { livenessBoundMs } from '../sim/swarm.js'
import {
  type ActingInterval,
  actingIntervals,
  buildMesh,
  describeInterval,
  describeStalled,
  type ExecReport,
  exec,
  marks,
  overlaps,
  runs,
  stalledAcross,
  startAll,
  waitConverged,
  zones,
} from './mesh.js'
import { createRig, note, type Rig, rigSupport, sleep, until, warnIfUnsupported } from './rig.js'

warnIfUnsupported('test/hosts/split.int.test.ts')

const lan = authorityProfiles.lan
/** The failover bound of docs/authority.md for a zone of five on `lan` (7,445 ms). */
const L = livenessBoundMs(lan, 5)
const NAMES = ['n1', 'n2', 'n3', 'n4', 'n5']
/** How long the split lasts once the majority has an authority (the minority's campaigns keep failing). */
const SPLIT_HOLD_MS = 6_000
/** Longest wait for every node to name one authority after the heal (the known defect included). */
const HEALED_WITHIN_MS = 60_000
/** Rounding of logged wall-clock times, ms. */
const SLACK_MS = 5

describe.skipIf(!rigSupport().ok)('hosts: a 5-member zone split 2|3', () => {
  let rig: Rig | undefined
  afterAll(async () => {
    await rig?.teardown()
  })

  it('only the majority has an authority; --once at most once per epoch; heal gives one, higher', async () => {
    rig = await createRig()
    const r = rig
    onTestFailed(() => {
      r.keep()
      console.warn(`hosts split: logs and homes kept in ${r.root}`)
    })
    const t0 = Date.now()
    await buildMesh(
      r,
      NAMES.map(name => ({ name, zone: 'web', operator: true })),
    )
    await startAll(r, NAMES.slice(1))
    await waitConverged(r, NAMES, NAMES, 30_000)
    const onceExecs: Array<{ from: string; result: Awaited<ReturnType<typeof exec>> }> = []
    const once = async (from: string) => {
      const result = await exec(r, from, ['mark', '--zone', 'web', '--once', '--timeout', '3s'])
      onceExecs.push({ from, result })
      return result
    }
    // A settled authority that every node names (the first holder may be n1 alone, before the joins)
    // and that runs a --once: the holder to put on the minority side and its epoch. Asked again when
    // the lease moved in between (start-up on a loaded machine), at most three times.
    let holder: string | undefined
    let e0 = 0
    for (let attempt = 1; holder === undefined; attempt++) {
      const before = await until(
        'one authority of web named by every node',
        async () => {
          const views = await Promise.all(
            NAMES.map(async n => (await zones(r, n)).find(z => z.zone === 'web')),
          )
          const v0 = views[0]
          if (v0?.authority == null) return undefined
          return views.every(v => v?.authority === v0.authority && v.epoch === v0.epoch) ? v0 : undefined
        },
        30_000,
        300,
      )
      const first = await once('n1')
      const reply = first.report?.replies[0]
      if (first.status === 0 && reply?.node === before.authority && reply.epoch !== undefined) {
        holder = reply.node
        e0 = reply.epoch
      } else if (attempt === 3) {
        throw new Error(
          `no stable authority before the split: ${first.stderr} ${JSON.stringify(first.report)}`,
        )
      }
    }
    note(`split: mesh up after ${Date.now() - t0} ms; ${holder} holds web at epoch ${e0}`)

    // The holder and one other node on one side, the other three on the other.
    const minority = [holder, NAMES.find(n => n !== holder)!]
    const majority = NAMES.filter(n => !minority.includes(n))
    await r.partition(minority)
    const splitAt = Date.now()

    // The majority elects: the first acquisition on its side after the split.
    const elected = await until(
      'an authority on the majority side',
      () =>
        majority
          .flatMap(n => actingIntervals(r, n))
          .filter(i => i.fromMs > splitAt)
          .sort((a, b) => a.fromMs - b.fromMs)[0],
      L + 10_000,
      100,
    )
    const electedAfterMs = elected.fromMs - splitAt
    note(
      `split: ${elected.node} elected on the majority side at epoch ${elected.epoch} after ${electedAfterMs} ms`,
    )
    expect(elected.epoch).toBeGreaterThan(e0)
    expect(electedAfterMs).toBeLessThanOrEqual(L)

    // While split: the majority runs --once on its authority; the minority refuses, publishing nothing.
    const splitEnds = Date.now() + SPLIT_HOLD_MS
    let majorityRuns = 0
    let minorityRefusals = 0
    for (let round = 0; Date.now() < splitEnds && round < 20; round++) {
      const [fromMajority, fromMinority] = await Promise.all([
        once(majority[round % majority.length]!),
        once(minority[round % minority.length]!),
      ])
      if (fromMajority.status === 0) {
        majorityRuns += 1
        const replies = fromMajority.report!.replies
        expect(replies).toHaveLength(1)
        expect(majority).toContain(replies[0]!.node)
        expect(replies[0]!.epoch).toBeGreaterThan(e0)
      }
      expect(fromMinority.status, fromMinority.stderr).toBe(1)
      expect(fromMinority.stderr).toMatch(/^mesh: zone web has no authority right now/)
      expect(fromMinority.report).toBeUndefined()
      minorityRefusals += 1
    }
    expect(majorityRuns).toBeGreaterThan(0)
    expect(minorityRefusals).toBeGreaterThan(0)

    const stalled = stalledAcross(r, minority, majority)
    await r.heal()
    const healAt = Date.now()
    // Every node names the same authority, above the pre-split epoch. The time counted is the end of
    // the round of `mesh zones` calls that first agreed (an upper bound on when it became true).
    const after = await until(
      'one authority above the pre-split epoch, named by every node',
      async () => {
        const views = await Promise.all(NAMES.map(async n => (await zones(r, n)).find(z => z.zone === 'web')))
        const v0 = views[0]
        if (v0?.authority == null || v0.epoch <= e0) return undefined
        const agreed = views.every(v => v?.authority === v0.authority && v.epoch === v0.epoch)
        return agreed ? { authority: v0.authority, epoch: v0.epoch, atMs: Date.now() } : undefined
      },
      HEALED_WITHIN_MS,
      100,
    )
    const healedAfterMs = after.atMs - healAt
    note(
      `split: after the heal every node names ${after.authority} at epoch ${after.epoch} within ${healedAfterMs} ms`,
    )
    // Either side may hold it now (the minority's failed campaigns raised the epochs it knows); never
    // an epoch below the one the majority held while split.
    expect(after.epoch).toBeGreaterThanOrEqual(elected.epoch)
    if (healedAfterMs > L) {
      // Known defect (docs/hosts.md, "stalled connections"): a TCP connection the partition stalled is
      // neither closed nor replaced, so the two sides hear each other again only when TCP retransmits.
      // Only that excuses L, and then the bound counts from the last stalled connection's retransmission.
      const resumedAfterMs = Math.max(0, ...stalled.map(c => c.retransmitInMs))
      console.warn(
        `hosts split: KNOWN DEFECT (stalled connections): one authority ${healedAfterMs} ms after the heal, ` +
          `over L = ${L} ms; TCP resumed the stalled connections within ${resumedAfterMs} ms: ${describeStalled(stalled)}`,
      )
      expect(
        stalled,
        `${healedAfterMs} ms > L = ${L} ms after the heal, no stalled connection to blame`,
      ).not.toEqual([])
      expect(healedAfterMs, 'over L after TCP resumed the stalled connections').toBeLessThanOrEqual(
        resumedAfterMs + L,
      )
    }
    // The holder's leases after the heal, for the timeline.
    note(
      `split: leases since the heal: ${NAMES.flatMap(n => actingIntervals(r, n))
        .filter(i => i.untilMs > healAt)
        .sort((a, b) => a.fromMs - b.fromMs)
        .map(i => describeInterval(i, healAt))
        .join('; ')}`,
    )
    const last = await once(minority[1]!)
    expect(last.status, last.stderr).toBe(0)
    expect(last.report?.replies.map(x => x.epoch! > e0)).toEqual([true])
    // Let the leases in flight end in the logs before reading them.
    await sleep(lan.leaseTtlMs)

    // --- Whole run, from every node's log. ---
    const intervals: ActingInterval[] = NAMES.flatMap(n => actingIntervals(r, n))
    expect(
      overlaps(intervals).map(([a, b]) => `${describeInterval(a, t0)} and ${describeInterval(b, t0)}`),
      'two nodes acting as authority of web at once',
    ).toEqual([])
    const acquirers = new Map<number, Set<string>>()
    for (const i of intervals) acquirers.set(i.epoch, (acquirers.get(i.epoch) ?? new Set()).add(i.node))
    for (const [epoch, nodes] of acquirers)
      expect([epoch, [...nodes]]).toEqual([epoch, [...nodes].slice(0, 1)])
    // Only the majority side had an authority while split: minority intervals began before the split
    // and ended within one lease of it.
    for (const i of intervals.filter(x => minority.includes(x.node))) {
      const during = i.fromMs < healAt && i.untilMs > splitAt
      if (!during) continue
      expect(i.fromMs, `${i.node} acquired epoch ${i.epoch} while split`).toBeLessThan(splitAt)
      expect(i.untilMs - splitAt, `${i.node} acted on after the split`).toBeLessThanOrEqual(lan.leaseTtlMs)
    }

    // --once: every run inside an acting interval of its node, with the epoch its reply named.
    const replyEpoch = new Map<string, number>()
    for (const { result } of onceExecs) {
      for (const reply of (result.report as ExecReport | undefined)?.replies ?? []) {
        if (reply.epoch !== undefined) replyEpoch.set(`${result.report!.id}@${reply.node}`, reply.epoch)
      }
    }
    const onceRuns = NAMES.flatMap(n => runs(r, n, 'mark'))
    const ranIn = new Map<number, Set<string>>()
    for (const run of onceRuns) {
      // (A few ms either side: the lease check and the log line are microseconds apart, times are rounded.)
      const inside = intervals.find(
        i => i.node === run.node && i.fromMs - SLACK_MS <= run.atMs && run.atMs <= i.untilMs + SLACK_MS,
      )
      expect(
        inside,
        `${run.node} ran ${run.request} at ${run.atMs} outside any lease of its own`,
      ).toBeDefined()
      const reported = replyEpoch.get(`${run.request}@${run.node}`)
      if (reported !== undefined) expect(reported).toBe(inside!.epoch)
      ranIn.set(inside!.epoch, (ranIn.get(inside!.epoch) ?? new Set()).add(run.node))
    }
    for (const [epoch, nodes] of ranIn) expect([epoch, [...nodes]]).toEqual([epoch, [...nodes].slice(0, 1)])
    const perRequest = new Map<string, string[]>()
    for (const run of onceRuns)
      perRequest.set(run.request, [...(perRequest.get(run.request) ?? []), run.node])
    for (const [request, nodes] of perRequest) expect([request, nodes]).toEqual([request, nodes.slice(0, 1)])
    // The action's own side effect agrees with the logs, run for run.
    for (const n of NAMES) {
      expect(marks(r, n).sort()).toEqual(
        runs(r, n, 'mark')
          .map(x => x.request)
          .sort(),
      )
    }
    // Every --once that exited 0 ran exactly once, on the node that answered.
    for (const { result } of onceExecs.filter(x => x.result.status === 0)) {
      expect(perRequest.get(result.report!.id)).toEqual([result.report!.replies[0]!.node])
    }
    note(
      `split: ${onceExecs.length} --once execs (${majorityRuns} on the majority while split, ${minorityRefusals} refused by the minority), ` +
        `${onceRuns.length} runs, epochs ${[...acquirers.keys()].sort((a, b) => a - b).join(',')}; total ${Date.now() - t0} ms`,
    )
  }, 240_000)
})
