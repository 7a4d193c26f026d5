/**
 * The agent's configuration: one declarative schema (key, type, default, `MESH_` variable, unit, doc),
 * merged in a pure function from defaults < timing profile < file in --home < environment < flags, then
 * validated as a whole so every problem is reported at once (STYLE.md §7).
 *
 * Timing keys have per-profile defaults: `lan` (the default: fast failure detection on a LAN), `wan`
 * (tolerant of latency and loss) and `test` (short timers for in-process tests).
 */
import { isIP } from 'node:net'
import { multiaddr } from '@multiformats/multiaddr'
import { z } from 'zod'
import { CLOCK_SKEW_TOLERANCE_MS_DEFAULT } from '../ca/certificate.js'
import { ROLES } from '../ca/types.js'
import { parseDurationMs } from '../duration.js'
import { ACTION_NAME_PATTERN } from '../gossip/action-name.js'
import type { PolicyRule } from '../gossip/authorize.js'
import type { DeclaredActionSpec } from './actions/types.js'

/** Where a node listens unless told otherwise (the one owner of the default port). */
export const DEFAULT_LISTEN: readonly string[] = ['/ip4/0.0.0.0/tcp/7600']

/** Smallest audit segment allowed: one record of the largest size (64 KiB) and its frame. */
export const AUDIT_SEGMENT_BYTES_MIN = 64 * 1024 + 4

/** Named timing profiles. */
export type Profile = 'lan' | 'wan' | 'test'
export const PROFILES: readonly Profile[] = ['lan', 'wan', 'test']

type Kind = 'duration' | 'integer' | 'boolean' | 'string' | 'multiaddrs' | 'enum' | 'listenAddress'

/** One entry of the schema. */
export interface ConfigKey {
  readonly key: string
  readonly kind: Kind
  /** For `enum`: the allowed values. */
  readonly values?: readonly string[]
  /** Default, or per-profile defaults for timing keys. */
  readonly fallback: unknown | { readonly [P in Profile]: unknown }
  readonly perProfile?: boolean
  readonly env: string
  readonly unit?: 'ms' | 'bytes' | 'count'
  readonly doc: string
}

const timing = (lan: number, wan: number, test: number) => ({ lan, wan, test })

/** The schema. Nested tables (`tags`, `actions`, `policy`) come only from the file; see {@link FileOnly}. */
export const CONFIG_SCHEMA: readonly ConfigKey[] = [
  {
    key: 'profile',
    kind: 'enum',
    values: PROFILES,
    fallback: 'lan',
    env: 'MESH_PROFILE',
    doc: 'timing profile',
  },
  {
    key: 'listen',
    kind: 'multiaddrs',
    fallback: DEFAULT_LISTEN,
    env: 'MESH_LISTEN',
    doc: 'multiaddrs to listen on (comma-separated in the environment)',
  },
  {
    key: 'announce',
    kind: 'multiaddrs',
    fallback: [],
    env: 'MESH_ANNOUNCE',
    doc: 'multiaddrs to tell peers',
  },
  {
    key: 'bootstrap',
    kind: 'multiaddrs',
    fallback: [],
    env: 'MESH_BOOTSTRAP',
    doc: 'multiaddrs of peers to dial at start',
  },
  {
    key: 'mdns',
    kind: 'boolean',
    fallback: false,
    env: 'MESH_MDNS',
    doc: 'discover peers on the LAN with mDNS',
  },
  {
    key: 'logLevel',
    kind: 'enum',
    values: ['silent', 'error', 'warn', 'info', 'debug', 'trace'],
    fallback: 'info',
    env: 'MESH_LOG_LEVEL',
    doc: 'log level',
  },
  {
    key: 'logFormat',
    kind: 'enum',
    values: ['auto', 'json', 'pretty'],
    fallback: 'auto',
    env: 'MESH_LOG_FORMAT',
    doc: 'log lines: json, pretty (readable), or auto (pretty when stderr is a terminal, else json)',
  },
  {
    key: 'heartbeatIntervalMs',
    kind: 'duration',
    perProfile: true,
    fallback: timing(1_000, 5_000, 200),
    env: 'MESH_HEARTBEAT_INTERVAL',
    unit: 'ms',
    doc: 'membership probe period (one neighbour probed per period)',
  },
  {
    key: 'suspectAfterMs',
    kind: 'duration',
    perProfile: true,
    fallback: timing(1_500, 15_000, 800),
    env: 'MESH_SUSPECT_AFTER',
    unit: 'ms',
    doc: 'shortest suspicion (after a failed probe) before a member is dead, when its observers agree',
  },
  {
    key: 'deadAfterMs',
    kind: 'duration',
    perProfile: true,
    fallback: timing(4_500, 60_000, 2_000),
    env: 'MESH_DEAD_AFTER',
    unit: 'ms',
    doc: 'longest suspicion before a member is dead (one observer alone)',
  },
  {
    key: 'leaseTtlMs',
    kind: 'duration',
    perProfile: true,
    fallback: timing(3_000, 8_000, 1_000),
    env: 'MESH_LEASE_TTL',
    unit: 'ms',
    doc: 'zone authority lease lifetime',
  },
  {
    key: 'renewIntervalMs',
    kind: 'duration',
    perProfile: true,
    fallback: timing(2_000, 2_000, 250),
    env: 'MESH_RENEW_INTERVAL',
    unit: 'ms',
    doc: 'how often the holder renews its lease',
  },
  {
    key: 'leaseDriftBudgetMs',
    kind: 'duration',
    perProfile: true,
    fallback: timing(300, 800, 100),
    env: 'MESH_LEASE_DRIFT_BUDGET',
    unit: 'ms',
    doc: 'bound on how far two clocks drift apart over one lease; the holder stops acting this early',
  },
  {
    key: 'clockSkewToleranceMs',
    kind: 'duration',
    fallback: CLOCK_SKEW_TOLERANCE_MS_DEFAULT,
    env: 'MESH_CLOCK_SKEW_TOLERANCE',
    unit: 'ms',
    doc: 'clock offset tolerated between nodes for request, heartbeat and certificate validity',
  },
  {
    key: 'helloTimeoutMs',
    kind: 'duration',
    perProfile: true,
    fallback: timing(5_000, 15_000, 3_000),
    env: 'MESH_HELLO_TIMEOUT',
    unit: 'ms',
    doc: 'time a new connection has to present a valid certificate',
  },
  {
    key: 'inboundUpgradeTimeoutMs',
    kind: 'duration',
    perProfile: true,
    fallback: timing(3_000, 6_000, 3_000),
    env: 'MESH_INBOUND_UPGRADE_TIMEOUT',
    unit: 'ms',
    doc: 'time an accepted socket has to finish Noise and yamux before it is cut (pre-authentication)',
  },
  {
    key: 'requestLifetimeMsMax',
    kind: 'duration',
    fallback: 300_000,
    env: 'MESH_REQUEST_LIFETIME_MAX',
    unit: 'ms',
    doc: 'longest validity a request may carry',
  },
  {
    key: 'jobsMax',
    kind: 'integer',
    fallback: 10_000,
    env: 'MESH_JOBS_MAX',
    unit: 'count',
    doc: 'most jobs kept in the job store (jobs.log in the home); the oldest go first',
  },
  {
    key: 'jobsAgeMsMax',
    kind: 'duration',
    fallback: 7 * 86_400_000,
    env: 'MESH_JOBS_MAX_AGE',
    unit: 'ms',
    doc: 'longest a job is kept in the job store',
  },
  {
    key: 'certificateTtlMs',
    kind: 'duration',
    fallback: 30 * 86_400_000,
    env: 'MESH_CERTIFICATE_TTL',
    unit: 'ms',
    doc: 'lifetime of issued node certificates (renewed at two thirds)',
  },
  {
    key: 'actionTimeoutMs',
    kind: 'duration',
    fallback: 60_000,
    env: 'MESH_ACTION_TIMEOUT',
    unit: 'ms',
    doc: 'default wall-clock limit of an action',
  },
  {
    key: 'actionOutputBytesMax',
    kind: 'integer',
    fallback: 64 * 1024,
    env: 'MESH_ACTION_OUTPUT_MAX',
    unit: 'bytes',
    doc: 'action output kept per run',
  },
  {
    key: 'actionConcurrencyMax',
    kind: 'integer',
    fallback: 8,
    env: 'MESH_ACTION_CONCURRENCY_MAX',
    unit: 'count',
    doc: 'actions running at once',
  },
  {
    key: 'requestBytesMax',
    kind: 'integer',
    fallback: 64 * 1024,
    env: 'MESH_REQUEST_BYTES_MAX',
    unit: 'bytes',
    doc: 'largest request envelope accepted',
  },
  {
    key: 'connectionsMax',
    kind: 'integer',
    fallback: 1_000,
    env: 'MESH_CONNECTIONS_MAX',
    unit: 'count',
    doc: 'libp2p connection limit',
  },
  {
    key: 'auditSegmentBytesMax',
    kind: 'integer',
    fallback: 8 * 1024 * 1024,
    env: 'MESH_AUDIT_SEGMENT_BYTES_MAX',
    unit: 'bytes',
    doc: 'size at which the audit log (audit/ in the home) starts a new segment file (docs/audit.md)',
  },
  {
    key: 'auditSegmentsMax',
    kind: 'integer',
    fallback: 4,
    env: 'MESH_AUDIT_SEGMENTS_MAX',
    unit: 'count',
    doc: 'audit segment files kept; the oldest is deleted when one more starts',
  },
  {
    key: 'pnetKeyFile',
    kind: 'string',
    fallback: '',
    env: 'MESH_PNET_KEY_FILE',
    doc: 'pre-shared network key file (libp2p pnet); empty = off',
  },
  {
    key: 'metricsListen',
    kind: 'listenAddress',
    fallback: '',
    env: 'MESH_METRICS_LISTEN',
    doc: 'HOST:PORT serving Prometheus metrics at /metrics (docs/metrics.md); empty = off',
  },
  {
    key: 'apiListen',
    kind: 'listenAddress',
    fallback: '',
    env: 'MESH_API_LISTEN',
    doc: 'HOST:PORT serving the HTTP/JSON API under /v1/ and the web view at / (docs/api.md); empty = off',
  },
]

/** The merged, validated configuration. */
export interface AgentConfig {
  readonly profile: Profile
  readonly listen: readonly string[]
  readonly announce: readonly string[]
  readonly bootstrap: readonly string[]
  readonly mdns: boolean
  readonly logLevel: 'silent' | 'error' | 'warn' | 'info' | 'debug' | 'trace'
  readonly logFormat: 'auto' | 'json' | 'pretty'
  readonly heartbeatIntervalMs: number
  readonly suspectAfterMs: number
  readonly deadAfterMs: number
  readonly leaseTtlMs: number
  readonly renewIntervalMs: number
  readonly leaseDriftBudgetMs: number
  readonly clockSkewToleranceMs: number
  readonly helloTimeoutMs: number
  readonly inboundUpgradeTimeoutMs: number
  readonly requestLifetimeMsMax: number
  readonly certificateTtlMs: number
  readonly jobsMax: number
  readonly jobsAgeMsMax: number
  readonly actionTimeoutMs: number
  readonly actionOutputBytesMax: number
  readonly actionConcurrencyMax: number
  readonly requestBytesMax: number
  readonly connectionsMax: number
  readonly auditSegmentBytesMax: number
  readonly auditSegmentsMax: number
  readonly pnetKeyFile: string
  /** Where Prometheus metrics are served (`HOST:PORT`, see {@link parseListenAddress}); '' = off. */
  readonly metricsListen: string
  /** Where the HTTP/JSON API and the web view are served (`HOST:PORT`); '' = off. */
  readonly apiListen: string
  /** User-defined facts published in presence (`[tags]` in the file). */
  readonly tags: Readonly<Record<string, string>>
  /** Actions declared in `[actions.NAME]`. */
  readonly actions: Readonly<Record<string, DeclaredActionSpec>>
  /** Policy rules from `[[policy]]`; empty means the default policy. */
  readonly policy: readonly PolicyRule[]
}

/** Where a layer's values came from, for error messages. */
export type Layer = 'file' | 'environment' | 'flags'

/** Inputs to {@link resolveConfig}: each layer is raw (strings from env, parsed TOML from the file). */
export interface ConfigSources {
  readonly file?: Record<string, unknown>
  /** Where `file` was read from; named in its problems (`file /home/x/config.toml: listen[0]: …`). */
  readonly filePath?: string
  readonly env?: Readonly<Record<string, string | undefined>>
  readonly flags?: Record<string, unknown>
}

/** Raised with every problem found, one per line. */
export class ConfigError extends Error {
  override name = 'ConfigError'
  readonly code = 'invalid-config'
  readonly problems: readonly string[]
  constructor(problems: readonly string[]) {
    super(`invalid configuration: ${problems.join('; ')}`)
    this.problems = problems
  }
}

const FILE_ONLY = new Set(['tags', 'actions', 'policy'])
const KNOWN = new Set([...CONFIG_SCHEMA.map(k => k.key), ...FILE_ONLY])

const tagsSchema = z.record(z.string().regex(/^[A-Za-z][\w.-]{0,63}$/), z.string().max(256))
const durationish = z.union([z.number().int().positive(), z.string()])
const actionSchema = z.strictObject({
  argv: z.array(z.string()).min(1).max(256),
  timeout: durationish.optional(),
  outputBytesMax: z.number().int().positive().optional(),
  acceptsArgs: z.boolean().optional(),
  env: z.record(z.string().regex(/^[A-Za-z_][A-Za-z0-9_]*$/), z.string()).optional(),
  cwd: z.string().startsWith('/').optional(),
  description: z.string().max(256).optional(),
})
const actionsSchema = z.record(z.string().regex(ACTION_NAME_PATTERN), actionSchema)
const policySchema = z.array(
  z.strictObject({
    actions: z.array(z.string()).min(1),
    operators: z.array(z.string()).optional(),
    roles: z.array(z.enum(ROLES)).optional(),
    zones: z.array(z.string()).optional(),
    // The two-person rule (authorize.ts): distinct operators who must have signed.
    signatures: z.number().int().min(1).max(16).optional(),
    weights: z.record(z.string().min(1).max(128), z.number().int().min(0).max(100)).optional(),
    minWeight: z.number().int().min(1).max(1600).optional(),
  }),
)

/**
 * Merges the layers and validates the result. Pure: no I/O, no process.env.
 * @throws ConfigError listing every problem
 */
export function resolveConfig(sources: ConfigSources): AgentConfig {
  const problems: string[] = []
  const file = sources.file ?? {}
  const inFile = fileLabel(sources)
  for (const key of Object.keys(file)) {
    if (!KNOWN.has(key)) problems.push(`${inFile}: unknown key '${key}'`)
  }
  for (const [name, value] of Object.entries(sources.env ?? {})) {
    if (name.startsWith('MESH_') && value !== undefined && !ENV_NAMES.has(name) && !ENV_IGNORED.has(name)) {
      problems.push(`environment: unknown variable ${name}`)
    }
  }

  const raw: Record<string, unknown> = {}
  // The profile decides the defaults of the timing keys, so it is resolved first.
  const profileKey = CONFIG_SCHEMA[0]!
  const profile = (layered(profileKey, sources, problems) ?? 'lan') as Profile
  raw.profile = profile
  for (const entry of CONFIG_SCHEMA.slice(1)) {
    const value = layered(entry, sources, problems)
    raw[entry.key] = value !== undefined ? value : defaultOf(entry, profile)
  }

  const tags = tagsSchema.safeParse(file.tags ?? {})
  if (!tags.success)
    problems.push(...tags.error.issues.map(i => `${inFile}: tags.${i.path.join('.')}: ${i.message}`))
  const actions = actionsSchema.safeParse(file.actions ?? {})
  if (!actions.success) {
    problems.push(...actions.error.issues.map(i => `${inFile}: actions.${i.path.join('.')}: ${i.message}`))
  }
  const policy = policySchema.safeParse(file.policy ?? [])
  if (!policy.success)
    problems.push(...policy.error.issues.map(i => `${inFile}: policy.${i.path.join('.')}: ${i.message}`))

  const declared: Record<string, DeclaredActionSpec> = {}
  for (const [name, action] of Object.entries(actions.success ? actions.data : {})) {
    let timeoutMs: number | undefined
    if (action.timeout !== undefined) {
      timeoutMs = typeof action.timeout === 'number' ? action.timeout : parseDurationMs(action.timeout)
      if (timeoutMs === undefined)
        problems.push(`${inFile}: actions.${name}.timeout: not a duration like 10s`)
    }
    const { timeout: _timeout, ...rest } = action
    declared[name] = { ...rest, timeoutMs }
  }

  const config = {
    ...raw,
    tags: tags.success ? tags.data : {},
    actions: declared,
    policy: policy.success ? policy.data : [],
  } as unknown as AgentConfig
  problems.push(...checkRelationships(config))
  if (problems.length > 0) throw new ConfigError(problems)
  return config
}

/** Relationships between values that types alone cannot express. */
export function checkRelationships(c: AgentConfig): string[] {
  const problems: string[] = []
  if (c.renewIntervalMs + c.leaseDriftBudgetMs >= c.leaseTtlMs) {
    problems.push(
      `renewIntervalMs (${c.renewIntervalMs}) + leaseDriftBudgetMs (${c.leaseDriftBudgetMs}) must be below leaseTtlMs (${c.leaseTtlMs})`,
    )
  }
  if (2 * c.leaseDriftBudgetMs >= c.leaseTtlMs) {
    problems.push(
      `leaseTtlMs (${c.leaseTtlMs}) must exceed twice leaseDriftBudgetMs (${c.leaseDriftBudgetMs})`,
    )
  }
  if (c.suspectAfterMs <= c.heartbeatIntervalMs) {
    problems.push(
      `suspectAfterMs (${c.suspectAfterMs}) must exceed heartbeatIntervalMs (${c.heartbeatIntervalMs})`,
    )
  }
  if (c.deadAfterMs <= c.suspectAfterMs) {
    problems.push(`deadAfterMs (${c.deadAfterMs}) must exceed suspectAfterMs (${c.suspectAfterMs})`)
  }
  if (c.listen.length === 0) problems.push('listen must name at least one address')
  // A segment must hold at least one record of the largest size (src/audit/record.ts).
  if (c.auditSegmentBytesMax < AUDIT_SEGMENT_BYTES_MIN)
    problems.push(
      `auditSegmentBytesMax (${c.auditSegmentBytesMax}) must be at least ${AUDIT_SEGMENT_BYTES_MIN}`,
    )
  const metrics = parseListenAddress(c.metricsListen)
  const api = parseListenAddress(c.apiListen)
  if (metrics.ok && api.ok && metrics.value !== undefined && api.value !== undefined) {
    if (
      metrics.value.port !== 0 &&
      metrics.value.port === api.value.port &&
      metrics.value.host === api.value.host
    )
      problems.push(`metricsListen and apiListen must differ (both are ${c.apiListen})`)
  }
  return problems
}

/** A parsed `HOST:PORT` listen address (port 0: any free port, for tests). */
export interface ListenAddress {
  /** An IPv4 or IPv6 literal (IPv6 without brackets), or `localhost`. */
  readonly host: string
  readonly port: number
}

/**
 * Parses a `metricsListen`/`apiListen` value: `HOST:PORT` with an IPv4 literal, `[IPv6]` or
 * `localhost`; '' means off (value undefined). No name is resolved, so a typo is reported at start-up
 * rather than bound to whatever the name resolves to later.
 */
export function parseListenAddress(
  text: string,
): { ok: true; value: ListenAddress | undefined } | { ok: false; problem: string } {
  if (text === '') return { ok: true, value: undefined }
  const match = /^(?:\[([0-9A-Fa-f:.]+)\]|([0-9.]+)|(localhost)):(\d{1,5})$/.exec(text)
  const host = match?.[1] ?? match?.[2] ?? match?.[3]
  const port = Number(match?.[4])
  const bad = (why: string) => ({
    ok: false as const,
    problem: `'${text}' is not HOST:PORT (${why}), e.g. 127.0.0.1:9464 or [::1]:9464`,
  })
  if (match === null || host === undefined) return bad('an IP address or localhost, a colon, a port')
  if (!Number.isSafeInteger(port) || port > 65_535) return bad('port above 65535')
  if (match[2] !== undefined && isIP(host) !== 4) return bad(`${host} is not an IPv4 address`)
  if (match[1] !== undefined && isIP(host) !== 6) return bad(`${host} is not an IPv6 address`)
  return { ok: true, value: { host, port } }
}

/** The config of a profile with no file, environment or flags (for libraries and tests). */
export function defaultConfig(
  profile: Profile = 'lan',
  overrides: Record<string, unknown> = {},
): AgentConfig {
  // Tables that only a file may set (tags, actions, policy) are passed as the file layer.
  const file = Object.fromEntries(Object.entries(overrides).filter(([k]) => FILE_ONLY.has(k)))
  const flags = Object.fromEntries(Object.entries(overrides).filter(([k]) => !FILE_ONLY.has(k)))
  return resolveConfig({ file, flags: { profile, ...flags } })
}

const ENV_NAMES = new Set(CONFIG_SCHEMA.map(k => k.env))
/** Variables that are not config keys but are read elsewhere (the CLI's home, the simulator's seed). */
const ENV_IGNORED = new Set([
  'MESH_HOME',
  'MESH_SEED',
  'MESH_SWARM_SEEDS',
  'MESH_SWARM_FROM',
  'MESH_UPDATE_GOLDEN',
  'MESH_BENCH',
])

function defaultOf(entry: ConfigKey, profile: Profile): unknown {
  if (entry.perProfile === true) return (entry.fallback as Record<Profile, unknown>)[profile]
  return entry.fallback
}

/** How problems name the file layer: with its path when the caller gave one. */
function fileLabel(sources: ConfigSources): string {
  return sources.filePath === undefined ? 'file' : `file ${sources.filePath}`
}

/**
 * Highest layer that sets `entry`, parsed to its kind; records problems and returns undefined on error.
 * A problem names the layer and the key: `file PATH: key: …`, `environment MESH_VAR: …` (the variable
 * stands for the key; list items add `key[i]: …`) or `flags: key: …`.
 */
function layered(entry: ConfigKey, sources: ConfigSources, problems: string[]): unknown {
  const layers: Array<[Layer, unknown]> = [
    ['flags', sources.flags?.[entry.key]],
    ['environment', sources.env?.[entry.env]],
    ['file', sources.file?.[entry.key]],
  ]
  for (const [layer, value] of layers) {
    if (value === undefined) continue
    const parsed = parseValue(entry, value, layer === 'environment')
    if (!parsed.ok) {
      const where =
        layer === 'environment'
          ? `environment ${entry.env}`
          : `${layer === 'file' ? fileLabel(sources) : layer}: ${entry.key}`
      for (const { index, problem } of parsed.problems) {
        if (index === undefined) problems.push(`${where}: ${problem}`)
        else if (layer === 'environment') problems.push(`${where}: ${entry.key}[${index}]: ${problem}`)
        else problems.push(`${where}[${index}]: ${problem}`)
      }
      return undefined
    }
    return parsed.value
  }
  return undefined
}

/** A problem with a value, or with item `index` of a list value. */
interface ValueProblem {
  readonly index?: number
  readonly problem: string
}
type Parsed = { ok: true; value: unknown } | { ok: false; problems: readonly ValueProblem[] }

const fail = (problem: string): Parsed => ({ ok: false, problems: [{ problem }] })

/** Why `text` is not a multiaddr, or undefined when it is one. Parsed only: no name is resolved. */
function multiaddrProblem(text: string): string | undefined {
  if (text.trim() === '') return `'${text}' is not a multiaddr (empty)`
  try {
    multiaddr(text)
    return undefined
  } catch (err) {
    return `'${text}' is not a multiaddr (${(err as Error).message})`
  }
}

/** Items of a list value: a list of strings, or comma-separated text from the environment. */
function stringItems(value: unknown, fromEnv: boolean): string[] | undefined {
  if (fromEnv && typeof value === 'string') {
    return value
      .split(',')
      .map(s => s.trim())
      .filter(s => s.length > 0)
  }
  if (Array.isArray(value) && value.every(v => typeof v === 'string')) return value
  return undefined
}

function parseValue(entry: ConfigKey, value: unknown, fromEnv: boolean): Parsed {
  switch (entry.kind) {
    case 'duration': {
      if (typeof value === 'number' && Number.isSafeInteger(value) && value > 0) return { ok: true, value }
      if (typeof value === 'string') {
        const ms = parseDurationMs(value)
        if (ms !== undefined && ms > 0) return { ok: true, value: ms }
      }
      return fail(`'${String(value)}' is not a duration like 500ms, 10s, 5m or 24h`)
    }
    case 'integer': {
      const n = typeof value === 'string' && fromEnv ? Number(value) : value
      if (typeof n === 'number' && Number.isSafeInteger(n) && n > 0) return { ok: true, value: n }
      return fail(`'${String(value)}' is not a positive integer`)
    }
    case 'boolean': {
      if (typeof value === 'boolean') return { ok: true, value }
      if (fromEnv && typeof value === 'string' && /^(1|true|yes|on|0|false|no|off)$/i.test(value)) {
        return { ok: true, value: /^(1|true|yes|on)$/i.test(value) }
      }
      return fail(`'${String(value)}' is not true or false`)
    }
    case 'string':
      return typeof value === 'string' ? { ok: true, value } : fail('must be a string')
    case 'multiaddrs': {
      const items = stringItems(value, fromEnv)
      if (items === undefined) return fail('must be a list of multiaddrs')
      const problems: ValueProblem[] = []
      items.forEach((item, index) => {
        const problem = multiaddrProblem(item)
        if (problem !== undefined) problems.push({ index, problem })
      })
      return problems.length === 0 ? { ok: true, value: items } : { ok: false, problems }
    }
    case 'listenAddress': {
      if (typeof value !== 'string') return fail('must be a string like 127.0.0.1:9464')
      const parsed = parseListenAddress(value.trim())
      return parsed.ok ? { ok: true, value: value.trim() } : fail(parsed.problem)
    }
    case 'enum': {
      if (typeof value === 'string' && entry.values?.includes(value)) return { ok: true, value }
      return fail(`'${String(value)}' is not one of ${entry.values?.join(', ')}`)
    }
  }
}
