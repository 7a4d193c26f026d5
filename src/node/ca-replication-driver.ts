/**
 * Drives the CA replication core (src/ca/replication.ts) among the CA holders: carries its effects in
 * order (a `persist` is durable before any later effect leaves), sends its messages over
 * `/mesh/ca-replica/1.0.0` (length-prefixed CBOR frames, bounded by `replicaMessageBytesMax`, on
 * admitted Noise connections: `from` is the authenticated PeerId), ticks it every `retryMs` through
 * the clock port, and turns the CA zone's lease into `become-issuer` / `step-down`.
 *
 *   authority onChange(zone, held) ──▶ become-issuer(epoch) / step-down ──▶ core ──▶ effects, in order:
 *     persist  → store.save(record) (atomic)      send → per-holder bounded queue → one stream per frame
 *     ready    → build the issuer from the state  committed → resolve the issuer driver's commit()
 *     deposed  → drop the issuer; reject the commit in flight (NotIssuerError: "try <issuer>")
 *
 * Lease: the holders are a zone of their own (every holder's certificate names the same zone, and no
 * other member is in it); that zone's authority epoch (authority-driver.ts) is the first part of the
 * ballot. Safety never depends on it (the core's promises fence a stale issuer); a non-holder winning
 * the zone's lease only stops issuance (nobody serves), so the CA zone must hold the holders only.
 *
 * Fail-stop: when a record cannot be saved, memory is ahead of disk; the driver stops taking part
 * (no replies, no issuance) until the node is created anew, as the issuer driver does.
 */
import type { Connection, Stream } from '@libp2p/interface'
import type { Issuer } from '../ca/issuer.js'
import { decodeIssuerState, encodeIssuerState, type IssuerState } from '../ca/issuer-state.js'
import {
  type Ballot,
  createReplica,
  parseReplicaMessage,
  type Replica,
  type ReplicaConfig,
  type ReplicaCounters,
  type ReplicaEffect,
  type ReplicaMessage,
  type ReplicaRecord,
  type ReplicaRole,
  replicaMessageBytesMax,
  replicaMessageContent,
} from '../ca/replication.js'
import type { MemberView } from '../membership/view.js'
import { type CborValue, decodeCbor, encodeCbor } from '../wire/cbor.js'
import { readRecord, tryRead } from '../wire/fields.js'
import { bytesEqual, hash } from '../wire/hash.js'
import type { AuthorityDriver } from './authority-driver.js'
import { type Clock, every, type Timer } from './clock.js'
import { countedLpStream } from './counted-stream.js'
import { dialTarget } from './dial.js'
import type { Host } from './host.js'
import { NotIssuerError } from './issuer-driver.js'
import { createLogLimiter, type Logger } from './log.js'
import type { Traffic } from './traffic.js'

/** The stream protocol between CA holders. */
export const CA_REPLICA_PROTOCOL = '/mesh/ca-replica/1.0.0'
/** Frames waiting per holder; when full the oldest is dropped (the core re-sends what stays unanswered). */
export const CA_REPLICA_SEND_QUEUE_MAX = 8
/** How long one dial and write to a holder may take, in ms. */
export const CA_REPLICA_SEND_TIMEOUT_MS = 3_000
/** Inbound replica streams per connection. */
export const CA_REPLICA_INBOUND_STREAMS_MAX = 4
/** Traffic row of the protocol. */
const TRAFFIC_NAME = 'ca-replica'

/** What `mesh ca holders` shows. */
export interface CaReplicationStatus {
  /** Holder peer ids, with names where known. */
  readonly holders: ReadonlyArray<{ readonly peerId: string; readonly name: string; readonly self: boolean }>
  /** The lease zone (the holders' zone). */
  readonly zone: string
  readonly role: ReplicaRole
  /** The ballot this node recovers or serves under. */
  readonly ballot: Ballot | null
  /** The highest ballot this node promised, and its issuer's name: the current issuer as far as known. */
  readonly promised: Ballot | null
  readonly issuer: string | null
  /** Version and ballot of the state this node stores. */
  readonly accepted: { readonly ballot: Ballot; readonly version: number } | null
  readonly counters: ReplicaCounters & {
    readonly sendDropped: number
    readonly sendFailed: number
    readonly malformed: number
  }
  /** True once a record could not be saved (the replica stopped). */
  readonly broken: boolean
}

/** The driver. */
export interface CaReplicationDriver {
  /** Registers the protocol (gated), subscribes to the lease, starts the retry timer. Idempotent. */
  start(): Promise<void>
  stop(): void
  /** The issuer core while this node serves; undefined otherwise. */
  current(): Issuer | undefined
  /** Replicates `state`; resolves once a majority stored it. @throws NotIssuerError when deposed */
  commit(state: IssuerState): Promise<void>
  /** The error a caller gets while this node is not the issuer (names the issuer when known). */
  notIssuer(): NotIssuerError
  status(): CaReplicationStatus
}

/** What the driver needs. */
export interface CaReplicationComponents {
  readonly host: Pick<Host, 'handle' | 'unhandle' | 'dialProtocol' | 'getConnections'>
  readonly gated: (
    handler: (stream: Stream, connection: Connection) => Promise<void>,
  ) => (stream: Stream, connection: Connection) => Promise<void>
  readonly authority: Pick<AuthorityDriver, 'onChange' | 'isAuthority'>
  readonly members: () => readonly MemberView[]
  /** Builds the issuer core from a recovered state. */
  readonly makeIssuer: (state: IssuerState) => Issuer
  /** Called once the issuer serves (e.g. to offer its revocation list and roster). */
  readonly onServing?: (issuer: Issuer) => void
  /** Makes the record durable (temp file, fsync, rename); resolve only then. Without it: memory only. */
  readonly save?: (bytes: Uint8Array) => Promise<void>
  readonly clock: Clock
  readonly log: Logger
  readonly traffic: Traffic
}

/** Options. */
export interface CaReplicationInit {
  readonly self: string
  /** Every holder's peer id, this node's included (2 to REPLICA_HOLDERS_MAX). */
  readonly holders: readonly string[]
  /** The holders' zone, whose authority lease elects the issuer. */
  readonly zone: string
  /** The record saved by an earlier run. */
  readonly initial?: Uint8Array
  /** The CA state to seed a holder that has no record yet (its own issuer state). */
  readonly seed: IssuerState
  readonly config?: Partial<ReplicaConfig>
}

// ── Record codec: the two halves as replica messages, so the bounded parser reads them back ──

/** Encodes a replica record for the store. */
export function encodeReplicaRecord(record: ReplicaRecord): Uint8Array {
  const content: Record<string, unknown> = { v: 1 }
  if (record.promised !== null)
    content.promised = replicaMessageContent({ type: 'prepare', ballot: record.promised })
  if (record.accepted !== null) {
    const { state, ...summary } = record.accepted
    content.accepted = replicaMessageContent({
      type: 'state',
      ballot: summary.ballot,
      accepted: summary,
      state,
    })
  }
  return encodeCbor(content as CborValue)
}

/** Reads a stored record; undefined when unreadable or its state does not match its hash. */
export function decodeReplicaRecord(bytes: Uint8Array): ReplicaRecord | undefined {
  const bytesMax = replicaMessageBytesMax() + 1024
  if (bytes.byteLength > bytesMax) return undefined
  try {
    const read = tryRead(() =>
      readRecord(decodeCbor(bytes, bytesMax), 'record', ['v'], ['promised', 'accepted']),
    )
    if (!read.ok || read.value.v !== 1) return undefined
    const promised =
      read.value.promised === undefined ? null : parseReplicaMessage(read.value.promised).ballot
    let accepted: ReplicaRecord['accepted'] = null
    if (read.value.accepted !== undefined) {
      const message = parseReplicaMessage(read.value.accepted)
      if (message.type !== 'state' || !bytesEqual(hash(message.state), message.accepted.hash))
        return undefined
      accepted = { ...message.accepted, state: message.state }
    }
    return { promised, accepted }
  } catch {
    return undefined
  }
}

/** Creates the driver. */
export function createCaReplicationDriver(
  components: CaReplicationComponents,
  init: CaReplicationInit,
): CaReplicationDriver {
  const { clock, log, host } = components
  const limited = createLogLimiter(log, clock)
  const mono = (): number => Math.floor(clock.monotonicMs())
  const holders = [...init.holders]
  let record = init.initial === undefined ? undefined : decodeReplicaRecord(init.initial)
  if (init.initial !== undefined && record === undefined)
    log.error({}, 'CA replica record unreadable: this holder starts from its own CA state')
  if (record === undefined || record.accepted === null) {
    // No record yet: this holder's own CA state, under the lowest ballot, so any state a later issuer
    // committed (epoch ≥ 1) wins over it at recovery.
    const state = encodeIssuerState(init.seed)
    record = {
      promised: record?.promised ?? null,
      accepted: { ballot: { epoch: 0, round: 0, issuer: init.self }, version: 0, hash: hash(state), state },
    }
  }
  const replica: Replica = createReplica({
    self: init.self,
    holders,
    record,
    ...(init.config !== undefined ? { config: init.config } : {}),
  })
  const stateBytesMax = init.config?.stateBytesMax
  const frameBytesMax = replicaMessageBytesMax(stateBytesMax)
  const counters = { sendDropped: 0, sendFailed: 0, malformed: 0 }
  let issuer: Issuer | undefined
  let pending: { resolve: () => void; reject: (err: Error) => void } | undefined
  let broken = false
  let started = false
  let stopped = false
  let timer: Timer | undefined
  let unsubscribe: (() => void) | undefined

  const nameOf = (peerId: string | undefined): string | null => {
    if (peerId === undefined) return null
    if (peerId === init.self) return 'this node'
    return components.members().find(m => m.peerId === peerId)?.name ?? peerId
  }
  const notIssuer = (): NotIssuerError => {
    const hint = replica.issuerHint()
    const who = hint !== undefined && hint !== init.self ? `; try ${nameOf(hint)}` : ''
    return new NotIssuerError(`this CA holder is not the issuer${who}`, hint)
  }

  // ── Outbound: one bounded queue and one sender per holder ──
  const queues = new Map<string, Uint8Array[]>()
  const sending = new Set<string>()
  const send = (to: string, message: ReplicaMessage): void => {
    if (stopped) return
    const queue = queues.get(to) ?? []
    queues.set(to, queue)
    if (queue.length >= CA_REPLICA_SEND_QUEUE_MAX) {
      queue.shift()
      counters.sendDropped++
    }
    queue.push(encodeCbor(replicaMessageContent(message) as CborValue))
    if (!sending.has(to)) void drainQueue(to)
  }
  const drainQueue = async (to: string): Promise<void> => {
    sending.add(to)
    try {
      const queue = queues.get(to) ?? []
      for (let frame = queue.shift(); frame !== undefined && !stopped; frame = queue.shift()) {
        const signal = AbortSignal.timeout(CA_REPLICA_SEND_TIMEOUT_MS)
        try {
          const addrs = components.members().find(m => m.peerId === to)?.addrs ?? []
          const target = dialTarget(to, addrs, peer => host.getConnections(peer).length > 0)
          const stream = await host.dialProtocol(target, CA_REPLICA_PROTOCOL, { signal })
          const lp = countedLpStream(
            stream,
            { maxDataLength: frameBytesMax },
            components.traffic,
            TRAFFIC_NAME,
          )
          await lp.write(frame, { signal })
          await stream.close({ signal }).catch(() => {})
        } catch (err) {
          counters.sendFailed++
          limited.log(
            'debug',
            `send:${to}`,
            { peer: to, err: (err as Error).message },
            'CA replica send failed',
          )
        }
      }
    } finally {
      sending.delete(to)
    }
  }

  // ── Effects, in order; a persist holds back every later one until durable ──
  const effects: ReplicaEffect[] = []
  let flushing = false
  const pump = (): void => {
    effects.push(...replica.drainEffects())
    if (!flushing) void flush()
  }
  const flush = async (): Promise<void> => {
    flushing = true
    try {
      for (let effect = effects.shift(); effect !== undefined; effect = effects.shift()) {
        if (broken) return
        if (effect.type === 'persist') {
          try {
            await components.save?.(encodeReplicaRecord(effect.record))
          } catch (err) {
            fail(err as Error)
            return
          }
        } else if (effect.type === 'send') send(effect.to, effect.message)
        else if (effect.type === 'ready') onReady(effect.ballot, effect.version, effect.state)
        else if (effect.type === 'committed') {
          const waiting = pending
          pending = undefined
          waiting?.resolve()
        } else if (effect.type === 'deposed') {
          if (issuer !== undefined || pending !== undefined)
            log.info({ reason: effect.reason, by: effect.by ?? null }, 'CA issuer stepped down')
          issuer = undefined
          const waiting = pending
          pending = undefined
          waiting?.reject(notIssuer())
        }
      }
    } finally {
      flushing = false
    }
  }
  const fail = (err: Error): void => {
    broken = true
    issuer = undefined
    effects.length = 0
    const waiting = pending
    pending = undefined
    waiting?.reject(new NotIssuerError(`the CA replica record could not be saved (${err.message})`))
    log.error({ err: err.message }, 'cannot save the CA replica record; this holder stops until restart')
  }
  const onReady = (ballot: Ballot, version: number, bytes: Uint8Array): void => {
    try {
      issuer = components.makeIssuer(decodeIssuerState(bytes))
    } catch (err) {
      log.error({ err: (err as Error).message }, 'recovered CA state unusable; not serving')
      replica.step({ type: 'step-down' }, mono())
      pump()
      return
    }
    log.info({ epoch: ballot.epoch, round: ballot.round, version }, 'CA issuer serving')
    components.onServing?.(issuer)
  }

  const step = (input: Parameters<Replica['step']>[0]): void => {
    if (broken || stopped) return
    replica.step(input, mono())
    pump()
  }

  /** One frame per stream: read it, close our side (an open inbound stream would count against the limit). */
  const handle = async (stream: Stream, connection: Connection): Promise<void> => {
    const from = connection.remotePeer.toString()
    const lp = countedLpStream(stream, { maxDataLength: frameBytesMax }, components.traffic, TRAFFIC_NAME)
    const signal = AbortSignal.timeout(CA_REPLICA_SEND_TIMEOUT_MS)
    let frame: Uint8Array
    try {
      frame = (await lp.read({ signal })).subarray()
      await stream.close({ signal }).catch(() => stream.abort(new Error('close failed')))
    } catch (err) {
      stream.abort(err as Error)
      return
    }
    let message: ReplicaMessage
    try {
      message = parseReplicaMessage(decodeCbor(frame, frameBytesMax), stateBytesMax)
    } catch (err) {
      counters.malformed++
      limited.log(
        'warn',
        `bad:${from}`,
        { peer: from, err: (err as Error).message },
        'bad CA replica message',
      )
      return
    }
    step({ type: 'message', from, message })
  }

  /**
   * The holders' zone elects the issuer, so a member of it that is no holder can win the lease, and
   * then no holder issues: said in the log (at most once a log-limit window) while such members are live.
   */
  let strangerChecks = 0
  const warnStrangers = (): void => {
    if (strangerChecks++ % 40 !== 0) return // every 40 retry ticks (10 s by default) is enough
    const strangers = components
      .members()
      .filter(
        m =>
          m.zone === init.zone &&
          (m.state === 'alive' || m.state === 'suspect') &&
          !holders.includes(m.peerId),
      )
    if (strangers.length === 0) return
    limited.log(
      'warn',
      'strangers',
      { zone: init.zone, members: strangers.map(m => m.name).slice(0, 8) },
      "the CA holders' zone has members that are not CA holders: if one wins the zone lease, no holder issues; give the holders a zone of their own",
    )
  }

  const onLease = (event: { zone: string; epoch: number; held: boolean }): void => {
    if (event.zone !== init.zone) return
    step(event.held ? { type: 'become-issuer', epoch: event.epoch } : { type: 'step-down' })
  }

  return {
    async start() {
      if (started) return
      started = true
      await host.handle(CA_REPLICA_PROTOCOL, components.gated(handle), {
        maxInboundStreams: CA_REPLICA_INBOUND_STREAMS_MAX,
      })
      unsubscribe = components.authority.onChange(onLease)
      const retryMs = init.config?.retryMs ?? 250
      timer = every(clock, retryMs, () => {
        if (broken || stopped) return
        replica.tick(mono())
        pump()
        warnStrangers()
      })
      const held = components.authority.isAuthority(init.zone)
      if (held !== null) step({ type: 'become-issuer', epoch: held.epoch })
      log.info({ zone: init.zone, holders: holders.length }, 'CA replication started')
    },
    stop() {
      if (stopped) return
      stopped = true
      timer?.cancel()
      unsubscribe?.()
      issuer = undefined
      const waiting = pending
      pending = undefined
      waiting?.reject(new NotIssuerError('the node is stopping'))
      void host.unhandle(CA_REPLICA_PROTOCOL).catch(() => {})
    },
    current: () => (replica.role() === 'serving' && !broken && !stopped ? issuer : undefined),
    commit(state) {
      if (broken || stopped || issuer === undefined || replica.role() !== 'serving' || pending !== undefined)
        return Promise.reject(notIssuer())
      return new Promise<void>((resolve, reject) => {
        pending = { resolve, reject }
        try {
          replica.step({ type: 'propose', state: encodeIssuerState(state) }, mono())
        } catch (err) {
          pending = undefined
          reject(err as Error)
          return
        }
        pump()
      })
    },
    notIssuer,
    status() {
      const names = new Map(components.members().map(m => [m.peerId, m.name]))
      const own = replica.record()
      const hint = replica.issuerHint()
      return {
        holders: holders.map(peerId => ({
          peerId,
          name: names.get(peerId) ?? peerId,
          self: peerId === init.self,
        })),
        zone: init.zone,
        // A stopped or broken replica serves nobody, whatever its core last was.
        role: stopped || broken ? 'holder' : replica.role(),
        ballot: replica.ballot(),
        promised: own.promised,
        issuer: hint === undefined ? null : (names.get(hint) ?? hint),
        accepted:
          own.accepted === null ? null : { ballot: own.accepted.ballot, version: own.accepted.version },
        counters: { ...replica.counters(), ...counters },
        broken,
      }
    },
  }
}
