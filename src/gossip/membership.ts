/**
 * The membership table: who is in the mesh, built from verified presence heartbeats.
 *
 * Pure state machine: `step(heartbeat, nowMs)` for each verified heartbeat (the node's own included,
 * since gossipsub does not deliver our own messages), `tick(nowMs)` from a timer, `drain()` for the
 * events to log or act on. A member's state follows the time since its last heartbeat:
 *
 * ```
 *            heartbeat                 silence > suspectAfterMs        silence > deadAfterMs
 *   (new) ─────────────▶ alive ───────────────────────────▶ suspect ─────────────────────▶ dead
 *                          ▲                                   │                            │
 *                          └──────────── heartbeat ────────────┴────────────────────────────┘
 *   dead and silence > forgetAfterMs, or certificate revoked ─▶ removed
 * ```
 *
 * Entries are keyed by name. A heartbeat is applied only when its `seq` is higher than the last one
 * (or the member is dead, which covers a restart that lost its counter). A heartbeat carrying a
 * different certificate replaces the entry only when that certificate is newer (`notBeforeMs`),
 * so a re-issued node takes over its name and a stale copy cannot take it back.
 */
import type { Role } from '../ca/types.js'
import { type CompiledFilter, compileFilter, matchesFilter, type TargetFilter } from './filter.js'
import type { VerifiedHeartbeat } from './presence.js'

/** Default most members kept. */
export const MEMBERS_MAX = 4096
/** Most undrained events kept; older ones are dropped and counted. */
export const MEMBERSHIP_EVENTS_MAX = 4096

/**
 * Most a member's announced heartbeat period may stretch its timeouts, as a multiple of ours. Honest
 * drivers stretch their period at most this much (src/node/membership-driver.ts imports it); a peer
 * announcing more (up to the 10 min the codec accepts) must not stay "alive" for 100 minutes after it
 * left, so the announced period is clamped here before it scales anything.
 */
export const HEARTBEAT_STRETCH_MAX = 10

/** Liveness of a member. */
export type MemberState = 'alive' | 'suspect' | 'dead'

/** Failure-detector timings, all ms. Relationships are checked by {@link createMembership}. */
export interface MembershipTimings {
  /** How often each node publishes a heartbeat. */
  readonly heartbeatIntervalMs: number
  /** Silence after which a member is suspect (must exceed the interval). */
  readonly suspectAfterMs: number
  /** Silence after which a member is dead (must exceed suspectAfterMs). */
  readonly deadAfterMs: number
  /** Silence after which a dead member is removed (at least deadAfterMs). */
  readonly forgetAfterMs: number
}

/** One member in CLI.md's `mesh members --json` shape. */
export interface MemberView {
  readonly name: string
  readonly peerId: string
  readonly zone: string
  readonly roles: readonly Role[]
  readonly addrs: readonly string[]
  readonly state: MemberState
  /** Our clock when its last heartbeat was applied, ms since the epoch. */
  readonly lastSeenMs: number
  readonly facts: Readonly<Record<string, string>>
  /** Expiry of the member's certificate (ms since the epoch). */
  readonly certificateNotAfterMs?: number
}

/** What happened to the table. */
export type MembershipEvent =
  | { readonly kind: 'joined'; readonly name: string }
  | { readonly kind: 'state'; readonly name: string; readonly from: MemberState; readonly to: MemberState }
  | { readonly kind: 'removed'; readonly name: string; readonly reason: 'revoked' | 'forgotten' | 'evicted' }

/** Result of {@link Membership.step}. */
export type MembershipStepResult = 'added' | 'updated' | 'stale' | 'full'

/** Counters of refused heartbeats and limit hits. */
export interface MembershipCounters {
  stale: number
  /** Heartbeats from new members refused because the table was full of live members. */
  full: number
  /** Events dropped because nobody drained them. */
  eventsDropped: number
}

/** The membership table. */
export interface Membership {
  step(verified: VerifiedHeartbeat, nowMs: number): MembershipStepResult
  tick(nowMs: number): void
  /** Removes the member holding the certificate with this serial; true when one was removed. */
  revoke(serial: string): boolean
  drain(): MembershipEvent[]
  /** All members, sorted by name. */
  list(): MemberView[]
  get(name: string): MemberView | undefined
  readonly size: number
  readonly counters: Readonly<MembershipCounters>
}

/** Raised for timings whose relationships do not hold. */
export class MembershipConfigError extends Error {
  override name = 'MembershipConfigError'
  readonly code = 'bad-timings'
}

/** Checks the timing relationships; returns every problem (empty when fine). */
export function checkMembershipTimings(t: MembershipTimings): string[] {
  const problems: string[] = []
  if (!(t.heartbeatIntervalMs > 0)) problems.push('heartbeatIntervalMs must be > 0')
  if (!(t.suspectAfterMs > t.heartbeatIntervalMs))
    problems.push('suspectAfterMs must exceed heartbeatIntervalMs')
  if (!(t.deadAfterMs > t.suspectAfterMs)) problems.push('deadAfterMs must exceed suspectAfterMs')
  if (!(t.forgetAfterMs >= t.deadAfterMs)) problems.push('forgetAfterMs must be at least deadAfterMs')
  return problems
}

interface Entry {
  view: MemberView
  seq: number
  serial: string
  certNotBeforeMs: number
  /** The member's announced heartbeat period; its timeouts scale with it. */
  intervalMs: number
}

/**
 * Creates an empty table.
 * @throws MembershipConfigError when the timings are inconsistent
 */
export function createMembership(init: { timings: MembershipTimings; entriesMax?: number }): Membership {
  const problems = checkMembershipTimings(init.timings)
  if (problems.length > 0) throw new MembershipConfigError(problems.join('; '))
  const t = init.timings
  const entriesMax = init.entriesMax ?? MEMBERS_MAX
  const entries = new Map<string, Entry>()
  let events: MembershipEvent[] = []
  const counters: MembershipCounters = { stale: 0, full: 0, eventsDropped: 0 }

  const emit = (event: MembershipEvent): void => {
    if (events.length >= MEMBERSHIP_EVENTS_MAX) {
      events.shift()
      counters.eventsDropped++
    }
    events.push(event)
  }

  /** A member beating slower than our own period gets proportionally longer timeouts. */
  const stateAt = (lastSeenMs: number, intervalMs: number, nowMs: number): MemberState => {
    const silenceMs = nowMs - lastSeenMs
    const scale = Math.min(HEARTBEAT_STRETCH_MAX, Math.max(1, intervalMs / t.heartbeatIntervalMs))
    if (silenceMs > t.deadAfterMs * scale) return 'dead'
    if (silenceMs > t.suspectAfterMs * scale) return 'suspect'
    return 'alive'
  }

  const evictOneDead = (): boolean => {
    let victim: Entry | undefined
    for (const entry of entries.values()) {
      if (
        entry.view.state === 'dead' &&
        (victim === undefined || entry.view.lastSeenMs < victim.view.lastSeenMs)
      ) {
        victim = entry
      }
    }
    if (victim === undefined) return false
    entries.delete(victim.view.name)
    emit({ kind: 'removed', name: victim.view.name, reason: 'evicted' })
    return true
  }

  return {
    step(verified, nowMs) {
      const hb = verified.heartbeat
      const cert = verified.certificate.certificate
      const existing = entries.get(hb.name)
      if (existing !== undefined) {
        const sameCert = existing.serial === cert.serial
        const newerCert = !sameCert && cert.notBeforeMs > existing.certNotBeforeMs
        const newerSeq = hb.seq > existing.seq || existing.view.state === 'dead'
        if (!(newerCert || (sameCert && newerSeq))) {
          counters.stale++
          return 'stale'
        }
      } else if (entries.size >= entriesMax && !evictOneDead()) {
        counters.full++
        return 'full'
      }
      const view: MemberView = {
        name: hb.name,
        peerId: hb.peerId,
        zone: hb.zone,
        roles: hb.roles,
        addrs: hb.addrs,
        state: 'alive',
        lastSeenMs: nowMs,
        facts: hb.facts,
        certificateNotAfterMs: cert.notAfterMs,
      }
      entries.set(hb.name, {
        view,
        seq: hb.seq,
        serial: cert.serial,
        certNotBeforeMs: cert.notBeforeMs,
        intervalMs: hb.intervalMs,
      })
      if (existing === undefined) {
        emit({ kind: 'joined', name: hb.name })
        return 'added'
      }
      if (existing.view.state !== 'alive')
        emit({ kind: 'state', name: hb.name, from: existing.view.state, to: 'alive' })
      return 'updated'
    },
    tick(nowMs) {
      for (const [name, entry] of entries) {
        const next = stateAt(entry.view.lastSeenMs, entry.intervalMs, nowMs)
        if (next !== entry.view.state) {
          emit({ kind: 'state', name, from: entry.view.state, to: next })
          entry.view = { ...entry.view, state: next }
        }
        if (next === 'dead' && nowMs - entry.view.lastSeenMs > t.forgetAfterMs) {
          entries.delete(name)
          emit({ kind: 'removed', name, reason: 'forgotten' })
        }
      }
    },
    revoke(serial) {
      for (const [name, entry] of entries) {
        if (entry.serial === serial) {
          entries.delete(name)
          emit({ kind: 'removed', name, reason: 'revoked' })
          return true
        }
      }
      return false
    },
    drain() {
      const out = events
      events = []
      return out
    },
    list() {
      return [...entries.values()]
        .map(e => e.view)
        .sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0))
    },
    get(name) {
      return entries.get(name)?.view
    },
    get size() {
      return entries.size
    },
    counters,
  }
}

/**
 * The nodes a requester should expect to answer: alive members with the `agent` role that match the
 * filter. For `once` filters, pass the names currently holding their zone's authority.
 * @throws FilterParseError only when given an uncompiled, invalid filter
 */
export function expectedNodes(
  members: readonly MemberView[],
  filter: TargetFilter | CompiledFilter,
  authorities: ReadonlySet<string> = new Set(),
): string[] {
  const compiled = 'source' in filter ? filter : compileFilter(filter)
  return members
    .filter(m => m.state === 'alive' && m.roles.includes('agent'))
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
