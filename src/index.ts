/**
 * mesh as a library, for appliances that embed the agent: join a mesh, create and start a node from
 * plain options (no files required), register in-process actions, issue requests, and run singleton
 * duties while holding a zone's authority. The CLI and `mesh agent` are built on the same pieces.
 */
export { loadHome } from './agent/home.js'
export { type RunningAgent, type StartAgentOptions, startAgent } from './agent/runtime.js'
export { fingerprintOf, formatFingerprint, parseFingerprint, shortFingerprint } from './ca/fingerprint.js'
export type { Certificate, Role, SignedCertificate } from './ca/types.js'
export type { FactFilter, TargetFilter } from './gossip/filter.js'
export type { CollectedReply, ExecResult } from './gossip/reply-collector.js'
export type { MemberView } from './membership/view.js'
export {
  type ActionContext,
  type ActionHandler,
  type ActionHandlerOptions,
  type ActionHandlerResult,
  type AgentConfig,
  type CaMaterial,
  type Clock,
  ConfigError,
  createManualClock,
  createMeshNode,
  defaultConfig,
  type ExecOptions,
  ExecRefusedError,
  generateSigningKey,
  type Identity,
  type IssuerDriver,
  JOIN_REACH_TIMEOUT_MS_DEFAULT,
  JoinError,
  type JoinProgress,
  type JoinResult,
  type ManualClock,
  type MeshNode,
  type MeshNodeInit,
  type NodeCounters,
  type NodeStore,
  type Profile,
  type Random,
  type RequestCertificateOptions,
  requestCertificate,
  resolveConfig,
  systemClock,
  systemRandom,
  type ZoneView,
} from './node/index.js'
export { MESH_VERSION } from './version.js'
export type { SigningKey } from './wire/ed25519.js'
