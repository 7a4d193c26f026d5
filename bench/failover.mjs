// bench/failover: five agent processes in one zone (lan profile) on 127.0.0.1. Repeatedly kill -9 the
// zone authority and measure the time until another node holds the lease; restart the killed agent
// (same home) before the next round. Safety is checked from the nodes' own timestamped lease logs
// ('authority acquired' / 'renewed' / 'lost' with wall-clock times): no two nodes' acting intervals
// may overlap. Usage: npm run bench:failover -- [ROUNDS]   (default 10)
import { spawn, spawnSync } from 'node:child_process'
import { appendFileSync, existsSync, mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'

const ROUNDS = Number(process.argv[2] ?? 10)
const NODES = 5
const bin = process.env.BENCH_BIN ?? (existsSync('dist/mesh') ? 'dist/mesh' : 'dist/mesh.cjs')
const cmd = bin.endsWith('.cjs') ? [process.execPath, bin] : [join(process.cwd(), bin)]
const root = mkdtempSync(join(tmpdir(), 'mesh-failover-'))
const env = { ...process.env, MESH_LOG_LEVEL: 'debug', MESH_PROFILE: 'lan', NO_COLOR: '1' }
const LOOPBACK = '/ip4/127.0.0.1/tcp/0'
const home = i => join(root, `n${i}`)
/** Per node: list of { from, until } acting intervals (wall ms); the open one is last. */
const intervals = Array.from({ length: NODES }, () => [])
const procs = []

function mesh(args) {
  const r = spawnSync(cmd[0], [...cmd.slice(1), ...args], {
    encoding: 'utf8',
    env: { ...env, MESH_LOG_LEVEL: 'warn' },
    timeout: 60_000,
  })
  if (r.status !== 0) throw new Error(`mesh ${args.join(' ')} → ${r.status}: ${r.stderr}`)
  return r.stdout
}

function onLog(i, line) {
  let e
  try {
    e = JSON.parse(line)
  } catch {
    return
  }
  const list = intervals[i]
  const open = list[list.length - 1]
  if (e.msg === 'authority acquired')
    list.push({ from: e.atWallMs, until: e.actUntilWallMs, epoch: e.epoch, open: true })
  else if (e.msg === 'authority renewed' && open?.open) open.until = Math.max(open.until, e.actUntilWallMs)
  else if (e.msg === 'authority lost' && open?.open) {
    open.until = Math.min(open.until, e.atWallMs)
    open.open = false
  }
}

function startAgent(i) {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd[0], [...cmd.slice(1), '--home', home(i), 'agent'], {
      env,
      stdio: ['ignore', 'pipe', 'pipe'],
    })
    procs[i] = child
    let buf = ''
    const logFile = process.env.BENCH_LOG_DIR ? join(process.env.BENCH_LOG_DIR, `n${i}.log`) : undefined
    child.stderr.on('data', d => {
      if (logFile) appendFileSync(logFile, d)
      buf += d
      const lines = buf.split('\n')
      buf = lines.pop()
      for (const line of lines) onLog(i, line)
    })
    const timer = setTimeout(() => reject(new Error(`agent n${i} did not start`)), 60_000)
    child.stdout.on('data', d => {
      if (String(d).includes('listening on')) {
        clearTimeout(timer)
        resolve(child)
      }
    })
  })
}

const holderNow = () => {
  const now = Date.now()
  return intervals.findIndex(
    (list, i) => procs[i]?.exitCode === null && list.some(x => x.open && x.until > now),
  )
}
const sleep = ms => new Promise(r => setTimeout(r, ms))
async function waitFor(check, ms) {
  const deadline = Date.now() + ms
  while (!check()) {
    if (Date.now() > deadline) return false
    await sleep(10)
  }
  return true
}

async function main() {
  console.log(`bench/failover: ${NODES} agents in zone web, ${ROUNDS} rounds, lan profile, binary ${bin}`)
  mesh(['--home', home(0), 'init', '--name', 'n0', '--zone', 'web', '--listen', LOOPBACK])
  await startAgent(0)
  for (let i = 1; i < NODES; i++) {
    const ticket = mesh(['--home', home(0), 'ticket', 'create', `n${i}`, '--zone', 'web']).trim()
    mesh(['--home', home(i), 'join', '--ticket', ticket, '--listen', LOOPBACK])
  }
  await Promise.all(Array.from({ length: NODES - 1 }, (_, i) => startAgent(i + 1)))
  if (!(await waitFor(() => holderNow() >= 0, 30_000))) throw new Error('no authority within 30 s')
  await sleep(3_000)

  const failovers = []
  for (let round = 0; round < ROUNDS; round++) {
    const victim = holderNow()
    if (victim < 0) {
      console.log(`round ${round + 1}: no holder before the kill`)
      failovers.push(Number.POSITIVE_INFINITY)
      break
    }
    const killedAt = Date.now()
    procs[victim].kill('SIGKILL')
    // The victim's last logged actUntil bounds its acting interval.
    const closed = intervals[victim][intervals[victim].length - 1]
    closed.open = false
    const ok = await waitFor(
      () => intervals.some((list, i) => i !== victim && list.some(x => x.from >= killedAt)),
      15_000,
    )
    if (!ok) {
      console.log(`round ${round + 1}: killed n${victim}; no new authority within 15 s`)
      failovers.push(Number.POSITIVE_INFINITY)
    } else {
      const first = Math.min(
        ...intervals.flatMap((list, i) =>
          i === victim ? [] : list.filter(x => x.from >= killedAt).map(x => x.from),
        ),
      )
      failovers.push(first - killedAt)
      console.log(`round ${round + 1}: killed n${victim}; new authority after ${first - killedAt} ms`)
    }
    await startAgent(victim)
    await sleep(3_000)
  }

  // Safety: no two acting intervals of different nodes overlap.
  const all = intervals.flatMap((list, node) => list.map(x => ({ ...x, node })))
  let overlaps = 0
  for (const a of all) {
    for (const b of all) {
      if (a.node < b.node && a.from < b.until && b.from < a.until) {
        overlaps += 1
        console.log(
          `OVERLAP: n${a.node} [${a.from}, ${a.until}] epoch ${a.epoch} and n${b.node} [${b.from}, ${b.until}] epoch ${b.epoch}`,
        )
      }
    }
  }
  const sorted = [...failovers].sort((a, b) => a - b)
  console.log(
    `failover: p50 ${sorted[Math.floor(sorted.length / 2)]} ms, max ${sorted[sorted.length - 1]} ms over ${ROUNDS} kills`,
  )
  console.log(
    `lease intervals checked: ${all.length}; overlapping pairs (two authorities at once): ${overlaps}`,
  )
}

try {
  await main()
} finally {
  for (const p of procs) if (p?.exitCode === null) p.kill('SIGTERM')
  await sleep(1_500)
  for (const p of procs) if (p?.exitCode === null) p.kill('SIGKILL')
  rmSync(root, { recursive: true, force: true })
}
