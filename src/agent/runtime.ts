/**
 * The agent process around a node: loads --home, resolves the configuration (file < environment <
 * flags), starts the node with file persistence, and serves the control socket. Used by `mesh agent`
 * and by `mesh demo` (which runs several in one process).
 */

import { isAbsolute, join } from 'node:path'
import { fingerprintOf, formatFingerprint } from '../ca/fingerprint.js'
import { type ControlServer, controlSocketPath, createControlServer } from '../control/index.js'
import { type AgentConfig, resolveConfig } from '../node/config.js'
import { createLogger, type Logger } from '../node/log.js'
import { createMeshNode } from '../node/node.js'
import type { MeshNode } from '../node/node-types.js'
import type { AgentHttp } from './api/servers.js'
import { type AuditFile, openAuditFile } from './audit-file.js'
import { controlHandlers } from './control-methods.js'
import {
  checkSecretFileMode,
  HomeError,
  homePaths,
  loadHome,
  saveAuthorityEpochs,
  saveCaHandover,
  saveCaHolders,
  saveCaReplica,
  saveIssuerState,
  saveNodeCertificate,
  saveRevocations,
  saveRoster,
  saveRunRecord,
  saveZoneRoster,
} from './home.js'
import { createFileJobLog } from './job-log.js'
import { cleanStaleTempFiles, readStateFile } from './state-file.js'

/** A running agent. */
export interface RunningAgent {
  readonly node: MeshNode
  readonly config: AgentConfig
  readonly control: ControlServer
  readonly fingerprint: string
  /** The HTTP API and metrics listeners (`apiListen`, `metricsListen`); empty when both are off. */
  readonly http: AgentHttp
  /** Stops the control socket, then the node. Idempotent. */
  stop(): Promise<void>
}

/** Options of {@link startAgent}. */
export interface StartAgentOptions {
  readonly home: string
  readonly env: Readonly<Record<string, string | undefined>>
  readonly flags?: Record<string, unknown>
  /** Default: stderr at the configured level, readable on a terminal and JSON otherwise (`logFormat`). */
  readonly logger?: Logger
}

/**
 * Loads the home and starts the agent.
 * @throws HomeError, ConfigError, ControlError (`agent-already-running`), or libp2p listen errors
 */
export async function startAgent(options: StartAgentOptions): Promise<RunningAgent> {
  const state = await loadHome(options.home)
  const config = resolveConfig({
    file: state.configFile,
    filePath: homePaths(options.home).config,
    env: options.env,
    flags: options.flags,
  })
  const name = state.node.certificate.certificate.name
  const log = options.logger ?? createLogger(config.logLevel, name, config.logFormat)
  let pnetKey: Uint8Array | undefined
  if (config.pnetKeyFile !== '') {
    const path = isAbsolute(config.pnetKeyFile) ? config.pnetKeyFile : join(options.home, config.pnetKeyFile)
    await checkSecretFileMode(path)
    const read = await readStateFile(path, 1024)
    if (!read.ok)
      throw new HomeError('unreadable', `cannot read the network key ${path}: ${read.error.message}`)
    pnetKey = read.bytes
  }
  const home = options.home
  for (const problem of state.problems) log.warn({ problem }, 'state file in the home left out')
  // Opened once this process holds the home (below); the node reads the head when it starts.
  let audit: AuditFile | undefined
  const auditFile = (): AuditFile => {
    if (audit === undefined) throw new Error('assertion: the audit log is not open yet')
    return audit
  }
  const node = await createMeshNode({
    node: state.node,
    caPublicKey: state.caPublicKey,
    operator: state.operator,
    ca: state.ca,
    ...(state.caHolders === undefined ? {} : { caHolders: state.caHolders }),
    ...(state.caReplica === undefined ? {} : { caReplica: state.caReplica }),
    revocations: state.revocations,
    roster: state.roster,
    zoneRoster: state.zoneRoster,
    authorityEpochs: state.authorityEpochs,
    pnetKey,
    config,
    logger: log,
    store: {
      saveIssuerState: s => saveIssuerState(home, s),
      saveCaReplica: bytes => saveCaReplica(home, bytes),
      saveCaHolders: holders => saveCaHolders(home, holders),
      saveCaHandover: handover => saveCaHandover(home, handover),
      saveRevocations: bytes => saveRevocations(home, bytes),
      saveNodeCertificate: cert => saveNodeCertificate(home, cert),
      saveRoster: bytes => saveRoster(home, bytes),
      saveZoneRoster: bytes => saveZoneRoster(home, bytes),
      saveAuthorityEpochs: bytes => saveAuthorityEpochs(home, bytes),
      // Read and checked by loadHome (a damaged record stops the agent before it starts the network).
      loadRunRecord: async () => state.runRecord,
      saveRunRecord: bytes => saveRunRecord(home, bytes),
      openJobLog: () => createFileJobLog(homePaths(home).jobsLog, log.child({ component: 'jobs' })),
      appendAudit: records => auditFile().append(records),
      loadAuditHead: async () => auditFile().head(),
      readAuditTail: (sinceMs, bytesMax) => auditFile().tail(sinceMs, bytesMax),
    },
  })
  const handlers = controlHandlers(node, state.caPublicKey, { audit: () => audit })
  const control = createControlServer({
    path: controlSocketPath(home),
    handlers,
    log: (level, message, context) => log[level]({ component: 'control', ...context }, message),
  })
  // The socket first: a second agent on the same home fails here, before it touches the network.
  await control.start()
  // Only now that this process holds the home: a second agent started by mistake must not delete the
  // temporary file of a write the running one has in progress (its rename would fail, and a CA whose
  // state cannot be saved stops issuing).
  const removed = [
    ...(await cleanStaleTempFiles(home).catch(() => [])),
    ...(state.ca !== undefined ? await cleanStaleTempFiles(homePaths(home).caDir).catch(() => []) : []),
  ]
  if (removed.length > 0) log.info({ removed }, 'removed temporary files of writes a crash interrupted')
  let http: AgentHttp = { stop: async () => undefined }
  try {
    // Also only now: cutting a torn tail must never race the running agent's write.
    audit = await openAuditFile({
      directory: homePaths(home).auditDir,
      segmentBytesMax: config.auditSegmentBytesMax,
      segmentsMax: config.auditSegmentsMax,
      publicKey: state.node.certificate.certificate.publicKey,
      log: (level, message, context) => log[level]({ component: 'audit', ...context }, message),
    })
    await node.start()
    // -- HTTP API, web view and metrics (src/agent/api/servers.ts): loaded only when configured --
    if (config.apiListen !== '' || config.metricsListen !== '') {
      const { startHttpServers } = await import('./api/servers.js')
      http = await startHttpServers({ node, config, home, handlers, log }).catch(async (err: unknown) => {
        await node.stop()
        throw err
      })
    }
    // -- end of the HTTP block --
  } catch (err) {
    await control.stop()
    await audit?.close()
    throw err
  }
  let stopping: Promise<void> | undefined
  return {
    node,
    config,
    control,
    fingerprint: formatFingerprint(fingerprintOf(state.caPublicKey)),
    http,
    stop() {
      stopping ??= (async () => {
        await http.stop()
        await control.stop()
        await node.stop()
        await audit?.close()
      })()
      return stopping
    },
  }
}

export { homePaths }
