/**
 * The zone-authority state machine: one instance per node, handling its own zone (as a candidate, and
 * as a voter when it holds one of the zone's seats, voters.ts) and every zone it votes in otherwise (as
 * witness or prior voter). PaxosLease-style (Trencseni et al.): no disk, no
 * synchronized clocks, bounded drift; a candidate holds the zone's authority while a majority of its
 * voters have granted it a lease, and each grant carries an epoch, the fencing token, that increases
 * with every new holder. Design, diagram and safety argument: docs/authority.md.
 *
 * Pure: no I/O, no clock, no randomness of its own. The driver (src/node/) feeds network messages and
 * local intents to {@link Authority.step}, calls {@link Authority.tick} on a timer, and carries out the
 * drained effects. `nowMs` must come from a monotonic clock (never goes backwards).
 */
import { type AuthorityConfig, validateAuthorityConfig } from './config.js'
import {
  grantExpiresAtMs,
  grantFreeAtMs,
  holderActUntilMs,
  remainingMs,
  restartQuietUntilMs,
} from './lease.js'
import type {
  AuthorityMessage,
  GrantMessage,
  HolderMessage,
  RefuseMessage,
  ReleaseMessage,
  RequestMessage,
  StateMessage,
} from './messages.js'
import { EPOCH_MAX } from './messages.js'
import { isJointQuorum, isQuorumPossible, recoveryQuorumSize } from './quorum.js'
import { rankCandidates } from './rendezvous.js'
import {
  memberZone,
  normalizeRoster,
  type RosterMember,
  sameVoters,
  votingZones,
  type ZoneVoters,
  zoneVoters,
} from './voters.js'

/** Inputs to {@link Authority.step}: network messages and local intents through one entry point. */
export type AuthorityInput =
  /** A verified message; `from` is the authenticated signer and must equal `message.from`. */
  | { readonly type: 'message'; readonly from: string; readonly message: AuthorityMessage }
  /**
   * The full roster of certified members (replaces the previous one). `version` numbers CA-signed
   * rosters (0, the default, is an unsigned roster learnt from heartbeats); requests carry it and voters
   * refuse other versions. `priors` name, per zone, the voters it had before its voter set last changed:
   * a majority of them must grant too (joint majorities), except those no longer in the roster
   * (revoked, expired), whose votes never count.
   */
  | {
      readonly type: 'roster'
      readonly members: readonly RosterMember[]
      readonly version?: number
      readonly priors?: readonly { readonly zone: string; readonly voters: readonly string[] }[]
    }
  /** A liveness hint from the driver's membership layer. */
  | { readonly type: 'peer'; readonly id: string; readonly state: 'alive' | 'dead' }
  /**
   * Ask `zone`'s voters who holds its lease; answered by a `lookup-result` effect with the same `query`
   * (the driver's id): the holder a joint majority of the voters names, or null once that is out of
   * reach or after the lookup timeout.
   */
  | { readonly type: 'lookup'; readonly zone: string; readonly query: number }
  /** Forget everything, as after a crash (e.g. the process was suspended): the node stops acting at once
   * and waits one lease period before granting again. */
  | { readonly type: 'restart' }

/** Why a holder stopped holding. */
export type LostReason = 'expired' | 'removed' | 'restart'

/** Effects drained with {@link Authority.drainEffects}, in the order they arose. */
export type AuthorityEffect =
  /** Deliver `message` to node `to` (signed by the driver). Loss is tolerated. */
  | { readonly type: 'send'; readonly to: string; readonly message: AuthorityMessage }
  /** This node started a campaign for `zone` at `epoch` (informational). */
  | { readonly type: 'campaign'; readonly zone: string; readonly epoch: number }
  /** This node became authority of `zone` with fencing token `epoch`, acting until `actUntilMs` (its clock). */
  | { readonly type: 'acquired'; readonly zone: string; readonly epoch: number; readonly actUntilMs: number }
  /** The lease of `zone` was renewed; `actUntilMs` moved forward. */
  | { readonly type: 'renewed'; readonly zone: string; readonly epoch: number; readonly actUntilMs: number }
  /** This node is no longer authority of `zone`. */
  | { readonly type: 'lost'; readonly zone: string; readonly epoch: number; readonly reason: LostReason }
  /** This node's voter for `zone` finished its quiet period and may grant again. */
  | { readonly type: 'recovered'; readonly zone: string; readonly maxEpoch: number }
  /** Answer to a `lookup` input: the proven holder of `zone` and its epoch, or null (none proven). */
  | {
      readonly type: 'lookup-result'
      readonly query: number
      readonly zone: string
      readonly holder: string | null
      readonly epoch: number
    }
  /**
   * Durable epochs only (see `createAuthority`): save that this node granted up to `epoch` in `zone`.
   * The driver must make it durable before it carries out any later effect (the grant follows it).
   */
  | { readonly type: 'persist-epoch'; readonly zone: string; readonly epoch: number }
  /**
   * `peer` counts `zone`'s voters by roster version `theirs`, this node by `ours`: the one behind must
   * get the newer roster (the driver spreads its own when `theirs < ours`).
   */
  | {
      readonly type: 'roster-mismatch'
      readonly zone: string
      readonly peer: string
      readonly theirs: number
      readonly ours: number
    }

/** One zone as seen by this node (for `mesh zones`). */
export interface ZoneView {
  readonly zone: string
  readonly members: readonly string[]
  readonly voters: readonly string[]
  /** This node if it holds the lease, else the holder of this node's open grant, else null. */
  readonly authority: string | null
  readonly epoch: number
  readonly leaseRemainingMs: number
  /** True while this node's voter for the zone is in its post-restart quiet period (it grants nothing). */
  readonly recovering: boolean
  /** Version of the roster the voters come from (0: unsigned, learnt from heartbeats). */
  readonly rosterVersion: number
  /** Voters of the previous roster version that must grant too (empty when none). */
  readonly priorVoters: readonly string[]
}

/**
 * Most one message may raise the epochs a node knows (a request's proposal above the voter's highest, or
 * a voter's reported highest above ours). Honest epochs grow by one per election and a node lags by the
 * elections it missed, far fewer than this; a faulty or hostile voter can therefore move a zone's epochs
 * only slowly, never to EPOCH_MAX (messages.ts) at once.
 */
export const EPOCH_STEP_MAX = 1024

/** Raises `known` towards `reported`, by at most {@link EPOCH_STEP_MAX}. */
function learnEpoch(known: number, reported: number): number {
  return Math.max(known, Math.min(reported, known + EPOCH_STEP_MAX))
}

/** Names of the counters returned by {@link Authority.counters}; each counts a refused input or a limit hit. */
export type AuthorityCounter =
  | 'roster-refused'
  | 'sender-mismatch'
  | 'unknown-sender'
  | 'unknown-zone'
  | 'late-reply'
  | 'bad-grant'
  | 'zones-limit'
  | 'voter-history-limit'
  /** An epoch-bearing message from a node that is not a voter of the zone (it may not move epochs). */
  | 'non-voter-epoch'
  /** A request whose epoch jumps more than EPOCH_STEP_MAX past the highest epoch this voter knows. */
  | 'epoch-jump'
  /** A request or refusal made under another roster version than ours. */
  | 'roster-mismatch'
  /** A lookup refused because {@link LOOKUPS_MAX} were already open (answered null at once). */
  | 'lookups-limit'

/** One node's authority state machine. Not thread-safe; owned by one driver. */
export interface Authority {
  /** Handles one input at local time `nowMs`. Throws only on broken invariants (AuthorityInvariantError). */
  step(input: AuthorityInput, nowMs: number): void
  /** Advances timers (expiry, renewal, campaigns, sync) to `nowMs`; call it at {@link nextDeadlineMs}. */
  tick(nowMs: number): void
  /**
   * The earliest local time after the last step or tick at which {@link tick} has work: a renewal or
   * campaign to start, a grant, lease, attempt, lookup, quiet or settle period to end, a sync to repeat;
   * Infinity when nothing is pending. Ticking only then does what ticking every millisecond does (inputs
   * move it: read it again after every step and tick). Never below the last `nowMs` seen.
   */
  nextDeadlineMs(): number
  /** Returns and clears the pending effects. The driver must drain after every step/tick. */
  drainEffects(): AuthorityEffect[]
  /** `{ epoch }` when this node may act as `zone`'s authority at local time `nowMs`, else null. */
  isAuthority(zone: string, nowMs: number): { epoch: number } | null
  /** Every zone of the roster as this node sees it at `nowMs`, sorted by zone. */
  zones(nowMs: number): ZoneView[]
  /** Counts of refused inputs and limit hits since creation. */
  counters(): Readonly<Record<AuthorityCounter, number>>
}

/** Raised by {@link createAuthority} when the configuration is invalid; `problems` lists every issue. */
export class AuthorityConfigError extends Error {
  override name = 'AuthorityConfigError'
  readonly code = 'invalid-config'
  readonly problems: readonly string[]
  constructor(problems: readonly string[]) {
    super(`invalid authority config: ${problems.join('; ')}`)
    this.problems = problems
  }
}

/** A broken invariant of the state machine or of its driver contract (a bug, never an operating error). */
export class AuthorityInvariantError extends Error {
  override name = 'AuthorityInvariantError'
  readonly code = 'invariant'
}

function assert(condition: unknown, message: string): asserts condition {
  if (!condition) throw new AuthorityInvariantError(message)
}

/** Most effects allowed to pile up undrained; exceeding it means the driver forgot to drain. */
const EFFECTS_MAX = 65_536
/** Incarnation ids are drawn from [0, 2^31). */
const INCARNATION_SPAN = 2 ** 31

interface Attempt {
  readonly id: number
  readonly epoch: number
  readonly sentAtMs: number
  readonly renewal: boolean
  readonly grants: Set<string>
  readonly refusals: Set<string>
}

interface Grant {
  readonly holder: string
  readonly epoch: number
  readonly incarnation: number
  readonly attempt: number
  readonly expiresAtMs: number
}

interface Recovery {
  readonly quietUntilMs: number
  /** Voter id → whether it vouched for its knowledge (was not itself recovering). */
  readonly replies: Map<string, boolean>
  nextSyncAtMs: number
  /**
   * Rounds of asking since the quiet period ended: each doubles the wait before the next, up to
   * {@link RECOVERY_BACKOFF_MAX} sync intervals, so voters that stay recovering are not polled at the
   * sync rate by each other for as long as that lasts.
   */
  lateRounds: number
  /**
   * Voters that asked us for our epochs while we were recovering (and were told so): told again, once,
   * when we finish, so they need not poll us (bounded by the zone's voters).
   */
  readonly askers: Set<string>
}

/** Longest wait between two rounds of asking, in sync intervals (8 × 300 ms in `lan`). */
export const RECOVERY_BACKOFF_MAX = 8

interface Holding {
  readonly epoch: number
  readonly actUntilMs: number
  readonly lastSentAtMs: number
}

interface SupersededVoters {
  readonly voters: readonly string[]
  readonly members: readonly string[]
  readonly untilMs: number
}

interface ZoneState {
  readonly zone: string
  current: ZoneVoters
  /** Voters of the previous roster version whose grants are still required (joint majority), or null. */
  prior: readonly string[] | null
  ranking: readonly string[]
  history: SupersededVoters[]
  /** Highest epoch this node knows to have been granted anywhere. */
  maxEpoch: number
  // Voter side.
  recovery: Recovery | null
  grant: Grant | null
  lastGrant: { readonly holder: string; readonly epoch: number } | null
  /** Local time the voter side last became free to grant to anyone (stagger is measured from it). */
  freedAtMs: number
  // Candidate side.
  attempt: Attempt | null
  holding: Holding | null
  retryAtMs: number
  /** Consecutive failed attempts (drives the exponential backoff). */
  failures: number
  /** A voter called our last epoch stale: the next attempt must use a fresh one. */
  bump: boolean
  /** Local time before which we know some other candidate may hold a lease (no point campaigning). */
  busyUntilMs: number
}

interface Peer {
  lastHeardMs: number | null
  dead: boolean
}

/** An open `lookup`: the voter sets a proof must cover and the answers so far. */
interface Lookup {
  readonly zone: string
  readonly sets: readonly (readonly string[])[]
  readonly answers: Map<string, { readonly holder: string | null; readonly epoch: number }>
  readonly deadlineMs: number
}

/** Most lookups open at once; more are answered null at once and counted. */
export const LOOKUPS_MAX = 64

/**
 * Creates a node's authority state machine at local time `nowMs`. It knows no zone until the driver
 * steps a `roster` input. `random` must return numbers in [0, 1) (seeded in tests).
 *
 * `durableEpochs`, when given, promises that the driver saves every `persist-epoch` effect durably
 * before it carries out the effects after it; `epochs` are the highest epochs per zone saved by earlier
 * runs. When they are `complete` (the save file was there and whole), a restarted voter knows every
 * epoch a majority including itself granted, so it recovers after hearing from `n − majority(n)` other
 * voters instead of `n − majority(n) + 1`: a zone of three with one member gone and another restarted
 * still elects (docs/authority.md, restart). When they are not (a first start, a home from before
 * epochs were saved, a damaged file), it recovers as without them, and saves what it learnt when each
 * zone recovers, so the next run's file is complete.
 * @throws AuthorityConfigError when `config` fails {@link validateAuthorityConfig}
 */
export function createAuthority(init: {
  self: string
  config: AuthorityConfig
  random: () => number
  nowMs: number
  durableEpochs?: { readonly epochs: Readonly<Record<string, number>>; readonly complete: boolean }
}): Authority {
  const problems = validateAuthorityConfig(init.config)
  if (problems.length > 0) throw new AuthorityConfigError(problems)
  return new ZoneAuthority(init.self, init.config, init.random, init.nowMs, init.durableEpochs)
}

class ZoneAuthority implements Authority {
  private readonly self: string
  private readonly config: AuthorityConfig
  private readonly random: () => number
  private incarnation: number
  private attemptCounter = 0
  private lastNowMs: number
  private startedAtMs: number
  private roster: readonly RosterMember[] = []
  private rosterVersion = 0
  /** Per zone, the voters before its last change (signed rosters only). */
  private priors: ReadonlyMap<string, readonly string[]> = new Map()
  private rosterIds = new Set<string>()
  /** Highest epoch granted per zone as saved by the driver; null when epochs are not durable. */
  private readonly saved: Map<string, number> | null
  /** Whether {@link saved} holds every epoch earlier runs granted (then recovery needs one peer less). */
  private readonly savedComplete: boolean
  private readonly zoneStates = new Map<string, ZoneState>()
  private readonly peers = new Map<string, Peer>()
  private readonly lookups = new Map<number, Lookup>()
  private effects: AuthorityEffect[] = []
  private readonly counts: Record<AuthorityCounter, number> = {
    'roster-refused': 0,
    'sender-mismatch': 0,
    'unknown-sender': 0,
    'unknown-zone': 0,
    'late-reply': 0,
    'bad-grant': 0,
    'zones-limit': 0,
    'voter-history-limit': 0,
    'non-voter-epoch': 0,
    'epoch-jump': 0,
    'roster-mismatch': 0,
    'lookups-limit': 0,
  }

  constructor(
    self: string,
    config: AuthorityConfig,
    random: () => number,
    nowMs: number,
    durableEpochs:
      | { readonly epochs: Readonly<Record<string, number>>; readonly complete: boolean }
      | undefined,
  ) {
    this.self = self
    this.config = config
    this.random = random
    this.saved = null
    this.savedComplete = durableEpochs?.complete ?? false
    if (durableEpochs !== undefined) {
      this.saved = new Map()
      for (const [zone, epoch] of Object.entries(durableEpochs.epochs).slice(0, config.zonesMax)) {
        // A saved number is ours, but bound it like any other before it moves epochs.
        if (Number.isSafeInteger(epoch) && epoch >= 0 && epoch <= EPOCH_MAX) this.saved.set(zone, epoch)
      }
    }
    this.lastNowMs = nowMs
    this.startedAtMs = nowMs
    this.incarnation = this.drawIncarnation()
  }

  step(input: AuthorityInput, nowMs: number): void {
    this.advance(nowMs)
    switch (input.type) {
      case 'message':
        this.onMessage(input.from, input.message, nowMs)
        break
      case 'roster':
        this.onRoster(input.members, nowMs, input.version ?? 0, input.priors ?? [])
        break
      case 'peer':
        this.onPeerHint(input.id, input.state)
        break
      case 'restart':
        this.onRestart(nowMs)
        break
      case 'lookup':
        this.onLookup(input.zone, input.query, nowMs)
        break
    }
    this.runTimers(nowMs)
  }

  tick(nowMs: number): void {
    this.advance(nowMs)
    this.runTimers(nowMs)
  }

  drainEffects(): AuthorityEffect[] {
    const out = this.effects
    this.effects = []
    return out
  }

  isAuthority(zone: string, nowMs: number): { epoch: number } | null {
    const holding = this.zoneStates.get(zone)?.holding
    if (holding === null || holding === undefined || nowMs >= holding.actUntilMs) return null
    return { epoch: holding.epoch }
  }

  zones(nowMs: number): ZoneView[] {
    const names = [...new Set(this.roster.map(m => m.zone))].sort()
    return names.map(zone => {
      const st = this.zoneStates.get(zone)
      const voters = st?.current ?? zoneVoters(zone, this.roster)
      let authority: string | null = null
      let epoch = st?.maxEpoch ?? 0
      let leaseRemainingMs = 0
      if (st?.holding && nowMs < st.holding.actUntilMs) {
        authority = this.self
        epoch = st.holding.epoch
        leaseRemainingMs = remainingMs(st.holding.actUntilMs, nowMs)
      } else if (st?.grant && nowMs < st.grant.expiresAtMs) {
        authority = st.grant.holder
        epoch = st.grant.epoch
        leaseRemainingMs = remainingMs(st.grant.expiresAtMs, nowMs)
      }
      const recovering = st?.recovery !== null && st?.recovery !== undefined
      return {
        zone,
        members: voters.members,
        voters: voters.voters,
        authority,
        epoch,
        leaseRemainingMs,
        recovering,
        rosterVersion: this.rosterVersion,
        priorVoters: st?.prior ?? this.priorVotersOf(zone) ?? [],
      }
    })
  }

  counters(): Readonly<Record<AuthorityCounter, number>> {
    return { ...this.counts }
  }

  // ---- plumbing -------------------------------------------------------------------------------

  private advance(nowMs: number): void {
    assert(Number.isFinite(nowMs), `nowMs must be finite, got ${nowMs}`)
    assert(nowMs >= this.lastNowMs, `clock went backwards: ${nowMs} < ${this.lastNowMs}`)
    this.lastNowMs = nowMs
  }

  private emit(effect: AuthorityEffect): void {
    assert(this.effects.length < EFFECTS_MAX, `more than ${EFFECTS_MAX} effects undrained`)
    this.effects.push(effect)
  }

  private send(to: string, message: AuthorityMessage): void {
    assert(to !== this.self, 'a node does not send to itself')
    this.emit({ type: 'send', to, message })
  }

  private drawIncarnation(): number {
    const r = this.random()
    assert(r >= 0 && r < 1, `random() must return a number in [0, 1), got ${r}`)
    return Math.floor(r * INCARNATION_SPAN)
  }

  private allVoters(st: ZoneState): Set<string> {
    const ids = new Set(st.current.voters)
    for (const id of st.prior ?? []) ids.add(id)
    for (const h of st.history) for (const id of h.voters) ids.add(id)
    return ids
  }

  private allMembers(st: ZoneState): Set<string> {
    const ids = new Set(st.current.members)
    for (const h of st.history) for (const id of h.members) ids.add(id)
    return ids
  }

  private voterSets(st: ZoneState): (readonly string[])[] {
    const sets = [st.current.voters, ...st.history.map(h => h.voters)]
    if (st.prior !== null) sets.push(st.prior)
    return sets
  }

  /**
   * The voters `zone` had before its voter set last changed, minus those no longer in the roster, or
   * null when there are none. Every node holding this roster version computes the same set.
   */
  private priorVotersOf(zone: string): readonly string[] | null {
    const prior = this.priors.get(zone)
    if (prior === undefined) return null
    const voters = prior.filter(id => this.rosterIds.has(id))
    return voters.length === 0 ? null : voters
  }

  private isLive(id: string, nowMs: number): boolean {
    if (id === this.self) return true
    const peer = this.peers.get(id)
    if (peer === undefined) return true
    if (peer.lastHeardMs !== null && nowMs - peer.lastHeardMs <= this.config.livenessTimeoutMs) return true
    return !peer.dead
  }

  /** How long a sign of someone else's lease keeps us from campaigning: one full grant window. */
  private busyHorizonMs(nowMs: number): number {
    return grantFreeAtMs(grantExpiresAtMs(nowMs, this.config), this.config)
  }

  /**
   * A recovery that starts at `nowMs`: quiet until one lease period after this run started (grants made
   * before a restart have expired by then), then done once enough voters told it their highest epoch.
   */
  private newRecovery(nowMs: number): Recovery {
    const quietUntilMs = restartQuietUntilMs(Math.min(nowMs, this.startedAtMs), this.config)
    return {
      quietUntilMs: Math.max(quietUntilMs, nowMs),
      replies: new Map(),
      nextSyncAtMs: nowMs,
      lateRounds: 0,
      askers: new Set(),
    }
  }

  private newZoneState(zone: string, voters: ZoneVoters, nowMs: number): ZoneState {
    // A voter that is new to a zone cannot tell a first start from a restart: it waits out any grant it
    // might have made before and learns the highest epoch from its peers (docs/authority.md, restart).
    // A member without a seat grants nothing, so it has nothing to wait out; the epochs it needs as a
    // candidate come with the voters' refusals (`stale`, `held`).
    const prior = this.priorVotersOf(zone)
    const votes = voters.voters.includes(this.self) || (prior?.includes(this.self) ?? false)
    return {
      zone,
      current: voters,
      prior,
      ranking: rankCandidates(zone, voters.members),
      history: [],
      maxEpoch: this.saved?.get(zone) ?? 0,
      recovery: votes ? this.newRecovery(nowMs) : null,
      grant: null,
      lastGrant: null,
      freedAtMs: nowMs,
      attempt: null,
      holding: null,
      retryAtMs: nowMs,
      failures: 0,
      bump: false,
      busyUntilMs: nowMs,
    }
  }

  // ---- intents --------------------------------------------------------------------------------

  private onRoster(
    members: readonly RosterMember[],
    nowMs: number,
    version: number,
    priors: readonly { readonly zone: string; readonly voters: readonly string[] }[],
  ): void {
    const result = normalizeRoster(members, this.config)
    const priorsOk =
      priors.length <= this.config.membersMax &&
      priors.every(
        p =>
          typeof p.zone === 'string' &&
          p.zone.length > 0 &&
          p.zone.length <= this.config.zoneLengthMax &&
          p.voters.length <= this.config.membersMax,
      )
    if (!result.ok || !priorsOk || !Number.isSafeInteger(version) || version < 0) {
      this.counts['roster-refused']++
      return
    }
    this.roster = result.roster
    this.rosterVersion = version
    this.priors = new Map(priors.map(p => [p.zone, [...new Set(p.voters)].sort()]))
    this.rosterIds = new Set(result.roster.map(m => m.id))
    for (const id of [...this.peers.keys()]) if (!this.rosterIds.has(id)) this.peers.delete(id)
    // Zones we vote on (seat, witness, prior) and our own zone, where we are a candidate with or without
    // a seat.
    const voting = new Set(votingZones(this.self, this.roster))
    for (const zone of this.priors.keys()) {
      if (this.priorVotersOf(zone)?.includes(this.self)) voting.add(zone)
    }
    const own = memberZone(this.self, this.roster)
    if (own !== null) voting.add(own)
    const touched = new Set([...voting, ...this.zoneStates.keys()])
    for (const zone of [...touched].sort()) {
      const next = zoneVoters(zone, this.roster)
      const st = this.zoneStates.get(zone)
      if (st === undefined) {
        if (this.zoneStates.size >= this.config.zonesMax) {
          this.counts['zones-limit']++
          continue
        }
        this.zoneStates.set(zone, this.newZoneState(zone, next, nowMs))
        continue
      }
      const voted = this.allVoters(st).has(this.self)
      st.prior = this.priorVotersOf(zone)
      // A signed roster names its previous version's voters itself (`prior`), the same on every node;
      // the timed history is for unsigned rosters, whose changes nodes learn at different times. Kept
      // under a signed roster it would also count members gone for good.
      if (version > 0) st.history = []
      const changed =
        !sameVoters(st.current.voters, next.voters) || !sameVoters(st.current.members, next.members)
      if (changed && version === 0) {
        st.history.push({
          voters: st.current.voters,
          members: st.current.members,
          untilMs: nowMs + this.config.membershipSettleMs,
        })
        if (st.history.length > this.config.voterHistoryMax) {
          this.counts['voter-history-limit']++
          st.history.shift()
        }
      }
      if (changed) {
        st.current = next
        st.ranking = rankCandidates(zone, next.members)
      }
      // A member that takes a seat has not followed the zone's epochs: it learns them from the other
      // voters before it grants, as a restarted voter does (no quiet period of its own: what it granted
      // in an earlier seat it still remembers).
      if (!voted && st.recovery === null && this.allVoters(st).has(this.self)) {
        st.recovery = this.newRecovery(nowMs)
      }
      // A voter that lost its seat has no grants left to protect (the joint majority no longer asks it).
      if (st.recovery !== null && !this.allVoters(st).has(this.self)) st.recovery = null
      if (!next.members.includes(this.self)) this.stepDown(st, nowMs, 'removed')
    }
  }

  private onPeerHint(id: string, state: 'alive' | 'dead'): void {
    if (!this.rosterIds.has(id) || id === this.self) return
    const peer = this.peers.get(id) ?? { lastHeardMs: null, dead: false }
    peer.dead = state === 'dead'
    // A dead hint outranks an older message; a message heard after it revives the peer.
    if (peer.dead) peer.lastHeardMs = null
    this.peers.set(id, peer)
  }

  private onRestart(nowMs: number): void {
    for (const st of this.zoneStates.values()) {
      if (st.holding) this.emit({ type: 'lost', zone: st.zone, epoch: st.holding.epoch, reason: 'restart' })
    }
    this.zoneStates.clear()
    this.peers.clear()
    this.startedAtMs = nowMs
    this.incarnation = this.drawIncarnation()
    this.attemptCounter = 0
    const roster = this.roster
    this.roster = []
    this.onRoster(
      roster,
      nowMs,
      this.rosterVersion,
      [...this.priors].map(([zone, voters]) => ({ zone, voters })),
    )
  }

  // ---- messages -------------------------------------------------------------------------------

  private onMessage(from: string, m: AuthorityMessage, nowMs: number): void {
    if (from !== m.from || from === this.self) {
      this.counts['sender-mismatch']++
      return
    }
    if (m.type === 'request' && m.rosterVersion !== this.rosterVersion) {
      // Answered whatever the zone and even from a sender our roster does not list yet: one of us is
      // behind, and the refusal tells the candidate which (it then spreads its roster, or we do).
      const st = this.zoneStates.get(m.zone)
      this.rosterMismatch(m.zone, from, m.rosterVersion)
      this.send(from, {
        type: 'refuse',
        zone: m.zone,
        from: this.self,
        reason: 'roster',
        maxEpoch: st?.maxEpoch ?? 0,
        holder: null,
        rosterVersion: this.rosterVersion,
        incarnation: m.incarnation,
        attempt: m.attempt,
      })
      return
    }
    if (!this.rosterIds.has(from)) {
      this.counts['unknown-sender']++
      return
    }
    const peer = this.peers.get(from) ?? { lastHeardMs: null, dead: false }
    peer.lastHeardMs = nowMs
    peer.dead = false
    this.peers.set(from, peer)
    if (m.type === 'who') {
      this.send(from, {
        type: 'holder',
        zone: m.zone,
        from: this.self,
        query: m.query,
        ...this.ownAnswer(m.zone, nowMs),
        rosterVersion: this.rosterVersion,
      })
      return
    }
    if (m.type === 'holder') {
      this.onHolderAnswer(from, m)
      return
    }
    const st = this.zoneStates.get(m.zone)
    if (st === undefined) {
      this.counts['unknown-zone']++
      return
    }
    switch (m.type) {
      case 'request': {
        const reply = this.voterOnRequest(st, m, nowMs)
        if (reply !== null) this.send(m.from, reply)
        break
      }
      case 'release':
        this.voterOnRelease(st, m, nowMs)
        break
      case 'grant':
      case 'refuse':
        this.candidateOnReply(st, m, nowMs)
        break
      case 'sync':
        this.send(m.from, this.stateOf(st))
        if (st.recovery !== null && this.allVoters(st).has(m.from)) st.recovery.askers.add(m.from)
        break
      case 'state':
        this.voterOnState(st, m)
        break
    }
  }

  // ---- voter side -----------------------------------------------------------------------------

  /** The voter's answer to a lease request, or null when this node does not vote on the zone. */
  private voterOnRequest(
    st: ZoneState,
    m: RequestMessage,
    nowMs: number,
  ): GrantMessage | RefuseMessage | null {
    if (!this.allVoters(st).has(this.self)) return null
    const ids = { zone: st.zone, from: this.self, incarnation: m.incarnation, attempt: m.attempt }
    const refuse = (reason: RefuseMessage['reason'], holder: string | null): RefuseMessage => ({
      type: 'refuse',
      ...ids,
      reason,
      maxEpoch: st.maxEpoch,
      holder,
      rosterVersion: this.rosterVersion,
    })
    // Voters are counted by roster version: a grant under another version would be counted against
    // another voter set, and the quorums of two sets need not intersect. (Requests from peers are
    // checked on arrival; this catches nothing else today but keeps the rule next to the others.)
    if (m.rosterVersion !== this.rosterVersion) return refuse('roster', null)
    if (st.recovery !== null) {
      // We cannot grant, but someone is campaigning or renewing: our own candidacy should wait.
      if (m.from !== this.self) st.busyUntilMs = Math.max(st.busyUntilMs, this.busyHorizonMs(nowMs))
      return refuse('recovering', null)
    }
    if (!this.allMembers(st).has(m.from)) return refuse('not-member', null)
    const grant = st.grant
    if (grant !== null && grant.holder !== m.from && nowMs < grantFreeAtMs(grant.expiresAtMs, this.config)) {
      return refuse('held', grant.holder)
    }
    const continues = st.lastGrant?.holder === m.from && st.lastGrant.epoch === m.epoch
    if (m.epoch < st.maxEpoch || (m.epoch === st.maxEpoch && !continues)) return refuse('stale', null)
    // Honest candidates propose one above the highest epoch they know, and a voter lags the others by
    // at most the elections it missed; a larger jump would let one member exhaust the epoch space.
    if (m.epoch > st.maxEpoch + EPOCH_STEP_MAX) {
      this.counts['epoch-jump']++
      return refuse('stale', null)
    }
    if (m.epoch === 0) return refuse('stale', null)
    // Saved before the grant leaves: a restart then still knows every epoch this voter granted.
    if (!this.saveEpoch(st.zone, m.epoch)) return refuse('recovering', null)
    st.grant = {
      holder: m.from,
      epoch: m.epoch,
      incarnation: m.incarnation,
      attempt: m.attempt,
      expiresAtMs: grantExpiresAtMs(nowMs, this.config),
    }
    st.lastGrant = { holder: m.from, epoch: m.epoch }
    st.maxEpoch = m.epoch
    return { type: 'grant', ...ids, epoch: m.epoch }
  }

  private voterOnRelease(st: ZoneState, m: ReleaseMessage, nowMs: number): void {
    const g = st.grant
    if (g === null || g.holder !== m.from || g.incarnation !== m.incarnation || g.attempt !== m.attempt)
      return
    if (g.epoch !== m.epoch) return
    st.grant = null
    st.freedAtMs = nowMs
  }

  /** What this node tells a voter that asks for its epochs. */
  private stateOf(st: ZoneState): StateMessage {
    return {
      type: 'state',
      zone: st.zone,
      from: this.self,
      maxEpoch: st.maxEpoch,
      recovering: st.recovery !== null || !this.allVoters(st).has(this.self),
    }
  }

  private voterOnState(st: ZoneState, m: StateMessage): void {
    // Only the zone's voters know its epochs; anyone else's number could freeze the zone.
    if (!this.allVoters(st).has(m.from)) {
      this.counts['non-voter-epoch']++
      return
    }
    st.maxEpoch = learnEpoch(st.maxEpoch, m.maxEpoch)
    if (st.recovery === null || !st.current.voters.includes(m.from)) return
    st.recovery.replies.set(m.from, !m.recovering)
  }

  // ---- candidate side -------------------------------------------------------------------------

  private candidateOnReply(st: ZoneState, m: GrantMessage | RefuseMessage, nowMs: number): void {
    const a = st.attempt
    if (!this.allVoters(st).has(m.from)) {
      // Grants and refusals count only from voters, and only voters' epochs are learnt.
      this.counts[m.type === 'refuse' ? 'non-voter-epoch' : 'bad-grant']++
      return
    }
    if (m.type === 'refuse') {
      st.maxEpoch = learnEpoch(st.maxEpoch, m.maxEpoch)
      if (m.reason === 'roster' && m.rosterVersion !== this.rosterVersion) {
        this.rosterMismatch(st.zone, m.from, m.rosterVersion)
      }
      if (m.reason === 'stale' && a !== null && m.attempt === a.id && m.incarnation === this.incarnation) {
        st.bump = true
      }
    }
    if (a === null || m.incarnation !== this.incarnation || m.attempt !== a.id) {
      this.counts['late-reply']++
      return
    }
    if (m.type === 'grant') {
      if (m.epoch !== a.epoch) {
        this.counts['bad-grant']++
        return
      }
      a.grants.add(m.from)
      if (isJointQuorum(a.grants, this.voterSets(st))) this.succeed(st, a)
      return
    }
    // A renewal waits out refusals: the holder keeps its current lease and bumps the epoch next time if
    // it learned of a higher one. A campaign gives way (and releases) once a majority is out of reach.
    a.refusals.add(m.from)
    if (m.reason === 'held' && m.holder !== null && this.defersTo(st, m.holder, nowMs)) {
      st.busyUntilMs = Math.max(st.busyUntilMs, this.busyHorizonMs(nowMs))
    }
    if (!a.renewal && !isQuorumPossible(a.refusals, this.voterSets(st))) this.abandon(st, nowMs)
  }

  /**
   * Durable epochs: asks the driver to save `epoch` for `zone` when it is above what is saved. False
   * when the table of saved zones is full (the caller then must not grant).
   */
  private saveEpoch(zone: string, epoch: number): boolean {
    const saved = this.saved
    if (saved === null || epoch <= (saved.get(zone) ?? 0)) return true
    if (!saved.has(zone) && saved.size >= this.config.zonesMax) {
      this.counts['zones-limit']++
      return false
    }
    saved.set(zone, epoch)
    this.emit({ type: 'persist-epoch', zone, epoch })
    return true
  }

  // ---- lookups (who holds a zone, proven by its voters) -----------------------------------------

  /**
   * What this node, as a voter of `zone`, says of its lease: the holder of its open, unexpired grant,
   * or null (no grant, recovering, or not a voter: such answers never count towards a proof).
   */
  private ownAnswer(zone: string, nowMs: number): { holder: string | null; epoch: number } {
    const st = this.zoneStates.get(zone)
    if (st === undefined || st.recovery !== null || !this.allVoters(st).has(this.self)) {
      return { holder: null, epoch: st?.maxEpoch ?? 0 }
    }
    const g = st.grant
    if (g === null || nowMs >= g.expiresAtMs) return { holder: null, epoch: st.maxEpoch }
    return { holder: g.holder, epoch: g.epoch }
  }

  private onLookup(zone: string, query: number, nowMs: number): void {
    const result = (holder: string | null, epoch: number) =>
      this.emit({ type: 'lookup-result', query, zone, holder, epoch })
    const voters = zoneVoters(zone, this.roster).voters
    if (voters.length === 0) {
      result(null, 0)
      return
    }
    if (this.lookups.has(query) || this.lookups.size >= LOOKUPS_MAX) {
      this.counts['lookups-limit']++
      result(null, 0)
      return
    }
    const prior = this.priorVotersOf(zone)
    const lookup: Lookup = {
      zone,
      sets: prior === null ? [voters] : [voters, prior],
      answers: new Map(),
      deadlineMs: nowMs + 2 * this.config.attemptTimeoutMs,
    }
    this.lookups.set(query, lookup)
    const asked = new Set(lookup.sets.flat())
    for (const id of [...asked].sort()) {
      if (id === this.self) lookup.answers.set(id, this.ownAnswer(zone, nowMs))
      else this.send(id, { type: 'who', zone, from: this.self, query })
    }
    this.settleLookup(query, lookup)
  }

  private onHolderAnswer(from: string, m: HolderMessage): void {
    const lookup = this.lookups.get(m.query)
    if (lookup === undefined || lookup.zone !== m.zone || !lookup.sets.some(set => set.includes(from))) {
      this.counts['late-reply']++
      return
    }
    if (m.rosterVersion !== this.rosterVersion) {
      // Counted under another voter set, the answer proves nothing here; it still ends the wait for it.
      this.rosterMismatch(m.zone, from, m.rosterVersion)
      lookup.answers.set(from, { holder: null, epoch: 0 })
    } else {
      lookup.answers.set(from, { holder: m.holder, epoch: m.epoch })
    }
    this.settleLookup(m.query, lookup)
  }

  /** Ends `lookup` when a holder is proven or no longer can be. */
  private settleLookup(query: number, lookup: Lookup): void {
    const byClaim = new Map<string, { holder: string; epoch: number; voters: string[] }>()
    for (const [voter, answer] of lookup.answers) {
      if (answer.holder === null) continue
      const key = `${answer.holder}\u0000${answer.epoch}`
      const claim = byClaim.get(key) ?? { holder: answer.holder, epoch: answer.epoch, voters: [] }
      claim.voters.push(voter)
      byClaim.set(key, claim)
    }
    for (const claim of byClaim.values()) {
      if (isJointQuorum(claim.voters, lookup.sets)) {
        this.lookups.delete(query)
        this.emit({
          type: 'lookup-result',
          query,
          zone: lookup.zone,
          holder: claim.holder,
          epoch: claim.epoch,
        })
        return
      }
    }
    const asked = new Set(lookup.sets.flat())
    if ([...asked].every(id => lookup.answers.has(id))) {
      this.lookups.delete(query)
      this.emit({ type: 'lookup-result', query, zone: lookup.zone, holder: null, epoch: 0 })
    }
  }

  private rosterMismatch(zone: string, peer: string, theirs: number): void {
    this.counts['roster-mismatch']++
    this.emit({ type: 'roster-mismatch', zone, peer, theirs, ours: this.rosterVersion })
  }

  private succeed(st: ZoneState, a: Attempt): void {
    const actUntilMs = holderActUntilMs(a.sentAtMs, this.config)
    const previous = st.holding
    assert(previous === null || a.renewal, 'a campaign succeeded while already holding')
    assert(previous === null || actUntilMs >= previous.actUntilMs, 'a renewal shortened the lease')
    assert(a.epoch >= (previous?.epoch ?? 1), 'a renewal lowered the epoch')
    st.attempt = null
    st.failures = 0
    st.holding = { epoch: a.epoch, actUntilMs, lastSentAtMs: a.sentAtMs }
    st.maxEpoch = Math.max(st.maxEpoch, a.epoch)
    if (previous === null || previous.epoch !== a.epoch) {
      this.emit({ type: 'acquired', zone: st.zone, epoch: a.epoch, actUntilMs })
    } else {
      this.emit({ type: 'renewed', zone: st.zone, epoch: a.epoch, actUntilMs })
    }
  }

  /** Ends the attempt in flight; when not holding, tells the voters that granted to drop their grants. */
  private abandon(st: ZoneState, nowMs: number): void {
    const a = st.attempt
    if (a === null) return
    st.attempt = null
    // Exponential backoff, capped at one lease TTL, so an isolated candidate does not spin.
    const spanMs = Math.min(
      this.config.retryBackoffMs * 2 ** Math.min(st.failures, 16),
      this.config.leaseTtlMs,
    )
    st.failures++
    st.retryAtMs = nowMs + Math.floor(this.random() * spanMs)
    if (st.holding !== null) return
    for (const voter of [...a.grants].sort()) {
      const release: ReleaseMessage = {
        type: 'release',
        zone: st.zone,
        from: this.self,
        epoch: a.epoch,
        incarnation: this.incarnation,
        attempt: a.id,
      }
      if (voter === this.self) this.voterOnRelease(st, release, nowMs)
      else this.send(voter, release)
    }
  }

  private stepDown(st: ZoneState, nowMs: number, reason: LostReason): void {
    if (st.holding !== null) {
      this.emit({ type: 'lost', zone: st.zone, epoch: st.holding.epoch, reason })
      st.holding = null
    }
    this.abandon(st, nowMs)
  }

  private startAttempt(st: ZoneState, nowMs: number): void {
    const renewal = st.holding !== null
    // Keep the epoch while it is still ours (a renewal, or a retry of our own unheld campaign); take a
    // fresh one as soon as anyone knows a higher epoch or called ours stale.
    let epoch = st.maxEpoch + 1
    if (!st.bump) {
      if (st.holding !== null && st.holding.epoch >= st.maxEpoch) epoch = st.holding.epoch
      const ours = st.lastGrant?.holder === this.self && st.lastGrant.epoch === st.maxEpoch
      if (st.holding === null && ours) epoch = st.maxEpoch
    }
    st.bump = false
    const a: Attempt = {
      id: ++this.attemptCounter,
      epoch,
      sentAtMs: nowMs,
      renewal,
      grants: new Set(),
      refusals: new Set(),
    }
    st.attempt = a
    if (!renewal) this.emit({ type: 'campaign', zone: st.zone, epoch })
    const request: RequestMessage = {
      type: 'request',
      zone: st.zone,
      from: this.self,
      epoch,
      incarnation: this.incarnation,
      attempt: a.id,
      rosterVersion: this.rosterVersion,
    }
    const voters = [...this.allVoters(st)].sort()
    // Our own vote first: with durable epochs its `persist-epoch` then precedes the requests, and the
    // driver saves it before anyone else hears of the attempt.
    const own = voters.includes(this.self) ? this.voterOnRequest(st, request, nowMs) : null
    for (const voter of voters) if (voter !== this.self) this.send(voter, request)
    if (own !== null) this.candidateOnReply(st, own, nowMs)
  }

  /**
   * Whether we should wait out a lease a voter reports as held by `holder`. Two campaigners that meet
   * resolve by preference: the lower-ranked one waits a full grant window, the higher-ranked one retries
   * after its backoff and wins once the other releases. An established holder that ranks below us is
   * still respected, because our own voter then holds its grant and we do not campaign at all.
   */
  private defersTo(st: ZoneState, holder: string, nowMs: number): boolean {
    if (holder === this.self) return false
    const live = st.ranking.filter(id => this.isLive(id, nowMs))
    const theirs = live.indexOf(holder)
    return theirs < 0 || theirs < live.indexOf(this.self)
  }

  /**
   * The local time from which we may campaign for `st`'s free lease, Infinity while something other
   * than time must happen first. Liveness (hence our rank) changes only with inputs: a dead hint clears
   * the time a peer was last heard, a message from it clears the hint.
   */
  private campaignAtMs(st: ZoneState, nowMs: number): number {
    if (st.holding !== null || st.attempt !== null || st.recovery !== null) return Number.POSITIVE_INFINITY
    if (!st.current.members.includes(this.self)) return Number.POSITIVE_INFINITY
    // Our own voter would refuse anyone else: no point asking the others (its grant ending is a deadline).
    if (st.grant !== null && st.grant.holder !== this.self) return Number.POSITIVE_INFINITY
    // A member without a vote sees no grants, so it would ask the voters once per grant window while one
    // of them holds. It stays a follower while it considers any voting member live: a majority of the
    // voters of a zone with non-voting members is all members, so a live one ranks above us and campaigns.
    if (!this.allVoters(st).has(this.self)) {
      const members = new Set(st.current.members)
      if (st.current.voters.some(id => members.has(id) && this.isLive(id, nowMs))) {
        return Number.POSITIVE_INFINITY
      }
    }
    const live = st.ranking.filter(id => this.isLive(id, nowMs))
    const rank = live.indexOf(this.self)
    assert(rank >= 0, 'self missing from its own zone ranking')
    // The stagger counts from the latest sign that the lease became free, so candidates that all saw
    // the same lease end still go one rank at a time instead of together.
    const freeAtMs = Math.max(st.freedAtMs, st.busyUntilMs) + rank * this.config.campaignStaggerMs
    return Math.max(st.retryAtMs, freeAtMs)
  }

  /** The local time the holder of `st` starts its next renewal, Infinity while one is in flight. */
  private renewAtMs(st: ZoneState, holding: Holding): number {
    if (st.attempt !== null) return Number.POSITIVE_INFINITY
    return Math.max(st.retryAtMs, holding.lastSentAtMs + this.config.renewIntervalMs)
  }

  // ---- timers ---------------------------------------------------------------------------------

  nextDeadlineMs(): number {
    const nowMs = this.lastNowMs
    let next = Number.POSITIVE_INFINITY
    // Times at or before the last step or tick were handled by its runTimers, or wait on an input.
    const at = (ms: number): void => {
      if (ms > nowMs && ms < next) next = ms
    }
    for (const lookup of this.lookups.values()) at(lookup.deadlineMs)
    for (const st of this.zoneStates.values()) {
      for (const h of st.history) at(h.untilMs)
      if (st.recovery !== null) {
        at(st.recovery.quietUntilMs)
        at(st.recovery.nextSyncAtMs)
      }
      if (st.grant !== null) at(grantFreeAtMs(st.grant.expiresAtMs, this.config))
      if (st.attempt !== null) at(st.attempt.sentAtMs + this.config.attemptTimeoutMs)
      if (st.holding !== null) {
        at(st.holding.actUntilMs)
        at(this.renewAtMs(st, st.holding))
      } else {
        at(this.campaignAtMs(st, nowMs))
      }
    }
    return next
  }

  private runTimers(nowMs: number): void {
    for (const [query, lookup] of [...this.lookups]) {
      if (nowMs < lookup.deadlineMs) continue
      this.lookups.delete(query)
      this.emit({ type: 'lookup-result', query, zone: lookup.zone, holder: null, epoch: 0 })
    }
    for (const st of [...this.zoneStates.values()]) {
      st.history = st.history.filter(h => nowMs < h.untilMs)
      if (!this.allVoters(st).has(this.self) && !st.current.members.includes(this.self)) {
        this.stepDown(st, nowMs, 'removed')
        this.zoneStates.delete(st.zone)
        continue
      }
      this.runRecovery(st, nowMs)
      if (st.grant !== null) {
        const freeAtMs = grantFreeAtMs(st.grant.expiresAtMs, this.config)
        if (nowMs >= freeAtMs) {
          st.grant = null
          st.freedAtMs = Math.max(st.freedAtMs, freeAtMs)
        }
      }
      if (st.holding !== null && nowMs >= st.holding.actUntilMs) this.stepDown(st, nowMs, 'expired')
      if (st.attempt !== null && nowMs >= st.attempt.sentAtMs + this.config.attemptTimeoutMs) {
        this.abandon(st, nowMs)
      }
      if (st.holding !== null) {
        if (nowMs >= this.renewAtMs(st, st.holding)) this.startAttempt(st, nowMs)
      } else if (nowMs >= this.campaignAtMs(st, nowMs)) {
        this.startAttempt(st, nowMs)
      }
    }
  }

  private runRecovery(st: ZoneState, nowMs: number): void {
    const r = st.recovery
    if (r === null) return
    const others = st.current.voters.filter(id => id !== this.self)
    if (nowMs >= r.quietUntilMs) {
      const vouched = others.filter(id => r.replies.get(id) === true).length
      const allHeard = others.every(id => r.replies.has(id))
      const needed = recoveryQuorumSize(st.current.voters.length) - (this.savedComplete ? 1 : 0)
      if (vouched >= needed || allHeard) {
        st.recovery = null
        this.saveEpoch(st.zone, st.maxEpoch)
        st.freedAtMs = nowMs
        this.emit({ type: 'recovered', zone: st.zone, maxEpoch: st.maxEpoch })
        // The voters that asked while we could not vouch learn at once that now we can.
        const state = this.stateOf(st)
        for (const id of [...r.askers].sort()) if (id !== this.self) this.send(id, state)
        return
      }
    }
    if (nowMs >= r.nextSyncAtMs) {
      // Before the quiet period ends only silence is worth chasing; after it, peers that were themselves
      // recovering may vouch by now. Those rounds back off (a voter that finishes tells us itself).
      const late = nowMs + this.config.syncIntervalMs >= r.quietUntilMs
      const waitMs = this.config.syncIntervalMs * (late ? 2 ** Math.min(r.lateRounds, 3) : 1)
      if (late) r.lateRounds++
      r.nextSyncAtMs = nowMs + Math.min(waitMs, RECOVERY_BACKOFF_MAX * this.config.syncIntervalMs)
      for (const id of others) {
        const reply = r.replies.get(id)
        if (reply === undefined || (late && !reply))
          this.send(id, { type: 'sync', zone: st.zone, from: this.self })
      }
    }
  }
}
