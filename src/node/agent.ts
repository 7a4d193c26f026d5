/**
 * The mesh node: the one driver that feeds libp2p events and timers into the pure cores (certificate
 * verification, request validation, membership, the CA issuer, zone authority) and carries out their
 * effects. It is also the library an appliance embeds: {@link createMeshNode} takes plain options (no
 * files needed), `registerAction` adds in-process actions and `exec` issues requests.
 */
import type { Connection, PeerId, Stream } from '@libp2p/interface'
import { peerIdFromString } from '@libp2p/peer-id'
import { lpStream } from '@libp2p/utils'
import { multiaddr } from '@multiformats/multiaddr'
import { createCertificateVerifier } from '../ca/certificate.js'
import { bytesEqual, toHex } from '../ca/hash.js'
import {
  createIssuer,
  type Issuer,
  type IssuerEffect,
  type IssuerInput,
  type PendingSummary,
} from '../ca/issuer.js'
import {
  createRevocationLookup,
  newer,
  type RevocationLookup,
  type SignedRevocationList,
  verifyRevocationList,
} from '../ca/revocation.js'
import type { SignedCertificate } from '../ca/types.js'
import { DEFAULT_POLICY, parsePolicy } from '../gossip/authorize.js'
import type { TargetFilter } from '../gossip/filter.js'
import { createMembership, expectedNodes, type Membership, type MemberView } from '../gossip/membership.js'
import { createHeartbeat, verifyHeartbeat } from '../gossip/presence.js'
import { createReplayCache } from '../gossip/replay.js'
import { createReply, verifyReply } from '../gossip/reply.js'
import { type CollectEvent, createReplyCollector, type ExecResult } from '../gossip/reply-collector.js'
import { createRequest } from '../gossip/request.js'
import {
  createRequestValidator,
  outcomeCode,
  type RequestOutcome,
  type RequestRefusalCode,
  type RequestValidator,
  toTopicValidatorResult,
  type VerifiedRequest,
} from '../gossip/validate.js'
import { MESH_VERSION } from '../version.js'
import {
  type ActionHandler,
  type ActionHandlerOptions,
  type ActionRegistry,
  createActionRegistry,
} from './actions.js'
import { type Admission, createAdmission } from './admission.js'
import { type AuthorityDriver, createAuthorityDriver, decodeRoster } from './authority-driver.js'
import type { AgentConfig } from './config.js'
import { createEnrolment, type Enrolment } from './enrolment.js' // enrolment (issue 3)
import { createFactsProvider, type FactsProvider } from './facts.js'
import { createHost, type Host, TOPICS } from './host.js'
import type { CaMaterial, Identity } from './keys.js'
import { libp2pKeyOf, secureRandomBytes } from './keys.js'
import { type Logger, silentLogger } from './log.js'
import { createReplyRouter, REPLY_PROTOCOL, type ReplyRouter } from './replies.js'

/** Persistence the node asks for; the agent writes files, an embedding program may do anything. */
export interface NodeStore {
  saveIssuerState?(state: ReturnType<Issuer['state']>): Promise<void>
  saveRevocations?(bytes: Uint8Array): Promise<void>
  saveNodeCertificate?(certificate: SignedCertificate): Promise<void>
  /** The zone-authority roster (certified members seen), so a restart still knows every voter. */
  saveRoster?(bytes: Uint8Array): Promise<void>
}

/** Options of {@link createMeshNode}. */
export interface MeshNodeInit {
  readonly node: Identity
  readonly caPublicKey: Uint8Array
  /** Identity that signs `exec` requests; default the node's own when it has the operator role. */
  readonly operator?: Identity
  /** CA material; makes this node able to issue certificates and revoke. */
  readonly ca?: CaMaterial
  /** The newest revocation list known at start. */
  readonly revocations?: Uint8Array
  /** A libp2p pnet pre-shared key file's contents: an outer fence only peers with the key get through. */
  readonly pnetKey?: Uint8Array
  /** The roster saved by an earlier run (see NodeStore.saveRoster). */
  readonly roster?: Uint8Array
  readonly config: AgentConfig
  /** `memory` for in-process tests; default `tcp`. */
  readonly transport?: 'tcp' | 'memory'
  readonly store?: NodeStore
  readonly logger?: Logger
  /** Wall clock, ms since the epoch; injectable for tests. */
  readonly nowMs?: () => number
}

/** Options of {@link MeshNode.exec}. */
export interface ExecOptions {
  readonly action: string
  readonly args?: readonly string[]
  readonly filter?: TargetFilter
  /** How long to wait for replies; also the request's lifetime. */
  readonly timeoutMs: number
  readonly signal?: AbortSignal
  /** Called for each ack, completion, duplicate or stray reply as it arrives. */
  readonly onEvent?: (
    event: CollectEvent | { kind: 'published'; id: string; expected: readonly string[] },
  ) => void
}

/** One zone as `mesh zones` shows it. */
export interface ZoneView {
  readonly zone: string
  readonly members: readonly string[]
  readonly authority: string | null
  readonly epoch: number
  readonly leaseRemainingMs: number
}

/** Counters for introspection (`mesh status`) and benchmarks. */
export interface NodeCounters {
  readonly requests: Readonly<Record<string, number>>
  readonly presenceRefused: number
  readonly repliesRefused: number
  /** Connections dropped because an admitted peer had no gossip stream. */
  readonly gossipRepairs: number
  /** Requests not run because they were issued before this process started (replay protection). */
  readonly notRunBeforeStart: number
}

/** A running mesh node. */
export interface MeshNode {
  readonly name: string
  readonly zone: string
  readonly peerId: string
  readonly host: Host
  readonly admission: Admission
  readonly actions: ActionRegistry
  /** Idempotent. */
  start(): Promise<void>
  /** Idempotent; stops timers, actions and libp2p. */
  stop(): Promise<void>
  /** Our dialable addresses, each with /p2p/. */
  addrs(): string[]
  /** Dials a peer by multiaddr (with /p2p/). */
  dial(addr: string, signal?: AbortSignal): Promise<void>
  /** The membership table including this node. */
  members(): MemberView[]
  zones(): ZoneView[]
  /**
   * Issues a signed request and collects the replies. Rejects only for local problems: no operator,
   * not running, or {@link ExecRefusedError} when this node's own validation refuses the request
   * (then nothing is published).
   */
  exec(options: ExecOptions): Promise<ExecResult>
  /** `{ epoch }` while this node holds `zone`'s authority lease. */
  isAuthority(zone: string): { epoch: number } | null
  /**
   * Calls `listener` when this node gains (`held: true`) or loses the authority of `zone`, so an
   * embedding appliance can run singleton duties. Returns an unsubscribe function.
   */
  onAuthority(
    zone: string,
    listener: (event: { zone: string; epoch: number; held: boolean }) => void,
  ): () => void
  /** Adds an in-process action (for embedding programs). */
  registerAction(name: string, handler: ActionHandler, options?: ActionHandlerOptions): void
  /** The CA issuer on CA nodes. */
  readonly issuer: IssuerDriver | undefined
  /** Current certificate of this node (renewal replaces it). */
  certificate(): SignedCertificate
  /** Swaps in a renewed certificate of this node's key (hello, heartbeats, replies) and saves it. @throws for another key's certificate */
  replaceCertificate(signed: SignedCertificate): Promise<void>
  /** Join and CA protocols and certificate renewal (src/node/enrolment.ts). */
  readonly enrolment: Enrolment
  counters(): NodeCounters
  /** Whether `serial` is on the newest revocation list this node has. */
  isRevoked(serial: string): boolean
  /** Adopts a revocation list if it is valid and newer than ours. */
  offerRevocations(bytes: Uint8Array): boolean
}

/** The driver around the issuer core: serialises inputs and carries out effects in order. */
export interface IssuerDriver {
  /** Feeds one input and returns the effects addressed to `requestId` after persisting. */
  run(input: IssuerInput): Promise<IssuerEffect[]>
  listPending(): PendingSummary[]
}

const REQUEST_TOPIC_VALIDATOR_LOG_EVERY = 100
/** Members per configured heartbeat period before the period stretches (see heartbeatIntervalNow). */
export const HEARTBEAT_MEMBERS_PER_INTERVAL = 5
/** Most the heartbeat period stretches, as a multiple of the configured one. */
export const HEARTBEAT_STRETCH_MAX = 10

/** {@link MeshNode.exec} refused to publish a request its own validation pipeline refuses; `code` says why. */
export class ExecRefusedError extends Error {
  override name = 'ExecRefusedError'
  readonly code: RequestRefusalCode
  constructor(code: RequestRefusalCode, message: string) {
    super(message)
    this.code = code
  }
}

function refusalMessage(
  outcome: Extract<RequestOutcome, { kind: 'refused' }>,
  timeoutMs: number,
  requestLifetimeMsMax: number,
): string {
  if (outcome.code === 'lifetime-too-long') {
    return `a timeout of ${timeoutMs} ms is longer than the longest request lifetime nodes accept (requestLifetimeMsMax, ${requestLifetimeMsMax} ms)`
  }
  return `request refused by this node's own checks (${outcome.code}): ${outcome.detail}`
}

/** The heartbeat fact by which a zone authority announces itself (`zone:epoch`). */
export const AUTHORITY_FACT = 'meshAuthority'

function parseAuthorityFact(value: string | undefined): { zone: string; epoch: number } | undefined {
  if (value === undefined) return undefined
  const at = value.lastIndexOf(':')
  const epoch = Number(value.slice(at + 1))
  if (at <= 0 || !Number.isSafeInteger(epoch)) return undefined
  return { zone: value.slice(0, at), epoch }
}

/** Creates (but does not start) a mesh node. */
export async function createMeshNode(init: MeshNodeInit): Promise<MeshNode> {
  const config = init.config
  const log = init.logger ?? silentLogger()
  const now = init.nowMs ?? Date.now
  let certificate = init.node.certificate // replaced on renewal (enrolment)
  const nodeCert = () => certificate.certificate
  const store = init.store ?? {}

  // Revocation list: the newest valid one we have seen.
  let revocationList: SignedRevocationList | undefined
  let revocationLookup: RevocationLookup = createRevocationLookup(undefined)
  const isRevoked = (serial: string): boolean => revocationLookup.isRevoked(serial)

  const verifier = createCertificateVerifier({
    caPublicKey: init.caPublicKey,
    isRevoked,
    maxClockSkewMs: config.maxClockSkewMs,
  })

  let membership: Membership | undefined
  let admission: Admission | undefined
  let authority: AuthorityDriver | undefined
  /** When each connected peer passed hello (for the gossip-stream repair in maintainConnections). */
  const admittedAt = new Map<string, number>()
  let gossipRepairs = 0
  /** Wall clock at start; requests issued earlier are not run (see execute). */
  let startedAtMs = Number.POSITIVE_INFINITY
  let notRunBeforeStart = 0

  const adoptRevocations = (bytes: Uint8Array, origin: string): boolean => {
    const verdict = verifyRevocationList(bytes, init.caPublicKey)
    if (!verdict.ok) {
      log.warn({ origin, reason: verdict.reason }, 'revocation list refused')
      return false
    }
    if (!newer(verdict.signed.list, revocationList?.list)) return false
    revocationList = verdict.signed
    revocationLookup = createRevocationLookup(verdict.signed.list)
    const serials = new Set(verdict.signed.list.entries.map(e => e.serial))
    log.info(
      { version: verdict.signed.list.version, entries: serials.size, origin },
      'revocation list adopted',
    )
    admission?.revokeSerials(serials)
    for (const serial of serials) membership?.revoke(serial)
    for (const entry of verdict.signed.list.entries) authority?.forget(entry.peerId)
    void store
      .saveRevocations?.(bytes)
      .catch(err => log.error({ err: String(err) }, 'cannot save revocations'))
    return true
  }
  if (init.revocations !== undefined) adoptRevocations(init.revocations, 'home')

  admission = createAdmission({
    ownCertificate: () => certificate.bytes,
    verify: verifier,
    nowMs: now,
    helloTimeoutMs: config.helloTimeoutMs,
    revocations: {
      current: () => revocationList?.bytes,
      offer: bytes => {
        adoptRevocations(bytes, 'hello')
      },
    },
    log: log.child({ component: 'admission' }),
    onAdmitted: admittedPeer => {
      admittedAt.set(admittedPeer, now())
      authority?.hint(admittedPeer, 'alive')
      scheduleHeartbeat()
    },
  })

  const host = await createHost({
    privateKey: libp2pKeyOf(init.node.key),
    listen: config.listen,
    announce: config.announce,
    bootstrap: config.bootstrap,
    mdns: config.mdns,
    transport: init.transport,
    connectionsMax: config.connectionsMax,
    gater: admission.gater,
    pnetKey: init.pnetKey,
    seenTtlMs: config.requestLifetimeMsMax + 2 * config.maxClockSkewMs,
  })
  const peerId = host.peerId.toString()

  const facts: FactsProvider = createFactsProvider({ meshVersion: MESH_VERSION, tags: config.tags })
  const actions = createActionRegistry({
    facts: () => facts.current(),
    actions: config.actions,
    limits: {
      timeoutMsDefault: config.actionTimeoutMs,
      outputBytesMaxDefault: config.actionOutputBytesMax,
      concurrentRunsMax: config.actionConcurrencyMax,
    },
    log: (level, message, context) => log[level]({ component: 'actions', ...context }, message),
  })

  membership = createMembership({
    timings: {
      heartbeatIntervalMs: config.heartbeatIntervalMs,
      suspectAfterMs: config.suspectAfterMs,
      deadAfterMs: config.deadAfterMs,
      forgetAfterMs: Math.max(config.deadAfterMs * 30, 5 * 60_000),
    },
  })

  const policy =
    config.policy.length === 0
      ? DEFAULT_POLICY
      : parsePolicy({ rules: [...DEFAULT_POLICY.rules, ...config.policy] })
  const replay = createReplayCache({ maxClockSkewMs: config.maxClockSkewMs })
  const validator: RequestValidator = createRequestValidator(
    {
      verifier,
      replay,
      self: () => ({
        name: nodeCert().name,
        zone: nodeCert().zone,
        facts: publishedFacts(),
        authority: zoneAuthority.isAuthority(nodeCert().zone) !== null,
      }),
      policy: () => policy,
    },
    {
      maxClockSkewMs: config.maxClockSkewMs,
      requestLifetimeMsMax: config.requestLifetimeMsMax,
      requestBytesMax: config.requestBytesMax,
    },
  )
  const router: ReplyRouter = createReplyRouter({
    host,
    log: log.child({ component: 'replies' }),
    nowMs: now,
    self: peerId,
  })
  const counters = { presenceRefused: 0, repliesRefused: 0 }
  authority = createAuthorityDriver({
    host,
    self: peerId,
    config,
    members: () => membership?.list() ?? [],
    gated: handler => admission.gated(handler),
    log: log.child({ component: 'authority' }),
    selfEntry: () => ({ peerId, zone: nodeCert().zone, notAfterMs: nodeCert().notAfterMs }),
    roster: (init.roster === undefined ? [] : decodeRoster(init.roster)).filter(
      e => !revocationLookup.isPeerRevoked(e.peerId),
    ),
    saveRoster: store.saveRoster === undefined ? undefined : bytes => store.saveRoster!(bytes),
    rosterSettleMs: 2 * config.heartbeatIntervalMs + 500,
  })
  const zoneAuthority = authority
  // Others learn who holds a zone from our heartbeat, at once rather than after an interval.
  zoneAuthority.onChange(() => scheduleHeartbeat())
  /** Names of the nodes currently announcing a zone's authority (for `--once` expectations). */
  const currentAuthorities = (): Set<string> => {
    const names = new Set<string>()
    for (const zone of node.zones()) if (zone.authority !== null) names.add(zone.authority)
    return names
  }
  /** Facts as published: the node's facts plus the zone authority it holds, if any. */
  const publishedFacts = (): Record<string, string> => {
    const held = zoneAuthority.isAuthority(nodeCert().zone)
    if (held === null) return { ...facts.current() }
    return { ...facts.current(), [AUTHORITY_FACT]: `${nodeCert().zone}:${held.epoch}` }
  }

  // ---- presence ----
  // Starts at the wall clock so it keeps increasing across restarts (peers drop stale sequence numbers).
  let heartbeatSeq = now()
  let heartbeatTimer: NodeJS.Timeout | undefined
  let earlyHeartbeat: NodeJS.Timeout | undefined
  const ourAddrs = (): string[] => host.getMultiaddrs().map(a => a.toString())
  const publishHeartbeat = (): void => {
    if (!started) return
    const bytes = createHeartbeat(init.node.key, certificate, {
      addrs: ourAddrs().slice(0, 16),
      facts: publishedFacts(),
      seq: heartbeatSeq++,
      sentAtMs: now(),
      intervalMs: heartbeatIntervalNow(),
    })
    const self = verifyHeartbeat(bytes, {
      verifier,
      nowMs: now(),
      maxClockSkewMs: config.maxClockSkewMs,
      maxAgeMs: config.deadAfterMs,
    })
    if (self.ok) membership?.step(self.verified, now())
    host.services.pubsub.publish(TOPICS.presence, bytes).catch(err => {
      log.debug({ err: String(err) }, 'heartbeat not published')
    })
  }
  /**
   * The heartbeat period now: the configured one for up to {@link HEARTBEAT_MEMBERS_PER_INTERVAL}
   * members, stretched in proportion beyond (at most {@link HEARTBEAT_STRETCH_MAX} times). Every node
   * beating every second costs each node O(N) messages a second (and the mesh O(N²)): measured at 10
   * nodes, 1 s heartbeats took 25 of 37 ms/s of CPU per node. Heartbeats announce their period, so
   * receivers stretch their timeouts to match.
   */
  function heartbeatIntervalNow(): number {
    // Alive members only: after a large mesh shrinks, the period must shrink too.
    const members = membership?.list().filter(m => m.state === 'alive').length ?? 1
    const stretch = Math.min(
      HEARTBEAT_STRETCH_MAX,
      Math.max(1, Math.ceil(members / HEARTBEAT_MEMBERS_PER_INTERVAL)),
    )
    return config.heartbeatIntervalMs * stretch
  }
  const heartbeatLoop = (): void => {
    publishHeartbeat()
    heartbeatTimer = setTimeout(heartbeatLoop, heartbeatIntervalNow())
    heartbeatTimer.unref()
  }
  /** A newly admitted peer learns about us at once instead of after a full interval. */
  function scheduleHeartbeat(): void {
    if (earlyHeartbeat !== undefined || !started) return
    earlyHeartbeat = setTimeout(() => {
      earlyHeartbeat = undefined
      publishHeartbeat()
    }, 50)
  }

  // ---- requests ----
  const signer = {
    key: init.node.key,
    get certificate() {
      return certificate
    },
  }
  const sendDone = (
    request: VerifiedRequest,
    done: {
      status: 'ok' | 'failed' | 'denied' | 'error'
      exitCode: number | null
      output: string
      durationMs: number
      reason?: string
      epoch?: number
    },
  ): void => {
    router.send(
      request.idHex,
      createReply(signer, { kind: 'done', requestId: request.body.id, sentAtMs: now(), ...done }),
    )
  }
  const execute = async (request: VerifiedRequest): Promise<void> => {
    router.send(
      request.idHex,
      createReply(signer, { kind: 'ack', requestId: request.body.id, sentAtMs: now() }),
    )
    if (request.body.issuedAtMs < startedAtMs) {
      // The replay cache lives in memory: a request issued before this process started may already
      // have run in the previous one, so it is not run again (at most once beats at least once here).
      notRunBeforeStart += 1
      const reason =
        'issued before this agent (re)started; not run, as it may already have run before the restart'
      sendDone(request, { status: 'error', exitCode: null, output: '', durationMs: 0, reason })
      return
    }
    let epoch: number | undefined
    if (request.body.filter.once === true) {
      // Checked at the moment the action starts: the lease may have ended since validation.
      const held = zoneAuthority.isAuthority(nodeCert().zone)
      if (held === null) {
        const reason = 'no longer the zone authority; not run'
        sendDone(request, { status: 'error', exitCode: null, output: '', durationMs: 0, reason })
        return
      }
      epoch = held.epoch
    }
    const startedAt = now()
    const remainingMs = Math.max(1, request.body.expiresAtMs - startedAt)
    const result = await actions.run(request.body.action, request.body.args, {
      timeoutMs: remainingMs,
      request: { id: request.idHex, operator: request.issuer.certificate.name },
    })
    sendDone(request, {
      status: result.status,
      exitCode: result.exitCode,
      output: result.output,
      durationMs: result.durationMs,
      epoch,
      reason:
        result.errorCode !== undefined
          ? `${result.errorCode}${result.timedOut ? ' (time limit)' : ''}`
          : result.timedOut
            ? 'time limit reached; process tree killed'
            : undefined,
    })
  }
  const requestCounters: Record<string, number> = {}
  let validated = 0
  const handleRequest = (bytes: Uint8Array, upstream: string | undefined): RequestOutcome => {
    const outcome = validator.validate(bytes, now())
    const code = outcomeCode(outcome)
    requestCounters[code] = (requestCounters[code] ?? 0) + 1
    validated += 1
    if (outcome.kind === 'refused') {
      if (validated % REQUEST_TOPIC_VALIDATOR_LOG_EVERY === 1 || outcome.action === 'reject') {
        log.info({ code: outcome.code, upstream, detail: outcome.detail }, 'request refused')
      }
      return outcome
    }
    const request = outcome.request
    router.remember(
      request.idHex,
      upstream,
      request.body.replyTo,
      request.body.expiresAtMs + config.maxClockSkewMs,
    )
    if (outcome.kind === 'accept-execute') {
      log.info(
        { request: request.idHex, action: request.body.action, operator: request.issuer.certificate.name },
        'running request',
      )
      queueMicrotask(() => void execute(request))
    } else if (outcome.kind === 'accept-denied') {
      log.warn(
        {
          request: request.idHex,
          action: request.body.action,
          operator: request.issuer.certificate.name,
          reason: outcome.reason,
        },
        'request denied',
      )
      queueMicrotask(() => {
        router.send(
          request.idHex,
          createReply(signer, { kind: 'ack', requestId: request.body.id, sentAtMs: now() }),
        )
        sendDone(request, {
          status: 'denied',
          exitCode: null,
          output: '',
          durationMs: 0,
          reason: outcome.reason,
        })
      })
    }
    return outcome
  }

  // ---- CA issuer ----
  let issuerTick: (() => void) | undefined
  let issuerDriver: IssuerDriver | undefined
  if (init.ca !== undefined) {
    const issuer = createIssuer({
      caKey: init.ca.caKey,
      ticketSecret: init.ca.ticketSecret,
      state: init.ca.issuerState,
      randomBytes: secureRandomBytes,
      config: { certificateTtlMs: config.certificateTtlMs, maxClockSkewMs: config.maxClockSkewMs },
    })
    let chain: Promise<unknown> = Promise.resolve()
    /** Set when a persist failed: memory is then ahead of disk, so the CA stops until restarted. */
    let broken: Error | undefined
    /** Carries out drained effects in order; returns the answers (replies) for the caller. */
    const carryOut = async (effects: IssuerEffect[]): Promise<IssuerEffect[]> => {
      const answers: IssuerEffect[] = []
      // Order matters: persist (e.g. a used ticket nonce) before anyone is told the result.
      for (const effect of effects) {
        if (effect.type === 'persist') {
          try {
            await store.saveIssuerState?.(effect.state)
          } catch (err) {
            broken = err as Error
            log.error(
              { err: broken.message },
              'cannot save the CA state; the CA stops until the agent restarts',
            )
            return []
          }
        } else if (effect.type === 'publish-revocations') {
          adoptRevocations(effect.list, 'issuer')
          if (started) await host.services.pubsub.publish(TOPICS.revocation, effect.list).catch(() => {})
        } else answers.push(effect)
      }
      return answers
    }
    const serialised = <T>(work: () => Promise<T>): Promise<T> => {
      const next = chain.then(() => {
        if (broken !== undefined) {
          throw new Error(
            `the CA state could not be saved (${broken.message}); fix the disk and restart the agent`,
          )
        }
        return work()
      })
      chain = next.catch(() => {})
      return next
    }
    issuerDriver = {
      run: input =>
        serialised(() => {
          issuer.step(input, now())
          return carryOut(issuer.drainEffects())
        }),
      listPending: () => issuer.listPending(),
    }
    if (revocationList === undefined) adoptRevocations(issuer.revocationList().bytes, 'issuer')
    issuerTick = () => {
      // Through the same queue as every other input, so snapshots reach the disk in order.
      serialised(() => {
        issuer.tick(now())
        return carryOut(issuer.drainEffects())
      }).catch(() => {})
    }
  }

  // ---- connections ----
  const TARGET_PEERS = 6
  const dialing = new Set<string>()
  const dialPeer = async (target: PeerId | ReturnType<typeof multiaddr>[], key: string): Promise<void> => {
    if (dialing.has(key) || !started) return
    dialing.add(key)
    try {
      await host.dial(target, { signal: AbortSignal.timeout(config.helloTimeoutMs) })
    } catch (err) {
      log.debug({ peer: key, err: (err as Error).message }, 'dial failed')
    } finally {
      dialing.delete(key)
    }
  }
  const maintainConnections = (): void => {
    // An admitted peer with no gossip stream (e.g. its stream setup failed under load) would never hear
    // or be heard: drop the connection so that a fresh one sets the streams up again.
    const gossipPeers = new Set(host.services.pubsub.getPeers().map(p => p.toString()))
    for (const [peer, at] of admittedAt) {
      if (host.getConnections(peerIdFromString(peer)).length === 0) {
        admittedAt.delete(peer)
      } else if (!gossipPeers.has(peer) && now() - at > 2 * config.helloTimeoutMs) {
        admittedAt.delete(peer)
        gossipRepairs += 1
        log.warn({ peer }, 'admitted peer has no gossip stream; reconnecting')
        void host.hangUp(peerIdFromString(peer)).catch(() => {})
      }
    }
    const connected = new Set(host.getConnections().map(c => c.remotePeer.toString()))
    if (connected.size === 0) {
      for (const addr of config.bootstrap) void dialPeer([multiaddr(addr)], addr)
      // Bootstrap nodes may have moved or died: members remembered from earlier runs lead back in.
      const remembered = zoneAuthority.remembered().filter(e => (e.addrs?.length ?? 0) > 0)
      for (let i = 0; i < Math.min(3, remembered.length); i++) {
        const pick = remembered.splice(Math.floor(Math.random() * remembered.length), 1)[0]
        if (pick === undefined) break
        const addrs = (pick.addrs ?? []).map(a =>
          multiaddr(a.includes('/p2p/') ? a : `${a}/p2p/${pick.peerId}`),
        )
        void dialPeer(addrs, pick.peerId)
      }
    }
    if (connected.size >= TARGET_PEERS) return
    const candidates = (membership?.list() ?? []).filter(
      m => m.peerId !== peerId && m.state !== 'dead' && !connected.has(m.peerId) && m.addrs.length > 0,
    )
    for (let i = 0; i < Math.min(2, candidates.length); i++) {
      const pick = candidates.splice(Math.floor(Math.random() * candidates.length), 1)[0]
      if (pick === undefined) break
      const addrs = pick.addrs.map(a => multiaddr(a.includes('/p2p/') ? a : `${a}/p2p/${pick.peerId}`))
      void dialPeer(addrs, pick.peerId)
    }
  }

  // ---- lifecycle ----
  let started = false
  let starting: Promise<void> | undefined
  let timers: NodeJS.Timeout[] = []

  const pubsub = host.services.pubsub
  pubsub.topicValidators.set(
    TOPICS.request,
    (source, message) => toTopicValidatorResult(handleRequest(message.data, source.toString())) as never,
  )
  pubsub.topicValidators.set(TOPICS.presence, (_source, message) => {
    const verdict = verifyHeartbeat(message.data, {
      verifier,
      nowMs: now(),
      maxClockSkewMs: config.maxClockSkewMs,
      maxAgeMs: config.deadAfterMs,
    })
    if (!verdict.ok) {
      counters.presenceRefused += 1
      const clockish =
        verdict.reason === 'from-the-future' ||
        verdict.reason === 'too-old' ||
        verdict.reason === 'bad-certificate'
      return (clockish ? 'ignore' : 'reject') as never
    }
    membership?.step(verdict.verified, now())
    return 'accept' as never
  })
  pubsub.topicValidators.set(TOPICS.revocation, (source, message) => {
    const verdict = verifyRevocationList(message.data, init.caPublicKey)
    if (!verdict.ok) return 'reject' as never
    return (adoptRevocations(message.data, source.toString()) ? 'accept' : 'ignore') as never
  })

  const node: MeshNode = {
    name: nodeCert().name,
    zone: nodeCert().zone,
    peerId,
    host,
    admission,
    actions,
    issuer: issuerDriver,

    async start() {
      if (started) return
      if (starting !== undefined) return starting
      starting = (async () => {
        await admission.attach(host)
        await enrolment.start() // enrolment (issue 3): /mesh/join (ungated), /mesh/ca (gated), renewal
        await host.handle(
          REPLY_PROTOCOL,
          admission.gated(stream => router.handle(stream, undefined as never)),
          {
            maxInboundStreams: 256,
          },
        )
        host.addEventListener('peer:disconnect', evt => {
          zoneAuthority.hint(evt.detail.toString(), 'dead')
          router.forgetPeer(evt.detail.toString())
        })
        host.addEventListener('peer:discovery', evt => {
          const id = evt.detail.id.toString()
          if (id === peerId || host.getConnections(evt.detail.id).length > 0) return
          void dialPeer(evt.detail.multiaddrs.length > 0 ? evt.detail.multiaddrs : evt.detail.id, id)
        })
        await zoneAuthority.start()
        await facts.refresh()
        await host.start()
        for (const topic of Object.values(TOPICS)) pubsub.subscribe(topic)
        startedAtMs = now()
        started = true
        heartbeatLoop()
        timers = [
          setInterval(
            () => {
              const t = now()
              membership?.tick(t)
              for (const event of membership?.drain() ?? []) {
                if (event.kind === 'state')
                  log.info({ member: event.name, from: event.from, to: event.to }, 'member state changed')
                else if (event.kind === 'joined') log.info({ member: event.name }, 'member joined')
                else log.info({ member: event.name, reason: event.reason }, 'member removed')
              }
              replay.tick(t)
              router.tick(t)
              void facts.refresh()
            },
            Math.min(config.heartbeatIntervalMs, 1_000),
          ),
          setInterval(maintainConnections, Math.max(500, Math.min(config.heartbeatIntervalMs * 2, 5_000))),
        ]
        if (issuerTick !== undefined) timers.push(setInterval(issuerTick, 60_000))
        for (const t of timers) t.unref()
        maintainConnections()
        log.info(
          { name: nodeCert().name, zone: nodeCert().zone, peer: peerId, addrs: ourAddrs() },
          'node started',
        )
      })()
      return starting
    },

    async stop() {
      if (!started && starting === undefined) return
      await starting?.catch(() => {})
      started = false
      starting = undefined
      for (const t of timers) clearInterval(t)
      timers = []
      if (heartbeatTimer !== undefined) clearTimeout(heartbeatTimer)
      if (earlyHeartbeat !== undefined) clearTimeout(earlyHeartbeat)
      router.stop()
      zoneAuthority.stop()
      await enrolment.stop() // enrolment (issue 3)
      await actions.close()
      await host.stop()
      log.info({ name: nodeCert().name }, 'node stopped')
    },

    addrs: ourAddrs,

    async dial(addr, signal) {
      await host.dial(multiaddr(addr), { signal: signal ?? AbortSignal.timeout(config.helloTimeoutMs) })
    },

    members() {
      return membership?.list() ?? []
    },

    zones() {
      const views = new Map(zoneAuthority.zones().map(z => [z.zone, z]))
      const byZone = new Map<string, { members: string[]; holder: string | null; epoch: number }>()
      for (const m of membership?.list() ?? []) {
        if (!m.roles.includes('agent')) continue
        const entry = byZone.get(m.zone) ?? { members: [], holder: null, epoch: 0 }
        entry.members.push(m.name)
        const claim = parseAuthorityFact(m.facts[AUTHORITY_FACT])
        if (
          claim !== undefined &&
          claim.zone === m.zone &&
          m.state === 'alive' &&
          claim.epoch >= entry.epoch
        ) {
          entry.holder = m.name
          entry.epoch = claim.epoch
        }
        byZone.set(m.zone, entry)
      }
      return [...byZone.entries()]
        .sort(([a], [b]) => a.localeCompare(b))
        .map(([zone, entry]) => {
          // A voter of the zone knows the lease first-hand; others go by the holders' heartbeats.
          const view = views.get(zone)
          if (view !== undefined && view.authority !== null) {
            return {
              zone,
              members: entry.members.sort(),
              authority: view.authority,
              epoch: view.epoch,
              leaseRemainingMs: view.leaseRemainingMs,
            }
          }
          return {
            zone,
            members: entry.members.sort(),
            authority: entry.holder,
            epoch: entry.epoch,
            leaseRemainingMs: 0,
          }
        })
    },

    isAuthority: zone => zoneAuthority.isAuthority(zone),

    onAuthority(zone, listener) {
      return zoneAuthority.onChange(event => {
        if (event.zone === zone) listener(event)
      })
    },

    async exec(options) {
      const operator =
        init.operator ??
        (nodeCert().roles.includes('operator') ? { key: init.node.key, certificate } : undefined)
      if (operator === undefined) {
        throw new Error(
          'this node holds no operator identity; run exec on a node created by mesh init, or join one with --role operator',
        )
      }
      if (!started) throw new Error('the node is not running')
      const filter = options.filter ?? {}
      const issuedAtMs = now()
      const request = createRequest({
        id: secureRandomBytes(16),
        issuer: operator.certificate.bytes,
        key: operator.key,
        issuedAtMs,
        expiresAtMs: issuedAtMs + options.timeoutMs,
        filter,
        action: options.action,
        args: options.args ?? [],
        replyTo: { peerId, addrs: ourAddrs().slice(0, 16) },
      })
      const expected = expectedNodes(membership?.list() ?? [], request.filter, currentAuthorities())
      const collector = createReplyCollector({
        requestId: request.body.id,
        requestIdHex: request.idHex,
        action: options.action,
        expected,
        deadlineMs: issuedAtMs + options.timeoutMs,
      })
      let wake: () => void = () => {}
      const unconsume = router.consume(request.idHex, bytes => {
        const verdict = verifyReply(bytes, { verifier, nowMs: now(), requestId: request.body.id })
        if (!verdict.ok) {
          counters.repliesRefused += 1
          log.warn(
            { request: request.idHex, reason: verdict.reason, detail: verdict.detail },
            'reply refused',
          )
          return
        }
        const event = collector.accept(verdict.verified, now())
        options.onEvent?.(event)
        if (collector.state !== 'pending') wake()
      })
      try {
        router.remember(request.idHex, undefined, request.body.replyTo, request.body.expiresAtMs)
        // Gossipsub does not deliver our own messages: validate (marks the replay cache) and run locally.
        const own = handleRequest(request.bytes, undefined)
        // Every node runs the same pipeline: what we refuse would be refused everywhere while we waited
        // out the whole timeout (e.g. a timeout beyond requestLifetimeMsMax), so it is not published.
        if (own.kind === 'refused') {
          throw new ExecRefusedError(
            own.code,
            refusalMessage(own, options.timeoutMs, config.requestLifetimeMsMax),
          )
        }
        options.onEvent?.({ kind: 'published', id: request.idHex, expected })
        await pubsub.publish(TOPICS.request, request.bytes).catch(err => {
          log.warn({ err: String(err) }, 'request not published')
        })
        if (collector.state === 'pending') {
          await new Promise<void>(resolve => {
            wake = resolve
            const timer = setTimeout(resolve, Math.max(0, issuedAtMs + options.timeoutMs - now()))
            options.signal?.addEventListener('abort', () => resolve(), { once: true })
            const done = wake
            wake = () => {
              clearTimeout(timer)
              done()
            }
          })
        }
        collector.tick(now())
        return collector.result()
      } finally {
        unconsume()
      }
    },

    registerAction(name, handler, options) {
      actions.register(name, handler, options)
    },

    certificate: () => certificate,

    // enrolment (issue 3): renewal swaps the certificate used by hello, heartbeats and replies.
    async replaceCertificate(signed) {
      if (!bytesEqual(signed.certificate.publicKey, init.node.key.publicKey)) {
        throw new Error('assertion: replaceCertificate got a certificate of another key')
      }
      certificate = signed
      await store.saveNodeCertificate?.(signed)
    },

    get enrolment() {
      return enrolment
    },

    counters: () => ({ requests: { ...requestCounters }, ...counters, gossipRepairs, notRunBeforeStart }),

    isRevoked,

    offerRevocations: bytes => adoptRevocations(bytes, 'local'),
  }
  // enrolment (issue 3): join and CA protocols, certificate renewal.
  const enrolment = createEnrolment(
    {
      node,
      key: init.node.key,
      caPublicKey: init.caPublicKey,
      log: log.child({ component: 'enrolment' }),
      nowMs: now,
    },
    { helloTimeoutMs: config.helloTimeoutMs, maxClockSkewMs: config.maxClockSkewMs },
  )
  void heartbeatTimer
  void toHex
  void peerIdFromString
  void lpStream
  void (undefined as unknown as Connection | Stream)
  return node
}
