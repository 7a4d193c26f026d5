/**
 * The agent's control methods, served on the control socket (src/control/): what `mesh members`, `mesh exec`, `mesh ticket create` and
 * `mesh ca …` ask the running agent. Parameters arrive as untrusted JSON and are checked here; results
 * are plain JSON in the shapes of CLI.md.
 */
import { randomBytes } from 'node:crypto'
import { fingerprintOf, formatFingerprint } from '../ca/fingerprint.js'
import type { IssuerEffect } from '../ca/issuer.js'
import { ROLES, type Role } from '../ca/types.js'
import { ControlError, type ControlHandler } from '../control/index.js'
import { FilterParseError, NAMES_MAX, type TargetFilter } from '../gossip/filter.js'
import type { MeshNode } from '../node/node-types.js'
import { withPeerId } from '../node/peer-address.js'
import { MESH_BUILD, MESH_VERSION } from '../version.js'
import type { AuditFile } from './audit-file.js'
import { readRolloutParams } from './rollout-params.js'

/** A `timeoutMs` parameter: a positive integer of at most {@link EXEC_TIMEOUT_MS_MAX}. */
function timeoutParam(value: unknown): number {
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value <= 0 || value > EXEC_TIMEOUT_MS_MAX)
    throw new ControlError(
      'invalid-params',
      `timeoutMs must be a positive integer of at most ${EXEC_TIMEOUT_MS_MAX}`,
    )
  return value
}

/** Most jobs one `jobs.list` returns. */
export const JOBS_LIST_MAX = 10_000

/** A job id parameter: 32 lower-case hex digits. */
function jobIdParam(p: Record<string, unknown>): string {
  const id = p.id
  if (typeof id !== 'string' || !/^[0-9a-f]{32}$/.test(id))
    throw new ControlError(
      'invalid-params',
      'id must be a job id (32 lower-case hex digits, as mesh jobs lists them)',
    )
  return id
}

/** Longest exec timeout the agent accepts from the CLI. */
export const EXEC_TIMEOUT_MS_MAX = 3_600_000

function record(params: unknown): Record<string, unknown> {
  if (params === null || params === undefined) return {}
  if (typeof params !== 'object' || Array.isArray(params))
    throw new ControlError('invalid-params', 'params must be an object')
  return params as Record<string, unknown>
}

function text(p: Record<string, unknown>, key: string, required = true): string | undefined {
  const value = p[key]
  if (value === undefined && !required) return undefined
  if (typeof value !== 'string' || value.length === 0)
    throw new ControlError('invalid-params', `${key} must be a non-empty string`)
  return value
}

function issuerOf(node: MeshNode) {
  if (node.issuer === undefined) {
    throw new ControlError(
      'failed',
      'this node does not hold the mesh CA; run the command on the node made by mesh init',
    )
  }
  return node.issuer
}

/**
 * Where a ticket's joiner looks for the CA: this node's addresses first, then those of the other live
 * CA holders (members with the `ca` role), so a join still finds an issuer when this one is down.
 * At most 8 addresses in all.
 */
function ticketBootstrap(node: MeshNode): string[] {
  const own = node.addrs().slice(0, 4)
  const holders = node
    .members()
    .filter(m => m.peerId !== node.peerId && m.roles.includes('ca') && m.state === 'alive')
    .flatMap(m => m.addrs.slice(0, 2).map(a => withPeerId(a, m.peerId)))
  return [...own, ...holders].slice(0, 8)
}

let commandCounter = 0
async function command(node: MeshNode, input: Parameters<NonNullable<MeshNode['issuer']>['run']>[0]) {
  const effects: IssuerEffect[] = await issuerOf(node).run(input)
  const reply = effects.find(e => e.type === 'command-reply' && e.requestId === input.requestId)
  if (reply === undefined || reply.type !== 'command-reply')
    throw new ControlError('internal', 'the CA gave no answer')
  if (!reply.result.ok) throw new ControlError('failed', reply.result.message)
  return reply.result
}

/**
 * The names of the node's own actions (the CLI's did-you-mean after an `unknown-action` answer); empty
 * for a node not made by createMeshNode (an embedder's or a test's stand-in has no registry to ask).
 * Imported lazily: the CLI imports this module for its limits and must not load libp2p.
 */
async function localActionNames(node: MeshNode): Promise<string[]> {
  const { internalsOf } = await import('../node/node.js')
  try {
    return internalsOf(node)
      .actions.list()
      .map(a => a.name)
  } catch {
    return []
  }
}

/** Optional ports of {@link controlHandlers}. */
export interface ControlHandlersOptions {
  /** The node's action names; default: asked of the node's action registry. */
  readonly actionNames?: () => Promise<string[]>
  /** The audit log's files (audit-file.ts), once open; without it `audit.*` answer `failed`. */
  readonly audit?: () => Pick<AuditFile, 'view' | 'verify' | 'counters'> | undefined
}

/** Most `--async` execs running on this agent at once. */
export const ASYNC_EXECS_MAX = 64
let asyncRunning = 0

/** The outcomes `--retarget JOB:OUTCOME` can select. */
export const RETARGET_OUTCOMES = ['ok', 'failed', 'missing'] as const

/** The filter naming exactly the nodes of job `retarget.job` whose outcome was `retarget.outcome`. */
async function retargetFilter(node: MeshNode, raw: unknown, filter: unknown): Promise<TargetFilter> {
  const p = record(raw)
  const job = jobIdParam({ id: p.job })
  const outcome = p.outcome
  if (typeof outcome !== 'string' || !(RETARGET_OUTCOMES as readonly string[]).includes(outcome))
    throw new ControlError(
      'invalid-params',
      `retarget outcome must be one of ${RETARGET_OUTCOMES.join(', ')}`,
    )
  if (filter !== undefined && Object.keys(record(filter)).length > 0)
    throw new ControlError('invalid-params', 'retarget names its nodes itself; give no other filter with it')
  const shown = await node.jobs.show(job)
  if (shown === undefined) throw new ControlError('failed', `no node that answered knows job ${job}`)
  const names =
    outcome === 'missing'
      ? shown.missing
      : shown.replies.filter(r => (outcome === 'ok' ? r.status === 'ok' : r.status !== 'ok')).map(r => r.node)
  if (names.length === 0) throw new ControlError('failed', `no node of job ${job} had the outcome ${outcome}`)
  if (names.length > NAMES_MAX)
    throw new ControlError(
      'failed',
      `job ${job} has ${names.length} nodes with outcome ${outcome}, more than one request may name (${NAMES_MAX})`,
    )
  return { names: [...new Set(names)].sort() }
}

/**
 * `--async`: starts the exec (or rollout) under a fresh job id and answers as soon as its first request
 * is published; the results go to the job store (mesh jobs show/wait). Not tied to the caller's
 * connection: closing the CLI does not cancel it.
 */
async function execDetached(
  node: MeshNode,
  options: { action: string; args: string[]; filter: TargetFilter; timeoutMs: number },
  rollout: ReturnType<typeof readRolloutParams>,
): Promise<{ job: string; async: true; expected: readonly string[] }> {
  if (asyncRunning >= ASYNC_EXECS_MAX)
    throw new ControlError(
      'failed',
      `${ASYNC_EXECS_MAX} --async execs are running on this agent already; try again later`,
    )
  const job = randomBytes(16)
  const jobHex = job.toString('hex')
  let published: (expected: readonly string[]) => void = () => {}
  const first = new Promise<readonly string[]>(resolve => {
    published = resolve
  })
  const onEvent = (event: { kind: string }) => {
    if (event.kind === 'published' || event.kind === 'rollout')
      published((event as { expected?: readonly string[] }).expected ?? [])
  }
  asyncRunning += 1
  const run = (
    rollout === undefined
      ? node.exec({ ...options, job: new Uint8Array(job), onEvent })
      : node.rollout({ ...options, ...rollout, job: new Uint8Array(job), onEvent })
  ).finally(() => {
    asyncRunning -= 1
  })
  const expected = await Promise.race([first, run.then(r => r.expected)])
  run.catch(() => {})
  return { job: jobHex, async: true, expected }
}

/** The handlers for one node. */
export function controlHandlers(
  node: MeshNode,
  caPublicKey: Uint8Array,
  options: ControlHandlersOptions = {},
): Record<string, ControlHandler> {
  const actionNames = options.actionNames ?? (() => localActionNames(node))
  return {
    async status() {
      const cert = node.certificate().certificate
      // Traffic gets a field of its own in `mesh status --json` (docs/cli.md), not a copy in counters.
      const { traffic, ...counters } = node.counters()
      return {
        name: node.name,
        zone: node.zone,
        roles: cert.roles,
        peerId: node.peerId,
        addrs: node.addrs(),
        fingerprint: formatFingerprint(fingerprintOf(caPublicKey)),
        version: MESH_VERSION,
        build: MESH_BUILD,
        ca: node.issuer !== undefined,
        certificateExpiresAtMs: cert.notAfterMs,
        // `revoked` once a CA-signed list this node holds names its serial (it then stops renewing and dialling).
        certificateState: node.isRevoked(cert.serial) ? 'revoked' : 'valid',
        certificateSerial: cert.serial,
        counters,
        traffic,
      }
    },

    async members() {
      return node.members()
    },

    async zones() {
      return node.provenZones()
    },

    async exec(params, context) {
      const p = record(params)
      const action = text(p, 'action') as string
      const args = p.args ?? []
      if (!Array.isArray(args) || !args.every(a => typeof a === 'string')) {
        throw new ControlError('invalid-params', 'args must be a list of strings')
      }
      const timeoutMs = timeoutParam(p.timeoutMs)
      // Any of batch, batchSleepMs, maxFailures, limit, limitSeed makes it a rollout (node/rollout.ts).
      const rollout = readRolloutParams(p)
      if (p.async !== undefined && typeof p.async !== 'boolean')
        throw new ControlError('invalid-params', 'async must be a boolean')
      const detached = p.async === true
      try {
        // --retarget: exactly the nodes of an earlier job with one outcome, named in the signed filter.
        const filter =
          p.retarget === undefined
            ? ((p.filter ?? {}) as TargetFilter)
            : await retargetFilter(node, p.retarget, p.filter)
        if (p.propose !== undefined && p.propose !== true)
          throw new ControlError('invalid-params', 'propose must be true')
        if (p.propose === true) {
          if (rollout !== undefined || detached)
            throw new ControlError('invalid-params', 'a proposal is one request: no rollout flags, no async')
          return { proposal: await node.proposals.propose({ action, args, filter, timeoutMs }) }
        }
        if (detached) return await execDetached(node, { action, args, filter, timeoutMs }, rollout)
        const options = {
          action,
          args,
          filter,
          timeoutMs,
          signal: context.signal,
          onEvent: (event: { kind: string }) => context.emit(event.kind, event),
        }
        const result = await (rollout === undefined
          ? node.exec(options)
          : node.rollout({ ...options, ...rollout }))
        return { ...result, localActions: await actionNames() }
      } catch (err) {
        if (err instanceof ControlError) throw err
        if (err instanceof FilterParseError) throw new ControlError('invalid-params', err.message)
        const name = (err as Error).name
        if (name === 'RolloutOptionsError') throw new ControlError('invalid-params', (err as Error).message)
        if (name === 'RequestDecodeError') throw new ControlError('invalid-params', (err as Error).message)
        throw new ControlError('failed', (err as Error).message)
      }
    },

    async 'proposals.list'() {
      return { proposals: node.proposals.list() }
    },

    async 'proposals.approve'(params) {
      const p = record(params)
      const id = p.id
      if (typeof id !== 'string' || !/^[0-9a-f]{32}$/.test(id))
        throw new ControlError('invalid-params', 'id must be a proposal id (32 lower-case hex digits)')
      try {
        return { proposal: await node.proposals.approve(id) }
      } catch (err) {
        if ((err as Error).name === 'ProposalError') throw new ControlError('failed', (err as Error).message)
        throw err
      }
    },

    async 'jobs.list'(params) {
      const p = record(params)
      const limit = p.limit ?? 100
      if (typeof limit !== 'number' || !Number.isSafeInteger(limit) || limit < 1 || limit > JOBS_LIST_MAX)
        throw new ControlError('invalid-params', `limit must be an integer from 1 to ${JOBS_LIST_MAX}`)
      return { jobs: node.jobs.list(limit) }
    },

    async 'jobs.show'(params, context) {
      const p = record(params)
      const job = jobIdParam(p)
      if (p.mesh !== undefined && typeof p.mesh !== 'boolean')
        throw new ControlError('invalid-params', 'mesh must be a boolean')
      const result = await node.jobs.show(job, { signal: context.signal, mesh: p.mesh === true })
      if (result === undefined) throw new ControlError('failed', `no node that answered knows job ${job}`)
      return result
    },

    async 'jobs.wait'(params, context) {
      const p = record(params)
      const job = jobIdParam(p)
      const timeoutMs = timeoutParam(p.timeoutMs ?? 60_000)
      const result = await node.jobs.wait(job, timeoutMs, context.signal)
      if (result === undefined) throw new ControlError('failed', `no node that answered knows job ${job}`)
      return result
    },

    async 'ticket.create'(params) {
      const p = record(params)
      const rolesRaw = p.roles ?? ['agent']
      if (!Array.isArray(rolesRaw) || !rolesRaw.every(r => ROLES.includes(r as Role))) {
        throw new ControlError('invalid-params', `roles must be a list of ${ROLES.join(', ')}`)
      }
      const ttlMs = p.ttlMs
      if (typeof ttlMs !== 'number' || !Number.isSafeInteger(ttlMs) || ttlMs <= 0) {
        throw new ControlError('invalid-params', 'ttlMs must be a positive integer')
      }
      const result = await command(node, {
        type: 'create-ticket',
        requestId: `ticket-${++commandCounter}`,
        name: text(p, 'name') as string,
        zone: text(p, 'zone') as string,
        roles: rolesRaw as Role[],
        ttlMs,
        bootstrap: ticketBootstrap(node),
      })
      if (result.command !== 'create-ticket') throw new ControlError('internal', 'unexpected CA answer')
      return { ticket: result.ticket, expiresAtMs: result.expiresAtMs }
    },

    // `mesh ca add-holder NAME` (src/node/ca-holders.ts): refusals come back as one-line `failed` errors.
    async 'ca.addHolder'(params) {
      const name = text(record(params), 'name') as string
      if (node.addCaHolder === undefined) throw new ControlError('failed', 'this node cannot add CA holders')
      issuerOf(node)
      try {
        return await node.addCaHolder(name)
      } catch (err) {
        throw new ControlError('failed', (err as Error).message)
      }
    },

    async 'ca.list'() {
      return issuerOf(node).listPending()
    },

    // The CA holders and the current issuer. A one-holder CA (what mesh init makes) is its own issuer.
    async 'ca.holders'() {
      const status = node.caHolders?.()
      if (status !== undefined) return status
      issuerOf(node)
      return {
        holders: [{ peerId: node.peerId, name: node.name, self: true }],
        zone: node.zone,
        role: 'issuer',
        ballot: null,
        promised: null,
        issuer: node.name,
        accepted: null,
        single: true,
      }
    },

    async 'ca.sign'(params) {
      const p = record(params)
      const result = await command(node, {
        type: 'sign-pending',
        requestId: `sign-${++commandCounter}`,
        id: text(p, 'id') as string,
      })
      if (result.command !== 'sign') throw new ControlError('internal', 'unexpected CA answer')
      return { id: result.id, name: result.name }
    },

    // Exactly one of `id` (one request), `all: true` (every pending one) or `requester` (every
    // pending one from that origin, as `mesh ca list` shows it); bulk answers `{ rejected, requester? }`.
    async 'ca.reject'(params) {
      const p = record(params)
      const id = text(p, 'id', false)
      const requester = text(p, 'requester', false)
      if (p.all !== undefined && p.all !== true) throw new ControlError('invalid-params', 'all must be true')
      const all = p.all === true
      if ([id !== undefined, requester !== undefined, all].filter(Boolean).length !== 1)
        throw new ControlError('invalid-params', 'give exactly one of id, all or requester')
      if (id !== undefined) {
        const result = await command(node, {
          type: 'reject-pending',
          requestId: `reject-${++commandCounter}`,
          id,
        })
        if (result.command !== 'reject') throw new ControlError('internal', 'unexpected CA answer')
        return { id: result.id, name: result.name }
      }
      const result = await command(node, {
        type: 'reject-all-pending',
        requestId: `reject-${++commandCounter}`,
        ...(requester !== undefined ? { origin: requester } : {}),
      })
      if (result.command !== 'reject-all') throw new ControlError('internal', 'unexpected CA answer')
      return { rejected: result.rejected, ...(requester !== undefined ? { requester } : {}) }
    },

    async 'ca.revoke'(params) {
      const p = record(params)
      const result = await command(node, {
        type: 'revoke',
        requestId: `revoke-${++commandCounter}`,
        target: text(p, 'target') as string,
      })
      if (result.command !== 'revoke') throw new ControlError('internal', 'unexpected CA answer')
      return { serials: result.serials, names: result.names, listVersion: result.listVersion }
    },

    // `mesh audit`: the newest records with atMs >= sinceMs (default all kept), at most recordsMax.
    async 'audit.tail'(params) {
      const p = record(params)
      const sinceMs = p.sinceMs ?? 0
      const recordsMax = p.recordsMax
      if (typeof sinceMs !== 'number' || !Number.isSafeInteger(sinceMs))
        throw new ControlError('invalid-params', 'sinceMs must be an integer (ms since the epoch)')
      if (
        recordsMax !== undefined &&
        (typeof recordsMax !== 'number' || !Number.isSafeInteger(recordsMax) || recordsMax < 1)
      )
        throw new ControlError('invalid-params', 'recordsMax must be a positive integer')
      const audit = auditOf(options)
      const { records, truncated } = await audit.view(sinceMs, recordsMax)
      return { records, truncated, counters: node.counters().audit, files: audit.counters() }
    },

    // `mesh audit --verify`: the chain and signatures of every kept segment (audit/verify.ts).
    async 'audit.verify'() {
      const audit = auditOf(options)
      const report = await audit.verify(node.certificate().certificate.publicKey)
      return { report, files: audit.counters() }
    },
  }
}

function auditOf(options: ControlHandlersOptions) {
  const audit = options.audit?.()
  if (audit === undefined) throw new ControlError('failed', 'this agent keeps no audit log')
  return audit
}
