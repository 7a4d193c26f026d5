/**
 * The agent's end of the control channel (protocol.ts): listens on the Unix socket, runs one handler per
 * request and streams its events and result back. When the client disconnects or cancels, the handler's
 * AbortSignal fires. Lines, requests per client, clients and the unsent bytes queued for a client are
 * bounded; a client that breaks a limit gets an error frame (and for an oversized line, is disconnected,
 * since the stream can no longer be trusted to be in sync).
 *
 * The socket is also the agent's lock on its home: start refuses when another agent answers on it, and
 * removes a stale socket left by a crash. Depends on `node:` built-ins only.
 */
import { chmod, lstat, unlink } from 'node:fs/promises'
import { createConnection, createServer, type Server, type Socket } from 'node:net'
import { dirname } from 'node:path'
import { createLineReader, encodeLine } from './line-reader.js'
import {
  CONTROL_SOCKET_MODE,
  CONTROL_SOCKET_PATH_BYTES_MAX,
  ControlError,
  type ControlErrorCode,
  type ControlServerLimits,
  DEFAULT_CONTROL_SERVER_LIMITS,
  REMOTE_ERROR_CODES,
  REQUEST_ID_LENGTH_MAX,
  type RequestId,
  type ServerFrame,
} from './protocol.js'

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

/** Where the server reports what it did; `context` holds plain values. */
export type ControlServerLog = (
  level: 'debug' | 'warn',
  message: string,
  context: Record<string, unknown>,
) => void

/** What {@link createControlServer} needs. */
export interface ControlServerInit {
  /** Where to listen, normally {@link controlSocketPath}(home). */
  readonly path: string
  readonly handlers: Readonly<Record<string, ControlHandler>>
  readonly limits?: Partial<ControlServerLimits>
  readonly log?: ControlServerLog
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
  readonly requests: Map<RequestId, AbortController>
}

/** The state every connection shares. */
interface Shared {
  readonly handlers: Readonly<Record<string, ControlHandler>>
  readonly limits: ControlServerLimits
  readonly log: ControlServerLog
  readonly counters: ControlServerCounters
  readonly clients: Set<Client>
  /** True once stop began: new connections are refused. */
  readonly stopping: () => boolean
}

/** Creates the server; nothing happens until {@link ControlServer.start}. */
export function createControlServer(init: ControlServerInit): ControlServer {
  let server: Server | undefined
  let starting: Promise<void> | undefined
  let stopping: Promise<void> | undefined
  const shared: Shared = {
    handlers: init.handlers,
    limits: { ...DEFAULT_CONTROL_SERVER_LIMITS, ...init.limits },
    log: init.log ?? (() => undefined),
    counters: {
      requests: 0,
      badRequests: 0,
      unknownMethods: 0,
      linesTooLarge: 0,
      tooManyRequests: 0,
      clientsRefused: 0,
      slowClientsDropped: 0,
    },
    clients: new Set(),
    stopping: () => stopping !== undefined,
  }

  return {
    path: init.path,
    start() {
      if (stopping !== undefined)
        return Promise.reject(new ControlError('connection-closed', 'server stopped'))
      starting ??= listen(init.path, shared).then(
        listening => {
          server = listening
        },
        err => {
          starting = undefined
          throw err
        },
      )
      return starting
    },
    stop() {
      stopping ??= (async () => {
        await starting?.catch(() => undefined)
        const listening = server
        server = undefined
        for (const client of [...shared.clients]) {
          dropClient(shared, client, 'the agent is stopping')
          client.socket.destroy()
        }
        if (listening !== undefined) {
          await new Promise<void>(resolve => listening.close(() => resolve()))
          await unlink(init.path).catch(() => undefined)
        }
      })()
      return stopping
    },
    clientCount: () => shared.clients.size,
    counters: () => ({ ...shared.counters }),
  }
}

// ---------------------------------------------------------------------------------------------------
// Listening

/** Checks the path, removes a stale socket, listens and sets the mode. */
async function listen(path: string, shared: Shared): Promise<Server> {
  if (Buffer.byteLength(path) > CONTROL_SOCKET_PATH_BYTES_MAX) {
    throw new ControlError(
      'path-too-long',
      `the control socket path ${path} is longer than ${CONTROL_SOCKET_PATH_BYTES_MAX} bytes; use a shorter --home`,
    )
  }
  await removeStaleSocket(path)
  const listening = createServer({ allowHalfOpen: false }, socket => accept(shared, socket))
  await new Promise<void>((resolve, reject) => {
    listening.once('error', reject)
    listening.listen(path, () => {
      listening.off('error', reject)
      resolve()
    })
  }).catch((err: NodeJS.ErrnoException) => {
    if (err.code === 'EADDRINUSE') {
      throw new ControlError('agent-already-running', `another agent is running in ${dirname(path)}`)
    }
    throw new ControlError('path-in-use', `cannot listen on ${path}: ${err.message}`)
  })
  try {
    // The home is 0700, so the moment between bind and chmod exposes nothing; this is defence in depth.
    await chmod(path, CONTROL_SOCKET_MODE)
  } catch (err) {
    listening.close()
    throw new ControlError('path-in-use', `cannot set mode 0600 on ${path}: ${(err as Error).message}`)
  }
  listening.on('error', err => shared.log('warn', 'control socket error', { error: err.message }))
  return listening
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
// Connections

function accept(shared: Shared, socket: Socket): void {
  const { limits, counters } = shared
  if (shared.clients.size >= limits.clientsMax || shared.stopping()) {
    counters.clientsRefused++
    refuseConnection(socket, 'too-many-clients', `more than ${limits.clientsMax} control connections`)
    return
  }
  const client: Client = { socket, requests: new Map() }
  shared.clients.add(client)
  socket.on(
    'data',
    createLineReader({
      lineBytesMax: limits.lineBytesMax,
      onLine: line => handleLine(shared, client, line),
      onTooLarge: () => {
        counters.linesTooLarge++
        refuseConnection(socket, 'line-too-large', `a line is longer than ${limits.lineBytesMax} bytes`)
      },
      stopped: () => socket.destroyed,
    }),
  )
  socket.on('error', () => undefined) // a reset by the client; 'close' follows
  socket.on('close', () => dropClient(shared, client, 'the client disconnected'))
}

/** Forgets a client and aborts its handlers at once (not on the socket's later 'close'). */
function dropClient(shared: Shared, client: Client, reason: string): void {
  shared.clients.delete(client)
  for (const controller of client.requests.values()) controller.abort(new ControlError('cancelled', reason))
  client.requests.clear()
}

/** Sends a connection-level error (id null), then closes once it is flushed; nothing more is read. */
function refuseConnection(socket: Socket, code: ControlErrorCode, message: string): void {
  socket.pause()
  socket.end(encodeLine({ id: null, error: { code, message } }), () => socket.destroy())
}

function send(shared: Shared, client: Client, frame: ServerFrame): void {
  if (client.socket.destroyed) return
  let line: string
  try {
    line = encodeLine(frame)
  } catch (err) {
    const message = `unserialisable result: ${(err as Error).message}`
    line = encodeLine({ id: frame.id, error: { code: 'internal', message } })
  }
  client.socket.write(line)
  if (client.socket.writableLength > shared.limits.writeBufferBytesMax) {
    shared.counters.slowClientsDropped++
    shared.log('warn', 'control client too slow, disconnecting', {
      queuedBytes: client.socket.writableLength,
    })
    client.socket.destroy()
  }
}

function sendError(
  shared: Shared,
  client: Client,
  id: RequestId | null,
  code: ControlErrorCode,
  message: string,
): void {
  send(shared, client, { id, error: { code, message } })
}

// ---------------------------------------------------------------------------------------------------
// Requests

/** A line read as a client frame, or why it is not one. */
type ParsedLine =
  | { readonly kind: 'bad'; readonly id: RequestId | null; readonly message: string }
  | { readonly kind: 'cancel'; readonly id: RequestId }
  | { readonly kind: 'request'; readonly id: RequestId; readonly method: string; readonly params: unknown }

/** Checks the shape of one (non-empty) line; pure. */
function parseLine(line: string): ParsedLine {
  let frame: unknown
  try {
    frame = JSON.parse(line)
  } catch {
    return { kind: 'bad', id: null, message: 'not a JSON line' }
  }
  if (frame === null || typeof frame !== 'object' || Array.isArray(frame)) {
    return { kind: 'bad', id: null, message: 'a frame is a JSON object' }
  }
  const { id, method, params, cancel } = frame as Record<string, unknown>
  if (!(typeof id === 'number' || (typeof id === 'string' && id.length <= REQUEST_ID_LENGTH_MAX))) {
    return { kind: 'bad', id: null, message: 'id must be a number or a short string' }
  }
  if (cancel === true) return { kind: 'cancel', id }
  if (typeof method !== 'string') return { kind: 'bad', id, message: 'method must be a string' }
  return { kind: 'request', id, method, params }
}

function handleLine(shared: Shared, client: Client, line: string): void {
  if (line.trim() === '') return
  const { counters, limits } = shared
  const parsed = parseLine(line)
  if (parsed.kind === 'bad') {
    counters.badRequests++
    sendError(shared, client, parsed.id, 'bad-request', parsed.message)
    return
  }
  const { id } = parsed
  if (parsed.kind === 'cancel') {
    client.requests.get(id)?.abort(new ControlError('cancelled', 'cancelled by the client'))
    return
  }
  if (client.requests.has(id)) {
    counters.badRequests++
    sendError(shared, client, id, 'bad-request', `request ${JSON.stringify(id)} is already running`)
    return
  }
  // Own properties only: 'constructor' or '__proto__' are not methods.
  const { method } = parsed
  const handler = Object.hasOwn(shared.handlers, method) ? shared.handlers[method] : undefined
  if (handler === undefined) {
    counters.unknownMethods++
    sendError(shared, client, id, 'unknown-method', `unknown method '${method.slice(0, 64)}'`)
    return
  }
  if (client.requests.size >= limits.requestsPerClientMax) {
    counters.tooManyRequests++
    const message = `more than ${limits.requestsPerClientMax} requests in flight`
    sendError(shared, client, id, 'too-many-requests', message)
    return
  }
  counters.requests++
  runHandler(shared, client, parsed, handler)
}

/** Runs one request's handler and sends its events and its one final frame. */
function runHandler(
  shared: Shared,
  client: Client,
  request: { readonly id: RequestId; readonly method: string; readonly params: unknown },
  handler: ControlHandler,
): void {
  const { id, method } = request
  const controller = new AbortController()
  const current = () => client.requests.get(id) === controller
  client.requests.set(id, controller)
  const context: ControlHandlerContext = {
    emit: (event, data) => {
      if (!current() || controller.signal.aborted) return
      send(shared, client, { id, event, data: data ?? null })
    },
    signal: controller.signal,
  }
  Promise.resolve()
    .then(() => handler(request.params ?? null, context))
    .then(
      result => {
        if (current()) send(shared, client, { id, result: result ?? null })
      },
      (err: unknown) => {
        if (!current()) return
        if (err instanceof ControlError && REMOTE_ERROR_CODES.has(err.code)) {
          sendError(shared, client, id, err.code, err.message)
        } else if (controller.signal.aborted) {
          sendError(shared, client, id, 'cancelled', 'cancelled')
        } else {
          const message = (err as Error)?.message ?? String(err)
          shared.log('warn', 'control handler failed', { method, error: message })
          sendError(shared, client, id, 'internal', message)
        }
      },
    )
    .finally(() => {
      if (current()) client.requests.delete(id)
    })
}
