/**
 * Drives the zone-authority core (src/authority/) over the mesh: feeds it the roster of certified
 * members and their liveness, delivers its messages over `/mesh/authority/1.0.0`, ticks it, and reports
 * acquired/lost leases. Messages need no signature of their own: the stream runs on a Noise connection
 * whose peer passed the certificate hello, so `from` is checked against the authenticated PeerId.
 *
 * Voters are the zone's certified members, not whoever is visible now (a quorum of a view is not a
 * quorum). They come from the CA-signed zone roster (src/ca/zone-roster.ts) whenever this node holds
 * one that lists it: every node holding that version counts the same voters, lease requests carry the
 * version, voters refuse another one, and a peer found behind gets our roster again (`spreadRoster`).
 * Only a node with no such roster (a mesh whose certificates were not issued by a mesh CA node, or a
 * node whose roster predates its own certificate) falls back to the roster it learns from heartbeats
 * (version 0): every member seen with a valid certificate, shrinking only by revocation or expiry,
 * persisted and restored at start. Such a node, when it knows no one else of its zone, waits until it
 * has heard peers for `rosterSettleMs` before it gives the core any roster (never, while it hears no
 * one), so it cannot crown itself a zone of one while the real zone is still unknown to it.
 *
 * Epochs the node grants are saved (`epochs`) before the grant leaves, so that a restarted voter
 * recovers from fewer peers (authority.ts, `durableEpochs`): a zone of three with one member gone and
 * one restarted still elects.
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
import { type Authority, type AuthorityEffect, createAuthority } from '../authority/authority.js'
import { type AuthorityConfig, authorityProfiles } from '../authority/config.js'
import {
  type AuthorityMessage,
  authorityMessageBytesMax,
  encodeAuthorityMessage,
  parseAuthorityMessage,
} from '../authority/messages.js'
import type { SignedZoneRoster, ZoneRoster } from '../ca/zone-roster.js'
import type { MemberView } from '../membership/view.js'
import { decodeCbor } from '../wire/cbor.js'
import { decodeEpochs, encodeEpochs } from './authority-epochs.js'
import { AUTHORITY_PROTOCOL, createAuthorityStreams } from './authority-streams.js'
import { type Clock, every, type Random, type Timer } from './clock.js'
import type { AgentConfig } from './config.js'
import { countedLpStream } from './counted-stream.js'
import type { Host } from './host.js'
import { createLogLimiter, type Logger } from './log.js'
import { createRoster, type RosterEntry } from './roster.js'
import type { Traffic } from './traffic.js'
import type { ZoneView } from './zone-view.js'

export { AUTHORITY_DIAL_TIMEOUT_MS, AUTHORITY_PROTOCOL, AUTHORITY_QUEUE_MAX } from './authority-streams.js'

/**
 * The core is ticked by one timer armed for its next deadline (`nextDeadlineMs`), re-armed after every
 * step and tick: a holder wakes once per renewal, a voter not at all while renewals keep coming. The
 * wait is at least AUTHORITY_TIMER_MIN_MS (no hot loop on a deadline that is due now) and at most
 * AUTHORITY_TIMER_MAX_MS (a safety net: a deadline the core failed to report costs at most this).
 */
export const AUTHORITY_TIMER_MIN_MS = 5
export const AUTHORITY_TIMER_MAX_MS = 2_000
/**
 * How often roster and liveness are re-read from the membership table besides every change it reports
 * (`membershipChanged`): a safety net, and the end of the unsigned roster's settle period.
 */
export const AUTHORITY_ROSTER_SYNC_MS = 2_000

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
  /**
   * Liveness evidence: a connection admitted (alive) or lost (dead: a crashed holder's connections
   * close at once, long before membership declares it dead); the membership table's states too.
   */
  hint(peerId: string, state: 'alive' | 'dead'): void
  /** The membership table or the signed roster changed: re-read roster and liveness now. */
  membershipChanged(): void
  /** Drops a revoked member from the roster. */
  forget(peerId: string): void
  /** Members remembered with their last addresses (for finding the mesh again after a restart). */
  remembered(): RosterEntry[]
  /**
   * Who holds `zone`, as a joint majority of its voters says (not as any heartbeat claims): the
   * holder's peer id and epoch, or null when none is proven within the lookup timeout.
   */
  lookup(zone: string): Promise<{ holder: string; epoch: number } | null>
  /**
   * What the core counted (refusals, late replies, roster mismatches…), messages the stream pool
   * dropped (no stream could be opened, or its queue was full), and the zones whose voter state this
   * node is still recovering (it asks their voters for epochs until enough answered).
   */
  counters(): { core: Record<string, number>; sendDropped: number; recovering: string[] }
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
  /** Counts every authority message in and out (`authority`). */
  traffic: Traffic
  clock: Clock
  random: Random
  /** Our certificate's zone and expiry (we are always in our own roster). */
  selfEntry: () => RosterEntry
  /** The roster remembered from earlier runs. */
  roster?: readonly RosterEntry[]
  /** Persists the roster after each change. */
  saveRoster?: (bytes: Uint8Array) => Promise<void>
  /** How long a node that knows no one else of its zone hears peers before it feeds a roster to the core. */
  rosterSettleMs: number
  /**
   * The newest CA-signed zone roster this node holds (src/ca/zone-roster.ts), if any. When it lists this
   * node, the core's voters come from it (versioned, the same on every node holding that version)
   * instead of from the roster learnt from heartbeats.
   */
  signedRoster?: () => SignedZoneRoster | undefined
  /** Asks the node to spread its signed roster again (a peer showed an older version); rate-limited there. */
  spreadRoster?: () => void
  /**
   * Durable epochs: the bytes saved by an earlier run (`initial`) and how to save new ones; `save` must
   * resolve only once the bytes are durable (temp file, fsync, rename). Without it epochs live in memory
   * and a restarted voter needs one more peer to recover.
   */
  epochs?: { readonly initial?: Uint8Array; readonly save: (bytes: Uint8Array) => Promise<void> }
}): AuthorityDriver {
  const { host, self, log } = init
  const { clock } = init
  const limited = createLogLimiter(log, clock)
  const mono = (): number => Math.floor(clock.monotonicMs())
  const wallOf = (monoMs: number): number => Math.round(clock.nowMs() - clock.monotonicMs() + monoMs)
  const restored = init.epochs?.initial === undefined ? undefined : decodeEpochs(init.epochs.initial)
  if (init.epochs?.initial !== undefined && restored === undefined) {
    log.warn({}, 'authority epochs file unreadable: this run recovers zones as if it had none')
  }
  const savedEpochs = new Map<string, number>(Object.entries(restored ?? {}))
  /** What the last save that resolved holds (the restored file at start): the epochs on disk. */
  const durableEpochs = new Map<string, number>(savedEpochs)
  const core: Authority = createAuthority({
    self,
    config: authorityConfigFor(init.config),
    random: () => init.random.float(),
    nowMs: mono(),
    ...(init.epochs === undefined
      ? {}
      : { durableEpochs: { epochs: Object.fromEntries(savedEpochs), complete: restored !== undefined } }),
  })
  const limits = { idLengthMax: 128, zoneLengthMax: 64 }
  const listeners = new Set<AuthorityListener>()
  let rosterKey = ''
  const roster = createRoster({ initial: init.roster, save: init.saveRoster, log })
  /**
   * When this node first heard another peer (an admitted connection or an alive member), monotonic ms.
   * The unsigned roster's settle period counts from then, not from start: a node that reaches nobody
   * for longer than the period (a slow bootstrap dial on a loaded machine took 3 s) must not crown
   * itself a zone of one, as three joiners of one zone did at once on the hosts rig (test/hosts/).
   */
  let heardAtMs: number | undefined
  const membershipState = new Map<string, 'alive' | 'dead'>()
  let timer: Timer | undefined
  let coreTimer: { readonly timer: Timer; readonly atMs: number } | undefined
  let stopped = false

  const nameOf = (id: string | null): string | null => {
    if (id === null) return null
    return init.members().find(m => m.peerId === id)?.name ?? id
  }

  const streams = createAuthorityStreams({
    host,
    log,
    traffic: init.traffic,
    addressesOf: to => init.members().find(m => m.peerId === to)?.addrs ?? roster.get(to)?.addrs ?? [],
  })

  const send = (to: string, message: AuthorityMessage): void => {
    if (stopped) return
    const bytes = encodeAuthorityMessage(message)
    // The breakdown by message type counts what the core sent, including messages the stream pool then
    // drops (counters().sendDropped); the `authority` row counts the frames handed to a stream.
    init.traffic.count(`authority:${message.type}`, 'out', bytes.byteLength)
    streams.send(to, bytes)
  }

  /**
   * Effects are carried out in order; a `persist-epoch` holds back every later one until it is durable
   * (the grant it precedes must not leave first). Without one, all run synchronously in `apply`. When a
   * save fails, the messages queued behind it are dropped (the core tolerates loss) and it is logged.
   */
  const lookups = new Map<number, (result: { holder: string; epoch: number } | null) => void>()
  let nextQuery = 1
  const queue: AuthorityEffect[] = []
  let flushing = false
  let saveFailed = false
  const apply = (effects: AuthorityEffect[]): void => {
    queue.push(...effects)
    if (!flushing) void flush()
    armCore()
  }
  /** (Re-)arms the core's one timer for its next deadline; called after every step and tick. */
  const armCore = (): void => {
    if (stopped || timer === undefined) return
    const nowMs = mono()
    const waitMs = Math.min(
      AUTHORITY_TIMER_MAX_MS,
      Math.max(AUTHORITY_TIMER_MIN_MS, core.nextDeadlineMs() - nowMs),
    )
    if (coreTimer?.atMs === nowMs + waitMs) return
    coreTimer?.timer.cancel()
    coreTimer = { timer: clock.setTimer(tickCore, waitMs), atMs: nowMs + waitMs }
  }
  const tickCore = (): void => {
    coreTimer = undefined
    try {
      core.tick(mono())
      apply(core.drainEffects())
    } catch (err) {
      // Re-armed within milliseconds: a core that keeps failing must not flood the log.
      limited.log('error', 'core', { err: (err as Error).message }, 'authority core failed')
    }
    armCore()
  }
  const flush = async (): Promise<void> => {
    flushing = true
    try {
      for (let effect = queue.shift(); effect !== undefined; effect = queue.shift()) {
        if (effect.type === 'persist-epoch') {
          saveFailed = !(await persistEpoch(effect.zone, effect.epoch))
          continue
        }
        if (effect.type === 'send' && saveFailed) continue
        applyOne(effect)
      }
    } finally {
      flushing = false
      saveFailed = false
    }
  }
  /**
   * True while our own hold of `epoch` is not on disk yet. A zone whose only voter is this node grants
   * itself the lease within one step, before the driver has saved the epoch: acting on it then (an
   * `exec --once`) and crashing before the save would let the next run grant the same epoch again.
   */
  const undurable = (zone: string, epoch: number): boolean =>
    init.epochs !== undefined && epoch > (durableEpochs.get(zone) ?? 0)
  const persistEpoch = async (zone: string, epoch: number): Promise<boolean> => {
    if (init.epochs === undefined) return true
    savedEpochs.set(zone, Math.max(epoch, savedEpochs.get(zone) ?? 0))
    const saving = new Map(savedEpochs)
    try {
      await init.epochs.save(encodeEpochs(saving))
      for (const [z, e] of saving) durableEpochs.set(z, Math.max(e, durableEpochs.get(z) ?? 0))
      return true
    } catch (err) {
      limited.log('error', 'epochs', { err: String(err) }, 'cannot save authority epochs; grant not sent')
      return false
    }
  }
  const applyOne = (effect: AuthorityEffect): void => {
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
      case 'roster-mismatch':
        limited.log(
          'debug',
          `mismatch:${effect.peer}`,
          { zone: effect.zone, peer: nameOf(effect.peer), theirs: effect.theirs, ours: effect.ours },
          'authority peer counts voters by another roster version',
        )
        if (effect.theirs < effect.ours) init.spreadRoster?.()
        break
      case 'persist-epoch':
        break
      case 'lookup-result': {
        const resolve = lookups.get(effect.query)
        lookups.delete(effect.query)
        resolve?.(effect.holder === null ? null : { holder: effect.holder, epoch: effect.epoch })
        break
      }
    }
  }

  const hint = (id: string, state: 'alive' | 'dead'): void => {
    if (id === self || stopped) return
    if (state === 'alive') heardAtMs ??= mono()
    if (state === 'dead') {
      // Its connections are gone, and with them any stream we were writing to.
      streams.drop(id, 'peer disconnected')
    }
    core.step({ type: 'peer', id, state }, mono())
    apply(core.drainEffects())
  }

  type RosterInput = Extract<Parameters<Authority['step']>[0], { type: 'roster' }>
  /** The last roster turned into an input, and the input (rebuilt only when another roster is held). */
  let converted: { readonly from: ZoneRoster | undefined; readonly input: RosterInput | undefined } = {
    from: undefined,
    input: undefined,
  }
  /** The signed roster when it lists this node, as the core's roster input; else undefined. Runs 4×/s. */
  const signedInput = (): RosterInput | undefined => {
    const signed = init.signedRoster?.()?.roster
    if (signed === converted.from) return converted.input
    let input: RosterInput | undefined
    if (signed !== undefined && signed.version >= 1 && signed.members.some(m => m.peerId === self)) {
      input = {
        type: 'roster',
        version: signed.version,
        members: signed.members.map(m => ({ id: m.peerId, zone: m.zone })),
        priors: signed.priors.map(p => ({ zone: p.zone, voters: p.voters })),
      }
    }
    converted = { from: signed, input }
    return input
  }

  /** Learns members from the membership table, persists the roster, feeds changes to the core. */
  const syncMembership = (): void => {
    const selfEntry = init.selfEntry()
    roster.merge(selfEntry, init.members(), clock.nowMs())
    const signed = signedInput()
    if (signed !== undefined) {
      const key = `v${signed.version}`
      if (key !== rosterKey) {
        rosterKey = key
        log.info(
          { version: signed.version, members: signed.members.length },
          'authority voters from signed roster',
        )
        core.step(signed, mono())
        apply(core.drainEffects())
      }
    } else {
      const others = roster.entries().filter(e => e.peerId !== self && e.zone === selfEntry.zone)
      if (others.length === 0 && (heardAtMs === undefined || mono() - heardAtMs < init.rosterSettleMs)) return
      const members = roster
        .entries()
        .map(e => ({ id: e.peerId, zone: e.zone }))
        .sort((a, b) => (a.id < b.id ? -1 : 1))
      const key = members.map(r => `${r.id}@${r.zone}`).join(',')
      if (key !== rosterKey) {
        rosterKey = key
        core.step({ type: 'roster', members }, mono())
        apply(core.drainEffects())
      }
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

  /**
   * Reads one peer's authority stream for as long as it lasts. A frame that does not decode or parse is
   * logged and skipped, and a core that fails on a message is logged and the next message read: the
   * loop ends only with the stream, and then aborts it, so the sender sees its stream gone and opens a
   * new one. (The loop used to end silently on an undecodable frame or a core failure, leaving the
   * stream open: the sender's pool saw it open and kept writing into it, and nobody read it again.)
   */
  const handle = async (stream: Stream, connection: Connection): Promise<void> => {
    const from = connection.remotePeer.toString()
    const lp = countedLpStream(stream, { maxDataLength: authorityMessageBytesMax }, init.traffic, 'authority')
    while (!stopped) {
      let frame: Uint8Array
      try {
        frame = (await lp.read()).subarray()
      } catch (err) {
        // Ended, reset, or a frame over the limit: the sender reopens one when it next has something to say.
        stream.abort(err instanceof Error ? err : new Error(String(err)))
        return
      }
      let decoded: unknown
      try {
        decoded = decodeCbor(frame, authorityMessageBytesMax)
      } catch (err) {
        const code = (err as { code?: string }).code ?? 'malformed'
        limited.log('warn', `bad:${from}`, { peer: from, code }, 'bad authority message')
        continue
      }
      const parsed = parseAuthorityMessage(decoded, limits)
      if (!parsed.ok) {
        limited.log(
          'warn',
          `bad:${from}`,
          { peer: from, code: parsed.code, field: parsed.field },
          'bad authority message',
        )
        continue
      }
      init.traffic.count(`authority:${parsed.message.type}`, 'in', frame.byteLength)
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
      try {
        core.step({ type: 'message', from, message: parsed.message }, mono())
        apply(core.drainEffects())
      } catch (err) {
        limited.log(
          'error',
          'core',
          { err: (err as Error).message, type: parsed.message.type },
          'authority core failed on a message',
        )
      }
    }
    stream.abort(new Error('stopping'))
  }

  return {
    async start() {
      await host.handle(AUTHORITY_PROTOCOL, init.gated(handle), { maxInboundStreams: 8 })
      timer = every(clock, AUTHORITY_ROSTER_SYNC_MS, () => {
        try {
          syncMembership()
        } catch (err) {
          log.error({ err: (err as Error).message }, 'authority core failed')
        }
      })
      tickCore()
    },

    stop() {
      stopped = true
      timer?.cancel()
      coreTimer?.timer.cancel()
      for (const resolve of lookups.values()) resolve(null)
      lookups.clear()
      streams.dropAll('stopping')
    },

    isAuthority(zone) {
      const held = core.isAuthority(zone, mono())
      return held !== null && undurable(zone, held.epoch) ? null : held
    },

    zones() {
      return core.zones(mono()).map(z => {
        const authority = z.authority === self && undurable(z.zone, z.epoch) ? null : z.authority
        return {
          zone: z.zone,
          members: z.members.map(id => nameOf(id) ?? id).sort(),
          authority: nameOf(authority),
          epoch: z.epoch,
          // No holder, no lease to time.
          leaseRemainingMs: authority === null ? null : z.leaseRemainingMs,
        }
      })
    },

    onChange(listener) {
      listeners.add(listener)
      return () => listeners.delete(listener)
    },

    hint,
    membershipChanged() {
      if (stopped || timer === undefined) return
      try {
        syncMembership()
      } catch (err) {
        log.error({ err: (err as Error).message }, 'authority core failed')
      }
    },
    forget,
    remembered: () => roster.entries().filter(e => e.peerId !== self),

    counters() {
      return {
        core: { ...core.counters() },
        sendDropped: streams.dropped(),
        recovering: core
          .zones(mono())
          .filter(z => z.recovering)
          .map(z => z.zone),
      }
    },

    lookup(zone) {
      if (stopped) return Promise.resolve(null)
      const query = nextQuery
      nextQuery = nextQuery >= 2 ** 31 ? 1 : nextQuery + 1
      return new Promise(resolve => {
        lookups.set(query, resolve)
        core.step({ type: 'lookup', zone, query }, mono())
        apply(core.drainEffects())
      })
    },
  }
}
