/**
 * Per-node authorization: may this operator run this action here?
 *
 * A policy is an ordered list of allow rules; the first rule whose every present field matches allows
 * the request, and no matching rule means deny. A rule's fields:
 * - `actions`: globs over the action name (required, non-empty);
 * - `operators`: globs over the issuing certificate's name (absent: any operator);
 * - `roles`: the issuer must hold at least one of them (absent: any);
 * - `zones`: globs over THIS node's zone, so one shared policy file can differ per zone (absent: any).
 * - `signatures` (the two-person rule): at least this many distinct operators — the issuer and the
 *   approvers (approval.ts) — who each match the rule's `operators` and `roles` must have signed;
 * - `weights` with `minWeight` (as MIG's ACLs): each such signer weighs the largest weight whose key
 *   matches it (`role:NAME` for a role, else a glob over the operator's name; no key: 0), and the
 *   signers' weights must add up to at least `minWeight`.
 *
 * A signature requirement cannot be bypassed by rule order: besides the first rule that allows the
 * issuer, EVERY rule whose `actions` and `zones` match the request and that carries `signatures` or
 * `minWeight` must be met, so a broad `actions = ["*"]` rule listed first does not lift the two-person
 * rule of `restart-db`.
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
export const READ_ONLY_BUILTINS: readonly string[] = ['uptime', 'ping', 'facts', 'job-lookup']

/**
 * The built-in that prints this node's audit records (src/node/audit.ts). Not read-only harmless: it
 * shows who ran what, with which arguments, across the mesh; the default policy gives it to holders of
 * the operator role only (never to a node's agent certificate), named apart from the read-only ones.
 */
export const AUDIT_TAIL_ACTION = 'audit-tail'

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
  /** Distinct signers (issuer + approvers) matching operators/roles that must have signed. */
  readonly signatures?: number
  /** Weights per signer (`role:NAME` or an operator-name glob); with {@link minWeight}. */
  readonly weights?: Readonly<Record<string, number>>
  /** Least total weight of the signers. */
  readonly minWeight?: number
}

/** A node's authorization policy. */
export interface AuthorizationPolicy {
  readonly rules: readonly PolicyRule[]
}

/** Operators may run the read-only built-ins and read the audit log (audit-tail), nothing else. */
export const DEFAULT_POLICY: AuthorizationPolicy = {
  // One rule, so the rules of a config file keep their numbers (they follow these in `allowed by rule N`).
  rules: [{ actions: [...READ_ONLY_BUILTINS, AUDIT_TAIL_ACTION], roles: ['operator'] }],
}

/** What is being asked. */
export interface AuthorizationQuery {
  readonly action: string
  /** The issuer's verified certificate. */
  readonly operator: Certificate
  /** This node's zone. */
  readonly nodeZone: string
  /** Verified approvers (distinct operators, never the issuer); default none. */
  readonly approvers?: readonly Certificate[]
}

/** The decision, with a reason a human can read (logged, and sent in `denied` replies). */
export type AuthorizationDecision =
  | { readonly allow: true; readonly ruleIndex: number; readonly reason: string }
  | { readonly allow: false; readonly reason: string }

/** Decides a query against a policy. Pure; never throws. */
export function authorize(policy: AuthorizationPolicy, query: AuthorizationQuery): AuthorizationDecision {
  const { action, operator, nodeZone } = query
  const isShell = SHELL_ACTIONS.includes(action)
  const signers = [operator, ...(query.approvers ?? [])]
  const appliesHere = (rule: PolicyRule): boolean =>
    rule.actions.some(glob => (isShell ? glob === action : globMatch(glob, action))) &&
    (rule.zones === undefined || rule.zones.some(glob => globMatch(glob, nodeZone)))
  const admits = (rule: PolicyRule, who: Certificate): boolean =>
    (rule.operators === undefined || rule.operators.some(glob => globMatch(glob, who.name))) &&
    (rule.roles === undefined || rule.roles.some(role => who.roles.includes(role)))
  let allowed: number | undefined
  for (const [index, rule] of policy.rules.entries()) {
    if (appliesHere(rule) && admits(rule, operator)) {
      allowed = index
      break
    }
  }
  if (allowed === undefined) {
    const hint = isShell ? ' (shell actions must be named explicitly in a rule)' : ''
    return {
      allow: false,
      reason: `no policy rule allows operator '${operator.name}' to run '${action}' in zone '${nodeZone}'${hint}`,
    }
  }
  // Every signature requirement that applies here, whatever the order of the rules.
  for (const [index, rule] of policy.rules.entries()) {
    if ((rule.signatures === undefined && rule.minWeight === undefined) || !appliesHere(rule)) continue
    const eligible = signers.filter(who => admits(rule, who))
    const names = eligible.map(c => c.name).join(', ') || 'nobody'
    if (rule.signatures !== undefined && eligible.length < rule.signatures) {
      return {
        allow: false,
        reason: `rule ${index + 1} needs ${rule.signatures} signatures of distinct operators for '${action}' in zone '${nodeZone}'; has ${eligible.length} (${names})`,
      }
    }
    if (rule.minWeight !== undefined) {
      const total = eligible.reduce((sum, who) => sum + weightOf(rule, who), 0)
      if (total < rule.minWeight) {
        return {
          allow: false,
          reason: `rule ${index + 1} needs a signature weight of ${rule.minWeight} for '${action}' in zone '${nodeZone}'; has ${total} (${names})`,
        }
      }
    }
  }
  const cosigned =
    signers.length > 1
      ? `, approved by ${signers
          .slice(1)
          .map(c => c.name)
          .join(', ')}`
      : ''
  return { allow: true, ruleIndex: allowed, reason: `allowed by rule ${allowed + 1}${cosigned}` }
}

/** A signer's weight under `rule`: the largest weight whose key matches it (0 when none). */
function weightOf(rule: PolicyRule, who: Certificate): number {
  let best = 0
  for (const [key, weight] of Object.entries(rule.weights ?? {})) {
    const matches = key.startsWith('role:')
      ? who.roles.includes(key.slice(5) as Role)
      : globMatch(key, who.name)
    if (matches && weight > best) best = weight
  }
  return best
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
      if (!['actions', 'operators', 'roles', 'zones', 'signatures', 'weights', 'minWeight'].includes(key))
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
    const integer = (field: string, min: number, max: number): number | undefined => {
      const v = r[field]
      if (v === undefined) return undefined
      if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < min || v > max) {
        problems.push(`${where}.${field} must be an integer from ${min} to ${max}`)
        return undefined
      }
      return v
    }
    const signatures = integer('signatures', 1, 16)
    const minWeight = integer('minWeight', 1, 1600)
    let weights: Record<string, number> | undefined
    if (r.weights !== undefined) {
      const w = r.weights
      if (
        w === null ||
        typeof w !== 'object' ||
        Array.isArray(w) ||
        Object.keys(w).length > POLICY_LIST_ITEMS_MAX ||
        !Object.entries(w).every(
          ([k, n]) =>
            k.length > 0 &&
            k.length <= POLICY_ITEM_CHARS_MAX &&
            typeof n === 'number' &&
            Number.isSafeInteger(n) &&
            n >= 0 &&
            n <= 100,
        )
      ) {
        problems.push(
          `${where}.weights must map up to ${POLICY_LIST_ITEMS_MAX} names or role:NAME to integers 0-100`,
        )
      } else weights = { ...(w as Record<string, number>) }
    }
    if ((weights === undefined) !== (minWeight === undefined) && !problems.some(p => p.startsWith(where)))
      problems.push(`${where}: weights and minWeight go together`)
    if (actions === undefined) return
    rules.push({
      actions,
      ...(operators === undefined ? {} : { operators }),
      ...(roles === undefined ? {} : { roles: roles as Role[] }),
      ...(zones === undefined ? {} : { zones }),
      ...(signatures === undefined ? {} : { signatures }),
      ...(weights === undefined ? {} : { weights }),
      ...(minWeight === undefined ? {} : { minWeight }),
    })
  })
  if (problems.length > 0) throw new PolicyError(problems)
  return { rules }
}
