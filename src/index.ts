/**
 * mesh as a library, for appliances that embed the agent: join a mesh, create and start a node from
 * plain options (no files required), register in-process actions, issue requests, and run singleton
 * duties while holding a zone's authority. The CLI and `mesh agent` are built on the same pieces.
 */
export { loadHome } from './agent/home.js'
export { type RunningAgent, type StartAgentOptions, startAgent } from './agent/runtime.js'
export type { SigningKey } from './ca/ed25519.js'
export { fingerprintOf, formatFingerprint, parseFingerprint, shortFingerprint } from './ca/fingerprint.js'
export type { Certificate, Role, SignedCertificate } from './ca/types.js'
export type { FactFilter, TargetFilter } from './gossip/filter.js'
export type { MemberView } from './gossip/membership.js'
export type { CollectedReply, ExecResult } from './gossip/reply-collector.js'
export type {
  ActionContext,
  ActionHandler,
  ActionHandlerOptions,
  ActionHandlerResult,
} from './node/actions.js'
export {
  createMeshNode,
  type ExecOptions,
  ExecRefusedError,
  type MeshNode,
  type MeshNodeInit,
  type NodeStore,
  type ZoneView,
} from './node/agent.js'
export { type AgentConfig, ConfigError, defaultConfig, type Profile, resolveConfig } from './node/config.js'
export {
  JoinError,
  type JoinResult,
  type RequestCertificateOptions,
  requestCertificate,
} from './node/join.js'
export { generateSigningKey } from './node/keys.js'
export { MESH_VERSION } from './version.js'
