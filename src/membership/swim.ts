/**
 * The SWIM membership core (Das et al. 2002, with memberlist's push-pull and Lifeguard's suspicion
 * timers): who is in the mesh and whether each member is alive, at an idle cost per node that does not
 * grow with the mesh. Types: swim-types.ts; the simulator and its scenarios: test/sim/swim-sim.ts,
 * test/sim/swim.test.ts; large runs: bench/swim-sim.mjs.
 *
 * Pure: no I/O, no clock, no randomness of its own. The driver steps verified messages and local
 * intents into {@link Swim.step}, calls {@link Swim.tick} at {@link Swim.nextDeadlineMs}, and carries
 * out the drained effects. `nowMs` must come from a monotonic clock.
 *
 * ```
 *               probe fails (ours), or a signed
 *               suspect claim at the held incarnation
 *   ┌──────┐ ───────────────────────────────────▶ ┌─────────┐  own suspicion timer  ┌──────┐
 *   │alive │                                      │ suspect │ ────────────────────▶ │ dead │
 *   └──────┘ ◀─────────────────────────────────── └─────────┘     (local only)      └──────┘
 *     ▲  │        alive record at a higher incarnation (refutation)                    │
 *     │  └───────────── signed goodbye (left: true) ──────▶ left                       │
 *     └───────────── alive record at a higher incarnation (restart, refutation) ───────┘
 *                    dead or left for forgetAfterMs ─▶ forgotten;  revoke (any state) ─▶ removed
 * ```
 *
 * Who probes whom: every member sits on `rings` consistent-hash rings (position = SHA-256 of the ring
 * number and the id). A node's subjects are its successors among the live members (alive or suspect) on
 * each ring, its observers its predecessors; it probes one subject per probe interval (round robin) and
 * keeps connections to these ≤ 2·rings neighbours only, so a member is watched by up to `rings`
 * independent observers and each node's idle traffic is one probe out and about one probe in per
 * interval, whatever the size of the mesh. Successors and predecessors are kept incrementally: a member
 * becoming live is compared with the current ones (O(rings)); only the loss of a current neighbour
 * triggers a rescan of the table (O(n), and only on the ~2·rings nodes that had it as neighbour).
 *
 * Dead is a local decision: suspicions travel (signed by their accuser), deaths never do, so a hostile
 * insider can at most cause a suspicion, which its victim refutes by signing its record again at the
 * next incarnation.
 *
 * Beyond the SWIM paper, each added because a simulated scenario failed without it:
 * - at the indirect stage the target is pinged directly once more (memberlist's TCP fallback): at 10 %
 *   loss it cut suspicions of live members about fivefold;
 * - a stranger's ping is acked: during joins a new node is probed by members it does not know yet, and
 *   its silence made them suspect it (19 false deaths while 1,000 nodes joined);
 * - a node that receives an update older than what it holds sends the sender the newer record, and a
 *   suspicion still short of its confirmations is announced again at half its timeout: dissemination
 *   over a degree-6 neighbour graph misses a node now and then, and a node that missed a refutation
 *   otherwise timed its stale suspicion out into a false death;
 * - a refutation is also sent straight to whoever passed the suspicion on, and a member held dead that
 *   talks to us is told of its suspicion, so two healed sides find each other without ring links;
 * - members that a third party reports in a push-pull and that are new to us (we are joining) are
 *   queued after all fresher news and sent ceil(log10(n + 1)) times, not retransmitMult times as much:
 *   they are old news to the mesh, and at full weight a join of 1,000 nodes took longer to settle.
 *
 * Healing after a partition: once a side holds the other dead, no ring links cross. Each sync round a
 * node therefore also exchanges state with one random dead member, with probability dead / live (serf's
 * reconnect); a dead member that answers learns the suspicion about itself and refutes it, and both
 * sides' rings take each other in again. A partition longer than forgetAfterMs is only healed by the
 * driver's own contacts (bootstrap peers, mDNS), as dead members are forgotten by then.
 */
import { hash } from '../wire/hash.js'
import type {
  SwimConfig,
  SwimCounters,
  SwimDigestEntry,
  SwimEffect,
  SwimInput,
  SwimMember,
  SwimMessage,
  SwimState,
  SwimUpdate,
} from './swim-types.js'

export type * from './swim-types.js'

/**
 * Default timings and limits, tuned with test/sim/swim.test.ts and bench/swim-sim.mjs. Suspicion floor
 * max(1.2 s, 0.7 · log10(n) s) (1.2 s up to n = 50, 2.1 s at 1,000), three floors without confirmation:
 * at n = 50 a crashed node is dead on every other node within 4.4 s at p95 (the paper's 1 · log10(n) s
 * and 1.5 s gave 5.0 s). retransmitMult 4 rather than 3: gossip goes to ring neighbours only, and with 3
 * a node missed a refutation often enough that 20 % loss gave 49 false deaths in 9 minutes at n = 50
 * (none with 4). Idle cost does not depend on either: no news, no gossip.
 */
export const SWIM_DEFAULTS: SwimConfig = Object.freeze({
  probeIntervalMs: 1000,
  probeTimeoutMs: 400,
  indirectChecks: 3,
  rings: 3,
  suspicionMult: 0.7,
  suspicionMinMs: 1200,
  suspicionMaxScale: 3,
  gossipIntervalMs: 200,
  gossipFanout: 3,
  retransmitMult: 4,
  piggybackMax: 8,
  syncIntervalMs: 30_000,
  forgetAfterMs: 300_000,
  membersMax: 4096,
  queueMax: 1024,
  healthMax: 8,
})

/** Most rings a configuration may ask for. */
export const SWIM_RINGS_MAX = 8
/** Longest member id accepted from a message, in UTF-16 code units (peer ids are ~52). */
export const SWIM_ID_LENGTH_MAX = 256
/** Most ping-req relays (pings done for another prober) pending at once; more are refused and counted. */
export const SWIM_RELAYS_MAX = 64
/** Most revoked ids remembered (oldest forgotten first; the driver's revocation list stays the owner). */
export const SWIM_REVOKED_MAX = 4096
/** Most peers whose last push-pull time is remembered (to skip a contact synced recently). */
export const SWIM_SYNC_PEERS_MAX = 1024
/** Most push-pull exchanges this node waits on, and most follow-up exchanges scheduled, at once. */
export const SWIM_PENDING_SYNCS_MAX = 16
/** Most nodes sent a refutation directly (the messengers of the suspicion). */
const REFUTE_TO_MAX = 8
/** Default bound on one message's size, in bytes (the codec's limit). */
export const SWIM_MESSAGE_BYTES_MAX = 256 * 1024
/** Bytes assumed for a message's own fields (type, seq, target) when filling it with updates. */
export const SWIM_MESSAGE_OVERHEAD_BYTES = 64
/** Bytes assumed for one digest entry beyond its id (incarnation, state, framing). */
export const SWIM_DIGEST_ENTRY_OVERHEAD_BYTES = 16

/** The membership core of one node. Not thread-safe; owned by one driver. */
export interface Swim<R, P> {
  /**
   * Handles one input at `nowMs`. A `message` whose `from` is this node's own id carries suspicions this
   * node signed after a `sign-suspect` effect: the driver steps them back as
   * `{ type: 'message', from: self, message: { type: 'gossip', updates: [suspect update] } }`.
   * After every step the driver drains the effects and re-reads {@link Swim.nextDeadlineMs}.
   */
  step(input: SwimInput<R, P>, nowMs: number): void
  /** Runs every timer due at nowMs (probe rounds, probe/indirect timeouts, suspicion expiry, gossip rounds, sync rounds, forgetting). */
  tick(nowMs: number): void
  /**
   * The earliest nowMs at which tick has work (Infinity when none): the driver sets ONE timer for it
   * instead of polling. Accounts for work step() created; may be ≤ the last nowMs (tick at once). A
   * tick at any other time does nothing.
   */
  nextDeadlineMs(): number
  /** Returns and clears the pending effects, in the order they arose. Drain after every step and tick. */
  drain(): SwimEffect<R, P>[]
  /** All members including self, sorted by id (copies). */
  members(): SwimMember<R>[]
  /** A copy of one member, self included. */
  get(id: string): SwimMember<R> | undefined
  /** True when an alive record for `id` at `incarnation` would be news (higher incarnation than held, or unknown id that is not revoked and the table has room): the driver verifies signatures only then. */
  wants(id: string, incarnation: number): boolean
  /** The ids this node keeps connections to: its probe subjects and its observers across the rings. */
  neighbours(): string[]
  /** Lifeguard's local health score: 0 when healthy; probe timings are stretched (score + 1)-fold. */
  localHealth(): number
  /** Members held, self included. */
  readonly size: number
  readonly counters: Readonly<SwimCounters>
}

/** Options of {@link createSwim}. */
export interface SwimInit<R, P> {
  readonly self: string
  /** The driver starts it at its wall clock ms so restarts move forward. */
  readonly incarnation: number
  /** Our own signed record at that incarnation. */
  readonly record: R
  readonly config?: Partial<SwimConfig>
  /** Uniform in [0, 1), injected (seeded in the simulator). */
  readonly random: () => number
  readonly nowMs: number
  /** Encoded size of one update in bytes, so messages stay under messageBytesMax (default: count only). */
  readonly updateBytes?: (update: SwimUpdate<R, P>) => number
  /** Default {@link SWIM_MESSAGE_BYTES_MAX}. */
  readonly messageBytesMax?: number
  /**
   * Verified alive records known at start (a table saved by an earlier run, or a simulation that starts
   * formed): added as if learnt, with `joined` effects, but not disseminated, since they are old news.
   */
  readonly members?: readonly SwimUpdate<R, P>[]
}

/** Raised by {@link createSwim} when the configuration is invalid; `problems` lists every issue. */
export class SwimConfigError extends Error {
  override name = 'SwimConfigError'
  readonly code = 'invalid-config'
  readonly problems: readonly string[]
  constructor(problems: readonly string[]) {
    super(`invalid membership config: ${problems.join('; ')}`)
    this.problems = problems
  }
}

/** A broken invariant of the core or of its driver contract (a bug, never an operating error). */
export class SwimInvariantError extends Error {
  override name = 'SwimInvariantError'
  readonly code = 'invariant'
}

function assert(condition: unknown, message: string): asserts condition {
  if (!condition) throw new SwimInvariantError(message)
}

/** Every problem of `config` (empty when valid): types, ranges and the relations between timings. */
export function validateSwimConfig(config: SwimConfig): string[] {
  const problems: string[] = []
  const integer = (key: keyof SwimConfig, min: number, max = Number.MAX_SAFE_INTEGER): void => {
    const value = config[key]
    if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < min || value > max)
      problems.push(`${key} must be an integer in [${min}, ${max}] (got ${value})`)
  }
  integer('probeIntervalMs', 1)
  integer('probeTimeoutMs', 1)
  integer('indirectChecks', 0, 16)
  integer('rings', 1, SWIM_RINGS_MAX)
  integer('suspicionMinMs', 1)
  integer('gossipIntervalMs', 1)
  integer('gossipFanout', 1, 64)
  integer('retransmitMult', 1, 64)
  integer('piggybackMax', 1, 1024)
  integer('syncIntervalMs', 1)
  integer('forgetAfterMs', 1)
  integer('membersMax', 2, 1 << 20)
  integer('queueMax', 1, 1 << 20)
  if (config.healthMax !== undefined) integer('healthMax', 1, 64)
  if (!Number.isFinite(config.suspicionMult) || config.suspicionMult < 0)
    problems.push(`suspicionMult must be a finite number ≥ 0 (got ${config.suspicionMult})`)
  if (!Number.isFinite(config.suspicionMaxScale) || config.suspicionMaxScale < 1)
    problems.push(`suspicionMaxScale must be a finite number ≥ 1 (got ${config.suspicionMaxScale})`)
  if (problems.length > 0) return problems
  // An ack must be able to arrive before the helpers are asked, and theirs before the round ends.
  if (config.probeTimeoutMs >= config.probeIntervalMs)
    problems.push('probeTimeoutMs must be below probeIntervalMs (helpers need the rest of the round)')
  // Confirmations come from the other observers' probes, which take a probe interval.
  if (config.suspicionMinMs < config.probeIntervalMs)
    problems.push('suspicionMinMs must be at least probeIntervalMs (a confirming probe takes one)')
  // Forgetting a suspect's tombstone before every node could have timed it out would let it back.
  const longest = suspicionFloorMs(config, config.membersMax) * config.suspicionMaxScale
  if (config.forgetAfterMs <= longest)
    problems.push(`forgetAfterMs must exceed the longest suspicion (${Math.ceil(longest)} ms)`)
  return problems
}

/** Lifeguard's suspicion floor for a mesh of `n` live members: the timeout once every confirmation came. */
export function suspicionFloorMs(config: SwimConfig, n: number): number {
  const scaled = config.suspicionMult * Math.log10(Math.max(n, 10)) * config.probeIntervalMs
  return Math.max(config.suspicionMinMs, Math.floor(scaled))
}

/**
 * Lifeguard's suspicion timeout: `maxScale` floors with no confirmation, shrinking with the log of the
 * independent confirmations to the floor once `expected` of them came (memberlist suspicion.go).
 */
/** Every counter at zero (a core's start; a driver's answer before its core exists). */
export function zeroSwimCounters(): Required<SwimCounters> {
  return {
    probes: 0,
    probesFailed: 0,
    indirectProbes: 0,
    suspicionsRaised: 0,
    refutations: 0,
    declaredDead: 0,
    updatesApplied: 0,
    updatesStale: 0,
    updatesDropped: 0,
    tableFull: 0,
    unknownSenders: 0,
    syncs: 0,
    pingRequestsDropped: 0,
    updatesFromSync: 0,
    lateTicks: 0,
    graced: 0,
  }
}

/**
 * How late a tick must come after its deadline to count as a stall of this node's event loop: a
 * quarter of the probe timeout, at least 50 ms (a busy but healthy event loop is a few ms late).
 */
export function lateThresholdMs(config: SwimConfig): number {
  return Math.max(50, Math.floor(config.probeTimeoutMs / 4))
}

export function suspicionTimeoutMs(
  floorMs: number,
  maxScale: number,
  expected: number,
  confirmations: number,
): number {
  if (expected < 1) return floorMs
  const fraction = Math.log(confirmations + 1) / Math.log(expected + 1)
  return Math.max(floorMs, Math.floor(floorMs * (maxScale - (maxScale - 1) * fraction)))
}

/** How many times each update is sent: retransmitMult · ceil(log10(n + 1)). */
export function retransmitLimit(config: SwimConfig, n: number): number {
  return config.retransmitMult * Math.ceil(Math.log10(n + 1))
}

/** The push-pull period for `n` members: memberlist's pushPullScale (×1 up to 32, +1 per doubling). */
export function syncPeriodMs(config: SwimConfig, n: number): number {
  if (n <= 32) return config.syncIntervalMs
  return config.syncIntervalMs * (Math.ceil(Math.log2(n) - Math.log2(32)) + 1)
}

/** Positions run over [0, 2^48): 6 bytes of the hash, exact in a double. */
const RING_SPAN = 2 ** 48
const RING_DOMAIN = new TextEncoder().encode('mesh/swim/ring/v1')
/**
 * Ring positions are a pure function of the id, so one process-wide memo serves every core (the
 * simulator runs thousands of cores over the same ids). Bounded; forgetting an entry only costs a hash.
 */
const POSITIONS_CACHE_MAX = 32_768
const positionsCache = new Map<string, readonly number[]>()

/** Position of `id` on ring `ring`: SHA-256 over the domain, the ring number (one byte) and the id. */
export function ringPosition(ring: number, id: string): number {
  assert(Number.isInteger(ring) && ring >= 0 && ring < 256, 'ring number out of range')
  const idBytes = new TextEncoder().encode(id)
  const input = new Uint8Array(RING_DOMAIN.length + 2 + idBytes.length)
  input.set(RING_DOMAIN, 0)
  input[RING_DOMAIN.length] = 0
  input[RING_DOMAIN.length + 1] = ring
  input.set(idBytes, RING_DOMAIN.length + 2)
  const h = hash(input)
  let position = 0
  for (let i = 0; i < 6; i++) position = position * 256 + (h[i] ?? 0)
  return position
}

function ringPositions(id: string, rings: number): readonly number[] {
  const held = positionsCache.get(id)
  if (held !== undefined && held.length >= rings) return held
  const positions = Object.freeze(Array.from({ length: rings }, (_, ring) => ringPosition(ring, id)))
  if (positionsCache.size >= POSITIONS_CACHE_MAX) {
    const oldest = positionsCache.keys().next().value
    if (oldest !== undefined) positionsCache.delete(oldest)
  }
  positionsCache.set(id, positions)
  return positions
}

function isId(value: unknown): value is string {
  return typeof value === 'string' && value.length > 0 && value.length <= SWIM_ID_LENGTH_MAX
}

function isCount(value: unknown): value is number {
  return Number.isSafeInteger(value) && (value as number) >= 0
}

const STATES: ReadonlySet<unknown> = new Set<SwimState>(['alive', 'suspect', 'dead', 'left'])

function isLive(state: SwimState): boolean {
  return state === 'alive' || state === 'suspect'
}

type SuspectUpdate<R, P> = Extract<SwimUpdate<R, P>, { kind: 'suspect' }>
type AliveUpdate<R, P> = Extract<SwimUpdate<R, P>, { kind: 'alive' }>

/** What a node holds while it suspects a member, and keeps once it declared it dead. */
interface Fault<R, P> {
  readonly startMs: number
  readonly floorMs: number
  readonly expected: number
  deadlineMs: number
  /**
   * When a suspicion still short of its confirmations is announced again (Infinity once done): a node
   * that missed the refutation then hears it back from a neighbour (the correction in applyUpdates).
   */
  recheckAtMs: number
  /** Distinct accusers heard, the first included; at most expected + 1 (more would not shorten it). */
  readonly accusers: string[]
  /** The deadline was pushed back once for a dissemination backlog (see backlogMs). */
  extended: boolean
  /** The deadline was pushed back once because its tick came late (see tick). */
  graced: boolean
  /** A signed accusation to pass on (sync replies, notices); null until one arrived. */
  proof: SuspectUpdate<R, P> | null
  /** When the member, held dead, was last told of its suspicion. */
  noticeAtMs: number
  /** A notice waits for this node's own signature (no proof was held when the member talked). */
  noticeWanted: boolean
}

/** One member as the core holds it: kept small, the simulator holds millions. */
interface Member<R, P> {
  readonly id: string
  incarnation: number
  state: SwimState
  record: R
  lastAliveMs: number
  sinceMs: number
  readonly positions: readonly number[]
  fault: Fault<R, P> | null
  /** Its accusations count from then on (see applySuspect). */
  trustedFromMs: number
}

interface Probe {
  readonly seq: number
  readonly target: string
  readonly indirectAtMs: number
  endAtMs: number
  /** Null until the helpers were asked. */
  helpers: ReadonlySet<string> | null
  /** The outcome was put off once because its tick came late (see tick). */
  graced: boolean
}

interface Relay {
  readonly requester: string
  readonly requesterSeq: number
  readonly target: string
  readonly expiresAtMs: number
}

interface DownEntry<R, P> {
  readonly member: Member<R, P>
  readonly sinceMs: number
}

interface Queued<R, P> {
  readonly update: SwimUpdate<R, P>
  readonly bytes: number
  transmits: number
  /** Transmissions it starts with beyond the limit's count: it waits behind fresher news, then is sent as often. */
  readonly head: number
  prev: Queued<R, P> | null
  next: Queued<R, P> | null
}

interface Bucket<R, P> {
  head: Queued<R, P> | null
  tail: Queued<R, P> | null
}

/**
 * The dissemination queue (memberlist's TransmitLimitedQueue): one update per id, taken fewest
 * transmissions first and, among equals, newest first; when full, the most transmitted goes. Buckets per
 * transmission count, each an intrusive list, so every operation is O(1) per update touched.
 */
class BroadcastQueue<R, P> {
  private readonly byId = new Map<string, Queued<R, P>>()
  private readonly buckets: Bucket<R, P>[] = []
  constructor(private readonly max: number) {}

  get size(): number {
    return this.byId.size
  }

  /**
   * Adds `update` as if already sent `transmits` times, replacing any older one about the same id;
   * `head` of those are a head start that does not count against the limit (lower priority, as many
   * sends). Returns how many were dropped (0 or 1).
   */
  push(update: SwimUpdate<R, P>, bytes: number, transmits = 0, head = 0): number {
    let dropped = 0
    const old = this.byId.get(update.id)
    if (old !== undefined) this.unlink(old)
    else if (this.byId.size >= this.max) {
      const victim = this.mostTransmitted()
      if (victim !== null) {
        this.unlink(victim)
        this.byId.delete(victim.update.id)
        dropped = 1
      }
    }
    const entry: Queued<R, P> = { update, bytes, transmits, head, prev: null, next: null }
    this.byId.set(update.id, entry)
    this.linkHead(entry)
    return dropped
  }

  /** The queued update about `id`, if any. */
  peek(id: string): SwimUpdate<R, P> | undefined {
    return this.byId.get(id)?.update
  }

  remove(id: string): void {
    const entry = this.byId.get(id)
    if (entry === undefined) return
    this.unlink(entry)
    this.byId.delete(id)
  }

  /**
   * Takes up to `countMax` updates whose bytes fit `bytesMax`, counting one transmission each; updates
   * reaching `limit` leave. `onTooLarge` is told of each update larger than `bytesMax` (dropped).
   */
  take(countMax: number, bytesMax: number, limit: number, onTooLarge: () => void): SwimUpdate<R, P>[] {
    if (this.byId.size === 0 || countMax <= 0) return []
    const chosen: Queued<R, P>[] = []
    let bytes = 0
    for (let b = 0; b < this.buckets.length && chosen.length < countMax; b++) {
      let entry = this.buckets[b]?.head ?? null
      while (entry !== null && chosen.length < countMax) {
        const next = entry.next
        if (entry.transmits >= limit + entry.head || entry.bytes > bytesMax) {
          if (entry.bytes > bytesMax) onTooLarge()
          this.unlink(entry)
          this.byId.delete(entry.update.id)
        } else if (bytes + entry.bytes <= bytesMax) {
          chosen.push(entry)
          bytes += entry.bytes
        }
        entry = next
      }
    }
    // Move after the walk, so an update is not taken twice; reversed, so equals keep their order.
    for (let i = chosen.length - 1; i >= 0; i--) {
      const entry = chosen[i]!
      this.unlink(entry)
      entry.transmits++
      if (entry.transmits >= limit + entry.head) this.byId.delete(entry.update.id)
      else this.linkHead(entry)
    }
    return chosen.map(entry => entry.update)
  }

  private mostTransmitted(): Queued<R, P> | null {
    for (let b = this.buckets.length - 1; b >= 0; b--) {
      const tail = this.buckets[b]?.tail ?? null
      if (tail !== null) return tail
    }
    return null
  }

  private bucket(transmits: number): Bucket<R, P> {
    while (this.buckets.length <= transmits) this.buckets.push({ head: null, tail: null })
    return this.buckets[transmits]!
  }

  private linkHead(entry: Queued<R, P>): void {
    const bucket = this.bucket(entry.transmits)
    entry.prev = null
    entry.next = bucket.head
    if (bucket.head !== null) bucket.head.prev = entry
    bucket.head = entry
    if (bucket.tail === null) bucket.tail = entry
  }

  private unlink(entry: Queued<R, P>): void {
    const bucket = this.bucket(entry.transmits)
    if (entry.prev !== null) entry.prev.next = entry.next
    else bucket.head = entry.next
    if (entry.next !== null) entry.next.prev = entry.prev
    else bucket.tail = entry.prev
    entry.prev = null
    entry.next = null
  }
}

/** What a peer's digest says about one id. */
interface Held {
  readonly incarnation: number
  readonly state: SwimState
}

/** Builds a membership core (see the file comment). Throws SwimConfigError on an invalid config. */
export function createSwim<R, P>(init: SwimInit<R, P>): Swim<R, P> {
  return new SwimCore(init)
}

class SwimCore<R, P> implements Swim<R, P> {
  readonly counters: Required<SwimCounters> = zeroSwimCounters()
  private readonly config: SwimConfig
  private readonly selfId: string
  private readonly random: () => number
  private readonly updateBytes: (update: SwimUpdate<R, P>) => number
  private readonly messageBytesMax: number
  private readonly effectsMax: number
  private effects: SwimEffect<R, P>[] = []
  private lastNowMs: number

  private readonly table = new Map<string, Member<R, P>>()
  private readonly me: Member<R, P>
  /** Members other than self that are alive or suspect / dead / left. */
  private liveOthers = 0
  private deadCount = 0
  private leftCount = 0
  private readonly revoked = new Set<string>()

  /** Dead and left members in the order they went down (for forgetting and eviction); stale entries skipped. */
  private down: DownEntry<R, P>[] = []
  private downHead = 0
  /** First entry of `down` whose queued updates were not yet purged. */
  private purgeHead = 0

  private readonly suspicions = new Set<Member<R, P>>()
  /** Earliest suspicion deadline, or null when it must be recomputed. */
  private suspicionMinMs: number | null = Infinity

  // Rings: per ring the closest live successor and predecessor of self; dirty rings are rescanned lazily.
  private readonly successors: (Member<R, P> | null)[]
  private readonly predecessors: (Member<R, P> | null)[]
  private readonly ringDirty: boolean[]
  private subjectsCache: Member<R, P>[] | null = null
  private neighboursCache: Member<R, P>[] | null = null

  private seq = 0
  private nextProbeAtMs: number
  private probeCursor = 0
  private readonly probes = new Map<number, Probe>()
  private readonly relays = new Map<number, Relay>()
  /** Subject id → when it was last probed out of turn. */
  private readonly outOfTurn = new Map<string, number>()
  /** The incarnation a pending `sign-self` refutation asked for, or null. */
  private refuting: number | null = null
  /** Who told us of the suspicion being refuted (sent the new record directly). */
  private refuteTo: string[] = []

  private readonly queue: BroadcastQueue<R, P>
  private lastGossipAtMs = -Infinity

  private nextSyncAtMs: number
  private readonly lastSync = new Map<string, number>()
  private readonly pendingSyncs = new Map<string, number>()
  private readonly followUps = new Map<string, number>()
  private lastStrangerSyncMs = -Infinity
  /** Lifeguard's local health score, 0 (healthy) to healthMax − 1; see adjustHealth. */
  private healthScore = 0
  private lastLateMs = -Infinity
  private digestCursor = 0

  constructor(init: SwimInit<R, P>) {
    const config: SwimConfig = { ...SWIM_DEFAULTS, ...init.config }
    const problems = validateSwimConfig(config)
    if (!isId(init.self)) problems.push('self must be a non-empty id of at most 256 characters')
    if (!isCount(init.incarnation)) problems.push('incarnation must be a safe integer ≥ 0')
    const messageBytesMax = init.messageBytesMax ?? SWIM_MESSAGE_BYTES_MAX
    if (!Number.isSafeInteger(messageBytesMax) || messageBytesMax < 1024)
      problems.push('messageBytesMax must be an integer ≥ 1024')
    if (problems.length > 0) throw new SwimConfigError(problems)
    assert(Number.isFinite(init.nowMs), 'nowMs must be finite')
    this.config = config
    this.selfId = init.self
    this.random = init.random
    this.updateBytes = init.updateBytes ?? (() => 0)
    this.messageBytesMax = messageBytesMax
    this.effectsMax = Math.max(65_536, 4 * config.membersMax)
    this.lastNowMs = init.nowMs
    this.queue = new BroadcastQueue(config.queueMax)
    this.successors = new Array(config.rings).fill(null)
    this.predecessors = new Array(config.rings).fill(null)
    this.ringDirty = new Array(config.rings).fill(false)
    this.me = {
      id: init.self,
      incarnation: init.incarnation,
      state: 'alive',
      record: init.record,
      lastAliveMs: init.nowMs,
      sinceMs: init.nowMs,
      positions: ringPositions(init.self, config.rings),
      fault: null,
      trustedFromMs: init.nowMs,
    }
    this.table.set(init.self, this.me)
    // Random phases, so nodes started together do not probe and sync in lockstep.
    this.nextProbeAtMs = init.nowMs + Math.floor(this.random() * config.probeIntervalMs)
    for (const update of init.members ?? []) {
      if (this.isUpdate(update) && update.kind === 'alive' && this.applyAlive(update, init.nowMs))
        this.table.get(update.id)!.trustedFromMs = init.nowMs // known before: trusted at once
    }
    this.nextSyncAtMs = init.nowMs + Math.floor(this.random() * syncPeriodMs(config, this.liveCount()))
    this.enqueue(this.ownUpdate(), 0)
  }

  get size(): number {
    return this.table.size
  }

  // ───────────────────────────── queries ─────────────────────────────

  drain(): SwimEffect<R, P>[] {
    const out = this.effects
    this.effects = []
    return out
  }

  members(): SwimMember<R>[] {
    return [...this.table.values()].map(view).sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0))
  }

  get(id: string): SwimMember<R> | undefined {
    const member = this.table.get(id)
    return member === undefined ? undefined : view(member)
  }

  wants(id: string, incarnation: number): boolean {
    if (!isId(id) || !isCount(incarnation) || id === this.selfId || this.revoked.has(id)) return false
    const member = this.table.get(id)
    if (member !== undefined) return incarnation > member.incarnation
    return this.table.size < this.config.membersMax || this.deadCount + this.leftCount > 0
  }

  neighbours(): string[] {
    return this.neighbourList().map(member => member.id)
  }

  localHealth(): number {
    return this.healthScore
  }

  nextDeadlineMs(): number {
    let at = Infinity
    if (this.me.state !== 'left') {
      if (this.subjectList().length > 0) at = Math.min(at, this.nextProbeAtMs)
      if (this.syncPossible()) at = Math.min(at, this.nextSyncAtMs)
    }
    for (const probe of this.probes.values())
      at = Math.min(at, probe.helpers === null ? probe.indirectAtMs : probe.endAtMs)
    at = Math.min(at, this.earliestSuspicionMs(), this.nextForgetMs(), this.nextPurgeMs())
    if (this.gossipPossible()) at = Math.min(at, this.lastGossipAtMs + this.config.gossipIntervalMs)
    for (const followUpAtMs of this.followUps.values()) at = Math.min(at, followUpAtMs)
    return at === Infinity ? at : Math.max(at, this.lastNowMs)
  }

  // ───────────────────────────── inputs ─────────────────────────────

  step(input: SwimInput<R, P>, nowMs: number): void {
    this.advance(nowMs)
    switch (input.type) {
      case 'message':
        this.onMessage(input.from, input.message, nowMs)
        return
      case 'local':
        this.onLocal(input.incarnation, input.record, nowMs)
        return
      case 'contact':
        this.onContact(input.id, nowMs)
        return
      case 'revoke':
        this.onRevoke(input.id)
        return
      case 'leave':
        this.onLeave(input.incarnation, input.record)
        return
    }
  }

  tick(nowMs: number): void {
    const dueMs = this.nextDeadlineMs()
    this.advance(nowMs)
    const config = this.config
    const lateMs = lateThresholdMs(config)
    if (nowMs - dueMs > lateMs) {
      // The event loop was stalled (CPU starvation, a long GC): what arrived meanwhile waits in socket
      // buffers behind this tick. This node is the unhealthy one: it probes slower, and outcomes due
      // while it stalled get once the time it lost (at most a probe interval) to read those messages.
      this.counters.lateTicks++
      if (nowMs - this.lastLateMs >= config.probeIntervalMs) {
        this.lastLateMs = nowMs
        this.adjustHealth(+1)
      }
    }
    for (const probe of this.probes.values()) {
      if (probe.endAtMs <= nowMs && !probe.graced && nowMs - probe.endAtMs > lateMs) {
        probe.graced = true
        probe.endAtMs = nowMs + Math.min(nowMs - probe.endAtMs, config.probeIntervalMs)
        this.counters.graced++
      } else if (probe.endAtMs <= nowMs) {
        this.probes.delete(probe.seq)
        this.probeFailed(probe.target, nowMs)
      } else if (probe.helpers === null && probe.indirectAtMs <= nowMs) this.askHelpers(probe)
    }
    if (this.earliestSuspicionMs() <= nowMs) {
      for (const member of this.suspicions) {
        const fault = member.fault!
        if (fault.recheckAtMs <= nowMs && fault.deadlineMs > nowMs) {
          fault.recheckAtMs = Infinity
          if (fault.proof !== null && fault.accusers.length - 1 < fault.expected) this.enqueue(fault.proof, 0)
        }
        if (fault.deadlineMs > nowMs) continue
        if (!fault.graced && nowMs - fault.deadlineMs > lateMs) {
          fault.graced = true
          fault.deadlineMs = nowMs + Math.min(nowMs - fault.deadlineMs, fault.floorMs)
          this.counters.graced++
          continue
        }
        const backlogMs = this.backlogMs()
        if (!fault.extended && backlogMs > 0) {
          fault.extended = true
          fault.deadlineMs = nowMs + Math.min(backlogMs, fault.floorMs * this.config.suspicionMaxScale)
          continue
        }
        this.counters.declaredDead++
        this.setState(member, 'dead', nowMs)
      }
      this.suspicionMinMs = null
    }
    this.purgeDead(nowMs)
    this.forget(nowMs)
    if (this.me.state !== 'left' && this.subjectList().length > 0 && this.nextProbeAtMs <= nowMs) {
      const intervalMs = this.scaled(config.probeIntervalMs)
      this.nextProbeAtMs += intervalMs
      if (this.nextProbeAtMs <= nowMs) this.nextProbeAtMs = nowMs + intervalMs
      this.probeRound(nowMs)
    }
    if (this.gossipPossible() && this.lastGossipAtMs + config.gossipIntervalMs <= nowMs)
      this.gossipRound(nowMs)
    if (this.me.state !== 'left' && this.syncPossible() && this.nextSyncAtMs <= nowMs) this.syncRound(nowMs)
    for (const [peer, atMs] of this.followUps) {
      if (atMs > nowMs) continue
      this.followUps.delete(peer)
      if (this.me.state !== 'left') this.startSync(peer, nowMs)
    }
  }

  private advance(nowMs: number): void {
    assert(Number.isFinite(nowMs), 'nowMs must be finite')
    assert(nowMs >= this.lastNowMs, `time went backwards (${nowMs} < ${this.lastNowMs})`)
    this.lastNowMs = nowMs
  }

  private onMessage(from: string, message: SwimMessage<R, P>, nowMs: number): void {
    // The codec refuses malformed messages first; these guards only keep a bug from becoming a crash.
    if (!isId(from) || typeof message !== 'object' || message === null) return
    if (from === this.selfId) {
      this.onOwnClaims(message)
      return
    }
    if (this.revoked.has(from)) {
      this.counters.unknownSenders++
      return
    }
    if (!this.table.has(from)) {
      this.counters.unknownSenders++
      // A stranger's updates are not taken (push-pull is how a node joins). Its ping is acked though:
      // it holds us as a subject, and during joins silence made it suspect live members (measured).
      if (message.type === 'sync') this.onSync(from, message, nowMs)
      else {
        if (message.type === 'ping' && isCount(message.seq) && this.me.state !== 'left')
          this.send(from, { type: 'ack', seq: message.seq, updates: [] })
        this.syncWithStranger(from, nowMs)
      }
      return
    }
    const piggybackMax = this.config.piggybackMax
    switch (message.type) {
      case 'ping':
        if (!isCount(message.seq)) return
        this.applyUpdates(from, message.updates, piggybackMax, false, nowMs)
        this.heardFrom(from, nowMs)
        this.send(from, { type: 'ack', seq: message.seq, updates: this.piggyback() })
        return
      case 'ack':
        if (!isCount(message.seq)) return
        this.applyUpdates(from, message.updates, piggybackMax, false, nowMs)
        this.heardFrom(from, nowMs)
        this.onAck(from, message.seq, nowMs)
        return
      case 'ping-req':
        if (!isCount(message.seq) || !isId(message.target)) return
        this.applyUpdates(from, message.updates, piggybackMax, false, nowMs)
        this.heardFrom(from, nowMs)
        this.onPingRequest(from, message.seq, message.target, nowMs)
        return
      case 'gossip':
        this.applyUpdates(from, message.updates, piggybackMax, false, nowMs)
        this.heardFrom(from, nowMs)
        return
      case 'sync':
        this.onSync(from, message, nowMs)
        this.heardFrom(from, nowMs)
        return
    }
  }

  /** Suspicions this node signed after `sign-suspect`, stepped back by the driver. */
  private onOwnClaims(message: SwimMessage<R, P>): void {
    if (message.type !== 'gossip' || !Array.isArray(message.updates)) return
    for (const update of message.updates.slice(0, this.config.piggybackMax)) {
      if (!this.isUpdate(update) || update.kind !== 'suspect' || update.from !== this.selfId) continue
      const member = this.table.get(update.id)
      const fault = member?.fault
      if (member === undefined || fault == null || member.incarnation !== update.incarnation) {
        this.counters.updatesStale++ // refuted or removed while the driver signed
        continue
      }
      fault.proof ??= update
      if (member.state === 'suspect') this.enqueue(update, 0)
      else if (member.state === 'dead' && fault.noticeWanted) {
        fault.noticeWanted = false
        this.send(member.id, { type: 'gossip', updates: [update] })
      }
    }
  }

  private onLocal(incarnation: number, record: R, nowMs: number): void {
    if (this.me.state === 'left' || !isCount(incarnation) || incarnation <= this.me.incarnation) {
      this.counters.updatesStale++ // e.g. a refutation signed after a facts change already moved past it
      return
    }
    this.me.incarnation = incarnation
    this.me.record = record
    this.me.lastAliveMs = nowMs
    this.enqueue(this.ownUpdate(), 0)
    if (this.refuting !== null && this.refuting <= incarnation) {
      this.refuting = null
      const own = this.ownUpdate()
      for (const id of this.refuteTo)
        if (this.table.has(id)) this.send(id, { type: 'gossip', updates: [own] })
      this.refuteTo = []
    }
  }

  private onContact(id: string, nowMs: number): void {
    if (!isId(id) || id === this.selfId || this.revoked.has(id) || this.me.state === 'left') return
    // Alone (a joining node whose first exchange was lost), a contact is tried again after two probe
    // intervals rather than a whole sync interval: it is the only way in.
    // So is a member held dead that connects again (a healed partition): only an exchange tells it of
    // its suspicion, which it then refutes; waiting for a sync interval kept it dead here for 22 s
    // while it held us alive (test/hosts).
    const held = this.table.get(id)
    const gapMs =
      this.liveOthers === 0 || held?.state === 'dead'
        ? 2 * this.config.probeIntervalMs
        : this.config.syncIntervalMs
    const last = this.lastSync.get(id)
    if (last !== undefined && nowMs - last < gapMs) return
    this.startSync(id, nowMs)
  }

  private onRevoke(id: string): void {
    // Revoking this node itself is the driver's to act on (it stops); the core keeps its own entry.
    if (!isId(id) || id === this.selfId) return
    if (!this.revoked.has(id)) {
      if (this.revoked.size >= SWIM_REVOKED_MAX) {
        const oldest = this.revoked.values().next().value
        if (oldest !== undefined) this.revoked.delete(oldest)
      }
      this.revoked.add(id)
    }
    const member = this.table.get(id)
    if (member !== undefined) this.remove(member, 'revoked')
    this.queue.remove(id)
    this.followUps.delete(id)
    this.pendingSyncs.delete(id)
  }

  private onLeave(incarnation: number, record: R): void {
    if (this.me.state === 'left') return
    assert(
      isCount(incarnation) && incarnation > this.me.incarnation,
      'a goodbye must carry a higher incarnation than the current record (others take only news)',
    )
    this.me.incarnation = incarnation
    this.me.record = record
    this.setSelfLeft()
    const goodbye = this.ownUpdate()
    this.probes.clear()
    this.followUps.clear()
    this.pendingSyncs.clear()
    this.enqueue(goodbye, 0)
    for (const neighbour of this.neighbourList())
      this.send(neighbour.id, { type: 'gossip', updates: [goodbye] })
  }

  // ───────────────────────────── probing ─────────────────────────────

  private probeRound(nowMs: number): void {
    const subjects = this.subjectList()
    for (let tries = 0; tries < subjects.length; tries++) {
      const index = this.probeCursor % subjects.length
      this.probeCursor = index + 1
      const target = subjects[index]!
      if (!this.probing(target.id)) {
        this.startProbe(target, nowMs)
        return
      }
    }
  }

  private probing(id: string): boolean {
    for (const probe of this.probes.values()) if (probe.target === id) return true
    return false
  }

  private startProbe(target: Member<R, P>, nowMs: number): void {
    const seq = this.nextSeq()
    this.probes.set(seq, {
      seq,
      target: target.id,
      indirectAtMs: nowMs + this.scaled(this.config.probeTimeoutMs),
      endAtMs: nowMs + this.scaled(this.config.probeIntervalMs),
      helpers: null,
      graced: false,
    })
    this.counters.probes++
    this.send(target.id, { type: 'ping', seq, updates: this.piggyback() })
  }

  /** Another observer suspects one of our subjects: probe it now so a confirmation (or not) comes fast. */
  private probeOutOfTurn(member: Member<R, P>, nowMs: number): void {
    if (this.me.state === 'left' || !this.subjectList().includes(member) || this.probing(member.id)) return
    const last = this.outOfTurn.get(member.id)
    if (last !== undefined && nowMs - last < this.config.probeIntervalMs) return
    if (this.outOfTurn.size >= 2 * this.config.rings) {
      const subjects = new Set(this.subjectList().map(subject => subject.id))
      for (const id of this.outOfTurn.keys()) if (!subjects.has(id)) this.outOfTurn.delete(id)
    }
    this.outOfTurn.set(member.id, nowMs)
    this.startProbe(member, nowMs)
  }

  private askHelpers(probe: Probe): void {
    const candidates = this.neighbourList().filter(member => member.id !== probe.target)
    const helpers = this.sample(candidates, this.config.indirectChecks)
    probe.helpers = new Set(helpers.map(helper => helper.id))
    // A second direct ping too (memberlist's TCP fallback), an independent chance on a lossy path:
    // measured at 10 % loss it cut suspicions of live members about fivefold.
    this.send(probe.target, { type: 'ping', seq: probe.seq, updates: this.piggyback() })
    if (helpers.length === 0) return
    this.counters.indirectProbes++
    for (const helper of helpers)
      this.send(helper.id, {
        type: 'ping-req',
        seq: probe.seq,
        target: probe.target,
        updates: this.piggyback(),
      })
  }

  private onAck(from: string, seq: number, nowMs: number): void {
    const probe = this.probes.get(seq)
    if (probe !== undefined) {
      // A late ack is ignored whatever the timer lag, so every driver sees the same outcome.
      if (nowMs >= probe.endAtMs) return
      if (from !== probe.target && !probe.helpers?.has(from)) return
      this.probes.delete(seq)
      this.adjustHealth(-1)
      const target = this.table.get(probe.target)
      if (target !== undefined && target.state !== 'left') target.lastAliveMs = nowMs
      return
    }
    const relay = this.relays.get(seq)
    if (relay === undefined || from !== relay.target) return
    this.relays.delete(seq)
    if (nowMs <= relay.expiresAtMs)
      this.send(relay.requester, { type: 'ack', seq: relay.requesterSeq, updates: this.piggyback() })
  }

  private onPingRequest(from: string, seq: number, target: string, nowMs: number): void {
    // Only members we hold may be pinged on another's behalf (no probing of arbitrary ids).
    if (target === from || target === this.selfId) return
    const member = this.table.get(target)
    if (member === undefined || member.state === 'left') return
    if (this.relays.size >= SWIM_RELAYS_MAX) {
      for (const [key, relay] of this.relays) if (relay.expiresAtMs < nowMs) this.relays.delete(key)
      if (this.relays.size >= SWIM_RELAYS_MAX) {
        this.counters.pingRequestsDropped++
        return
      }
    }
    const ourSeq = this.nextSeq()
    this.relays.set(ourSeq, {
      requester: from,
      requesterSeq: seq,
      target,
      expiresAtMs: nowMs + this.config.probeIntervalMs,
    })
    this.send(target, { type: 'ping', seq: ourSeq, updates: this.piggyback() })
  }

  private probeFailed(targetId: string, nowMs: number): void {
    this.counters.probesFailed++
    this.adjustHealth(+1)
    const member = this.table.get(targetId)
    if (member === undefined || this.me.state === 'left') return
    if (member.state === 'alive') this.suspect(member, this.selfId, null, nowMs)
    else if (member.state !== 'suspect' || !this.confirm(member, this.selfId)) return
    this.counters.suspicionsRaised++
    this.emit({ type: 'sign-suspect', id: member.id, incarnation: member.incarnation })
  }

  private nextSeq(): number {
    this.seq = this.seq >= Number.MAX_SAFE_INTEGER ? 0 : this.seq + 1
    return this.seq
  }

  // ───────────────────────────── suspicion ─────────────────────────────

  private suspect(
    member: Member<R, P>,
    accuser: string,
    proof: SuspectUpdate<R, P> | null,
    nowMs: number,
    spread = true,
  ): void {
    const floorMs = suspicionFloorMs(this.config, this.liveCount())
    // The confirmations that can come are the member's other observers: fewer than rings − 1 when two
    // rings give it the same predecessor (~6 % of members at n = 50, the tail of the detection times).
    const expected = Math.max(0, this.observersOf(member) - 1)
    const timeoutMs = suspicionTimeoutMs(floorMs, this.config.suspicionMaxScale, expected, 0)
    member.fault = {
      startMs: nowMs,
      floorMs,
      expected,
      deadlineMs: nowMs + timeoutMs,
      // A suspicion kept local (learnt by push-pull) is not announced again either.
      recheckAtMs: spread ? nowMs + Math.floor(timeoutMs / 2) : Infinity,
      accusers: [accuser],
      proof,
      noticeAtMs: -Infinity,
      noticeWanted: false,
      extended: false,
      graced: false,
    }
    this.setState(member, 'suspect', nowMs)
  }

  /** Counts an independent accuser; true when it is new and still shortens the timeout. */
  private confirm(member: Member<R, P>, accuser: string): boolean {
    const fault = member.fault!
    if (fault.accusers.includes(accuser) || fault.accusers.length > fault.expected) return false
    fault.accusers.push(accuser)
    const timeoutMs = suspicionTimeoutMs(
      fault.floorMs,
      this.config.suspicionMaxScale,
      fault.expected,
      fault.accusers.length - 1,
    )
    fault.deadlineMs = Math.min(fault.deadlineMs, fault.startMs + timeoutMs)
    if (this.suspicionMinMs !== null) this.suspicionMinMs = Math.min(this.suspicionMinMs, fault.deadlineMs)
    return true
  }

  /**
   * Local health (after Lifeguard): more news waiting here than one gossip round carries means a mass
   * event (a partition healing: every member's record changes at once), in which a refutation may wait
   * in queues like ours; a suspicion running out then gets the time this backlog takes to go out once,
   * at most one more longest timeout. At n = 1,000 it removed the last false death of a healing
   * partition. 0 when the queue is short, as it is around single failures.
   */
  private backlogMs(): number {
    const perRound = this.config.piggybackMax * this.config.gossipFanout
    if (this.queue.size <= perRound) return 0
    return Math.ceil(this.queue.size / perRound) * this.config.gossipIntervalMs
  }

  /** Moves the local health score by `delta` within [0, healthMax − 1] (Lifeguard's awareness). */
  private adjustHealth(delta: number): void {
    const most = (this.config.healthMax ?? SWIM_DEFAULTS.healthMax ?? 8) - 1
    this.healthScore = Math.min(most, Math.max(0, this.healthScore + delta))
  }

  /** A probe timing stretched by the local health score: an unhealthy node waits longer and probes less. */
  private scaled(ms: number): number {
    return ms * (this.healthScore + 1)
  }

  private earliestSuspicionMs(): number {
    if (this.suspicionMinMs === null) {
      let at = Infinity
      for (const member of this.suspicions)
        at = Math.min(at, member.fault!.deadlineMs, member.fault!.recheckAtMs)
      this.suspicionMinMs = at
    }
    return this.suspicionMinMs
  }

  /**
   * A refutation: sign our record at the next incarnation (never further: a claim cannot push us). The
   * nodes that told us get the new record directly once signed: after a partition they hold us dead and
   * are not our neighbours, so dissemination alone would not reach them.
   */
  private refute(incarnation: number, messenger: string): void {
    const own = this.me.incarnation
    if (this.me.state === 'left' || incarnation < own) {
      this.counters.updatesStale++
      return
    }
    if (
      messenger !== this.selfId &&
      this.refuteTo.length < REFUTE_TO_MAX &&
      !this.refuteTo.includes(messenger)
    )
      this.refuteTo.push(messenger)
    if (this.refuting === own + 1 || own >= Number.MAX_SAFE_INTEGER) return
    this.refuting = own + 1
    this.counters.refutations++
    // Lifeguard: being suspected is a hint that this node is the slow one.
    this.adjustHealth(+1)
    this.emit({ type: 'sign-self', incarnation: own + 1 })
  }

  /** A member we hold dead talks to us: tell it of its suspicion (once per probe interval) so it refutes. */
  private heardFrom(id: string, nowMs: number): void {
    const member = this.table.get(id)
    if (member === undefined || member.state === 'left') return
    member.lastAliveMs = nowMs
    const fault = member.fault
    if (member.state !== 'dead' || fault === null) return
    if (nowMs - fault.noticeAtMs < this.config.probeIntervalMs) return
    fault.noticeAtMs = nowMs
    if (fault.proof !== null) this.send(id, { type: 'gossip', updates: [fault.proof] })
    else {
      fault.noticeWanted = true
      this.emit({ type: 'sign-suspect', id, incarnation: member.incarnation })
    }
  }

  // ───────────────────────────── records ─────────────────────────────

  private isUpdate(update: unknown): update is SwimUpdate<R, P> {
    if (typeof update !== 'object' || update === null) return false
    const u = update as Partial<Record<string, unknown>>
    if (!isId(u.id) || !isCount(u.incarnation)) return false
    if (u.kind === 'alive') return typeof u.left === 'boolean'
    return u.kind === 'suspect' && isId(u.from)
  }

  /**
   * Applies a list of updates (cut to `max`) from `from`, queueing the news; returns how many were news.
   * An update older than what we hold means `from` missed a change (its dissemination passed it by):
   * outside push-pull, which has its own digests, `from` is sent our newer records at once, so a node
   * that missed a refutation does not time its stale suspicion out into a false death.
   */
  private applyUpdates(from: string, list: unknown, max: number, viaSync: boolean, nowMs: number): number {
    if (!Array.isArray(list)) return 0
    let applied = 0
    let corrections: SwimUpdate<R, P>[] | null = null
    const count = Math.min(list.length, max)
    for (let i = 0; i < count; i++) {
      const update: unknown = list[i]
      if (!this.isUpdate(update)) {
        this.counters.updatesStale++
        continue
      }
      const held = this.table.get(update.id)
      const before = held?.state
      if (!viaSync && held !== undefined && update.incarnation < held.incarnation && held.id !== from) {
        corrections ??= []
        if (corrections.length < this.config.piggybackMax) {
          corrections.push(aliveUpdate(held))
          const proof = held.fault?.proof
          if (proof != null) corrections.push(proof) // so it runs its own timer, as we did
        }
      }
      const news =
        update.kind === 'alive'
          ? this.applyAlive(update, nowMs)
          : this.applySuspect(update, from, viaSync, nowMs)
      if (!news) continue
      applied++
      this.counters.updatesApplied++
      if (!viaSync) {
        // A member joining or back from the dead is news no timer waits for: it goes after suspicions
        // and refutations (as often), which after a healed partition otherwise queued behind a
        // thousand revivals past the suspicion timeouts.
        const late = update.kind === 'alive' && !update.left && (before === undefined || !isLive(before))
        const wave = Math.ceil(Math.log10(this.liveCount() + 1))
        this.enqueue(update, late ? wave : 0, late ? wave : 0)
      } else {
        this.counters.updatesFromSync++
        // A suspicion learnt by push-pull is old news where it came from, and spread here it would make
        // our whole side suspect a member the other side holds dead (after a partition: every member
        // at once). It runs our own timer, and the member itself is told, so it refutes if it lives.
        if (update.kind === 'suspect') this.send(update.id, { type: 'gossip', updates: [update] })
        // A member new to us that a third party reported is old news to the mesh too (we are joining,
        // or behind): sent only after all fresher news, and a few times.
        else this.enqueue(update, held === undefined && update.id !== from ? this.lateTransmits() : 0)
      }
    }
    if (corrections !== null && this.table.has(from))
      this.send(from, { type: 'gossip', updates: corrections })
    return applied
  }

  private applyAlive(update: AliveUpdate<R, P>, nowMs: number): boolean {
    if (update.id === this.selfId) {
      this.counters.updatesStale++ // only this node speaks for itself
      return false
    }
    if (this.revoked.has(update.id)) {
      this.counters.unknownSenders++
      return false
    }
    const member = this.table.get(update.id)
    if (member === undefined) {
      if (!this.makeRoom()) {
        this.counters.tableFull++
        return false
      }
      this.add(update, nowMs)
      return true
    }
    if (update.incarnation <= member.incarnation) {
      this.counters.updatesStale++
      return false
    }
    member.incarnation = update.incarnation
    member.record = update.record
    if (!update.left) member.lastAliveMs = nowMs
    this.setState(member, update.left ? 'left' : 'alive', nowMs)
    return true
  }

  private applySuspect(
    update: SuspectUpdate<R, P>,
    messenger: string,
    viaSync: boolean,
    nowMs: number,
  ): boolean {
    if (update.id === this.selfId) {
      this.refute(update.incarnation, messenger)
      return false
    }
    if (this.revoked.has(update.id)) {
      this.counters.unknownSenders++
      return false
    }
    const member = this.table.get(update.id)
    // Only a claim about the incarnation we hold counts: older ones are refuted, newer ones unproven.
    if (member === undefined || update.incarnation !== member.incarnation) {
      this.counters.updatesStale++
      return false
    }
    // An accuser we do not hold alive (suspect, dead, gone), or only just learnt or took back from the
    // dead, is most likely the other side of a partition speaking: its accusations were made and queued
    // while it was cut off. Taken, they made a healed side suspect its own live members (false deaths
    // at n = 1,000). The other observers of a member that really failed accuse it anyway.
    const accuser = this.table.get(update.from)
    if (
      accuser !== undefined &&
      accuser !== this.me &&
      (accuser.state !== 'alive' || nowMs < accuser.trustedFromMs)
    ) {
      this.counters.updatesStale++
      return false
    }
    if (member.state === 'alive') {
      this.suspect(member, update.from, update, nowMs, !viaSync)
      if (update.from !== this.selfId) this.probeOutOfTurn(member, nowMs)
      return true
    }
    if (member.state === 'suspect' && this.confirm(member, update.from)) {
      member.fault!.proof ??= update
      return true
    }
    this.counters.updatesStale++
    return false
  }

  private add(update: AliveUpdate<R, P>, nowMs: number): void {
    const state: SwimState = update.left ? 'left' : 'alive'
    const member: Member<R, P> = {
      id: update.id,
      incarnation: update.incarnation,
      state,
      record: update.record,
      lastAliveMs: nowMs,
      sinceMs: nowMs,
      positions: ringPositions(update.id, this.config.rings),
      fault: null,
      trustedFromMs: nowMs + this.purgeAfterMs(),
    }
    this.table.set(member.id, member)
    if (state === 'alive') {
      this.liveOthers++
      this.ringJoin(member)
    } else {
      this.leftCount++
      this.pushDown(member)
    }
    this.emit({ type: 'joined', id: member.id })
  }

  private remove(member: Member<R, P>, reason: 'revoked' | 'forgotten' | 'evicted'): void {
    this.table.delete(member.id)
    if (isLive(member.state)) {
      this.liveOthers--
      this.ringLeave(member)
    } else if (member.state === 'dead') this.deadCount--
    else this.leftCount--
    if (this.suspicions.delete(member)) this.suspicionMinMs = null
    this.outOfTurn.delete(member.id)
    this.queue.remove(member.id)
    this.emit({ type: 'removed', id: member.id, reason })
  }

  private setState(member: Member<R, P>, to: SwimState, nowMs: number): void {
    const from = member.state
    if (from === to) return
    assert(member !== this.me, 'self changes state only by leaving')
    member.state = to
    member.sinceMs = nowMs
    if (from === 'suspect' && this.suspicions.delete(member)) this.suspicionMinMs = null
    if (to === 'suspect') {
      this.suspicions.add(member)
      if (this.suspicionMinMs !== null)
        this.suspicionMinMs = Math.min(this.suspicionMinMs, member.fault!.recheckAtMs)
    }
    if (to === 'alive' || to === 'left') member.fault = null
    if (from === 'dead') this.deadCount--
    else if (from === 'left') this.leftCount--
    if (to === 'dead') this.deadCount++
    else if (to === 'left') this.leftCount++
    if (isLive(from) && !isLive(to)) {
      this.liveOthers--
      this.ringLeave(member)
    } else if (!isLive(from) && isLive(to)) {
      this.liveOthers++
      this.ringJoin(member)
      member.trustedFromMs = nowMs + this.purgeAfterMs()
    }
    if (!isLive(to)) this.pushDown(member)
    this.emit({ type: 'state', id: member.id, from, to })
  }

  private setSelfLeft(): void {
    const from = this.me.state
    this.me.state = 'left'
    this.me.sinceMs = this.lastNowMs
    this.emit({ type: 'state', id: this.selfId, from, to: 'left' })
  }

  /** Room for one more member: free, or by evicting the member down the longest. */
  private makeRoom(): boolean {
    if (this.table.size < this.config.membersMax) return true
    const oldest = this.firstDown()
    if (oldest === null) return false
    this.downHead++
    this.remove(oldest.member, 'evicted')
    return true
  }

  private pushDown(member: Member<R, P>): void {
    this.down.push({ member, sinceMs: member.sinceMs })
    // Stale entries (members that came back or went down again) are compacted away once they dominate.
    if (this.down.length > 2 * this.config.membersMax + 1024) {
      this.down = this.down.slice(this.downHead).filter(entry => this.isCurrentDown(entry))
      this.downHead = 0
      this.purgeHead = 0 // purging again is harmless
    }
  }

  private isCurrentDown(entry: DownEntry<R, P>): boolean {
    const member = entry.member
    return this.table.get(member.id) === member && !isLive(member.state) && member.sinceMs === entry.sinceMs
  }

  /** The current entry down the longest (stale entries before it are dropped). */
  private firstDown(): DownEntry<R, P> | null {
    while (this.downHead < this.down.length) {
      const entry = this.down[this.downHead]!
      if (this.isCurrentDown(entry)) return entry
      this.downHead++
    }
    if (this.down.length > 0) {
      this.down = []
      this.downHead = 0
      this.purgeHead = 0
    }
    return null
  }

  /**
   * Queued updates about a member dead here for longer than the longest suspicion are dropped: every
   * node that heard its suspicion has decided by then, and a partition's backlog, sent on once it
   * healed, made the other side suspect its own live members (a flood of suspicions at n = 600).
   */
  private purgeDead(nowMs: number): void {
    const afterMs = this.purgeAfterMs()
    while (this.purgeHead < this.down.length) {
      const entry = this.down[this.purgeHead]!
      if (entry.sinceMs + afterMs > nowMs) return
      this.purgeHead++
      if (this.isCurrentDown(entry) && entry.member.state === 'dead') this.queue.remove(entry.member.id)
    }
  }

  private nextPurgeMs(): number {
    const entry = this.down[this.purgeHead]
    return entry === undefined ? Infinity : entry.sinceMs + this.purgeAfterMs()
  }

  private purgeAfterMs(): number {
    return Math.ceil(suspicionFloorMs(this.config, this.liveCount()) * this.config.suspicionMaxScale)
  }

  private nextForgetMs(): number {
    const entry = this.firstDown()
    return entry === null ? Infinity : entry.sinceMs + this.config.forgetAfterMs
  }

  private forget(nowMs: number): void {
    for (;;) {
      const entry = this.firstDown()
      if (entry === null || entry.sinceMs + this.config.forgetAfterMs > nowMs) return
      this.downHead++
      this.remove(entry.member, 'forgotten')
    }
  }

  private liveCount(): number {
    return this.liveOthers + (this.me.state === 'left' ? 0 : 1)
  }

  private ownUpdate(): AliveUpdate<R, P> {
    return aliveUpdate(this.me)
  }

  // ───────────────────────────── rings ─────────────────────────────

  /** True when `a` follows self more closely than `b` on `ring` (ties, i.e. hash collisions, by id). */
  private closerSuccessor(ring: number, a: Member<R, P>, b: Member<R, P>): boolean {
    const origin = this.me.positions[ring]!
    const da = (a.positions[ring]! - origin + RING_SPAN) % RING_SPAN
    const db = (b.positions[ring]! - origin + RING_SPAN) % RING_SPAN
    return da < db || (da === db && a.id < b.id)
  }

  private closerPredecessor(ring: number, a: Member<R, P>, b: Member<R, P>): boolean {
    const origin = this.me.positions[ring]!
    const da = (origin - a.positions[ring]! + RING_SPAN) % RING_SPAN
    const db = (origin - b.positions[ring]! + RING_SPAN) % RING_SPAN
    return da < db || (da === db && a.id < b.id)
  }

  /** How many distinct live members (self included) precede `target` on the rings: its observers. */
  private observersOf(target: Member<R, P>): number {
    const rings = this.config.rings
    const best: (Member<R, P> | null)[] = new Array(rings).fill(null)
    const distance: number[] = new Array(rings).fill(Infinity)
    for (const member of this.table.values()) {
      if (member === target || !(member === this.me ? this.me.state !== 'left' : isLive(member.state)))
        continue
      for (let ring = 0; ring < rings; ring++) {
        const d = (target.positions[ring]! - member.positions[ring]! + RING_SPAN) % RING_SPAN
        const held = distance[ring]!
        if (d < held || (d === held && member.id < best[ring]!.id)) {
          distance[ring] = d
          best[ring] = member
        }
      }
    }
    return unique(best).length
  }

  private ringJoin(member: Member<R, P>): void {
    for (let ring = 0; ring < this.config.rings; ring++) {
      if (this.ringDirty[ring]) continue // the rescan will see it
      const successor = this.successors[ring] ?? null
      if (successor === null || this.closerSuccessor(ring, member, successor)) {
        this.successors[ring] = member
        this.invalidateNeighbours()
      }
      const predecessor = this.predecessors[ring] ?? null
      if (predecessor === null || this.closerPredecessor(ring, member, predecessor)) {
        this.predecessors[ring] = member
        this.invalidateNeighbours()
      }
    }
  }

  private ringLeave(member: Member<R, P>): void {
    for (let ring = 0; ring < this.config.rings; ring++) {
      if (this.successors[ring] === member || this.predecessors[ring] === member) {
        this.ringDirty[ring] = true
        this.invalidateNeighbours()
      }
    }
  }

  private invalidateNeighbours(): void {
    this.subjectsCache = null
    this.neighboursCache = null
  }

  /** Recomputes the dirty rings' successor and predecessor with one pass over the table. */
  private rescanRings(): void {
    const dirty: number[] = []
    for (let ring = 0; ring < this.config.rings; ring++) {
      if (!this.ringDirty[ring]) continue
      dirty.push(ring)
      this.ringDirty[ring] = false
      this.successors[ring] = null
      this.predecessors[ring] = null
    }
    if (dirty.length === 0) return
    for (const member of this.table.values()) {
      if (member === this.me || !isLive(member.state)) continue
      for (const ring of dirty) {
        const successor = this.successors[ring] ?? null
        if (successor === null || this.closerSuccessor(ring, member, successor))
          this.successors[ring] = member
        const predecessor = this.predecessors[ring] ?? null
        if (predecessor === null || this.closerPredecessor(ring, member, predecessor))
          this.predecessors[ring] = member
      }
    }
  }

  private subjectList(): Member<R, P>[] {
    if (this.subjectsCache === null) {
      this.rescanRings()
      this.subjectsCache = unique(this.successors)
    }
    return this.subjectsCache
  }

  private neighbourList(): Member<R, P>[] {
    if (this.neighboursCache === null) {
      this.neighboursCache = unique([...this.subjectList(), ...this.predecessors])
    }
    return this.neighboursCache
  }

  // ───────────────────────────── dissemination ─────────────────────────────

  /** Queues `update` for dissemination, as if already sent `transmits` times (`head` of them free). */
  private enqueue(update: SwimUpdate<R, P>, transmits: number, head = 0): void {
    this.counters.updatesDropped += this.queue.push(update, this.updateBytes(update), transmits, head)
  }

  /** Where old news enters the queue: with ceil(log10(n + 1)) transmissions left. */
  private lateTransmits(): number {
    const n = this.liveCount()
    return Math.max(0, retransmitLimit(this.config, n) - Math.ceil(Math.log10(n + 1)))
  }

  /** Updates to piggyback on one message, counted as transmitted. */
  private piggyback(): SwimUpdate<R, P>[] {
    return this.queue.take(
      this.config.piggybackMax,
      this.messageBytesMax - SWIM_MESSAGE_OVERHEAD_BYTES,
      retransmitLimit(this.config, this.liveCount()),
      () => this.counters.updatesDropped++,
    )
  }

  private gossipPossible(): boolean {
    return this.queue.size > 0 && this.neighbourList().length > 0
  }

  private gossipRound(nowMs: number): void {
    this.lastGossipAtMs = nowMs
    for (const target of this.sample(this.neighbourList(), this.config.gossipFanout)) {
      const updates = this.piggyback()
      if (updates.length === 0) return
      this.send(target.id, { type: 'gossip', updates })
    }
  }

  // ───────────────────────────── push-pull ─────────────────────────────

  private syncPossible(): boolean {
    return this.neighbourList().length > 0 || this.deadCount > 0
  }

  private syncRound(nowMs: number): void {
    this.nextSyncAtMs = nowMs + syncPeriodMs(this.config, this.liveCount())
    const neighbours = this.neighbourList()
    if (neighbours.length > 0) this.startSync(this.sample(neighbours, 1)[0]!.id, nowMs)
    // Serf's reconnect: only dead members can bridge a healed partition (see the file comment).
    if (this.deadCount > 0 && this.random() < this.deadCount / Math.max(1, this.liveOthers)) {
      const dead = this.randomDead()
      if (dead !== null) this.startSync(dead.id, nowMs)
    }
  }

  private randomDead(): Member<R, P> | null {
    const span = this.down.length - this.downHead
    for (let tries = 0; tries < 8 && span > 0; tries++) {
      const entry = this.down[this.downHead + Math.floor(this.random() * span)]!
      if (this.isCurrentDown(entry) && entry.member.state === 'dead') return entry.member
    }
    return null
  }

  private syncWithStranger(id: string, nowMs: number): void {
    // Bounded per stranger and overall: a digest is large, a stranger's ping small.
    if (this.me.state === 'left' || nowMs - this.lastStrangerSyncMs < this.config.gossipIntervalMs) return
    const last = this.lastSync.get(id)
    if (last !== undefined && nowMs - last < this.config.probeIntervalMs) return
    this.lastStrangerSyncMs = nowMs
    this.startSync(id, nowMs)
  }

  private startSync(peer: string, nowMs: number): void {
    this.noteSync(peer, nowMs)
    this.pendingSyncs.delete(peer)
    if (this.pendingSyncs.size >= SWIM_PENDING_SYNCS_MAX) {
      const oldest = this.pendingSyncs.keys().next().value
      if (oldest !== undefined) this.pendingSyncs.delete(oldest)
    }
    this.pendingSyncs.set(peer, nowMs)
    this.counters.syncs++
    const own = this.ownUpdate()
    const budget = this.messageBytesMax - SWIM_MESSAGE_OVERHEAD_BYTES - this.updateBytes(own)
    this.send(peer, { type: 'sync', reply: false, digest: this.digest(budget), updates: [own] })
  }

  private noteSync(peer: string, nowMs: number): void {
    this.lastSync.delete(peer)
    if (this.lastSync.size >= SWIM_SYNC_PEERS_MAX) {
      const oldest = this.lastSync.keys().next().value
      if (oldest !== undefined) this.lastSync.delete(oldest)
    }
    this.lastSync.set(peer, nowMs)
  }

  private onSync(from: string, message: Extract<SwimMessage<R, P>, { type: 'sync' }>, nowMs: number): void {
    const applied = this.applyUpdates(from, message.updates, this.config.membersMax, true, nowMs)
    const theirs = this.readDigest(message.digest)
    const budget = this.messageBytesMax - SWIM_MESSAGE_OVERHEAD_BYTES
    if (message.reply !== true) {
      this.noteSync(from, nowMs)
      const digest = this.digest(Math.floor(budget / 2))
      const updates = this.newerThan(theirs, budget - digestBytes(digest))
      this.send(from, { type: 'sync', reply: true, digest, updates })
      return
    }
    // Only the answer to our own request is answered (with what the responder lacks); the closing leg
    // (no digest: a reply's digest always holds its sender) and unsolicited replies are just applied,
    // so exchanges cannot ping-pong.
    if (theirs.size === 0 || !this.pendingSyncs.delete(from)) return
    const updates = this.newerThan(theirs, budget)
    if (updates.length > 0) this.send(from, { type: 'sync', reply: true, digest: [], updates })
    // Truncated reply: the responder still holds news for us. Ask again soon, while it makes progress.
    if (applied > 0 && this.behind(theirs) && !this.followUps.has(from)) {
      if (this.followUps.size < SWIM_PENDING_SYNCS_MAX)
        this.followUps.set(from, nowMs + this.config.gossipIntervalMs)
    }
  }

  private readDigest(list: unknown): Map<string, Held> {
    const held = new Map<string, Held>()
    if (!Array.isArray(list)) return held
    const count = Math.min(list.length, this.config.membersMax)
    for (let i = 0; i < count; i++) {
      const entry = list[i] as Partial<SwimDigestEntry> | null
      if (typeof entry !== 'object' || entry === null) continue
      if (!isId(entry.id) || !isCount(entry.incarnation) || !STATES.has(entry.state)) continue
      held.set(entry.id, { incarnation: entry.incarnation, state: entry.state as SwimState })
    }
    return held
  }

  /** What this node holds, self first, within `bytesMax` (a rotating window when it does not all fit). */
  private digest(bytesMax: number): SwimDigestEntry[] {
    const entry = (member: Member<R, P>): SwimDigestEntry => ({
      id: member.id,
      incarnation: member.incarnation,
      state: member.state,
    })
    const out: SwimDigestEntry[] = [entry(this.me)]
    let bytes = digestEntryBytes(this.me.id)
    let total = bytes
    for (const member of this.table.values()) total += digestEntryBytes(member.id)
    if (total <= bytesMax) {
      for (const member of this.table.values()) if (member !== this.me) out.push(entry(member))
      return out
    }
    const others = [...this.table.values()].filter(member => member !== this.me)
    const start = this.digestCursor % others.length
    let taken = 0
    for (; taken < others.length; taken++) {
      const member = others[(start + taken) % others.length]!
      const size = digestEntryBytes(member.id)
      if (bytes + size > bytesMax) break
      bytes += size
      out.push(entry(member))
    }
    this.digestCursor = start + taken
    return out
  }

  /** Records (and suspicions) this node holds that are newer than, or missing from, a peer's digest. */
  private newerThan(theirs: ReadonlyMap<string, Held>, bytesMax: number): SwimUpdate<R, P>[] {
    const out: SwimUpdate<R, P>[] = []
    let bytes = 0
    // Deaths the peer has not seen travel as suspicions (it runs its own timer), at most piggybackMax
    // per exchange: after a partition heals every node holds half the mesh dead, and passing all of
    // them on made both sides suspect each other's live members at once. At n = 1,000 the refutations
    // then queued behind each other past the timeouts (20,000 false deaths); the members themselves are
    // told directly (notices), and what is left waits for the next exchange.
    let deathsLeft = this.config.piggybackMax
    const offer = (update: SwimUpdate<R, P>): boolean => {
      if (out.length >= this.config.membersMax) return false
      const size = this.updateBytes(update)
      if (bytes + size > bytesMax) return true // skip it; a smaller one may still fit
      bytes += size
      out.push(update)
      return true
    }
    for (const member of this.table.values()) {
      const held = theirs.get(member.id)
      const proof = member.fault?.proof ?? null
      let more = true
      if (held === undefined) {
        // Dead and left members are not news to a node that never knew them.
        if (isLive(member.state)) {
          more = offer(aliveUpdate(member))
          if (more && member.state === 'suspect' && proof !== null) more = offer(proof)
        }
      } else if (held.incarnation < member.incarnation) {
        more = offer(aliveUpdate(member))
        if (more && proof !== null && (member.state === 'suspect' || member.state === 'dead'))
          more = offer(proof)
      } else if (held.incarnation === member.incarnation && held.state === 'alive' && proof !== null) {
        // A member we suspect or hold dead that they hold alive: they run their own timer (or it refutes).
        if (member.state === 'suspect') more = offer(proof)
        else if (member.state === 'dead' && deathsLeft > 0) {
          deathsLeft--
          more = offer(proof)
        }
      }
      if (!more) break
    }
    return out
  }

  /** True when a peer's digest shows a live member newer than what this node holds and would take. */
  private behind(theirs: ReadonlyMap<string, Held>): boolean {
    for (const [id, held] of theirs) if (isLive(held.state) && this.wants(id, held.incarnation)) return true
    return false
  }

  // ───────────────────────────── helpers ─────────────────────────────

  private send(to: string, message: SwimMessage<R, P>): void {
    this.emit({ type: 'send', to, message })
  }

  private emit(effect: SwimEffect<R, P>): void {
    assert(this.effects.length < this.effectsMax, 'effects were not drained (driver contract)')
    this.effects.push(effect)
  }

  /** Up to `count` distinct elements of `items`, uniformly (partial Fisher–Yates on a copy). */
  private sample<T>(items: readonly T[], count: number): T[] {
    const copy = items.slice()
    const n = Math.min(count, copy.length)
    for (let i = 0; i < n; i++) {
      const j = i + Math.floor(this.random() * (copy.length - i))
      const chosen = copy[j]!
      copy[j] = copy[i]!
      copy[i] = chosen
    }
    copy.length = n
    return copy
  }
}

function aliveUpdate<R, P>(member: Member<R, P>): AliveUpdate<R, P> {
  return {
    kind: 'alive',
    id: member.id,
    incarnation: member.incarnation,
    left: member.state === 'left',
    record: member.record,
  }
}

function view<R, P>(member: Member<R, P>): SwimMember<R> {
  return {
    id: member.id,
    incarnation: member.incarnation,
    state: member.state,
    record: member.record,
    lastAliveMs: member.lastAliveMs,
    sinceMs: member.sinceMs,
  }
}

function unique<T>(items: readonly (T | null)[]): T[] {
  const out: T[] = []
  for (const item of items) if (item !== null && !out.includes(item)) out.push(item)
  return out
}

function digestEntryBytes(id: string): number {
  return id.length + SWIM_DIGEST_ENTRY_OVERHEAD_BYTES
}

function digestBytes(digest: readonly SwimDigestEntry[]): number {
  let bytes = 0
  for (const entry of digest) bytes += digestEntryBytes(entry.id)
  return bytes
}
