/**
 * The library: an embeddable mesh node (options in; no files, no flags, no process-wide state), the
 * joiner that obtains a certificate, and the public types. The agent layer (src/agent/) and the CLI
 * are built on these.
 */
export type {
  ActionContext,
  ActionHandler,
  ActionHandlerOptions,
  ActionHandlerResult,
} from './actions/index.js'
export {
  type Clock,
  createManualClock,
  type ManualClock,
  type Random,
  systemClock,
  systemRandom,
} from './clock.js'
export { type AgentConfig, ConfigError, defaultConfig, type Profile, resolveConfig } from './config.js'
export {
  JOIN_REACH_TIMEOUT_MS_DEFAULT,
  JoinError,
  type JoinProgress,
  type JoinResult,
  type RequestCertificateOptions,
  requestCertificate,
} from './enrolment/joiner.js'
export { type ExecOptions, ExecRefusedError } from './exec.js'
export type { IssuerDriver } from './issuer-driver.js'
export { type CaMaterial, generateSigningKey, type Identity } from './keys.js'
export { createMeshNode } from './node.js'
export type { MeshNode, MeshNodeInit, NodeCounters, NodeStore } from './node-types.js'
export {
  type Portion,
  type RolloutEvent,
  type RolloutOptions,
  RolloutOptionsError,
  type RolloutResult,
  type RolloutWave,
} from './rollout.js'
export type { ZoneView } from './zone-view.js'
