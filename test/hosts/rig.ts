/**
 * The hosts rig: real hosts on one machine (issue 10). Each mesh node gets a network namespace of its
 * own with one veth into a bridge namespace and one address from 10.213.0.0/24 (the rig's range, used
 * only inside namespaces the rig creates), and runs `mesh agent` from a copy of the built binary, so
 * every agent has its own address: no loopback shortcuts, no shared-IP effects in gossipsub. Agents are
 * set up through the CLI as users do (`mesh init`, `mesh ticket create`, `mesh join --ticket`, the
 * home's config.toml), each command run inside its node's namespace with `ip netns exec`.
 *
 * Faults need no `netem` (this kernel has none): a partition moves bridge ports onto a second bridge,
 * isolation takes a port down, a crash is kill -9 by PID, a restart starts the same home again.
 *
 * Everything created carries a per-run prefix `mh<pid>-<n>-` (namespaces; links live inside them), so
 * parallel runs never collide. Teardown (on success, failure, and SIGINT/SIGTERM/SIGHUP of the test
 * process) stops the processes the rig started by PID, then any process left inside its namespaces
 * (by PID, from `ip netns pids`), then deletes its namespaces by name, which removes their links.
 * Agents also carry a parent-death signal (setpriv), so a test process killed outright takes them with
 * it; the namespaces such a run leaves behind are swept by the next rig: only names in this rig's own
 * format whose PID is no longer running.
 */
import { type ChildProcess, spawn, spawnSync } from 'node:child_process'
import {
  closeSync,
  copyFileSync,
  existsSync,
  mkdirSync,
  openSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from 'node:fs'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import { parse as parseToml, stringify as stringifyToml } from 'smol-toml'

/** The first three octets of the rig's addresses: node i (from 1) is 10.213.0.i/24. */
export const RIG_SUBNET = '10.213.0'
/** The TCP port every agent listens on (each has its own address, so they can share it). */
export const AGENT_PORT = 7600
/** Names the rig creates: `mh<pid>-<n>-<what>`; the sweep matches exactly this. */
const NAME_FORMAT = /^mh(\d+)-(\d+)-[a-z0-9]+$/
/** Longest wait for one CLI command. */
const COMMAND_TIMEOUT_MS = 30_000
/** Longest wait for an agent to say it listens. */
const AGENT_START_TIMEOUT_MS = 45_000
/** How long a stopped agent gets after SIGTERM before SIGKILL. */
const STOP_GRACE_MS = 8_000

const repo = resolve(import.meta.dirname, '../..')

/** Whether this machine can run the rig; `reason` says why not (printed loudly by each test file). */
export type RigSupport = { readonly ok: true } | { readonly ok: false; readonly reason: string }

let supportCache: RigSupport | undefined

/** Checks for Linux, root, `ip` and working network namespaces (by creating and deleting a probe). */
export function rigSupport(): RigSupport {
  supportCache ??= probeSupport()
  return supportCache
}

function probeSupport(): RigSupport {
  if (process.platform !== 'linux') return { ok: false, reason: `needs Linux (this is ${process.platform})` }
  if (process.getuid?.() !== 0) return { ok: false, reason: 'needs root (network namespaces)' }
  const ip = spawnSync('ip', ['-V'], { encoding: 'utf8', timeout: 5_000 })
  if (ip.error !== undefined || ip.status !== 0)
    return { ok: false, reason: "needs the 'ip' command (iproute2)" }
  const probe = `mh${process.pid}-0-probe`
  const add = spawnSync('ip', ['netns', 'add', probe], { encoding: 'utf8', timeout: 10_000 })
  if (add.status !== 0) {
    return {
      ok: false,
      reason: `'ip netns add' failed: ${(add.stderr ?? '').trim() || `exit ${add.status}`}`,
    }
  }
  const veth = spawnSync(
    'ip',
    ['-n', probe, 'link', 'add', 'name', 'va', 'type', 'veth', 'peer', 'name', 'vb'],
    {
      encoding: 'utf8',
      timeout: 10_000,
    },
  )
  const bridge = spawnSync('ip', ['-n', probe, 'link', 'add', 'name', 'br0', 'type', 'bridge'], {
    encoding: 'utf8',
    timeout: 10_000,
  })
  spawnSync('ip', ['netns', 'del', probe], { timeout: 10_000 })
  if (veth.status !== 0) return { ok: false, reason: `cannot create veth links: ${veth.stderr.trim()}` }
  if (bridge.status !== 0) return { ok: false, reason: `cannot create a bridge: ${bridge.stderr.trim()}` }
  return { ok: true }
}

/** Prints the one loud line a skipped file shows; call at module level of each test file. */
export function warnIfUnsupported(file: string): void {
  const support = rigSupport()
  if (!support.ok) {
    console.warn(`\n*** ${file}: SKIPPED, every test: the hosts rig ${support.reason} ***\n`)
  }
}

/** The command that runs the built CLI: MESH_HOSTS_BIN, else dist/mesh (the binary), else dist/mesh.cjs. */
function builtCli(): { files: string[]; run: (copy: string) => string[] } {
  const chosen = process.env.MESH_HOSTS_BIN
  if (chosen !== undefined && chosen !== '') {
    if (chosen.endsWith('.cjs')) return nodeBundle(resolve(chosen, '..'))
    return { files: [resolve(chosen)], run: dir => [join(dir, 'mesh')] }
  }
  if (existsSync(join(repo, 'dist/mesh')))
    return { files: [join(repo, 'dist/mesh')], run: dir => [join(dir, 'mesh')] }
  if (existsSync(join(repo, 'dist/mesh.cjs'))) return nodeBundle(join(repo, 'dist'))
  throw new Error('neither dist/mesh nor dist/mesh.cjs exists: run `npm run build:binary` first')
}

function nodeBundle(dir: string) {
  return {
    files: ['mesh.cjs', 'mesh-main.cjs', 'mesh-node.cjs'].map(f => join(dir, f)),
    run: (copy: string) => [process.execPath, join(copy, 'mesh.cjs')],
  }
}

/** The result of one CLI command. */
export interface CommandResult {
  readonly status: number | null
  readonly stdout: string
  readonly stderr: string
  /** Wall clock at start and end, ms. */
  readonly startedAtMs: number
  readonly endedAtMs: number
}

/** One node of the rig: its namespace, address, home, log and (while running) agent. */
export interface RigNode {
  readonly name: string
  /** 1-based; the address is `10.213.0.<index>`. */
  readonly index: number
  readonly netns: string
  /** The node's port on the bridge namespace's bridges. */
  readonly port: string
  readonly address: string
  readonly listen: string
  readonly home: string
  /** The agent's stderr (pino JSON lines), appended across restarts. */
  readonly logFile: string
  /** The running agent, if any. */
  agent: ChildProcess | undefined
  /** PIDs of every agent this node has run, in order. */
  readonly pids: number[]
}

/** Options of {@link Rig.startAgent}. */
export interface StartOptions {
  /** Extra environment for the agent (MESH_* variables). */
  readonly env?: Readonly<Record<string, string>>
}

/** The rig: create with {@link createRig}, always {@link Rig.teardown} (also done on process signals). */
export interface Rig {
  readonly prefix: string
  /** A temporary directory holding the homes, logs and the copy of the CLI. */
  readonly root: string
  readonly bridgeNetns: string
  readonly nodes: ReadonlyMap<string, RigNode>
  node(name: string): RigNode
  /** Creates the namespace, link and address of a new node (no home yet). */
  addNode(name: string): Promise<RigNode>
  /** Runs `mesh --home HOME ARGS…` inside the node's namespace (bounded; killed by PID on timeout). */
  mesh(name: string, args: readonly string[], options?: { timeoutMs?: number }): Promise<CommandResult>
  /** `mesh … --json` parsed; throws with the command's stderr when it fails. */
  meshJson<T = unknown>(name: string, args: readonly string[]): Promise<T>
  /** Starts `mesh agent` for the node's home; resolves once it listens. */
  startAgent(name: string, options?: StartOptions): Promise<number>
  /** Sends `signal` to the running agent by PID and waits (bounded) for it to exit. */
  killAgent(name: string, signal?: NodeJS.Signals): Promise<void>
  /** Stops the agent gracefully (SIGTERM, then SIGKILL after a grace period). */
  stopAgent(name: string): Promise<void>
  isRunning(name: string): boolean
  /** Moves the ports of `names` onto the second bridge: they reach each other, not the rest. */
  partition(names: readonly string[]): Promise<void>
  /** Takes the node's port down: it reaches nobody. */
  isolate(name: string): Promise<void>
  /** Every port back on the main bridge, up. */
  heal(): Promise<void>
  /** The agent's log lines so far (parsed JSON; unparsable lines skipped). */
  logLines(name: string): LogLine[]
  /** The node's established TCP connections to rig addresses, with their retransmission state (`ss`). */
  tcpConnections(name: string): TcpConnection[]
  /** Edits the node's config.toml (parsed, changed by `edit`, written back) as a user would. */
  editConfig(name: string, edit: (config: Record<string, unknown>) => void): void
  /** Keeps the root directory (logs, homes) after teardown, for a failed scenario. */
  keep(): void
  teardown(): Promise<void>
}

/** One established TCP connection as `ss -tno` shows it. */
export interface TcpConnection {
  readonly node: string
  readonly local: string
  /** The peer's address (without the port). */
  readonly remoteAddress: string
  /** Bytes sent and not yet acknowledged. */
  readonly sendQueueBytes: number
  /** Retransmissions of the oldest unacknowledged segment so far (0 when none is pending). */
  readonly retransmits: number
  /** Time to the next retransmission, ms, when one is pending. */
  readonly retransmitInMs: number | undefined
}

/** Parses `ss -tnoH state established` lines: `0 3044 10.213.0.3:37522 10.213.0.1:7600 timer:(on,12sec,6)`. */
export function parseSs(node: string, text: string): TcpConnection[] {
  const connections: TcpConnection[] = []
  for (const line of text.split('\n')) {
    const m = /^\s*(\d+)\s+(\d+)\s+(\S+)\s+(\S+?):\d+(?:\s+(.*))?$/.exec(line)
    if (m === null || !m[4]!.startsWith(`${RIG_SUBNET}.`)) continue
    const timer = /timer:\((\w+),([^,]+),(\d+)\)/.exec(m[5] ?? '')
    const on = timer !== null && timer[1] === 'on'
    connections.push({
      node,
      local: m[3]!,
      remoteAddress: m[4]!,
      sendQueueBytes: Number(m[2]),
      retransmits: on ? Number(timer[3]) : 0,
      retransmitInMs: on ? ssDurationMs(timer[2]!) : undefined,
    })
  }
  return connections
}

/** An `ss` timer value in ms: `240ms`, `12sec`, `9.616ms` (9 s 616 ms), `1min`, `2min5sec`. */
export function ssDurationMs(text: string): number | undefined {
  const m = /^(?:(\d+)min)?(?:(\d+)(?:sec|\.))?(?:(\d+)ms)?$/.exec(text)
  if (m === null) return undefined
  return Number(m[1] ?? 0) * 60_000 + Number(m[2] ?? 0) * 1_000 + Number(m[3] ?? 0)
}

/** One pino line of an agent log. */
export interface LogLine {
  readonly time: number
  readonly level: number
  readonly msg: string
  readonly component?: string
  readonly [key: string]: unknown
}

let rigCounter = 0
const liveRigs = new Set<{ teardownSync(): void }>()
let handlersInstalled = false

/** On a signal or exit, tears down every live rig synchronously (by PID and by name). */
function installHandlers(): void {
  if (handlersInstalled) return
  handlersInstalled = true
  const teardownAll = () => {
    for (const rig of [...liveRigs]) rig.teardownSync()
  }
  process.once('exit', teardownAll)
  for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    process.once(signal, () => {
      teardownAll()
      process.exit(128 + (signal === 'SIGINT' ? 2 : signal === 'SIGTERM' ? 15 : 1))
    })
  }
}

/** Runs `ip ARGS…` to completion; throws with its stderr on failure. */
function ip(args: readonly string[]): void {
  const r = spawnSync('ip', args, { encoding: 'utf8', timeout: 10_000 })
  if (r.status !== 0) throw new Error(`ip ${args.join(' ')} → ${r.status}: ${(r.stderr ?? '').trim()}`)
}

/** PIDs of the processes inside namespace `netns`, or none. */
function netnsPids(netns: string): number[] {
  const r = spawnSync('ip', ['netns', 'pids', netns], { encoding: 'utf8', timeout: 10_000 })
  if (r.status !== 0) return []
  return r.stdout
    .split('\n')
    .map(s => Number.parseInt(s, 10))
    .filter(n => Number.isInteger(n) && n > 0)
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0)
    return true
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM'
  }
}

function killPid(pid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(pid, signal)
  } catch {
    // already gone
  }
}

/** Deletes namespaces (and their leftover processes, by PID) of runs in the rig's format whose PID is dead. */
export function sweepLeftovers(): string[] {
  const listed = spawnSync('ip', ['netns', 'list'], { encoding: 'utf8', timeout: 10_000 })
  if (listed.status !== 0) return []
  const swept: string[] = []
  for (const line of listed.stdout.split('\n')) {
    const name = line.split(' ')[0] ?? ''
    const match = NAME_FORMAT.exec(name)
    if (match === null) continue
    const pid = Number(match[1])
    if (pid === process.pid || alive(pid)) continue
    for (const p of netnsPids(name)) killPid(p, 'SIGKILL')
    spawnSync('ip', ['netns', 'del', name], { timeout: 10_000 })
    swept.push(name)
  }
  // Directories of dead runs, except those kept for a failed scenario (marked KEPT, their CLI copy gone).
  for (const dir of readdirSync(tmpdir())) {
    const match = /^mesh-hosts-mh(\d+)-\d+-$/.exec(dir)
    if (match === null || alive(Number(match[1])) || existsSync(join(tmpdir(), dir, 'KEPT'))) continue
    rmSync(join(tmpdir(), dir), { recursive: true, force: true })
  }
  return swept
}

/** The environment of every mesh process: the base of ours without MESH_* (the config refuses unknown ones). */
function baseEnv(): Record<string, string> {
  const env: Record<string, string> = {}
  for (const key of ['PATH', 'HOME', 'LANG', 'TZ']) {
    const value = process.env[key]
    if (value !== undefined) env[key] = value
  }
  return {
    ...env,
    NO_COLOR: '1',
    MESH_PROFILE: 'lan',
    MESH_LOG_FORMAT: 'json',
    // Debug: lease renewals ('authority renewed', with the wall-clock end of each acting interval).
    MESH_LOG_LEVEL: 'debug',
  }
}

/** Creates a rig with its bridge namespace (bridges br0 and br1, no nodes yet). */
export async function createRig(): Promise<Rig> {
  const support = rigSupport()
  if (!support.ok) throw new Error(`the hosts rig ${support.reason}`)
  installHandlers()
  sweepLeftovers()
  rigCounter += 1
  const prefix = `mh${process.pid}-${rigCounter}-`
  const root = join(tmpdir(), `mesh-hosts-${prefix}`)
  rmSync(root, { recursive: true, force: true })
  mkdirSync(join(root, 'bin'), { recursive: true })
  // A copy, so a rebuild of dist/ during the run changes nothing under the agents.
  const cli = builtCli()
  for (const file of cli.files) copyFileSync(file, join(root, 'bin', file.split('/').pop()!))
  const command = cli.run(join(root, 'bin'))
  const pdeath = spawnSync('setpriv', ['--pdeathsig', 'KILL', 'true'], { timeout: 5_000 }).status === 0
  const env = baseEnv()

  const bridgeNetns = `${prefix}br`
  const namespaces: string[] = []
  const nodes = new Map<string, RigNode>()
  const children = new Set<ChildProcess>()
  /** MESH_HOSTS_KEEP=1 keeps every run's logs and homes, not only a failed scenario's. */
  let kept = process.env.MESH_HOSTS_KEEP === '1'
  let torn = false

  const addNetns = (name: string) => {
    // Recorded before it exists: a half-made namespace is deleted by name too.
    namespaces.push(name)
    ip(['netns', 'add', name])
    ip(['-n', name, 'link', 'set', 'lo', 'up'])
  }
  // Torn down on a signal or exit from here on, and at once if the bridge cannot be built.
  const handle = { teardownSync }
  liveRigs.add(handle)
  try {
    addNetns(bridgeNetns)
    for (const br of ['br0', 'br1']) {
      // No multicast snooping: mDNS floods the bridge like a plain switch without a querier.
      ip(['-n', bridgeNetns, 'link', 'add', 'name', br, 'type', 'bridge', 'mcast_snooping', '0'])
      ip(['-n', bridgeNetns, 'link', 'set', br, 'up'])
    }
  } catch (err) {
    teardownSync()
    throw err
  }

  const node = (name: string): RigNode => {
    const n = nodes.get(name)
    if (n === undefined) throw new Error(`no node ${name} in the rig`)
    return n
  }

  const spawnIn = (n: RigNode, args: readonly string[], stdio: Parameters<typeof spawn>[2]['stdio']) => {
    const argv = ['netns', 'exec', n.netns, ...command, '--home', n.home, ...args]
    const child = spawn('ip', argv, { env, cwd: root, stdio })
    children.add(child)
    child.once('exit', () => children.delete(child))
    return child
  }

  const mesh: Rig['mesh'] = (name, args, options = {}) => {
    const n = node(name)
    const startedAtMs = Date.now()
    return new Promise(done => {
      const child = spawnIn(n, args, ['ignore', 'pipe', 'pipe'])
      let stdout = ''
      let stderr = ''
      child.stdout?.on('data', d => (stdout += d))
      child.stderr?.on('data', d => (stderr += d))
      const timer = setTimeout(() => {
        stderr += `\n[rig: killed after ${options.timeoutMs ?? COMMAND_TIMEOUT_MS} ms]`
        if (child.pid !== undefined) killPid(child.pid, 'SIGKILL')
      }, options.timeoutMs ?? COMMAND_TIMEOUT_MS)
      child.once('error', err => {
        stderr += String(err)
      })
      child.once('close', status => {
        clearTimeout(timer)
        done({ status, stdout, stderr, startedAtMs, endedAtMs: Date.now() })
      })
    })
  }

  const rig: Rig = {
    prefix,
    root,
    bridgeNetns,
    nodes,
    node,

    async addNode(name) {
      if (nodes.has(name)) throw new Error(`node ${name} exists`)
      const index = nodes.size + 1
      if (index > 250) throw new Error('the rig has room for 250 nodes')
      const netns = `${prefix}${name}`
      const port = `p${index}`
      addNetns(netns)
      // Created inside the bridge namespace, the node's end moved straight into its own: the host's
      // namespace never sees either link.
      ip([
        '-n',
        bridgeNetns,
        'link',
        'add',
        'name',
        port,
        'type',
        'veth',
        'peer',
        'name',
        'eth0',
        'netns',
        netns,
      ])
      ip(['-n', bridgeNetns, 'link', 'set', port, 'master', 'br0', 'up'])
      const address = `${RIG_SUBNET}.${index}`
      ip(['-n', netns, 'addr', 'add', `${address}/24`, 'dev', 'eth0'])
      ip(['-n', netns, 'link', 'set', 'eth0', 'up'])
      // Multicast (mDNS) leaves through eth0; nothing else is routed anywhere.
      ip(['-n', netns, 'route', 'add', '224.0.0.0/4', 'dev', 'eth0'])
      const n: RigNode = {
        name,
        index,
        netns,
        port,
        address,
        listen: `/ip4/${address}/tcp/${AGENT_PORT}`,
        home: join(root, name),
        logFile: join(root, `${name}.log`),
        agent: undefined,
        pids: [],
      }
      nodes.set(name, n)
      return n
    },

    mesh,

    async meshJson<T>(name: string, args: readonly string[]): Promise<T> {
      const r = await mesh(name, [...args, '--json'])
      if (r.status !== 0)
        throw new Error(`mesh ${args.join(' ')} on ${name} → ${r.status}: ${r.stderr.trim()}`)
      return JSON.parse(r.stdout) as T
    },

    startAgent(name, options = {}) {
      const n = node(name)
      if (n.agent !== undefined) throw new Error(`${name} already runs an agent`)
      const log = openSync(n.logFile, 'a')
      const argv = pdeath
        ? ['netns', 'exec', n.netns, 'setpriv', '--pdeathsig', 'KILL', '--', ...command]
        : ['netns', 'exec', n.netns, ...command]
      // `ip netns exec` and setpriv exec the agent: the child's PID is the agent's.
      const child = spawn('ip', [...argv, '--home', n.home, 'agent'], {
        env: { ...env, ...options.env },
        cwd: root,
        stdio: ['ignore', 'pipe', log],
      })
      closeSync(log)
      children.add(child)
      n.agent = child
      if (child.pid !== undefined) n.pids.push(child.pid)
      child.once('exit', () => {
        children.delete(child)
        if (n.agent === child) n.agent = undefined
      })
      return new Promise((done, fail) => {
        let out = ''
        const timer = setTimeout(() => {
          fail(new Error(`agent ${name} did not start within ${AGENT_START_TIMEOUT_MS} ms: ${out}`))
        }, AGENT_START_TIMEOUT_MS)
        child.stdout?.on('data', d => {
          out += d
          if (out.includes('listening on')) {
            clearTimeout(timer)
            done(child.pid!)
          }
        })
        child.once('exit', (code, signal) => {
          clearTimeout(timer)
          const tail = readFileSync(n.logFile, 'utf8').trim().split('\n').slice(-3).join(' | ')
          fail(new Error(`agent ${name} exited (${code ?? signal}) before listening: ${out} ${tail}`))
        })
      })
    },

    async killAgent(name, signal = 'SIGKILL') {
      const child = node(name).agent
      if (child?.pid === undefined) throw new Error(`${name} runs no agent`)
      const exited = new Promise<void>(r => child.once('exit', () => r()))
      killPid(child.pid, signal)
      await within(exited, STOP_GRACE_MS + 2_000, `agent ${name} to exit after ${signal}`)
    },

    async stopAgent(name) {
      const child = node(name).agent
      if (child?.pid === undefined) return
      const exited = new Promise<void>(r => child.once('exit', () => r()))
      killPid(child.pid, 'SIGTERM')
      const timer = setTimeout(() => child.pid !== undefined && killPid(child.pid, 'SIGKILL'), STOP_GRACE_MS)
      await within(exited, STOP_GRACE_MS + 3_000, `agent ${name} to stop`)
      clearTimeout(timer)
    },

    isRunning: name => node(name).agent !== undefined,

    async partition(names) {
      for (const name of names) ip(['-n', bridgeNetns, 'link', 'set', node(name).port, 'master', 'br1'])
    },

    async isolate(name) {
      ip(['-n', bridgeNetns, 'link', 'set', node(name).port, 'down'])
    },

    async heal() {
      for (const n of nodes.values()) ip(['-n', bridgeNetns, 'link', 'set', n.port, 'master', 'br0', 'up'])
    },

    tcpConnections(name) {
      const r = spawnSync('ip', ['netns', 'exec', node(name).netns, 'ss', '-tnoH', 'state', 'established'], {
        encoding: 'utf8',
        timeout: 10_000,
      })
      return parseSs(name, r.stdout ?? '')
    },

    logLines(name) {
      const file = node(name).logFile
      if (!existsSync(file)) return []
      const lines: LogLine[] = []
      for (const line of readFileSync(file, 'utf8').split('\n')) {
        if (!line.startsWith('{')) continue
        try {
          lines.push(JSON.parse(line) as LogLine)
        } catch {
          // a line cut by kill -9
        }
      }
      return lines
    },

    editConfig(name, edit) {
      const file = join(node(name).home, 'config.toml')
      const config = existsSync(file)
        ? (parseToml(readFileSync(file, 'utf8')) as Record<string, unknown>)
        : {}
      edit(config)
      // Written back in place: an existing file keeps its mode (0600 from init or join).
      writeFileSync(file, stringifyToml(config), { mode: 0o600 })
    },

    keep() {
      kept = true
    },

    async teardown() {
      if (torn) return
      await Promise.all([...nodes.keys()].map(name => rig.stopAgent(name).catch(() => {})))
      teardownSync()
    },
  }

  /** Synchronous teardown: every child by PID, anything left in our namespaces by PID, the namespaces by name. */
  function teardownSync(): void {
    if (torn) return
    torn = true
    liveRigs.delete(handle)
    for (const child of children) if (child.pid !== undefined) killPid(child.pid, 'SIGKILL')
    for (const netns of namespaces) for (const pid of netnsPids(netns)) killPid(pid, 'SIGKILL')
    for (const netns of [...namespaces].reverse())
      spawnSync('ip', ['netns', 'del', netns], { timeout: 10_000 })
    if (!kept) rmSync(root, { recursive: true, force: true })
    else {
      rmSync(join(root, 'bin'), { recursive: true, force: true })
      writeFileSync(join(root, 'KEPT'), 'kept for a failed scenario; delete by hand\n')
    }
  }
  return rig
}

/** Resolves `promise`, or rejects after `ms` naming `what`. */
export async function within<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms waiting for ${what}`)), ms)
  })
  try {
    return await Promise.race([promise, timeout])
  } finally {
    clearTimeout(timer)
  }
}

/** Polls `check` until it returns a value other than undefined (bounded); resolves that value. */
export async function until<T>(
  what: string,
  check: () => Promise<T | undefined> | T | undefined,
  timeoutMs: number,
  intervalMs = 200,
): Promise<T> {
  const deadline = Date.now() + timeoutMs
  let lastError: unknown
  for (;;) {
    try {
      const value = await check()
      if (value !== undefined) return value
    } catch (err) {
      lastError = err
    }
    if (Date.now() > deadline) {
      const detail = lastError === undefined ? '' : ` (last error: ${String(lastError)})`
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${detail}`)
    }
    await sleep(intervalMs)
  }
}

export const sleep = (ms: number) => new Promise<void>(r => setTimeout(r, ms))

/** Prints a line of the scenario's timeline when MESH_HOSTS_VERBOSE=1 (tests are quiet by default). */
export function note(line: string): void {
  if (process.env.MESH_HOSTS_VERBOSE === '1') console.log(`[hosts ${new Date().toISOString()}] ${line}`)
}
