/**
 * Drives the zone-authority core (src/authority/) over the mesh: feeds it the roster of certified
 * members and their liveness, delivers its messages over `/mesh/authority/1.0.0`, ticks it, and reports
 * acquired/lost leases. Messages need no signature of their own: the stream runs on a Noise connection
 * whose peer passed the certificate hello, so `from` is checked against the authenticated PeerId.
 *
 * Voters are the zone's certified members, not whoever is visible now (a quorum of a view is not a
 * quorum): the driver keeps every member it has seen with a valid certificate in a roster that only
 * shrinks by revocation or certificate expiry, persists it, and restores it at start. A node whose
 * roster holds no one else of its zone (a new node, or a lost file) waits `rosterSettleMs` of
 * heartbeats before it gives the core any roster, so it cannot crown itself a zone of one while the
 * real zone is still unknown to it.
 *
 * Liveness hints come from direct evidence: a closed connection (kill -9 shows up at once) says dead,
 * an admitted connection or an alive heartbeat says alive. Then the next candidate need only wait out
 * the dead holder's lease.
 *
 * Time: the core needs a monotonic clock, so it gets `performance.now()`-based milliseconds. Lease
 * events are also logged with wall-clock times (`atWallMs`, `actUntilWallMs`) so that leases of
 * different processes on one machine can be compared (bench/failover does exactly that).
 *
 * The outbound stream pool (queueing, stale-stream replacement) is in authority-streams.ts.
 */
import type { Connection, Stream } from '@libp2p/interface'
import { lpStream } from '@libp2p/utils'
import { type Authority, type AuthorityEffect, createAuthority } from '../authority/authority.js'
import { type AuthorityConfig, authorityProfiles } from '../authority/config.js'
import {
  type AuthorityMessage,
  authorityMessageBytesMax,
  encodeAuthorityMessage,
  parseAuthorityMessage,
} from '../authority/messages.js'
import type { MemberView } from '../gossip/membership.js'
import { decodeCbor } from '../wire/cbor.js'
import { AUTHORITY_PROTOCOL, createAuthorityStreams } from './authority-streams.js'
import { type Clock, every, type Random, type Timer } from './clock.js'
import type { AgentConfig } from './config.js'
import type { Host } from './host.js'
import { createLogLimiter, type Logger } from './log.js'
import { createRoster, type RosterEntry } from './roster.js'
import type { ZoneView } from './zone-view.js'

export { AUTHORITY_DIAL_TIMEOUT_MS, AUTHORITY_PROTOCOL, AUTHORITY_QUEUE_MAX } from './authority-streams.js'

/** How often the core is ticked (it works from timestamps; the tick only bounds reaction time). */
export const AUTHORITY_TICK_MS = 100
/** How often roster and liveness are re-read from the membership table. */
export const AUTHORITY_ROSTER_SYNC_MS = 250

/** The authority core's timing from the agent config: the profile's values with the agent's lease keys. */
export function authorityConfigFor(config: AgentConfig): AuthorityConfig {
  return {
    ...authorityProfiles[config.profile],
    leaseTtlMs: config.leaseTtlMs,
    renewIntervalMs: config.renewIntervalMs,
    leaseDriftBudgetMs: config.leaseDriftBudgetMs,
  }
}

/** Called when this node gains or loses a zone's authority. */
export type AuthorityListener = (event: { zone: string; epoch: number; held: boolean }) => void

/** The driver. */
export interface AuthorityDriver {
  start(): Promise<void>
  stop(): void
  /** `{ epoch }` when this node may act as `zone`'s authority right now. */
  isAuthority(zone: string): { epoch: number } | null
  /** Zones this node votes in, as it sees them. */
  zones(): ZoneView[]
  /** Registers a listener for acquired/lost; returns an unsubscribe function. */
  onChange(listener: AuthorityListener): () => void
  /** Direct liveness evidence: a connection admitted (alive) or lost (dead). */
  hint(peerId: string, state: 'alive' | 'dead'): void
  /** Drops a revoked member from the roster. */
  forget(peerId: string): void
  /** Members remembered with their last addresses (for finding the mesh again after a restart). */
  remembered(): RosterEntry[]
}

/** Creates the driver (handlers are registered by `start`, which must run before the host starts). */
export function createAuthorityDriver(init: {
  host: Host
  self: string
  config: AgentConfig
  members: () => readonly MemberView[]
  /** Wraps the inbound handler so only admitted peers reach it. */
  gated: (
    handler: (stream: Stream, connection: Connection) => Promise<void>,
  ) => (stream: Stream, connection: Connection) => Promise<void>
  log: Logger
  clock: Clock
  random: Random
  /** Our certificate's zone and expiry (we are always in our own roster). */
  selfEntry: () => RosterEntry
  /** The roster remembered from earlier runs. */
  roster?: readonly RosterEntry[]
  /** Persists the roster after each change. */
  saveRoster?: (bytes: Uint8Array) => Promise<void>
  /** How long a node that knows no one else of its zone listens before it feeds a roster to the core. */
  rosterSettleMs: number
}): AuthorityDriver {
  const { host, self, log } = init
  const { clock } = init
  const limited = createLogLimiter(log, clock)
  const mono = (): number => Math.floor(clock.monotonicMs())
  const wallOf = (monoMs: number): number => Math.round(clock.nowMs() - clock.monotonicMs() + monoMs)
  const core: Authority = createAuthority({
    self,
    config: authorityConfigFor(init.config),
    random: () => init.random.float(),
    nowMs: mono(),
  })
  const limits = { idLengthMax: 128, zoneLengthMax: 64 }
  const listeners = new Set<AuthorityListener>()
  let rosterKey = ''
  const roster = createRoster({ initial: init.roster, save: init.saveRoster, log })
  const startedAtMs = mono()
  const membershipState = new Map<string, 'alive' | 'dead'>()
  let lastSyncMs = Number.NEGATIVE_INFINITY
  let timer: Timer | undefined
  let stopped = false

  const nameOf = (id: string | null): string | null => {
    if (id === null) return null
    return init.members().find(m => m.peerId === id)?.name ?? id
  }

  const streams = createAuthorityStreams({
    host,
    log,
    addressesOf: to => init.members().find(m => m.peerId === to)?.addrs ?? roster.get(to)?.addrs ?? [],
  })

  const send = (to: string, message: AuthorityMessage): void => {
    if (stopped) return
    streams.send(to, encodeAuthorityMessage(message))
  }

  const apply = (effects: AuthorityEffect[]): void => {
    for (const effect of effects) {
      switch (effect.type) {
        case 'send':
          send(effect.to, effect.message)
          break
        case 'acquired':
          log.info(
            {
              zone: effect.zone,
              epoch: effect.epoch,
              atWallMs: clock.nowMs(),
              actUntilWallMs: wallOf(effect.actUntilMs),
            },
            'authority acquired',
          )
          for (const l of listeners) l({ zone: effect.zone, epoch: effect.epoch, held: true })
          break
        case 'renewed':
          log.debug(
            { zone: effect.zone, epoch: effect.epoch, actUntilWallMs: wallOf(effect.actUntilMs) },
            'authority renewed',
          )
          break
        case 'lost':
          log.info(
            { zone: effect.zone, epoch: effect.epoch, reason: effect.reason, atWallMs: clock.nowMs() },
            'authority lost',
          )
          for (const l of listeners) l({ zone: effect.zone, epoch: effect.epoch, held: false })
          break
        case 'campaign':
          log.debug({ zone: effect.zone, epoch: effect.epoch }, 'authority campaign')
          break
        case 'recovered':
          log.debug({ zone: effect.zone, maxEpoch: effect.maxEpoch }, 'authority voter recovered')
          break
      }
    }
  }

  const hint = (id: string, state: 'alive' | 'dead'): void => {
    if (id === self || stopped) return
    if (state === 'dead') {
      // Its connections are gone, and with them any stream we were writing to.
      streams.drop(id, 'peer disconnected')
    }
    core.step({ type: 'peer', id, state }, mono())
    apply(core.drainEffects())
  }

  /** Learns members from the membership table, persists the roster, feeds changes to the core. */
  const syncMembership = (): void => {
    const selfEntry = init.selfEntry()
    roster.merge(selfEntry, init.members(), clock.nowMs())
    const others = roster.entries().filter(e => e.peerId !== self && e.zone === selfEntry.zone)
    if (others.length === 0 && mono() - startedAtMs < init.rosterSettleMs) return
    const members = roster
      .entries()
      .map(e => ({ id: e.peerId, zone: e.zone }))
      .sort((a, b) => (a.id < b.id ? -1 : 1))
    const key = members.map(r => `${r.id}@${r.zone}`).join(',')
    if (key !== rosterKey) {
      rosterKey = key
      core.step({ type: 'roster', members }, mono())
    }
    for (const m of init.members()) {
      const state = m.state === 'alive' ? 'alive' : 'dead'
      if (membershipState.get(m.peerId) !== state) {
        membershipState.set(m.peerId, state)
        hint(m.peerId, state)
      }
    }
  }

  /** Removes a revoked member from the roster for good. */
  const forget = (peerId: string): void => {
    if (roster.forget(peerId)) rosterKey = ''
  }

  const handle = async (stream: Stream, connection: Connection): Promise<void> => {
    const from = connection.remotePeer.toString()
    const lp = lpStream(stream, { maxDataLength: authorityMessageBytesMax })
    try {
      while (!stopped) {
        const frame = (await lp.read()).subarray()
        const parsed = parseAuthorityMessage(decodeCbor(frame, authorityMessageBytesMax), limits)
        if (!parsed.ok) {
          limited.log(
            'warn',
            `bad:${from}`,
            { peer: from, code: parsed.code, field: parsed.field },
            'bad authority message',
          )
          continue
        }
        if (parsed.message.type === 'refuse') {
          const m = parsed.message
          log.debug(
            {
              zone: m.zone,
              from: nameOf(from),
              reason: m.reason,
              holder: nameOf(m.holder),
              maxEpoch: m.maxEpoch,
            },
            'authority request refused',
          )
        }
        core.step({ type: 'message', from, message: parsed.message }, mono())
        apply(core.drainEffects())
      }
    } catch {
      // Stream ended or carried garbage; the sender reopens one when it next has something to say.
    }
  }

  return {
    async start() {
      await host.handle(AUTHORITY_PROTOCOL, init.gated(handle), { maxInboundStreams: 8 })
      timer = every(clock, AUTHORITY_TICK_MS, () => {
        try {
          if (mono() - lastSyncMs >= AUTHORITY_ROSTER_SYNC_MS) {
            lastSyncMs = mono()
            syncMembership()
          }
          core.tick(mono())
          apply(core.drainEffects())
        } catch (err) {
          log.error({ err: (err as Error).message }, 'authority core failed')
        }
      })
    },

    stop() {
      stopped = true
      timer?.cancel()
      streams.dropAll('stopping')
    },

    isAuthority(zone) {
      return core.isAuthority(zone, mono())
    },

    zones() {
      return core.zones(mono()).map(z => ({
        zone: z.zone,
        members: z.members.map(id => nameOf(id) ?? id).sort(),
        authority: nameOf(z.authority),
        epoch: z.epoch,
        // No holder, no lease to time.
        leaseRemainingMs: z.authority === null ? null : z.leaseRemainingMs,
      }))
    },

    onChange(listener) {
      listeners.add(listener)
      return () => listeners.delete(listener)
    },

    hint,
    forget,
    remembered: () => roster.entries().filter(e => e.peerId !== self),
  }
}
