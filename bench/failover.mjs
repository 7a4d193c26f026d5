// bench/failover: five agent processes in one zone (lan profile) on 127.0.0.1. Repeatedly kill -9 the
// zone authority and measure the time until another node holds the lease; restart the killed agent
// (same home) before the next round. Safety is checked from the nodes' own timestamped lease logs
// ('authority acquired' / 'renewed' / 'lost' with wall-clock times): no two nodes' acting intervals
// may overlap. Usage: npm run bench:failover -- [ROUNDS]   (default 10)
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { bin, makeMesh, sleep, startAgent, stopAll } from './common.mjs'

const ROUNDS = Number(process.argv[2] ?? 10)
const NODES = 5
const root = mkdtempSync(join(tmpdir(), 'mesh-failover-'))
const env = { ...process.env, MESH_LOG_LEVEL: 'debug', MESH_PROFILE: 'lan', NO_COLOR: '1' }
/** Per node: list of { from, until } acting intervals (wall ms); the open one is last. */
const intervals = Array.from({ length: NODES }, () => [])
const procs = []
let homes = []

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

async function start(i) {
  const logFile = process.env.BENCH_LOG_DIR ? join(process.env.BENCH_LOG_DIR, `n${i}.log`) : undefined
  procs[i] = await startAgent(homes[i], { env, onLine: line => onLog(i, line), logFile })
}

const holderNow = () => {
  const now = Date.now()
  return intervals.findIndex(
    (list, i) => procs[i]?.exitCode === null && list.some(x => x.open && x.until > now),
  )
}
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
  // The first node is started by makeMesh (it issues the tickets); its log is not captured, so restart it.
  homes = await makeMesh(root, NODES, () => 'web', { ...env, MESH_LOG_LEVEL: 'warn' })
  await stopAll()
  await Promise.all(homes.map((_, i) => start(i)))
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
    await start(victim)
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
  await stopAll()
  rmSync(root, { recursive: true, force: true })
}
