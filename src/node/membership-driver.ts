/**
 * The membership driver: runs the SWIM core (src/membership/swim.ts) over `/mesh/member/1.0.0`, one
 * long-lived stream per neighbour (docs/membership.md). It signs this node's record (identity,
 * addresses, facts) whenever that changes and when the core asks for a refutation, signs suspicions
 * the core raises, verifies what arrives (records only when they are news, so a record is checked once
 * per incarnation, not on every message), and sets one timer for the core's next deadline: no polling.
 */
import type { Connection, Stream } from '@libp2p/interface'
import { peerIdFromString } from '@libp2p/peer-id'
import { lpStream } from '@libp2p/utils'
import type { CertificateVerifier, SignedCertificate } from '../ca/types.js'
import {
  createRecord,
  createSuspicion,
  type MemberRecord,
  openSuspicion,
  peekRecord,
  RECORD_ADDRS_MAX,
  type RecordRejection,
  verifyRecord,
  verifySuspicion,
} from '../membership/record.js'
import {
  createSwim,
  SWIM_DEFAULTS,
  type Swim,
  suspicionFloorMs,
  zeroSwimCounters,
} from '../membership/swim.js'
import type { SwimConfig, SwimEffect, SwimMessage, SwimUpdate } from '../membership/swim-types.js'
import type { MemberView } from '../membership/view.js'
import {
  decodeMemberMessage,
  encodeMemberMessage,
  MEMBER_MESSAGE_BYTES_MAX,
  type WireMessage,
  type WireUpdate,
} from '../membership/wire.js'
import { DecodeError } from '../wire/cbor.js'
import { bytesEqual } from '../wire/hash.js'
import { type Clock, sleep, type Timer } from './clock.js'
import type { Signer } from './credentials.js'
import type { Host } from './host.js'
import { createLogLimiter, type Logger } from './log.js'
import { createPeerStreams } from './peer-streams.js'
import type { Traffic } from './traffic.js'

/** The membership protocol id. */
export const MEMBER_PROTOCOL = '/mesh/member/1.0.0'
/** Messages queued per peer while its stream opens. */
export const MEMBER_QUEUE_MAX = 32
/** Time limit for opening a membership stream or writing one message. */
export const MEMBER_STREAM_TIMEOUT_MS = 2_000
/** How long `stop` waits for the goodbye to leave. */
export const LEAVE_FLUSH_MS = 150
/** Inbound membership streams per connection (one per direction is the norm). */
export const MEMBER_STREAMS_PER_CONNECTION_MAX = 4
/** Longest a built member list is reused while the core does not change (its times and uptimes age). */
export const MEMBERS_CACHE_MS = 1_000
/**
 * Suspicions remembered as verified (their bytes and the accuser's key). One suspicion reaches a node
 * many times (piggybacked by every neighbour, retransmitted up to λ·log n times by each); during a
 * mass join on a saturated host a 100-node mesh spent 6 % of an agent's CPU re-verifying the same few
 * hundred suspicions (bench/profile-idle.mjs, PROFILE_WHOLE=1). A hit needs the same bytes and key,
 * so the cache changes no verdict; the oldest entry goes first.
 */
export const SUSPICIONS_VERIFIED_MAX = 1_024
/** Longest the change listeners wait after a change, so a burst of changes (a join wave) is told once. */
export const CHANGE_NOTIFY_MS = 50
/** Facts that move on their own and so never go into the record (receivers derive them). */
const MOVING_FACTS = ['uptimeSeconds'] as const
/** Connected peers asked for a push-pull per refresh while this node knows no live member. */
const LONELY_CONTACTS_MAX = 3

/** A member's record as held in the table: the signed bytes and what they say. */
export interface HeldRecord {
  readonly bytes: Uint8Array
  readonly record: MemberRecord
  readonly publicKey: Uint8Array
  readonly serial: string
  readonly notAfterMs: number
}

/** A suspicion as held: the accuser's signed bytes. */
export interface HeldProof {
  readonly bytes: Uint8Array
}

type Update = SwimUpdate<HeldRecord, HeldProof>
type Message = SwimMessage<HeldRecord, HeldProof>

/** What the driver needs. */
export interface MembershipDriverComponents {
  readonly host: Host
  /** Wraps the inbound handler so only admitted peers reach it (admission.ts). */
  readonly gated: (
    handler: (stream: Stream, connection: Connection) => Promise<void>,
  ) => (stream: Stream, connection: Connection) => Promise<void>
  readonly verifier: CertificateVerifier
  readonly signer: Signer
  /** Facts to announce (the node's facts and any authority it holds). */
  readonly facts: () => Record<string, string>
  /** Our dialable addresses. */
  readonly addrs: () => string[]
  /** The wall-clock second this host booted (0 when unknown). */
  readonly bootedAtS: () => number
  readonly clock: Clock
  readonly random: { float(): number }
  readonly log: Logger
  readonly traffic?: Traffic
}

/** Settings. */
export interface MembershipDriverInit {
  readonly self: string
  readonly swim?: Partial<SwimConfig>
}

/** Counters of the driver and its core. */
export interface MembershipCounters {
  readonly core: Swim<HeldRecord, HeldProof>['counters']
  /** Records and suspicions refused, by reason. */
  readonly refused: Readonly<Record<string, number>>
  /** Messages that did not decode. */
  readonly malformed: number
  /** Records skipped without verification because they were not news. */
  readonly notNews: number
  /** Suspicions taken without a second signature check: the same bytes were verified before. */
  readonly suspicionsCached: number
  /** Messages dropped by the stream pool (queue full, peer unreachable). */
  readonly sendDropped: number
  /** Lifeguard's local health score (0 = healthy; probe timings stretched score + 1 times). */
  readonly health: number
}

/** The driver. */
export interface MembershipDriver {
  start(): Promise<void>
  /** Says goodbye to the neighbours (a signed leave) and stops. */
  stop(): Promise<void>
  /** Stops for good without a word (this node's certificate was revoked: nobody would listen). */
  standDown(): void
  /** Re-signs this node's record if its addresses, facts or certificate changed. */
  refresh(): void
  /** A peer passed hello: exchange state with it. */
  contact(peer: string): void
  /** A member's certificate was revoked: drop it for good. */
  revoke(peer: string): void
  /** Every member, this node included, sorted by name. */
  members(): MemberView[]
  /** The peers this node keeps connections to (its probe subjects and observers). */
  neighbours(): string[]
  counters(): MembershipCounters
  /** Called on every join, state change and removal (after the table changed). */
  onChange(listener: () => void): () => void
}

/**
 * The core's timings from the node's configuration: `heartbeatIntervalMs` is the probe period,
 * `suspectAfterMs` the shortest suspicion before a member is dead, `deadAfterMs` the longest (no other
 * observer confirming). Everything else keeps the core's defaults.
 */
export function swimTimings(config: {
  readonly heartbeatIntervalMs: number
  readonly suspectAfterMs: number
  readonly deadAfterMs: number
}): Partial<SwimConfig> {
  const timings = {
    ...SWIM_DEFAULTS,
    probeIntervalMs: config.heartbeatIntervalMs,
    probeTimeoutMs: Math.max(1, Math.round(config.heartbeatIntervalMs * 0.4)),
    gossipIntervalMs: Math.max(1, Math.round(config.heartbeatIntervalMs / 5)),
    suspicionMinMs: config.suspectAfterMs,
    suspicionMaxScale: Math.max(1, config.deadAfterMs / config.suspectAfterMs),
  }
  // Forgotten only after every node could have timed the suspicion out (long timings stretch it).
  const longest = suspicionFloorMs(timings, timings.membersMax) * timings.suspicionMaxScale
  return { ...timings, forgetAfterMs: Math.max(SWIM_DEFAULTS.forgetAfterMs, Math.ceil(2 * longest)) }
}

/** Creates the driver. */
export function createMembershipDriver(
  components: MembershipDriverComponents,
  init: MembershipDriverInit,
): MembershipDriver {
  const { host, clock, log } = components
  const self = init.self
  const limited = createLogLimiter(log, clock)
  const refused: Record<string, number> = Object.create(null)
  let malformed = 0
  let notNews = 0
  const listeners = new Set<() => void>()
  let notifyTimer: Timer | undefined
  /** Tells the listeners once, {@link CHANGE_NOTIFY_MS} after the first change not yet told. */
  const notifyChange = (): void => {
    if (notifyTimer !== undefined) return
    notifyTimer = clock.setTimer(() => {
      notifyTimer = undefined
      for (const listener of listeners) listener()
    }, CHANGE_NOTIFY_MS)
  }
  /** Suspicions already verified: key → bytes and accuser key ({@link SUSPICIONS_VERIFIED_MAX}). */
  const verifiedSuspicions = new Map<string, { bytes: Uint8Array; publicKey: Uint8Array }>()
  let suspicionsCached = 0
  const suspicionVerified = (key: string, bytes: Uint8Array, publicKey: Uint8Array): boolean => {
    const hit = verifiedSuspicions.get(key)
    if (hit !== undefined && bytesEqual(hit.bytes, bytes) && bytesEqual(hit.publicKey, publicKey)) {
      suspicionsCached++
      return true
    }
    return false
  }
  const rememberSuspicion = (key: string, bytes: Uint8Array, publicKey: Uint8Array): void => {
    verifiedSuspicions.delete(key)
    // Copies: `bytes` is a view into the received frame (up to 1 MiB), which a kept view would pin.
    verifiedSuspicions.set(key, { bytes: Uint8Array.from(bytes), publicKey: Uint8Array.from(publicKey) })
    if (verifiedSuspicions.size > SUSPICIONS_VERIFIED_MAX) {
      const oldest = verifiedSuspicions.keys().next()
      if (oldest.done !== true) verifiedSuspicions.delete(oldest.value)
    }
  }
  const mono = (): number => clock.monotonicMs()
  /** Wall-clock ms for a monotonic reading (MemberView speaks wall time). */
  const wallOf = (monoMs: number): number => clock.nowMs() - (mono() - monoMs)

  let running = false
  /** Set by stop (inbound loops end); cleared by the next start. */
  let stopped = false
  /** Revoked: never start again. */
  let stoodDown = false
  let incarnation = clock.nowMs()
  let signedKey = ''

  const content = (): { addrs: string[]; facts: Record<string, string>; cert: SignedCertificate } => {
    const facts = { ...components.facts() }
    for (const key of MOVING_FACTS) delete facts[key]
    return {
      addrs: components.addrs().slice(0, RECORD_ADDRS_MAX),
      facts,
      cert: components.signer.certificate,
    }
  }
  const keyOf = (c: ReturnType<typeof content>): string =>
    JSON.stringify([c.addrs, Object.entries(c.facts).sort(), c.cert.certificate.serial])

  const sign = (at: number, left: boolean): HeldRecord => {
    const c = content()
    const bytes = createRecord(components.signer.key, c.cert, {
      addrs: c.addrs,
      facts: c.facts,
      bootedAtS: components.bootedAtS(),
      incarnation: at,
      left,
    })
    signedKey = keyOf(c)
    incarnation = at
    // Not verified: our own certificate may be expired or revoked, and peers will say so; we still list ourselves.
    const cert = c.cert.certificate
    const record: MemberRecord = {
      v: 1,
      name: cert.name,
      zone: cert.zone,
      roles: cert.roles,
      peerId: cert.peerId,
      addrs: c.addrs,
      facts: c.facts,
      bootedAtS: components.bootedAtS(),
      incarnation: at,
      left,
      cert: c.cert.bytes,
    }
    return held(bytes, record, c.cert)
  }

  let swim: Swim<HeldRecord, HeldProof> | undefined

  const streams = createPeerStreams({
    host,
    log,
    protocol: MEMBER_PROTOCOL,
    messageBytesMax: MEMBER_MESSAGE_BYTES_MAX,
    queueMax: MEMBER_QUEUE_MAX,
    timeoutMs: MEMBER_STREAM_TIMEOUT_MS,
    addressesOf: peer => swim?.get(peer)?.record.record.addrs ?? [],
    onSent: bytes => components.traffic?.count('membership', 'out', bytes.byteLength),
  })

  let timer: Timer | undefined
  let armedAt = Number.POSITIVE_INFINITY
  const arm = (): void => {
    if (swim === undefined || !running) return
    const at = swim.nextDeadlineMs()
    if (at >= armedAt && timer !== undefined) return
    timer?.cancel()
    timer = undefined
    armedAt = at
    if (!Number.isFinite(at)) return
    timer = clock.setTimer(onTimer, Math.max(0, at - mono()))
  }
  const onTimer = (): void => {
    timer = undefined
    armedAt = Number.POSITIVE_INFINITY
    if (swim === undefined || !running) return
    guarded(() => swim?.tick(mono()))
  }

  const hangUp = (id: string): void => {
    try {
      void host.hangUp(peerIdFromString(id)).catch(() => {})
    } catch {
      // not a peer id (cores in tests use other ids): nothing to hang up
    }
  }

  /** Most updates the core takes from a message other than a sync (its piggyback limit). */
  const piggybackMax = init.swim?.piggybackMax ?? SWIM_DEFAULTS.piggybackMax

  /** The member list as last built; rebuilt after the core changed or once it is a second old. */
  let cached: { list: MemberView[]; atMs: number } | undefined

  /** Runs `fn` against the core, carries out what it asked for, and re-arms the timer. */
  const guarded = (fn: () => void): void => {
    // The member list is built again only when the table may have changed: a record or suspicion
    // applied, or any effect but a send (a state change, a signature). A probe and its ack change
    // nothing a view shows but the last-seen time, which may lag by up to MEMBERS_CACHE_MS.
    const appliedBefore = swim?.counters.updatesApplied
    try {
      fn()
      if (apply() || swim?.counters.updatesApplied !== appliedBefore) cached = undefined
    } catch (err) {
      cached = undefined
      log.error({ err: (err as Error).message }, 'membership core failed')
    }
    arm()
  }

  const toWire = (update: Update): WireUpdate =>
    update.kind === 'alive'
      ? { kind: 'record', bytes: update.record.bytes }
      : { kind: 'suspicion', bytes: update.proof.bytes }

  const encode = (message: Message): Uint8Array => {
    // Same fields on both sides but the updates: the core's hold records, the wire's their bytes.
    const wire: WireMessage = { ...message, updates: message.updates.map(toWire) }
    return encodeMemberMessage(wire)
  }

  /** Carries out the core's effects; true when any of them was more than a send (the table may have changed). */
  const apply = (): boolean => {
    let more = false
    // Signing steps the core again, which may ask for more: bounded, since each round signs once.
    for (let round = 0; round < 8 && swim !== undefined; round++) {
      const effects: SwimEffect<HeldRecord, HeldProof>[] = swim.drain()
      if (effects.length === 0) return more
      let changed = false
      for (const effect of effects) {
        if (effect.type !== 'send') more = true
        switch (effect.type) {
          case 'send':
            if (running || effect.message.type === 'gossip') streams.send(effect.to, encode(effect.message))
            break
          case 'sign-self':
            swim.step(
              { type: 'local', incarnation: effect.incarnation, record: sign(effect.incarnation, false) },
              mono(),
            )
            log.info({ incarnation: effect.incarnation }, 'refuted a suspicion of this node')
            break
          case 'sign-suspect': {
            const bytes = createSuspicion(components.signer.key, {
              subject: effect.id,
              incarnation: effect.incarnation,
              from: self,
            })
            const update: Update = {
              kind: 'suspect',
              id: effect.id,
              incarnation: effect.incarnation,
              from: self,
              proof: { bytes },
            }
            swim.step({ type: 'message', from: self, message: { type: 'gossip', updates: [update] } }, mono())
            break
          }
          case 'joined':
            changed = true
            log.info({ member: nameOf(effect.id) }, 'member joined')
            break
          case 'state':
            changed = true
            log.info({ member: nameOf(effect.id), from: effect.from, to: effect.to }, 'member state changed')
            if (effect.to === 'dead' || effect.to === 'left') streams.drop(effect.id, `member ${effect.to}`)
            // A member dead here may sit behind a partition: a connection to it then holds unacked
            // data in TCP's retransmit queue, its timer backed off to seconds, and after the heal
            // nothing would flow on it until that timer fires (test/hosts saw 12 s). Closed now, the
            // first contact after the heal is a fresh dial.
            if (effect.to === 'dead') hangUp(effect.id)
            break
          case 'removed':
            changed = true
            log.info({ member: nameOf(effect.id), reason: effect.reason }, 'member removed')
            streams.drop(effect.id, 'member removed')
            break
        }
      }
      if (changed) notifyChange()
    }
    return more
  }

  const nameOf = (id: string): string => swim?.get(id)?.record.record.name ?? id

  const count = (reason: RecordRejection | 'unknown-accuser' | 'bad-suspicion' | 'wrong-sender'): void => {
    refused[reason] = (refused[reason] ?? 0) + 1
  }

  /** Turns wire updates into verified core updates; drops (and counts) what does not verify. */
  const verifyUpdates = (from: string, updates: readonly WireUpdate[], most: number): Update[] => {
    const out: Update[] = []
    const core = swim
    if (core === undefined) return out
    // Only as many as the core takes from this kind of message are verified (a sync's whole list, a
    // piggyback's piggybackMax), and each record or suspicion once per frame: 512 copies of one valid
    // record cost 512 signature checks before (the fuzz campaign, docs/fuzz.md).
    const seen = new Set<string>()
    for (const u of updates) {
      if (out.length >= most) break
      if (u.kind === 'record') {
        const head = peekRecord(u.bytes)
        if (head === undefined) {
          count('malformed')
          continue
        }
        const key = `r:${head.peerId}@${head.incarnation}`
        if (seen.has(key) || !core.wants(head.peerId, head.incarnation)) {
          notNews++
          continue
        }
        seen.add(key)
        const verdict = verifyRecord(u.bytes, components.verifier, clock.nowMs())
        if (!verdict.ok) {
          count(verdict.reason)
          limited.log(
            'debug',
            `record:${from}`,
            { peer: from, reason: verdict.reason, detail: verdict.detail },
            'member record refused',
          )
          continue
        }
        const v = verdict.verified
        out.push({
          kind: 'alive',
          id: v.record.peerId,
          incarnation: v.record.incarnation,
          left: v.record.left,
          record: held(v.bytes, v.record, v.certificate),
        })
      } else {
        let opened: ReturnType<typeof openSuspicion>
        try {
          opened = openSuspicion(u.bytes)
        } catch (err) {
          if (!(err instanceof DecodeError)) throw err
          count('bad-suspicion')
          continue
        }
        const key = `s:${opened.suspicion.subject}@${opened.suspicion.incarnation}/${opened.suspicion.from}`
        if (seen.has(key)) continue
        seen.add(key)
        const accuser = core.get(opened.suspicion.from)
        if (accuser === undefined) {
          count('unknown-accuser')
          continue
        }
        const publicKey = accuser.record.publicKey
        if (!suspicionVerified(key, u.bytes, publicKey)) {
          if (!verifySuspicion(opened, publicKey)) {
            count('bad-signature')
            continue
          }
          rememberSuspicion(key, u.bytes, publicKey)
        }
        out.push({
          kind: 'suspect',
          id: opened.suspicion.subject,
          incarnation: opened.suspicion.incarnation,
          from: opened.suspicion.from,
          proof: { bytes: u.bytes },
        })
      }
    }
    return out
  }

  const receive = (from: string, frame: Uint8Array): void => {
    components.traffic?.count('membership', 'in', frame.byteLength)
    let wire: WireMessage
    try {
      wire = decodeMemberMessage(frame)
    } catch (err) {
      if (!(err instanceof DecodeError)) throw err
      malformed++
      limited.log('warn', `bad:${from}`, { peer: from, detail: err.message }, 'bad membership message')
      return
    }
    guarded(() => {
      const most = wire.type === 'sync' ? Number.POSITIVE_INFINITY : piggybackMax
      const message: Message = { ...wire, updates: verifyUpdates(from, wire.updates, most) }
      swim?.step({ type: 'message', from, message }, mono())
    })
  }

  const handle = async (stream: Stream, connection: Connection): Promise<void> => {
    const from = connection.remotePeer.toString()
    const lp = lpStream(stream, { maxDataLength: MEMBER_MESSAGE_BYTES_MAX })
    try {
      while (!stopped) receive(from, (await lp.read()).subarray())
    } catch {
      // Stream ended or sent an oversized frame; the peer opens a new one when it next speaks.
    }
  }

  const view = (m: ReturnType<Swim<HeldRecord, HeldProof>['members']>[number]): MemberView => {
    const r = m.record.record
    const nowS = Math.floor(clock.nowMs() / 1000)
    const facts =
      r.bootedAtS > 0 && r.bootedAtS <= nowS
        ? { ...r.facts, uptimeSeconds: String(nowS - r.bootedAtS) }
        : r.facts
    return {
      name: r.name,
      peerId: r.peerId,
      zone: r.zone,
      roles: r.roles,
      addrs: r.addrs,
      state: m.state,
      lastSeenMs: m.id === self ? clock.nowMs() : wallOf(m.lastAliveMs),
      facts: m.id === self ? components.facts() : facts,
      certificateNotAfterMs: m.record.notAfterMs,
    }
  }

  return {
    async start() {
      if (running || stoodDown) return
      stopped = false
      await host.handle(MEMBER_PROTOCOL, components.gated(handle), {
        maxInboundStreams: MEMBER_STREAMS_PER_CONNECTION_MAX,
      })
      incarnation = Math.max(incarnation + 1, clock.nowMs())
      const own = sign(incarnation, false)
      swim = createSwim<HeldRecord, HeldProof>({
        self,
        incarnation,
        record: own,
        config: init.swim,
        random: () => components.random.float(),
        nowMs: mono(),
        updateBytes: u => (u.kind === 'alive' ? u.record.bytes.byteLength : u.proof.bytes.byteLength) + 8,
        messageBytesMax: MEMBER_MESSAGE_BYTES_MAX / 2,
      })
      running = true
      arm()
    },

    async stop() {
      if (!running) return
      running = false
      timer?.cancel()
      timer = undefined
      const core = swim
      if (core !== undefined) {
        try {
          const next = incarnation + 1
          core.step({ type: 'leave', incarnation: next, record: sign(next, true) }, mono())
          apply()
          await sleep(clock, LEAVE_FLUSH_MS)
        } catch (err) {
          log.debug({ err: (err as Error).message }, 'goodbye not sent')
        }
      }
      stopped = true
      notifyTimer?.cancel()
      notifyTimer = undefined
      streams.dropAll('stopping')
      await host.unhandle(MEMBER_PROTOCOL).catch(() => {})
    },

    standDown() {
      running = false
      stopped = true
      stoodDown = true
      timer?.cancel()
      timer = undefined
      notifyTimer?.cancel()
      notifyTimer = undefined
      streams.dropAll('revoked')
    },

    refresh() {
      if (!running || swim === undefined) return
      if (swim.neighbours().length === 0) {
        // Alone although connected (the first exchange with the bootstrap peer was lost): ask the
        // connected peers again; the core spaces the tries to one per peer per two probe intervals.
        const core = swim
        const peers = [...new Set(host.getConnections().map(c => c.remotePeer.toString()))]
        for (const peer of peers.slice(0, LONELY_CONTACTS_MAX))
          if (peer !== self) guarded(() => core.step({ type: 'contact', id: peer }, mono()))
      }
      if (keyOf(content()) === signedKey) return
      const next = incarnation + 1
      const core = swim
      guarded(() => core.step({ type: 'local', incarnation: next, record: sign(next, false) }, mono()))
    },

    contact(peer) {
      if (!running || swim === undefined || peer === self) return
      const core = swim
      guarded(() => core.step({ type: 'contact', id: peer }, mono()))
    },

    revoke(peer) {
      if (swim === undefined) return
      const core = swim
      guarded(() => core.step({ type: 'revoke', id: peer }, mono()))
    },

    members() {
      if (swim === undefined) return []
      if (cached !== undefined && mono() - cached.atMs < MEMBERS_CACHE_MS) return cached.list
      const list = swim
        .members()
        .map(view)
        .sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : a.peerId < b.peerId ? -1 : 1))
      cached = { list, atMs: mono() }
      return list
    },

    neighbours: () => swim?.neighbours() ?? [],

    counters: () => ({
      core: swim?.counters ?? emptyCounters,
      refused: { ...refused },
      malformed,
      notNews,
      suspicionsCached,
      sendDropped: streams.dropped(),
      health: swim?.localHealth() ?? 0,
    }),

    onChange(listener) {
      listeners.add(listener)
      return () => listeners.delete(listener)
    },
  }
}

function held(bytes: Uint8Array, record: MemberRecord, certificate: SignedCertificate): HeldRecord {
  const cert = certificate.certificate
  return { bytes, record, publicKey: cert.publicKey, serial: cert.serial, notAfterMs: cert.notAfterMs }
}

const emptyCounters = Object.freeze(zeroSwimCounters())
