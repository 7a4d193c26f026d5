/**
 * Virtual-time simulator of many SWIM membership cores (src/membership/swim.ts) in one process. One
 * seed drives everything: message delays (uniform in a range), loss, the cores' own random generators.
 * Faults: loss, partitions (groups that cannot reach each other), crashes (a node stops sending and
 * receiving and loses its memory), restarts (a new core at a later incarnation that contacts a random
 * live node, as the driver does with its bootstrap peers), goodbyes, revocations, and injected messages
 * (a hostile insider speaking as itself).
 *
 * The simulated driver does what src/node/membership-driver.ts does: it checks each record and proof
 * (records are `{ id, inc }` and must match their update; a proof `{ from }` must name its accuser, so a
 * node can sign only as itself), signs refutations and suspicions at once and steps them back, and sets
 * one timer per node at `nextDeadlineMs()`. Driver `deadline+poll` also ticks every `pollMs` at half-ms
 * offsets (never at the same instant as any other event): if a core ever did work at a tick that was not
 * its deadline, or missed work its deadline did not announce, that run would differ from `deadline`.
 * Driver `poll` ticks only every `pollMs` (what a naive driver would do).
 */
import {
  createSwim,
  type Swim,
  type SwimConfig,
  type SwimEffect,
  type SwimMessage,
  type SwimState,
  type SwimUpdate,
} from '../../src/membership/swim.js'
import { type SimRandom, simRandom } from './random.js'

/** A member's record in the simulator: what the real record's signature binds (id, incarnation). */
export interface SimRecord {
  readonly id: string
  readonly inc: number
}
/** A suspicion's proof in the simulator: its accuser. */
export interface SimProof {
  readonly from: string
}
export type SimUpdate = SwimUpdate<SimRecord, SimProof>
export type SimMessage = SwimMessage<SimRecord, SimProof>
export type SimEffect = SwimEffect<SimRecord, SimProof>

/** Options of one simulation. */
export interface SwimSimOptions {
  readonly seed: number
  readonly n: number
  readonly config?: Partial<SwimConfig>
  /** One-way delay range, true ms (integers); default 1–20. */
  readonly delayMs?: { readonly min: number; readonly max: number }
  /** Probability that a message is lost; default 0. */
  readonly loss?: number
  /**
   * `formed` (default): every node starts holding every other's record, as after a join settled.
   * `join`: node i starts at i · joinSpacingMs knowing only itself and contacts a random earlier node.
   */
  readonly start?: 'formed' | 'join'
  readonly joinSpacingMs?: number
  readonly driver?: 'deadline' | 'deadline+poll' | 'poll'
  readonly pollMs?: number
  readonly updateBytes?: (update: SimUpdate) => number
  readonly messageBytesMax?: number
  /** Keep a transcript (one line per delivered message and per effect); default false. */
  readonly transcript?: boolean
}

/**
 * A death declared by `observer` about `target`. `falsePositive`: the target was up, in the life the
 * observer held (not an incarnation from before a restart), and reachable from the observer throughout
 * the suspicion that ended in this death (a suspicion raised across a partition may run out after it
 * healed: that death is the partition's doing, and the member comes back by refuting).
 */
export interface SimDeath {
  readonly atMs: number
  readonly observer: string
  readonly target: string
  readonly falsePositive: boolean
}

/** A state change seen by one node. */
export interface SimChange {
  readonly atMs: number
  readonly observer: string
  readonly effect: SimEffect
}

interface SimNode {
  readonly id: string
  readonly index: number
  core: Swim<SimRecord, SimProof> | null
  incarnation: number
  /** The incarnation this life of the node started at. */
  bootIncarnation: number
  /** Bumped on crash and restart, so the old core's timers are dropped. */
  epoch: number
  timerAtMs: number
  sent: number
  received: number
  /** While now < this, the node's process is frozen (see stall). */
  stalledUntilMs: number
  /** Messages that arrived during a stall, delivered in order when it ends. */
  held: { readonly from: string; readonly message: SimMessage }[]
  /** A timer came due during a stall. */
  tickDue: boolean
}

const DELIVER = 0
const TIMER = 1
const POLL = 2
const ACTION = 3

interface SimEvent {
  readonly atMs: number
  readonly order: number
  readonly kind: number
  readonly node: number
  readonly epoch: number
  readonly from?: string
  readonly message?: SimMessage
  readonly action?: () => void
}

/** A binary min-heap of events by (time, insertion order). */
class EventHeap {
  private readonly items: SimEvent[] = []
  get size(): number {
    return this.items.length
  }
  peek(): SimEvent | undefined {
    return this.items[0]
  }
  push(event: SimEvent): void {
    const items = this.items
    items.push(event)
    let i = items.length - 1
    while (i > 0) {
      const parent = (i - 1) >> 1
      if (!before(items[i]!, items[parent]!)) break
      ;[items[i], items[parent]] = [items[parent]!, items[i]!]
      i = parent
    }
  }
  pop(): SimEvent | undefined {
    const items = this.items
    const top = items[0]
    const last = items.pop()
    if (top === undefined || last === undefined || items.length === 0) return top
    items[0] = last
    let i = 0
    for (;;) {
      const l = 2 * i + 1
      const r = l + 1
      let smallest = i
      if (l < items.length && before(items[l]!, items[smallest]!)) smallest = l
      if (r < items.length && before(items[r]!, items[smallest]!)) smallest = r
      if (smallest === i) break
      ;[items[i], items[smallest]] = [items[smallest]!, items[i]!]
      i = smallest
    }
    return top
  }
}

function before(a: SimEvent, b: SimEvent): boolean {
  return a.atMs < b.atMs || (a.atMs === b.atMs && a.order < b.order)
}

/** Percentile `p` (0–100) of `values` (nearest rank); NaN when empty. */
export function percentile(values: readonly number[], p: number): number {
  if (values.length === 0) return Number.NaN
  const sorted = [...values].sort((a, b) => a - b)
  const rank = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))
  return sorted[rank]!
}

/** The simulator (see the file comment). */
export class SwimSim {
  readonly ids: readonly string[]
  readonly random: SimRandom
  /** Deaths declared, in order. */
  readonly deaths: SimDeath[] = []
  /** Updates refused by the simulated driver's checks (forged records or proofs). */
  forged = 0
  /** Alive updates the driver would have verified (`wants` said yes). */
  verifications = 0
  /** Messages sent, by type, since the last {@link SwimSim.resetTraffic}. */
  sentByType: Record<SimMessage['type'], number> = { ping: 0, ack: 0, 'ping-req': 0, gossip: 0, sync: 0 }
  readonly lines: string[] = []
  private readonly options: SwimSimOptions
  private readonly nodes: SimNode[]
  private readonly byId = new Map<string, SimNode>()
  private readonly heap = new EventHeap()
  private order = 0
  private nowMs = 0
  private loss: number
  private readonly delayMin: number
  private readonly delayMax: number
  private group: Int32Array
  private readonly listeners: ((change: SimChange) => void)[] = []
  private trafficSinceMs = 0
  /** Every partition layout with the time it began (the first: none). */
  private readonly layouts: { readonly fromMs: number; readonly group: Int32Array }[]
  /** observer + target → when the observer began suspecting the target. */
  private readonly suspectedAt = new Map<string, number>()

  constructor(options: SwimSimOptions) {
    this.options = options
    this.random = simRandom(options.seed)
    this.loss = options.loss ?? 0
    this.delayMin = options.delayMs?.min ?? 1
    this.delayMax = options.delayMs?.max ?? 20
    this.ids = Array.from({ length: options.n }, (_, i) => `n${i}`)
    this.group = new Int32Array(options.n)
    this.layouts = [{ fromMs: 0, group: this.group }]
    this.nodes = this.ids.map((id, index) => ({
      id,
      index,
      core: null,
      incarnation: 1,
      bootIncarnation: 1,
      epoch: 0,
      timerAtMs: Infinity,
      sent: 0,
      received: 0,
      stalledUntilMs: -Infinity,
      held: [],
      tickDue: false,
    }))
    for (const node of this.nodes) this.byId.set(node.id, node)
    if ((options.start ?? 'formed') === 'formed') {
      const known: SimUpdate[] = this.nodes.map(node => ({
        kind: 'alive',
        id: node.id,
        incarnation: node.incarnation,
        left: false,
        record: { id: node.id, inc: node.incarnation },
      }))
      for (const node of this.nodes) this.boot(node, known)
    } else {
      const spacingMs = options.joinSpacingMs ?? 10
      this.nodes.forEach((node, i) => {
        this.at(i * spacingMs, () => {
          this.boot(node, [])
          if (i > 0) this.contact(node.id, this.ids[this.random.int(0, i - 1)]!)
        })
      })
    }
  }

  get now(): number {
    return this.nowMs
  }

  // ───────────────────────────── running ─────────────────────────────

  /** Runs every event up to and including `untilMs`. */
  run(untilMs: number): void {
    for (;;) {
      const event = this.heap.peek()
      if (event === undefined || event.atMs > untilMs) break
      this.heap.pop()
      this.nowMs = event.atMs
      this.handle(event)
    }
    this.nowMs = Math.max(this.nowMs, untilMs)
  }

  /** Runs until `check` holds (tested every `everyMs`) or `limitMs` passes; returns the time it held, or null. */
  runUntil(check: () => boolean, limitMs: number, everyMs = 10): number | null {
    const end = this.nowMs + limitMs
    while (this.nowMs < end) {
      if (check()) return this.nowMs
      this.run(Math.min(end, this.nowMs + everyMs))
    }
    return check() ? this.nowMs : null
  }

  /** Runs `action` at `atMs` (true ms). */
  at(atMs: number, action: () => void): void {
    this.push({ atMs, order: this.order++, kind: ACTION, node: -1, epoch: 0, action })
  }

  /** Calls `listener` for every joined / state / removed effect of every node. */
  onChange(listener: (change: SimChange) => void): void {
    this.listeners.push(listener)
  }

  // ───────────────────────────── faults ─────────────────────────────

  setLoss(loss: number): void {
    this.loss = loss
  }

  /** Nodes in different groups cannot reach each other; nodes in no group form one more group. */
  partition(...groups: readonly (readonly string[])[]): void {
    this.group = new Int32Array(this.nodes.length)
    groups.forEach((ids, g) => {
      for (const id of ids) this.group[this.node(id).index] = g + 1
    })
    this.layouts.push({ fromMs: this.nowMs, group: this.group })
  }

  heal(): void {
    this.group = new Int32Array(this.nodes.length)
    this.layouts.push({ fromMs: this.nowMs, group: this.group })
  }

  /** True when `a` and `b` could reach each other at every instant of [fromMs, now]. */
  private reachableSince(a: SimNode, b: SimNode, fromMs: number): boolean {
    for (let i = this.layouts.length - 1; i >= 0; i--) {
      const layout = this.layouts[i]!
      if (layout.group[a.index] !== layout.group[b.index]) return false
      if (layout.fromMs <= fromMs) return true
    }
    return true
  }

  reachable(a: string, b: string): boolean {
    return this.group[this.node(a).index] === this.group[this.node(b).index]
  }

  /**
   * The node's process is frozen for `durationMs` (CPU starvation, a long GC): messages to it wait, and
   * when it runs again its timer fires first and the waiting messages are read after, as in Node's event
   * loop (timers phase, then poll). It keeps its state.
   */
  stall(id: string, durationMs: number): void {
    const node = this.node(id)
    if (node.core === null || node.stalledUntilMs > this.nowMs) return
    node.stalledUntilMs = this.nowMs + durationMs
    const epoch = node.epoch
    this.at(node.stalledUntilMs, () => {
      node.stalledUntilMs = -Infinity
      const held = node.held
      node.held = []
      if (node.core === null || node.epoch !== epoch) return
      if (node.tickDue) {
        node.tickDue = false
        this.tickNode(node)
      }
      for (const { from, message } of held) this.deliver(node, from, message)
    })
  }

  /** The node stops at once and forgets everything. */
  crash(id: string): void {
    const node = this.node(id)
    node.core = null
    node.epoch++
    node.timerAtMs = Infinity
  }

  /** A new core for `id` at a later incarnation (the driver's wall clock), contacting a random live node. */
  restart(id: string, contact?: string): void {
    const node = this.node(id)
    if (node.core !== null) this.crash(id)
    node.incarnation = Math.max(node.incarnation + 1, Math.floor(this.nowMs) + 1)
    node.bootIncarnation = node.incarnation
    this.boot(node, [])
    const peer = contact ?? this.randomUp(id)
    if (peer !== undefined) this.contact(id, peer)
  }

  /** A graceful stop: the goodbye at the next incarnation, then the process ends after `stopAfterMs`. */
  leave(id: string, stopAfterMs = 100): void {
    const node = this.node(id)
    const core = node.core
    if (core === null) return
    node.incarnation++
    this.stepNode(node, {
      type: 'leave',
      incarnation: node.incarnation,
      record: { id, inc: node.incarnation },
    })
    this.at(this.nowMs + stopAfterMs, () => {
      if (node.core === core) this.crash(id)
    })
  }

  /** Steps `revoke{target}` on `on` (default: every up node but the target). */
  revoke(target: string, on?: readonly string[]): void {
    for (const id of on ?? this.ids.filter(other => other !== target && this.isUp(other)))
      this.stepNode(this.node(id), { type: 'revoke', id: target })
  }

  /** A fresh connection from `id` to `peer` passed hello: both sides step `contact`. */
  contact(id: string, peer: string): void {
    this.stepNode(this.node(id), { type: 'contact', id: peer })
    this.stepNode(this.node(peer), { type: 'contact', id })
  }

  /**
   * Sends `message` as `from` (authenticated as it: a hostile insider speaks only as itself) to `to`,
   * through the network. `from` may be an id outside the simulation (a stranger).
   */
  inject(from: string, to: string, message: SimMessage): void {
    this.send(this.byId.get(from) ?? from, to, message)
  }

  // ───────────────────────────── observing ─────────────────────────────

  isUp(id: string): boolean {
    return this.node(id).core !== null
  }

  core(id: string): Swim<SimRecord, SimProof> | null {
    return this.node(id).core
  }

  /** `target`'s state as `observer` holds it (undefined when unknown or the observer is down). */
  state(observer: string, target: string): SwimState | undefined {
    return this.node(observer).core?.get(target)?.state
  }

  upIds(): string[] {
    return this.ids.filter(id => this.isUp(id))
  }

  /** The incarnation `id` runs at (its latest record). */
  incarnation(id: string): number {
    return this.node(id).incarnation
  }

  /** Starts a new traffic window (message counts per node). */
  resetTraffic(): void {
    for (const node of this.nodes) {
      node.sent = 0
      node.received = 0
    }
    this.sentByType = { ping: 0, ack: 0, 'ping-req': 0, gossip: 0, sync: 0 }
    this.trafficSinceMs = this.nowMs
  }

  /** Per up node: messages sent and received per second since {@link SwimSim.resetTraffic}. */
  traffic(): { id: string; sentPerS: number; receivedPerS: number }[] {
    const seconds = Math.max(1e-9, (this.nowMs - this.trafficSinceMs) / 1000)
    return this.nodes
      .filter(node => node.core !== null)
      .map(node => ({ id: node.id, sentPerS: node.sent / seconds, receivedPerS: node.received / seconds }))
  }

  // ───────────────────────────── internals ─────────────────────────────

  private node(id: string): SimNode {
    const node = this.byId.get(id)
    if (node === undefined) throw new Error(`no node ${id}`)
    return node
  }

  private randomUp(except: string): string | undefined {
    const up = this.ids.filter(id => id !== except && this.isUp(id))
    return up.length === 0 ? undefined : this.random.pick(up)
  }

  private push(event: SimEvent): void {
    this.heap.push(event)
  }

  private boot(node: SimNode, known: readonly SimUpdate[]): void {
    const coreRandom = this.random.fork()
    node.core = createSwim<SimRecord, SimProof>({
      self: node.id,
      incarnation: node.incarnation,
      record: { id: node.id, inc: node.incarnation },
      config: this.options.config,
      random: coreRandom.next,
      nowMs: this.nowMs,
      members: known,
      ...(this.options.updateBytes === undefined ? {} : { updateBytes: this.options.updateBytes }),
      ...(this.options.messageBytesMax === undefined
        ? {}
        : { messageBytesMax: this.options.messageBytesMax }),
    })
    node.epoch++
    node.timerAtMs = Infinity
    const driver = this.options.driver ?? 'deadline'
    if (driver !== 'deadline') {
      const pollMs = this.options.pollMs ?? 10
      const first =
        driver === 'poll'
          ? this.nowMs + coreRandom.int(1, pollMs)
          : Math.floor(this.nowMs / pollMs) * pollMs + pollMs + 0.5
      this.push({ atMs: first, order: this.order++, kind: POLL, node: node.index, epoch: node.epoch })
    }
    this.afterWork(node)
  }

  private handle(event: SimEvent): void {
    if (event.kind === ACTION) {
      event.action?.()
      return
    }
    const node = this.nodes[event.node]!
    const stalled = node.stalledUntilMs > this.nowMs
    if (event.kind === DELIVER) {
      if (stalled && node.core !== null) node.held.push({ from: event.from!, message: event.message! })
      else this.deliver(node, event.from!, event.message!)
      return
    }
    if (node.core === null || event.epoch !== node.epoch) return
    if (event.kind === TIMER) {
      if (event.atMs !== node.timerAtMs) return // superseded by an earlier timer
      node.timerAtMs = Infinity
      if (stalled) node.tickDue = true
      else this.tickNode(node)
      return
    }
    // POLL
    if (stalled) node.tickDue = true
    else this.tickNode(node)
    const pollMs = this.options.pollMs ?? 10
    this.push({
      atMs: event.atMs + pollMs,
      order: this.order++,
      kind: POLL,
      node: node.index,
      epoch: node.epoch,
    })
  }

  private tickNode(node: SimNode): void {
    node.core!.tick(this.nowMs)
    this.afterWork(node)
  }

  private stepNode(node: SimNode, input: Parameters<Swim<SimRecord, SimProof>['step']>[0]): void {
    if (node.core === null) return
    node.core.step(input, this.nowMs)
    this.afterWork(node)
  }

  private deliver(to: SimNode, fromId: string, message: SimMessage): void {
    const from = this.byId.get(fromId)
    if (to.core === null || (from !== undefined && this.group[to.index] !== this.group[from.index])) return
    to.received++
    const core = to.core
    // The driver's checks: a record must be the member's own, a proof its accuser's.
    const kept = message.updates.filter(update => {
      if (update.kind === 'alive') {
        if (update.record.id !== update.id || update.record.inc !== update.incarnation) return false
        if (core.wants(update.id, update.incarnation)) this.verifications++
        return true
      }
      return update.proof.from === update.from
    })
    this.forged += message.updates.length - kept.length
    if (this.options.transcript) this.lines.push(`${this.nowMs} ${fromId}>${to.id} ${describe(message)}`)
    const checked = kept.length === message.updates.length ? message : { ...message, updates: kept }
    this.stepNode(to, { type: 'message', from: fromId, message: checked })
  }

  private send(from: SimNode | string, toId: string, message: SimMessage): void {
    if (typeof from !== 'string') from.sent++
    this.sentByType[message.type]++
    if (this.loss > 0 && this.random.chance(this.loss)) return
    const to = this.byId.get(toId)
    if (to === undefined) return
    const atMs = this.nowMs + this.random.int(this.delayMin, this.delayMax)
    const fromId = typeof from === 'string' ? from : from.id
    this.push({ atMs, order: this.order++, kind: DELIVER, node: to.index, epoch: 0, from: fromId, message })
  }

  /** Carries out a node's effects (signing at once), then re-arms its timer. */
  private afterWork(node: SimNode): void {
    for (let round = 0; round < 16; round++) {
      const core = node.core
      if (core === null) return
      const effects = core.drain()
      if (effects.length === 0) break
      for (const effect of effects) this.carryOut(node, effect)
    }
    const core = node.core
    if (core === null || (this.options.driver ?? 'deadline') === 'poll') return
    const atMs = core.nextDeadlineMs()
    if (atMs < node.timerAtMs) {
      node.timerAtMs = Math.max(atMs, this.nowMs)
      this.push({
        atMs: node.timerAtMs,
        order: this.order++,
        kind: TIMER,
        node: node.index,
        epoch: node.epoch,
      })
    }
  }

  private carryOut(node: SimNode, effect: SimEffect): void {
    const core = node.core!
    switch (effect.type) {
      case 'send':
        this.send(node, effect.to, effect.message)
        return
      case 'sign-self':
        node.incarnation = Math.max(node.incarnation, effect.incarnation)
        core.step(
          {
            type: 'local',
            incarnation: effect.incarnation,
            record: { id: node.id, inc: effect.incarnation },
          },
          this.nowMs,
        )
        return
      case 'sign-suspect':
        core.step(
          {
            type: 'message',
            from: node.id,
            message: {
              type: 'gossip',
              updates: [
                {
                  kind: 'suspect',
                  id: effect.id,
                  incarnation: effect.incarnation,
                  from: node.id,
                  proof: { from: node.id },
                },
              ],
            },
          },
          this.nowMs,
        )
        return
      default:
        if (effect.type === 'state') {
          const key = `${node.id}\u0000${effect.id}`
          if (effect.to === 'suspect') this.suspectedAt.set(key, this.nowMs)
          else if (effect.from === 'suspect') {
            const since = this.suspectedAt.get(key) ?? this.nowMs
            this.suspectedAt.delete(key)
            if (effect.to === 'dead') {
              const target = this.byId.get(effect.id)
              const held = core.get(effect.id)?.incarnation ?? 0
              const falsePositive =
                target !== undefined &&
                target.core !== null &&
                held >= target.bootIncarnation &&
                this.reachableSince(node, target, since)
              this.deaths.push({ atMs: this.nowMs, observer: node.id, target: effect.id, falsePositive })
            }
          }
        } else if (effect.type === 'removed') this.suspectedAt.delete(`${node.id}\u0000${effect.id}`)
        if (this.options.transcript) this.lines.push(`${this.nowMs} ${node.id} ${JSON.stringify(effect)}`)
        for (const listener of this.listeners) listener({ atMs: this.nowMs, observer: node.id, effect })
    }
  }
}

function describe(message: SimMessage): string {
  const updates = message.updates
    .map(u =>
      u.kind === 'alive'
        ? `${u.left ? 'left' : 'alive'}:${u.id}@${u.incarnation}`
        : `suspect:${u.id}@${u.incarnation}/${u.from}`,
    )
    .join(',')
  switch (message.type) {
    case 'ping':
    case 'ack':
      return `${message.type}#${message.seq} [${updates}]`
    case 'ping-req':
      return `ping-req#${message.seq}→${message.target} [${updates}]`
    case 'gossip':
      return `gossip [${updates}]`
    case 'sync':
      return `sync${message.reply ? '-reply' : ''} digest=${message.digest.length} [${updates}]`
  }
}
