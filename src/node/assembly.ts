import { createCertificateVerifier } from '../ca/certificate.js'
import { createIssuer } from '../ca/issuer.js'
import type { IssuerState } from '../ca/issuer-state.js'
import { DEFAULT_POLICY, parsePolicy } from '../gossip/authorize.js'
import { createReplayCache } from '../gossip/replay.js'
import { createRequestValidator } from '../gossip/validate.js'
import { MESH_VERSION } from '../version.js'
import { createActionRegistry } from './actions/index.js'
import { createAdmission } from './admission.js'
import { createAuthorityDriver } from './authority-driver.js'
import { type CaReplicationDriver, createCaReplicationDriver } from './ca-replication-driver.js'
import type { Clock, Random } from './clock.js'
import { createCredentials } from './credentials.js'
import type { EventBus } from './events.js'
import { createFactsProvider } from './facts.js'
import { gossipsubTrafficMetrics } from './gossip-traffic.js'
import { createHost } from './host.js'
import { createIssuerDriver } from './issuer-driver.js'
import { libp2pKeyOf } from './keys.js'
import type { Logger } from './log.js'
import { createMembershipDriver, swimTimings } from './membership-driver.js'
import type { MeshNodeInit, NodeStore } from './node-types.js'
import { createReplyRouter } from './replies.js'
import { createRequestExecutor } from './request-executor.js'
import { createRevocations } from './revocations.js'
import { decodeRoster } from './roster.js'
import { createRunRecord } from './run-record.js'
import type { Traffic } from './traffic.js'
import { createZoneRosters } from './zone-rosters.js'
import { provenHolders as lookupHolders, publishedFacts, zoneViews } from './zone-view.js'

/** What every stage of the build shares. */
export interface Base {
  readonly init: MeshNodeInit
  readonly config: MeshNodeInit['config']
  readonly log: Logger
  readonly clock: Clock
  readonly random: Random
  readonly store: NodeStore
  /** Messages and bytes per protocol (traffic.ts): every component that sends or receives counts here. */
  readonly traffic: Traffic
  /** What happened (events.ts), for the job store, the audit log and metrics. */
  readonly events: EventBus
}

/** Stage 1: who we are and whom we trust (no I/O yet). */
export function buildTrust(base: Base) {
  const { init, config, store, log } = base
  const revocations = createRevocations({
    caPublicKey: init.caPublicKey,
    initial: init.revocations,
    save: store.saveRevocations?.bind(store),
    log,
    clock: base.clock,
    events: base.events,
  })
  const zoneRosters = createZoneRosters({
    caPublicKey: init.caPublicKey,
    initial: init.zoneRoster,
    save: store.saveZoneRoster?.bind(store),
    log: log.child({ component: 'zone-roster' }),
    clock: base.clock,
  })
  // Checks its own serial on every list adopted (and on the one from the home).
  const credentials = createCredentials({
    key: init.node.key,
    certificate: init.node.certificate,
    save: store.saveNodeCertificate?.bind(store),
    revocations,
    log,
  })
  const verifier = createCertificateVerifier({
    caPublicKey: init.caPublicKey,
    isRevoked: revocations.isRevoked,
    clockSkewToleranceMs: config.clockSkewToleranceMs,
  })
  return {
    credentials,
    revocations,
    zoneRosters,
    verifier,
    ownCertificate: () => credentials.certificate().certificate,
  }
}

/** Stage 2: admission (its events are wired to parts built later through `events`) and the libp2p host. */
export async function buildHost(
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
    zoneRosters: {
      current: () => trust.zoneRosters.current()?.bytes,
      // A roster learnt from a peer is likely news to our other peers too (we were both away): spread it.
      offer: bytes => {
        if (trust.zoneRosters.offer(bytes, 'hello')) trust.zoneRosters.republish()
      },
    },
    log: log.child({ component: 'admission' }),
    traffic: base.traffic,
    onAdmitted: peer => events.admitted(peer),
    events: base.events,
  })
  const host = await createHost({
    privateKey: libp2pKeyOf(init.node.key),
    listen: config.listen,
    announce: config.announce,
    bootstrap: config.bootstrap,
    mdns: config.mdns,
    transport: init.transport,
    connectionsMax: config.connectionsMax,
    inboundUpgradeTimeoutMs: config.inboundUpgradeTimeoutMs,
    gater: admission.gater,
    pnetKey: init.pnetKey,
    seenTtlMs: config.requestLifetimeMsMax + 2 * config.clockSkewToleranceMs,
    gossipMetrics: gossipsubTrafficMetrics(base.traffic),
  })
  return {
    admission,
    host,
    peerId: host.peerId.toString(),
    addrs: () => host.getMultiaddrs().map(a => a.toString()),
  }
}

/** Stage 3: membership, facts and the zone authority. */
export function buildMembership(
  base: Base,
  trust: ReturnType<typeof buildTrust>,
  net: Awaited<ReturnType<typeof buildHost>>,
) {
  const { init, config, store, clock, random, log } = base
  const { host, peerId, admission } = net
  const facts = createFactsProvider({ meshVersion: MESH_VERSION, tags: config.tags })
  const own = trust.ownCertificate
  let bootedAtS: number | undefined
  const membershipDriver = createMembershipDriver(
    {
      host,
      gated: handler => admission.gated(handler),
      verifier: trust.verifier,
      signer: trust.credentials.signer,
      facts: () => factsNow(),
      addrs: net.addrs,
      // Computed once: the record must not change with every second of uptime.
      bootedAtS: () => {
        const uptime = Number(facts.current().uptimeSeconds)
        bootedAtS ??= Number.isSafeInteger(uptime)
          ? Math.max(0, Math.floor(clock.nowMs() / 1000) - uptime)
          : 0
        return bootedAtS
      },
      clock,
      random,
      log: log.child({ component: 'membership' }),
      traffic: base.traffic,
    },
    { self: peerId, swim: swimTimings(config) },
  )
  const authority = createAuthorityDriver({
    host,
    self: peerId,
    config,
    members: () => membershipDriver.members(),
    gated: handler => admission.gated(handler),
    log: log.child({ component: 'authority' }),
    traffic: base.traffic,
    clock,
    random,
    selfEntry: () => ({ peerId, zone: own().zone, notAfterMs: own().notAfterMs }),
    roster: (init.roster === undefined ? [] : decodeRoster(init.roster)).filter(
      e => !trust.revocations.isPeerRevoked(e.peerId),
    ),
    saveRoster: store.saveRoster?.bind(store),
    rosterSettleMs: 2 * config.heartbeatIntervalMs + 500,
    ...(store.saveAuthorityEpochs === undefined
      ? {}
      : {
          epochs: {
            initial: init.authorityEpochs,
            save: (bytes: Uint8Array) => store.saveAuthorityEpochs?.(bytes) ?? Promise.resolve(),
          },
        }),
    signedRoster: () => trust.zoneRosters.current(),
    spreadRoster: () => trust.zoneRosters.republish(),
  })
  // Revoked, we may neither vote nor hold a zone nor probe; left running, the drivers redial every voter
  // and neighbour (each dial a refused hello, dozens a second). Stood down, they send nothing (a later
  // start() keeps them silent).
  const standDown = (): void => {
    authority.stop()
    membershipDriver.standDown()
  }
  if (trust.credentials.revoked()) standDown()
  else trust.credentials.onRevoked(standDown)
  const heldAuthority = () => authority.isAuthority(own().zone)
  const factsNow = () => publishedFacts(facts.current(), own().zone, heldAuthority())
  // Others learn who holds a zone from our record (the authority fact), re-signed at once.
  authority.onChange(() => membershipDriver.refresh())
  // Joins, deaths and departures reach the lease core at once, not at its next re-read.
  membershipDriver.onChange(() => authority.membershipChanged())
  trust.zoneRosters.onAdopted(() => authority.membershipChanged())
  trust.revocations.onAdopted(signed => {
    const serials = new Set(signed.list.entries.map(e => e.serial))
    admission.revokeSerials(serials)
    for (const entry of signed.list.entries) membershipDriver.revoke(entry.peerId)
    for (const entry of signed.list.entries) authority.forget(entry.peerId)
  })
  const zones = () => zoneViews(membershipDriver.members(), authority.zones())
  const nameOfPeer = (peerId: string) =>
    membershipDriver.members().find(m => m.peerId === peerId)?.name ?? peerId
  /** Holders of `names` proven by their voters (lookups in parallel), zone → holder name. */
  const provenHolders = (names: readonly string[]) => lookupHolders(names, authority.lookup, nameOfPeer)
  /** The zone view with every zone this node does not hold a first-hand view of looked up. */
  const provenZones = async () => {
    const list = membershipDriver.members()
    const voted = authority.zones()
    const known = new Set(voted.filter(z => z.authority !== null).map(z => z.zone))
    const others = [...new Set(list.filter(m => m.roles.includes('agent')).map(m => m.zone))]
    return zoneViews(list, voted, await provenHolders(others.filter(z => !known.has(z)).sort()))
  }
  return {
    facts,
    authority,
    membershipDriver,
    heldAuthority,
    factsNow,
    zones,
    provenZones,
    provenHolders,
  }
}

/** Stage 4: the request path — validation, actions, the executor and reply routing. */
export function buildRequests(
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
  // The run record outlives the process only when the store can load and save it (see NodeStore).
  const runRecord = createRunRecord(
    {
      load: base.store.loadRunRecord?.bind(base.store),
      save: base.store.saveRunRecord?.bind(base.store),
      clock,
    },
    { clockSkewToleranceMs: config.clockSkewToleranceMs },
  )
  const router = createReplyRouter({
    host: net.host,
    log: log.child({ component: 'replies' }),
    traffic: base.traffic,
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
      runRecord,
      events: base.events,
    },
    { clockSkewToleranceMs: config.clockSkewToleranceMs },
  )
  return { actions, replay, router, executor, policy }
}

/** Gossip publishers the issuer's effects need (each one a no-op while the node is not running). */
export interface IssuerPublish {
  revocations(list: Uint8Array): Promise<void>
  roster(roster: Uint8Array): Promise<void>
}

/** The issuer core of this CA node over `state`. */
function issuerCore(base: Base, ca: NonNullable<MeshNodeInit['ca']>, state: IssuerState) {
  const { config, random } = base
  return createIssuer({
    caKey: ca.caKey,
    ticketSecret: ca.ticketSecret,
    state,
    randomBytes: random.bytes,
    config: { certificateTtlMs: config.certificateTtlMs, clockSkewToleranceMs: config.clockSkewToleranceMs },
  })
}

/**
 * Stage 5a, holders of a several-holder CA only (`caHolders` with more than one): the replication
 * driver. Undefined with one holder, so such a CA node is built exactly as before.
 */
export function buildCaReplication(
  base: Base,
  trust: ReturnType<typeof buildTrust>,
  net: Awaited<ReturnType<typeof buildHost>>,
  members: ReturnType<typeof buildMembership>,
) {
  const { init, store, clock, log } = base
  const ca = init.ca
  if (ca === undefined || (init.caHolders?.length ?? 0) <= 1) return undefined
  return createCaReplicationDriver(
    {
      host: net.host,
      gated: handler => net.admission.gated(handler),
      authority: members.authority,
      members: () => members.membershipDriver.members(),
      makeIssuer: state => issuerCore(base, ca, state),
      onServing: core => {
        trust.revocations.offer(core.revocationList().bytes, 'issuer')
        trust.zoneRosters.offer(core.zoneRoster().bytes, 'issuer')
      },
      ...(store.saveCaReplica === undefined ? {} : { save: store.saveCaReplica.bind(store) }),
      clock,
      log: log.child({ component: 'ca-replica' }),
      traffic: base.traffic,
    },
    {
      self: net.peerId,
      holders: init.caHolders ?? [],
      zone: trust.ownCertificate().zone,
      ...(init.caReplica === undefined ? {} : { initial: init.caReplica }),
      seed: ca.issuerState,
    },
  )
}

/** Stage 5, CA nodes only: the issuer core and its driver (over the replication driver when given). */
export function buildIssuer(
  base: Base,
  trust: ReturnType<typeof buildTrust>,
  publish: IssuerPublish,
  replication?: CaReplicationDriver,
) {
  const { init, store, clock, log } = base
  if (init.ca === undefined) return undefined
  const core = issuerCore(base, init.ca, init.ca.issuerState)
  const issuer = createIssuerDriver({
    issuer: core,
    ...(replication === undefined ? {} : { replication }),
    save: async state => store.saveIssuerState?.(state),
    publishRevocations: async list => {
      trust.revocations.offer(list, 'issuer')
      await publish.revocations(list)
    },
    publishRoster: async roster => {
      trust.zoneRosters.offer(roster, 'issuer')
      await publish.roster(roster)
    },
    clock,
    log,
    events: base.events,
  })
  // Both, also when the home held a list or roster: the issuer state is saved before the files are (a
  // crash in between leaves the files one version behind), and offer adopts only a higher version, so
  // a newer file (the CA state restored from an older backup) is kept.
  trust.revocations.offer(core.revocationList().bytes, 'issuer')
  trust.zoneRosters.offer(core.zoneRoster().bytes, 'issuer')
  return issuer
}
