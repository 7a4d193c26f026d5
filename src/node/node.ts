/**
 * The composition root of the library's node: it builds the parts in stages (assembly.ts), wires the
 * components that join them, and orders start and stop. It holds no logic of its own; see
 * docs/architecture.md for who calls whom.
 */
import { multiaddr } from '@multiformats/multiaddr'
import type { ActionRegistry } from './actions/index.js'
import type { Admission } from './admission.js'
import {
  type Base,
  buildCaReplication,
  buildHost,
  buildIssuer,
  buildMembership,
  buildRequests,
  buildTrust,
} from './assembly.js'
import { type AuditLog, createAuditLog, registerAuditTail } from './audit.js'
import type { AuthorityDriver } from './authority-driver.js'
import { type CaHandover, createCaHandover } from './ca-handover.js'
import { addCaHolder } from './ca-holders.js'
import type { CaReplicationDriver } from './ca-replication-driver.js'
import { every, systemClock, systemRandom, type Timer } from './clock.js'
import { type Connections, createConnections } from './connections.js'
import { createEnrolment, type Enrolment } from './enrolment/index.js'
import { createEventBus } from './events.js'
import { createExec, type Exec } from './exec.js'
import { countedPublish } from './gossip-traffic.js'
import { createHeldRequests, type HeldRequests } from './held-requests.js'
import { type Host, TOPICS } from './host.js'
import type { IssuerDriver } from './issuer-driver.js'
import { JOB_LOOKUP_ACTION } from './job-lookup.js'
import { createJobService, type JobService } from './job-service.js'
import { createJobStore, type JobStore } from './jobs.js'
import { silentLogger } from './log.js'
import type { MeshNode, MeshNodeInit } from './node-types.js'
import { createProposals, type Proposals } from './proposals.js'
import { REPLY_PROTOCOL } from './replies.js'
import type { Revocations } from './revocations.js'
import { createRollout, type Rollout } from './rollout.js'
import { installTopicValidators, type TopicValidators } from './topic-validators.js'
import { createTraffic } from './traffic.js'
import { encodeZoneRosterMessage, ZONE_ROSTER_NONCE_BYTES, type ZoneRosters } from './zone-rosters.js'
import { authorityNames } from './zone-view.js'

/** Issuer expiry tick (pending requests, used nonces). */
export const ISSUER_TICK_MS = 60_000
/** How long stop waits for the final (`cancelled`) replies of killed runs to be written out. */
export const STOP_REPLIES_WAIT_MS = 2_000
/** How long stop waits for the audit records still queued to be written. */
export const AUDIT_STOP_FLUSH_MS = 2_000
/** Most inbound reply streams per connection. */
export const REPLY_STREAMS_PER_CONNECTION_MAX = 256

/** The parts of a node that tests and the agent's own tooling may reach; not part of the library's surface. */
export interface NodeInternals {
  readonly host: Host
  readonly admission: Admission
  readonly enrolment: Enrolment
  readonly actions: ActionRegistry
  readonly authority: AuthorityDriver
  readonly zoneRosters: ZoneRosters
  /** The newest revocation list held (the agent's metrics show its version). */
  readonly revocations: Pick<Revocations, 'current'>
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
  const clock = init.clock ?? systemClock
  const log = init.logger ?? silentLogger()
  const base: Base = {
    init,
    config: init.config,
    log,
    clock,
    random: init.random ?? systemRandom,
    store: init.store ?? {},
    traffic: createTraffic({ clock }),
    events: createEventBus(log),
  }
  const { config, random } = base
  const trust = buildTrust(base)
  // Subscribed now, so what happens while the node starts is on record once the chain head is loaded.
  const { appendAudit, loadAuditHead } = base.store
  const audit =
    appendAudit !== undefined && loadAuditHead !== undefined
      ? createAuditLog({
          signer: trust.credentials.signer,
          store: { appendAudit: appendAudit.bind(base.store), loadAuditHead: loadAuditHead.bind(base.store) },
          events: base.events,
          clock,
          log: log.child({ component: 'audit' }),
        })
      : undefined
  let connections: Connections | undefined
  let members: ReturnType<typeof buildMembership> | undefined
  const net = await buildHost(base, trust, {
    admitted: peer => {
      connections?.admitted(peer)
      members?.authority.hint(peer, 'alive')
      members?.membershipDriver.contact(peer)
    },
  })
  const { host, peerId, admission } = net
  const pubsub = host.services.pubsub
  const publish = countedPublish(pubsub, base.traffic)
  members = buildMembership(base, trust, net)
  const requests = buildRequests(base, trust, net, members)
  registerAuditTail(
    requests.actions,
    base.store.readAuditTail?.bind(base.store),
    config.actionOutputBytesMax,
    clock,
    log,
  )
  let running = false
  const publishRoster = async (roster: Uint8Array): Promise<void> => {
    if (!running) return
    // A fresh nonce per publication: gossipsub would drop the same bytes again as a duplicate.
    const message = encodeZoneRosterMessage(roster, random.bytes(ZONE_ROSTER_NONCE_BYTES))
    await publish(TOPICS.roster, message).catch(err =>
      log.debug({ err: (err as Error).message }, 'cannot publish the zone roster'),
    )
  }
  trust.zoneRosters.onRepublish(signed => void publishRoster(signed.bytes))
  const caReplication = buildCaReplication(base, trust, net, members)
  const issuer = buildIssuer(
    base,
    trust,
    {
      revocations: async list => {
        if (running) await publish(TOPICS.revocation, list).catch(() => {})
      },
      roster: publishRoster,
    },
    caReplication,
  )
  const { authority, membershipDriver } = members
  const ownCertificate = trust.ownCertificate()
  const caHandover = createCaHandover({
    host,
    gated: handler => admission.gated(handler),
    self: peerId,
    caPublicKey: base.init.caPublicKey,
    mayHold: ownCertificate.roles.includes('ca'),
    ...(base.store.saveCaHandover === undefined ? {} : { store: base.store.saveCaHandover.bind(base.store) }),
    clock,
    log: log.child({ component: 'ca-handover' }),
    traffic: base.traffic,
  })
  connections = createConnections(
    {
      host,
      members: () => membershipDriver.members(),
      neighbours: () => membershipDriver.neighbours(),
      remembered: () => authority.remembered(),
      selfRevoked: trust.credentials.revoked,
      clock,
      random,
      log,
    },
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
      members: () => membershipDriver.members(),
      issuer: () => issuer,
      credentials: trust.credentials,
      offerRevocations: bytes => trust.revocations.offer(bytes, 'renewal'),
      caPublicKey: init.caPublicKey,
      clock,
      random,
      log: log.child({ component: 'enrolment' }),
      traffic: base.traffic,
    },
    { helloTimeoutMs: config.helloTimeoutMs, clockSkewToleranceMs: config.clockSkewToleranceMs },
  )
  // Created below, once exec exists; until then (never while running) a proposal is ignored.
  let proposalsRef: Proposals | undefined
  const topics = installTopicValidators(
    pubsub,
    {
      [TOPICS.request]: (data, source) => requests.executor.verdict(data, source),
      [TOPICS.proposal]: (data, source) =>
        proposalsRef?.verdict(data, source) ?? { kind: 'refused', code: 'not-ready', action: 'ignore' },
      [TOPICS.revocation]: (data, source) => trust.revocations.verdict(data, source),
      [TOPICS.roster]: (data, source) => trust.zoneRosters.messageVerdict(data, source),
    },
    log,
    base.traffic,
  )
  const jobStore = createJobStore(
    { log: base.store.openJobLog?.(), clock, logger: log.child({ component: 'jobs' }) },
    { jobsMax: config.jobsMax, ageMsMax: config.jobsAgeMsMax },
  )
  base.events.on(event => jobStore.observe(event))
  const held = createHeldRequests({
    host,
    gated: handler => admission.gated(handler),
    handle: requests.executor.handle,
    members: () => membershipDriver.members(),
    onMembersChange: listener => membershipDriver.onChange(listener),
    self: () => trust.ownCertificate().name,
    isAuthority: zone => authority.isAuthority(zone) !== null,
    clock,
    log: log.child({ component: 'held' }),
    traffic: base.traffic,
  })
  base.events.on(event => held.observe(event))
  const exec = createExec(
    {
      operator: () =>
        init.operator ??
        (trust.ownCertificate().roles.includes('operator') ? trust.credentials.signer : undefined),
      isRunning: () => running,
      peerId,
      addrs: net.addrs,
      members: () => membershipDriver.members(),
      authorities: async zones => authorityNames(await members.provenHolders(zones)),
      handle: requests.executor.handle,
      publish: bytes => publish(TOPICS.request, bytes),
      router: requests.router,
      verifier: trust.verifier,
      events: base.events,
      jobs: jobStore,
      clock,
      random,
      log,
    },
    { requestLifetimeMsMax: config.requestLifetimeMsMax },
  )
  const proposals = createProposals(
    {
      operator: () =>
        init.operator ??
        (trust.ownCertificate().roles.includes('operator') ? trust.credentials.signer : undefined),
      sign: exec.sign,
      members: () => membershipDriver.members(),
      verifier: trust.verifier,
      policy: () => requests.policy,
      isRevoked: trust.revocations.isRevoked,
      handle: requests.executor.handle,
      publishRequest: bytes => publish(TOPICS.request, bytes),
      publishProposal: bytes => publish(TOPICS.proposal, bytes),
      router: requests.router,
      jobs: jobStore,
      clock,
      log: log.child({ component: 'proposals' }),
    },
    { clockSkewToleranceMs: config.clockSkewToleranceMs, requestLifetimeMsMax: config.requestLifetimeMsMax },
  )
  proposalsRef = proposals
  const jobs = createJobService({
    store: jobStore,
    exec: exec.exec,
    verifier: trust.verifier,
    members: () => membershipDriver.members(),
    ownName: () => trust.ownCertificate().name,
    clock,
  })
  requests.actions.register(JOB_LOOKUP_ACTION, jobs.lookupHandler, {
    description: 'the signed results this node stored for a job (used by mesh jobs show)',
  })
  const rollout = createRollout({
    exec: exec.exec,
    members: () => membershipDriver.members(),
    clock,
    random,
    log: log.child({ component: 'rollout' }),
  })
  const parts: Parts = {
    audit,
    base,
    trust,
    net,
    members,
    requests,
    issuer,
    caReplication,
    caHandover,
    connections,
    enrolment,
    topics,
    exec,
    rollout,
    jobStore,
    jobs,
    held,
    proposals,
  }
  const lifecycle = createLifecycle(parts, value => {
    running = value
  })
  const node = surface(parts, lifecycle)
  internals.set(node, {
    host,
    admission,
    enrolment,
    actions: requests.actions,
    authority,
    zoneRosters: trust.zoneRosters,
    revocations: trust.revocations,
  })
  return node
}

/** Everything the node is made of. */
interface Parts {
  /** The audit log, when the store keeps one (NodeStore.appendAudit). */
  readonly audit: AuditLog | undefined
  readonly base: Base
  readonly trust: ReturnType<typeof buildTrust>
  readonly net: Awaited<ReturnType<typeof buildHost>>
  readonly members: ReturnType<typeof buildMembership>
  readonly requests: ReturnType<typeof buildRequests>
  readonly issuer: IssuerDriver | undefined
  /** The CA replication driver on holders of a several-holder CA; undefined otherwise. */
  readonly caReplication: CaReplicationDriver | undefined
  /** `/mesh/ca-handover/1.0.0`: receives CA handovers (nodes with the ca role), sends them for add-holder. */
  readonly caHandover: CaHandover
  readonly connections: Connections
  readonly enrolment: Enrolment
  readonly topics: TopicValidators
  readonly exec: Exec
  readonly rollout: Rollout
  readonly jobStore: JobStore
  readonly jobs: JobService
  readonly held: HeldRequests
  readonly proposals: Proposals
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
    requests.replay.tick(clock.nowMs())
    requests.router.tick(clock.nowMs())
    void members.facts.refresh().then(() => members.membershipDriver.refresh())
  }
  const startOnce = async (): Promise<void> => {
    await parts.audit?.start() // loads the chain head first: admissions and requests go on record
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
    await parts.caReplication?.start()
    await parts.caHandover.start()
    await members.facts.refresh()
    await host.start()
    for (const topic of Object.values(TOPICS)) host.services.pubsub.subscribe(topic)
    await parts.jobStore.start()
    await requests.executor.start(clock.nowMs()) // loads the run record, then refuses older requests
    running = true
    setRunning(true)
    await members.membershipDriver.start()
    await parts.held.start()
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
      await parts.held.stop()
      await members.membershipDriver.stop()
      connections.stop()
      // Kill running actions, then let their `cancelled` dones leave before the streams close.
      const closing = requests.actions.close()
      await requests.executor.drain(STOP_REPLIES_WAIT_MS)
      requests.router.stop()
      parts.caReplication?.stop()
      await parts.caHandover.stop()
      members.authority.stop()
      await enrolment.stop()
      await closing
      await host.stop()
      await parts.jobStore.stop()
      await parts.audit?.stop(AUDIT_STOP_FLUSH_MS)
      log.info({ name: parts.trust.ownCertificate().name }, 'node stopped')
    },
  }
}

/** The embedder's view of the parts (node-types.ts documents each member). */
function surface(parts: Parts, lifecycle: ReturnType<typeof createLifecycle>): MeshNode {
  const { base, trust, net, members, requests, topics, exec, connections } = parts
  const own = trust.ownCertificate()
  /** The CA holder set `add-holder` handed out in this run (the next add-holder builds on it). */
  let handedOut: readonly string[] | undefined
  return {
    name: own.name,
    zone: own.zone,
    peerId: net.peerId,
    issuer: parts.issuer,
    caHolders: () => parts.caReplication?.status(),
    addCaHolder: name =>
      addCaHolder(
        {
          self: net.peerId,
          selfName: own.name,
          zone: own.zone,
          ca: base.init.ca,
          issuer: parts.issuer,
          replication: () => parts.caReplication?.status(),
          handedOut: {
            get: () => handedOut,
            set: holders => {
              handedOut = holders
            },
          },
          members: () => members.membershipDriver.members(),
          handover: parts.caHandover,
          ...(base.store.saveCaHolders === undefined
            ? {}
            : { saveHolders: base.store.saveCaHolders.bind(base.store) }),
          clock: base.clock,
          log: base.log.child({ component: 'ca-holders' }),
        },
        name,
      ),
    start: lifecycle.start,
    stop: lifecycle.stop,
    addrs: net.addrs,
    async dial(addr, signal) {
      await net.host.dial(multiaddr(addr), {
        signal: signal ?? AbortSignal.timeout(base.config.helloTimeoutMs),
      })
    },
    members: () => members.membershipDriver.members(),
    zones: members.zones,
    provenZones: members.provenZones,
    exec: exec.exec,
    rollout: parts.rollout.run,
    isAuthority: zone => members.authority.isAuthority(zone),
    onAuthority: (zone, listener) =>
      members.authority.onChange(event => {
        if (event.zone === zone) listener(event)
      }),
    registerAction: (name, handler, options) => requests.actions.register(name, handler, options),
    certificate: () => trust.credentials.certificate(),
    counters: () => ({
      requests: requests.executor.outcomes(),
      membership: members.membershipDriver.counters(),
      authority: members.authority.counters(),
      repliesRefused: exec.repliesRefused(),
      repliesDuplicates: exec.duplicatesSkipped(),
      gossipRepairs: connections.gossipRepairs(),
      dialsDeferred: connections.dialsDeferred(),
      caHandover: parts.caHandover.counters(),
      notRunBeforeStart: requests.executor.notRunBeforeStart(),
      runRecord: requests.executor.runRecordCounters(),
      topics: topics.counters(),
      zoneRoster: trust.zoneRosters.counters(),
      traffic: base.traffic.snapshot(),
      jobs: parts.jobStore.counters(),
      held: parts.held.counters(),
      ...(parts.audit === undefined ? {} : { audit: parts.audit.counters() }),
    }),
    isRevoked: trust.revocations.isRevoked,
    observe: listener => base.events.on(listener),
    proposals: {
      propose: options => parts.proposals.propose(options),
      approve: id => parts.proposals.approve(id),
      list: () => parts.proposals.list(),
    },
    jobs: {
      list: limit => parts.jobs.list(limit),
      show: (job, options) => parts.jobs.show(job, options),
      wait: (job, timeoutMs, signal) => parts.jobs.wait(job, timeoutMs, signal),
    },
  }
}
