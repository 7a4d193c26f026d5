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
 */
import { performance } from 'node:perf_hooks'
import type { Connection, Stream } from '@libp2p/interface'
import { peerIdFromString } from '@libp2p/peer-id'
import { lpStream } from '@libp2p/utils'
import { multiaddr } from '@multiformats/multiaddr'
import { type Authority, type AuthorityEffect, createAuthority } from '../authority/authority.js'
import { type AuthorityConfig, authorityProfiles } from '../authority/config.js'
import {
  type AuthorityMessage,
  authorityMessageBytesMax,
  parseAuthorityMessage,
} from '../authority/messages.js'
import { decodeCbor, encodeCbor } from '../ca/encoding.js'
import type { MemberView } from '../gossip/membership.js'
import type { AgentConfig } from './config.js'
import type { Host } from './host.js'
import type { Logger } from './log.js'

/** The authority protocol id. */
export const AUTHORITY_PROTOCOL = '/mesh/authority/1.0.0'
/** How often the core is ticked (it works from timestamps; the tick only bounds reaction time). */
export const AUTHORITY_TICK_MS = 100
/** How often roster and liveness are re-read from the membership table. */
export const AUTHORITY_ROSTER_SYNC_MS = 250
/** Messages queued for one peer while its stream opens; more are dropped (loss is tolerated). */
export const AUTHORITY_QUEUE_MAX = 64
/** Time limit for opening an authority stream. */
export const AUTHORITY_DIAL_TIMEOUT_MS = 2_000

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
  try {
    const value = decodeCbor(bytes, 1 << 20) as { v?: unknown; members?: unknown }
    if (value.v !== 1 || !Array.isArray(value.members)) return []
    return value.members
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
      .slice(0, ROSTER_ENTRIES_MAX)
  } catch {
    return []
  }
}

/** The authority core's timing from the agent config: the profile's values with the agent's lease keys. */
export function authorityConfigFor(config: AgentConfig): AuthorityConfig {
  return {
    ...authorityProfiles[config.profile],
    leaseTtlMs: config.leaseTtlMs,
    renewIntervalMs: config.renewIntervalMs,
    maxClockSkewMs: config.leaseSkewMs,
  }
}

/** One zone as `mesh zones` shows it, with names instead of peer ids. */
export interface AuthorityZone {
  readonly zone: string
  readonly members: readonly string[]
  readonly authority: string | null
  readonly epoch: number
  readonly leaseRemainingMs: number
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
  zones(): AuthorityZone[]
  /** Registers a listener for acquired/lost; returns an unsubscribe function. */
  onChange(listener: AuthorityListener): () => void
  /** Direct liveness evidence: a connection admitted (alive) or lost (dead). */
  hint(peerId: string, state: 'alive' | 'dead'): void
  /** Drops a revoked member from the roster. */
  forget(peerId: string): void
  /** Members remembered with their last addresses (for finding the mesh again after a restart). */
  remembered(): RosterEntry[]
}

interface Outbound {
  stream?: Stream
  write?: (bytes: Uint8Array) => Promise<void>
  queue: Uint8Array[]
  opening: boolean
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
  random?: () => number
  /** Our certificate's zone and expiry (we are always in our own roster). */
  selfEntry: () => RosterEntry
  /** The roster remembered from earlier runs. */
  roster?: readonly RosterEntry[]
  /** Persists the roster after each change. */
  saveRoster?: (bytes: Uint8Array) => Promise<void>
  /** Wall clock (certificate expiry is compared against it). */
  wallNowMs?: () => number
  /** How long a node that knows no one else of its zone listens before it feeds a roster to the core. */
  rosterSettleMs: number
}): AuthorityDriver {
  const { host, self, log } = init
  const mono = (): number => Math.floor(performance.now())
  const wallOf = (monoMs: number): number => Math.round(Date.now() - performance.now() + monoMs)
  const core: Authority = createAuthority({
    self,
    config: authorityConfigFor(init.config),
    random: init.random ?? Math.random,
    nowMs: mono(),
  })
  const limits = { idLengthMax: 128, zoneLengthMax: 64 }
  const outbound = new Map<string, Outbound>()
  const listeners = new Set<AuthorityListener>()
  let rosterKey = ''
  const wallNow = init.wallNowMs ?? Date.now
  const known = new Map<string, RosterEntry>((init.roster ?? []).map(e => [e.peerId, e]))
  const startedAtMs = mono()
  const membershipState = new Map<string, 'alive' | 'dead'>()
  let saving = Promise.resolve()
  let lastSyncMs = Number.NEGATIVE_INFINITY
  let timer: NodeJS.Timeout | undefined
  let stopped = false

  const nameOf = (id: string | null): string | null => {
    if (id === null) return null
    return init.members().find(m => m.peerId === id)?.name ?? id
  }

  const openStream = async (to: string, out: Outbound): Promise<void> => {
    out.opening = true
    try {
      const peer = peerIdFromString(to)
      let target: Parameters<Host['dialProtocol']>[0] = peer
      if (host.getConnections(peer).length === 0) {
        const addrs = init.members().find(m => m.peerId === to)?.addrs ?? known.get(to)?.addrs ?? []
        if (addrs.length === 0) throw new Error('no address known')
        target = addrs.map(a => multiaddr(a.includes('/p2p/') ? a : `${a}/p2p/${to}`))
      }
      const stream = await host.dialProtocol(target, AUTHORITY_PROTOCOL, {
        signal: AbortSignal.timeout(AUTHORITY_DIAL_TIMEOUT_MS),
      })
      const lp = lpStream(stream, { maxDataLength: authorityMessageBytesMax })
      out.stream = stream
      out.write = bytes => lp.write(bytes, { signal: AbortSignal.timeout(AUTHORITY_DIAL_TIMEOUT_MS) })
      stream.addEventListener('close', () => {
        if (outbound.get(to) === out) outbound.delete(to)
      })
      const queued = out.queue.splice(0)
      for (const bytes of queued) await out.write(bytes)
    } catch (err) {
      log.debug({ peer: to, err: (err as Error).message }, 'authority stream failed')
      if (outbound.get(to) === out) outbound.delete(to)
    } finally {
      out.opening = false
    }
  }

  const send = (to: string, message: AuthorityMessage): void => {
    if (stopped) return
    const bytes = encodeCbor(message as never)
    let out = outbound.get(to)
    if (out === undefined) {
      out = { queue: [], opening: false }
      outbound.set(to, out)
    }
    if (out.write !== undefined && !usable(out.stream)) {
      // The peer restarted or the connection died without the stream telling us: start over.
      out.stream?.abort(new Error('stale authority stream'))
      out = { queue: [], opening: false }
      outbound.set(to, out)
    }
    if (out.write !== undefined) {
      const current = out
      out.write(bytes).catch(() => {
        if (outbound.get(to) === current) outbound.delete(to)
      })
      return
    }
    if (out.queue.length < AUTHORITY_QUEUE_MAX) out.queue.push(bytes)
    if (!out.opening) void openStream(to, out)
  }

  const usable = (stream: Stream | undefined): boolean =>
    stream !== undefined && stream.status === 'open' && stream.writeStatus === 'writable'

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
              atWallMs: Date.now(),
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
            { zone: effect.zone, epoch: effect.epoch, reason: effect.reason, atWallMs: Date.now() },
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
      outbound.get(id)?.stream?.abort(new Error('peer disconnected'))
      outbound.delete(id)
    }
    core.step({ type: 'peer', id, state }, mono())
    apply(core.drainEffects())
  }

  /** Learns members from the membership table, persists the roster, feeds changes to the core. */
  const syncMembership = (): void => {
    const wall = wallNow()
    let changed = false
    const selfEntry = init.selfEntry()
    for (const entry of [
      selfEntry,
      ...init
        .members()
        .filter(m => m.roles.includes('agent'))
        .map(m => ({
          peerId: m.peerId,
          zone: m.zone,
          notAfterMs: m.certificateNotAfterMs ?? wall + 60_000,
          addrs: m.addrs.slice(0, ROSTER_ADDRS_MAX),
        })),
    ]) {
      const previous = known.get(entry.peerId)
      if (previous === undefined && known.size >= ROSTER_ENTRIES_MAX) continue
      const addrs =
        entry.addrs !== undefined && entry.addrs.length > 0 ? entry.addrs : (previous?.addrs ?? [])
      if (
        previous === undefined ||
        previous.zone !== entry.zone ||
        previous.notAfterMs < entry.notAfterMs ||
        (previous.addrs ?? []).join(' ') !== addrs.join(' ')
      ) {
        known.set(entry.peerId, {
          ...entry,
          notAfterMs: Math.max(entry.notAfterMs, previous?.notAfterMs ?? 0),
          addrs,
        })
        changed = true
      }
    }
    for (const [id, entry] of known) {
      if (entry.notAfterMs < wall && id !== self) {
        known.delete(id)
        changed = true
      }
    }
    if (changed && init.saveRoster !== undefined) {
      const bytes = encodeRoster([...known.values()])
      saving = saving
        .then(() => init.saveRoster?.(bytes))
        .catch(err => log.warn({ err: String(err) }, 'cannot save roster'))
    }
    const others = [...known.values()].filter(e => e.peerId !== self && e.zone === selfEntry.zone)
    if (others.length === 0 && mono() - startedAtMs < init.rosterSettleMs) return
    const roster = [...known.values()]
      .map(e => ({ id: e.peerId, zone: e.zone }))
      .sort((a, b) => (a.id < b.id ? -1 : 1))
    const key = roster.map(r => `${r.id}@${r.zone}`).join(',')
    if (key !== rosterKey) {
      rosterKey = key
      core.step({ type: 'roster', members: roster }, mono())
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
    if (known.delete(peerId)) {
      rosterKey = ''
      if (init.saveRoster !== undefined) {
        const bytes = encodeRoster([...known.values()])
        saving = saving.then(() => init.saveRoster?.(bytes)).catch(() => {})
      }
    }
  }

  const handle = async (stream: Stream, connection: Connection): Promise<void> => {
    const from = connection.remotePeer.toString()
    const lp = lpStream(stream, { maxDataLength: authorityMessageBytesMax })
    try {
      while (!stopped) {
        const frame = (await lp.read()).subarray()
        const parsed = parseAuthorityMessage(decodeCbor(frame, authorityMessageBytesMax), limits)
        if (!parsed.ok) {
          log.warn({ peer: from, code: parsed.code, field: parsed.field }, 'bad authority message')
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
      timer = setInterval(() => {
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
      }, AUTHORITY_TICK_MS)
      timer.unref()
    },

    stop() {
      stopped = true
      if (timer !== undefined) clearInterval(timer)
      for (const out of outbound.values()) out.stream?.abort(new Error('stopping'))
      outbound.clear()
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
        leaseRemainingMs: z.leaseRemainingMs,
      }))
    },

    onChange(listener) {
      listeners.add(listener)
      return () => listeners.delete(listener)
    },

    hint,
    forget,
    remembered: () => [...known.values()].filter(e => e.peerId !== self),
  }
}
