/**
 * Replication of the CA issuer's durable state among the CA holders: a pure state machine (STYLE.md
 * §1) that decides when a change of issuer state is safe to act on. It is single-decree Paxos run
 * over a growing snapshot — a *ballot* per issuer incarnation, a promise phase on recovery, then one
 * accept round per change — with the issuer state carried whole (state-based, no log).
 *
 *   issuer at ballot b = (epoch, round, self)            holder h (every holder, the issuer included)
 *   ─────────────────────────────────────────            ──────────────────────────────────────────
 *   become-issuer(epoch) → persist promise b, ──prepare(b)──▶ b ≥ promised? promised = b, persist,
 *                                                              ◀── promise(b, accepted summary)
 *                                              else            ◀── refuse(b, promised)   (fencing)
 *   majority promised → best = highest (ballot, version) summary seen (its own included)
 *   best not held locally → ──fetch(b)──▶ h      ◀── state(b, summary, bytes)  (hash checked)
 *   re-store best under b (version + 1)  ──store(b, v, bytes)──▶ b ≥ promised and (b, v) newer?
 *                                                              accept, persist ◀── stored(b, v)
 *   majority stored → `ready` (the driver builds the issuer from the state; only now it serves)
 *   propose(state) → store(b, v + 1) …  majority stored → `committed` (the driver releases answers)
 *   refuse with a higher promise, or a higher prepare/store seen → `deposed` (never serves again on b)
 *
 * Why it is safe (no ticket accepted twice, no serial reused, no committed revocation lost): a change
 * is *committed* once a majority of holders stored it, and only then does its effect leave the issuer.
 * Any later issuer recovered from a majority that promised its higher ballot; that majority shares a
 * holder with the committing one, which stored the change before promising (after promising it would
 * have refused the store). So the highest summary a recovery sees descends from every committed
 * state: within one ballot the versions form one chain (one issuer, which never abandons a version: it
 * retries it until it commits or is deposed), and a higher ballot's first state was itself recovered
 * this way (induction on ballots). The state carries the used ticket nonces, the issued serials and
 * the revocations, so a committed one is in every later issuer's state.
 *
 * Safety never depends on the lease: two would-be issuers with overlapping believed leases cannot
 * both commit — the later ballot's promises fence the earlier one. The lease (the CA zone's authority
 * epoch, the first part of the ballot) gives liveness: one issuer at a time, so they do not duel.
 * Ballots carry a `round` and the issuer's id so that an issuer re-recovering under the same epoch
 * (after a restart, or after being deposed) never re-uses a ballot: its own holder persists every
 * promise before its prepare leaves, and the next round is above it.
 *
 * Limits: one change in flight at a time (the issuer driver serialises anyway); every message is
 * bounded (`stateBytesMax`, ids, integers); retries every `retryMs` to holders that did not answer.
 * The holder set is fixed for one replica (changing it safely needs joint quorums; not done here).
 *
 * No I/O, clock or randomness: time comes in as `nowMs` (only for retries), hashes are pure.
 */
import { DecodeError } from '../wire/cbor.js'
import { readBytes, readInteger, readRecord, readText, tryRead } from '../wire/fields.js'
import { bytesEqual, hash } from '../wire/hash.js'
import { ISSUER_STATE_BYTES_MAX } from './issuer-state.js'

/** Most holders of one CA zone (a majority of 7 is 4; more only costs stores per change). */
export const REPLICA_HOLDERS_MAX = 7
/** Longest holder id (a peer id), in characters. */
export const REPLICA_ID_CHARS_MAX = 128
/** Highest round within one epoch: rounds grow by one per recovery, so this is never reached in practice. */
export const REPLICA_ROUND_MAX = 2 ** 31
/** Length of a state hash (SHA-256). */
export const STATE_HASH_BYTES = 32

/** A ballot: the authority epoch, a round within it, the issuer's id. Ordered in that order. */
export interface Ballot {
  readonly epoch: number
  readonly round: number
  readonly issuer: string
}

/** Orders ballots: negative when `a` < `b`, 0 when equal, positive when `a` > `b`. */
export function compareBallots(a: Ballot, b: Ballot): number {
  if (a.epoch !== b.epoch) return a.epoch - b.epoch
  if (a.round !== b.round) return a.round - b.round
  return a.issuer < b.issuer ? -1 : a.issuer > b.issuer ? 1 : 0
}

/** Which state a holder stores: its ballot and version, and the SHA-256 of its bytes. */
export interface AcceptedSummary {
  readonly ballot: Ballot
  readonly version: number
  readonly hash: Uint8Array
}

/** Orders accepted summaries by (ballot, version). */
export function compareAccepted(a: AcceptedSummary, b: AcceptedSummary): number {
  return compareBallots(a.ballot, b.ballot) || a.version - b.version
}

/** What a holder keeps on disk; written on every `persist` effect, given back on restart. */
export interface ReplicaRecord {
  /** The highest ballot promised (stores and prepares below it are refused). */
  readonly promised: Ballot | null
  /** The newest state accepted, with its summary. */
  readonly accepted: (AcceptedSummary & { readonly state: Uint8Array }) | null
}

/** Messages between holders. Plain data; see {@link encodeReplicaMessage}-style codecs in the driver. */
export type ReplicaMessage =
  | { readonly type: 'prepare'; readonly ballot: Ballot }
  | { readonly type: 'promise'; readonly ballot: Ballot; readonly accepted: AcceptedSummary | null }
  | { readonly type: 'refuse'; readonly ballot: Ballot; readonly promised: Ballot }
  | { readonly type: 'fetch'; readonly ballot: Ballot }
  | {
      readonly type: 'state'
      readonly ballot: Ballot
      readonly accepted: AcceptedSummary
      readonly state: Uint8Array
    }
  | { readonly type: 'store'; readonly ballot: Ballot; readonly version: number; readonly state: Uint8Array }
  | { readonly type: 'stored'; readonly ballot: Ballot; readonly version: number }

/** Inputs of {@link Replica.step}. */
export type ReplicaInput =
  /** The CA zone's authority granted this node the lease at `epoch`: recover, then serve. */
  | { readonly type: 'become-issuer'; readonly epoch: number }
  /** The lease ended (or the driver gives up): stop serving; a change in flight is not committed. */
  | { readonly type: 'step-down' }
  /** A new issuer state to commit; only while serving with no change in flight. */
  | { readonly type: 'propose'; readonly state: Uint8Array }
  /** A message from holder `from` (authenticated by the transport). */
  | { readonly type: 'message'; readonly from: string; readonly message: ReplicaMessage }

/** Why an issuer stopped. */
export type DeposedReason = 'fenced' | 'stepped-down' | 'no-state'

/** What the driver must do, in order: a `persist` must be durable before any effect after it. */
export type ReplicaEffect =
  | { readonly type: 'persist'; readonly record: ReplicaRecord }
  | { readonly type: 'send'; readonly to: string; readonly message: ReplicaMessage }
  /** Recovery done: serve from `state` (the issuer's encoded state) at `version`. */
  | { readonly type: 'ready'; readonly ballot: Ballot; readonly version: number; readonly state: Uint8Array }
  /** The proposal at `version` is on a majority: release its effects. */
  | { readonly type: 'committed'; readonly version: number }
  /** This node is no longer (or never became) the issuer; a change in flight is NOT committed. */
  | {
      readonly type: 'deposed'
      readonly reason: DeposedReason
      /** The higher ballot that fenced us, when known (its issuer is the one to try). */
      readonly by?: Ballot
    }

/** The replica's role. */
export type ReplicaRole = 'holder' | 'recovering' | 'serving'

/** Counters for metrics. */
export interface ReplicaCounters {
  readonly refusedStale: number
  readonly ignored: number
  readonly badFetch: number
  readonly deposed: number
  readonly commits: number
}

/** Timing and limits of one replica. */
export interface ReplicaConfig {
  /** How often an unanswered prepare, fetch or store is sent again, in ms of the local clock. */
  readonly retryMs: number
  /** Largest state carried, in bytes. */
  readonly stateBytesMax: number
}

/** Defaults of {@link ReplicaConfig}. */
export const DEFAULT_REPLICA_CONFIG: ReplicaConfig = {
  retryMs: 250,
  stateBytesMax: ISSUER_STATE_BYTES_MAX,
}

/** The replication state machine of one holder. Not re-entrant; the driver serialises calls. */
export interface Replica {
  step(input: ReplicaInput, nowMs: number): void
  /** Sends again what is unanswered; call every `retryMs` or so. */
  tick(nowMs: number): void
  drainEffects(): ReplicaEffect[]
  role(): ReplicaRole
  /** The ballot this node recovers or serves under, when it does. */
  ballot(): Ballot | null
  /** The issuer of the highest ballot this holder has promised: where a joiner should go. */
  issuerHint(): string | undefined
  /** True while a proposal awaits its majority. */
  inFlight(): boolean
  /** A copy of the durable record. */
  record(): ReplicaRecord
  counters(): ReplicaCounters
}

/** Majority of `n` holders. */
export function replicaMajority(n: number): number {
  return Math.floor(n / 2) + 1
}

/**
 * Creates a replica for holder `self` of `holders` (which must include it), restoring `record`.
 * @throws TypeError for a holder set that is empty, too large, duplicated or without `self`
 */
export function createReplica(init: {
  readonly self: string
  readonly holders: readonly string[]
  readonly record?: ReplicaRecord
  readonly config?: Partial<ReplicaConfig>
}): Replica {
  const config = { ...DEFAULT_REPLICA_CONFIG, ...init.config }
  const { self } = init
  const holders = [...init.holders]
  if (holders.length === 0 || holders.length > REPLICA_HOLDERS_MAX)
    throw new TypeError(`a CA zone has 1 to ${REPLICA_HOLDERS_MAX} holders`)
  if (new Set(holders).size !== holders.length) throw new TypeError('holders must be distinct')
  if (!holders.includes(self)) throw new TypeError('self must be one of the holders')
  const others = holders.filter(id => id !== self)
  const majority = replicaMajority(holders.length)

  let promised: Ballot | null = init.record?.promised ?? null
  let accepted: ReplicaRecord['accepted'] = init.record?.accepted ?? null
  let effects: ReplicaEffect[] = []
  const counters = { refusedStale: 0, ignored: 0, badFetch: 0, deposed: 0, commits: 0 }

  /** The issuer side; null while only a holder. */
  type Phase =
    | { kind: 'preparing'; promises: Map<string, AcceptedSummary | null> }
    | { kind: 'fetching'; best: AcceptedSummary; sources: string[]; asked: number }
    | { kind: 'storing'; version: number; state: Uint8Array; acks: Set<string>; forReady: boolean }
    | { kind: 'serving'; version: number; state: Uint8Array }
  let issuer: { ballot: Ballot; phase: Phase; lastSentMs: number } | null = null

  const record = (): ReplicaRecord => ({ promised, accepted })
  const persist = (): void => {
    effects.push({ type: 'persist', record: record() })
  }
  const send = (to: string, message: ReplicaMessage): void => {
    effects.push({ type: 'send', to, message })
  }
  const summary = (): AcceptedSummary | null =>
    accepted === null ? null : { ballot: accepted.ballot, version: accepted.version, hash: accepted.hash }

  const depose = (reason: DeposedReason, by?: Ballot): void => {
    if (issuer === null) return
    issuer = null
    counters.deposed++
    effects.push({ type: 'deposed', reason, ...(by !== undefined ? { by } : {}) })
  }

  /** Raises the promise to `ballot` (persisting it); deposes our own issuer if it is below. */
  const promiseUpTo = (ballot: Ballot): void => {
    if (promised !== null && compareBallots(ballot, promised) <= 0) return
    promised = ballot
    if (issuer !== null && compareBallots(issuer.ballot, ballot) < 0) depose('fenced', ballot)
  }

  /** Stores a state under `ballot`/`version` locally if it is newer; returns whether we hold it now. */
  const acceptLocally = (ballot: Ballot, version: number, state: Uint8Array): boolean => {
    if (promised !== null && compareBallots(ballot, promised) < 0) return false
    const incoming: AcceptedSummary = { ballot, version, hash: hash(state) }
    if (accepted !== null && compareAccepted(incoming, accepted) <= 0) {
      // Already hold it (a resend) or something newer under this ballot: ack without storing again.
      return compareBallots(accepted.ballot, ballot) === 0
    }
    promiseUpTo(ballot)
    accepted = { ...incoming, state }
    persist()
    return true
  }

  const sendPhase = (nowMs: number, to: readonly string[]): void => {
    if (issuer === null) return
    issuer.lastSentMs = nowMs
    const { ballot, phase } = issuer
    if (phase.kind === 'preparing') {
      for (const id of to) if (!phase.promises.has(id)) send(id, { type: 'prepare', ballot })
    } else if (phase.kind === 'fetching') {
      const source = phase.sources[phase.asked % phase.sources.length]
      if (source !== undefined) send(source, { type: 'fetch', ballot })
    } else if (phase.kind === 'storing') {
      for (const id of to)
        if (!phase.acks.has(id))
          send(id, { type: 'store', ballot, version: phase.version, state: phase.state })
    }
  }

  const startStore = (nowMs: number, version: number, state: Uint8Array, forReady: boolean): void => {
    if (issuer === null) return
    const acks = new Set<string>()
    if (acceptLocally(issuer.ballot, version, state)) acks.add(self)
    issuer.phase = { kind: 'storing', version, state, acks, forReady }
    sendPhase(nowMs, others)
    checkStored()
  }

  const checkStored = (): void => {
    if (issuer === null || issuer.phase.kind !== 'storing' || issuer.phase.acks.size < majority) return
    const { version, state, forReady } = issuer.phase
    issuer.phase = { kind: 'serving', version, state }
    if (forReady) effects.push({ type: 'ready', ballot: issuer.ballot, version, state })
    else {
      counters.commits++
      effects.push({ type: 'committed', version })
    }
  }

  const adopt = (nowMs: number, best: AcceptedSummary, state: Uint8Array): void => {
    startStore(nowMs, best.version + 1, state, true)
  }

  const checkPromises = (nowMs: number): void => {
    if (issuer === null || issuer.phase.kind !== 'preparing' || issuer.phase.promises.size < majority) return
    let best: AcceptedSummary | null = null
    const sources: string[] = []
    for (const [id, item] of issuer.phase.promises) {
      if (item === null) continue
      const order = best === null ? 1 : compareAccepted(item, best)
      if (order > 0) {
        best = item
        sources.length = 0
      }
      if (order >= 0 && best !== null && bytesEqual(item.hash, best.hash)) sources.push(id)
    }
    // Nobody of a majority holds any state: adopting an empty CA would forget the admission history
    // the minority may hold. The driver seeds the first holder with the CA's state; never invent one.
    if (best === null) {
      depose('no-state')
      return
    }
    if (accepted !== null && compareAccepted(accepted, best) === 0) {
      adopt(nowMs, best, accepted.state)
      return
    }
    issuer.phase = { kind: 'fetching', best, sources: sources.filter(id => id !== self), asked: 0 }
    sendPhase(nowMs, others)
  }

  const onIssuerMessage = (nowMs: number, from: string, message: ReplicaMessage): void => {
    if (issuer === null || !('ballot' in message) || compareBallots(message.ballot, issuer.ballot) !== 0) {
      counters.ignored++
      return
    }
    const { phase } = issuer
    if (message.type === 'refuse') {
      if (compareBallots(message.promised, issuer.ballot) > 0) {
        promiseUpTo(message.promised)
        persist()
      } else counters.ignored++
      return
    }
    if (message.type === 'promise' && phase.kind === 'preparing') {
      phase.promises.set(from, message.accepted)
      checkPromises(nowMs)
    } else if (message.type === 'state' && phase.kind === 'fetching') {
      // The source moved on to a higher ballot's state: that issuer has fenced us (or will).
      if (compareBallots(message.accepted.ballot, issuer.ballot) > 0) {
        promiseUpTo(message.accepted.ballot)
        persist()
        return
      }
      if (
        compareAccepted(message.accepted, phase.best) !== 0 ||
        !bytesEqual(hash(message.state), phase.best.hash)
      ) {
        counters.badFetch++
        return
      }
      adopt(nowMs, phase.best, message.state)
    } else if (message.type === 'stored' && phase.kind === 'storing' && message.version === phase.version) {
      phase.acks.add(from)
      checkStored()
    } else counters.ignored++
  }

  /**
   * The holder's two checks before it promises or stores: a ballot must be its sender's own (else the
   * message is ignored), and not below the ballot promised (else it is refused, naming the promise).
   * True when the message was turned away.
   */
  const turnedAway = (from: string, ballot: Ballot): boolean => {
    if (ballot.issuer !== from) {
      counters.ignored++
      return true
    }
    if (promised !== null && compareBallots(ballot, promised) < 0) {
      counters.refusedStale++
      send(from, { type: 'refuse', ballot, promised })
      return true
    }
    return false
  }

  const onHolderMessage = (from: string, message: ReplicaMessage): boolean => {
    switch (message.type) {
      case 'prepare': {
        if (turnedAway(from, message.ballot)) return true
        const raised = promised === null || compareBallots(message.ballot, promised) > 0
        promiseUpTo(message.ballot)
        if (raised) persist()
        send(from, { type: 'promise', ballot: message.ballot, accepted: summary() })
        return true
      }
      case 'fetch': {
        if (message.ballot.issuer !== from || accepted === null) {
          counters.ignored++
          return true
        }
        send(from, {
          type: 'state',
          ballot: message.ballot,
          accepted: summary() as AcceptedSummary,
          state: accepted.state,
        })
        return true
      }
      case 'store': {
        if (turnedAway(from, message.ballot)) return true
        if (acceptLocally(message.ballot, message.version, message.state))
          send(from, { type: 'stored', ballot: message.ballot, version: message.version })
        return true
      }
      default:
        return false
    }
  }

  return {
    step(input, nowMs) {
      switch (input.type) {
        case 'become-issuer': {
          if (!Number.isSafeInteger(input.epoch) || input.epoch < 0)
            throw new TypeError('epoch must be a safe integer ≥ 0')
          if (issuer !== null && issuer.ballot.epoch === input.epoch) return
          if (issuer !== null) depose('stepped-down')
          if (promised !== null && promised.epoch > input.epoch) {
            // A higher epoch already recovered here: this lease is stale (its holder will be fenced).
            counters.deposed++
            effects.push({ type: 'deposed', reason: 'fenced', by: promised })
            return
          }
          const round = promised !== null && promised.epoch === input.epoch ? promised.round + 1 : 0
          if (round > REPLICA_ROUND_MAX) throw new Error('replica round overflow')
          const ballot: Ballot = { epoch: input.epoch, round, issuer: self }
          promised = ballot
          persist()
          issuer = {
            ballot,
            phase: { kind: 'preparing', promises: new Map([[self, summary()]]) },
            lastSentMs: nowMs,
          }
          sendPhase(nowMs, others)
          checkPromises(nowMs)
          return
        }
        case 'step-down':
          return depose('stepped-down')
        case 'propose': {
          if (issuer === null || issuer.phase.kind !== 'serving')
            throw new Error('propose: not serving (the driver must wait for ready and committed)')
          if (input.state.byteLength > config.stateBytesMax)
            throw new RangeError('issuer state too large to replicate')
          return startStore(nowMs, issuer.phase.version + 1, input.state, false)
        }
        case 'message': {
          if (!holders.includes(input.from) || input.from === self) {
            counters.ignored++
            return
          }
          if (onHolderMessage(input.from, input.message)) return
          return onIssuerMessage(nowMs, input.from, input.message)
        }
      }
    },
    tick(nowMs) {
      if (issuer === null || nowMs - issuer.lastSentMs < config.retryMs) return
      if (issuer.phase.kind === 'fetching') issuer.phase.asked++
      sendPhase(nowMs, others)
    },
    drainEffects() {
      const out = effects
      effects = []
      return out
    },
    role: () => (issuer === null ? 'holder' : issuer.phase.kind === 'serving' ? 'serving' : 'recovering'),
    ballot: () => issuer?.ballot ?? null,
    issuerHint: () => promised?.issuer,
    inFlight: () => issuer !== null && issuer.phase.kind === 'storing' && !issuer.phase.forReady,
    record,
    counters: () => ({ ...counters }),
  }
}

// ── Wire codec: bounded parse with closed error codes ───────────────────────────────────────────

/** Largest encoded message: the state plus room for the ballot and summary. */
export function replicaMessageBytesMax(stateBytesMax: number = ISSUER_STATE_BYTES_MAX): number {
  return stateBytesMax + 1024
}

const MESSAGE_TYPES = ['prepare', 'promise', 'refuse', 'fetch', 'state', 'store', 'stored'] as const

function readBallot(content: unknown, what: string): Ballot {
  const record = readRecord(content, what, ['epoch', 'round', 'issuer'])
  return {
    epoch: readInteger(record, 'epoch'),
    round: readInteger(record, 'round', { max: REPLICA_ROUND_MAX }),
    issuer: readText(record, 'issuer', REPLICA_ID_CHARS_MAX),
  }
}

function readSummary(content: unknown): AcceptedSummary {
  const record = readRecord(content, 'accepted', ['ballot', 'version', 'hash'])
  return {
    ballot: readBallot(record.ballot, 'ballot'),
    version: readInteger(record, 'version'),
    hash: readBytes(record, 'hash', { length: STATE_HASH_BYTES }),
  }
}

/** Turns a message into CBOR-encodable data (the driver encodes it with `encodeCbor`). */
export function replicaMessageContent(message: ReplicaMessage): Record<string, unknown> {
  const ballot = (b: Ballot) => ({ epoch: b.epoch, round: b.round, issuer: b.issuer })
  const summaryOf = (s: AcceptedSummary) => ({ ballot: ballot(s.ballot), version: s.version, hash: s.hash })
  switch (message.type) {
    case 'prepare':
    case 'fetch':
      return { type: message.type, ballot: ballot(message.ballot) }
    case 'promise':
      return {
        type: 'promise',
        ballot: ballot(message.ballot),
        ...(message.accepted !== null ? { accepted: summaryOf(message.accepted) } : {}),
      }
    case 'refuse':
      return { type: 'refuse', ballot: ballot(message.ballot), promised: ballot(message.promised) }
    case 'state':
      return {
        type: 'state',
        ballot: ballot(message.ballot),
        accepted: summaryOf(message.accepted),
        state: message.state,
      }
    case 'store':
      return { type: 'store', ballot: ballot(message.ballot), version: message.version, state: message.state }
    case 'stored':
      return { type: 'stored', ballot: ballot(message.ballot), version: message.version }
  }
}

/** Raised by {@link parseReplicaMessage}. */
export class ReplicaMessageError extends Error {
  override name = 'ReplicaMessageError'
  readonly code = 'malformed'
}

/**
 * Reads a decoded message, every field bounded.
 * @throws ReplicaMessageError
 */
export function parseReplicaMessage(
  content: unknown,
  stateBytesMax: number = ISSUER_STATE_BYTES_MAX,
): ReplicaMessage {
  const read = tryRead((): ReplicaMessage => {
    const head = readRecord(
      content,
      'message',
      ['type', 'ballot'],
      ['accepted', 'promised', 'state', 'version'],
    )
    const type = readText(head, 'type', 16)
    if (!(MESSAGE_TYPES as readonly string[]).includes(type))
      throw new DecodeError('malformed', 'unknown type')
    const ballot = readBallot(head.ballot, 'ballot')
    const allowed: Record<string, readonly string[]> = {
      prepare: [],
      fetch: [],
      promise: ['accepted'],
      refuse: ['promised'],
      state: ['accepted', 'state'],
      store: ['version', 'state'],
      stored: ['version'],
    }
    for (const key of Object.keys(head))
      if (key !== 'type' && key !== 'ballot' && !(allowed[type] ?? []).includes(key))
        throw new DecodeError('malformed', `${key} is not allowed in ${type}`)
    const state = () => readBytes(head, 'state', { bytesMax: stateBytesMax })
    switch (type) {
      case 'prepare':
      case 'fetch':
        return { type, ballot }
      case 'promise':
        return { type, ballot, accepted: Object.hasOwn(head, 'accepted') ? readSummary(head.accepted) : null }
      case 'refuse':
        return { type, ballot, promised: readBallot(head.promised, 'promised') }
      case 'state':
        return { type, ballot, accepted: readSummary(head.accepted), state: state() }
      case 'store':
        return { type, ballot, version: readInteger(head, 'version'), state: state() }
      default:
        return { type: 'stored', ballot, version: readInteger(head, 'version') }
    }
  })
  if (!read.ok) throw new ReplicaMessageError(`replica message: ${read.detail}`)
  return read.value
}
