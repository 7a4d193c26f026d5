/** `mesh members` and `mesh zones`, as the local agent sees the mesh. */

import type { MemberView } from '../membership/view.js'
import { systemClock } from '../node/clock.js'
import type { ZoneView } from '../node/zone-view.js'
import { table, withAgent } from './agent-client.js'
import { type CliIo, type GlobalOptions, printJson } from './io.js'

/** What the control methods send: the library's own member and zone views, as JSON. */
type Member = Pick<
  MemberView,
  'name' | 'peerId' | 'zone' | 'roles' | 'addrs' | 'state' | 'lastSeenMs' | 'facts'
>
type Zone = ZoneView

export async function members(io: CliIo, globals: GlobalOptions): Promise<number> {
  const list = (await withAgent(globals, c => c.call('members', {}, { timeoutMs: 10_000 }))) as Member[]
  if (globals.json) {
    printJson(io, list)
    return 0
  }
  const now = systemClock.nowMs()
  io.stdout.write(
    `${table([
      ['NAME', 'ZONE', 'ROLES', 'STATE', 'LAST SEEN', 'ADDRESS'],
      ...list.map(m => [
        m.name,
        m.zone,
        m.roles.join(','),
        m.state,
        `${Math.max(0, Math.round((now - m.lastSeenMs) / 100) / 10)}s ago`,
        m.addrs[0] ?? '',
      ]),
    ])}\n`,
  )
  return 0
}

export async function zones(io: CliIo, globals: GlobalOptions): Promise<number> {
  const list = (await withAgent(globals, c => c.call('zones', {}, { timeoutMs: 10_000 }))) as Zone[]
  if (globals.json) {
    printJson(io, list)
    return 0
  }
  io.stdout.write(
    `${table([
      ['ZONE', 'AUTHORITY', 'EPOCH', 'LEASE', 'MEMBERS'],
      ...list.map(z => [z.zone, z.authority ?? '-', String(z.epoch), formatLease(z), z.members.join(', ')]),
    ])}\n`,
  )
  return 0
}

/**
 * The LEASE column: `-` without a holder; `unknown` when the holder is known only from heartbeats
 * (this node does not vote in the zone); else the time left.
 */
export function formatLease(zone: Pick<ZoneView, 'authority' | 'leaseRemainingMs'>): string {
  if (zone.authority === null) return '-'
  return zone.leaseRemainingMs === null ? 'unknown' : `${zone.leaseRemainingMs}ms`
}
