// bench/exec: N agents as separate processes on 127.0.0.1 (half in zone web), joined by tickets; then
// K runs of `mesh exec uptime --zone web`, each a fresh CLI process as a user would run it.
// Prints p50/p95 from spawn to exit (the CLI exits when the last expected reply is in), the share of
// runs where every expected node answered, the requesting agent's CPU, and the median agent RSS idle
// and after the runs. Usage: npm run bench:exec -- [N] [K]   (defaults 20 and 30)
// Uses dist/mesh (the single binary) when it exists, else dist/mesh.cjs; BENCH_BIN overrides.
import { spawn, spawnSync } from 'node:child_process'
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'

const N = Number(process.argv[2] ?? 20)
const K = Number(process.argv[3] ?? 30)
const bin = process.env.BENCH_BIN ?? (existsSync('dist/mesh') ? 'dist/mesh' : 'dist/mesh.cjs')
const cmd = bin.endsWith('.cjs') ? [process.execPath, bin] : [join(process.cwd(), bin)]
const root = mkdtempSync(join(tmpdir(), 'mesh-bench-'))
const env = { ...process.env, MESH_LOG_LEVEL: 'warn', NO_COLOR: '1' }
const agents = []
const LOOPBACK = '/ip4/127.0.0.1/tcp/0'

function mesh(args, opts = {}) {
  const r = spawnSync(cmd[0], [...cmd.slice(1), ...args], { encoding: 'utf8', env, timeout: 60_000, ...opts })
  if (r.status !== 0 && opts.check !== false)
    throw new Error(`mesh ${args.join(' ')} → ${r.status}: ${r.stderr}`)
  return r
}

function startAgent(home) {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd[0], [...cmd.slice(1), '--home', home, 'agent'], {
      env,
      stdio: ['ignore', 'pipe', 'pipe'],
    })
    agents.push(child)
    let out = ''
    const timer = setTimeout(() => reject(new Error(`agent ${home} did not start: ${out}`)), 60_000)
    child.stdout.on('data', d => {
      out += d
      if (out.includes('listening on')) {
        clearTimeout(timer)
        resolve(child)
      }
    })
    child.stderr.on('data', d => {
      if (process.env.BENCH_VERBOSE) process.stderr.write(d)
    })
    child.on('exit', code => reject(new Error(`agent ${home} exited ${code}: ${out}`)))
  })
}

const rssMb = pid => {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))
  return m ? Number(m[1]) / 1024 : Number.NaN
}
const cpuTicks = pid => {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ')
  return Number(fields[11]) + Number(fields[12]) // utime + stime, clock ticks (1/100 s)
}
const median = xs => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]
const quantile = (xs, q) => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor(q * xs.length))]

async function main() {
  console.log(`bench/exec: N=${N} agents (processes), K=${K} runs, binary ${bin}`)
  const home = i => join(root, `n${i}`)
  const zone = i => (i % 2 === 0 ? 'web' : 'db')
  mesh(['--home', home(0), 'init', '--name', 'n0', '--zone', zone(0), '--listen', LOOPBACK])
  const t0 = Date.now()
  const requester = await startAgent(home(0))
  for (let i = 1; i < N; i++) {
    const ticket = mesh(['--home', home(0), 'ticket', 'create', `n${i}`, '--zone', zone(i)]).stdout.trim()
    mesh(['--home', home(i), 'join', '--ticket', ticket, '--listen', LOOPBACK])
  }
  await Promise.all(Array.from({ length: N - 1 }, (_, i) => startAgent(home(i + 1))))
  const deadline = Date.now() + 180_000
  for (;;) {
    const r = mesh(['--home', home(0), 'members', '--json'], { check: false })
    const alive = r.status === 0 ? JSON.parse(r.stdout).filter(m => m.state === 'alive').length : 0
    if (alive === N) break
    if (Date.now() > deadline) throw new Error(`only ${alive} of ${N} members alive after 180 s`)
    await new Promise(r => setTimeout(r, 250))
  }
  console.log(`mesh formed: ${N} members alive after ${((Date.now() - t0) / 1000).toFixed(1)} s`)
  await new Promise(r => setTimeout(r, 2_000))
  const idle = agents.map(a => rssMb(a.pid))

  if (process.env.IDLEX) {
    await new Promise(r => setTimeout(r, 5_000))
    const t0 = agents.map(a => cpuTicks(a.pid))
    await new Promise(r => setTimeout(r, 10_000))
    const d = agents.map((a, i) => cpuTicks(a.pid) - t0[i])
    console.log('idle CPU per agent over 10 s (ticks of 10ms):', d.join(' '))
    console.log('load:', readFileSync('/proc/loadavg', 'utf8'))
    return
  }
  const expected = Math.ceil(N / 2)
  const times = []
  let complete = 0
  const cpu0 = cpuTicks(requester.pid)
  const wall0 = Date.now()
  for (let k = 0; k < K; k++) {
    const start = process.hrtime.bigint()
    const r = mesh(['--home', home(0), 'exec', 'uptime', '--zone', 'web', '--timeout', '10s', '--json'], {
      check: false,
    })
    times.push(Number(process.hrtime.bigint() - start) / 1e6)
    const doc = r.status === 0 || r.status === 1 ? JSON.parse(r.stdout) : undefined
    if (doc && doc.missing.length === 0 && doc.replies.filter(x => x.status === 'ok').length === expected)
      complete += 1
  }
  const cpuSeconds = (cpuTicks(requester.pid) - cpu0) / 100
  const wallSeconds = (Date.now() - wall0) / 1000
  await new Promise(r => setTimeout(r, 1_000))
  const after = agents.map(a => rssMb(a.pid))

  console.log(
    `spawn → last expected reply (${expected} web nodes): p50 ${median(times).toFixed(1)} ms, p95 ${quantile(times, 0.95).toFixed(1)} ms, max ${Math.max(...times).toFixed(1)} ms`,
  )
  console.log(`complete runs: ${complete}/${K} (${((100 * complete) / K).toFixed(0)}%)`)
  console.log(
    `requesting agent CPU: ${cpuSeconds.toFixed(2)} s over ${wallSeconds.toFixed(1)} s (${((100 * cpuSeconds) / wallSeconds).toFixed(0)}% of one core; ${((1000 * cpuSeconds) / K).toFixed(1)} ms per request)`,
  )
  console.log(
    `agent RSS median: idle ${median(idle).toFixed(1)} MB, after runs ${median(after).toFixed(1)} MB (max ${Math.max(...after).toFixed(1)} MB)`,
  )
}

try {
  await main()
} finally {
  for (const a of agents) if (a.exitCode === null) a.kill('SIGTERM')
  await new Promise(r => setTimeout(r, 1_500))
  for (const a of agents) if (a.exitCode === null) a.kill('SIGKILL')
  rmSync(root, { recursive: true, force: true })
}
