/**
 * Who votes on a zone's lease. Voters come from the roster of certified members (certificates minus
 * revocations), never from "who I can see now": a quorum of a view is not a quorum.
 *
 * - Every member of a zone is a candidate (any member may hold its lease).
 * - Its voters are at most {@link VOTERS_MAX} of them: the top-ranked members by HRW on the zone
 *   (rendezvous.ts). A holder's traffic then stays flat however large the zone (it renews with at most
 *   four peers), adding or removing a member outside the top never changes the voters, and removing a
 *   voter changes one seat (the next-ranked member takes it). A new member that ranks into the top
 *   takes the lowest-ranked voter's seat, also one seat.
 * - A zone of two adds one witness voter from outside the zone, the top HRW-ranked non-member, so the
 *   voter count is odd and the survivor of the pair can still win a majority.
 * - A zone of one is its own authority (one voter, majority one).
 *
 * Voter changes (see docs/authority.md): a signed roster names each zone's voters before its last
 * change (its prior, src/ca/zone-roster.ts) and quorums are JOINT majorities of both (authority.ts), so
 * old and new majorities always intersect, also when a change swaps a witness for a member (two voters
 * at once). Unsigned rosters keep the sets of the last settle period instead.
 */
import { rankCandidates } from './rendezvous.js'

/** One certified member as the roster knows it. */
export interface RosterMember {
  /** Node id (the driver uses the peer id string). */
  readonly id: string
  /** The zone from the member's certificate. */
  readonly zone: string
}

/**
 * Most voters of one zone (witness included when a zone of two has one). Five voters survive the loss
 * of any two; a holder renews with four peers.
 */
export const VOTERS_MAX = 5

/** The voters of one zone, computed from a roster. All lists are sorted ascending and duplicate-free. */
export interface ZoneVoters {
  readonly zone: string
  /** Certified members of the zone: the candidates. */
  readonly members: readonly string[]
  /** The top {@link VOTERS_MAX} members by HRW rank, plus the witness, if any. */
  readonly voters: readonly string[]
  /** The witness added to a zone of two, or null. */
  readonly witness: string | null
}

/** Closed set of reasons a roster is refused. */
export type RosterErrorCode = 'too-many-members' | 'bad-id' | 'bad-zone' | 'duplicate-member'

/** Limits a roster must respect; sizes of ids and zones are in UTF-16 code units. */
export interface RosterLimits {
  readonly membersMax: number
  readonly idLengthMax: number
  readonly zoneLengthMax: number
}

/** Result of {@link normalizeRoster}. */
export type RosterResult =
  | { readonly ok: true; readonly roster: readonly RosterMember[] }
  | { readonly ok: false; readonly code: RosterErrorCode; readonly detail: string }

/**
 * Checks a roster against `limits` and returns it sorted by id. A member listed twice with the same
 * zone is kept once; listed with two zones it is refused (certificates give one zone per node).
 * Never throws.
 */
export function normalizeRoster(members: readonly RosterMember[], limits: RosterLimits): RosterResult {
  if (members.length > limits.membersMax * 2) {
    return { ok: false, code: 'too-many-members', detail: `${members.length} entries` }
  }
  const byId = new Map<string, string>()
  for (const member of members) {
    if (typeof member.id !== 'string' || member.id.length === 0 || member.id.length > limits.idLengthMax) {
      return { ok: false, code: 'bad-id', detail: describeJunk(member.id) }
    }
    if (
      typeof member.zone !== 'string' ||
      member.zone.length === 0 ||
      member.zone.length > limits.zoneLengthMax
    ) {
      return { ok: false, code: 'bad-zone', detail: describeJunk(member.zone) }
    }
    const known = byId.get(member.id)
    if (known !== undefined && known !== member.zone) {
      return { ok: false, code: 'duplicate-member', detail: member.id }
    }
    byId.set(member.id, member.zone)
  }
  if (byId.size > limits.membersMax) {
    return { ok: false, code: 'too-many-members', detail: `${byId.size} members` }
  }
  const roster = [...byId].map(([id, zone]) => ({ id, zone })).sort((a, b) => (a.id < b.id ? -1 : 1))
  return { ok: true, roster }
}

/** A short description of a bad value (String() throws on objects without a prototype). */
function describeJunk(value: unknown): string {
  return typeof value === 'string' ? value.slice(0, 64) : typeof value
}

/** The zones named in `roster`, sorted. */
export function rosterZones(roster: readonly RosterMember[]): string[] {
  return [...new Set(roster.map(m => m.zone))].sort()
}

/**
 * Voters of `zone` under `roster`: its {@link VOTERS_MAX} top-ranked members (HRW on the zone), all of
 * them in a zone of five or fewer. A zone with no members has no voters. A zone of two gets the
 * top-ranked node outside the zone as witness, when there is one.
 */
export function zoneVoters(zone: string, roster: readonly RosterMember[]): ZoneVoters {
  const members = [...new Set(roster.filter(m => m.zone === zone).map(m => m.id))].sort()
  const seats = members.length <= VOTERS_MAX ? members : rankCandidates(zone, members).slice(0, VOTERS_MAX)
  let witness: string | null = null
  if (members.length === 2) {
    const outsiders = roster.filter(m => m.zone !== zone).map(m => m.id)
    witness = rankCandidates(zone, outsiders)[0] ?? null
  }
  const voters = witness === null ? [...seats].sort() : [...seats, witness].sort()
  return { zone, members, voters, witness }
}

/**
 * Zones whose lease `self` votes on under `roster` (not counting priors): its own zone when it holds one
 * of its seats, and the zones it is the witness of.
 */
export function votingZones(self: string, roster: readonly RosterMember[]): string[] {
  return rosterZones(roster).filter(zone => zoneVoters(zone, roster).voters.includes(self))
}

/** The zone `self` is a member (a candidate) of under `roster`, or null when it is not listed. */
export function memberZone(self: string, roster: readonly RosterMember[]): string | null {
  return roster.find(m => m.id === self)?.zone ?? null
}

/** Whether two voter lists hold the same ids (both sorted, as {@link zoneVoters} returns them). */
export function sameVoters(a: readonly string[], b: readonly string[]): boolean {
  return a.length === b.length && a.every((id, i) => id === b[i])
}
