/** `mesh ca list|sign|reject|revoke`, served by the local agent when it holds the CA. */
import { isoTime, table, withAgent } from './agent-client.js'
import { UsageError } from './errors.js'
import { type CliIo, type GlobalOptions, printJson } from './io.js'

interface Pending {
  id: string
  name: string
  zone: string
  peerId: string
  keyFingerprint: string
  requestedAtMs: number
  expiresAtMs: number
  /** Who asked: a member's name, `ip:ADDRESS` for a direct join, `self`; absent on old records. */
  origin?: string
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
      ['ID', 'NAME', 'ZONE', 'KEY', 'REQUESTER', 'REQUESTED', 'EXPIRES'],
      ...pending.map(p => [
        p.id,
        p.name,
        p.zone,
        p.keyFingerprint,
        p.origin ?? '-',
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

/** What `mesh ca reject` was asked to reject: exactly one of the three. */
export interface RejectTarget {
  readonly id?: string
  readonly all?: boolean
  readonly requester?: string
}

/** `mesh ca reject ID | --all | --requester NAME`. */
export async function caReject(io: CliIo, globals: GlobalOptions, target: RejectTarget): Promise<number> {
  const given = [target.id !== undefined, target.all === true, target.requester !== undefined]
  if (given.filter(Boolean).length !== 1)
    throw new UsageError("give exactly one of ID, '--all' or '--requester NAME' to 'mesh ca reject'")
  if (target.id !== undefined) return caDecide(io, globals, 'reject', target.id)
  if (target.requester?.length === 0) throw new UsageError("'--requester' needs a name")
  const params = target.all === true ? { all: true } : { requester: target.requester }
  const result = (await withAgent(globals, c => c.call('ca.reject', params, { timeoutMs: 10_000 }))) as {
    rejected: number
    requester?: string
  }
  if (globals.json) printJson(io, { ...result, decision: 'reject' })
  else {
    const from = result.requester !== undefined ? ` from ${result.requester}` : ''
    io.stdout.write(
      result.rejected === 0
        ? `no pending requests${from}\n`
        : `rejected ${result.rejected} pending request(s)${from}\n`,
    )
  }
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

/** `mesh ca holders`: the CA's holders, the current issuer and its ballot (docs/ca-ha.md). */
export async function caHolders(io: CliIo, globals: GlobalOptions): Promise<number> {
  const status = (await withAgent(globals, c => c.call('ca.holders', {}, { timeoutMs: 10_000 }))) as {
    holders: { peerId: string; name: string; self: boolean }[]
    zone: string
    role: string
    ballot: { epoch: number; round: number } | null
    issuer: string | null
    accepted: { version: number } | null
    single?: boolean
  }
  if (globals.json) {
    printJson(io, status)
    return 0
  }
  const ballot = status.ballot === null ? '' : ` (epoch ${status.ballot.epoch}, round ${status.ballot.round})`
  io.stdout.write(
    status.single === true
      ? `one CA holder: ${status.issuer} (this node) issues; no replication\n`
      : `issuer: ${status.issuer ?? 'none right now'}${ballot}; this node: ${status.role}${status.accepted === null ? '' : `, state version ${status.accepted.version}`}\n`,
  )
  io.stdout.write(
    `${table([
      ['HOLDER', 'PEER', 'ISSUER'],
      ...status.holders.map(h => [
        `${h.name}${h.self ? ' (this node)' : ''}`,
        h.peerId,
        h.name === status.issuer ? 'yes' : '',
      ]),
    ])}\n`,
  )
  return 0
}

/** `mesh ca add-holder NAME`: hands the CA to another member (docs/ca-ha.md). */
export async function caAddHolder(io: CliIo, globals: GlobalOptions, name: string): Promise<number> {
  const result = (await withAgent(globals, c =>
    c.call('ca.addHolder', { name }, { timeoutMs: 120_000 }),
  )) as {
    holders: { peerId: string; name: string }[]
    told: string[]
    notTold: { name: string; error: string }[]
    retired: boolean
  }
  if (globals.json) {
    printJson(io, result)
    return result.notTold.length > 0 ? 1 : 0
  }
  const names = result.holders.map(h => h.name)
  const survives = Math.floor((names.length - 1) / 2)
  io.stdout.write(
    `${name} is a CA holder: ${names.length} holders (${names.join(', ')}); ` +
      (survives === 0
        ? 'the CA survives no loss with 2 holders (a majority is both): add a third\n'
        : `the CA survives the loss of ${survives}\n`),
  )
  for (const missed of result.notTold)
    io.stderr.write(
      `not told the new holder set: ${missed.name} (${missed.error}); run the command again once it is back\n`,
    )
  io.stdout.write(
    `${result.retired ? 'this node stopped issuing; ' : ''}restart the agents of ${names.join(', ')} so they serve together (the holder set is read at start)\n`,
  )
  return result.notTold.length > 0 ? 1 : 0
}
