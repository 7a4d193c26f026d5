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
import { every, systemClock, systemRandom, type Timer } from './clock.js'
import { createConnections } from './connections.js'
import { createCredentials } from './credentials.js'
import { createEnrolment, type Enrolment } from './enrolment/index.js'
import { createExec } from './exec.js'
import { createFactsProvider } from './facts.js'
import { createHost, type Host, TOPICS } from './host.js'
import { createIssuerDriver, type IssuerDriver } from './issuer-driver.js'
import { libp2pKeyOf } from './keys.js'
import { silentLogger } from './log.js'
import { createMembershipDriver } from './membership-driver.js'
import type { MeshNode, MeshNodeInit } from './node-types.js'
import { createReplyRouter, REPLY_PROTOCOL } from './replies.js'
import { createRequestExecutor } from './request-executor.js'
import { createRevocations } from './revocations.js'
import { decodeRoster } from './roster.js'
import { installTopicValidators } from './topic-validators.js'
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

/** Creates (but does not start) a mesh node. */
export async function createMeshNode(init: MeshNodeInit): Promise<MeshNode> {
  const { config } = init
  const log = init.logger ?? silentLogger()
  const clock = init.clock ?? systemClock
  const random = init.random ?? systemRandom
  const store = init.store ?? {}
  const credentials = createCredentials({
    key: init.node.key,
    certificate: init.node.certificate,
    save: store.saveNodeCertificate?.bind(store),
  })
  const ownCertificate = () => credentials.certificate().certificate

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

  let connections: ReturnType<typeof createConnections> | undefined
  let membershipDriver: ReturnType<typeof createMembershipDriver> | undefined
  const admission = createAdmission({
    ownCertificate: () => credentials.certificate().bytes,
    verify: verifier,
    clock,
    helloTimeoutMs: config.helloTimeoutMs,
    revocations: {
      current: () => revocations.current()?.bytes,
      offer: bytes => void revocations.offer(bytes, 'hello'),
    },
    log: log.child({ component: 'admission' }),
    onAdmitted: peer => {
      connections?.admitted(peer)
      authority.hint(peer, 'alive')
      membershipDriver?.beatSoon()
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
    seenTtlMs: config.requestLifetimeMsMax + 2 * config.clockSkewToleranceMs,
  })
  const peerId = host.peerId.toString()
  const pubsub = host.services.pubsub
  const addrs = (): string[] => host.getMultiaddrs().map(a => a.toString())
  let running = false

  const facts = createFactsProvider({ meshVersion: MESH_VERSION, tags: config.tags })
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
  const membership = createMembership({
    timings: {
      heartbeatIntervalMs: config.heartbeatIntervalMs,
      suspectAfterMs: config.suspectAfterMs,
      deadAfterMs: config.deadAfterMs,
      forgetAfterMs: Math.max(config.deadAfterMs * 30, 5 * 60_000),
    },
  })
  const authority = createAuthorityDriver({
    host,
    self: peerId,
    config,
    members: () => membership.list(),
    gated: handler => admission.gated(handler),
    log: log.child({ component: 'authority' }),
    clock,
    random,
    selfEntry: () => ({ peerId, zone: ownCertificate().zone, notAfterMs: ownCertificate().notAfterMs }),
    roster: (init.roster === undefined ? [] : decodeRoster(init.roster)).filter(
      e => !revocations.isPeerRevoked(e.peerId),
    ),
    saveRoster: store.saveRoster?.bind(store),
    rosterSettleMs: 2 * config.heartbeatIntervalMs + 500,
  })
  const heldAuthority = () => authority.isAuthority(ownCertificate().zone)
  const factsNow = () => publishedFacts(facts.current(), ownCertificate().zone, heldAuthority())
  const zones = () => zoneViews(membership.list(), authority.zones())

  const replay = createReplayCache({ clockSkewToleranceMs: config.clockSkewToleranceMs })
  const policy =
    config.policy.length === 0
      ? DEFAULT_POLICY
      : parsePolicy({ rules: [...DEFAULT_POLICY.rules, ...config.policy] })
  const validator = createRequestValidator(
    {
      verifier,
      replay,
      self: () => ({
        name: ownCertificate().name,
        zone: ownCertificate().zone,
        facts: factsNow(),
        authority: heldAuthority() !== null,
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
    host,
    log: log.child({ component: 'replies' }),
    clock,
    random,
    self: peerId,
  })
  const executor = createRequestExecutor(
    { validator, router, actions, signer: credentials.signer, heldAuthority, clock, log },
    { clockSkewToleranceMs: config.clockSkewToleranceMs },
  )
  membershipDriver = createMembershipDriver(
    {
      membership,
      verifier,
      signer: credentials.signer,
      publish: bytes => pubsub.publish(TOPICS.presence, bytes),
      facts: factsNow,
      addrs,
      clock,
      log,
    },
    {
      heartbeatIntervalMs: config.heartbeatIntervalMs,
      clockSkewToleranceMs: config.clockSkewToleranceMs,
      deadAfterMs: config.deadAfterMs,
    },
  )
  const beatSoon = membershipDriver.beatSoon
  // Others learn who holds a zone from our heartbeat, at once rather than after an interval.
  authority.onChange(() => beatSoon())
  revocations.onAdopted(signed => {
    const serials = new Set(signed.list.entries.map(e => e.serial))
    admission.revokeSerials(serials)
    for (const serial of serials) membership.revoke(serial)
    for (const entry of signed.list.entries) authority.forget(entry.peerId)
  })

  let issuer: IssuerDriver | undefined
  if (init.ca !== undefined) {
    const core = createIssuer({
      caKey: init.ca.caKey,
      ticketSecret: init.ca.ticketSecret,
      state: init.ca.issuerState,
      randomBytes: random.bytes,
      config: {
        certificateTtlMs: config.certificateTtlMs,
        clockSkewToleranceMs: config.clockSkewToleranceMs,
      },
    })
    issuer = createIssuerDriver({
      issuer: core,
      save: async state => store.saveIssuerState?.(state),
      publishRevocations: async list => {
        revocations.offer(list, 'issuer')
        if (running) await pubsub.publish(TOPICS.revocation, list).catch(() => {})
      },
      clock,
      log,
    })
    if (revocations.current() === undefined) revocations.offer(core.revocationList().bytes, 'issuer')
  }
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
      credentials,
      offerRevocations: bytes => revocations.offer(bytes, 'renewal'),
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
      [TOPICS.request]: (data, source) => executor.verdict(data, source),
      [TOPICS.presence]: data => membershipDriver.verdict(data),
      [TOPICS.revocation]: (data, source) => revocations.verdict(data, source),
    },
    log,
  )
  const exec = createExec(
    {
      operator: () =>
        init.operator ?? (ownCertificate().roles.includes('operator') ? credentials.signer : undefined),
      isRunning: () => running,
      peerId,
      addrs,
      members: () => membership.list(),
      authorities: () => authorityNames(zones()),
      handle: executor.handle,
      publish: bytes => pubsub.publish(TOPICS.request, bytes),
      router,
      verifier,
      clock,
      random,
      log,
    },
    { requestLifetimeMsMax: config.requestLifetimeMsMax },
  )

  // ---- lifecycle ----
  let starting: Promise<void> | undefined
  let timers: Timer[] = []
  const housekeeping = (): void => {
    membershipDriver.tick()
    replay.tick(clock.nowMs())
    router.tick(clock.nowMs())
    void facts.refresh()
  }
  const start = async (): Promise<void> => {
    await admission.attach(host)
    await enrolment.start() // /mesh/join (ungated), /mesh/ca (gated), renewal
    await host.handle(REPLY_PROTOCOL, admission.gated(router.handle), {
      maxInboundStreams: REPLY_STREAMS_PER_CONNECTION_MAX,
    })
    host.addEventListener('peer:disconnect', evt => {
      authority.hint(evt.detail.toString(), 'dead')
      router.forgetPeer(evt.detail.toString())
    })
    await authority.start()
    await facts.refresh()
    await host.start()
    for (const topic of Object.values(TOPICS)) pubsub.subscribe(topic)
    executor.markStarted(clock.nowMs())
    running = true
    membershipDriver.start()
    timers = [every(clock, Math.min(config.heartbeatIntervalMs, 1_000), housekeeping)]
    if (issuer !== undefined) timers.push(every(clock, ISSUER_TICK_MS, () => void issuer.tick()))
    connections.start()
    log.info(
      { name: ownCertificate().name, zone: ownCertificate().zone, peer: peerId, addrs: addrs() },
      'node started',
    )
  }

  const node: MeshNode = {
    name: ownCertificate().name,
    zone: ownCertificate().zone,
    peerId,
    issuer,
    async start() {
      if (running) return
      starting ??= start()
      return starting
    },
    async stop() {
      if (!running && starting === undefined) return
      await starting?.catch(() => {})
      running = false
      starting = undefined
      for (const timer of timers) timer.cancel()
      timers = []
      membershipDriver.stop()
      connections.stop()
      router.stop()
      authority.stop()
      await enrolment.stop()
      await actions.close()
      await host.stop()
      log.info({ name: ownCertificate().name }, 'node stopped')
    },
    addrs,
    async dial(addr, signal) {
      await host.dial(multiaddr(addr), { signal: signal ?? AbortSignal.timeout(config.helloTimeoutMs) })
    },
    members: () => membership.list(),
    zones,
    exec: exec.exec,
    isAuthority: zone => authority.isAuthority(zone),
    onAuthority: (zone, listener) =>
      authority.onChange(event => {
        if (event.zone === zone) listener(event)
      }),
    registerAction: (name, handler, options) => actions.register(name, handler, options),
    certificate: () => credentials.certificate(),
    counters: () => ({
      requests: executor.outcomes(),
      presenceRefused: topics.refused(TOPICS.presence),
      repliesRefused: exec.repliesRefused(),
      gossipRepairs: connections.gossipRepairs(),
      notRunBeforeStart: executor.notRunBeforeStart(),
      topics: topics.counters(),
    }),
    isRevoked: revocations.isRevoked,
  }
  internals.set(node, { host, admission, enrolment, actions, authority })
  return node
}
