// bench/metrics-idle: what serving Prometheus metrics costs an idle agent (docs/metrics.md).
// Builds an N-node mesh on 127.0.0.1 (bench/common.mjs), then alternates variants for ROUNDS rounds:
// all N agents are started with the variant's environment, left to settle SETTLE seconds, and their
// CPU time (user + system, /proc/PID/stat) is read over WINDOW seconds; the agents are then stopped
// (by PID) before the next variant starts. Variants:
//   off      no metricsListen (the default)
//   scraped  metricsListen on a free loopback port per agent, each scraped every SCRAPE seconds by
//            this process (its own CPU is not counted), as Prometheus would
//   api      apiListen on as well (the HTTP API and web view, idle: nobody calls it), scraped too
// Prints per variant and round the mean CPU share of one core per agent, then the medians, and the
// scrape's size and time as the agent served it. Idle CPU differences of a few hundredths of a percent
// drown in the machine's noise, so a last phase measures the cost of one scrape directly: one agent is
// scraped BURST times back to back, its CPU time over the burst less its idle share over the same wall
// time is the CPU of BURST scrapes, and one scrape every SCRAPE seconds costs that much per period.
//
// Usage: npm run build:binary (or node scripts/bundle.mjs), then
//        node bench/metrics-idle.mjs [N] [--rounds R] [--settle S] [--window S] [--scrape S] [--burst B]
//          [--variants off,scraped,api]
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { cpuTicks, freePort, makeMesh, median, onInterrupt, sleep, startAgent, stopAll } from './common.mjs'

const args = process.argv.slice(2)
const option = (name, fallback) => {
  const i = args.indexOf(name)
  if (i < 0) return fallback
  const [, value] = args.splice(i, 2)
  return Number(value)
}
const rounds = option('--rounds', 2)
const settleS = option('--settle', 20)
const windowS = option('--window', 120)
const scrapeS = option('--scrape', 15)
const burst = option('--burst', 500)
const only = (() => {
  const i = args.indexOf('--variants')
  return i < 0 ? undefined : args.splice(i, 2)[1].split(',')
})()
const n = Number(args.find(a => /^\d+$/.test(a)) ?? 5)

const root = mkdtempSync(join(tmpdir(), 'mesh-metrics-idle-'))
const baseEnv = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('MESH_')))
const env = { ...baseEnv, MESH_LOG_LEVEL: 'warn', NO_COLOR: '1' }
onInterrupt(async () => {
  await stopAll()
  rmSync(root, { recursive: true, force: true })
})

const VARIANTS = {
  off: async () => ({}),
  scraped: async () => ({ MESH_METRICS_LISTEN: `127.0.0.1:${await freePort()}` }),
  api: async () => ({
    MESH_METRICS_LISTEN: `127.0.0.1:${await freePort()}`,
    MESH_API_LISTEN: `127.0.0.1:${await freePort()}`,
  }),
}

async function runVariant(name, homes) {
  const envs = []
  for (const _ of homes) envs.push(await VARIANTS[name]())
  const children = []
  for (const [i, home] of homes.entries())
    children.push(await startAgent(home, { env: { ...env, ...envs[i] } }))
  const urls = envs
    .map(e => e.MESH_METRICS_LISTEN)
    .filter(Boolean)
    .map(a => `http://${a}/metrics`)
  const scrapes = []
  let stop = false
  const scraper = (async () => {
    while (!stop) {
      for (const url of urls) {
        const t0 = performance.now()
        const res = await fetch(url).catch(() => undefined)
        const text = res === undefined ? '' : await res.text()
        scrapes.push({ ms: performance.now() - t0, bytes: text.length, ok: res?.status === 200 })
      }
      const until = Date.now() + scrapeS * 1000
      while (!stop && Date.now() < until) await sleep(200)
    }
  })()
  await sleep(settleS * 1000)
  const before = children.map(c => cpuTicks(c.pid))
  const t0 = performance.now()
  await sleep(windowS * 1000)
  const seconds = (performance.now() - t0) / 1000
  const after = children.map(c => cpuTicks(c.pid))
  stop = true
  await scraper
  await stopAll()
  const shares = after.map((a, i) => (a - before[i]) / 100 / seconds)
  const mean = shares.reduce((x, y) => x + y, 0) / shares.length
  return { mean, scrapes }
}

const homes = await makeMesh(root, n, i => (i % 2 === 0 ? 'web' : 'db'), env)
await stopAll()
const chosen = Object.keys(VARIANTS).filter(v => only === undefined || only.includes(v))
const results = Object.fromEntries(chosen.map(v => [v, []]))
const scrapeStats = []
for (let round = 0; round < rounds; round++) {
  for (const name of chosen) {
    const { mean, scrapes } = await runVariant(name, homes)
    results[name].push(mean)
    scrapeStats.push(...scrapes)
    console.log(
      `round ${round + 1} ${name.padEnd(8)} ${(mean * 100).toFixed(3)} % of a core per agent (N=${n})`,
    )
  }
}
if (rounds > 0) console.log('\nmedian CPU per idle agent:')
for (const [name, xs] of Object.entries(results).filter(([, xs]) => xs.length > 0))
  console.log(`  ${name.padEnd(8)} ${(median(xs) * 100).toFixed(3)} %`)
const ok = scrapeStats.filter(s => s.ok)
if (ok.length > 0) {
  console.log(
    `scrapes: ${ok.length} ok of ${scrapeStats.length}, median ${median(ok.map(s => s.ms)).toFixed(1)} ms, ${median(ok.map(s => s.bytes))} bytes`,
  )
}

// The cost of one scrape, measured directly on agent 0 while the others idle.
const envs = []
for (const _ of homes) envs.push(await VARIANTS.scraped())
const children = []
for (const [i, home] of homes.entries())
  children.push(await startAgent(home, { env: { ...env, ...envs[i] } }))
await sleep(settleS * 1000)
const url = `http://${envs[0].MESH_METRICS_LISTEN}/metrics`
const pid = children[0].pid
const idleStart = cpuTicks(pid)
const idleT0 = performance.now()
await sleep(20_000)
const idleShare = (cpuTicks(pid) - idleStart) / 100 / ((performance.now() - idleT0) / 1000)
const burstStart = cpuTicks(pid)
const burstT0 = performance.now()
for (let i = 0; i < burst; i++) await (await fetch(url)).text()
const burstS = (performance.now() - burstT0) / 1000
const scrapeCpuS = ((cpuTicks(pid) - burstStart) / 100 - idleShare * burstS) / burst
console.log(
  `one scrape: ${(scrapeCpuS * 1000).toFixed(2)} ms of CPU (${burst} back to back in ${burstS.toFixed(1)} s; idle share ${(idleShare * 100).toFixed(3)} %), ` +
    `so one every ${scrapeS} s costs ${((scrapeCpuS / scrapeS) * 100).toFixed(4)} % of a core`,
)
await stopAll()
rmSync(root, { recursive: true, force: true })
