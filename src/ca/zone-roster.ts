/**
 * Zone rosters: the CA's signed, versioned statement of which certified agent members exist and in
 * which zone. The zone-authority core computes every zone's voters from it (src/authority/voters.ts),
 * so two nodes holding the same roster version compute the same voters: voter sets agree by
 * construction, not by waiting for membership views to settle (docs/authority.md).
 *
 * Wire form: the signed envelope of src/wire/envelope.ts, signed by the CA key under
 * {@link DOMAIN_ZONE_ROSTER}. The body's `version` is {@link ZONE_ROSTER_FORMAT_VERSION}; the roster's
 * own, increasing number is `rosterVersion`. Each member carries `since`, the roster version that added
 * it. A zone whose last voter change could leave two majorities apart carries its prior
 * ({@link ZonePrior}): lease quorums need a majority of the zone's voters and of its prior, which keeps a
 * holder elected by the old voters and a candidate counting the new ones from both holding.
 */

import { majoritySize } from '../authority/quorum.js'
import { rosterZones, sameVoters, VOTERS_MAX, zoneVoters } from '../authority/voters.js'
import { type CborValue, DecodeError, decodeCbor, encodeCbor } from '../wire/cbor.js'
import { DOMAIN_ZONE_ROSTER } from '../wire/domains.js'
import type { SigningKey } from '../wire/ed25519.js'
import { sealEnvelope } from '../wire/envelope.js'
import {
  readArray,
  readBytes,
  readFormatVersion,
  readInteger,
  readName,
  readRecord,
  readText,
  tryRead,
} from '../wire/fields.js'
import { type CaDocumentRejection, openCaDocument } from './ca-document.js'
import { FINGERPRINT_BYTES, fingerprintOf } from './fingerprint.js'

/** Format version of zone rosters. */
export const ZONE_ROSTER_FORMAT_VERSION = 1
/** Most members in one roster. */
export const ZONE_ROSTER_MEMBERS_MAX = 4096
/**
 * Largest encoded roster, in bytes: the largest the limits allow — 4,096 members in zones with
 * 64-character names, in zones of two whose voters all changed (priors of three) — is 1.08 MB.
 */
export const ZONE_ROSTER_BYTES_MAX = 1_572_864
/**
 * Most CBOR items of a roster's body: its fields, seven per member (a map of three fields) and for
 * each zone's prior thirteen at most (a map of three fields whose voters, a bounded voter set of
 * src/authority/voters.ts and a witness, are at most six). A roster is decoded before its signature is
 * checked; the bound keeps a hostile one as cheap as the largest real one (docs/fuzz.md).
 */
const ZONE_ROSTER_ITEMS_MAX = 16 + (7 + 7 + VOTERS_MAX + 1) * ZONE_ROSTER_MEMBERS_MAX

/** Highest roster version accepted (as the authority's epochs: far beyond any real count, far below 2^53). */
export const ZONE_ROSTER_VERSION_MAX = 2 ** 40

const PEER_ID_CHARS_MAX = 128

/** One certified agent member. */
export interface ZoneRosterMember {
  readonly peerId: string
  readonly zone: string
  /** The roster version that added this member (in this zone). */
  readonly since: number
}

/**
 * The voters a zone had before its voter set last changed, and the version that changed it, when a
 * majority of the old set could miss a majority of the new one (a seat that changed hands, a witness
 * swapped for a member). Lease quorums need a majority of these too, so a holder elected by the old set
 * and a candidate counting the new one always share a voter — also for a node that missed every version
 * in between, because the entry stays until the zone's voters change again.
 */
export interface ZonePrior {
  readonly zone: string
  /**
   * Sorted, unique peer ids: the zone's voters as src/authority/voters.ts computes them, keeping only
   * those still in the roster (the votes of a revoked or expired member never count).
   */
  readonly voters: readonly string[]
  /** The roster version whose change made these the previous voters. */
  readonly since: number
}

/** The content of a zone roster. Members are sorted by peer id, one entry per id. */
export interface ZoneRoster {
  /** Increases by one with every roster the CA publishes; 0 is the empty roster before any member. */
  readonly version: number
  readonly issuedAtMs: number
  /** The mesh fingerprint (SHA-256 of the CA public key). */
  readonly issuer: Uint8Array
  readonly members: readonly ZoneRosterMember[]
  /** Per zone whose voters ever changed: the voters before the last change. Sorted by zone. */
  readonly priors: readonly ZonePrior[]
}

/** A roster with its exact signed bytes (what is published and stored). */
export interface SignedZoneRoster {
  readonly roster: ZoneRoster
  readonly bytes: Uint8Array
}

/** Why a roster was refused. A closed set. */
export type ZoneRosterRejection = CaDocumentRejection

/** Result of {@link verifyZoneRoster}. */
export type ZoneRosterVerdict =
  | { readonly ok: true; readonly signed: SignedZoneRoster }
  | { readonly ok: false; readonly reason: ZoneRosterRejection; readonly detail: string }

/** Raised by {@link signZoneRoster} for content that could not form a valid roster. */
export class ZoneRosterError extends Error {
  override name = 'ZoneRosterError'
  readonly code: 'invalid-fields' | 'too-large'
  constructor(code: 'invalid-fields' | 'too-large', message: string) {
    super(message)
    this.code = code
  }
}

const byPeerId = <T extends { peerId: string }>(a: T, b: T): number =>
  a.peerId < b.peerId ? -1 : a.peerId > b.peerId ? 1 : 0

/**
 * Signs a roster; members and priors may come in any order (they are sorted) but peer ids and zones
 * must be unique, and every `since` must be at most `version`.
 * @throws ZoneRosterError
 */
export function signZoneRoster(
  caKey: SigningKey,
  content: {
    version: number
    issuedAtMs: number
    members: readonly ZoneRosterMember[]
    priors: readonly ZonePrior[]
  },
): SignedZoneRoster {
  // Only the known fields: a caller's richer objects must not leak extra keys into the signed body.
  const members = [...content.members]
    .sort(byPeerId)
    .map(m => ({ peerId: m.peerId, zone: m.zone, since: m.since }))
  const priors = [...content.priors]
    .sort((a, b) => (a.zone < b.zone ? -1 : a.zone > b.zone ? 1 : 0))
    .map(p => ({ zone: p.zone, voters: [...p.voters].sort(), since: p.since }))
  if (members.length > ZONE_ROSTER_MEMBERS_MAX) {
    throw new ZoneRosterError('too-large', `more than ${ZONE_ROSTER_MEMBERS_MAX} members`)
  }
  const body: CborValue = {
    version: ZONE_ROSTER_FORMAT_VERSION,
    rosterVersion: content.version,
    issuedAtMs: content.issuedAtMs,
    issuer: fingerprintOf(caKey.publicKey),
    members,
    priors,
  }
  // Re-reading what we are about to sign keeps the writer and the reader on one definition.
  const read = tryRead(() => readZoneRoster(decodeCbor(encodeCbor(body), Number.POSITIVE_INFINITY)))
  if (!read.ok) throw new ZoneRosterError('invalid-fields', read.detail)
  const bytes = sealEnvelope(DOMAIN_ZONE_ROSTER, caKey, body)
  if (bytes.byteLength > ZONE_ROSTER_BYTES_MAX) {
    throw new ZoneRosterError('too-large', `roster is ${bytes.byteLength} bytes`)
  }
  return { roster: read.value, bytes }
}

/** Decodes and verifies a roster against the mesh CA key. Never throws. */
export function verifyZoneRoster(bytes: Uint8Array, caPublicKey: Uint8Array): ZoneRosterVerdict {
  const opened = openCaDocument(bytes, caPublicKey, {
    domain: DOMAIN_ZONE_ROSTER,
    bytesMax: ZONE_ROSTER_BYTES_MAX,
    itemsMax: ZONE_ROSTER_ITEMS_MAX,
    read: readZoneRoster,
    what: 'roster',
  })
  return opened.ok ? { ok: true, signed: { roster: opened.value, bytes } } : opened
}

function readZoneRoster(content: unknown): ZoneRoster {
  const record = readRecord(content, 'zone roster', [
    'version',
    'rosterVersion',
    'issuedAtMs',
    'issuer',
    'members',
    'priors',
  ])
  readFormatVersion(record, 'zone roster', ZONE_ROSTER_FORMAT_VERSION, 'upgrade mesh on the CA machine')
  const version = readInteger(record, 'rosterVersion', { max: ZONE_ROSTER_VERSION_MAX })
  const members = readZoneRosterMembers(record, version)
  return {
    version,
    issuedAtMs: readInteger(record, 'issuedAtMs'),
    issuer: readBytes(record, 'issuer', { length: FINGERPRINT_BYTES }),
    members,
    priors: readZonePriors(record, version),
  }
}

/**
 * Reads the `priors` list of a roster at `version`: sorted by unique zone, each with sorted, unique,
 * non-empty voters and `since` in 2..version (version 1 follows the empty roster, so nothing can have
 * changed before it). Shared with the issuer's state file.
 * @throws DecodeError `malformed`
 */
export function readZonePriors(record: Record<string, unknown>, version: number): ZonePrior[] {
  const priors = readArray(record, 'priors', ZONE_ROSTER_MEMBERS_MAX, item => {
    const p = readRecord(item, 'zone prior', ['zone', 'voters', 'since'])
    const voters = readArray(p, 'voters', ZONE_ROSTER_MEMBERS_MAX, v => {
      if (typeof v !== 'string' || v.length === 0 || v.length > PEER_ID_CHARS_MAX) {
        throw new DecodeError('malformed', 'a prior voter is not a peer id')
      }
      return v
    })
    for (let i = 1; i < voters.length; i++) {
      if ((voters[i - 1] ?? '') >= (voters[i] ?? '')) {
        throw new DecodeError('malformed', 'prior voters are not sorted and unique')
      }
    }
    if (voters.length === 0) throw new DecodeError('malformed', 'a zone prior lists no voters')
    return { zone: readName(p, 'zone'), voters, since: readInteger(p, 'since', { min: 2, max: version }) }
  })
  for (let i = 1; i < priors.length; i++) {
    if ((priors[i - 1]?.zone ?? '') >= (priors[i]?.zone ?? '')) {
      throw new DecodeError('malformed', 'zone priors are not sorted by unique zone')
    }
  }
  return priors
}

/**
 * Reads the `members` list of a roster at `version`: sorted by unique peer id, every `since` in
 * 1..version, and empty at version 0. Shared with the issuer's state file (src/ca/issuer-state.ts), so
 * a restored roster is one the CA can sign again.
 * @throws DecodeError `malformed`
 */
export function readZoneRosterMembers(record: Record<string, unknown>, version: number): ZoneRosterMember[] {
  const members = readArray(record, 'members', ZONE_ROSTER_MEMBERS_MAX, item => {
    const m = readRecord(item, 'roster member', ['peerId', 'zone', 'since'])
    return {
      peerId: readText(m, 'peerId', PEER_ID_CHARS_MAX),
      zone: readName(m, 'zone'),
      since: readInteger(m, 'since', { min: 1, max: version }),
    }
  })
  // Sorted and unique: one canonical encoding per roster.
  for (let i = 1; i < members.length; i++) {
    if ((members[i - 1]?.peerId ?? '') >= (members[i]?.peerId ?? '')) {
      throw new DecodeError('malformed', 'roster entries are not sorted by unique peer id')
    }
  }
  if (version === 0 && members.length > 0) {
    throw new DecodeError('malformed', 'roster version 0 must be empty')
  }
  return members
}

/** True when `candidate` should replace `current` (higher version; anything beats no roster). */
export function newerZoneRoster(candidate: ZoneRoster, current: ZoneRoster | undefined): boolean {
  return current === undefined || candidate.version > current.version
}

/**
 * The roster that follows `previous` when the certified members are `members` (peer id → zone): the
 * version goes up by one when anything changed, kept members keep their `since` (a member that changed
 * zone is added anew), and each zone's prior follows {@link nextPriors}. Returns `undefined` when
 * nothing changed. Pure (the issuer calls it).
 */
export function nextZoneRoster(
  previous: { version: number; members: readonly ZoneRosterMember[]; priors: readonly ZonePrior[] },
  members: ReadonlyMap<string, string>,
): { version: number; members: ZoneRosterMember[]; priors: ZonePrior[] } | undefined {
  const before = new Map(previous.members.map(m => [m.peerId, m]))
  const same =
    before.size === members.size && [...members].every(([id, zone]) => before.get(id)?.zone === zone)
  if (same) return undefined
  const version = previous.version + 1
  const next: ZoneRosterMember[] = [...members].map(([peerId, zone]) => {
    const old = before.get(peerId)
    return { peerId, zone, since: old !== undefined && old.zone === zone ? old.since : version }
  })
  return { version, members: next.sort(byPeerId), priors: nextPriors(previous, members, version) }
}

/**
 * Each zone's prior after moving from `previous` to `members` at `version`: a zone whose voters change
 * now gets its old voters, unless every majority of the old voters shares a voter with every majority of
 * the new ones (a voter added to or removed from a set, e.g. a zone of four gaining its fifth member):
 * then the new voters alone meet any quorum of the old, and the zone has no prior, so it survives losing
 * any two of five voters again. A zone whose voters stay keeps its prior; a zone left with no members
 * has none. Voters are the bounded sets of src/authority/voters.ts (at most VOTERS_MAX seats): a member
 * without a seat joining or leaving keeps the prior, a seat that changes hands (a voter revoked in a zone
 * of more than five, a newcomer ranked into the top five) makes one. Only voters still in `members` are
 * listed (and a prior left empty is dropped): nodes count no one else, and it keeps the roster within
 * its size bound.
 */
function nextPriors(
  previous: { members: readonly ZoneRosterMember[]; priors: readonly ZonePrior[] },
  members: ReadonlyMap<string, string>,
  version: number,
): ZonePrior[] {
  const before = previous.members.map(m => ({ id: m.peerId, zone: m.zone }))
  const after = [...members].map(([id, zone]) => ({ id, zone }))
  const kept = new Map(previous.priors.map(p => [p.zone, p]))
  const out: ZonePrior[] = []
  for (const zone of rosterZones(after)) {
    const old = zoneVoters(zone, before).voters
    const now = zoneVoters(zone, after).voters
    let prior: ZonePrior | undefined
    if (sameVoters(old, now)) prior = kept.get(zone)
    else if (!majoritiesMeet(old, now)) prior = { zone, voters: old, since: version }
    const voters = prior?.voters.filter(id => members.has(id)) ?? []
    if (prior !== undefined && voters.length > 0) out.push({ zone, voters, since: prior.since })
  }
  return out
}

/**
 * Whether every majority of voter set `a` shares a voter with every majority of `b`: two majorities
 * together outnumber the voters of both sets. Then a holder elected by `a` and a candidate counting `b`
 * always meet at a voter, with no prior.
 */
function majoritiesMeet(a: readonly string[], b: readonly string[]): boolean {
  return majoritySize(a.length) + majoritySize(b.length) > new Set([...a, ...b]).size
}
