/**
 * Prometheus metrics of one agent (docs/metrics.md), served by {@link createMetricsServer} at
 * `/metrics` on `metricsListen` when it is set (off by default).
 *
 * Two kinds of source, and no timer of our own:
 * - Gauges and counters the node already keeps (`node.counters()`, the member table, the zone view,
 *   the certificate, the revocation list) are read when Prometheus scrapes: each metric has a collect
 *   callback, and one scrape reads each source once ({@link AgentMetrics.render}).
 * - What only events tell (actions run with their durations, replies sent, exec latency as the
 *   requester sees it, this node's own lease changes) comes from `node.observe` and the authority
 *   driver's listener: a few map updates per request.
 *
 * Labels are bounded sets, never a request id or free text: action names get a label of their own
 * only when they are built-in or declared in this node's config (at most {@link ACTION_LABELS_MAX}),
 * everything else is `other`; zones keep the first {@link ZONE_LABELS_MAX} seen, then `other`.
 *
 * Process metrics are computed at scrape time too. prom-client's `collectDefaultMetrics` is not used:
 * it always enables `monitorEventLoopDelay`, a libuv timer every 10 ms, and that timer alone cost
 * 0.9 % of a core in an otherwise idle process on the dev machine (0.02 % without it), more than the
 * lean agent's whole idle budget. The event-loop lag here is measured by one `setImmediate` per
 * scrape, and the loop's busy time (event-loop utilisation) is a counter read from V8's bookkeeping.
 */
import { readdir } from 'node:fs/promises'
import { createServer } from 'node:http'
import { performance } from 'node:perf_hooks'
import { Counter, Gauge, Histogram, Registry } from 'prom-client'
import type { MeshNode, NodeCounters } from '../node/node-types.js'
import type { ZoneView } from '../node/zone-view.js'
import { type HttpListener, listenHttp } from './api/listen.js'

/** Most action names with a label of their own; the rest are {@link OTHER_LABEL}. */
export const ACTION_LABELS_MAX = 32
/** Most zones with a label of their own; zones seen after them are {@link OTHER_LABEL}. */
export const ZONE_LABELS_MAX = 64
/** Longest label value kept as it is (zone names are short; a longer one becomes {@link OTHER_LABEL}). */
export const LABEL_LENGTH_MAX = 64
/** The label of everything past a bound. */
export const OTHER_LABEL = 'other'
/** Path of the exposition. */
export const METRICS_PATH = '/metrics'

/** Action run times, seconds: built-ins take milliseconds, declared commands up to their limit. */
const ACTION_BUCKETS_S = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300]
/** Exec latency as the requester sees it (issue to last reply, or the deadline), seconds. */
const EXEC_BUCKETS_S = [0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 300]
const MEMBER_STATES = ['alive', 'suspect', 'dead', 'left'] as const

/** Counters the HTTP API keeps (http-api.ts), shown when it runs. */
export interface ApiCounterSource {
  /** Requests answered, by route id and HTTP status code. */
  readonly byRoute: Readonly<Record<string, Readonly<Record<string, number>>>>
  /** Requests refused for a missing or wrong token. */
  readonly unauthorized: number
}

/** The parts of a node the metrics read beyond {@link MeshNode}; absent for a stand-in node. */
export interface MetricsNodeInternals {
  /** Every lease change of this node, in any zone. */
  onAuthorityChange?(listener: (event: { zone: string; epoch: number; held: boolean }) => void): () => void
  /** The version of the newest revocation list held, undefined when none. */
  revocationListVersion?(): number | undefined
}

/** Settings of {@link createAgentMetrics}. */
export interface AgentMetricsInit {
  /** Action names that get a label of their own: the built-ins and the config's `[actions]`. */
  readonly actionNames: readonly string[]
  readonly version: string
  readonly internals?: MetricsNodeInternals
  /** The HTTP API's counters, when the API runs in this agent. */
  readonly api?: () => ApiCounterSource
}

/** The agent's metrics. */
export interface AgentMetrics {
  readonly registry: Registry
  /** `Content-Type` of {@link render}'s text. */
  readonly contentType: string
  /** The exposition text; concurrent calls share one collection. */
  render(): Promise<string>
  /** Unsubscribes from the node. Idempotent. */
  stop(): void
}

/** A label mapper: values in `fixed`, or (when `grow`) the first `max` seen, keep their name. */
export function boundedLabel(
  max: number,
  fixed: readonly string[] = [],
  grow = false,
): (value: string) => string {
  const kept = new Set(fixed.filter(v => v.length <= LABEL_LENGTH_MAX).slice(0, max))
  return value => {
    if (kept.has(value)) return value
    if (!grow || kept.size >= max || value.length > LABEL_LENGTH_MAX || value === OTHER_LABEL)
      return OTHER_LABEL
    kept.add(value)
    return value
  }
}

/** What one scrape reads from the node, once. */
interface ScrapeSources {
  readonly counters: NodeCounters
  readonly zones: readonly ZoneView[]
}

/** Builds the metrics of `node` and subscribes to its events. */
export function createAgentMetrics(node: MeshNode, init: AgentMetricsInit): AgentMetrics {
  const registry = new Registry()
  const registers = [registry]
  const actionLabel = boundedLabel(ACTION_LABELS_MAX, init.actionNames)
  const zoneLabel = boundedLabel(ZONE_LABELS_MAX, [node.zone], true)
  let sources: ScrapeSources | undefined
  const scrape = (): ScrapeSources => {
    sources ??= { counters: node.counters(), zones: node.zones() }
    return sources
  }

  // -- identity ---------------------------------------------------------------------------------
  new Gauge({
    name: 'mesh_node_info',
    help: 'This node: name, zone and mesh version (always 1)',
    labelNames: ['name', 'zone', 'version'],
    registers,
    collect() {
      this.set({ name: node.name, zone: node.zone, version: init.version }, 1)
    },
  })

  // -- membership ---------------------------------------------------------------------------------
  new Gauge({
    name: 'mesh_members',
    help: 'Members in the membership table (this node included), by zone and state',
    labelNames: ['zone', 'state'],
    registers,
    collect() {
      this.reset()
      const counts = new Map<string, Record<string, number>>()
      for (const m of node.members()) {
        const zone = zoneLabel(m.zone)
        const row = counts.get(zone) ?? Object.fromEntries(MEMBER_STATES.map(s => [s, 0]))
        row[m.state] = (row[m.state] ?? 0) + 1
        counts.set(zone, row)
      }
      for (const [zone, row] of counts)
        for (const [state, n] of Object.entries(row)) this.set({ zone, state }, n)
    },
  })
  new Gauge({
    name: 'mesh_membership_local_health',
    help: "Lifeguard's local health score (0 healthy; probe timings are stretched score + 1 times)",
    registers,
    collect() {
      this.set(scrape().counters.membership.health)
    },
  })
  new Counter({
    name: 'mesh_membership_refused_total',
    help: 'Membership records and suspicions refused, by reason',
    labelNames: ['reason'],
    registers,
    collect() {
      this.reset()
      for (const [reason, n] of Object.entries(scrape().counters.membership.refused)) this.inc({ reason }, n)
    },
  })

  // -- requests and replies -----------------------------------------------------------------------
  new Counter({
    name: 'mesh_requests_total',
    help: 'Requests validated (gossip and our own), by outcome code',
    labelNames: ['code'],
    registers,
    collect() {
      this.reset()
      for (const [code, n] of Object.entries(scrape().counters.requests)) this.inc({ code }, n ?? 0)
    },
  })
  const verdicts = new Counter({
    name: 'mesh_request_verdicts_total',
    help: 'Valid requests by what this node decided: execute, denied, not-for-us, unknown-action',
    labelNames: ['verdict'],
    registers,
  })
  const actionsRun = new Counter({
    name: 'mesh_actions_total',
    help: 'Actions run on this node, by action and final status',
    labelNames: ['action', 'status'],
    registers,
  })
  const actionSeconds = new Histogram({
    name: 'mesh_action_duration_seconds',
    help: 'Run time of actions run on this node, by action and final status',
    labelNames: ['action', 'status'],
    buckets: ACTION_BUCKETS_S,
    registers,
  })
  const repliesSent = new Counter({
    name: 'mesh_replies_sent_total',
    help: 'Signed replies this node sent: kind ack or done, and the status of a done (none for an ack)',
    labelNames: ['kind', 'status'],
    registers,
  })
  const repliesReceived = new Counter({
    name: 'mesh_replies_received_total',
    help: 'Completions from expected nodes received by execs issued here: ok, or not ok',
    labelNames: ['result'],
    registers,
  })
  const repliesMissing = new Counter({
    name: 'mesh_replies_missing_total',
    help: 'Expected nodes that had not answered an exec issued here by its deadline',
    registers,
  })
  new Counter({
    name: 'mesh_replies_refused_total',
    help: 'Replies to our requests that failed verification',
    registers,
    collect() {
      this.reset()
      this.inc(scrape().counters.repliesRefused)
    },
  })
  const execSeconds = new Histogram({
    name: 'mesh_exec_duration_seconds',
    help: 'Execs issued from this node: time from issue to the last expected reply (or the deadline)',
    labelNames: ['action'],
    buckets: EXEC_BUCKETS_S,
    registers,
  })

  // -- zone authority -----------------------------------------------------------------------------
  /** Per zone: the first and the highest epoch this node saw. */
  const epochsSeen = new Map<string, { first: number; highest: number }>()
  const seeEpoch = (zone: string, epoch: number): void => {
    if (!(epoch > 0)) return
    const label = zoneLabel(zone)
    const seen = epochsSeen.get(label)
    if (seen === undefined) epochsSeen.set(label, { first: epoch, highest: epoch })
    else if (epoch > seen.highest) seen.highest = epoch
  }
  const authorityZones = (): ZoneView[] => {
    const zones = scrape().zones.filter(z => z.authority !== null)
    for (const z of zones) seeEpoch(z.zone, z.epoch)
    return zones
  }
  new Gauge({
    name: 'mesh_zone_authority_epoch',
    help: "Epoch (fencing token) of the zone's authority lease as this node knows it",
    labelNames: ['zone'],
    registers,
    collect() {
      this.reset()
      for (const z of authorityZones()) this.set({ zone: zoneLabel(z.zone) }, z.epoch)
    },
  })
  new Gauge({
    name: 'mesh_zone_authority_held',
    help: "1 while this node holds the zone's authority lease, else 0 (zones with a known holder)",
    labelNames: ['zone'],
    registers,
    collect() {
      this.reset()
      for (const z of scrape().zones) {
        const held = node.isAuthority(z.zone) !== null
        if (z.authority !== null || held) this.set({ zone: zoneLabel(z.zone) }, held ? 1 : 0)
      }
    },
  })
  new Gauge({
    name: 'mesh_zone_lease_remaining_seconds',
    help: "What is left of the zone holder's lease, for zones this node votes in",
    labelNames: ['zone'],
    registers,
    collect() {
      this.reset()
      for (const z of scrape().zones)
        if (z.authority !== null && z.leaseRemainingMs !== null)
          this.set({ zone: zoneLabel(z.zone) }, z.leaseRemainingMs / 1000)
    },
  })
  new Counter({
    name: 'mesh_zone_authority_failovers_total',
    help: 'Elections after the first this node saw in the zone (epoch increments: one per election)',
    labelNames: ['zone'],
    registers,
    collect() {
      this.reset()
      authorityZones()
      for (const [zone, seen] of epochsSeen) this.inc({ zone }, seen.highest - seen.first)
    },
  })
  const leaseChanges = new Counter({
    name: 'mesh_authority_changes_total',
    help: 'Times this node acquired or lost a zone authority lease',
    labelNames: ['zone', 'change'],
    registers,
  })

  // -- trust ---------------------------------------------------------------------------------------
  new Gauge({
    name: 'mesh_certificate_expiry_timestamp_seconds',
    help: "When this node's certificate expires (Unix time; renewal starts at two thirds of its life)",
    registers,
    collect() {
      this.set(node.certificate().certificate.notAfterMs / 1000)
    },
  })
  new Gauge({
    name: 'mesh_certificate_revoked',
    help: "1 when the newest revocation list held names this node's own certificate",
    registers,
    collect() {
      this.set(node.isRevoked(node.certificate().certificate.serial) ? 1 : 0)
    },
  })
  new Gauge({
    name: 'mesh_revocation_list_version',
    help: 'Version of the newest CA-signed revocation list held (0: none)',
    registers,
    collect() {
      this.set(init.internals?.revocationListVersion?.() ?? 0)
    },
  })
  if (node.issuer !== undefined) {
    const issuer = node.issuer
    new Gauge({
      name: 'mesh_ca_pending_requests',
      help: "Signing requests waiting for 'mesh ca sign' (CA node only)",
      registers,
      collect() {
        this.set(issuer.listPending().length)
      },
    })
  }
  new Gauge({
    name: 'mesh_zone_roster_version',
    help: 'Version of the CA-signed zone roster held (0: none)',
    registers,
    collect() {
      this.set(scrape().counters.zoneRoster.version ?? 0)
    },
  })

  // -- traffic -------------------------------------------------------------------------------------
  new Counter({
    name: 'mesh_protocol_messages_total',
    help: 'Messages per protocol and direction (gossip:<topic> rows are part of gossipsub, authority:<type> rows of authority)',
    labelNames: ['protocol', 'direction'],
    registers,
    collect() {
      this.reset()
      for (const [protocol, t] of Object.entries(scrape().counters.traffic.protocols)) {
        this.inc({ protocol, direction: 'in' }, t.msgsIn)
        this.inc({ protocol, direction: 'out' }, t.msgsOut)
      }
    },
  })
  new Counter({
    name: 'mesh_protocol_bytes_total',
    help: 'Payload bytes per protocol and direction (no Noise, yamux or length-prefix framing)',
    labelNames: ['protocol', 'direction'],
    registers,
    collect() {
      this.reset()
      for (const [protocol, t] of Object.entries(scrape().counters.traffic.protocols)) {
        this.inc({ protocol, direction: 'in' }, t.bytesIn)
        this.inc({ protocol, direction: 'out' }, t.bytesOut)
      }
    },
  })

  // -- HTTP API ------------------------------------------------------------------------------------
  if (init.api !== undefined) {
    const api = init.api
    new Counter({
      name: 'mesh_api_requests_total',
      help: 'HTTP API requests answered, by route and status code',
      labelNames: ['route', 'code'],
      registers,
      collect() {
        this.reset()
        for (const [route, byCode] of Object.entries(api().byRoute))
          for (const [code, n] of Object.entries(byCode)) this.inc({ route, code }, n)
      },
    })
    new Counter({
      name: 'mesh_api_unauthorized_total',
      help: 'HTTP API requests refused (401) for a missing or wrong bearer token',
      registers,
      collect() {
        this.reset()
        this.inc(api().unauthorized)
      },
    })
  }

  registerProcessMetrics(registers)

  // -- events --------------------------------------------------------------------------------------
  const unsubscribe = node.observe(event => {
    switch (event.type) {
      case 'request-accepted':
        verdicts.inc({ verdict: event.verdict })
        return
      case 'reply-sent': {
        const done = event.done
        repliesSent.inc({ kind: event.kind, status: done?.status ?? 'none' })
        if (event.kind === 'done' && done !== undefined && done.ran) {
          const labels = { action: actionLabel(event.request.body.action), status: done.status }
          actionsRun.inc(labels)
          actionSeconds.observe(labels, done.durationMs / 1000)
        }
        return
      }
      case 'exec-finished':
        execSeconds.observe({ action: actionLabel(event.action) }, event.durationMs / 1000)
        repliesReceived.inc({ result: 'ok' }, event.ok)
        repliesReceived.inc({ result: 'not-ok' }, event.failed)
        repliesMissing.inc(event.missing)
        return
      default:
        return
    }
  })
  const unsubscribeAuthority =
    init.internals?.onAuthorityChange?.(event => {
      seeEpoch(event.zone, event.epoch)
      leaseChanges.inc({ zone: zoneLabel(event.zone), change: event.held ? 'acquired' : 'lost' })
    }) ?? (() => undefined)

  let rendering: Promise<string> | undefined
  let stopped = false
  return {
    registry,
    contentType: registry.contentType,
    render() {
      rendering ??= (async () => {
        try {
          await measureEventLoopLag()
          sources = undefined
          return await registry.metrics()
        } finally {
          sources = undefined
          rendering = undefined
        }
      })()
      return rendering
    },
    stop() {
      if (stopped) return
      stopped = true
      unsubscribe()
      unsubscribeAuthority()
    },
  }
}

// ---------------------------------------------------------------------------------------------------
// Process metrics (prom-client's names, computed at scrape time)

let lastLagSeconds = 0
/** How long one turn of the event loop takes now: the time a setImmediate waits. */
async function measureEventLoopLag(): Promise<void> {
  const start = performance.now()
  await new Promise<void>(resolve => setImmediate(resolve))
  lastLagSeconds = (performance.now() - start) / 1000
}

function registerProcessMetrics(registers: Registry[]): void {
  const startSeconds = Math.round(performance.timeOrigin / 1000)
  new Counter({
    name: 'process_cpu_user_seconds_total',
    help: 'User CPU time spent, seconds',
    registers,
    collect() {
      this.reset()
      this.inc(process.cpuUsage().user / 1e6)
    },
  })
  new Counter({
    name: 'process_cpu_system_seconds_total',
    help: 'System CPU time spent, seconds',
    registers,
    collect() {
      this.reset()
      this.inc(process.cpuUsage().system / 1e6)
    },
  })
  new Counter({
    name: 'process_cpu_seconds_total',
    help: 'User and system CPU time spent, seconds',
    registers,
    collect() {
      this.reset()
      const usage = process.cpuUsage()
      this.inc((usage.user + usage.system) / 1e6)
    },
  })
  new Gauge({
    name: 'process_resident_memory_bytes',
    help: 'Resident memory size, bytes',
    registers,
    collect() {
      this.set(process.memoryUsage.rss())
    },
  })
  new Gauge({
    name: 'process_start_time_seconds',
    help: 'Start time of the process since the Unix epoch, seconds',
    registers,
    collect() {
      this.set(startSeconds)
    },
  })
  new Gauge({
    name: 'process_open_fds',
    help: 'Open file descriptors',
    registers,
    async collect() {
      const fds = await readdir('/proc/self/fd').catch(() => undefined)
      if (fds !== undefined) this.set(fds.length)
    },
  })
  new Gauge({
    name: 'nodejs_heap_size_used_bytes',
    help: 'V8 heap in use, bytes',
    registers,
    collect() {
      this.set(process.memoryUsage().heapUsed)
    },
  })
  new Gauge({
    name: 'nodejs_heap_size_total_bytes',
    help: 'V8 heap allocated, bytes',
    registers,
    collect() {
      this.set(process.memoryUsage().heapTotal)
    },
  })
  new Gauge({
    name: 'nodejs_eventloop_lag_seconds',
    help: 'Event-loop lag: how long a setImmediate waited at this scrape, seconds',
    registers,
    collect() {
      this.set(lastLagSeconds)
    },
  })
  new Counter({
    name: 'nodejs_eventloop_active_seconds_total',
    help: 'Time the event loop spent running callbacks (rate() of it is the loop utilisation), seconds',
    registers,
    collect() {
      this.reset()
      this.inc(performance.eventLoopUtilization().active / 1000)
    },
  })
  new Gauge({
    name: 'nodejs_version_info',
    help: 'Node.js version (always 1)',
    labelNames: ['version'],
    registers,
    collect() {
      this.set({ version: process.version }, 1)
    },
  })
}

// ---------------------------------------------------------------------------------------------------
// The server

/** Limits of the metrics server. */
export interface MetricsServerLimits {
  readonly connectionsMax: number
  /** Time a client has to send its request headers (and the whole request), ms. */
  readonly requestTimeoutMs: number
}

/** Defaults of {@link MetricsServerLimits}: a scraper or two, and curl. */
export const DEFAULT_METRICS_SERVER_LIMITS: MetricsServerLimits = {
  connectionsMax: 16,
  requestTimeoutMs: 10_000,
}

/**
 * Serves `GET /metrics` (and HEAD) from `metrics`; everything else is 404 or 405. Unauthenticated, as
 * Prometheus expects: bind it to loopback or a network only the scraper reaches.
 * @throws ListenError
 */
export async function createMetricsServer(
  metrics: AgentMetrics,
  listen: string,
  options: { limits?: Partial<MetricsServerLimits>; log?: (message: string, context: object) => void } = {},
): Promise<HttpListener> {
  const limits = { ...DEFAULT_METRICS_SERVER_LIMITS, ...options.limits }
  const server = createServer(
    {
      requestTimeout: limits.requestTimeoutMs,
      headersTimeout: limits.requestTimeoutMs,
      maxHeaderSize: 8 * 1024,
    },
    (req, res) => {
      const path = (req.url ?? '').split('?')[0]
      if (path !== METRICS_PATH) {
        res.writeHead(404, { 'content-type': 'text/plain; charset=utf-8' }).end('not found; try /metrics\n')
        return
      }
      if (req.method !== 'GET' && req.method !== 'HEAD') {
        res.writeHead(405, { allow: 'GET, HEAD', 'content-type': 'text/plain; charset=utf-8' }).end()
        return
      }
      metrics.render().then(
        text => {
          res.writeHead(200, { 'content-type': metrics.contentType, 'cache-control': 'no-store' })
          res.end(req.method === 'HEAD' ? undefined : text)
        },
        (err: unknown) => {
          options.log?.('metrics collection failed', { err: String(err) })
          res.writeHead(500, { 'content-type': 'text/plain; charset=utf-8' }).end('collection failed\n')
        },
      )
    },
  )
  server.maxConnections = limits.connectionsMax
  server.keepAliveTimeout = 5_000
  return listenHttp(server, listen, 'metricsListen')
}
