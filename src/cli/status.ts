/** `mesh status`: this node as its agent sees itself (identity, addresses, certificate, counters). */
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
  ca: boolean
  certificateExpiresAtMs: number
  /** `revoked` once the CA's signed list names this node's certificate; absent from older agents. */
  certificateState?: 'valid' | 'revoked'
  certificateSerial?: string
  counters: { requests: Record<string, number> } & Record<string, unknown>
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
      ['version', s.version],
      ['requests', requests === '' ? 'none yet' : requests],
      ...s.addrs.map((a, i) => [i === 0 ? 'addresses' : '', a]),
    ])}\n`,
  )
  return 0
}
