// Shared pieces of the process benchmarks: which binary to run, running CLI commands, starting agents
// by PID, free loopback ports, and /proc readings. Every agent started here is tracked so `stopAll`
// can stop it by PID.
import { spawn, spawnSync } from 'node:child_process'
import { appendFileSync, existsSync, readFileSync } from 'node:fs'
import { createServer } from 'node:net'
import { join } from 'node:path'

/** dist/mesh (the single binary) when built, else dist/mesh.cjs; BENCH_BIN overrides. */
export const bin = process.env.BENCH_BIN ?? (existsSync('dist/mesh') ? 'dist/mesh' : 'dist/mesh.cjs')
const cmd = bin.endsWith('.cjs') ? [process.execPath, bin] : [join(process.cwd(), bin)]

/** Runs `mesh ARGS…` to completion; throws on a non-zero exit unless `check: false`. */
export function mesh(args, { env, check = true, timeout = 60_000 } = {}) {
  const r = spawnSync(cmd[0], [...cmd.slice(1), ...args], { encoding: 'utf8', env, timeout })
  if (check && r.status !== 0) throw new Error(`mesh ${args.join(' ')} → ${r.status}: ${r.stderr}`)
  return r
}

/** A free TCP port on 127.0.0.1 (agents keep their port across restarts, as real ones do). */
export function freePort() {
  return new Promise((resolve, reject) => {
    const server = createServer()
    server.once('error', reject)
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address()
      server.close(() => resolve(port))
    })
  })
}

export const agents = []

/** Starts `mesh agent` for `home`; resolves once it listens. Stderr lines go to `onLine` and `logFile`. */
export function startAgent(home, { env, onLine, logFile } = {}) {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd[0], [...cmd.slice(1), '--home', home, 'agent'], {
      env,
      stdio: ['ignore', 'pipe', 'pipe'],
    })
    agents.push(child)
    let out = ''
    let buf = ''
    const timer = setTimeout(() => reject(new Error(`agent ${home} did not start: ${out}`)), 60_000)
    child.stdout.on('data', d => {
      out += d
      if (out.includes('listening on')) {
        clearTimeout(timer)
        resolve(child)
      }
    })
    child.stderr.on('data', d => {
      if (logFile) appendFileSync(logFile, d)
      if (process.env.BENCH_VERBOSE) process.stderr.write(d)
      if (!onLine) return
      buf += d
      const lines = buf.split('\n')
      buf = lines.pop()
      for (const line of lines) onLine(line)
    })
    child.on('exit', code => {
      clearTimeout(timer)
      reject(new Error(`agent ${home} exited ${code}: ${out}`))
    })
  })
}

/** Stops every agent started here by PID: SIGTERM, then SIGKILL after a grace period. */
export async function stopAll() {
  for (const a of agents) if (a.exitCode === null) a.kill('SIGTERM')
  await sleep(1_500)
  for (const a of agents) if (a.exitCode === null) a.kill('SIGKILL')
}

export const sleep = ms => new Promise(r => setTimeout(r, ms))

/** Resident set size of a process, MB. */
export function rssMb(pid) {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))
  return m ? Number(m[1]) / 1024 : Number.NaN
}

/** User + system CPU time of a process, in clock ticks (1/100 s). */
export function cpuTicks(pid) {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ')
  return Number(fields[11]) + Number(fields[12])
}

export const median = xs => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]
export const quantile = (xs, q) =>
  [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor(q * xs.length))]

/** Creates N homes: the first with `mesh init`, the rest joined by tickets; zone(i) names each zone. */
export async function makeMesh(root, n, zone, env) {
  const homes = []
  for (let i = 0; i < n; i++) {
    const home = join(root, `n${i}`)
    const listen = `/ip4/127.0.0.1/tcp/${await freePort()}`
    if (i === 0) {
      mesh(['--home', home, 'init', '--name', 'n0', '--zone', zone(0), '--listen', listen], { env })
      await startAgent(home, { env })
    } else {
      const ticket = mesh(['--home', homes[0], 'ticket', 'create', `n${i}`, '--zone', zone(i)], {
        env,
      }).stdout.trim()
      mesh(['--home', home, 'join', '--ticket', ticket, '--listen', listen], { env })
    }
    homes.push(home)
  }
  return homes
}
