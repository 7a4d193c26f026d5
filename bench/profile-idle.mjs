// bench/profile-idle (issue 9): where an idle agent's CPU goes. Starts N agents as processes on
// 127.0.0.1 (half in zone web, joined by tickets, the `lan` profile), one of them — the last, a plain
// member — under `node --cpu-prof`; waits until every agent sees N alive members and a settle period,
// profiles IDLE_S seconds of idleness, stops it with SIGINT (so Node writes the profile) and prints its
// self time by function and by group (GC, idle, native, the rest), with the CPU the other agents used.
//
// The profiled agent runs the bundle (`node PROFILE_CJS`), the others BENCH_BIN (default dist/mesh). For
// readable names build the bundle unminified first: `BUNDLE_MINIFY=0 node scripts/bundle.mjs`.
//
// With PROFILE_EXECS=K the window is not idle: n0 runs `mesh exec uptime --zone web` K times, one a
// second, and the profiled agent is a web member, so the profile shows what one exec costs a target
// (printed per exec).
//
// Usage: node bench/profile-idle.mjs [N] [IDLE_S]     (defaults 20 and 45)
// Environment: PROFILE_CJS (default dist/mesh.cjs), PROFILE_DIR (where the .cpuprofile goes; default a
// temp dir, kept), PROFILE_TOP (functions listed, default 30), PROFILE_SETTLE_S (default 15), PROFILE_WHOLE=1
// (report the profiled agent's whole life, start and joining included, not only the idle window).
import { spawn } from 'node:child_process'
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { agents, cpuTicks, makeMesh, mesh, onInterrupt, pool, sleep, startAgent, stopAll } from './common.mjs'

const N = Number(process.argv[2] ?? 20)
const IDLE_S = Number(process.argv[3] ?? 45)
const SETTLE_S = Number(process.env.PROFILE_SETTLE_S ?? 15)
const TOP = Number(process.env.PROFILE_TOP ?? 30)
const CJS = process.env.PROFILE_CJS ?? 'dist/mesh.cjs'
const EXECS = Number(process.env.PROFILE_EXECS ?? 0)
const WHOLE = process.env.PROFILE_WHOLE === '1'
const env = { ...process.env, MESH_LOG_LEVEL: 'warn', MESH_PROFILE: 'lan', NO_COLOR: '1' }
const root = mkdtempSync(join(tmpdir(), 'mesh-prof-'))
const profDir = process.env.PROFILE_DIR ?? mkdtempSync(join(tmpdir(), 'mesh-cpuprof-'))

/** Members n0 sees alive. */
function aliveOnN0(home) {
  const r = mesh(['--home', home, 'members', '--json'], { env, check: false, timeout: 15_000 })
  if (r.status !== 0) return 0
  try {
    return JSON.parse(r.stdout).filter(m => m.state === 'alive').length
  } catch {
    return 0
  }
}

/**
 * The module a line of a bundle belongs to: esbuild starts each module's code with a `// path` comment
 * (an unminified bundle keeps them). Returns `line → package` (node_modules/<pkg>, or src/<dir>).
 */
const modulesOf = new Map()
function moduleAt(url, line) {
  if (!url.startsWith('file://')) return url === '' ? '(native)' : `node:${url.replace(/^node:/, '')}`
  let starts = modulesOf.get(url)
  if (starts === undefined) {
    starts = []
    const text = readFileSync(new URL(url), 'utf8').split('\n')
    text.forEach((l, i) => {
      const m = /^\/\/ ((?:node_modules\/(?:@[^/]+\/)?[^/]+)|src\/[^/]+)/.exec(l)
      if (m) starts.push([i, m[1].replace(/^node_modules\//, '')])
    })
    modulesOf.set(url, starts)
  }
  let found = '(bundle)'
  for (const [start, name] of starts) {
    if (start > line) break
    found = name
  }
  return found
}

/** Self time by function (ms) from a .cpuprofile, over samples taken between `fromUs` and `toUs`. */
function selfTimes(profile, fromUs, toUs, keyOf = defaultKey) {
  const byId = new Map(profile.nodes.map(n => [n.id, n]))
  const self = new Map()
  const { samples, timeDeltas } = profile
  let t = profile.startTime
  for (let i = 0; i < samples.length; i++) {
    t += timeDeltas[i] ?? 0
    if (t < fromUs || t > toUs) continue
    const node = byId.get(samples[i])
    const dt = (timeDeltas[i + 1] ?? timeDeltas[i] ?? 0) / 1000
    const key = keyOf(node.callFrame)
    self.set(key, (self.get(key) ?? 0) + dt)
  }
  return self
}

function defaultKey(f) {
  return `${f.functionName || '(anonymous)'} ${f.url ? `${f.url.split('/').pop()}:${f.lineNumber + 1}` : ''}`
}
function moduleKey(f) {
  if (f.functionName.startsWith('(')) return f.functionName
  return moduleAt(f.url, f.lineNumber)
}

async function main() {
  console.log(`bench/profile-idle: N=${N}, idle ${IDLE_S} s after settling; profiled agent: node ${CJS}`)
  const homes = await makeMesh(root, N, i => (i % 2 === 0 ? 'web' : 'db'), env)
  // The last web member (even index) when execs run, else the last member.
  const targetIndex = EXECS > 0 ? N - 1 - ((N - 1) % 2) : N - 1
  const target = homes[targetIndex]
  await pool(
    homes.filter((_, i) => i > 0 && i !== targetIndex),
    8,
    home => startAgent(home, { env }),
  )
  const profiled = spawn(
    process.execPath,
    ['--cpu-prof', '--cpu-prof-dir', profDir, CJS, '--home', target, 'agent'],
    { env, stdio: ['ignore', 'ignore', 'inherit'] },
  )
  agents.push(profiled)
  const formDeadline = Date.now() + 300_000
  let alive = aliveOnN0(homes[0])
  while (Date.now() < formDeadline && alive < N) {
    await sleep(2_000)
    alive = aliveOnN0(homes[0])
  }
  console.log(`formed: ${alive} of ${N} alive on n0; settling ${SETTLE_S} s`)
  await sleep(SETTLE_S * 1000)
  const others = agents.filter(a => a !== profiled)
  const before = others.map(a => cpuTicks(a.pid))
  const profiledBefore = cpuTicks(profiled.pid)
  const t0 = Date.now()
  if (EXECS > 0) {
    for (let i = 0; i < EXECS; i++) {
      const r = mesh(['--home', homes[0], 'exec', 'uptime', '--zone', 'web', '--timeout', '10s'], {
        env,
        check: false,
        timeout: 20_000,
      })
      if (r.status !== 0) console.log(`exec ${i + 1} exited ${r.status}: ${r.stderr.trim()}`)
      await sleep(1_000)
    }
    await sleep(Math.max(0, IDLE_S * 1000 - (Date.now() - t0)))
  } else await sleep(IDLE_S * 1000)
  const seconds = (Date.now() - t0) / 1000
  const othersPct = others.map((a, i) => (cpuTicks(a.pid) - before[i]) / seconds).sort((a, b) => a - b)
  const profiledPct = (cpuTicks(profiled.pid) - profiledBefore) / seconds
  const killedAt = Date.now()
  profiled.kill('SIGINT')
  const exitDeadline = Date.now() + 15_000
  while (profiled.exitCode === null && profiled.signalCode === null && Date.now() < exitDeadline)
    await sleep(20)
  const exitedAt = Date.now()
  const file = readdirSync(profDir).find(f => f.endsWith('.cpuprofile'))
  if (file === undefined) throw new Error(`no profile written in ${profDir}`)
  const profile = JSON.parse(readFileSync(join(profDir, file), 'utf8'))
  // The profile ends when the process exits: the idle window is the stretch before the SIGINT.
  const toUs = profile.endTime - (exitedAt - killedAt) * 1000
  // PROFILE_WHOLE=1: the whole life of the profiled agent (its start and joining the mesh included).
  const fromUs = WHOLE ? profile.startTime : toUs - seconds * 1000 * 1000
  const windowS = (toUs - fromUs) / 1e6
  const self = selfTimes(profile, fromUs, toUs)
  const busy = [...self].filter(([k]) => !k.startsWith('(idle)') && !k.startsWith('(program)'))
  const busyMs = busy.reduce((a, [, v]) => a + v, 0)
  console.log(
    `CPU over the idle window: profiled agent ${profiledPct.toFixed(2)}% of one core (with the profiler), ` +
      `the other ${others.length} median ${othersPct[Math.floor(othersPct.length / 2)].toFixed(2)}%`,
  )
  console.log(
    `profile ${join(profDir, file)}: ${busyMs.toFixed(0)} ms sampled busy in the ${windowS.toFixed(0)} s ` +
      `${WHOLE ? 'life of the agent' : 'idle window'} (${((100 * busyMs) / (windowS * 1000)).toFixed(2)}% of one core; idle and "program" left out)`,
  )
  const byModule = [...selfTimes(profile, fromUs, toUs, moduleKey)]
    .filter(([k]) => k !== '(idle)' && k !== '(program)')
    .sort((a, b) => b[1] - a[1])
  if (EXECS > 0) {
    console.log(
      `with ${EXECS} execs in the window: ${((profiledPct * seconds * 10) / EXECS).toFixed(1)} ms CPU of the ` +
        `profiled agent per exec (idle included), the others ${((othersPct[Math.floor(othersPct.length / 2)] * seconds * 10) / EXECS).toFixed(1)} ms median`,
    )
  }
  console.log('self time by module (package, src/ directory, node: internals, GC):')
  for (const [k, v] of byModule.slice(0, 20)) {
    console.log(`  ${v.toFixed(1).padStart(8)} ms  ${((100 * v) / busyMs).toFixed(1).padStart(5)}%  ${k}`)
  }
  const program = self.get('(program) ') ?? 0
  console.log(`  ("program", native time V8 cannot attribute: ${program.toFixed(0)} ms)`)
  console.log(`top ${TOP} functions by self time:`)
  for (const [k, v] of busy.sort((a, b) => b[1] - a[1]).slice(0, TOP)) {
    console.log(`  ${v.toFixed(1).padStart(8)} ms  ${((100 * v) / busyMs).toFixed(1).padStart(5)}%  ${k}`)
  }
}

onInterrupt(async () => {
  await stopAll()
  rmSync(root, { recursive: true, force: true })
})
try {
  await main()
} finally {
  await stopAll()
  rmSync(root, { recursive: true, force: true })
}
