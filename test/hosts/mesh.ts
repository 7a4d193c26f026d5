/**
 * A mesh on the hosts rig, built through the CLI as a user builds one, and the outcomes the scenarios
 * check, read from what the agents expose: `mesh members/zones/status/exec --json`, each agent's log
 * (pino JSON: 'authority acquired/renewed/lost' with wall-clock times and epochs, 'running request'
 * with the request id) and a declared action `mark` that appends the request id to a file per node
 * (a side effect of its own, so a request run twice shows even if a log line were lost).
 *
 * All agents run on one machine, so their wall clocks are one clock and their logged acting intervals
 * can be compared directly.
 */
import { existsSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import type { LogLine, Rig } from './rig.js'
import { until } from './rig.js'

/** One node to create: the first of a mesh runs `mesh init` (CA and operator), the rest join by ticket. */
export interface NodeSpec {
  readonly name: string
  readonly zone: string
  /** Also give it the operator role (it can then run `mesh exec`). The CA node always can. */
  readonly operator?: boolean
}

/** `mesh members --json`, one entry. */
export interface Member {
  readonly name: string
  readonly peerId: string
  readonly zone: string
  readonly addrs: readonly string[]
  readonly state: 'alive' | 'suspect' | 'dead' | 'left'
}

/** `mesh zones --json`, one entry. */
export interface Zone {
  readonly zone: string
  readonly members: string[]
  readonly authority: string | null
  readonly epoch: number
  readonly leaseRemainingMs: number | null
}

/** `mesh exec --json`. */
export interface ExecReport {
  readonly id: string
  readonly action: string
  readonly expected: string[]
  readonly replies: ReadonlyArray<{
    readonly node: string
    readonly status: string
    readonly epoch?: number
    readonly reason?: string
    readonly unexpected?: boolean
  }>
  readonly missing: string[]
}

/** The TOML a node gets besides what init/join write: the `mark` action and who may run it. */
function markConfig(rig: Rig, name: string): Record<string, unknown> {
  return {
    actions: {
      mark: {
        argv: ['/bin/sh', '-c', 'echo "$MESH_REQUEST_ID" >> "$MARKS_FILE"'],
        env: { MARKS_FILE: marksFile(rig, name) },
        timeout: '10s',
        description: 'appends the request id to a file (hosts rig)',
      },
    },
    policy: [{ actions: ['mark'], roles: ['operator'] }],
  }
}

function marksFile(rig: Rig, name: string): string {
  return join(rig.root, `${name}.marks`)
}

/** The request ids the node's `mark` action has recorded, in order (one line per run). */
export function marks(rig: Rig, name: string): string[] {
  const file = marksFile(rig, name)
  if (!existsSync(file)) return []
  return readFileSync(file, 'utf8').split('\n').filter(Boolean)
}

/**
 * Creates the nodes' namespaces and homes: `mesh init` for the first, then a ticket per other node
 * (`mesh ticket create` on the first node's running agent) and `mesh join --ticket` in the joiner's
 * namespace; every config.toml gets the `mark` action; `extra(name, config)` may change more. The
 * first node's agent is left running; the others are not started. Returns the ticket-joined names.
 */
export async function buildMesh(
  rig: Rig,
  specs: readonly NodeSpec[],
  extra: (name: string, config: Record<string, unknown>) => void = () => {},
): Promise<void> {
  const [first, ...rest] = specs
  if (first === undefined) throw new Error('a mesh needs a node')
  for (const spec of specs) await rig.addNode(spec.name)
  const ca = rig.node(first.name)
  const init = await rig.mesh(first.name, [
    'init',
    '--name',
    first.name,
    '--zone',
    first.zone,
    '--listen',
    ca.listen,
  ])
  if (init.status !== 0) throw new Error(`mesh init → ${init.status}: ${init.stderr}`)
  rig.editConfig(first.name, config => {
    Object.assign(config, markConfig(rig, first.name))
    extra(first.name, config)
  })
  await rig.startAgent(first.name)
  const tickets = new Map<string, string>()
  for (const spec of rest) tickets.set(spec.name, await createTicket(rig, first.name, spec))
  // Joins in parallel: the CA serialises its issuer anyway, and each joiner is its own process.
  await Promise.all(
    rest.map(async spec => {
      const r = await joinWithTicket(rig, spec.name, tickets.get(spec.name)!)
      if (r.status !== 0) throw new Error(`mesh join ${spec.name} → ${r.status}: ${r.stderr}`)
      rig.editConfig(spec.name, config => {
        Object.assign(config, markConfig(rig, spec.name))
        extra(spec.name, config)
      })
    }),
  )
}

/** `mesh ticket create NAME --zone ZONE [--role agent --role operator]` on `ca`; the ticket line. */
export async function createTicket(rig: Rig, ca: string, spec: NodeSpec): Promise<string> {
  const roles = spec.operator === true ? ['--role', 'agent', '--role', 'operator'] : []
  const r = await rig.mesh(ca, ['ticket', 'create', spec.name, '--zone', spec.zone, ...roles])
  if (r.status !== 0) throw new Error(`mesh ticket create ${spec.name} → ${r.status}: ${r.stderr}`)
  return r.stdout.trim()
}

/** `mesh join --ticket T --listen ADDR` in the node's namespace. */
export function joinWithTicket(rig: Rig, name: string, ticket: string, timeout = '20s') {
  const listen = rig.node(name).listen
  return rig.mesh(name, ['join', '--ticket', ticket, '--listen', listen, '--timeout', timeout], {
    timeoutMs: 60_000,
  })
}

/** Starts the agents of `names` in parallel. */
export async function startAll(rig: Rig, names: readonly string[]): Promise<void> {
  await Promise.all(names.map(name => rig.startAgent(name)))
}

/** `mesh members --json` on `name`. */
export function members(rig: Rig, name: string): Promise<Member[]> {
  return rig.meshJson<Member[]>(name, ['members'])
}

/** `mesh zones --json` on `name`. */
export function zones(rig: Rig, name: string): Promise<Zone[]> {
  return rig.meshJson<Zone[]>(name, ['zones'])
}

/** The peer id a node reports for itself (`mesh status --json`). */
export async function peerIdOf(rig: Rig, name: string): Promise<string> {
  return (await rig.meshJson<{ peerId: string }>(name, ['status'])).peerId
}

/** Names `viewer` lists alive, sorted. */
export async function aliveSeenBy(rig: Rig, viewer: string): Promise<string[]> {
  return (await members(rig, viewer))
    .filter(m => m.state === 'alive')
    .map(m => m.name)
    .sort()
}

/** Waits (bounded) until every node of `viewers` lists exactly `expected` as alive. */
export async function waitConverged(
  rig: Rig,
  viewers: readonly string[],
  expected: readonly string[],
  timeoutMs: number,
): Promise<void> {
  const want = [...expected].sort().join(',')
  await until(
    `${viewers.join(',')} to see exactly ${want} alive`,
    async () => {
      const views = await Promise.all(viewers.map(v => aliveSeenBy(rig, v)))
      return views.every(v => v.join(',') === want) ? true : undefined
    },
    timeoutMs,
    300,
  )
}

/** One interval in which a node acted as its zone's authority, from its own log (wall clock, ms). */
export interface ActingInterval {
  readonly node: string
  readonly zone: string
  readonly epoch: number
  readonly fromMs: number
  untilMs: number
  open: boolean
}

/**
 * The node's acting intervals: from 'authority acquired' (atWallMs, to actUntilWallMs), pushed on by
 * each 'authority renewed', cut by 'authority lost' or by the next acquisition (an epoch bump). A node
 * killed while holding keeps its last logged actUntil: it cannot have acted past it.
 */
export function actingIntervals(rig: Rig, name: string): ActingInterval[] {
  const intervals: ActingInterval[] = []
  const openOf = (zone: string) => intervals.findLast(i => i.zone === zone && i.open)
  for (const line of rig.logLines(name)) {
    const zone = line.zone as string | undefined
    if (zone === undefined) continue
    if (line.msg === 'authority acquired') {
      const previous = openOf(zone)
      if (previous !== undefined) {
        previous.untilMs = Math.min(previous.untilMs, line.atWallMs as number)
        previous.open = false
      }
      intervals.push({
        node: name,
        zone,
        epoch: line.epoch as number,
        fromMs: line.atWallMs as number,
        untilMs: line.actUntilWallMs as number,
        open: true,
      })
    } else if (line.msg === 'authority renewed') {
      const open = openOf(zone)
      if (open !== undefined) open.untilMs = Math.max(open.untilMs, line.actUntilWallMs as number)
    } else if (line.msg === 'authority lost') {
      const open = openOf(zone)
      if (open !== undefined) {
        open.untilMs = Math.min(open.untilMs, line.atWallMs as number)
        open.open = false
      }
    }
  }
  return intervals
}

/** One 'running request' line: the node started a request's action at `atMs`. */
export interface Run {
  readonly node: string
  readonly request: string
  readonly action: string
  readonly atMs: number
}

/** The runs in the node's log (every agent process it ran, in order). */
export function runs(rig: Rig, name: string, action?: string): Run[] {
  return rig
    .logLines(name)
    .filter((l: LogLine) => l.msg === 'running request' && (action === undefined || l.action === action))
    .map(l => ({ node: name, request: l.request as string, action: l.action as string, atMs: l.time }))
}

/** Pairs of acting intervals of different nodes for the same zone that overlap in time. */
export function overlaps(intervals: readonly ActingInterval[]): Array<[ActingInterval, ActingInterval]> {
  const found: Array<[ActingInterval, ActingInterval]> = []
  for (const a of intervals) {
    for (const b of intervals) {
      if (a.node < b.node && a.zone === b.zone && a.fromMs < b.untilMs && b.fromMs < a.untilMs)
        found.push([a, b])
    }
  }
  return found
}

/** An interval as one short line (times relative to `t0`), for assertion messages. */
export function describeInterval(i: ActingInterval, t0 = 0): string {
  return `${i.node}@${i.epoch} [${i.fromMs - t0}, ${i.untilMs - t0}]`
}

/** A TCP connection across a cut whose sent data waits for TCP's next retransmission. */
export interface StalledConnection {
  readonly from: string
  readonly to: string
  readonly unacknowledgedBytes: number
  readonly retransmits: number
  /** When TCP retransmits next, ms after it was read. */
  readonly retransmitInMs: number
}

/**
 * TCP connections between the two sides of a cut whose sent data waits for a retransmission: what a
 * partition leaves behind. Read just before a heal, they show when each side can hear the other again
 * at the latest, if nothing replaces them: at the next retransmission.
 */
export function stalledAcross(
  rig: Rig,
  sideA: readonly string[],
  sideB: readonly string[],
): StalledConnection[] {
  const nameOf = new Map([...rig.nodes.values()].map(n => [n.address, n.name]))
  const across = (from: string, to: string | undefined) =>
    to !== undefined && (sideA.includes(from) ? sideB.includes(to) : sideA.includes(to))
  return [...sideA, ...sideB].flatMap(from =>
    rig
      .tcpConnections(from)
      .filter(c => c.retransmits > 0 && across(from, nameOf.get(c.remoteAddress)))
      .map(c => ({
        from,
        to: nameOf.get(c.remoteAddress)!,
        unacknowledgedBytes: c.sendQueueBytes,
        retransmits: c.retransmits,
        retransmitInMs: c.retransmitInMs ?? 0,
      })),
  )
}

/** Stalled connections as one line each. */
export function describeStalled(stalled: readonly StalledConnection[]): string {
  return stalled
    .map(
      c =>
        `${c.from}→${c.to} (${c.unacknowledgedBytes} bytes unacknowledged, ${c.retransmits} retransmissions, next in ${c.retransmitInMs} ms)`,
    )
    .join('; ')
}

/** Runs `mesh exec ACTION ARGS… --json` on `name`; the report (when stdout holds one) and the result. */
export async function exec(
  rig: Rig,
  name: string,
  args: readonly string[],
): Promise<{
  status: number | null
  report: ExecReport | undefined
  stderr: string
  startedAtMs: number
  endedAtMs: number
}> {
  const r = await rig.mesh(name, ['exec', ...args, '--json'], { timeoutMs: 60_000 })
  let report: ExecReport | undefined
  try {
    report = r.stdout.trim() === '' ? undefined : (JSON.parse(r.stdout) as ExecReport)
  } catch {
    report = undefined
  }
  return { status: r.status, report, stderr: r.stderr, startedAtMs: r.startedAtMs, endedAtMs: r.endedAtMs }
}

/** Milliseconds since `t0`, for logs of the scenario's own timeline. */
export const since = (t0: number) => Date.now() - t0
