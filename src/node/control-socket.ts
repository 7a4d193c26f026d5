/**
 * The local control channel between `mesh` commands and the running agent: a Unix domain socket at
 * `<home>/agent.sock`, mode 0600, speaking newline-delimited JSON (easy to debug with `socat`).
 *
 * ```
 * client → server  { "id": 1, "method": "exec", "params": {…} }        a request
 * client → server  { "id": 1, "cancel": true }                        cancel request 1
 * server → client  { "id": 1, "event": "reply", "data": {…} }         zero or more, while it runs
 * server → client  { "id": 1, "result": {…} }                         then exactly one of these
 *                  { "id": 1, "error": { "code": "…", "message": "…" } }
 * ```
 * Several requests may be in flight on one connection; frames carry the request id. When the client
 * disconnects or cancels, the handler's AbortSignal fires. Lines, requests per client, clients and the
 * unsent bytes queued for a client are bounded; a client that breaks a limit gets an error frame (and for
 * an oversized line, is disconnected, since the stream can no longer be trusted to be in sync).
 *
 * The socket is also the agent's lock on its home: start refuses when another agent answers on it, and
 * removes a stale socket left by a crash. This module depends on `node:` built-ins only, so the CLI
 * can load the client without paying for libp2p.
 */
import { chmod, lstat, unlink } from 'node:fs/promises'
import { createConnection, createServer, type Server, type Socket } from 'node:net'
import { dirname, join } from 'node:path'

/** File name of the control socket inside the home directory. */
export const CONTROL_SOCKET_NAME = 'agent.sock'
/** Mode of the control socket: only the owner may talk to the agent. */
export const CONTROL_SOCKET_MODE = 0o600
/** Longest socket path Linux accepts (sun_path is 108 bytes with the terminating NUL). */
export const CONTROL_SOCKET_PATH_BYTES_MAX = 107

/** Why a control call or the server failed. A closed set; the CLI maps each to one line. */
export type ControlErrorCode =
  // client side
  | 'agent-not-running'
  | 'permission-denied'
  | 'connection-closed'
  | 'timeout'
  | 'aborted'
  | 'protocol'
  // server start
  | 'agent-already-running'
  | 'path-in-use'
  | 'path-too-long'
  // sent by the server
  | 'bad-request'
  | 'unknown-method'
  | 'line-too-large'
  | 'too-many-requests'
  | 'too-many-clients'
  | 'cancelled'
  | 'invalid-params'
  | 'failed'
  | 'internal'

const REMOTE_CODES: ReadonlySet<string> = new Set<ControlErrorCode>([
  'bad-request',
  'unknown-method',
  'line-too-large',
  'too-many-requests',
  'too-many-clients',
  'cancelled',
  'invalid-params',
  'failed',
  'internal',
])

/**
 * An operating error of the control channel. Handlers throw it (codes `invalid-params`, `failed`, …) to
 * send a typed error to the client; any other exception reaches the client as `internal`.
 */
export class ControlError extends Error {
  override name = 'ControlError'
  readonly code: ControlErrorCode
  constructor(code: ControlErrorCode, message: string) {
    super(message)
    this.code = code
  }
}

/** The socket path for a home directory. */
export function controlSocketPath(home: string): string {
  return join(home, CONTROL_SOCKET_NAME)
}

// ---------------------------------------------------------------------------------------------------
// Server

/** What a handler may do while it runs. */
export interface ControlHandlerContext {
  /** Sends an event frame for this request. Ignored after the request finished or the client left. */
  emit(event: string, data?: unknown): void
  /** Aborted when the client cancels the request, disconnects, or the server stops. */
  readonly signal: AbortSignal
}

/**
 * Serves one method. `params` is untrusted JSON: validate it (throw ControlError `invalid-params`).
 * The resolved value must be JSON-serialisable; `undefined` is sent as null.
 */
export type ControlHandler = (params: unknown, context: ControlHandlerContext) => Promise<unknown>

/** Named limits of the server. */
export interface ControlServerLimits {
  /** Longest request line, in bytes (newline excluded). */
  readonly lineBytesMax: number
  /** Requests in flight per connection. */
  readonly requestsPerClientMax: number
  /** Connections at once. */
  readonly clientsMax: number
  /** Unsent bytes queued for one client; beyond it the client is too slow and is disconnected. */
  readonly writeBufferBytesMax: number
}

/** Defaults of {@link ControlServerLimits}. */
export const DEFAULT_CONTROL_SERVER_LIMITS: ControlServerLimits = {
  lineBytesMax: 1024 * 1024,
  requestsPerClientMax: 16,
  clientsMax: 64,
  writeBufferBytesMax: 16 * 1024 * 1024,
}

/** Counters of limit hits and bad input; monotonic. */
export interface ControlServerCounters {
  requests: number
  badRequests: number
  unknownMethods: number
  linesTooLarge: number
  tooManyRequests: number
  clientsRefused: number
  slowClientsDropped: number
}

/** What {@link createControlServer} needs. */
export interface ControlServerInit {
  /** Where to listen, normally {@link controlSocketPath}(home). */
  readonly path: string
  readonly handlers: Readonly<Record<string, ControlHandler>>
  readonly limits?: Partial<ControlServerLimits>
  readonly log?: (level: 'debug' | 'warn', message: string, context: Record<string, unknown>) => void
}

/** The agent's end of the control channel. */
export interface ControlServer {
  readonly path: string
  /**
   * Removes a stale socket, listens, sets mode 0600. Idempotent.
   * @throws ControlError `agent-already-running` when another agent answers on the path, `path-in-use`
   *   when the path is something other than a socket, `path-too-long` when the OS cannot bind it.
   */
  start(): Promise<void>
  /** Disconnects clients (aborting their handlers), stops listening, removes the socket. Idempotent. */
  stop(): Promise<void>
  /** Connections open now. */
  clientCount(): number
  counters(): ControlServerCounters
}

interface Client {
  readonly socket: Socket
  readonly requests: Map<string | number, AbortController>
}

/** Creates the server; nothing happens until {@link ControlServer.start}. */
export function createControlServer(init: ControlServerInit): ControlServer {
  const limits: ControlServerLimits = { ...DEFAULT_CONTROL_SERVER_LIMITS, ...init.limits }
  const log = init.log ?? (() => undefined)
  const clients = new Set<Client>()
  const counters: ControlServerCounters = {
    requests: 0,
    badRequests: 0,
    unknownMethods: 0,
    linesTooLarge: 0,
    tooManyRequests: 0,
    clientsRefused: 0,
    slowClientsDropped: 0,
  }
  let server: Server | undefined
  let starting: Promise<void> | undefined
  let stopping: Promise<void> | undefined

  function send(client: Client, frame: object): void {
    if (client.socket.destroyed) return
    let line: string
    try {
      line = `${JSON.stringify(frame)}\n`
    } catch (err) {
      const id = (frame as { id?: unknown }).id ?? null
      line = `${JSON.stringify({ id, error: { code: 'internal', message: `unserialisable result: ${(err as Error).message}` } })}\n`
    }
    client.socket.write(line)
    if (client.socket.writableLength > limits.writeBufferBytesMax) {
      counters.slowClientsDropped++
      log('warn', 'control client too slow, disconnecting', { queuedBytes: client.socket.writableLength })
      client.socket.destroy()
    }
  }

  function sendError(
    client: Client,
    id: string | number | null,
    code: ControlErrorCode,
    message: string,
  ): void {
    send(client, { id, error: { code, message } })
  }

  function handleLine(client: Client, line: string): void {
    if (line.trim() === '') return
    let frame: unknown
    try {
      frame = JSON.parse(line)
    } catch {
      counters.badRequests++
      sendError(client, null, 'bad-request', 'not a JSON line')
      return
    }
    if (frame === null || typeof frame !== 'object' || Array.isArray(frame)) {
      counters.badRequests++
      sendError(client, null, 'bad-request', 'a frame is a JSON object')
      return
    }
    const { id, method, params, cancel } = frame as Record<string, unknown>
    if (!(typeof id === 'number' || (typeof id === 'string' && id.length <= 64))) {
      counters.badRequests++
      sendError(client, null, 'bad-request', 'id must be a number or a short string')
      return
    }
    if (cancel === true) {
      client.requests.get(id)?.abort(new ControlError('cancelled', 'cancelled by the client'))
      return
    }
    if (typeof method !== 'string') {
      counters.badRequests++
      sendError(client, id, 'bad-request', 'method must be a string')
      return
    }
    if (client.requests.has(id)) {
      counters.badRequests++
      sendError(client, id, 'bad-request', `request ${JSON.stringify(id)} is already running`)
      return
    }
    // Own properties only: 'constructor' or '__proto__' are not methods.
    const handler = Object.hasOwn(init.handlers, method) ? init.handlers[method] : undefined
    if (handler === undefined) {
      counters.unknownMethods++
      sendError(client, id, 'unknown-method', `unknown method '${method.slice(0, 64)}'`)
      return
    }
    if (client.requests.size >= limits.requestsPerClientMax) {
      counters.tooManyRequests++
      sendError(
        client,
        id,
        'too-many-requests',
        `more than ${limits.requestsPerClientMax} requests in flight`,
      )
      return
    }
    counters.requests++
    const controller = new AbortController()
    client.requests.set(id, controller)
    const context: ControlHandlerContext = {
      emit: (event, data) => {
        if (client.requests.get(id) !== controller || controller.signal.aborted) return
        send(client, { id, event, data: data ?? null })
      },
      signal: controller.signal,
    }
    Promise.resolve()
      .then(() => handler(params ?? null, context))
      .then(
        result => {
          if (client.requests.get(id) === controller) send(client, { id, result: result ?? null })
        },
        (err: unknown) => {
          if (client.requests.get(id) !== controller) return
          if (err instanceof ControlError && REMOTE_CODES.has(err.code)) {
            sendError(client, id, err.code, err.message)
          } else if (controller.signal.aborted) {
            sendError(client, id, 'cancelled', 'cancelled')
          } else {
            log('warn', 'control handler failed', { method, error: (err as Error)?.message ?? String(err) })
            sendError(client, id, 'internal', (err as Error)?.message ?? String(err))
          }
        },
      )
      .finally(() => {
        if (client.requests.get(id) === controller) client.requests.delete(id)
      })
  }

  /** Forgets a client and aborts its handlers at once (not on the socket's later 'close'). */
  function dropClient(client: Client, reason: string): void {
    clients.delete(client)
    for (const controller of client.requests.values()) controller.abort(new ControlError('cancelled', reason))
    client.requests.clear()
  }

  function accept(socket: Socket): void {
    const client: Client = { socket, requests: new Map() }
    if (clients.size >= limits.clientsMax || stopping !== undefined) {
      counters.clientsRefused++
      refuseConnection(socket, 'too-many-clients', `more than ${limits.clientsMax} control connections`)
      return
    }
    clients.add(client)
    let pending: Buffer[] = []
    let pendingBytes = 0
    socket.on('data', (chunk: Buffer) => {
      let start = 0
      for (;;) {
        const newline = chunk.indexOf(0x0a, start)
        if (newline < 0) break
        const part = chunk.subarray(start, newline)
        start = newline + 1
        if (pendingBytes + part.byteLength > limits.lineBytesMax) return refuseLine()
        const line = pending.length === 0 ? part : Buffer.concat([...pending, part])
        pending = []
        pendingBytes = 0
        handleLine(client, line.toString('utf8'))
        if (socket.destroyed) return
      }
      const rest = chunk.subarray(start)
      if (rest.byteLength === 0) return
      if (pendingBytes + rest.byteLength > limits.lineBytesMax) return refuseLine()
      pending.push(rest)
      pendingBytes += rest.byteLength
    })
    function refuseLine(): void {
      counters.linesTooLarge++
      pending = []
      pendingBytes = 0
      refuseConnection(socket, 'line-too-large', `a line is longer than ${limits.lineBytesMax} bytes`)
    }
    socket.on('error', () => undefined) // a reset by the client; 'close' follows
    socket.on('close', () => dropClient(client, 'the client disconnected'))
  }

  async function doStart(): Promise<void> {
    if (Buffer.byteLength(init.path) > CONTROL_SOCKET_PATH_BYTES_MAX) {
      throw new ControlError(
        'path-too-long',
        `the control socket path ${init.path} is longer than ${CONTROL_SOCKET_PATH_BYTES_MAX} bytes; use a shorter --home`,
      )
    }
    await removeStaleSocket(init.path)
    const listening = createServer({ allowHalfOpen: false }, accept)
    await new Promise<void>((resolve, reject) => {
      listening.once('error', reject)
      listening.listen(init.path, () => {
        listening.off('error', reject)
        resolve()
      })
    }).catch((err: NodeJS.ErrnoException) => {
      if (err.code === 'EADDRINUSE') {
        throw new ControlError('agent-already-running', `another agent is running in ${dirname(init.path)}`)
      }
      throw new ControlError('path-in-use', `cannot listen on ${init.path}: ${err.message}`)
    })
    try {
      // The home is 0700, so the moment between bind and chmod exposes nothing; this is defence in depth.
      await chmod(init.path, CONTROL_SOCKET_MODE)
    } catch (err) {
      listening.close()
      throw new ControlError('path-in-use', `cannot set mode 0600 on ${init.path}: ${(err as Error).message}`)
    }
    listening.on('error', err => log('warn', 'control socket error', { error: err.message }))
    server = listening
  }

  return {
    path: init.path,
    start() {
      if (stopping !== undefined)
        return Promise.reject(new ControlError('connection-closed', 'server stopped'))
      starting ??= doStart().catch(err => {
        starting = undefined
        throw err
      })
      return starting
    },
    stop() {
      stopping ??= (async () => {
        await starting?.catch(() => undefined)
        const listening = server
        server = undefined
        for (const client of [...clients]) {
          dropClient(client, 'the agent is stopping')
          client.socket.destroy()
        }
        if (listening !== undefined) {
          await new Promise<void>(resolve => listening.close(() => resolve()))
          await unlink(init.path).catch(() => undefined)
        }
      })()
      return stopping
    },
    clientCount: () => clients.size,
    counters: () => ({ ...counters }),
  }
}

/** Sends a connection-level error (id null), then closes once it is flushed; nothing more is read. */
function refuseConnection(socket: Socket, code: ControlErrorCode, message: string): void {
  socket.pause()
  socket.end(`${JSON.stringify({ id: null, error: { code, message } })}\n`, () => socket.destroy())
}

/**
 * Makes `path` free to bind: nothing there, or a socket nobody answers on (left by a crash), which is
 * removed. Refuses when an agent answers or the path is not a socket.
 */
async function removeStaleSocket(path: string): Promise<void> {
  let isSocket: boolean
  try {
    isSocket = (await lstat(path)).isSocket()
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return
    throw new ControlError('path-in-use', `cannot inspect ${path}: ${(err as Error).message}`)
  }
  if (!isSocket)
    throw new ControlError(
      'path-in-use',
      `${path} exists and is not a socket; remove it or pick another home`,
    )
  const answered = await new Promise<boolean>(resolve => {
    const probe = createConnection(path)
    probe.once('connect', () => {
      probe.destroy()
      resolve(true)
    })
    probe.once('error', () => resolve(false))
  })
  if (answered)
    throw new ControlError('agent-already-running', `another agent is running in ${dirname(path)}`)
  await unlink(path).catch((err: NodeJS.ErrnoException) => {
    if (err.code !== 'ENOENT')
      throw new ControlError('path-in-use', `cannot remove stale ${path}: ${err.message}`)
  })
}

// ---------------------------------------------------------------------------------------------------
// Client

/** Options of one call. */
export interface ControlCallOptions {
  /** Receives the request's event frames in order. Exceptions it throws are ignored. */
  readonly onEvent?: (event: string, data: unknown) => void
  /** Cancels the call: the promise rejects with `aborted` and the server handler is told to stop. */
  readonly signal?: AbortSignal
  /** Rejects with `timeout` (and cancels the handler) when no final frame came within this time. */
  readonly timeoutMs?: number
}

/** The CLI's end of the control channel. One connection; calls may overlap. */
export interface ControlClient {
  /**
   * Sends a request and resolves with its result.
   * @throws ControlError with the server's code, or `connection-closed`, `timeout`, `aborted`, `protocol`
   */
  call(method: string, params?: unknown, options?: ControlCallOptions): Promise<unknown>
  /** Closes the connection; pending calls reject with `connection-closed`. Idempotent. */
  close(): void
}

/** Options of {@link connectControl}. */
export interface ConnectControlOptions {
  /** Longest frame accepted from the agent (bytes); beyond it the connection is dropped. Default 64 MiB. */
  readonly lineBytesMax?: number
  /** Connecting gives up after this long. Default 5 s. */
  readonly connectTimeoutMs?: number
}

interface PendingCall {
  readonly resolve: (value: unknown) => void
  readonly reject: (error: ControlError) => void
  readonly onEvent?: (event: string, data: unknown) => void
}

/**
 * Connects to the agent listening at `path`.
 * @throws ControlError `agent-not-running` (no socket, or nobody listening) with the message
 *   "no agent running in HOME; start it with 'mesh agent'", `permission-denied`, `timeout`
 */
export function connectControl(path: string, options: ConnectControlOptions = {}): Promise<ControlClient> {
  const lineBytesMax = options.lineBytesMax ?? 64 * 1024 * 1024
  const connectTimeoutMs = options.connectTimeoutMs ?? 5_000
  const home = dirname(path)
  return new Promise((resolve, reject) => {
    const socket = createConnection(path)
    const timer = setTimeout(() => {
      socket.destroy()
      reject(
        new ControlError(
          'timeout',
          `the agent in ${home} did not accept a connection within ${connectTimeoutMs}ms`,
        ),
      )
    }, connectTimeoutMs)
    socket.once('error', (err: NodeJS.ErrnoException) => {
      clearTimeout(timer)
      if (err.code === 'ENOENT' || err.code === 'ECONNREFUSED' || err.code === 'ENOTSOCK') {
        reject(
          new ControlError('agent-not-running', `no agent running in ${home}; start it with 'mesh agent'`),
        )
      } else if (err.code === 'EACCES' || err.code === 'EPERM') {
        reject(new ControlError('permission-denied', `cannot reach the agent in ${home}: permission denied`))
      } else {
        reject(new ControlError('connection-closed', `cannot reach the agent in ${home}: ${err.message}`))
      }
    })
    socket.once('connect', () => {
      clearTimeout(timer)
      socket.removeAllListeners('error')
      resolve(clientOver(socket, lineBytesMax))
    })
  })
}

/** Connects, makes one call and closes; for one-shot CLI commands. Same errors as the two steps. */
export async function callControl(
  path: string,
  method: string,
  params?: unknown,
  options?: ControlCallOptions & ConnectControlOptions,
): Promise<unknown> {
  const client = await connectControl(path, options)
  try {
    return await client.call(method, params, options)
  } finally {
    client.close()
  }
}

function clientOver(socket: Socket, lineBytesMax: number): ControlClient {
  const pending = new Map<number, PendingCall>()
  let nextId = 1
  let closedError: ControlError | undefined
  let buffered: Buffer[] = []
  let bufferedBytes = 0

  function failAll(error: ControlError): void {
    closedError ??= error
    for (const call of pending.values()) call.reject(error)
    pending.clear()
  }

  function handleFrame(line: string): void {
    let frame: unknown
    try {
      frame = JSON.parse(line)
    } catch {
      failAll(new ControlError('protocol', 'the agent sent a line that is not JSON'))
      socket.destroy()
      return
    }
    if (frame === null || typeof frame !== 'object') return
    const { id, event, data, result, error } = frame as Record<string, unknown>
    if (id === null && isRemoteError(error)) {
      // A connection-level refusal (too many clients, oversized line): nothing more will come.
      failAll(remoteError(error))
      return
    }
    const call = typeof id === 'number' ? pending.get(id) : undefined
    if (call === undefined) return // a late frame of a call we gave up on
    if (typeof event === 'string') {
      try {
        call.onEvent?.(event, data)
      } catch {
        // the caller's callback failing must not break the stream of other calls
      }
      return
    }
    pending.delete(id as number)
    if ('result' in (frame as object)) call.resolve(result)
    else if (isRemoteError(error)) call.reject(remoteError(error))
    else call.reject(new ControlError('protocol', 'the agent sent a frame without result or error'))
  }

  socket.on('data', (chunk: Buffer) => {
    let start = 0
    for (;;) {
      const newline = chunk.indexOf(0x0a, start)
      if (newline < 0) break
      const part = chunk.subarray(start, newline)
      start = newline + 1
      const line = buffered.length === 0 ? part : Buffer.concat([...buffered, part])
      buffered = []
      bufferedBytes = 0
      if (line.byteLength > lineBytesMax) {
        failAll(new ControlError('protocol', `the agent sent a frame over ${lineBytesMax} bytes`))
        socket.destroy()
        return
      }
      handleFrame(line.toString('utf8'))
    }
    const rest = chunk.subarray(start)
    if (rest.byteLength === 0) return
    bufferedBytes += rest.byteLength
    if (bufferedBytes > lineBytesMax) {
      failAll(new ControlError('protocol', `the agent sent a frame over ${lineBytesMax} bytes`))
      socket.destroy()
      return
    }
    buffered.push(rest)
  })
  socket.on('error', () => undefined) // 'close' follows and fails the pending calls
  socket.on('close', () => failAll(new ControlError('connection-closed', 'the agent closed the connection')))

  return {
    call(method, params, options = {}) {
      if (closedError !== undefined) return Promise.reject(closedError)
      const { signal, timeoutMs, onEvent } = options
      if (signal?.aborted) return Promise.reject(new ControlError('aborted', 'cancelled'))
      const id = nextId++
      return new Promise<unknown>((resolve, reject) => {
        let timer: NodeJS.Timeout | undefined
        const cleanup = () => {
          if (timer !== undefined) clearTimeout(timer)
          signal?.removeEventListener('abort', onAbort)
        }
        const giveUp = (error: ControlError) => {
          if (!pending.delete(id)) return
          cleanup()
          if (!socket.destroyed) socket.write(`${JSON.stringify({ id, cancel: true })}\n`)
          reject(error)
        }
        const onAbort = () => giveUp(new ControlError('aborted', 'cancelled'))
        pending.set(id, {
          resolve: value => {
            cleanup()
            resolve(value)
          },
          reject: error => {
            cleanup()
            reject(error)
          },
          ...(onEvent === undefined ? {} : { onEvent }),
        })
        signal?.addEventListener('abort', onAbort, { once: true })
        if (timeoutMs !== undefined) {
          timer = setTimeout(
            () => giveUp(new ControlError('timeout', `no answer within ${timeoutMs}ms`)),
            timeoutMs,
          )
        }
        socket.write(`${JSON.stringify({ id, method, params: params ?? null })}\n`)
      })
    },
    close() {
      failAll(new ControlError('connection-closed', 'the connection was closed'))
      socket.destroy()
    },
  }
}

function isRemoteError(value: unknown): value is { code: string; message: string } {
  if (value === null || typeof value !== 'object') return false
  const { code, message } = value as Record<string, unknown>
  return typeof code === 'string' && typeof message === 'string'
}

/** A server's error frame as a ControlError; a code this client does not know becomes `failed`. */
function remoteError(error: { code: string; message: string }): ControlError {
  const code = REMOTE_CODES.has(error.code) ? (error.code as ControlErrorCode) : 'failed'
  return new ControlError(code, error.message)
}
