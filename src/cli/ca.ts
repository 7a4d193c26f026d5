/** `mesh ca list|sign|reject|revoke`, served by the local agent when it holds the CA. */
import { isoTime, table, withAgent } from './agent-client.js'
import { type CliIo, type GlobalOptions, printJson } from './io.js'

interface Pending {
  id: string
  name: string
  zone: string
  peerId: string
  keyFingerprint: string
  requestedAtMs: number
  expiresAtMs: number
}

export async function caList(io: CliIo, globals: GlobalOptions): Promise<number> {
  const pending = (await withAgent(globals, c => c.call('ca.list', {}, { timeoutMs: 10_000 }))) as Pending[]
  if (globals.json) {
    printJson(io, pending)
    return 0
  }
  if (pending.length === 0) {
    io.stdout.write('no pending signing requests\n')
    return 0
  }
  io.stdout.write(
    `${table([
      ['ID', 'NAME', 'ZONE', 'KEY', 'REQUESTED', 'EXPIRES'],
      ...pending.map(p => [
        p.id,
        p.name,
        p.zone,
        p.keyFingerprint,
        isoTime(p.requestedAtMs),
        isoTime(p.expiresAtMs),
      ]),
    ])}\n`,
  )
  return 0
}

export async function caDecide(
  io: CliIo,
  globals: GlobalOptions,
  decision: 'sign' | 'reject',
  id: string,
): Promise<number> {
  const result = (await withAgent(globals, c => c.call(`ca.${decision}`, { id }, { timeoutMs: 10_000 }))) as {
    id: string
    name: string
  }
  if (globals.json) printJson(io, { ...result, decision })
  else
    io.stdout.write(
      decision === 'sign'
        ? `signed ${result.id}: ${result.name} may now join\n`
        : `rejected ${result.id} (${result.name})\n`,
    )
  return 0
}

export async function caRevoke(io: CliIo, globals: GlobalOptions, target: string): Promise<number> {
  const result = (await withAgent(globals, c => c.call('ca.revoke', { target }, { timeoutMs: 10_000 }))) as {
    serials: string[]
    names: string[]
    listVersion: number
  }
  if (globals.json) printJson(io, result)
  else
    io.stdout.write(
      `revoked ${result.names.join(', ')} (${result.serials.length} certificate(s)); revocation list version ${result.listVersion} is spreading across the mesh\n`,
    )
  return 0
}
