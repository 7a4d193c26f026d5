// bench/metrics-idle: what serving Prometheus metrics costs an idle agent (docs/metrics.md).
// Builds an N-node mesh on 127.0.0.1 (bench/common.mjs), then alternates variants for ROUNDS rounds:
// all N agents are started with the variant's environment, left to settle SETTLE seconds, and their
// CPU time (user + system, /proc/PID/stat) is read over WINDOW seconds; the agents are then stopped
// (by PID) before the next variant starts. Variants:
//   off      no metricsListen (the default)
//   listening  metricsListen on a free loopback port per agent, never scraped
//   scraped  the same, each agent scraped every SCRAPE seconds by this process (its own CPU is not
//            counted), as Prometheus would; agent 0's CPU time (all threads, /proc/PID/task/*/schedstat,
//            ns) is also read around each scrape and around an equal window without one, 7 s later,
//            which gives the cost of a scrape as it really happens: every 15 s, with the code cold
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
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs'
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
  listening: async () => ({ MESH_METRICS_LISTEN: `127.0.0.1:${await freePort()}` }),
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
  const urls =
    name === 'listening'
      ? []
      : envs
          .map(e => e.MESH_METRICS_LISTEN)
          .filter(Boolean)
          .map(a => `http://${a}/metrics`)
  const scrapes = []
  const cold = []
  let stop = false
  const scraper = (async () => {
    while (!stop) {
      for (const [i, url] of urls.entries()) {
        const cpu0 = i === 0 ? taskCpuNs(children[0].pid) : 0
        const t0 = performance.now()
        const res = await fetch(url).catch(() => undefined)
        const text = res === undefined ? '' : await res.text()
        const ms = performance.now() - t0
        scrapes.push({ ms, bytes: text.length, ok: res?.status === 200 })
        if (i === 0) {
          await sleep(300)
          cold.push({ scrapeNs: taskCpuNs(children[0].pid) - cpu0, windowMs: ms + 300 })
        }
      }
      if (urls.length > 0) {
        await sleep(7_000)
        const last = cold.at(-1)
        const cpu0 = taskCpuNs(children[0].pid)
        await sleep(last.windowMs)
        last.quietNs = taskCpuNs(children[0].pid) - cpu0
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
  return { mean, scrapes, cold: cold.filter(c => c.quietNs !== undefined) }
}

/** CPU time of every thread of `pid` so far, ns (/proc/PID/task/TID/schedstat, first field). */
function taskCpuNs(pid) {
  let sum = 0
  for (const tid of readdirSync(`/proc/${pid}/task`))
    sum += Number(readFileSync(`/proc/${pid}/task/${tid}/schedstat`, 'utf8').split(' ')[0])
  return sum
}

const homes = await makeMesh(root, n, i => (i % 2 === 0 ? 'web' : 'db'), env)
await stopAll()
const chosen = Object.keys(VARIANTS).filter(v => only === undefined || only.includes(v))
const results = Object.fromEntries(chosen.map(v => [v, []]))
const scrapeStats = []
const coldStats = []
for (let round = 0; round < rounds; round++) {
  for (const name of chosen) {
    const { mean, scrapes, cold } = await runVariant(name, homes)
    results[name].push(mean)
    scrapeStats.push(...scrapes)
    coldStats.push(...cold)
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
if (coldStats.length > 0) {
  const extraMs = coldStats.map(c => (c.scrapeNs - c.quietNs) / 1e6)
  const mean = extraMs.reduce((x, y) => x + y, 0) / extraMs.length
  console.log(
    `a scrape as it happens (every ${scrapeS} s, cold): ${median(extraMs).toFixed(2)} ms of CPU median, ${mean.toFixed(2)} ms mean over ${extraMs.length}, ` +
      `so ${((mean / 1000 / scrapeS) * 100).toFixed(4)} % of a core`,
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
