// bench/exec: N agents as separate processes on 127.0.0.1 (half in zone web), joined by tickets; then
// K runs of `mesh exec uptime --zone web`, each a fresh CLI process as a user would run it.
// Prints p50/p95 from spawn to exit (the CLI exits when the last expected reply is in), the share of
// runs where every expected node answered, the requesting agent's CPU, the agents' idle CPU, and the
// median agent RSS idle and after the runs. Usage: npm run bench:exec -- [N] [K]   (defaults 20 and 30)
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import {
  agents,
  bin,
  cpuTicks,
  makeMesh,
  median,
  mesh,
  quantile,
  rssMb,
  sleep,
  startAgent,
  stopAll,
} from './common.mjs'

const N = Number(process.argv[2] ?? 20)
const K = Number(process.argv[3] ?? 30)
const root = mkdtempSync(join(tmpdir(), 'mesh-bench-'))
const env = { ...process.env, MESH_LOG_LEVEL: 'warn', NO_COLOR: '1' }

async function main() {
  console.log(`bench/exec: N=${N} agents (processes), K=${K} runs, binary ${bin}`)
  const t0 = Date.now()
  const homes = await makeMesh(root, N, i => (i % 2 === 0 ? 'web' : 'db'), env)
  await Promise.all(homes.slice(1).map(home => startAgent(home, { env })))
  const requester = agents[0]
  const deadline = Date.now() + 180_000
  for (;;) {
    const r = mesh(['--home', homes[0], 'members', '--json'], { env, check: false })
    const alive = r.status === 0 ? JSON.parse(r.stdout).filter(m => m.state === 'alive').length : 0
    if (alive === N) break
    if (Date.now() > deadline) throw new Error(`only ${alive} of ${N} members alive after 180 s`)
    await sleep(250)
  }
  console.log(
    `mesh formed: ${N} members alive after ${((Date.now() - t0) / 1000).toFixed(1)} s (joins are sequential)`,
  )
  await sleep(3_000)
  const idle = agents.map(a => rssMb(a.pid))
  const idleCpu0 = agents.map(a => cpuTicks(a.pid))
  await sleep(5_000)
  const idleCpu = agents.map((a, i) => (cpuTicks(a.pid) - idleCpu0[i]) / 5) // % of one core

  const expected = Math.ceil(N / 2)
  const times = []
  let complete = 0
  const cpu0 = cpuTicks(requester.pid)
  const wall0 = Date.now()
  for (let k = 0; k < K; k++) {
    const start = process.hrtime.bigint()
    const r = mesh(['--home', homes[0], 'exec', 'uptime', '--zone', 'web', '--timeout', '10s', '--json'], {
      env,
      check: false,
    })
    times.push(Number(process.hrtime.bigint() - start) / 1e6)
    const doc = r.status === 0 || r.status === 1 ? JSON.parse(r.stdout) : undefined
    if (doc && doc.missing.length === 0 && doc.replies.filter(x => x.status === 'ok').length === expected)
      complete += 1
  }
  const cpuSeconds = (cpuTicks(requester.pid) - cpu0) / 100
  const wallSeconds = (Date.now() - wall0) / 1000
  await sleep(1_000)
  const after = agents.map(a => rssMb(a.pid))

  console.log(
    `spawn → last expected reply (${expected} web nodes): p50 ${median(times).toFixed(1)} ms, p95 ${quantile(times, 0.95).toFixed(1)} ms, max ${Math.max(...times).toFixed(1)} ms`,
  )
  console.log(`complete runs: ${complete}/${K} (${((100 * complete) / K).toFixed(0)}%)`)
  console.log(
    `requesting agent CPU: ${cpuSeconds.toFixed(2)} s over ${wallSeconds.toFixed(1)} s (${((100 * cpuSeconds) / wallSeconds).toFixed(0)}% of one core)`,
  )
  console.log(
    `idle agent CPU: median ${median(idleCpu).toFixed(1)}% of one core (all ${N}: ${idleCpu.reduce((a, b) => a + b, 0).toFixed(0)}%)`,
  )
  console.log(
    `agent RSS median: idle ${median(idle).toFixed(1)} MB, after runs ${median(after).toFixed(1)} MB (max ${Math.max(...after).toFixed(1)} MB)`,
  )
}

try {
  await main()
} finally {
  await stopAll()
  rmSync(root, { recursive: true, force: true })
}
