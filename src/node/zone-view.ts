/**
 * The one zone view (`mesh zones`, `--once` expectations): a zone's agent members, who holds its
 * authority and with which epoch. A voter of the zone knows the lease first-hand from the authority
 * driver; every other node goes by the `meshAuthority` fact in the holders' heartbeats, which names
 * the holder but not the lease's remaining time (`leaseRemainingMs: null`, unknown — never a false 0).
 */
import type { MemberView } from '../gossip/membership.js'

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

/** Reads an `AUTHORITY_FACT` value; undefined for anything that is not `zone:epoch`. */
export function parseAuthorityFact(value: string | undefined): { zone: string; epoch: number } | undefined {
  if (value === undefined) return undefined
  const at = value.lastIndexOf(':')
  const epoch = Number(value.slice(at + 1))
  if (at <= 0 || !Number.isSafeInteger(epoch)) return undefined
  return { zone: value.slice(0, at), epoch }
}

/** Facts as published: the node's own facts plus the authority it holds in its zone, if any. */
export function publishedFacts(
  facts: Readonly<Record<string, string>>,
  zone: string,
  held: { epoch: number } | null,
): Record<string, string> {
  return held === null ? { ...facts } : { ...facts, [AUTHORITY_FACT]: `${zone}:${held.epoch}` }
}

/**
 * Merges the membership table with the zones this node votes in (first-hand views win) into one
 * sorted list of zones.
 */
export function zoneViews(members: readonly MemberView[], voted: readonly ZoneView[]): ZoneView[] {
  const firstHand = new Map(voted.map(z => [z.zone, z]))
  const byZone = new Map<string, { members: string[]; holder: string | null; epoch: number }>()
  for (const m of members) {
    if (!m.roles.includes('agent')) continue
    const entry = byZone.get(m.zone) ?? { members: [], holder: null, epoch: 0 }
    entry.members.push(m.name)
    const claim = parseAuthorityFact(m.facts[AUTHORITY_FACT])
    if (claim !== undefined && claim.zone === m.zone && m.state === 'alive' && claim.epoch >= entry.epoch) {
      entry.holder = m.name
      entry.epoch = claim.epoch
    }
    byZone.set(m.zone, entry)
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

/** Names of the nodes currently holding a zone's authority (the expected set of `--once`). */
export function authorityNames(zones: readonly ZoneView[]): Set<string> {
  const names = new Set<string>()
  for (const zone of zones) if (zone.authority !== null) names.add(zone.authority)
  return names
}
