/**
 * The one zone view (`mesh zones`, `--once` expectations): a zone's agent members, who holds its
 * authority and with which epoch. A voter of the zone knows the lease first-hand from the authority
 * driver; every other node asks the zone's voters (AuthorityDriver.lookup: the holder a joint majority
 * of them names), which proves the holder but not the lease's remaining time (`leaseRemainingMs: null`,
 * unknown — never a false 0). The `meshAuthority` fact a holder puts in its heartbeats is a claim, and
 * decides nothing: any member could publish `meshAuthority=web:999999` about itself.
 */
import type { MemberView } from '../membership/view.js'

/** One zone as `mesh zones` shows it. */
export interface ZoneView {
  readonly zone: string
  /** Names of the zone's agent members, sorted. */
  readonly members: readonly string[]
  /** Name of the node holding the zone's authority, or null when none is known. */
  readonly authority: string | null
  readonly epoch: number
  /**
   * What is left of the holder's lease, in ms, when this node knows it first-hand (it votes in the
   * zone). null when it does not: no holder is known, or the holder is known only from its heartbeats
   * (which say who holds the lease, not for how long). JSON: a number or `null`; `mesh zones` shows
   * `unknown` (`-` without a holder).
   */
  readonly leaseRemainingMs: number | null
}

/** The heartbeat fact by which a zone authority announces itself (`zone:epoch`). */
export const AUTHORITY_FACT = 'meshAuthority'

/** Facts as published: the node's own facts plus the authority it holds in its zone, if any. */
export function publishedFacts(
  facts: Readonly<Record<string, string>>,
  zone: string,
  held: { epoch: number } | null,
): Record<string, string> {
  return held === null ? { ...facts } : { ...facts, [AUTHORITY_FACT]: `${zone}:${held.epoch}` }
}

/** A holder proven by a lookup of the zone's voters (names, not peer ids). */
export interface ProvenHolder {
  readonly holder: string
  readonly epoch: number
}

/**
 * Merges the membership table with the zones this node votes in (first-hand views win) and the
 * holders proven by lookups for the others into one sorted list of zones. Heartbeat claims are not
 * read.
 */
export function zoneViews(
  members: readonly MemberView[],
  voted: readonly ZoneView[],
  proven: ReadonlyMap<string, ProvenHolder> = new Map(),
): ZoneView[] {
  const firstHand = new Map(voted.map(z => [z.zone, z]))
  const byZone = new Map<string, { members: string[]; holder: string | null; epoch: number }>()
  for (const m of members) {
    if (!m.roles.includes('agent')) continue
    const entry = byZone.get(m.zone) ?? { members: [], holder: null, epoch: 0 }
    entry.members.push(m.name)
    byZone.set(m.zone, entry)
  }
  for (const [zone, p] of proven) {
    const entry = byZone.get(zone)
    if (entry !== undefined) {
      entry.holder = p.holder
      entry.epoch = p.epoch
    }
  }
  return [...byZone.entries()]
    .sort(([a], [b]) => a.localeCompare(b))
    .map(([zone, entry]) => {
      const view = firstHand.get(zone)
      if (view !== undefined && view.authority !== null) {
        return {
          zone,
          members: entry.members.sort(),
          authority: view.authority,
          epoch: view.epoch,
          leaseRemainingMs: view.leaseRemainingMs,
        }
      }
      return {
        zone,
        members: entry.members.sort(),
        authority: entry.holder,
        epoch: entry.epoch,
        leaseRemainingMs: null,
      }
    })
}

/** Names of the holders in `proven` (zone → holder). */
export function authorityNames(proven: ReadonlyMap<string, ProvenHolder>): Set<string> {
  return new Set([...proven.values()].map(p => p.holder))
}

/**
 * The proven holders of `zones` (the expected set of `--once`), by lookups of each zone's voters, run
 * in parallel: zone → holder name and epoch. Zones with no proven holder are left out. Peer ids are
 * named through `nameOf` (a holder that is not in the membership table keeps its peer id).
 */
export async function provenHolders(
  zones: readonly string[],
  lookup: (zone: string) => Promise<{ holder: string; epoch: number } | null>,
  nameOf: (peerId: string) => string,
): Promise<Map<string, ProvenHolder>> {
  const results = await Promise.all(zones.map(async zone => [zone, await lookup(zone)] as const))
  const out = new Map<string, ProvenHolder>()
  for (const [zone, found] of results) {
    if (found !== null) out.set(zone, { holder: nameOf(found.holder), epoch: found.epoch })
  }
  return out
}
