/**
 * Listening for the agent's HTTP servers (the API and the metrics): a `metricsListen`/`apiListen`
 * value (`HOST:PORT`, parsed by config.ts) bound with a clear error when it cannot be, and a stop that
 * also closes kept-alive connections.
 */
import type { Server } from 'node:http'
import { parseListenAddress } from '../../node/config.js'

/** Why the metrics or API server could not start. */
export class ListenError extends Error {
  override name = 'ListenError'
  readonly code = 'listen-failed'
}

/** A running HTTP listener. */
export interface HttpListener {
  /** The bound address (the real port when 0 was asked). */
  readonly host: string
  readonly port: number
  /** `http://HOST:PORT` (IPv6 in brackets). */
  readonly url: string
  /** Stops listening and closes every connection. Idempotent. */
  stop(): Promise<void>
}

/**
 * Listens on `listen` (a `metricsListen`/`apiListen` value) with `server`; `key` names the config key
 * in errors.
 * @throws ListenError
 */
export async function listenHttp(server: Server, listen: string, key: string): Promise<HttpListener> {
  const parsed = parseListenAddress(listen)
  if (!parsed.ok || parsed.value === undefined)
    throw new ListenError(`${key}: ${parsed.ok ? 'no address' : parsed.problem}`)
  const { host, port } = parsed.value
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject)
    server.listen(port, host, () => {
      server.off('error', reject)
      resolve()
    })
  }).catch((err: NodeJS.ErrnoException) => {
    const why = err.code === 'EADDRINUSE' ? 'the address is in use' : err.message
    throw new ListenError(`cannot listen on ${listen} (${key}): ${why}`)
  })
  const address = server.address()
  const bound = typeof address === 'object' && address !== null ? address.port : port
  let stopping: Promise<void> | undefined
  return {
    host,
    port: bound,
    url: `http://${host.includes(':') ? `[${host}]` : host}:${bound}`,
    stop() {
      stopping ??= new Promise<void>(resolve => {
        server.close(() => resolve())
        server.closeAllConnections()
      })
      return stopping
    },
  }
}
