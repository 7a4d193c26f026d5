/**
 * The agent's HTTP listeners: the API and web view on `apiListen`, Prometheus metrics on
 * `metricsListen`. Both are off unless configured; runtime.ts imports this module only when one is,
 * so an agent without them never loads hono or prom-client.
 */
import { isIP } from 'node:net'
import type { ControlHandler } from '../../control/index.js'
import type { AgentConfig } from '../../node/config.js'
import type { Logger } from '../../node/log.js'
import { internalsOf } from '../../node/node.js'
import type { MeshNode } from '../../node/node-types.js'
import { MESH_VERSION } from '../../version.js'
import { createHttpApi, type HttpApi } from '../http-api.js'
import {
  type AgentMetrics,
  createAgentMetrics,
  createMetricsServer,
  type MetricsNodeInternals,
} from '../metrics.js'
import type { HttpListener } from './listen.js'
import { ensureApiToken } from './token.js'

/** What the agent runs over HTTP. */
export interface AgentHttp {
  /** The API's address, when `apiListen` is set. */
  readonly api?: HttpListener
  /** The metrics' address, when `metricsListen` is set. */
  readonly metrics?: HttpListener
  /** Stops both and unsubscribes the metrics from the node. Idempotent. */
  stop(): Promise<void>
}

/** What {@link startHttpServers} needs. */
export interface HttpServersInit {
  readonly node: MeshNode
  readonly config: AgentConfig
  readonly home: string
  /** The control socket's handlers (the API calls the same ones). */
  readonly handlers: Readonly<Record<string, ControlHandler>>
  readonly log: Logger
}

/** Starts what the configuration asks for; on failure nothing is left listening. */
export async function startHttpServers(init: HttpServersInit): Promise<AgentHttp> {
  const { config, log, node } = init
  let api: HttpApi | undefined
  let apiListener: HttpListener | undefined
  let metrics: AgentMetrics | undefined
  let metricsListener: HttpListener | undefined
  const stop = async () => {
    metrics?.stop()
    await Promise.all([api?.stop(), metricsListener?.stop()])
  }
  try {
    if (config.apiListen !== '') {
      api = createHttpApi({
        listen: config.apiListen,
        handlers: init.handlers,
        token: await ensureApiToken(init.home),
        version: MESH_VERSION,
        log: (level, message, context) => log[level]({ component: 'api', ...context }, message),
      })
      apiListener = await api.start()
      log.info({ component: 'api', url: `${apiListener.url}/` }, 'HTTP API and web view listening')
      warnIfExposed(log, 'apiListen', apiListener.host)
    }
    if (config.metricsListen !== '') {
      const served = api
      metrics = createAgentMetrics(node, {
        actionNames: actionNamesOf(node),
        version: MESH_VERSION,
        internals: metricsInternals(node),
        ...(served !== undefined ? { api: () => served.counters() } : {}),
      })
      metricsListener = await createMetricsServer(metrics, config.metricsListen, {
        log: (message, context) => log.warn({ component: 'metrics', ...context }, message),
      })
      log.info({ component: 'metrics', url: `${metricsListener.url}/metrics` }, 'metrics listening')
      warnIfExposed(log, 'metricsListen', metricsListener.host)
    }
  } catch (err) {
    await stop()
    throw err
  }
  let stopping: Promise<void> | undefined
  return {
    ...(apiListener !== undefined ? { api: apiListener } : {}),
    ...(metricsListener !== undefined ? { metrics: metricsListener } : {}),
    stop() {
      stopping ??= stop()
      return stopping
    },
  }
}

/** A listener beyond loopback is reachable by others: metrics have no token, the API's travels in clear. */
function warnIfExposed(log: Logger, key: string, host: string): void {
  const loopback = host === 'localhost' || host === '::1' || (isIP(host) === 4 && host.startsWith('127.'))
  if (!loopback)
    log.warn(
      { key, host },
      'HTTP listener on a non-loopback address: plain HTTP, reachable from the network; prefer 127.0.0.1 behind a TLS proxy',
    )
}

/** The node's registered action names (built-ins, the config's, in-process ones), for metric labels. */
function actionNamesOf(node: MeshNode): string[] {
  try {
    return internalsOf(node)
      .actions.list()
      .map(a => a.name)
  } catch {
    return []
  }
}

/** The authority listener and revocation list of a node made by createMeshNode; none for a stand-in. */
function metricsInternals(node: MeshNode): MetricsNodeInternals {
  try {
    const internals = internalsOf(node)
    return {
      onAuthorityChange: listener => internals.authority.onChange(listener),
      revocationListVersion: () => internals.revocations.current()?.list.version,
    }
  } catch {
    return {}
  }
}
