/**
 * Members as the rest of mesh sees them: the shape of `mesh members --json` (docs/cli.md) and the
 * expected set of `mesh exec`. Built by the membership driver from the SWIM core's table and the
 * members' verified records.
 */
import type { Role } from '../ca/types.js'
import { type CompiledFilter, compileFilter, matchesFilter, type TargetFilter } from '../gossip/filter.js'

/** Liveness of a member: `left` said goodbye (it stopped on purpose), `dead` stopped answering. */
export type MemberState = 'alive' | 'suspect' | 'dead' | 'left'

/** One member in CLI.md's `mesh members --json` shape. */
export interface MemberView {
  readonly name: string
  readonly peerId: string
  readonly zone: string
  readonly roles: readonly Role[]
  readonly addrs: readonly string[]
  readonly state: MemberState
  /** Our clock when the member last showed it was alive, ms since the epoch. */
  readonly lastSeenMs: number
  readonly facts: Readonly<Record<string, string>>
  /** Expiry of the member's certificate (ms since the epoch). */
  readonly certificateNotAfterMs?: number
}

/**
 * The nodes a requester should expect to answer: live members (alive or suspect: a suspicion is not a
 * death, and a live node under suspicion still answers) with the `agent` role that match the filter.
 * A member that really failed and is still suspect is then reported missing, which it is. For `once`
 * filters, pass the names currently holding their zone's authority.
 * @throws FilterParseError only when given an uncompiled, invalid filter
 */
export function expectedNodes(
  members: readonly MemberView[],
  filter: TargetFilter | CompiledFilter,
  authorities: ReadonlySet<string> = new Set(),
): string[] {
  const compiled = 'source' in filter ? filter : compileFilter(filter)
  return members
    .filter(m => (m.state === 'alive' || m.state === 'suspect') && m.roles.includes('agent'))
    .filter(m =>
      matchesFilter(compiled, {
        name: m.name,
        zone: m.zone,
        facts: m.facts,
        authority: authorities.has(m.name),
      }),
    )
    .map(m => m.name)
    .sort()
}
