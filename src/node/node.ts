/**
 * The composition root of the library's node: it builds the parts in stages (assembly.ts), wires the
 * components that join them, and orders start and stop. It holds no logic of its own; see
 * docs/architecture.md for who calls whom.
 */
import { multiaddr } from '@multiformats/multiaddr'
import type { ActionRegistry } from './actions/index.js'
import type { Admission } from './admission.js'
import { type Base, buildHost, buildIssuer, buildMembership, buildRequests, buildTrust } from './assembly.js'
import type { AuthorityDriver } from './authority-driver.js'
import { every, systemClock, systemRandom, type Timer } from './clock.js'
import { type Connections, createConnections } from './connections.js'
import { createEnrolment, type Enrolment } from './enrolment/index.js'
import { createEventBus } from './events.js'
import { createExec, type Exec } from './exec.js'
import { countedPublish } from './gossip-traffic.js'
import { type Host, TOPICS } from './host.js'
import type { IssuerDriver } from './issuer-driver.js'
import { silentLogger } from './log.js'
import type { MeshNode, MeshNodeInit } from './node-types.js'
import { REPLY_PROTOCOL } from './replies.js'
import { installTopicValidators, type TopicValidators } from './topic-validators.js'
import { createTraffic } from './traffic.js'
import { encodeZoneRosterMessage, ZONE_ROSTER_NONCE_BYTES, type ZoneRosters } from './zone-rosters.js'
import { authorityNames } from './zone-view.js'

/** Issuer expiry tick (pending requests, used nonces). */
export const ISSUER_TICK_MS = 60_000
/** How long stop waits for the final (`cancelled`) replies of killed runs to be written out. */
export const STOP_REPLIES_WAIT_MS = 2_000
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
  const issuer = buildIssuer(base, trust, {
    revocations: async list => {
      if (running) await publish(TOPICS.revocation, list).catch(() => {})
    },
    roster: publishRoster,
  })
  const { authority, membershipDriver } = members
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
  const topics = installTopicValidators(
    pubsub,
    {
      [TOPICS.request]: (data, source) => requests.executor.verdict(data, source),
      [TOPICS.revocation]: (data, source) => trust.revocations.verdict(data, source),
      [TOPICS.roster]: (data, source) => trust.zoneRosters.messageVerdict(data, source),
    },
    log,
    base.traffic,
  )
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
  internals.set(node, {
    host,
    admission,
    enrolment,
    actions: requests.actions,
    authority,
    zoneRosters: trust.zoneRosters,
  })
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
    requests.replay.tick(clock.nowMs())
    requests.router.tick(clock.nowMs())
    void members.facts.refresh().then(() => members.membershipDriver.refresh())
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
    await requests.executor.start(clock.nowMs()) // loads the run record, then refuses older requests
    running = true
    setRunning(true)
    await members.membershipDriver.start()
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
      await members.membershipDriver.stop()
      connections.stop()
      // Kill running actions, then let their `cancelled` dones leave before the streams close.
      const closing = requests.actions.close()
      await requests.executor.drain(STOP_REPLIES_WAIT_MS)
      requests.router.stop()
      members.authority.stop()
      await enrolment.stop()
      await closing
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
    members: () => members.membershipDriver.members(),
    zones: members.zones,
    provenZones: members.provenZones,
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
      membership: members.membershipDriver.counters(),
      repliesRefused: exec.repliesRefused(),
      gossipRepairs: connections.gossipRepairs(),
      notRunBeforeStart: requests.executor.notRunBeforeStart(),
      runRecord: requests.executor.runRecordCounters(),
      topics: topics.counters(),
      zoneRoster: trust.zoneRosters.counters(),
      traffic: base.traffic.snapshot(),
    }),
    isRevoked: trust.revocations.isRevoked,
    observe: listener => base.events.on(listener),
  }
}
