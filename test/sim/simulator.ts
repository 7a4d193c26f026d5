/**
 * Deterministic simulator for the zone-authority state machine: one seed drives everything. Virtual
 * true time; per-node clocks (local = true × (1 + rate) + offset, floored to ms) with drift inside the
 * budget; a queued network with cuts, isolation, loss, delay, duplication and reordering; crash and
 * restart with memory lost. After EVERY event it checks the safety invariants:
 * - at no true instant do two nodes of a zone both consider themselves authority (each node's
 *   isAuthority evaluated at its own local clock for the current true time); between events the set of
 *   authorities can only shrink (leases only end with time), so checking after each event suffices;
 * - epochs never go backwards, and a new holder always has a higher epoch than the previous one.
 *
 * With `versioned`, rosters are numbered as the CA's signed zone rosters are: every change is a new
 * version, nodes learn versions at different times (or not at all while cut off or crashed), keep the
 * version they had across a crash, and a node that sees a peer behind (a `roster-mismatch` effect)
 * sends it its version over the network, as the driver republishes its signed roster.
 *
 * Timers: by default every node is ticked every `tickMs` of true time; with `timers: 'deadline'` a node
 * is ticked only at its core's `nextDeadlineMs()` (the first true ms its clock reaches it), re-read after
 * every step and tick, as the agent's driver arms its one timer. `wakeups` counts each node's ticks.
 */
import { authorityProfiles } from '../../src/authority/config.js'
import {
  type Authority,
  type AuthorityConfig,
  type AuthorityEffect,
  type AuthorityMessage,
  authorityMessageBytesMax,
  createAuthority,
  describeMessage,
  parseAuthorityMessage,
  type RosterMember,
  zoneVoters,
} from '../../src/authority/index.js'
import { nextZoneRoster, type ZonePrior, type ZoneRosterMember } from '../../src/ca/zone-roster.js'
import { decodeCbor, encodeCbor } from '../../src/wire/cbor.js'
import { type SimRandom, simRandom } from './random.js'

/** A node as a scenario declares it. */
export interface SimNodeSpec {
  readonly id: string
  readonly zone: string
  /** Clock rate error (e.g. 0.05 = runs 5 % fast); default: random within the budget. */
  readonly driftRate?: number
  /** Clock offset in ms; default: random (offsets never matter to leases). */
  readonly offsetMs?: number
}

/** Options of one simulation. */
export interface SimOptions {
  readonly seed: number
  readonly nodes: readonly SimNodeSpec[]
  readonly config?: AuthorityConfig
  /** True-time interval between two ticks of one node. */
  readonly tickMs?: number
  /** Normal one-way message delay range in true ms. */
  readonly delayMs?: { readonly min: number; readonly max: number }
  /** Encode, decode and parse every message as the driver would. */
  readonly wire?: boolean
  /** Record a transcript (one line per delivered message, effect, fault). */
  readonly transcript?: boolean
  /** When set, crashes and restarts are reported to the others as peer hints after this many true ms. */
  readonly failureDetectorMs?: number
  /** Number rosters as signed versions (see the file comment); default false (unversioned, version 0). */
  readonly versioned?: boolean
  /** Nodes save the epochs they grant (`persist-epoch`, at once) and keep them across crashes. */
  readonly durableEpochs?: boolean
  /** `interval` (default): tick every `tickMs`; `deadline`: tick only at each core's next deadline. */
  readonly timers?: 'interval' | 'deadline'
}

/** Thrown when a safety invariant breaks; carries the true time and a tail of the transcript. */
export class SafetyViolation extends Error {
  override name = 'SafetyViolation'
}

interface SimNode {
  readonly id: string
  zone: string
  readonly rate: number
  readonly offsetMs: number
  authority: Authority | null
  roster: readonly RosterMember[]
  /** Roster version the node holds (versioned simulations; 0 otherwise). */
  version: number
  /** Epochs saved by `persist-epoch` (durable-epoch simulations): they survive crashes. */
  readonly saved: Record<string, number>
  /** Deadline timers: the true time of the one live tick event (Infinity: none) and its generation. */
  tickAtMs: number
  tickGeneration: number
}

type SimEvent =
  | { kind: 'deliver'; atMs: number; seq: number; from: string; to: string; message: AuthorityMessage }
  | { kind: 'tick'; atMs: number; seq: number; node: string; generation?: number }
  | { kind: 'call'; atMs: number; seq: number; label: string | null; run: () => void }

/** Largest number of queued events; exceeding it means a message storm (a bug). */
const QUEUE_MAX = 200_000

/** The simulated world. Not reusable across seeds: build one per run. */
export class Simulator {
  readonly config: AuthorityConfig
  readonly random: SimRandom
  nowMs = 0
  readonly lines: string[] = []
  /** Count of delivered messages, for throughput figures. */
  delivered = 0
  private readonly nodes = new Map<string, SimNode>()
  private readonly heap: SimEvent[] = []
  private seq = 0
  private readonly cuts = new Set<string>()
  private lossRate = 0
  private duplicateRate = 0
  private delay: { min: number; max: number }
  private readonly tickMs: number
  private readonly wire: boolean
  private readonly transcript: boolean
  private readonly failureDetectorMs: number | null
  private roster: RosterMember[]
  private readonly versioned: boolean
  private readonly durableEpochs: boolean
  /** versions[v] = the members of roster version v (index 0: the empty roster); priors as the CA makes them. */
  private readonly versions: (readonly RosterMember[])[] = [[]]
  private readonly priors: (readonly ZonePrior[])[] = [[]]
  private signedMembers: ZoneRosterMember[] = []
  private readonly lastEpoch = new Map<string, { epoch: number; holder: string }>()
  /** Answers to {@link lookup}, by query id. */
  readonly lookupResults = new Map<number, { holder: string | null; epoch: number }>()
  private nextQuery = 1
  /** Highest epoch each node acquired, per zone. */
  private readonly acquired = new Map<string, Map<string, number>>()
  private readonly deadlineTimers: boolean
  /** Ticks each node ran (its timer wake-ups). */
  readonly wakeups = new Map<string, number>()
  /** Messages each node sent, by message type. */
  readonly sent = new Map<string, Map<string, number>>()
  /** Messages sent to each node (delivered or not). */
  readonly addressed = new Map<string, number>()

  constructor(options: SimOptions) {
    this.config = options.config ?? authorityProfiles.test
    this.random = simRandom(options.seed)
    this.tickMs = options.tickMs ?? 20
    this.delay = { min: options.delayMs?.min ?? 2, max: options.delayMs?.max ?? 30 }
    this.wire = options.wire ?? false
    this.transcript = options.transcript ?? false
    this.failureDetectorMs = options.failureDetectorMs ?? null
    this.roster = options.nodes.map(n => ({ id: n.id, zone: n.zone }))
    this.versioned = options.versioned ?? false
    this.durableEpochs = options.durableEpochs ?? false
    this.deadlineTimers = options.timers === 'deadline'
    if (this.versioned) this.addVersion(this.roster)
    for (const spec of options.nodes) {
      const node = this.addNode(spec, this.roster, this.versioned ? 1 : 0)
      this.boot(node)
      const atMs = this.random.int(0, this.tickMs - 1)
      if (!this.deadlineTimers) this.push({ kind: 'tick', atMs, seq: 0, node: spec.id })
    }
  }

  /** Largest clock rate error the budget allows: each clock may deviate by leaseDriftBudgetMs per lease TTL. */
  driftRateMax(): number {
    return this.config.leaseDriftBudgetMs / this.config.leaseTtlMs
  }

  /** A node's local clock at true time `trueMs`. */
  localMs(id: string, trueMs = this.nowMs): number {
    const node = this.node(id)
    return Math.floor(trueMs * (1 + node.rate) + node.offsetMs)
  }

  /** Ids of all nodes, sorted. */
  ids(): string[] {
    return [...this.nodes.keys()].sort()
  }

  /** Zones of the current roster, sorted. */
  zones(): string[] {
    return [...new Set(this.roster.map(m => m.zone))].sort()
  }

  /** The node holding `zone` now (by its own clock), or null. */
  authorityOf(zone: string): { id: string; epoch: number } | null {
    for (const node of this.nodes.values()) {
      const held = node.authority?.isAuthority(zone, this.localMs(node.id)) ?? null
      if (held !== null) return { id: node.id, epoch: held.epoch }
    }
    return null
  }

  /** The authority state machine of a running node (null when crashed). */
  authority(id: string): Authority | null {
    return this.node(id).authority
  }

  /** Whether `id` is crashed. */
  isCrashed(id: string): boolean {
    return this.node(id).authority === null
  }

  /** Voters of `zone` under the simulator's current roster. */
  voters(zone: string): readonly string[] {
    return zoneVoters(zone, this.roster).voters
  }

  // ---- faults ---------------------------------------------------------------------------------

  /** Schedules `run` at true time `atMs`; `label` (if any) goes into the transcript. */
  at(atMs: number, label: string | null, run: () => void): void {
    this.push({ kind: 'call', atMs, seq: 0, label, run })
  }

  /** Drops messages from `from` to `to` from now on. */
  cut(from: string, to: string): void {
    this.cuts.add(`${from}>${to}`)
  }

  /** Cuts both directions between every pair across `groups`. */
  partition(groups: readonly (readonly string[])[]): void {
    for (const a of groups)
      for (const b of groups) if (a !== b) for (const x of a) for (const y of b) this.cut(x, y)
  }

  /** Cuts `id` off from everyone: `in`, `out` or `both` directions. */
  isolate(id: string, direction: 'in' | 'out' | 'both' = 'both'): void {
    for (const other of this.nodes.keys()) {
      if (other === id) continue
      if (direction !== 'in') this.cut(id, other)
      if (direction !== 'out') this.cut(other, id)
    }
  }

  /**
   * Tells every other node, after `afterMs` true ms, that `id` is dead (as the agent's driver does when
   * a peer's connections close), whether or not it really is.
   */
  suspect(id: string, afterMs = 0): void {
    this.at(this.nowMs + afterMs, `${id} suspected dead by all`, () => {
      for (const other of this.nodes.values()) {
        if (other.id === id || other.authority === null) continue
        other.authority.step({ type: 'peer', id, state: 'dead' }, this.localMs(other.id))
        this.afterStep(other)
      }
    })
  }

  /**
   * Restores every link and normal loss, duplication and delay. Versioned: links that come back
   * reconnect, and every hello carries the sender's roster, so each running node soon holds the newest
   * version any running node holds.
   */
  heal(): void {
    this.cuts.clear()
    this.lossRate = 0
    this.duplicateRate = 0
    this.delay = { min: 2, max: 30 }
    if (!this.versioned) return
    const running = [...this.nodes.values()].filter(n => n.authority !== null)
    this.spread(Math.max(0, ...running.map(n => n.version)))
  }

  /**
   * Versioned: every running node learns `version` (default the newest) within one message delay, as
   * when the CA republishes its roster to a connected mesh.
   */
  spread(version = this.rosterVersion()): void {
    for (const node of this.nodes.values()) {
      if (node.authority === null || node.version >= version) continue
      this.at(this.nowMs + this.random.int(this.delay.min, this.delay.max), null, () =>
        this.adopt(node, version),
      )
    }
  }

  /** Sets message loss and duplication probabilities. */
  degrade(lossRate: number, duplicateRate: number): void {
    this.lossRate = lossRate
    this.duplicateRate = duplicateRate
  }

  /** Sets the one-way delay range (wide ranges reorder messages). */
  setDelay(min: number, max: number): void {
    this.delay = { min, max }
  }

  /** Crashes `id`: its memory is lost and messages to it vanish. */
  crash(id: string): void {
    const node = this.node(id)
    if (node.authority === null) return
    node.authority = null
    this.hintOthers(id, 'dead')
  }

  /** Restarts a crashed `id` with empty memory. */
  restart(id: string): void {
    const node = this.node(id)
    if (node.authority !== null) return
    this.boot(node)
    this.hintOthers(id, 'alive')
  }

  /**
   * Restarts a crashed `id` with empty memory and its own, possibly stale, view of the roster (a node
   * whose saved roster missed a member, or still lists one that left). Others keep theirs.
   */
  restartWithRoster(id: string, roster: readonly RosterMember[]): void {
    const node = this.node(id)
    if (node.authority !== null) return
    node.roster = roster.map(m => ({ id: m.id, zone: m.zone }))
    this.note(`${id} restarts with a roster of ${node.roster.length} members`)
    this.boot(node)
    this.hintOthers(id, 'alive')
  }

  /**
   * Restarts a crashed `id` with empty memory and roster version `version` (versioned simulations): a
   * node that was down while the roster moved on, or whose saved roster is old.
   */
  restartWithVersion(id: string, version: number): void {
    const node = this.node(id)
    if (node.authority !== null) return
    const members = this.versions[version]
    if (members === undefined || version < 1) throw new Error(`no roster version ${version}`)
    node.version = version
    node.roster = members
    this.note(`${id} restarts with roster r${version}`)
    this.boot(node)
    this.hintOthers(id, 'alive')
  }

  /** Node `id` asks `zone`'s voters who holds it; the answer lands in {@link lookupResults}. */
  lookup(id: string, zone: string): number {
    const node = this.node(id)
    const query = this.nextQuery++
    if (node.authority === null) throw new Error(`${id} is crashed`)
    node.authority.step({ type: 'lookup', zone, query }, this.localMs(id))
    this.afterStep(node)
    return query
  }

  /** The latest roster version (versioned simulations). */
  rosterVersion(): number {
    return this.versions.length - 1
  }

  /** The roster version node `id` holds. */
  versionOf(id: string): number {
    return this.node(id).version
  }

  /**
   * Changes the roster: `members` replaces it; each running node learns it at a random true time
   * within `spreadMs` (new nodes start when they learn it). Versioned: it is a new version, `gone` lists
   * members that left for good (revoked), and only the running nodes in `reach` (default all) learn it
   * directly; the others catch up from their peers.
   */
  changeRoster(
    members: readonly SimNodeSpec[],
    spreadMs: number,
    options: { gone?: readonly string[]; reach?: readonly string[] } = {},
  ): void {
    this.roster = members.map(m => ({ id: m.id, zone: m.zone }))
    const roster = this.roster
    if (this.versioned) this.addVersion(roster)
    // An epoch that only a revoked member knew is lost with it (its votes no longer count, so nothing
    // can recover it); nothing it fenced with that epoch is accepted anyway, as its certificate is
    // refused. From here on new holders must only exceed the epochs remaining members held.
    const gone = new Set(options.gone ?? [])
    for (const [zone, last] of this.lastEpoch) {
      if (!gone.has(last.holder)) continue
      let floor = 0
      for (const [holder, epoch] of this.acquired.get(zone) ?? []) {
        if (!gone.has(holder)) floor = Math.max(floor, epoch)
      }
      this.note(`${last.holder} revoked: ${zone} epochs must now exceed e${floor}`)
      this.lastEpoch.set(zone, { epoch: floor, holder: '(revoked)' })
    }
    const version = this.versioned ? this.rosterVersion() : 0
    for (const spec of members) {
      if (!this.nodes.has(spec.id)) {
        const node = this.addNode(spec, roster, version)
        this.at(this.nowMs + this.random.int(0, spreadMs), `start ${spec.id}`, () => {
          if (node.authority === null) this.boot(node)
          const atMs = this.nowMs + this.random.int(1, this.tickMs)
          if (!this.deadlineTimers) this.push({ kind: 'tick', atMs, seq: 0, node: spec.id })
        })
      }
    }
    const reach = options.reach === undefined ? null : new Set(options.reach)
    for (const node of this.nodes.values()) {
      if (node.authority === null || (reach !== null && !reach.has(node.id))) continue
      this.at(this.nowMs + this.random.int(0, spreadMs), null, () => {
        if (node.authority === null) return
        if (this.versioned) {
          this.adopt(node, version)
          return
        }
        node.roster = roster
        this.note(`${node.id} roster ${roster.length} members`)
        node.authority.step({ type: 'roster', members: roster }, this.localMs(node.id))
        this.afterStep(node)
      })
    }
  }

  /** Creates (does not boot) the node of `spec`: its clock drawn within the drift budget. */
  private addNode(spec: SimNodeSpec, roster: readonly RosterMember[], version: number): SimNode {
    const driftMax = this.driftRateMax()
    const rate = spec.driftRate ?? (this.random.next() * 2 - 1) * driftMax
    if (Math.abs(rate) > driftMax + 1e-12) throw new Error(`drift ${rate} of ${spec.id} exceeds the budget`)
    const offsetMs = spec.offsetMs ?? this.random.int(0, 10_000_000)
    const node: SimNode = {
      id: spec.id,
      zone: spec.zone,
      rate,
      offsetMs,
      authority: null,
      roster,
      version,
      saved: {},
      tickAtMs: Number.POSITIVE_INFINITY,
      tickGeneration: 0,
    }
    this.nodes.set(spec.id, node)
    return node
  }

  /** Numbers `roster` as the next version, with the priors the CA's issuer would sign (zone-roster.ts). */
  private addVersion(roster: readonly RosterMember[]): void {
    const version = this.versions.length - 1
    const next = nextZoneRoster(
      { version, members: this.signedMembers, priors: this.priors[version] ?? [] },
      new Map(roster.map(m => [m.id, m.zone])),
    )
    if (next === undefined) throw new Error('a roster change that changes nothing')
    this.signedMembers = next.members
    this.versions.push(roster)
    this.priors.push(next.priors)
  }

  /** A running node learns roster `version` (ignored unless newer than its own). */
  private adopt(node: SimNode, version: number): void {
    if (node.authority === null || version <= node.version) return
    node.version = version
    node.roster = this.versions[version] ?? []
    this.note(`${node.id} roster r${version} (${node.roster.length} members)`)
    node.authority.step(this.rosterInput(node), this.localMs(node.id))
    this.afterStep(node)
  }

  private rosterInput(node: SimNode): Parameters<Authority['step']>[0] {
    if (!this.versioned) return { type: 'roster', members: node.roster }
    return {
      type: 'roster',
      members: node.roster,
      version: node.version,
      priors: (this.priors[node.version] ?? []).map(p => ({ zone: p.zone, voters: p.voters })),
    }
  }

  // ---- running --------------------------------------------------------------------------------

  /** Runs events until true time `untilMs` (inclusive). */
  runUntil(untilMs: number): void {
    for (;;) {
      const next = this.heap[0]
      if (next === undefined || next.atMs > untilMs) break
      this.pop()
      this.nowMs = next.atMs
      this.handle(next)
      this.checkSafety()
    }
    this.nowMs = Math.max(this.nowMs, untilMs)
  }

  /** Runs until `zone` has an authority or true time `deadlineMs`; returns the true time it appeared. */
  runUntilAuthority(zone: string, deadlineMs: number): number | null {
    if (this.authorityOf(zone) !== null) return this.nowMs
    for (;;) {
      const next = this.heap[0]
      if (next === undefined || next.atMs > deadlineMs) break
      this.pop()
      this.nowMs = next.atMs
      this.handle(next)
      this.checkSafety()
      if (this.authorityOf(zone) !== null) return this.nowMs
    }
    return null
  }

  /** Runs until a node other than `previous` holds `zone` or `deadlineMs`; returns that true time. */
  runUntilAuthorityOtherThan(zone: string, previous: string, deadlineMs: number): number | null {
    for (;;) {
      const held = this.authorityOf(zone)
      if (held !== null && held.id !== previous) return this.nowMs
      const next = this.heap[0]
      if (next === undefined || next.atMs > deadlineMs) return null
      this.pop()
      this.nowMs = next.atMs
      this.handle(next)
      this.checkSafety()
    }
  }

  /** Appends a line to the transcript (when enabled). */
  note(text: string): void {
    if (this.transcript) this.lines.push(`${String(this.nowMs).padStart(6)} ${text}`)
  }

  // ---- internals ------------------------------------------------------------------------------

  private node(id: string): SimNode {
    const node = this.nodes.get(id)
    if (node === undefined) throw new Error(`unknown node ${id}`)
    return node
  }

  private boot(node: SimNode): void {
    const fork = this.random.fork()
    node.authority = createAuthority({
      self: node.id,
      config: this.config,
      random: () => fork.next(),
      nowMs: this.localMs(node.id),
      ...(this.durableEpochs ? { durableEpochs: { epochs: { ...node.saved }, complete: true } } : {}),
    })
    node.authority.step(this.rosterInput(node), this.localMs(node.id))
    this.afterStep(node)
  }

  private hintOthers(id: string, state: 'alive' | 'dead'): void {
    const delayMs = this.failureDetectorMs
    if (delayMs === null) return
    this.at(this.nowMs + delayMs, null, () => {
      for (const other of this.nodes.values()) {
        if (other.id === id || other.authority === null) continue
        other.authority.step({ type: 'peer', id, state }, this.localMs(other.id))
        this.afterStep(other)
      }
    })
  }

  private handle(event: SimEvent): void {
    switch (event.kind) {
      case 'tick': {
        const node = this.node(event.node)
        if (this.deadlineTimers) {
          if (event.generation !== node.tickGeneration) return // superseded by a re-arm
          node.tickAtMs = Number.POSITIVE_INFINITY
        }
        if (node.authority !== null) {
          this.wakeups.set(node.id, (this.wakeups.get(node.id) ?? 0) + 1)
          node.authority.tick(this.localMs(node.id))
          this.afterStep(node)
        }
        if (!this.deadlineTimers) {
          this.push({ kind: 'tick', atMs: this.nowMs + this.tickMs, seq: 0, node: node.id })
        }
        break
      }
      case 'deliver': {
        const node = this.node(event.to)
        if (node.authority === null) return
        this.delivered++
        if (this.transcript) this.note(`${event.to} <- ${event.from} ${describeMessage(event.message)}`)
        node.authority.step(
          { type: 'message', from: event.from, message: event.message },
          this.localMs(node.id),
        )
        this.afterStep(node)
        break
      }
      case 'call':
        if (event.label !== null) this.note(`** ${event.label}`)
        event.run()
        break
    }
  }

  private afterStep(node: SimNode): void {
    const authority = node.authority
    if (authority === null) return
    for (const effect of authority.drainEffects()) this.onEffect(node, effect)
    if (this.deadlineTimers) this.armTick(node, authority.nextDeadlineMs())
  }

  /** Deadline timers: one tick at the first true ms at which the node's clock reaches `deadlineMs`. */
  private armTick(node: SimNode, deadlineMs: number): void {
    let atMs = Number.POSITIVE_INFINITY
    if (Number.isFinite(deadlineMs)) {
      atMs = Math.max(this.nowMs, Math.ceil((deadlineMs - node.offsetMs) / (1 + node.rate)))
      while (this.localMs(node.id, atMs) < deadlineMs) atMs++
      while (atMs > this.nowMs && this.localMs(node.id, atMs - 1) >= deadlineMs) atMs--
    }
    if (atMs === node.tickAtMs) return
    node.tickAtMs = atMs
    node.tickGeneration++
    if (Number.isFinite(atMs)) {
      this.push({ kind: 'tick', atMs, seq: 0, node: node.id, generation: node.tickGeneration })
    }
  }

  private onEffect(node: SimNode, effect: AuthorityEffect): void {
    switch (effect.type) {
      case 'send': {
        const byType = this.sent.get(node.id) ?? new Map<string, number>()
        byType.set(effect.message.type, (byType.get(effect.message.type) ?? 0) + 1)
        this.sent.set(node.id, byType)
        this.addressed.set(effect.to, (this.addressed.get(effect.to) ?? 0) + 1)
        this.transmit(node.id, effect.to, effect.message)
        return
      }
      case 'acquired': {
        const last = this.lastEpoch.get(effect.zone)
        if (last !== undefined) {
          const ok = last.holder === node.id ? effect.epoch >= last.epoch : effect.epoch > last.epoch
          if (!ok)
            this.violation(
              `epoch went backwards in ${effect.zone}: ${node.id} e${effect.epoch} after ${last.holder} e${last.epoch}`,
            )
        }
        this.lastEpoch.set(effect.zone, { epoch: effect.epoch, holder: node.id })
        const byHolder = this.acquired.get(effect.zone) ?? new Map<string, number>()
        byHolder.set(node.id, Math.max(effect.epoch, byHolder.get(node.id) ?? 0))
        this.acquired.set(effect.zone, byHolder)
        this.note(
          `${node.id} acquired ${effect.zone} e${effect.epoch} for ${effect.actUntilMs - this.localMs(node.id)}ms`,
        )
        return
      }
      case 'renewed':
        this.note(
          `${node.id} renewed ${effect.zone} e${effect.epoch} for ${effect.actUntilMs - this.localMs(node.id)}ms`,
        )
        return
      case 'lost':
        this.note(`${node.id} lost ${effect.zone} e${effect.epoch} (${effect.reason})`)
        return
      case 'campaign':
        this.note(`${node.id} campaigns ${effect.zone} e${effect.epoch}`)
        return
      case 'recovered':
        this.note(`${node.id} recovered ${effect.zone} max=e${effect.maxEpoch}`)
        return
      case 'persist-epoch':
        node.saved[effect.zone] = effect.epoch
        return
      case 'lookup-result':
        this.note(`${node.id} lookup ${effect.zone}: ${effect.holder ?? 'none'} e${effect.epoch}`)
        this.lookupResults.set(effect.query, { holder: effect.holder, epoch: effect.epoch })
        return
      case 'roster-mismatch': {
        // The driver republishes its signed roster on gossip when a peer is behind: every node it can
        // reach gets it (one message each, subject to cuts and loss).
        if (effect.theirs >= effect.ours) return
        const version = node.version
        for (const peer of this.nodes.values()) {
          if (peer.id === node.id || peer.version >= version) continue
          if (this.cuts.has(`${node.id}>${peer.id}`)) continue
          if (this.lossRate > 0 && this.random.chance(this.lossRate)) continue
          this.at(this.nowMs + this.random.int(this.delay.min, this.delay.max), null, () =>
            this.adopt(peer, version),
          )
        }
        return
      }
    }
  }

  private transmit(from: string, to: string, message: AuthorityMessage): void {
    let payload = message
    if (this.wire) {
      const bytes = encodeCbor(message as unknown as Parameters<typeof encodeCbor>[0])
      const parsed = parseAuthorityMessage(decodeCbor(bytes, authorityMessageBytesMax), this.config)
      if (!parsed.ok)
        throw new Error(`message does not survive the wire: ${parsed.code} ${parsed.field ?? ''}`)
      payload = parsed.message
    }
    if (this.cuts.has(`${from}>${to}`)) return
    if (this.lossRate > 0 && this.random.chance(this.lossRate)) return
    const copies = this.duplicateRate > 0 && this.random.chance(this.duplicateRate) ? 2 : 1
    for (let i = 0; i < copies; i++) {
      const atMs = this.nowMs + this.random.int(this.delay.min, this.delay.max)
      this.push({ kind: 'deliver', atMs, seq: 0, from, to, message: payload })
    }
  }

  private checkSafety(): void {
    for (const zone of this.zones()) {
      let holder: string | null = null
      for (const node of this.nodes.values()) {
        if (node.authority === null) continue
        const held = node.authority.isAuthority(zone, this.localMs(node.id))
        if (held === null) continue
        if (holder !== null) this.violation(`two authorities of ${zone}: ${holder} and ${node.id}`)
        holder = node.id
        const last = this.lastEpoch.get(zone)
        if (last !== undefined && held.epoch < last.epoch) {
          this.violation(`${node.id} acts on ${zone} at e${held.epoch} after e${last.epoch} was granted`)
        }
      }
    }
  }

  private violation(what: string): never {
    const tail = this.lines.slice(-40).join('\n')
    throw new SafetyViolation(`t=${this.nowMs}ms: ${what}${tail ? `\n--- transcript tail ---\n${tail}` : ''}`)
  }

  private push(event: SimEvent): void {
    if (this.heap.length >= QUEUE_MAX) throw new Error(`more than ${QUEUE_MAX} queued events`)
    event.seq = ++this.seq
    const heap = this.heap
    heap.push(event)
    let i = heap.length - 1
    while (i > 0) {
      const parent = (i - 1) >> 1
      if (!before(heap[i]!, heap[parent]!)) break
      ;[heap[i], heap[parent]] = [heap[parent]!, heap[i]!]
      i = parent
    }
  }

  private pop(): void {
    const heap = this.heap
    const last = heap.pop()
    if (last === undefined || heap.length === 0) return
    heap[0] = last
    let i = 0
    for (;;) {
      const l = 2 * i + 1
      const r = l + 1
      let m = i
      if (l < heap.length && before(heap[l]!, heap[m]!)) m = l
      if (r < heap.length && before(heap[r]!, heap[m]!)) m = r
      if (m === i) break
      ;[heap[i], heap[m]] = [heap[m]!, heap[i]!]
      i = m
    }
  }
}

function before(a: SimEvent, b: SimEvent): boolean {
  return a.atMs < b.atMs || (a.atMs === b.atMs && a.seq < b.seq)
}
