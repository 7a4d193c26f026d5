// Shared pieces of the process benchmarks: which binary to run, running CLI commands, starting agents
// by PID, free loopback ports, /proc readings, and (optionally) a private network namespace whose
// loopback carries only the benchmark's traffic, so its packet counters count nothing else. Every
// process started here is tracked so `stopAll` can stop it by PID.
import { spawn, spawnSync } from 'node:child_process'
import { appendFileSync, existsSync, readdirSync, readFileSync } from 'node:fs'
import { createConnection, createServer } from 'node:net'
import { availableParallelism } from 'node:os'
import { join } from 'node:path'

/** dist/mesh (the single binary) when built, else dist/mesh.cjs; BENCH_BIN overrides. */
export const bin = process.env.BENCH_BIN ?? (existsSync('dist/mesh') ? 'dist/mesh' : 'dist/mesh.cjs')
const binAbs = bin.startsWith('/') ? bin : join(process.cwd(), bin)
const cmd = bin.endsWith('.cjs') ? [process.execPath, bin] : [binAbs]

/** Prefix put before every command while a namespace is in use (see {@link useNetns}). */
let prefix = []
/** Runs `argv` inside the namespace in use, if any: `nsenter --net=… -- argv` (nsenter execs, same PID). */
export const wrap = argv => [...prefix, ...argv]
/** The argv of `mesh ARGS…` (inside the namespace in use). */
export const meshArgv = args => wrap([...cmd, ...args])

/** Runs `mesh ARGS…` to completion; throws on a non-zero exit unless `check: false`. */
export function mesh(args, { env, check = true, timeout = 60_000 } = {}) {
  const [file, ...rest] = meshArgv(args)
  const r = spawnSync(file, rest, { encoding: 'utf8', env, timeout })
  if (check && r.status !== 0) throw new Error(`mesh ${args.join(' ')} → ${r.status}: ${r.stderr}`)
  return r
}

/** Ports handed out in this run: the kernel may give a closed ephemeral port out again. */
const handedOut = new Set()

/**
 * A free TCP port on 127.0.0.1 (agents keep their port across restarts, as real ones do), never one
 * handed out before in this run: at N=50 two agents drawing the same port made one exit at start
 * (EADDRINUSE), which read as "the mesh did not form".
 */
export async function freePort() {
  for (let attempt = 0; attempt < 100; attempt++) {
    const port = await new Promise((resolve, reject) => {
      const server = createServer()
      server.once('error', reject)
      server.listen(0, '127.0.0.1', () => {
        const { port } = server.address()
        server.close(() => resolve(port))
      })
    })
    if (!handedOut.has(port)) {
      handedOut.add(port)
      return port
    }
  }
  throw new Error('no fresh free port after 100 tries')
}

export const agents = []

/** Starts `mesh agent` for `home`; resolves once it listens. Stderr lines go to `onLine` and `logFile`. */
export function startAgent(home, { env, onLine, logFile } = {}) {
  return new Promise((resolve, reject) => {
    const [file, ...rest] = meshArgv(['--home', home, 'agent'])
    const child = spawn(file, rest, {
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
    let errTail = ''
    child.stderr.on('data', d => {
      errTail = (errTail + d).slice(-600)
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
      reject(
        new Error(`agent ${home} exited ${code}: ${out}${errTail.trim().split('\n').slice(-3).join(' | ')}`),
      )
    })
  })
}

/** Other processes to stop by PID at the end (Serf agents, namespace holders): see {@link track}. */
export const others = []
/** Adds `child` to the processes {@link stopAll} stops; returns it. */
export function track(child) {
  others.push(child)
  return child
}

const running = c => c.exitCode === null && c.signalCode === null

/**
 * Stops every agent and tracked process started here by PID: SIGTERM, then SIGKILL for those still
 * running after `graceMs`; namespace holders last. Forgets them afterwards.
 */
export async function stopAll({ graceMs = 5_000 } = {}) {
  const all = [...agents, ...others.filter(c => !c.netnsHolder), ...others.filter(c => c.netnsHolder)]
  for (const c of all) if (running(c)) c.kill('SIGTERM')
  const deadline = Date.now() + graceMs
  while (all.some(running) && Date.now() < deadline) await sleep(50)
  for (const c of all) if (running(c)) c.kill('SIGKILL')
  const killDeadline = Date.now() + 2_000
  while (all.some(running) && Date.now() < killDeadline) await sleep(20)
  agents.length = 0
  others.length = 0
}

/** On SIGINT/SIGTERM: run `cleanup` (bounded by its own waits), then exit 130. A second signal exits at once. */
export function onInterrupt(cleanup) {
  let stopping = false
  const handler = async signal => {
    if (stopping) process.exit(130)
    stopping = true
    console.error(`\n${signal}: stopping every process started by the bench (by PID)`)
    try {
      await cleanup()
    } finally {
      process.exit(130)
    }
  }
  process.on('SIGINT', handler)
  process.on('SIGTERM', handler)
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

/** Sum of `xs`. */
export const sum = xs => xs.reduce((a, b) => a + b, 0)

/**
 * Runs `argv` (already wrapped) and times it from spawn: each stdout line is handed to
 * `onLine(line, msSinceSpawn)`; when it returns true the run counts as complete and the child is killed by
 * PID (for CLIs that otherwise wait out their timeout). Resolves `{ code, signal, ms, doneMs, lines }`:
 * `ms` at exit, `doneMs` when `onLine` said done (else at exit). `timeoutMs` kills it (by PID) too.
 */
export function timedRun(argv, { env, onLine, timeoutMs = 30_000 } = {}) {
  return new Promise(resolve => {
    const t0 = process.hrtime.bigint()
    const since = () => Number(process.hrtime.bigint() - t0) / 1e6
    const child = spawn(argv[0], argv.slice(1), { env, stdio: ['ignore', 'pipe', 'pipe'] })
    others.push(child)
    const lines = []
    let buf = ''
    let doneMs
    let timedOut = false
    const timer = setTimeout(() => {
      timedOut = true
      child.kill('SIGKILL')
    }, timeoutMs)
    child.stdout.setEncoding('utf8')
    child.stdout.on('data', d => {
      const at = since()
      buf += d
      const parts = buf.split('\n')
      buf = parts.pop()
      for (const line of parts) {
        lines.push({ at, line })
        if (doneMs === undefined && onLine?.(line, at) === true) {
          doneMs = at
          child.kill('SIGKILL')
        }
      }
    })
    let stderr = ''
    child.stderr.setEncoding('utf8')
    child.stderr.on('data', d => {
      if (stderr.length < 4_000) stderr += d
    })
    child.on('close', (code, signal) => {
      clearTimeout(timer)
      const ms = since()
      if (buf !== '') lines.push({ at: ms, line: buf })
      const at = others.indexOf(child)
      if (at >= 0) others.splice(at, 1)
      resolve({
        code,
        signal,
        ms,
        doneMs: doneMs ?? ms,
        complete: doneMs !== undefined,
        timedOut,
        lines,
        stderr,
      })
    })
  })
}

/** Runs `fn` over `items` with at most `limit` at once; resolves the results in order. */
export async function pool(items, limit, fn) {
  const results = new Array(items.length)
  let next = 0
  const worker = async () => {
    while (next < items.length) {
      const i = next++
      results[i] = await fn(items[i], i)
    }
  }
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker))
  return results
}

/** UDP datagrams and TCP segments in and out so far in the network namespace of `pid` (/proc/PID/net/snmp). */
export function netCounters(pid = 'self') {
  const text = readFileSync(`/proc/${pid}/net/snmp`, 'utf8').split('\n')
  const table = name => {
    const rows = text.filter(l => l.startsWith(`${name}:`))
    const keys = rows[0].split(/\s+/).slice(1)
    const values = rows[1].split(/\s+/).slice(1).map(Number)
    return Object.fromEntries(keys.map((k, i) => [k, values[i]]))
  }
  const udp = table('Udp')
  const tcp = table('Tcp')
  return { udpIn: udp.InDatagrams, udpOut: udp.OutDatagrams, tcpIn: tcp.InSegs, tcpOut: tcp.OutSegs }
}

/**
 * A fresh network namespace with only `lo` up, held by a `sleep` process (tracked; stopped last by
 * `stopAll`). Returns `{ pid, prefix, counters() }`, or undefined when namespaces are unavailable
 * (not root, or BENCH_NETNS=0); then everything runs on the host's loopback.
 */
export async function startNetns() {
  if (process.env.BENCH_NETNS === '0') return undefined
  const probe = spawnSync('unshare', ['--net', 'true'], { timeout: 5_000 })
  if (probe.status !== 0) return undefined
  const holder = spawn(
    'unshare',
    ['--net', 'sh', '-c', 'ip link set lo up && echo ready && exec sleep 86400'],
    {
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  )
  holder.netnsHolder = true
  others.push(holder)
  const ok = await new Promise(resolve => {
    const timer = setTimeout(() => resolve(false), 10_000)
    holder.stdout.on('data', d => {
      if (String(d).includes('ready')) {
        clearTimeout(timer)
        resolve(true)
      }
    })
    holder.on('exit', () => resolve(false))
  })
  if (!ok) {
    if (running(holder)) holder.kill('SIGKILL')
    return undefined
  }
  const pid = holder.pid
  return {
    pid,
    prefix: ['nsenter', `--net=/proc/${pid}/ns/net`, '--'],
    counters: () => netCounters(pid),
  }
}

/** From now on, `mesh`, `startAgent` and `wrap` run their commands inside `ns` (undefined: on the host). */
export function useNetns(ns) {
  prefix = ns?.prefix ?? []
}

/** Host CPU time so far, clock ticks: `{ busy, total }` over all cores (/proc/stat), and the core count. */
export function hostCpu() {
  const f = readFileSync('/proc/stat', 'utf8').split('\n')[0].split(/\s+/).slice(1).map(Number)
  const total = sum(f.slice(0, 8))
  return { busy: total - f[3] - f[4], total, cores: availableParallelism() }
}

/** Share of the host's CPU (all cores, every process) busy between two {@link hostCpu} readings, %. */
export const hostBusyPct = (a, b) => (100 * (b.busy - a.busy)) / (b.total - a.total)

/** The 1-minute load average. */
export const loadAvg = () => Number(readFileSync('/proc/loadavg', 'utf8').split(' ')[0])

/** Open file descriptors of a process (entries of /proc/PID/fd). */
export function fdCount(pid) {
  return readdirSync(`/proc/${pid}/fd`).length
}

/**
 * Like {@link makeMesh}, with hooks: `roles(i)` lists the roles of node i's ticket (`--role` each;
 * default none, i.e. the ticket's default `agent`), `prepare(home, i)` runs after node i's home is made
 * (init or join) and before n0's agent starts (e.g. to append to its config.toml), and `logFile(i)`
 * names the file n0's agent logs to. n0's agent is left running, as by makeMesh; the others are not
 * started.
 */
export async function makeMeshWith(root, n, { zone, roles = () => [], prepare = () => {}, logFile, env }) {
  const homes = []
  for (let i = 0; i < n; i++) {
    const home = join(root, `n${i}`)
    const listen = `/ip4/127.0.0.1/tcp/${await freePort()}`
    if (i === 0) {
      mesh(['--home', home, 'init', '--name', 'n0', '--zone', zone(0), '--listen', listen], { env })
      await prepare(home, 0)
      await startAgent(home, { env, logFile: logFile?.(0) })
    } else {
      const roleFlags = roles(i).flatMap(r => ['--role', r])
      const create = ['--home', homes[0], 'ticket', 'create', `n${i}`, '--zone', zone(i), ...roleFlags]
      const ticket = mesh(create, { env }).stdout.trim()
      mesh(['--home', home, 'join', '--ticket', ticket, '--listen', listen], { env })
      await prepare(home, i)
    }
    homes.push(home)
  }
  return homes
}

/**
 * A connection to the control socket of the agent in `home` (`<home>/agent.sock`: newline-delimited
 * JSON frames, src/control/protocol.ts), for benches that call an agent faster than one CLI process per
 * call allows. The socket is a file path, so it works from outside the agents' network namespace.
 * `call(method, params, { onEvent, timeoutMs })` never rejects: it resolves `{ result }` or
 * `{ error: { code, message } }`; after `timeoutMs` (default none) it sends a cancel frame and resolves
 * `{ error: { code: 'bench-timeout' } }`. `inFlight()` counts calls without a final frame, those given
 * up included until the agent's final frame for them arrives (it holds them until it has read the
 * cancel); the agent allows 16 per connection (requestsPerClientMax), so open several connections for
 * more. `close()` resolves every pending call with `{ error: { code: 'connection-closed' } }`.
 */
export function controlClient(home) {
  return new Promise((resolve, reject) => {
    const socket = createConnection(join(home, 'agent.sock'))
    const pending = new Map()
    /** Ids given up on (cancel sent) whose final frame has not come yet: the agent still counts them. */
    const cancelled = new Set()
    let nextId = 1
    let buf = ''
    const finish = (id, value) => {
      const call = pending.get(id)
      if (call === undefined) return
      pending.delete(id)
      clearTimeout(call.timer)
      call.resolve(value)
    }
    const failAll = code => {
      for (const id of [...pending.keys()]) finish(id, { error: { code, message: code } })
    }
    socket.setEncoding('utf8')
    socket.on('data', d => {
      buf += d
      const lines = buf.split('\n')
      buf = lines.pop()
      for (const line of lines) {
        if (line === '') continue
        let frame
        try {
          frame = JSON.parse(line)
        } catch {
          continue
        }
        if (frame.id === null && frame.error) {
          failAll(frame.error.code)
          continue
        }
        if (typeof frame.event !== 'string') cancelled.delete(frame.id)
        const call = pending.get(frame.id)
        if (call === undefined) continue
        if (typeof frame.event === 'string') call.onEvent?.(frame.event, frame.data)
        else if ('result' in frame) finish(frame.id, { result: frame.result })
        else finish(frame.id, { error: frame.error ?? { code: 'protocol', message: line.slice(0, 200) } })
      }
    })
    socket.on('close', () => {
      cancelled.clear()
      failAll('connection-closed')
    })
    socket.once('error', err => {
      reject(err)
      failAll('connection-closed')
    })
    socket.once('connect', () => {
      socket.on('error', () => undefined) // 'close' follows and settles the pending calls
      resolve({
        call(method, params, { onEvent, timeoutMs } = {}) {
          const id = nextId++
          return new Promise(done => {
            const timer =
              timeoutMs === undefined
                ? undefined
                : setTimeout(() => {
                    if (!socket.destroyed) socket.write(`${JSON.stringify({ id, cancel: true })}\n`)
                    cancelled.add(id)
                    finish(id, {
                      error: { code: 'bench-timeout', message: `no final frame in ${timeoutMs} ms` },
                    })
                  }, timeoutMs)
            pending.set(id, { resolve: done, onEvent, timer })
            if (socket.destroyed) finish(id, { error: { code: 'connection-closed', message: 'closed' } })
            else socket.write(`${JSON.stringify({ id, method, params: params ?? null })}\n`)
          })
        },
        inFlight: () => pending.size + cancelled.size,
        close() {
          failAll('connection-closed')
          socket.destroy()
        },
      })
    })
  })
}

/**
 * Scheduler times of a process's main thread so far (/proc/PID/schedstat): `runNs` on a CPU and
 * `waitNs` runnable but waiting for one. On a shared host the second says how much a process was
 * starved: wanted to run, could not.
 */
export function schedstat(pid) {
  const [runNs, waitNs] = readFileSync(`/proc/${pid}/schedstat`, 'utf8').trim().split(/\s+/).map(Number)
  return { runNs, waitNs }
}
