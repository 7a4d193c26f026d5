/**
 * `mesh status`: this node as its agent sees itself (identity, addresses, certificate, counters, and
 * the traffic per protocol over the last window).
 */
import { type TrafficSnapshot, trafficParent } from '../node/traffic.js'
import { formatVersion, type MeshBuild } from '../version.js'
import { isoTime, table, withAgent } from './agent-client.js'
import { type CliIo, type GlobalOptions, printJson } from './io.js'

interface Status {
  name: string
  zone: string
  roles: string[]
  peerId: string
  addrs: string[]
  fingerprint: string
  version: string
  /** The agent's build (commit, date); absent from older agents. */
  build?: MeshBuild
  ca: boolean
  certificateExpiresAtMs: number
  /** `revoked` once the CA's signed list names this node's certificate; absent from older agents. */
  certificateState?: 'valid' | 'revoked'
  certificateSerial?: string
  counters: { requests: Record<string, number> } & Record<string, unknown>
  /** Absent from older agents. */
  traffic?: TrafficSnapshot
}

export async function status(io: CliIo, globals: GlobalOptions): Promise<number> {
  const s = (await withAgent(globals, c => c.call('status', {}, { timeoutMs: 10_000 }))) as Status
  if (globals.json) {
    printJson(io, s)
    return 0
  }
  const certificate =
    s.certificateState === 'revoked'
      ? `revoked by the CA (serial ${s.certificateSerial ?? '?'}); this node can no longer take part; join again with mesh join`
      : `expires ${isoTime(s.certificateExpiresAtMs)} (renewed automatically)`
  const requests = Object.entries(s.counters.requests)
    .filter(([, n]) => n > 0)
    .map(([code, n]) => `${code} ${n}`)
    .join(', ')
  io.stdout.write(
    `${table([
      ['node', `${s.name} (zone ${s.zone}, roles ${s.roles.join(', ')})${s.ca ? ', holds the CA' : ''}`],
      ['peer id', s.peerId],
      ['mesh', s.fingerprint],
      ['certificate', certificate],
      ['version', formatVersion(s.version, s.build)],
      ['requests', requests === '' ? 'none yet' : requests],
      ...s.addrs.map((a, i) => [i === 0 ? 'addresses' : '', a]),
    ])}\n`,
  )
  if (s.traffic !== undefined) io.stdout.write(`\n${trafficTable(s.traffic)}\n`)
  return 0
}

/**
 * Rates per protocol, one row each, then the total. Breakdown rows (`gossip:<topic>` of `gossipsub`,
 * `authority:<type>` of `authority`) are indented under the row they break down (and are not part of
 * the total).
 */
export function trafficTable(traffic: TrafficSnapshot): string {
  const names = Object.keys(traffic.protocols).sort()
  const order: Array<[label: string, name: string]> = []
  for (const name of names) {
    if (trafficParent(name) !== undefined) continue
    order.push([`  ${name}`, name])
    for (const b of names) if (trafficParent(b) === name) order.push([`    ${b}`, b])
  }
  // A breakdown row without its parent row (an older agent) still shows.
  for (const b of names) {
    const parent = trafficParent(b)
    if (parent !== undefined && !names.includes(parent)) order.push([`  ${b}`, b])
  }
  const msgs = (n: number): string => n.toFixed(1)
  const bytes = (n: number): string => Math.round(n).toString()
  const rows: string[][] = [
    [`traffic (last ${Math.round(traffic.windowMs / 1000)} s)`, 'msgs/s in', 'out', 'bytes/s in', 'out'],
  ]
  for (const [label, name] of order) {
    const t = traffic.protocols[name]
    if (t === undefined) continue
    rows.push([label, msgs(t.msgsInPerS), msgs(t.msgsOutPerS), bytes(t.bytesInPerS), bytes(t.bytesOutPerS)])
  }
  const t = traffic.total
  rows.push(['  total', msgs(t.msgsInPerS), msgs(t.msgsOutPerS), bytes(t.bytesInPerS), bytes(t.bytesOutPerS)])
  const widths = rows[0]?.map((_, i) => Math.max(...rows.map(r => (r[i] ?? '').length))) ?? []
  return rows
    .map(r =>
      r.map((cell, i) => (i === 0 ? cell.padEnd(widths[i] ?? 0) : cell.padStart(widths[i] ?? 0))).join('  '),
    )
    .join('\n')
}
