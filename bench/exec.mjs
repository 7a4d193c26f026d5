// bench/exec (issue 9): for each N (default 20, 50, 100), N mesh agents as separate processes on 127.0.0.1
// (half in zone web), joined by tickets; idle CPU, RSS and messages per agent; then K runs of
// `mesh exec uptime --zone web`, each a fresh CLI process as a user would run it, timed from spawn to
// exit (the CLI exits when the last expected reply is in), with the per-stage breakdown the CLI's
// `--jsonl` events allow. Then the same work on Serf (bench/serf.mjs) for the same N, and the ratios.
// Ends with a table per N and the issue's targets, each met or missed with its numbers.
//
// Usage: npm run bench:exec -- [N[,N…]] [K]      (defaults 20,50,100 and 30)
// Environment: BENCH_N, BENCH_K (same as the arguments), BENCH_IDLE_S (idle window, default 20),
// BENCH_SETTLE_S (wait before it, default 10), BENCH_DETECT (crash-detection rounds after the runs:
// kill -9 a member, time until every agent sees it dead; default 3), BENCH_DEADLINE_S (hard limit per N, mesh and Serf
// together, default 900), BENCH_FORM_S (limit on forming the mesh, default 0.45 of that; an unformed
// mesh is measured anyway and flagged), BENCH_SERF=0 (skip Serf), BENCH_NETNS=0 (host loopback instead
// of a private network namespace), BENCH_JSON=FILE (every number as JSON), BENCH_BIN (binary to run), BENCH_LOG_LEVEL (agents' log level, default warn;
// each agent's log is HOME/agent.log), BENCH_KEEP=1 (keep the homes and logs).
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import {
  agents,
  bin,
  controlClient,
  cpuTicks,
  hostBusyPct,
  hostCpu,
  loadAvg,
  makeMesh,
  median,
  meshArgv,
  netCounters,
  onInterrupt,
  pool,
  quantile,
  rssMb,
  sleep,
  startAgent,
  startNetns,
  stopAll,
  timedRun,
  useNetns,
} from './common.mjs'
import { ensureSerf, printSerf, runSerf } from './serf.mjs'

const Ns = String(process.argv[2] ?? process.env.BENCH_N ?? '20,50,100')
  .split(',')
  .map(Number)
  .filter(n => Number.isInteger(n) && n >= 2)
const K = Number(process.argv[3] ?? process.env.BENCH_K ?? 30)
const IDLE_S = Number(process.env.BENCH_IDLE_S ?? 20)
const SETTLE_S = Number(process.env.BENCH_SETTLE_S ?? 10)
const DEADLINE_S = Number(process.env.BENCH_DEADLINE_S ?? 900)
const FORM_S = Number(process.env.BENCH_FORM_S ?? DEADLINE_S * 0.45)
const STATUS_SAMPLE = Number(process.env.BENCH_STATUS_SAMPLE ?? 20)
const SERF = process.env.BENCH_SERF !== '0'
const DETECT = Number(process.env.BENCH_DETECT ?? 3)
const env = {
  ...process.env,
  MESH_LOG_LEVEL: process.env.BENCH_LOG_LEVEL ?? 'warn',
  MESH_PROFILE: 'lan',
  NO_COLOR: '1',
}
const roots = []

class Deadline extends Error {}
const fmt = (x, d = 1) => (x === undefined || x === null || Number.isNaN(x) ? 'n/a' : x.toFixed(d))
const max = xs => (xs.length === 0 ? Number.NaN : Math.max(...xs))
/** Median, p95 and max that take a missing or empty list (a phase cut short) as n/a. */
const med = xs => (xs?.length ? median(xs) : undefined)
const q95 = xs => (xs?.length ? quantile(xs, 0.95) : undefined)
const mx = xs => (xs?.length ? Math.max(...xs) : undefined)

/** p50 of `runs` spawns of `mesh ARGS` (spawn to exit), ms. */
async function cliCost(args, runs = 10) {
  const xs = []
  for (let i = 0; i < runs; i++) {
    const r = await timedRun(meshArgv(args), { env, timeoutMs: 20_000 })
    if (r.code !== 0) throw new Error(`mesh ${args.join(' ')} exited ${r.code}: ${r.stderr}`)
    xs.push(r.ms)
  }
  return median(xs)
}

/** The mesh side for one N. */
async function runMesh(N, deadlineAt, formDeadlineAt) {
  const check = phase => {
    if (Date.now() > deadlineAt) throw new Deadline(`mesh N=${N}: deadline passed during ${phase}`)
  }
  const res = { N, K, expected: Math.ceil(N / 2), runs: [] }
  const root = mkdtempSync(join(tmpdir(), 'mesh-bench-'))
  roots.push(root)
  const ns = await startNetns()
  useNetns(ns)
  res.netns = ns !== undefined
  try {
    const t0 = Date.now()
    const homes = await makeMesh(root, N, i => (i % 2 === 0 ? 'web' : 'db'), env)
    res.joinS = (Date.now() - t0) / 1000
    check('joins')
    const t1 = Date.now()
    await pool(homes.slice(1), 8, home => startAgent(home, { env, logFile: join(home, 'agent.log') }))
    res.startS = (Date.now() - t1) / 1000
    const requester = agents[0]
    // Formation is bounded by `formDeadlineAt`; a mesh that has not converged by then is still measured
    // (idle, execs) and reported as not fully formed, since its numbers say something too.
    let alive = 0
    let lastReport = Date.now()
    for (;;) {
      const r = await timedRun(meshArgv(['--home', homes[0], 'members', '--json']), {
        env,
        timeoutMs: 20_000,
      })
      // A failed or slow `members` call keeps the last count (it says nothing about the members).
      try {
        if (r.code !== 0) throw new Error('members failed')
        alive = JSON.parse(r.lines.map(l => l.line).join('\n')).filter(m => m.state === 'alive').length
      } catch {
        res.membersCallsFailed = (res.membersCallsFailed ?? 0) + 1
      }
      if (alive === N) break
      if (Date.now() > formDeadlineAt) break
      if (Date.now() - lastReport > 30_000) {
        console.log(`  … ${alive} of ${N} alive on n0 after ${((Date.now() - t0) / 1000).toFixed(0)} s`)
        lastReport = Date.now()
      }
      await sleep(500)
    }
    res.formS = (Date.now() - t0) / 1000
    res.formed = alive === N
    res.alive = alive
    const parts = `sequential ticket+join ${res.joinS.toFixed(1)} s, starting ${N - 1} agents ${res.startS.toFixed(1)} s, then convergence${res.membersCallsFailed ? `; ${res.membersCallsFailed} 'members' calls failed or took over 20 s` : ''}`
    if (res.formed) console.log(`mesh formed: ${N} members alive after ${res.formS.toFixed(1)} s (${parts})`)
    else
      console.log(
        `mesh NOT formed: only ${alive} of ${N} members alive on n0 after ${res.formS.toFixed(1)} s (${parts}); measuring it anyway`,
      )

    await sleep(SETTLE_S * 1000)
    check('settle')
    const procs = [...agents]
    const ticks0 = procs.map(a => cpuTicks(a.pid))
    const host0 = hostCpu()
    const net0 = ns ? ns.counters() : netCounters()
    const w0 = Date.now()
    await sleep(IDLE_S * 1000)
    const seconds = (Date.now() - w0) / 1000
    const net1 = ns ? ns.counters() : netCounters()
    res.idleCpu = procs.map((a, i) => (cpuTicks(a.pid) - ticks0[i]) / seconds) // % of one core
    res.idleHostBusyPct = hostBusyPct(host0, hostCpu())
    res.idleLoad = loadAvg()
    res.rss = procs.map(a => rssMb(a.pid))
    const d = k => net1[k] - net0[k]
    res.idlePackets = {
      scope: ns ? 'private network namespace (only these agents)' : 'whole host (includes other processes)',
      udpPerAgentS: (d('udpIn') + d('udpOut')) / N / seconds,
      tcpPerAgentS: (d('tcpIn') + d('tcpOut')) / N / seconds,
    }
    res.idlePackets.totalPerAgentS = res.idlePackets.udpPerAgentS + res.idlePackets.tcpPerAgentS

    // Messages per agent as each agent counts them (`mesh status --json` → traffic.total), read after
    // the CPU window so the status calls do not load it.
    // A sample of agents spread over the mesh (all when N ≤ BENCH_STATUS_SAMPLE, default 20).
    const sample = homes.filter((_, i) => i % Math.ceil(N / STATUS_SAMPLE) === 0)
    const traffic = await pool(sample, 4, async home => {
      if (deadlineAt - Date.now() < 30_000) return undefined
      const r = await timedRun(meshArgv(['--home', home, 'status', '--json']), { env, timeoutMs: 20_000 })
      if (r.code !== 0) return undefined
      try {
        const t = JSON.parse(r.lines.map(l => l.line).join('\n')).traffic?.total
        return t ? (t.msgsInPerS ?? 0) + (t.msgsOutPerS ?? 0) : null
      } catch {
        return undefined
      }
    })
    const got = traffic.filter(x => typeof x === 'number')
    res.idleMsgs = got.length > 0 ? got : undefined
    res.idleMsgsSampled = `${got.length} of ${N} agents${traffic.includes(null) ? '; no traffic field' : ''}${traffic.includes(undefined) ? `; ${traffic.filter(x => x === undefined).length} status calls failed or skipped` : ''}`
    check('idle')

    const runs = res.runs
    const cpu0 = cpuTicks(requester.pid)
    const all0 = procs.map(a => cpuTicks(a.pid))
    const runHost0 = hostCpu()
    const wall0 = Date.now()
    for (let k = 0; k < K; k++) {
      if (deadlineAt - Date.now() < 15_000) {
        console.log(`mesh: deadline near; stopped after ${k} of ${K} runs`)
        break
      }
      // Stage references, run just before each exec so they see the same load: process start
      // (`mesh --version`), and process start + connect + one control round trip (`mesh status --json`).
      const st = {
        version: await cliCost(['--version'], 1),
        status: await cliCost(['--home', homes[0], 'status', '--json'], 1),
      }
      const ok = new Set()
      let summary
      let expected = []
      const r = await timedRun(
        meshArgv(['--home', homes[0], 'exec', 'uptime', '--zone', 'web', '--timeout', '10s', '--jsonl']),
        {
          env,
          timeoutMs: 25_000,
          onLine: (line, at) => {
            let e
            try {
              e = JSON.parse(line)
            } catch {
              return false
            }
            if (e.event === 'published') {
              st.published = at
              expected = e.expected ?? []
            } else if (e.event === 'ack') {
              st.firstAck ??= at
              if (e.node !== 'n0') st.firstRemoteAck ??= at
            } else if (e.event === 'done' && e.reply?.expected) {
              st.firstDone ??= at
              if (e.reply.node !== 'n0') st.firstRemoteDone ??= at
              st.lastDone = at
              if (e.reply.status === 'ok') ok.add(e.reply.node)
            } else if (e.event === 'summary') summary = e
            return false
          },
        },
      )
      st.exit = r.ms
      const complete =
        r.code === 0 &&
        summary !== undefined &&
        summary.missing.length === 0 &&
        summary.failed.length === 0 &&
        expected.length === res.expected &&
        ok.size === res.expected
      runs.push({ ms: r.ms, complete, code: r.code, expected: expected.length, ok: ok.size, stages: st })
      if (summary?.id !== undefined) res.lastJob = summary.id
    }
    // Job lookup (issue 11): `mesh jobs show ID --mesh` asks every node for what it stored about the
    // last exec's job and verifies each piece; timed spawn → exit like exec, with the replies found.
    res.lookups = []
    for (let k = 0; k < Math.min(5, K) && res.lastJob !== undefined; k++) {
      if (deadlineAt - Date.now() < 15_000) break
      const r = await timedRun(
        meshArgv(['--home', homes[0], '--json', 'jobs', 'show', res.lastJob, '--mesh']),
        {
          env,
          timeoutMs: 25_000,
        },
      )
      let doc
      try {
        doc = JSON.parse(r.lines.map(l => l.line).join('\n'))
      } catch {}
      res.lookups.push({
        ms: r.ms,
        replies: doc?.replies?.length,
        answered: doc?.answered,
        refused: doc?.refused,
      })
    }
    const runS = (Date.now() - wall0) / 1000
    res.requesterCpuPct = (cpuTicks(requester.pid) - cpu0) / runS // ticks are 1/100 s: % of one core
    res.runsAgentsCpuPct = procs.reduce((a, p, i) => a + cpuTicks(p.pid) - all0[i], 0) / runS
    res.runsHostBusyPct = hostBusyPct(runHost0, hostCpu())
    res.runsLoad = loadAvg()
    await sleep(1_000)
    res.rssAfter = procs.map(a => rssMb(a.pid))
    res.detect = await detectCrashes(procs, homes[0], deadlineAt)
  } catch (err) {
    // Past the deadline: keep what was measured, say where it stopped.
    if (!(err instanceof Deadline)) throw err
    res.deadline = err.message
  } finally {
    res.times = res.runs.map(r => r.ms)
    res.complete = res.runs.filter(r => r.complete).length
    await stopAll()
    useNetns(undefined)
    if (process.env.BENCH_KEEP === '1') console.log(`homes kept in ${root}`)
    else rmSync(root, { recursive: true, force: true })
  }
  return res
}

/**
 * Failure detection (issue 9): DETECT times, kill -9 a random member (never n0, the requester) and time
 * until every other running agent's member table says it is dead (or no longer lists it), asking each
 * over its control socket every 100 ms; 30 s at most per round. Returns one entry per round.
 */
async function detectCrashes(procs, requesterHome, deadlineAt) {
  const rounds = []
  const homeOf = a => a.spawnargs[a.spawnargs.indexOf('--home') + 1]
  const clients = new Map()
  for (const a of procs) clients.set(a, await controlClient(homeOf(a)).catch(() => undefined))
  const killed = new Set()
  const candidates = procs.filter(a => homeOf(a) !== requesterHome)
  for (let round = 0; round < DETECT && candidates.length > 1; round++) {
    if (deadlineAt - Date.now() < 45_000) break
    const victim = candidates.splice(Math.floor(Math.random() * candidates.length), 1)[0]
    const name = homeOf(victim).split('/').pop()
    const watchers = procs.filter(a => a !== victim && !killed.has(a) && a.exitCode === null)
    victim.kill('SIGKILL')
    killed.add(victim)
    const t0 = Date.now()
    const seen = new Map()
    while (seen.size < watchers.length && Date.now() - t0 < 30_000) {
      await Promise.all(
        watchers
          .filter(w => !seen.has(w))
          .map(async w => {
            const r = await clients.get(w)?.call('members', {}, { timeoutMs: 2_000 })
            if (!Array.isArray(r?.result)) return
            const m = r.result.find(x => x.name === name)
            if (m === undefined || m.state === 'dead') seen.set(w, Date.now() - t0)
          }),
      )
      await sleep(100)
    }
    rounds.push({ victim: name, watchers: watchers.length, times: [...seen.values()] })
    await sleep(2_000)
  }
  for (const c of clients.values()) await c?.close()
  return rounds
}

function printMesh(r) {
  if (r.deadline) console.log(`mesh: ${r.deadline}; the numbers below are what was measured before`)
  if (r.lookups?.length > 0) {
    const l = r.lookups
    console.log(
      `job lookup ('mesh jobs show ID --mesh', spawn → exit): p50 ${fmt(med(l.map(x => x.ms)))} ms over ${l.length}; replies found ${l.map(x => x.replies ?? '?').join('/')} of ${r.expected}, nodes answered ${l.map(x => x.answered ?? '?').join('/')}, pieces refused ${l.map(x => x.refused ?? '?').join('/')}`,
    )
  }
  for (const d of r.detect ?? []) {
    console.log(
      `crash detection: ${d.victim} killed (kill -9); dead on ${d.times.length} of ${d.watchers} other agents, p50 ${fmt(med(d.times))} ms, p95 ${fmt(q95(d.times))} ms, max ${fmt(mx(d.times))} ms`,
    )
  }
  const t = r.times
  console.log(
    `mesh exec spawn → exit (last expected reply in; ${r.expected} web nodes): p50 ${fmt(med(t))} ms, p95 ${fmt(q95(t))} ms, max ${fmt(mx(t))} ms; complete ${r.complete}/${r.runs.length}`,
  )
  const bad = r.runs.filter(x => !x.complete)
  if (bad.length > 0)
    console.log(
      `  incomplete runs: ${bad.map(x => `exit ${x.code}, expected ${x.expected}, ok ${x.ok}`).join('; ')}`,
    )
  const st = key => med(r.runs.map(x => x.stages[key]).filter(x => x !== undefined))
  const published = st('published')
  const remoteAck = st('firstRemoteAck')
  const lastDone = st('lastDone')
  const exit = st('exit')
  const version = st('version')
  const status = st('status')
  console.log(`mesh exec stages (median over the runs, ms from spawn, seen on the CLI's --jsonl stdout):`)
  console.log(
    `  CLI process start       ${fmt(version)}  (proxy: 'mesh --version' spawn → exit, run before each exec)`,
  )
  console.log(
    `  + control socket        ${fmt(status)}  (proxy: 'mesh status --json' spawn → exit; ${fmt(status - version)} over --version)`,
  )
  console.log(
    `  sign, run locally       ${fmt(published)}  ('published' event: request signed and through the local pipeline, handed to gossip; ${fmt(published - status)} over status)`,
  )
  console.log(
    `  first remote ack        ${fmt(remoteAck)}  (+${fmt(remoteAck - published)}: gossip publish → a remote node verified it and acked)`,
  )
  console.log(`  first remote done       ${fmt(st('firstRemoteDone'))}`)
  console.log(
    `  last expected done      ${fmt(lastDone)}  (+${fmt(lastDone - remoteAck)} after the first remote ack)`,
  )
  console.log(`  CLI exit                ${fmt(exit)}  (+${fmt(exit - lastDone)} after the last done)`)
  const one = [...r.runs].sort((a, b) => a.ms - b.ms)[Math.floor(r.runs.length / 2)]
  if (one) {
    const o = one.stages
    console.log(
      `  one exec (the median run): --version ${fmt(o.version)}, status ${fmt(o.status)}; exec: published ${fmt(o.published)}, first remote ack ${fmt(o.firstRemoteAck)}, first remote done ${fmt(o.firstRemoteDone)}, last done ${fmt(o.lastDone)}, exit ${fmt(o.exit)} ms`,
    )
  }
  console.log(
    `mesh idle: CPU per agent median ${fmt(med(r.idleCpu), 2)}%, max ${fmt(mx(r.idleCpu), 2)}% of one core; RSS median ${fmt(med(r.rss))} MB (max ${fmt(mx(r.rss))} MB), after runs ${fmt(med(r.rssAfter))} MB (max ${fmt(mx(r.rssAfter))} MB)`,
  )
  console.log(
    `mesh idle messages in+out per agent (traffic.total): ${r.idleMsgs ? `median ${fmt(med(r.idleMsgs))}/s, max ${fmt(mx(r.idleMsgs))}/s` : 'n/a'} (${r.idleMsgsSampled ?? 'not read'})`,
  )
  console.log(
    `mesh idle loopback packets in+out per agent: ${fmt(r.idlePackets?.totalPerAgentS)}/s (TCP ${fmt(r.idlePackets?.tcpPerAgentS)}, UDP ${fmt(r.idlePackets?.udpPerAgentS)}; ${r.idlePackets?.scope})`,
  )
  const cores = hostCpu().cores
  console.log(
    `host while idle: ${fmt(r.idleHostBusyPct, 0)}% of ${cores} cores busy (every process), load ${fmt(r.idleLoad)}; during the runs: requesting agent ${fmt(r.requesterCpuPct, 0)}% of one core, all ${r.N} agents ${fmt(r.runsAgentsCpuPct, 0)}%, host ${fmt(r.runsHostBusyPct, 0)}% of ${cores} cores busy, load ${fmt(r.runsLoad)}`,
  )
}

const ratio = (a, b) => (a === undefined || b === undefined || !(b > 0) ? Number.NaN : a / b)

function finalTable(results) {
  const cols = results.map(x => `N=${x.N}`)
  const rows = []
  const row = (name, f) => rows.push([name, ...results.map(x => f(x.mesh, x.serf))])
  const p50 = r => (r?.times?.length ? median(r.times) : undefined)
  const p95 = r => (r?.times?.length ? quantile(r.times, 0.95) : undefined)
  const cpu = r => (r?.idleCpu ? median(r.idleCpu) : undefined)
  const rss = r => (r?.rss ? median(r.rss) : undefined)
  row('mesh exec p50 / p95 ms', m => `${fmt(p50(m))} / ${fmt(p95(m))}`)
  row('mesh complete', m => (m?.runs ? `${m.complete}/${m.runs.length}` : 'n/a'))
  row('serf query p50 / p95 ms', (_, s) => `${fmt(p50(s))} / ${fmt(p95(s))}`)
  row('serf complete', (_, s) => (s?.runs ? `${s.complete}/${s.runs.length}` : 'n/a'))
  row(
    'ratio p50 / p95 (mesh/serf)',
    (m, s) => `${fmt(ratio(p50(m), p50(s)), 2)} / ${fmt(ratio(p95(m), p95(s)), 2)}`,
  )
  row(
    'idle CPU %/agent mesh med (max)',
    m => `${fmt(cpu(m), 2)} (${fmt(m?.idleCpu ? max(m.idleCpu) : undefined, 2)})`,
  )
  row(
    'idle CPU %/agent serf med (max)',
    (_, s) => `${fmt(cpu(s), 2)} (${fmt(s?.idleCpu ? max(s.idleCpu) : undefined, 2)})`,
  )
  row('ratio idle CPU (mesh/serf)', (m, s) => fmt(ratio(cpu(m), cpu(s)), 1))
  row('idle RSS MB mesh med (max)', m => `${fmt(rss(m))} (${fmt(m?.rss ? max(m.rss) : undefined)})`)
  row('idle RSS MB serf med (max)', (_, s) => `${fmt(rss(s))} (${fmt(s?.rss ? max(s.rss) : undefined)})`)
  row('ratio RSS (mesh/serf)', (m, s) => fmt(ratio(rss(m), rss(s)), 1))
  row('mesh msgs/s/agent (traffic)', m =>
    m?.idleMsgs ? `${fmt(median(m.idleMsgs))} (max ${fmt(max(m.idleMsgs))})` : 'n/a',
  )
  row('loopback pkts/s/agent mesh', m => fmt(m?.idlePackets?.totalPerAgentS))
  row('loopback pkts/s/agent serf', (_, s) => fmt(s?.idlePackets?.totalPerAgentS))
  row('ratio pkts (mesh/serf)', (m, s) =>
    fmt(ratio(m?.idlePackets?.totalPerAgentS, s?.idlePackets?.totalPerAgentS), 1),
  )
  row(
    'formation s mesh / serf',
    (m, s) =>
      `${fmt(m?.formS)}${m && !m.formed ? ` (NOT formed: ${m.alive}/${m.N})` : ''} / ${fmt(s?.formS)}`,
  )
  row('host busy % idle / runs mesh', m => `${fmt(m?.idleHostBusyPct, 0)} / ${fmt(m?.runsHostBusyPct, 0)}`)
  row(
    'host busy % idle / runs serf',
    (_, s) => `${fmt(s?.idleHostBusyPct, 0)} / ${fmt(s?.runsHostBusyPct, 0)}`,
  )
  row('phase s mesh / serf', (m, s) => `${fmt(m?.phaseS, 0)} / ${fmt(s?.phaseS, 0)}`)
  const widths = [0, ...cols.map(() => 0)]
  for (const r of [['', ...cols], ...rows])
    for (const [i, c] of r.entries()) widths[i] = Math.max(widths[i], c.length)
  for (const r of [['', ...cols], ...rows])
    console.log(
      r
        .map((c, i) => c.padEnd(widths[i]))
        .join('  ')
        .trimEnd(),
    )
}

function targets(results) {
  const lines = []
  const say = (ok, text) =>
    lines.push(`${(ok === undefined ? 'NOT MEASURED' : ok ? 'MET' : 'MISSED').padEnd(12)} ${text}`)
  const byN = n => results.find(x => x.N === n)
  for (const n of [20, 50, 100]) {
    const x = byN(n)
    if (!x) {
      lines.push(`NOT RUN      N=${n}: exec p50 ≤ 0.25× Serf p50; ahead at p50 and p95; 100% complete`)
      continue
    }
    const m = x.mesh
    const s = x.serf
    const mp50 = m?.times?.length ? median(m.times) : undefined
    const mp95 = m?.times?.length ? quantile(m.times, 0.95) : undefined
    const sp50 = s?.times?.length ? median(s.times) : undefined
    const sp95 = s?.times?.length ? quantile(s.times, 0.95) : undefined
    const have = mp50 !== undefined && sp50 !== undefined
    say(
      have ? mp50 <= 0.25 * sp50 : undefined,
      `N=${n}: exec p50 ${fmt(mp50)} ms ≤ 0.25 × Serf p50 ${fmt(sp50)} ms = ${fmt(sp50 === undefined ? undefined : 0.25 * sp50)} ms (ratio ${fmt(ratio(mp50, sp50), 2)})`,
    )
    say(
      have ? mp50 < sp50 && mp95 < sp95 : undefined,
      `N=${n}: ahead of Serf at p50 (${fmt(mp50)} vs ${fmt(sp50)} ms) and p95 (${fmt(mp95)} vs ${fmt(sp95)} ms)`,
    )
    say(
      m?.runs?.length ? m.complete === m.runs.length && m.runs.length === K : undefined,
      `N=${n}: 100% complete (${m?.complete ?? 'n/a'}/${m?.runs?.length ?? 'n/a'} of K=${K}; Serf ${s?.complete ?? 'n/a'}/${s?.runs?.length ?? 'n/a'})`,
    )
  }
  for (const n of [50, 100]) {
    const m = byN(n)?.mesh
    if (!m?.idleCpu) {
      lines.push(`NOT RUN      N=${n}: idle CPU ≤ 0.5% of one core per agent`)
      continue
    }
    const cpuMed = median(m.idleCpu)
    const cpuMax = max(m.idleCpu)
    say(
      cpuMed <= 0.5,
      `N=${n}: idle CPU ≤ 0.5% of one core per agent: median ${fmt(cpuMed, 2)}% (max ${fmt(cpuMax, 2)}%${cpuMax > 0.5 ? ', some agents above' : ''})`,
    )
  }
  for (const x of results) {
    const m = x.mesh
    if (!m?.idlePackets) continue
    const msgs = m.idleMsgs ? median(m.idleMsgs) : undefined
    say(
      msgs === undefined ? undefined : msgs <= 10,
      `N=${x.N}: idle messages in+out ≤ 10/s per agent: traffic.total ${m.idleMsgs ? `median ${fmt(msgs)}/s (max ${fmt(max(m.idleMsgs))}/s)` : 'n/a'}; loopback packets ${fmt(m.idlePackets.totalPerAgentS)}/s per agent (not messages: a message may take several TCP segments, plus ACKs)`,
    )
  }
  const m50 = byN(50)?.mesh
  if (!m50?.detect?.length)
    lines.push('NOT RUN      N=50: a crashed node dead on every other node within 5 s (p95)')
  else {
    const d = m50.detect
    const all = d.flatMap(x => x.times)
    const everyone = d.every(x => x.times.length === x.watchers)
    say(
      everyone && q95(all) <= 5_000,
      `N=50: a crashed node dead on every other node within 5 s (p95): ${d.length} kills, p95 ${fmt(q95(all))} ms, max ${fmt(mx(all))} ms, ${everyone ? 'every agent saw each' : 'some agents never saw one'}`,
    )
  }
  if (!m50?.rss) lines.push('NOT RUN      N=50: idle RSS ≤ 64 MB per agent')
  else
    say(
      median(m50.rss) <= 64,
      `N=50: idle RSS ≤ 64 MB per agent: median ${fmt(median(m50.rss))} MB (max ${fmt(max(m50.rss))} MB)`,
    )
  for (const x of results) {
    if (x.mesh && !x.mesh.formed)
      lines.push(
        `NOTE         N=${x.N}: the mesh did not form (${x.mesh.alive} of ${x.N} alive on n0 after ${fmt(x.mesh.formS)} s); its numbers are of that state`,
      )
    if (x.meshError) lines.push(`NOTE         N=${x.N}: mesh phase failed: ${x.meshError}`)
    if (x.serfError) lines.push(`NOTE         N=${x.N}: Serf phase failed: ${x.serfError}`)
  }
  for (const l of lines) console.log(l)
}

async function main() {
  console.log(
    `bench/exec: N=${Ns.join(',')} agents (processes), K=${K} runs each, binary ${bin}, idle window ${IDLE_S} s after ${SETTLE_S} s, deadline ${DEADLINE_S} s per N, Serf ${SERF ? 'on' : 'off'}`,
  )
  if (SERF) ensureSerf()
  const results = []
  const started = Date.now()
  for (const N of Ns) {
    const t0 = Date.now()
    const deadlineAt = t0 + DEADLINE_S * 1000
    const entry = { N }
    results.push(entry)
    console.log(`\n=== N=${N} ===`)
    try {
      entry.mesh = await runMesh(N, t0 + DEADLINE_S * 750, t0 + FORM_S * 1000)
      entry.mesh.phaseS = (Date.now() - t0) / 1000
      printMesh(entry.mesh)
    } catch (err) {
      entry.meshError = String(err.message ?? err)
      console.log(`mesh N=${N} failed: ${entry.meshError}`)
    }
    if (SERF) {
      const t1 = Date.now()
      try {
        entry.serf = await runSerf({
          N,
          K,
          idleS: IDLE_S,
          settleS: SETTLE_S,
          deadlineAt: Math.max(deadlineAt, t1 + 120_000),
        })
        entry.serf.phaseS = (Date.now() - t1) / 1000
        printSerf(entry.serf)
      } catch (err) {
        entry.serfError = String(err.message ?? err)
        console.log(`serf N=${N} failed: ${entry.serfError}`)
      }
    }
    const m = entry.mesh
    const s = entry.serf
    if (m?.times?.length && s?.times?.length)
      console.log(
        `ratios mesh/serf at N=${N}: p50 ${fmt(ratio(median(m.times), median(s.times)), 2)}, p95 ${fmt(ratio(quantile(m.times, 0.95), quantile(s.times, 0.95)), 2)}, idle CPU ${fmt(ratio(median(m.idleCpu), median(s.idleCpu)), 1)}, RSS ${fmt(ratio(median(m.rss), median(s.rss)), 1)}`,
      )
    console.log(`N=${N} took ${((Date.now() - t0) / 1000).toFixed(0)} s`)
  }
  console.log(`\n=== summary (total ${((Date.now() - started) / 1000).toFixed(0)} s) ===`)
  finalTable(results)
  console.log('\n=== targets (issue 9) ===')
  targets(results)
  if (process.env.BENCH_JSON) {
    writeFileSync(process.env.BENCH_JSON, `${JSON.stringify(results, null, 2)}\n`)
    console.log(`numbers written to ${process.env.BENCH_JSON}`)
  }
}

onInterrupt(async () => {
  await stopAll()
  for (const root of roots) rmSync(root, { recursive: true, force: true })
})
try {
  await main()
} finally {
  await stopAll()
  if (process.env.BENCH_KEEP !== '1') for (const root of roots) rmSync(root, { recursive: true, force: true })
}
