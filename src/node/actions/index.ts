/**
 * The actions a node can run for `mesh exec`, and the runner that bounds them: the public surface of
 * ./actions/ (what the agent, the library entry point and tests import).
 */
export {
  countUsersIn,
  countUtmpUsers,
  formatTimeOfDay,
  formatUptimeLine,
  systemActionSystem,
  type UptimeReport,
  UTMP_BYTES_MAX,
  UTMP_PATH,
  UTMP_RECORD_BYTES,
} from './builtins.js'
export { createActionRegistry, declaredActionProblems } from './registry.js'
export {
  ACTION_ARGV_LENGTH_MAX,
  ACTION_NAME_PATTERN,
  ACTION_OUTPUT_BYTES_CEILING,
  type ActionContext,
  type ActionCounters,
  type ActionDescription,
  type ActionErrorCode,
  type ActionHandler,
  type ActionHandlerOptions,
  type ActionHandlerResult,
  type ActionLimits,
  type ActionLog,
  type ActionRegistry,
  ActionRegistryError,
  type ActionRegistryInit,
  type ActionRequestInfo,
  type ActionResult,
  type ActionRunOptions,
  type ActionStatus,
  type ActionSystem,
  BUILTIN_ACTIONS,
  type BuiltinActionName,
  DEFAULT_ACTION_LIMITS,
  type DeclaredActionSpec,
  isValidActionName,
} from './types.js'
