// bench/formation (issue 9): how an N-agent mesh forms. Makes N homes as bench/exec.mjs does (init,
// then tickets and joins), starts the agents (FORM_POOL at a time, FORM_GAP_MS between starts), and
// every 30 s prints: CPU per agent over the last 30 s (median, max), the membership health score of a
// sample of agents, the busiest protocols (messages/s in+out per agent, from `mesh status --json`),
// the member states n0 sees and the host's load. It ends after DURATION_S or once n0 has seen all N
// alive for two samples in a row. A diagnosis, not a target: use it to see where forming spends.
//
// Usage: node bench/formation.mjs [N] [DURATION_S]     (defaults 100 and 420)
// Environment: BENCH_BIN, BENCH_LOG_LEVEL (agents' log level, default warn; HOME/agent.log),
// FORM_POOL (agents started at once, default 8 as bench/exec.mjs), FORM_GAP_MS (pause after each start,
// default 0), BENCH_NETNS=0 (host loopback instead of a private network namespace), BENCH_KEEP=1.
import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import {
  agents,
  cpuTicks,
  makeMesh,
  meshArgv,
  onInterrupt,
  pool,
  sleep,
  startAgent,
  startNetns,
  stopAll,
  timedRun,
  useNetns,
} from './common.mjs'

const N = Number(process.argv[2] ?? 100)
const DURATION_S = Number(process.argv[3] ?? 420)
const POOL = Number(process.env.FORM_POOL ?? 8)
const GAP_MS = Number(process.env.FORM_GAP_MS ?? 0)
const env = { ...process.env, MESH_LOG_LEVEL: process.env.BENCH_LOG_LEVEL ?? 'warn' }
const root = mkdtempSync(join(tmpdir(), 'mesh-formation-'))
const cleanup = async () => {
  await stopAll()
  if (process.env.BENCH_KEEP !== '1') rmSync(root, { recursive: true, force: true })
  else console.log(`homes kept in ${root}`)
}
onInterrupt(cleanup)

/** `mesh status --json` or `members --json` of one home, parsed; undefined when it fails. */
async function ask(home, what) {
  const r = await timedRun(meshArgv(['--home', home, what, '--json']), { env, timeoutMs: 20_000 })
  if (r.code !== 0) return undefined
  try {
    return JSON.parse(r.lines.map(l => l.line).join('\n'))
  } catch {
    return undefined
  }
}

async function main() {
  useNetns(await startNetns())
  const t0 = Date.now()
  const seconds = () => ((Date.now() - t0) / 1000).toFixed(0)
  const homes = await makeMesh(root, N, i => (i % 2 === 0 ? 'web' : 'db'), env)
  console.log(
    `bench/formation: N=${N}, ${POOL} started at a time, ${GAP_MS} ms apart; joins done at ${seconds()} s`,
  )
  await pool(homes.slice(1), POOL, async home => {
    await startAgent(home, { env, logFile: join(home, 'agent.log') })
    if (GAP_MS > 0) await sleep(GAP_MS)
  })
  console.log(`all ${N} agents started at ${seconds()} s`)
  const sample = [...new Set([0, 1, 2, Math.floor(N / 2), N - 1])].filter(i => i < N)
  let ticks = agents.map(a => cpuTicks(a.pid))
  let at = Date.now()
  let formedSamples = 0
  while (Date.now() - t0 < DURATION_S * 1000 && formedSamples < 2) {
    await sleep(30_000)
    const now = Date.now()
    const next = agents.map(a => cpuTicks(a.pid))
    const cpu = next.map((t, i) => (t - ticks[i]) / ((now - at) / 1000)).sort((a, b) => a - b)
    ticks = next
    at = now
    const statuses = await pool(sample, 5, i => ask(homes[i], 'status'))
    const perProtocol = {}
    for (const s of statuses) {
      for (const [k, p] of Object.entries(s?.traffic?.protocols ?? {})) {
        if (k.includes(':') && process.env.FORM_ROWS !== 'all') continue // sub-rows (authority:<type>) are parts of their protocol's row (FORM_ROWS=all shows them)
        perProtocol[k] = (perProtocol[k] ?? 0) + (p.msgsInPerS ?? 0) + (p.msgsOutPerS ?? 0)
      }
    }
    const busiest = Object.entries(perProtocol)
      .sort((a, b) => b[1] - a[1])
      .slice(0, process.env.FORM_ROWS === 'all' ? 12 : 5)
      .map(([k, v]) => `${k} ${(v / sample.length).toFixed(1)}`)
    const health = statuses.map(s => s?.counters?.membership?.health ?? '?').join('/')
    const members = (await ask(homes[0], 'members')) ?? []
    const states = {}
    for (const m of members) states[m.state] = (states[m.state] ?? 0) + 1
    if ((states.alive ?? 0) === N) formedSamples++
    else formedSamples = 0
    const load = readFileSync('/proc/loadavg', 'utf8').split(' ')[0]
    console.log(
      `${seconds()} s: CPU per agent p50 ${cpu[Math.floor(cpu.length / 2)].toFixed(2)}% max ${cpu[cpu.length - 1].toFixed(2)}%; ` +
        `health ${health}; msgs/s per agent ${busiest.join(', ')}; n0 sees ${JSON.stringify(states)}; load ${load}`,
    )
  }
  console.log(
    formedSamples >= 2 ? `formed: n0 saw all ${N} alive (${seconds()} s)` : `not formed in ${DURATION_S} s`,
  )
}

try {
  await main()
} finally {
  await cleanup()
}
