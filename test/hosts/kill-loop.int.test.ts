/**
 * Proves, on six real agents in their own network namespaces, what a mesh does while a third of it
 * is killed with kill -9 and restarted in a loop as execs run: every round kills two of w1..w5 (by
 * PID), restarts them from their homes after 1–3 s, and waits until the CA node lists each alive
 * again with the peer id it had from the start. Meanwhile the CA node runs `mesh exec mark` back to
 * back (two at a time). Every exec's report is exact: each expected node is either answered or
 * missing, never both; exit 0 exactly when nothing is missing or failed; every node that answered ok
 * ran the request (its log and its `mark` file say so), and every node that ran it and was not killed
 * before the exec ended is not reported missing. Nobody runs a request twice (logs and `mark` files).
 * At the end every node lists all six alive with their original peer ids and one exec reaches all.
 *
 * The loop lasts MESH_HOSTS_KILL_LOOP_MS (default 20 s, so `npm test` stays short); MESH_HOSTS_FULL=1
 * runs the full 60 s. MESH_HOSTS_SEED fixes the choice of victims (printed with
 * MESH_HOSTS_VERBOSE=1).
 */
import { afterAll, describe, expect, it, onTestFailed } from 'vitest'
import {
  buildMesh,
  type ExecReport,
  exec,
  marks,
  members,
  peerIdOf,
  runs,
  startAll,
  waitConverged,
} from './mesh.js'
import { createRig, note, type Rig, rigSupport, sleep, until, warnIfUnsupported } from './rig.js'

warnIfUnsupported('test/hosts/kill-loop.int.test.ts')

const LOOP_MS =
  process.env.MESH_HOSTS_FULL === '1' ? 60_000 : Number(process.env.MESH_HOSTS_KILL_LOOP_MS ?? 20_000)
const SEED = Number(process.env.MESH_HOSTS_SEED ?? Date.now() % 1_000_000)
const VICTIMS = ['w1', 'w2', 'w3', 'w4', 'w5']
const NAMES = ['ca', ...VICTIMS]
/** Each exec's --timeout. */
const EXEC_TIMEOUT_MS = 4_000
/** A node that ran a request this long before the exec's deadline has time to get its reply home. */
const REPLY_MARGIN_MS = 1_000
/** Longest wait for a restarted node to be listed alive again with its identity. */
const REJOIN_WITHIN_MS = 30_000

/** A small seeded generator (mulberry32), so a failing choice of victims can be replayed. */
function seeded(seed: number): () => number {
  let a = seed >>> 0
  return () => {
    a = (a + 0x6d2b79f5) >>> 0
    let t = a
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4_294_967_296
  }
}

interface ExecRecord {
  readonly status: number | null
  readonly report: ExecReport | undefined
  readonly stderr: string
  readonly startedAtMs: number
  readonly endedAtMs: number
}

describe.skipIf(!rigSupport().ok)('hosts: kill -9 and restart a third of the mesh while execs run', () => {
  let rig: Rig | undefined
  afterAll(async () => {
    await rig?.teardown()
  })

  it('every exec reports exactly who answered; nobody runs a request twice; restarts rejoin', async () => {
    rig = await createRig()
    const r = rig
    onTestFailed(() => {
      r.keep()
      console.warn(`hosts kill-loop (seed ${SEED}): logs and homes kept in ${r.root}`)
    })
    const t0 = Date.now()
    await buildMesh(r, [{ name: 'ca', zone: 'core' }, ...VICTIMS.map(name => ({ name, zone: 'web' }))])
    await startAll(r, VICTIMS)
    await waitConverged(r, NAMES, NAMES, 40_000)
    const identity = new Map<string, string>()
    for (const name of NAMES) identity.set(name, await peerIdOf(r, name))
    note(`kill-loop: mesh up after ${Date.now() - t0} ms; loop of ${LOOP_MS} ms, seed ${SEED}`)

    /** Kill times of each node (wall ms), to judge who could have answered. */
    const kills = new Map<string, number[]>(NAMES.map(n => [n, []]))
    const execs: ExecRecord[] = []
    let looping = true
    const execStream = async () => {
      while (looping) execs.push(await exec(r, 'ca', ['mark', '--timeout', `${EXEC_TIMEOUT_MS / 1000}s`]))
    }
    const streams = [execStream(), sleep(EXEC_TIMEOUT_MS / 2).then(execStream)]

    const random = seeded(SEED)
    const rejoinMs: number[] = []
    const loopEnds = Date.now() + LOOP_MS
    let rounds = 0
    try {
      while (Date.now() < loopEnds) {
        rounds += 1
        const pool = [...VICTIMS]
        const victims = [0, 1].map(() => pool.splice(Math.floor(random() * pool.length), 1)[0]!)
        for (const v of victims) {
          kills.get(v)!.push(Date.now())
          await r.killAgent(v, 'SIGKILL')
        }
        await sleep(1_000 + Math.floor(random() * 2_000))
        await Promise.all(victims.map(v => r.startAgent(v)))
        const restartedAt = Date.now()
        for (const v of victims) {
          expect(await peerIdOf(r, v), `${v} restarted with another identity`).toBe(identity.get(v))
        }
        await until(
          `${victims.join(', ')} listed alive by the CA node with their identities`,
          async () => {
            const view = await members(r, 'ca')
            const back = victims.every(v =>
              view.some(m => m.name === v && m.state === 'alive' && m.peerId === identity.get(v)),
            )
            return back ? true : undefined
          },
          REJOIN_WITHIN_MS,
          200,
        )
        rejoinMs.push(Date.now() - restartedAt)
        note(
          `kill-loop: round ${rounds}: killed ${victims.join(', ')}; back in ${Date.now() - restartedAt} ms`,
        )
        await sleep(1_000)
      }
    } finally {
      looping = false
      await Promise.all(streams)
    }

    // Afterwards: every node lists all six alive with their original identities, one exec reaches all.
    await waitConverged(r, NAMES, NAMES, 40_000)
    for (const viewer of NAMES) {
      const view = await members(r, viewer)
      for (const name of NAMES) expect(view.find(m => m.name === name)?.peerId).toBe(identity.get(name))
    }
    const final = await exec(r, 'ca', ['mark', '--timeout', '8s'])
    expect(final.status, final.stderr).toBe(0)
    expect(final.report?.replies.map(x => x.node).sort()).toEqual([...NAMES].sort())
    execs.push(final)

    // --- Every exec's report, against what each node did. ---
    const ran = new Map<string, Map<string, number[]>>() // request → node → run times
    for (const name of NAMES) {
      for (const run of runs(r, name, 'mark')) {
        const byNode = ran.get(run.request) ?? new Map<string, number[]>()
        byNode.set(name, [...(byNode.get(name) ?? []), run.atMs])
        ran.set(run.request, byNode)
      }
      // The action's own record agrees with the log, one line per run, no request twice.
      const marked = marks(r, name)
      expect(new Set(marked).size, `${name} ran a request twice (mark file)`).toBe(marked.length)
      expect([...marked].sort()).toEqual(
        runs(r, name, 'mark')
          .map(x => x.request)
          .sort(),
      )
    }
    for (const [request, byNode] of ran) {
      for (const [node, times] of byNode) expect([request, node, times.length]).toEqual([request, node, 1])
    }
    const killedBetween = (node: string, fromMs: number, toMs: number) =>
      kills.get(node)!.some(t => t >= fromMs && t <= toMs)
    let missingTotal = 0
    let complete = 0
    for (const e of execs) {
      expect(e.report, `exec without a report: ${e.stderr}`).toBeDefined()
      const report = e.report!
      const repliedExpected = report.replies.filter(x => x.unexpected !== true).map(x => x.node)
      expect(new Set(report.replies.map(x => x.node)).size, 'a node answered twice').toBe(
        report.replies.length,
      )
      // Each expected node is answered or missing, exactly one of the two.
      expect([...repliedExpected, ...report.missing].sort()).toEqual([...report.expected].sort())
      const failed = report.replies.filter(x => x.unexpected !== true && x.status !== 'ok')
      const success = report.expected.length > 0 && report.missing.length === 0 && failed.length === 0
      expect(e.status, e.stderr).toBe(success ? 0 : 1)
      const deadlineMs = e.startedAtMs + EXEC_TIMEOUT_MS
      for (const reply of report.replies.filter(x => x.status === 'ok')) {
        expect(
          ran.get(report.id)?.has(reply.node),
          `${reply.node} answered ok but did not run ${report.id}`,
        ).toBe(true)
      }
      for (const [node, times] of ran.get(report.id) ?? new Map<string, number[]>()) {
        const runAt = times[0]!
        const couldReply = runAt + REPLY_MARGIN_MS < deadlineMs && !killedBetween(node, runAt, e.endedAtMs)
        if (couldReply && report.expected.includes(node)) {
          expect(
            report.missing,
            `${node} ran ${report.id} and stayed up, yet is reported missing`,
          ).not.toContain(node)
        }
      }
      missingTotal += report.missing.length
      if (success) complete += 1
    }
    note(
      `kill-loop: ${rounds} rounds, ${execs.length} execs (${complete} complete, ${missingTotal} missing answers), ` +
        `rejoin after restart max ${Math.max(...rejoinMs)} ms; total ${Date.now() - t0} ms`,
    )
    expect(rounds).toBeGreaterThan(0)
  }, 300_000)
})
