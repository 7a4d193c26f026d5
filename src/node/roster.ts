/**
 * The zone-authority roster: every certified agent member this node has seen, with its zone,
 * certificate expiry and last addresses. It is persisted (the home's `roster` file) so that a restarted
 * node still knows every voter of its zone and can find the mesh again when its bootstrap moved. Entries
 * expire with their certificate; revoked members are forgotten for good.
 */

import type { MemberView } from '../membership/view.js'
import { decodeCbor, encodeCbor } from '../wire/cbor.js'
import type { Logger } from './log.js'

/** One remembered member of the roster (persisted). */
export interface RosterEntry {
  readonly peerId: string
  readonly zone: string
  /** Certificate expiry; the entry is dropped (and the member stops voting) after it. */
  readonly notAfterMs: number
  /** Last addresses the member announced, so a restarted node can find the mesh again. */
  readonly addrs?: readonly string[]
}

/** Addresses remembered per roster entry. */
export const ROSTER_ADDRS_MAX = 8

/** Most roster entries remembered. */
export const ROSTER_ENTRIES_MAX = 4096

/** Largest roster file read. */
export const ROSTER_BYTES_MAX = 1 << 20

/** Encodes a roster for the home's `roster` file. */
export function encodeRoster(entries: readonly RosterEntry[]): Uint8Array {
  return encodeCbor({
    v: 1,
    members: entries.map(e => ({
      peerId: e.peerId,
      zone: e.zone,
      notAfterMs: e.notAfterMs,
      addrs: [...(e.addrs ?? [])].slice(0, ROSTER_ADDRS_MAX),
    })),
  })
}

/** Decodes a roster file; anything malformed yields an empty roster (the node then re-learns it). */
export function decodeRoster(bytes: Uint8Array): RosterEntry[] {
  return readRosterFile(bytes).entries
}

/**
 * Decodes a roster file and says what was wrong with it (`problem`, one phrase) when it is not a whole
 * roster: undecodable bytes give no entries, malformed entries are left out.
 */
export function readRosterFile(bytes: Uint8Array): { entries: RosterEntry[]; problem?: string } {
  let value: { v?: unknown; members?: unknown }
  try {
    value = decodeCbor(bytes, ROSTER_BYTES_MAX) as { v?: unknown; members?: unknown }
  } catch (err) {
    return { entries: [], problem: (err as Error).message }
  }
  if (value?.v !== 1 || !Array.isArray(value.members))
    return { entries: [], problem: 'not a version 1 roster' }
  const valid = value.members
    .filter(
      (m): m is RosterEntry =>
        typeof m?.peerId === 'string' && typeof m?.zone === 'string' && Number.isSafeInteger(m?.notAfterMs),
    )
    .map(m => ({
      peerId: m.peerId,
      zone: m.zone,
      notAfterMs: m.notAfterMs,
      addrs: Array.isArray(m.addrs)
        ? m.addrs.filter((a: unknown) => typeof a === 'string').slice(0, ROSTER_ADDRS_MAX)
        : [],
    }))
  const entries = valid.slice(0, ROSTER_ENTRIES_MAX)
  const malformed = value.members.length - valid.length
  return malformed > 0 ? { entries, problem: `${malformed} malformed entries` } : { entries }
}

/** The roster a node keeps in memory. */
export interface Roster {
  /**
   * Merges this node's entry and the agent members of the membership table, drops expired entries and
   * persists when anything changed. `wallMs` is the wall clock (certificate expiry is wall time).
   */
  merge(selfEntry: RosterEntry, members: readonly MemberView[], wallMs: number): void
  /** Removes a revoked member for good; true when it was known. */
  forget(peerId: string): boolean
  entries(): RosterEntry[]
  get(peerId: string): RosterEntry | undefined
}

/** Creates a roster from what an earlier run saved. */
export function createRoster(init: {
  readonly initial?: readonly RosterEntry[]
  readonly save?: (bytes: Uint8Array) => Promise<void>
  readonly log: Logger
}): Roster {
  const known = new Map<string, RosterEntry>((init.initial ?? []).map(e => [e.peerId, e]))
  let saving = Promise.resolve()
  const persist = (): void => {
    if (init.save === undefined) return
    const bytes = encodeRoster([...known.values()])
    saving = saving
      .then(() => init.save?.(bytes))
      .catch(err => init.log.warn({ err: String(err) }, 'cannot save roster'))
  }
  const upsert = (entry: RosterEntry): boolean => {
    const previous = known.get(entry.peerId)
    if (previous === undefined && known.size >= ROSTER_ENTRIES_MAX) return false
    const addrs = entry.addrs !== undefined && entry.addrs.length > 0 ? entry.addrs : (previous?.addrs ?? [])
    if (
      previous !== undefined &&
      previous.zone === entry.zone &&
      previous.notAfterMs >= entry.notAfterMs &&
      (previous.addrs ?? []).join(' ') === addrs.join(' ')
    ) {
      return false
    }
    known.set(entry.peerId, {
      ...entry,
      notAfterMs: Math.max(entry.notAfterMs, previous?.notAfterMs ?? 0),
      addrs,
    })
    return true
  }
  return {
    merge(selfEntry, members, wallMs) {
      let changed = upsert(selfEntry)
      for (const m of members) {
        if (!m.roles.includes('agent')) continue
        const entry = {
          peerId: m.peerId,
          zone: m.zone,
          notAfterMs: m.certificateNotAfterMs ?? wallMs + 60_000,
          addrs: m.addrs.slice(0, ROSTER_ADDRS_MAX),
        }
        if (upsert(entry)) changed = true
      }
      for (const [id, entry] of known) {
        if (entry.notAfterMs < wallMs && id !== selfEntry.peerId) {
          known.delete(id)
          changed = true
        }
      }
      if (changed) persist()
    },
    forget(peerId) {
      if (!known.delete(peerId)) return false
      persist()
      return true
    },
    entries: () => [...known.values()],
    get: peerId => known.get(peerId),
  }
}
