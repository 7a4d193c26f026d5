/**
 * The library's surface: what an embedding program passes to `createMeshNode` and what it gets back.
 * Only what embedders use is here, each member documented; the parts a node is built from stay inside
 * the composition root (src/node/node.ts).
 */

import type { AuditStoreHead } from '../audit/record.js'
import type { Handover } from '../ca/handover.js'
import type { IssuerState } from '../ca/issuer-state.js'
import type { SignedCertificate } from '../ca/types.js'
import type { ExecResult } from '../gossip/reply-collector.js'
import type { OutcomeCode } from '../gossip/validate.js'
import type { MemberView } from '../membership/view.js'
import type { ActionHandler, ActionHandlerOptions } from './actions/index.js'
import type { AuditCounters } from './audit.js'
import type { CaHandoverCounters } from './ca-handover.js'
import type { AddCaHolderResult } from './ca-holders.js'
import type { CaReplicationStatus } from './ca-replication-driver.js'
import type { Clock, Random } from './clock.js'
import type { AgentConfig } from './config.js'
import type { NodeEventListener } from './events.js'
import type { ExecOptions } from './exec.js'
import type { HeldRequestCounters } from './held-requests.js'
import type { IssuerDriver } from './issuer-driver.js'
import type { JobService } from './job-service.js'
import type { JobLog, JobStoreCounters } from './jobs.js'
import type { CaMaterial, Identity } from './keys.js'
import type { Logger } from './log.js'
import type { MembershipCounters } from './membership-driver.js'
import type { ProposalView } from './proposals.js'
import type { RolloutOptions, RolloutResult } from './rollout.js'
import type { RunRecordCounters } from './run-record.js'
import type { TrafficSnapshot } from './traffic.js'
import type { TransportChoice } from './transport.js'
import type { ZoneRosterCounters } from './zone-rosters.js'
import type { ZoneView } from './zone-view.js'

/** Persistence the node asks for; the agent writes files, an embedding program may do anything. */
export interface NodeStore {
  saveIssuerState?(state: IssuerState): Promise<void>
  saveRevocations?(bytes: Uint8Array): Promise<void>
  saveNodeCertificate?(certificate: SignedCertificate): Promise<void>
  /** The zone-authority roster (certified members seen), so a restart still knows every voter. */
  saveRoster?(bytes: Uint8Array): Promise<void>
  /** The newest CA-signed zone roster adopted (src/node/zone-rosters.ts); failures are logged, not fatal. */
  saveZoneRoster?(bytes: Uint8Array): Promise<void>
  /**
   * The highest zone-lease epochs this node granted (authority-driver.ts). Resolve only once durable
   * (temp file, fsync, rename): the grant waits for it. Without it a restarted voter needs one more
   * peer to recover, so a zone of three with one member down and one restarted cannot elect.
   */
  saveAuthorityEpochs?(bytes: Uint8Array): Promise<void>
  /**
   * The CA replica record (ca-replication-driver.ts), on CA holders of a several-holder CA only.
   * Resolve only once durable (temp file, fsync, rename): no replica message leaves before. A
   * rejection stops this holder's replica until the node is created anew.
   */
  saveCaReplica?(bytes: Uint8Array): Promise<void>
  /**
   * `mesh ca add-holder` made this node a CA holder, or told it a new holder set
   * (src/node/ca-handover.ts): store the CA key, ticket secret, state and holder set durably. The node
   * serves as a holder from its next start. Absent: handovers are refused (`no-store`).
   */
  saveCaHandover?(handover: Handover): Promise<void>
  /** The holder set this node (a CA holder) gave out with `mesh ca add-holder`; durable when it resolves. */
  saveCaHolders?(holders: readonly string[]): Promise<void>
  /**
   * The run record (src/node/run-record.ts): the bytes last given to {@link saveRunRecord}, or
   * undefined when there are none. Called once, when the node starts; a rejection fails `start()`.
   * Give both run-record methods or neither: without them the record lives in memory only, so a
   * request signed with `issuedAtMs` ahead of this node's clock may run again after the process
   * restarts (only requests issued before the restart are then refused).
   */
  loadRunRecord?(): Promise<Uint8Array | undefined>
  /**
   * Replaces the stored run record. Resolve only once `bytes` are durable and a crash leaves the old or
   * the new version whole (the agent writes a temporary file, fsyncs and renames): the node starts an
   * action only after this resolves for a record that lists it. A rejection refuses those requests.
   */
  saveRunRecord?(bytes: Uint8Array): Promise<void>
  /**
   * The job store's log (jobs.ts JobLog; the agent's is jobs.log in the home). Called once, when the
   * node is created. Without it jobs live in memory only and are gone after a restart.
   */
  openJobLog?(): JobLog
  /**
   * Appends signed audit records (src/audit/record.ts: one envelope each, oldest first) to this node's
   * audit log (src/node/audit.ts). Resolve only once all are durable: one write and one fsync per call
   * (the node hands over in one call what arrived while the previous call was in flight). On rejection
   * leave the log as it was before the call as far as possible: the node retries the same records.
   * Give {@link appendAudit} and {@link loadAuditHead} together, or neither (then no audit log is kept).
   */
  appendAudit?(records: readonly Uint8Array[]): Promise<void>
  /**
   * Where the stored audit chain ends, so a restarted node continues it; called once, at start,
   * before any {@link appendAudit}. A torn last record (a crash during an append) is cut first and
   * reported in `tornBytes`.
   */
  loadAuditHead?(): Promise<AuditStoreHead>
  /**
   * The newest audit records with `atMs >= sinceMs`, oldest first, at most `bytesMax` envelope bytes
   * together (the `audit-tail` action). Optional: without it the action is not offered.
   */
  readAuditTail?(sinceMs: number, bytesMax: number): Promise<Uint8Array[]>
}

/** Options of `createMeshNode`. */
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
  /**
   * The newest CA-signed zone roster known at start (see NodeStore.saveZoneRoster); one that does not
   * verify against `caPublicKey` is logged and left out, never fatal.
   */
  readonly zoneRoster?: Uint8Array
  /** The epochs last given to NodeStore.saveAuthorityEpochs (undefined: none saved yet). */
  readonly authorityEpochs?: Uint8Array
  /**
   * The CA holders' peer ids (this node's included) when several nodes share `ca`: the holders'
   * zone (this node's certificate zone, which must hold the holders only) elects the issuer, and
   * every change of CA state is on a majority of holders before its effect leaves. Absent or one
   * holder: the single CA of today.
   */
  readonly caHolders?: readonly string[]
  /** The record last given to NodeStore.saveCaReplica (undefined: none saved yet). */
  readonly caReplica?: Uint8Array
  readonly config: AgentConfig
  /** `memory` for in-process tests, or a libp2p transport factory of one's own; default `tcp`. */
  readonly transport?: TransportChoice
  readonly store?: NodeStore
  readonly logger?: Logger
  /** Time and timers; default the system clock. Tests pass a manual or shifted one. */
  readonly clock?: Clock
  /** Randomness for choices and ids; default the system's. */
  readonly random?: Random
}

/** Counters for introspection (`mesh status`) and benchmarks. */
export interface NodeCounters {
  /** Request validation outcomes by code (gossip and our own requests). */
  readonly requests: Readonly<Partial<Record<OutcomeCode, number>>>
  /** Membership: the SWIM core's counters, records and suspicions refused, undecodable messages. */
  readonly membership: MembershipCounters
  /**
   * Zone authority: the core's counters (refusals, late replies, roster mismatches…), messages the
   * stream pool dropped, and the zones this node is still recovering voter state for.
   */
  readonly authority: {
    readonly core: Readonly<Record<string, number>>
    readonly sendDropped: number
    readonly recovering: readonly string[]
  }
  /** Replies to our requests that failed verification. */
  readonly repliesRefused: number
  /** Copies of a done already accepted, dropped without a second verification. */
  readonly repliesDuplicates: number
  /** Connections dropped because an admitted peer had no gossip stream. */
  readonly gossipRepairs: number
  /** Dials skipped while their target's back-off after failures runs (src/node/connections.ts). */
  readonly dialsDeferred: number
  /** CA handovers this node received, stored and refused (by reason), src/node/ca-handover.ts. */
  readonly caHandover: CaHandoverCounters
  /** Requests not run because they were issued before this process started (replay protection). */
  readonly notRunBeforeStart: number
  /** The persisted record of started requests (at most once across restarts): entries, refusals, saves. */
  readonly runRecord: RunRecordCounters
  /** Every gossip topic's verdicts by code. */
  readonly topics: Readonly<Record<string, Readonly<Record<string, number>>>>
  /** The CA-signed zone roster held: its version, adoptions, refusals by reason, republications. */
  readonly zoneRoster: ZoneRosterCounters
  /** Messages and bytes in and out per protocol, totals and rates over the last window (traffic.ts). */
  readonly traffic: TrafficSnapshot
  /** The audit log (audit.ts): records written, appends, drops, failures; absent without one. */
  readonly audit?: AuditCounters
  /** The job store: jobs, records, bytes, evictions, write failures (jobs.ts). */
  readonly jobs: JobStoreCounters
  /** Live requests held for members that come back, and offers sent and received (held-requests.ts). */
  readonly held: HeldRequestCounters
}

/** A running mesh node. */
export interface MeshNode {
  /** This node's name, from its certificate. */
  readonly name: string
  /** This node's zone, from its certificate. */
  readonly zone: string
  /** The libp2p peer id (base58), derived from the node key. */
  readonly peerId: string
  /** Starts listening, joins the mesh and starts every timer. Idempotent. */
  start(): Promise<void>
  /** Stops timers, running actions and libp2p. Idempotent. */
  stop(): Promise<void>
  /** Our dialable addresses, each with /p2p/. */
  addrs(): string[]
  /** Dials a peer by multiaddr (with /p2p/). */
  dial(addr: string, signal?: AbortSignal): Promise<void>
  /** The membership table including this node. */
  members(): MemberView[]
  /** Every zone known, with its members and authority. */
  zones(): ZoneView[]
  /**
   * The zone view with the holder of every zone this node does not vote in looked up from that zone's
   * voters (a joint majority must name it); heartbeat claims decide nothing. Takes one round trip.
   */
  provenZones(): Promise<ZoneView[]>
  /**
   * Issues a signed request and collects the replies. Rejects only for local problems: no operator,
   * not running, or `ExecRefusedError` when this node's own validation refuses the request (then
   * nothing is published).
   */
  exec(options: ExecOptions): Promise<ExecResult>
  /**
   * Runs an exec over its expected set in waves (rollout.ts): each wave a signed request naming its
   * nodes, a failure budget, a reproducible `limit`. Rejects for invalid options
   * (`RolloutOptionsError`) and when the first wave's exec rejects.
   */
  rollout(options: RolloutOptions): Promise<RolloutResult>
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
  /** The CA operations (sign, reject, revoke, tickets, pending list) on CA nodes; undefined elsewhere. */
  readonly issuer: IssuerDriver | undefined
  /** The CA holders and the current issuer, on a holder of a several-holder CA; undefined elsewhere. */
  caHolders?(): CaReplicationStatus | undefined
  /**
   * `mesh ca add-holder NAME`, on the issuing CA holder: hands the CA key, ticket secret and current
   * state to the live member NAME (certificate role `ca`, this node's zone) and the new holder set to
   * every other holder (src/node/ca-holders.ts). @throws CaHolderError with a one-line reason
   */
  addCaHolder?(name: string): Promise<AddCaHolderResult>
  /** Current certificate of this node (renewal replaces it). */
  certificate(): SignedCertificate
  counters(): NodeCounters
  /** Whether `serial` is on the newest revocation list this node has. */
  isRevoked(serial: string): boolean
  /**
   * Calls `listener` for every event (events.ts: requests validated, replies sent, execs finished),
   * synchronously; it must not block. Returns an unsubscribe function.
   */
  observe(listener: NodeEventListener): () => void
  /**
   * The two-person rule (proposals.ts): `propose` signs and gossips a request without running it,
   * `approve` adds this node's operator's signature (publishing the request once this node's policy is
   * met), `list` the proposals this node knows.
   */
  readonly proposals: {
    propose(options: Pick<ExecOptions, 'action' | 'args' | 'filter' | 'timeoutMs'>): Promise<ProposalView>
    approve(id: string): Promise<ProposalView>
    list(): ProposalView[]
  }
  /**
   * Jobs: what this node ran or issued (`list`, newest first, at most `limit`, default 100), any job's
   * verified results, looked up in the mesh if need be (`show`), and `wait` (see {@link JobService}).
   */
  readonly jobs: Pick<JobService, 'list' | 'show' | 'wait'>
}
