// bench/serf: the same work as bench/exec on HashiCorp Serf (Debian's `serf` package), for comparison.
// N `serf agent` processes on 127.0.0.1 (default lan profile), tags zone=web (even i) / zone=db (odd i),
// a query handler `query:uptime=uptime`; joined with `serf join`; idle CPU, RSS and loopback packets;
// then K runs of `serf query -tag zone=^web$ uptime`, each timed from spawn until every expected web
// node's response is in (Serf's CLI waits out its whole timeout, so it is killed by PID at that point).
// Installs serf with apt-get when `which serf` fails.
// Usage: node bench/serf.mjs [N] [K]   (defaults 20 and 30)
import { spawn, spawnSync } from 'node:child_process'
import { pathToFileURL } from 'node:url'
import {
  cpuTicks,
  freePort,
  hostBusyPct,
  hostCpu,
  loadAvg,
  median,
  netCounters,
  onInterrupt,
  pool,
  quantile,
  rssMb,
  sleep,
  startNetns,
  stopAll,
  timedRun,
  track,
  useNetns,
  wrap,
} from './common.mjs'

/** Makes sure `serf` is on PATH: `apt-get update` (once) and `apt-get install -y serf` only if missing. */
export function ensureSerf(log = console.log) {
  const which = spawnSync('which', ['serf'], { encoding: 'utf8' })
  if (which.status === 0) {
    const v = spawnSync('serf', ['version'], { encoding: 'utf8' }).stdout.split('\n')[0]
    log(`serf: found ${which.stdout.trim()} (${v}); nothing installed`)
    return
  }
  log('serf: not on PATH; running apt-get update, then apt-get install -y serf')
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' }
  const update = spawnSync('apt-get', ['update'], { encoding: 'utf8', env, timeout: 300_000 })
  if (update.status !== 0) throw new Error(`apt-get update failed (${update.status}): ${update.stderr}`)
  const install = spawnSync('apt-get', ['install', '-y', 'serf'], { encoding: 'utf8', env, timeout: 300_000 })
  if (install.status !== 0)
    throw new Error(`apt-get install -y serf failed (${install.status}): ${install.stderr}`)
  const v = spawnSync('serf', ['version'], { encoding: 'utf8' }).stdout.split('\n')[0]
  log(`serf: installed ${spawnSync('which', ['serf'], { encoding: 'utf8' }).stdout.trim()} (${v})`)
}

const zoneOf = i => (i % 2 === 0 ? 'web' : 'db')

/** Starts one `serf agent`; resolves once it says it runs. Its stdout is drained (log level warn). */
function startSerfAgent(i, bindPort, rpcPort) {
  return new Promise((resolve, reject) => {
    const argv = wrap([
      'serf',
      'agent',
      `-node=s${i}`,
      `-bind=127.0.0.1:${bindPort}`,
      `-rpc-addr=127.0.0.1:${rpcPort}`,
      '-profile=lan',
      '-tag',
      `zone=${zoneOf(i)}`,
      '-event-handler',
      'query:uptime=uptime',
      '-log-level=warn',
    ])
    const child = track(spawn(argv[0], argv.slice(1), { stdio: ['ignore', 'pipe', 'pipe'] }))
    let out = ''
    let started = false
    const timer = setTimeout(() => reject(new Error(`serf agent s${i} did not start: ${out}`)), 30_000)
    child.stdout.setEncoding('utf8')
    child.stdout.on('data', d => {
      if (started) return
      out += d
      if (out.includes('Serf agent running')) {
        started = true
        clearTimeout(timer)
        resolve(child)
      }
    })
    child.stderr.on('data', d => {
      if (process.env.BENCH_VERBOSE) process.stderr.write(d)
    })
    child.on('exit', code => {
      clearTimeout(timer)
      if (!started) reject(new Error(`serf agent s${i} exited ${code}: ${out}`))
    })
  })
}

function serfSync(args, timeout = 30_000) {
  const argv = wrap(['serf', ...args])
  return spawnSync(argv[0], argv.slice(1), { encoding: 'utf8', timeout })
}

/** Milliseconds from spawn to exit of `argv`, p50 of `runs` (a cost reference, e.g. the query handler). */
function spawnCost(argv, runs = 10) {
  const xs = []
  for (let i = 0; i < runs; i++) {
    const t0 = process.hrtime.bigint()
    spawnSync(argv[0], argv.slice(1), { timeout: 10_000 })
    xs.push(Number(process.hrtime.bigint() - t0) / 1e6)
  }
  return median(xs)
}

/**
 * The Serf side for N agents and K queries. `deadlineAt` (wall ms) bounds the whole phase; `idleS` is the
 * idle measurement window. Returns a result object (see the fields below); stops its agents by PID.
 */
export async function runSerf({
  N,
  K,
  idleS = 20,
  settleS = 10,
  deadlineAt = Date.now() + 600_000,
  log = console.log,
}) {
  const left = () => deadlineAt - Date.now()
  const result = { N, K, expected: Math.ceil(N / 2) }
  const ns = await startNetns()
  useNetns(ns)
  result.netns = ns !== undefined
  try {
    const t0 = Date.now()
    const base = 20_000
    const ports = Array.from({ length: N }, (_, i) => ({ bind: base + 2 * i, rpc: base + 2 * i + 1 }))
    if (!ns) {
      // On the host's loopback: pick ports that are free for TCP now (Serf binds UDP on the same port).
      for (const p of ports) {
        p.bind = await freePort()
        p.rpc = await freePort()
      }
    }
    const procs = await pool(ports, 10, (p, i) => startSerfAgent(i, p.bind, p.rpc))
    result.startS = (Date.now() - t0) / 1000
    const rpc0 = `-rpc-addr=127.0.0.1:${ports[0].rpc}`
    const join = serfSync(['join', rpc0, ...ports.slice(1).map(p => `127.0.0.1:${p.bind}`)], 60_000)
    if (join.status !== 0) throw new Error(`serf join failed: ${join.stdout} ${join.stderr}`)
    let alive = 0
    while (left() > 0) {
      const r = serfSync(['members', rpc0, '-status=alive', '-format=json'])
      alive = r.status === 0 ? JSON.parse(r.stdout).members.length : 0
      if (alive === N) break
      await sleep(250)
    }
    if (alive !== N) throw new Error(`serf: only ${alive} of ${N} members alive at the deadline`)
    result.formS = (Date.now() - t0) / 1000
    log(
      `serf formed: ${N} members alive after ${result.formS.toFixed(1)} s (agents started in ${result.startS.toFixed(1)} s)`,
    )

    await sleep(settleS * 1000)
    const ticks0 = procs.map(p => cpuTicks(p.pid))
    const host0 = hostCpu()
    const net0 = ns ? ns.counters() : netCounters()
    const w0 = Date.now()
    await sleep(idleS * 1000)
    const seconds = (Date.now() - w0) / 1000
    const net1 = ns ? ns.counters() : netCounters()
    result.idleCpu = procs.map((p, i) => (cpuTicks(p.pid) - ticks0[i]) / seconds) // % of one core
    result.idleHostBusyPct = hostBusyPct(host0, hostCpu())
    result.idleLoad = loadAvg()
    result.rss = procs.map(p => rssMb(p.pid))
    const d = k => net1[k] - net0[k]
    result.idlePackets = {
      scope: ns ? 'private network namespace (only these agents)' : 'whole host (includes other processes)',
      udpPerAgentS: (d('udpIn') + d('udpOut')) / N / seconds,
      tcpPerAgentS: (d('tcpIn') + d('tcpOut')) / N / seconds,
    }
    result.idlePackets.totalPerAgentS = result.idlePackets.udpPerAgentS + result.idlePackets.tcpPerAgentS

    // The handler's own cost (Serf forks `sh -c uptime` on every responder; mesh's uptime is built in).
    result.handlerMs = spawnCost(['sh', '-c', 'uptime >/dev/null'])
    result.nsenterMs = ns ? spawnCost(wrap(['true'])) - spawnCost(['true']) : 0

    const webNodes = new Set(
      Array.from({ length: N }, (_, i) => i)
        .filter(i => zoneOf(i) === 'web')
        .map(i => `s${i}`),
    )
    const runs = []
    const all0 = procs.map(p => cpuTicks(p.pid))
    const runHost0 = hostCpu()
    const wall0 = Date.now()
    for (let k = 0; k < K; k++) {
      if (left() < 15_000) {
        log(`serf: deadline near; stopped after ${k} of ${K} queries`)
        break
      }
      const responded = new Set()
      const stages = {}
      const r = await timedRun(
        wrap(['serf', 'query', rpc0, '-tag', 'zone=^web$', '-timeout=10s', 'uptime']),
        {
          timeoutMs: 15_000,
          onLine: (line, at) => {
            if (line.startsWith("Query 'uptime' dispatched")) stages.dispatched ??= at
            let m = /^Ack from '([^']+)'/.exec(line)
            if (m) {
              stages.firstAck ??= at
              if (m[1] !== 's0') stages.firstRemoteAck ??= at
            }
            m = /^Response from '([^']+)'/.exec(line)
            if (m && webNodes.has(m[1])) {
              stages.firstResponse ??= at
              responded.add(m[1])
              if (responded.size === webNodes.size) {
                stages.lastResponse = at
                return true
              }
            }
            return false
          },
        },
      )
      runs.push({ ms: r.doneMs, complete: r.complete, responded: responded.size, stages })
    }
    const runS = (Date.now() - wall0) / 1000
    result.runsAgentsCpuPct = procs.reduce((a, p, i) => a + cpuTicks(p.pid) - all0[i], 0) / runS
    result.runsHostBusyPct = hostBusyPct(runHost0, hostCpu())
    result.runsLoad = loadAvg()
    result.runs = runs
    result.times = runs.map(r => r.ms)
    result.complete = runs.filter(r => r.complete).length
    return result
  } finally {
    await stopAll()
    useNetns(undefined)
  }
}

/** One summary of `runSerf`'s result, printed under its N. */
export function printSerf(r, log = console.log) {
  const fmt = x => (x === undefined || Number.isNaN(x) ? 'n/a' : x.toFixed(1))
  log(
    `serf query → last expected response (${r.expected} web nodes): p50 ${fmt(median(r.times))} ms, p95 ${fmt(quantile(r.times, 0.95))} ms, max ${fmt(Math.max(...r.times))} ms; complete ${r.complete}/${r.runs.length}`,
  )
  const st = key => median(r.runs.map(x => x.stages[key]).filter(x => x !== undefined))
  log(
    `serf stages (median from spawn): dispatched ${fmt(st('dispatched'))} ms, first remote ack ${fmt(st('firstRemoteAck'))} ms, first response ${fmt(st('firstResponse'))} ms, last response ${fmt(st('lastResponse'))} ms`,
  )
  log(
    `serf idle: CPU per agent median ${median(r.idleCpu).toFixed(2)}%, max ${Math.max(...r.idleCpu).toFixed(2)}% of one core; RSS median ${median(r.rss).toFixed(1)} MB (max ${Math.max(...r.rss).toFixed(1)} MB); loopback packets in+out per agent ${r.idlePackets.totalPerAgentS.toFixed(1)}/s (UDP ${r.idlePackets.udpPerAgentS.toFixed(1)}, TCP ${r.idlePackets.tcpPerAgentS.toFixed(1)}; ${r.idlePackets.scope})`,
  )
  log(
    `serf host while idle: ${r.idleHostBusyPct.toFixed(0)}% busy (every process), load ${r.idleLoad.toFixed(1)}; during the queries: all ${r.N} agents ${r.runsAgentsCpuPct.toFixed(0)}% of one core, host ${r.runsHostBusyPct.toFixed(0)}% busy, load ${r.runsLoad.toFixed(1)}`,
  )
  log(
    `serf costs for reference: query handler 'sh -c uptime' ${r.handlerMs.toFixed(1)} ms per responder; nsenter adds ${r.nsenterMs.toFixed(1)} ms per CLI spawn (both sides pay it)`,
  )
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  const N = Number(process.argv[2] ?? 20)
  const K = Number(process.argv[3] ?? 30)
  onInterrupt(() => stopAll())
  ensureSerf()
  console.log(`bench/serf: N=${N} serf agents, K=${K} queries`)
  const idleS = Number(process.env.BENCH_IDLE_S ?? 20)
  const settleS = Number(process.env.BENCH_SETTLE_S ?? 10)
  const r = await runSerf({ N, K, idleS, settleS })
  printSerf(r)
}
