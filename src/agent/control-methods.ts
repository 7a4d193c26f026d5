/**
 * The agent's control methods, served on the control socket (src/control/): what `mesh members`, `mesh exec`, `mesh ticket create` and
 * `mesh ca …` ask the running agent. Parameters arrive as untrusted JSON and are checked here; results
 * are plain JSON in the shapes of CLI.md.
 */
import { fingerprintOf, formatFingerprint } from '../ca/fingerprint.js'
import type { IssuerEffect } from '../ca/issuer.js'
import { ROLES, type Role } from '../ca/types.js'
import { ControlError, type ControlHandler } from '../control/index.js'
import { FilterParseError, type TargetFilter } from '../gossip/filter.js'
import type { MeshNode } from '../node/node-types.js'
import { MESH_VERSION } from '../version.js'

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
      const timeoutMs = p.timeoutMs
      if (
        typeof timeoutMs !== 'number' ||
        !Number.isSafeInteger(timeoutMs) ||
        timeoutMs <= 0 ||
        timeoutMs > EXEC_TIMEOUT_MS_MAX
      ) {
        throw new ControlError(
          'invalid-params',
          `timeoutMs must be a positive integer of at most ${EXEC_TIMEOUT_MS_MAX}`,
        )
      }
      const filter = (p.filter ?? {}) as TargetFilter
      try {
        const result = await node.exec({
          action,
          args,
          filter,
          timeoutMs,
          signal: context.signal,
          onEvent: event => context.emit(event.kind, event),
        })
        return { ...result, localActions: await actionNames() }
      } catch (err) {
        if (err instanceof FilterParseError) throw new ControlError('invalid-params', err.message)
        const name = (err as Error).name
        if (name === 'RequestDecodeError') throw new ControlError('invalid-params', (err as Error).message)
        throw new ControlError('failed', (err as Error).message)
      }
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
        bootstrap: node.addrs().slice(0, 8),
      })
      if (result.command !== 'create-ticket') throw new ControlError('internal', 'unexpected CA answer')
      return { ticket: result.ticket, expiresAtMs: result.expiresAtMs }
    },

    async 'ca.list'() {
      return issuerOf(node).listPending()
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
  }
}
