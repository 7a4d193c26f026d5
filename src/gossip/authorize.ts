/**
 * Per-node authorization: may this operator run this action here?
 *
 * A policy is an ordered list of allow rules; the first rule whose every present field matches allows
 * the request, and no matching rule means deny. A rule's fields:
 * - `actions`: globs over the action name (required, non-empty);
 * - `operators`: globs over the issuing certificate's name (absent: any operator);
 * - `roles`: the issuer must hold at least one of them (absent: any);
 * - `zones`: globs over THIS node's zone, so one shared policy file can differ per zone (absent: any).
 *
 * Arbitrary commands are never allowed by accident: actions listed in {@link SHELL_ACTIONS} are only
 * allowed by a rule that names them literally; a wildcard such as `*` does not match them.
 *
 * The issuer has already been checked to hold the `operator` role by the validation pipeline; this
 * module only decides between operators.
 */
import type { Certificate, Role } from '../ca/types.js'
import { ROLES } from '../ca/types.js'
import { globMatch } from './filter.js'

/** Actions that run arbitrary commands; a rule must name them exactly to allow them. */
export const SHELL_ACTIONS: readonly string[] = ['shell', 'sh', 'exec', 'run']

/** The read-only built-in actions that the default policy allows every operator. */
export const READ_ONLY_BUILTINS: readonly string[] = ['uptime', 'ping', 'facts']

/** Most rules in one policy. */
export const POLICY_RULES_MAX = 256
/** Most entries in one rule field (actions, operators, roles, zones). */
export const POLICY_LIST_ITEMS_MAX = 64
/** Longest entry (glob) in a rule field, in characters. */
export const POLICY_ITEM_CHARS_MAX = 128

/** One allow rule. */
export interface PolicyRule {
  readonly actions: readonly string[]
  readonly operators?: readonly string[]
  readonly roles?: readonly Role[]
  readonly zones?: readonly string[]
}

/** A node's authorization policy. */
export interface AuthorizationPolicy {
  readonly rules: readonly PolicyRule[]
}

/** Operators may run the read-only built-ins, nothing else. */
export const DEFAULT_POLICY: AuthorizationPolicy = {
  rules: [{ actions: [...READ_ONLY_BUILTINS], roles: ['operator'] }],
}

/** What is being asked. */
export interface AuthorizationQuery {
  readonly action: string
  /** The issuer's verified certificate. */
  readonly operator: Certificate
  /** This node's zone. */
  readonly nodeZone: string
}

/** The decision, with a reason a human can read (logged, and sent in `denied` replies). */
export type AuthorizationDecision =
  | { readonly allow: true; readonly ruleIndex: number; readonly reason: string }
  | { readonly allow: false; readonly reason: string }

/** Decides a query against a policy. Pure; never throws. */
export function authorize(policy: AuthorizationPolicy, query: AuthorizationQuery): AuthorizationDecision {
  const { action, operator, nodeZone } = query
  const isShell = SHELL_ACTIONS.includes(action)
  for (const [index, rule] of policy.rules.entries()) {
    const actionMatches = rule.actions.some(glob => (isShell ? glob === action : globMatch(glob, action)))
    if (!actionMatches) continue
    if (rule.operators !== undefined && !rule.operators.some(glob => globMatch(glob, operator.name))) continue
    if (rule.roles !== undefined && !rule.roles.some(role => operator.roles.includes(role))) continue
    if (rule.zones !== undefined && !rule.zones.some(glob => globMatch(glob, nodeZone))) continue
    return { allow: true, ruleIndex: index, reason: `allowed by rule ${index + 1}` }
  }
  const hint = isShell ? ' (shell actions must be named explicitly in a rule)' : ''
  return {
    allow: false,
    reason: `no policy rule allows operator '${operator.name}' to run '${action}' in zone '${nodeZone}'${hint}`,
  }
}

/** Raised by {@link parsePolicy} with every problem found. */
export class PolicyError extends Error {
  override name = 'PolicyError'
  readonly code = 'bad-policy'
  readonly problems: readonly string[]
  constructor(problems: readonly string[]) {
    super(`invalid authorization policy: ${problems.join('; ')}`)
    this.problems = problems
  }
}

/**
 * Checks a policy read from configuration (`{ rules: [...] }`), reporting all problems at once.
 * @throws PolicyError
 */
export function parsePolicy(value: unknown): AuthorizationPolicy {
  const problems: string[] = []
  const record = value as { rules?: unknown } | null
  if (record === null || typeof record !== 'object' || !Array.isArray(record.rules)) {
    throw new PolicyError(['policy must be { rules: [...] }'])
  }
  if (record.rules.length > POLICY_RULES_MAX) problems.push(`more than ${POLICY_RULES_MAX} rules`)
  const rules: PolicyRule[] = []
  record.rules.slice(0, POLICY_RULES_MAX).forEach((raw: unknown, i: number) => {
    const where = `rules[${i}]`
    if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) {
      problems.push(`${where} must be a map`)
      return
    }
    const r = raw as Record<string, unknown>
    for (const key of Object.keys(r)) {
      if (!['actions', 'operators', 'roles', 'zones'].includes(key))
        problems.push(`${where}.${key} is not a rule field`)
    }
    const list = (field: string, required: boolean): string[] | undefined => {
      const v = r[field]
      if (v === undefined) {
        if (required) problems.push(`${where}.${field} is required`)
        return undefined
      }
      if (
        !Array.isArray(v) ||
        (required && v.length === 0) ||
        v.length > POLICY_LIST_ITEMS_MAX ||
        !v.every(x => typeof x === 'string' && x.length > 0 && x.length <= POLICY_ITEM_CHARS_MAX)
      ) {
        problems.push(`${where}.${field} must be a list of 1-${POLICY_LIST_ITEMS_MAX} non-empty texts`)
        return undefined
      }
      return v as string[]
    }
    const actions = list('actions', true)
    const operators = list('operators', false)
    const roles = list('roles', false)
    const zones = list('zones', false)
    if (roles !== undefined) {
      for (const role of roles)
        if (!ROLES.includes(role as Role)) problems.push(`${where}.roles: unknown role '${role}'`)
    }
    if (actions === undefined) return
    rules.push({
      actions,
      ...(operators === undefined ? {} : { operators }),
      ...(roles === undefined ? {} : { roles: roles as Role[] }),
      ...(zones === undefined ? {} : { zones }),
    })
  })
  if (problems.length > 0) throw new PolicyError(problems)
  return { rules }
}
