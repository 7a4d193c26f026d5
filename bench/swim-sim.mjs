// bench/swim-sim: the SWIM membership core at scale, in the virtual-time simulator (test/sim/swim-sim.ts,
// bundled on the fly with esbuild). Per mesh size it prints: idle messages per node per second (in +
// out), crash detection (time until the crashed node is dead on every other node, and per observer:
// p50 / p95 / max), false deaths and suspicions under 10 % loss, and under a partition into halves
// (false deaths within a side, and the time until everyone is alive again after healing).
//
// Every node holds every other in one process, so memory grows as n² (~130 bytes per member held):
// a size that does not fit the heap limit or the free memory is skipped with a note, and the largest
// size that fits (rounded down to 500) is run instead. Each phase runs a bounded simulated time, shorter
// above 2,000 nodes (where one simulated second costs seconds): 10 s idle, 3 crashes, 10 s of loss,
// no partition.
//
// Usage: node [--max-old-space-size=MB] bench/swim-sim.mjs [SIZES…]   (default 100 1000 10000;
// 10,000 needs ~13 GB: --max-old-space-size=15000)
// Env: BENCH_SEED (default 1).
import { mkdtempSync, rmSync } from 'node:fs'
import { freemem, tmpdir } from 'node:os'
import { join } from 'node:path'
import { pathToFileURL } from 'node:url'
import { getHeapStatistics } from 'node:v8'
import { build } from 'esbuild'

const BYTES_PER_MEMBER = 130
const started = Date.now()
const sizes = process.argv
  .slice(2)
  .map(Number)
  .filter(n => n > 1)
if (sizes.length === 0) sizes.push(100, 1000, 10_000)
const seed = Number(process.env.BENCH_SEED ?? 1)

const dir = mkdtempSync(join(tmpdir(), 'mesh-swim-bench-'))
const out = join(dir, 'swim-sim.mjs')
await build({
  entryPoints: [new URL('../test/sim/swim-sim.ts', import.meta.url).pathname],
  bundle: true,
  platform: 'node',
  format: 'esm',
  outfile: out,
  logLevel: 'warning',
})
const { SwimSim, percentile } = await import(pathToFileURL(out).href)
rmSync(dir, { recursive: true, force: true })

const fmt = x => (Number.isFinite(x) ? String(Math.round(x)) : String(x))
const rate = sim => sim.traffic().map(t => t.sentPerS + t.receivedPerS)
/** A realistic record (certificate, addresses, facts) and suspicion size, so syncs get truncated. */
const updateBytes = u => (u.kind === 'alive' ? 1500 : 250)

function fits(n) {
  const need = n * n * BYTES_PER_MEMBER
  const limit = Math.min(getHeapStatistics().heap_size_limit, freemem())
  return { ok: need < 0.8 * limit, needGb: need / 2 ** 30, limitGb: limit / 2 ** 30 }
}

function gone(sim, target) {
  return sim.upIds().every(id => {
    const state = sim.state(id, target)
    return state !== 'alive' && state !== 'suspect'
  })
}

function idleAndDetection(n, crashes, idleMs) {
  const t0 = Date.now()
  const sim = new SwimSim({ seed, n, updateBytes })
  const bootMs = Date.now() - t0
  sim.run(3_000)
  sim.resetTraffic()
  sim.run(3_000 + idleMs)
  const idle = rate(sim)
  const byType = { ...sim.sentByType }
  const everywhere = []
  const perObserver = []
  for (let k = 0; k < crashes; k++) {
    const victim = sim.random.pick(sim.upIds())
    const crashedAt = sim.now
    sim.crash(victim)
    const doneAt = sim.runUntil(() => gone(sim, victim), 30_000, 20)
    everywhere.push(doneAt === null ? Number.POSITIVE_INFINITY : doneAt - crashedAt)
    for (const d of sim.deaths)
      if (d.target === victim && d.atMs >= crashedAt) perObserver.push(d.atMs - crashedAt)
    sim.run(sim.now + 2_000)
  }
  const falseDeaths = sim.deaths.filter(d => d.falsePositive).length
  return { bootMs, idle, byType, everywhere, perObserver, falseDeaths, wallMs: Date.now() - t0 }
}

function underLoss(n, durationMs) {
  const t0 = Date.now()
  const sim = new SwimSim({ seed: seed + 1, n, loss: 0.1, updateBytes })
  const accused = new Set()
  sim.onChange(c => {
    if (c.effect.type === 'state' && c.effect.to === 'suspect')
      accused.add(`${c.effect.id}@${sim.core(c.observer)?.get(c.effect.id)?.incarnation}`)
  })
  sim.run(5_000)
  sim.resetTraffic()
  sim.run(5_000 + durationMs)
  return { deaths: sim.deaths.length, suspicions: accused.size, rates: rate(sim), wallMs: Date.now() - t0 }
}

function partition(n, durationMs) {
  const t0 = Date.now()
  const sim = new SwimSim({ seed: seed + 2, n, updateBytes })
  sim.run(5_000)
  const half = sim.ids.slice(0, n / 2)
  sim.partition(half)
  sim.run(5_000 + durationMs)
  const withinSide = sim.deaths.filter(d => sim.reachable(d.observer, d.target)).length
  sim.heal()
  const healedAt = sim.now
  // Checking every pair is n² per check: sample observers when the mesh is large.
  const observers = n <= 1000 ? sim.ids : sim.ids.filter((_, i) => i % Math.ceil(n / 200) === 0)
  const allAlive = () => observers.every(o => sim.ids.every(t => sim.state(o, t) === 'alive'))
  const aliveAt = sim.runUntil(allAlive, 180_000, 500)
  return {
    withinSide,
    falseDeaths: sim.deaths.filter(d => d.falsePositive).length,
    healMs: aliveAt === null ? Number.POSITIVE_INFINITY : aliveAt - healedAt,
    wallMs: Date.now() - t0,
  }
}

console.log(
  `bench/swim-sim: seed ${seed}, defaults of src/membership/swim.ts, records 1500 B, suspicions 250 B`,
)
for (const wanted of sizes) {
  let n = wanted
  const check = fits(n)
  if (!check.ok) {
    const largest = Math.floor(Math.sqrt((0.8 * check.limitGb * 2 ** 30) / BYTES_PER_MEMBER) / 500) * 500
    console.log(
      `n=${wanted}: skipped, needs ~${check.needGb.toFixed(1)} GiB of heap (${BYTES_PER_MEMBER} B per member held, ` +
        `n² members) and ${check.limitGb.toFixed(1)} GiB is available (heap limit or free memory); ` +
        `running the largest that fits, n=${largest}`,
    )
    if (largest < 100 || sizes.includes(largest)) continue
    n = largest
  }
  const large = n > 2000
  const a = idleAndDetection(n, large ? 3 : 12, large ? 10_000 : 25_000)
  const idle = a.idle
  console.log(
    `n=${n}: idle msgs/node/s p50 ${idle.length ? percentile(idle, 50).toFixed(2) : '-'} ` +
      `p95 ${percentile(idle, 95).toFixed(2)} (sent by type ${JSON.stringify(a.byType)}), boot ${a.bootMs} ms, ` +
      `heap ${(process.memoryUsage().heapUsed / 2 ** 30).toFixed(1)} GiB`,
  )
  console.log(
    `n=${n}: detection (${a.everywhere.length} crashes) dead on all p50 ${fmt(percentile(a.everywhere, 50))} ` +
      `p95 ${fmt(percentile(a.everywhere, 95))} max ${fmt(percentile(a.everywhere, 100))} ms; per observer ` +
      `p50 ${fmt(percentile(a.perObserver, 50))} p95 ${fmt(percentile(a.perObserver, 95))} ms; ` +
      `false deaths ${a.falseDeaths} [wall ${a.wallMs} ms]`,
  )
  const lossMs = large ? 10_000 : 60_000
  const b = underLoss(n, lossMs)
  console.log(
    `n=${n}: 10 % loss for ${lossMs / 1000} s: false deaths ${b.deaths}, suspicions ${b.suspicions}, ` +
      `msgs/node/s p50 ${percentile(b.rates, 50).toFixed(1)} [wall ${b.wallMs} ms]`,
  )
  if (large) {
    console.log(`n=${n}: partition skipped (every node suspects n/2 members at once: n³ work in one process)`)
  } else {
    const c = partition(n, 30_000)
    console.log(
      `n=${n}: partition into halves for 30 s: deaths within a side ${c.withinSide}, false deaths ${c.falseDeaths}; ` +
        `all alive again ${fmt(c.healMs)} ms after healing [wall ${c.wallMs} ms]`,
    )
  }
}
console.log(`bench/swim-sim: done in ${Math.round((Date.now() - started) / 1000)} s`)
