/**
 * The composition root of the library's node: it builds each component from its narrow parts, wires
 * their events together and orders start and stop. It holds no logic of its own; see
 * docs/architecture.md for who calls whom.
 */
import { multiaddr } from '@multiformats/multiaddr'
import { createCertificateVerifier } from '../ca/certificate.js'
import { createIssuer } from '../ca/issuer.js'
import { DEFAULT_POLICY, parsePolicy } from '../gossip/authorize.js'
import { createMembership } from '../gossip/membership.js'
import { createReplayCache } from '../gossip/replay.js'
import { createRequestValidator } from '../gossip/validate.js'
import { MESH_VERSION } from '../version.js'
import { type ActionRegistry, createActionRegistry } from './actions/index.js'
import { type Admission, createAdmission } from './admission.js'
import { type AuthorityDriver, createAuthorityDriver } from './authority-driver.js'
import { type Clock, every, type Random, systemClock, systemRandom, type Timer } from './clock.js'
import { type Connections, createConnections } from './connections.js'
import { createCredentials } from './credentials.js'
import { createEnrolment, type Enrolment } from './enrolment/index.js'
import { createExec, type Exec } from './exec.js'
import { createFactsProvider } from './facts.js'
import { createHost, type Host, TOPICS } from './host.js'
import { createIssuerDriver, type IssuerDriver } from './issuer-driver.js'
import { libp2pKeyOf } from './keys.js'
import { type Logger, silentLogger } from './log.js'
import { createMembershipDriver } from './membership-driver.js'
import type { MeshNode, MeshNodeInit, NodeStore } from './node-types.js'
import { createReplyRouter, REPLY_PROTOCOL } from './replies.js'
import { createRequestExecutor } from './request-executor.js'
import { createRevocations } from './revocations.js'
import { decodeRoster } from './roster.js'
import { installTopicValidators, type TopicValidators } from './topic-validators.js'
import { authorityNames, publishedFacts, zoneViews } from './zone-view.js'

/** Issuer expiry tick (pending requests, used nonces). */
export const ISSUER_TICK_MS = 60_000
/** Most inbound reply streams per connection. */
export const REPLY_STREAMS_PER_CONNECTION_MAX = 256

/** The parts of a node that tests and the agent's own tooling may reach; not part of the library's surface. */
export interface NodeInternals {
  readonly host: Host
  readonly admission: Admission
  readonly enrolment: Enrolment
  readonly actions: ActionRegistry
  readonly authority: AuthorityDriver
}

const internals = new WeakMap<MeshNode, NodeInternals>()

/** The internals of a node made by {@link createMeshNode} (tests, benchmarks). */
export function internalsOf(node: MeshNode): NodeInternals {
  const parts = internals.get(node)
  if (parts === undefined) throw new Error('assertion: not a node made by createMeshNode')
  return parts
}

/** What every stage of the build shares. */
interface Base {
  readonly init: MeshNodeInit
  readonly config: MeshNodeInit['config']
  readonly log: Logger
  readonly clock: Clock
  readonly random: Random
  readonly store: NodeStore
}

/** Stage 1: who we are and whom we trust (no I/O yet). */
function buildTrust(base: Base) {
  const { init, config, store, log } = base
  const credentials = createCredentials({
    key: init.node.key,
    certificate: init.node.certificate,
    save: store.saveNodeCertificate?.bind(store),
  })
  const revocations = createRevocations({
    caPublicKey: init.caPublicKey,
    initial: init.revocations,
    save: store.saveRevocations?.bind(store),
    log,
  })
  const verifier = createCertificateVerifier({
    caPublicKey: init.caPublicKey,
    isRevoked: revocations.isRevoked,
    clockSkewToleranceMs: config.clockSkewToleranceMs,
  })
  return { credentials, revocations, verifier, ownCertificate: () => credentials.certificate().certificate }
}

/** Stage 2: admission (its events are wired to parts built later through `events`) and the libp2p host. */
async function buildHost(
  base: Base,
  trust: ReturnType<typeof buildTrust>,
  events: { admitted(peer: string): void },
) {
  const { init, config, clock, log } = base
  const admission = createAdmission({
    ownCertificate: () => trust.credentials.certificate().bytes,
    verify: trust.verifier,
    clock,
    helloTimeoutMs: config.helloTimeoutMs,
    revocations: {
      current: () => trust.revocations.current()?.bytes,
      offer: bytes => void trust.revocations.offer(bytes, 'hello'),
    },
    log: log.child({ component: 'admission' }),
    onAdmitted: peer => events.admitted(peer),
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
    seenTtlMs: config.requestLifetimeMsMax + 2 * config.clockSkewToleranceMs,
  })
  return {
    admission,
    host,
    peerId: host.peerId.toString(),
    addrs: () => host.getMultiaddrs().map(a => a.toString()),
  }
}

/** Stage 3: membership, facts and the zone authority. */
function buildMembership(
  base: Base,
  trust: ReturnType<typeof buildTrust>,
  net: Awaited<ReturnType<typeof buildHost>>,
) {
  const { init, config, store, clock, random, log } = base
  const { host, peerId, admission } = net
  const facts = createFactsProvider({ meshVersion: MESH_VERSION, tags: config.tags })
  const membership = createMembership({
    timings: {
      heartbeatIntervalMs: config.heartbeatIntervalMs,
      suspectAfterMs: config.suspectAfterMs,
      deadAfterMs: config.deadAfterMs,
      forgetAfterMs: Math.max(config.deadAfterMs * 30, 5 * 60_000),
    },
  })
  const own = trust.ownCertificate
  const authority = createAuthorityDriver({
    host,
    self: peerId,
    config,
    members: () => membership.list(),
    gated: handler => admission.gated(handler),
    log: log.child({ component: 'authority' }),
    clock,
    random,
    selfEntry: () => ({ peerId, zone: own().zone, notAfterMs: own().notAfterMs }),
    roster: (init.roster === undefined ? [] : decodeRoster(init.roster)).filter(
      e => !trust.revocations.isPeerRevoked(e.peerId),
    ),
    saveRoster: store.saveRoster?.bind(store),
    rosterSettleMs: 2 * config.heartbeatIntervalMs + 500,
  })
  const heldAuthority = () => authority.isAuthority(own().zone)
  const factsNow = () => publishedFacts(facts.current(), own().zone, heldAuthority())
  const membershipDriver = createMembershipDriver(
    {
      membership,
      verifier: trust.verifier,
      signer: trust.credentials.signer,
      publish: bytes => host.services.pubsub.publish(TOPICS.presence, bytes),
      facts: factsNow,
      addrs: net.addrs,
      clock,
      log,
    },
    {
      heartbeatIntervalMs: config.heartbeatIntervalMs,
      clockSkewToleranceMs: config.clockSkewToleranceMs,
      deadAfterMs: config.deadAfterMs,
    },
  )
  // Others learn who holds a zone from our heartbeat, at once rather than after an interval.
  authority.onChange(() => membershipDriver.beatSoon())
  trust.revocations.onAdopted(signed => {
    const serials = new Set(signed.list.entries.map(e => e.serial))
    admission.revokeSerials(serials)
    for (const serial of serials) membership.revoke(serial)
    for (const entry of signed.list.entries) authority.forget(entry.peerId)
  })
  const zones = () => zoneViews(membership.list(), authority.zones())
  return { facts, membership, authority, membershipDriver, heldAuthority, factsNow, zones }
}

/** Stage 4: the request path — validation, actions, the executor and reply routing. */
function buildRequests(
  base: Base,
  trust: ReturnType<typeof buildTrust>,
  net: Awaited<ReturnType<typeof buildHost>>,
  members: ReturnType<typeof buildMembership>,
) {
  const { config, clock, random, log } = base
  const own = trust.ownCertificate
  const actions = createActionRegistry({
    facts: () => members.facts.current(),
    actions: config.actions,
    limits: {
      timeoutMsDefault: config.actionTimeoutMs,
      outputBytesMaxDefault: config.actionOutputBytesMax,
      concurrentRunsMax: config.actionConcurrencyMax,
    },
    log: (level, message, context) => log[level]({ component: 'actions', ...context }, message),
    clock,
  })
  const replay = createReplayCache({ clockSkewToleranceMs: config.clockSkewToleranceMs })
  const policy =
    config.policy.length === 0
      ? DEFAULT_POLICY
      : parsePolicy({ rules: [...DEFAULT_POLICY.rules, ...config.policy] })
  const validator = createRequestValidator(
    {
      verifier: trust.verifier,
      replay,
      self: () => ({
        name: own().name,
        zone: own().zone,
        facts: members.factsNow(),
        authority: members.heldAuthority() !== null,
      }),
      policy: () => policy,
    },
    {
      clockSkewToleranceMs: config.clockSkewToleranceMs,
      requestLifetimeMsMax: config.requestLifetimeMsMax,
      requestBytesMax: config.requestBytesMax,
    },
  )
  const router = createReplyRouter({
    host: net.host,
    log: log.child({ component: 'replies' }),
    clock,
    random,
    self: net.peerId,
  })
  const executor = createRequestExecutor(
    {
      validator,
      router,
      actions,
      signer: trust.credentials.signer,
      heldAuthority: members.heldAuthority,
      clock,
      log,
    },
    { clockSkewToleranceMs: config.clockSkewToleranceMs },
  )
  return { actions, replay, router, executor }
}

/** Stage 5, CA nodes only: the issuer core and its driver. */
function buildIssuer(
  base: Base,
  trust: ReturnType<typeof buildTrust>,
  publish: (list: Uint8Array) => Promise<void>,
) {
  const { init, config, store, clock, random, log } = base
  if (init.ca === undefined) return undefined
  const core = createIssuer({
    caKey: init.ca.caKey,
    ticketSecret: init.ca.ticketSecret,
    state: init.ca.issuerState,
    randomBytes: random.bytes,
    config: { certificateTtlMs: config.certificateTtlMs, clockSkewToleranceMs: config.clockSkewToleranceMs },
  })
  const issuer = createIssuerDriver({
    issuer: core,
    save: async state => store.saveIssuerState?.(state),
    publishRevocations: async list => {
      trust.revocations.offer(list, 'issuer')
      await publish(list)
    },
    clock,
    log,
  })
  if (trust.revocations.current() === undefined)
    trust.revocations.offer(core.revocationList().bytes, 'issuer')
  return issuer
}

/** Creates (but does not start) a mesh node. */
export async function createMeshNode(init: MeshNodeInit): Promise<MeshNode> {
  const base: Base = {
    init,
    config: init.config,
    log: init.logger ?? silentLogger(),
    clock: init.clock ?? systemClock,
    random: init.random ?? systemRandom,
    store: init.store ?? {},
  }
  const { config, clock, random, log } = base
  const trust = buildTrust(base)
  let connections: Connections | undefined
  let members: ReturnType<typeof buildMembership> | undefined
  const net = await buildHost(base, trust, {
    admitted: peer => {
      connections?.admitted(peer)
      members?.authority.hint(peer, 'alive')
      members?.membershipDriver.beatSoon()
    },
  })
  const { host, peerId, admission } = net
  const pubsub = host.services.pubsub
  members = buildMembership(base, trust, net)
  const requests = buildRequests(base, trust, net, members)
  let running = false
  const issuer = buildIssuer(base, trust, async list => {
    if (running) await pubsub.publish(TOPICS.revocation, list).catch(() => {})
  })
  const { membership, authority, membershipDriver } = members
  connections = createConnections(
    { host, members: () => membership.list(), remembered: () => authority.remembered(), clock, random, log },
    {
      bootstrap: config.bootstrap,
      helloTimeoutMs: config.helloTimeoutMs,
      upkeepIntervalMs: Math.max(500, Math.min(config.heartbeatIntervalMs * 2, 5_000)),
    },
  )
  const enrolment = createEnrolment(
    {
      peerId,
      host,
      gated: handler => admission.gated(handler),
      verifiedPeers: () => admission.verifiedPeers(),
      members: () => membership.list(),
      issuer: () => issuer,
      credentials: trust.credentials,
      offerRevocations: bytes => trust.revocations.offer(bytes, 'renewal'),
      caPublicKey: init.caPublicKey,
      clock,
      random,
      log: log.child({ component: 'enrolment' }),
    },
    { helloTimeoutMs: config.helloTimeoutMs, clockSkewToleranceMs: config.clockSkewToleranceMs },
  )
  const topics = installTopicValidators(
    pubsub,
    {
      [TOPICS.request]: (data, source) => requests.executor.verdict(data, source),
      [TOPICS.presence]: data => membershipDriver.verdict(data),
      [TOPICS.revocation]: (data, source) => trust.revocations.verdict(data, source),
    },
    log,
  )
  const exec = createExec(
    {
      operator: () =>
        init.operator ??
        (trust.ownCertificate().roles.includes('operator') ? trust.credentials.signer : undefined),
      isRunning: () => running,
      peerId,
      addrs: net.addrs,
      members: () => membership.list(),
      authorities: () => authorityNames(members.zones()),
      handle: requests.executor.handle,
      publish: bytes => pubsub.publish(TOPICS.request, bytes),
      router: requests.router,
      verifier: trust.verifier,
      clock,
      random,
      log,
    },
    { requestLifetimeMsMax: config.requestLifetimeMsMax },
  )
  const parts: Parts = { base, trust, net, members, requests, issuer, connections, enrolment, topics, exec }
  const lifecycle = createLifecycle(parts, value => {
    running = value
  })
  const node = surface(parts, lifecycle)
  internals.set(node, { host, admission, enrolment, actions: requests.actions, authority })
  return node
}

/** Everything the node is made of. */
interface Parts {
  readonly base: Base
  readonly trust: ReturnType<typeof buildTrust>
  readonly net: Awaited<ReturnType<typeof buildHost>>
  readonly members: ReturnType<typeof buildMembership>
  readonly requests: ReturnType<typeof buildRequests>
  readonly issuer: IssuerDriver | undefined
  readonly connections: Connections
  readonly enrolment: Enrolment
  readonly topics: TopicValidators
  readonly exec: Exec
}

/** Start and stop in dependency order; both idempotent. */
function createLifecycle(parts: Parts, setRunning: (running: boolean) => void) {
  const { base, net, members, requests, issuer, connections, enrolment } = parts
  const { config, clock, log } = base
  const { host, admission } = net
  let running = false
  let starting: Promise<void> | undefined
  let timers: Timer[] = []
  const housekeeping = (): void => {
    members.membershipDriver.tick()
    requests.replay.tick(clock.nowMs())
    requests.router.tick(clock.nowMs())
    void members.facts.refresh()
  }
  const startOnce = async (): Promise<void> => {
    await admission.attach(host)
    await enrolment.start() // /mesh/join (ungated), /mesh/ca (gated), renewal
    await host.handle(REPLY_PROTOCOL, admission.gated(requests.router.handle), {
      maxInboundStreams: REPLY_STREAMS_PER_CONNECTION_MAX,
    })
    host.addEventListener('peer:disconnect', evt => {
      members.authority.hint(evt.detail.toString(), 'dead')
      requests.router.forgetPeer(evt.detail.toString())
    })
    await members.authority.start()
    await members.facts.refresh()
    await host.start()
    for (const topic of Object.values(TOPICS)) host.services.pubsub.subscribe(topic)
    requests.executor.markStarted(clock.nowMs())
    running = true
    setRunning(true)
    members.membershipDriver.start()
    timers = [every(clock, Math.min(config.heartbeatIntervalMs, 1_000), housekeeping)]
    if (issuer !== undefined) timers.push(every(clock, ISSUER_TICK_MS, () => void issuer.tick()))
    connections.start()
    const own = parts.trust.ownCertificate()
    log.info({ name: own.name, zone: own.zone, peer: net.peerId, addrs: net.addrs() }, 'node started')
  }
  return {
    async start(): Promise<void> {
      if (running) return
      starting ??= startOnce()
      return starting
    },
    async stop(): Promise<void> {
      if (!running && starting === undefined) return
      await starting?.catch(() => {})
      running = false
      setRunning(false)
      starting = undefined
      for (const timer of timers) timer.cancel()
      timers = []
      members.membershipDriver.stop()
      connections.stop()
      requests.router.stop()
      members.authority.stop()
      await enrolment.stop()
      await requests.actions.close()
      await host.stop()
      log.info({ name: parts.trust.ownCertificate().name }, 'node stopped')
    },
  }
}

/** The embedder's view of the parts (node-types.ts documents each member). */
function surface(parts: Parts, lifecycle: ReturnType<typeof createLifecycle>): MeshNode {
  const { base, trust, net, members, requests, topics, exec, connections } = parts
  const own = trust.ownCertificate()
  return {
    name: own.name,
    zone: own.zone,
    peerId: net.peerId,
    issuer: parts.issuer,
    start: lifecycle.start,
    stop: lifecycle.stop,
    addrs: net.addrs,
    async dial(addr, signal) {
      await net.host.dial(multiaddr(addr), {
        signal: signal ?? AbortSignal.timeout(base.config.helloTimeoutMs),
      })
    },
    members: () => members.membership.list(),
    zones: members.zones,
    exec: exec.exec,
    isAuthority: zone => members.authority.isAuthority(zone),
    onAuthority: (zone, listener) =>
      members.authority.onChange(event => {
        if (event.zone === zone) listener(event)
      }),
    registerAction: (name, handler, options) => requests.actions.register(name, handler, options),
    certificate: () => trust.credentials.certificate(),
    counters: () => ({
      requests: requests.executor.outcomes(),
      presenceRefused: topics.refused(TOPICS.presence),
      repliesRefused: exec.repliesRefused(),
      gossipRepairs: connections.gossipRepairs(),
      notRunBeforeStart: requests.executor.notRunBeforeStart(),
      topics: topics.counters(),
    }),
    isRevoked: trust.revocations.isRevoked,
  }
}
