/**
 * The CLI's end of the control channel (protocol.ts): connects to the agent's socket, sends requests
 * and matches the frames that come back to them; calls may overlap on one connection. Timeouts run on
 * the Clock port (default {@link systemClock}). Depends on `node:` built-ins only, so the CLI loads it
 * without paying for libp2p.
 */
import { createConnection, type Socket } from 'node:net'
import { dirname } from 'node:path'
import { type Clock, systemClock, type Timer } from '../node/clock.js'
import { createLineReader, encodeLine } from './line-reader.js'
import {
  CLIENT_LINE_BYTES_MAX_DEFAULT,
  CONNECT_TIMEOUT_MS_DEFAULT,
  ControlError,
  controlErrorOf,
  isErrorBody,
} from './protocol.js'

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
  /** Runs the connect and call timeouts. Default {@link systemClock}. */
  readonly clock?: Clock
}

/**
 * Connects to the agent listening at `path`.
 * @throws ControlError `agent-not-running` (no socket, or nobody listening) with the message
 *   "no agent running in HOME; start it with 'mesh agent'", `permission-denied`, `timeout`
 */
export function connectControl(path: string, options: ConnectControlOptions = {}): Promise<ControlClient> {
  const lineBytesMax = options.lineBytesMax ?? CLIENT_LINE_BYTES_MAX_DEFAULT
  const connectTimeoutMs = options.connectTimeoutMs ?? CONNECT_TIMEOUT_MS_DEFAULT
  const clock = options.clock ?? systemClock
  const home = dirname(path)
  return new Promise((resolve, reject) => {
    const socket = createConnection(path)
    const timer = clock.setTimer(
      () => {
        socket.destroy()
        const message = `the agent in ${home} did not accept a connection within ${connectTimeoutMs}ms`
        reject(new ControlError('timeout', message))
      },
      connectTimeoutMs,
      { keepAlive: true },
    )
    socket.once('error', (err: NodeJS.ErrnoException) => {
      timer.cancel()
      reject(connectError(err, home))
    })
    socket.once('connect', () => {
      timer.cancel()
      socket.removeAllListeners('error')
      resolve(clientOver(socket, lineBytesMax, clock))
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

function connectError(err: NodeJS.ErrnoException, home: string): ControlError {
  if (err.code === 'ENOENT' || err.code === 'ECONNREFUSED' || err.code === 'ENOTSOCK') {
    return new ControlError('agent-not-running', `no agent running in ${home}; start it with 'mesh agent'`)
  }
  if (err.code === 'EACCES' || err.code === 'EPERM') {
    return new ControlError('permission-denied', `cannot reach the agent in ${home}: permission denied`)
  }
  return new ControlError('connection-closed', `cannot reach the agent in ${home}: ${err.message}`)
}

interface PendingCall {
  readonly resolve: (value: unknown) => void
  readonly reject: (error: ControlError) => void
  readonly onEvent?: (event: string, data: unknown) => void
}

/** One connection's state. */
interface Connection {
  readonly socket: Socket
  readonly clock: Clock
  readonly pending: Map<number, PendingCall>
  nextId: number
  /** Set once the connection is unusable; later calls reject with it. */
  closedError: ControlError | undefined
}

function clientOver(socket: Socket, lineBytesMax: number, clock: Clock): ControlClient {
  const connection: Connection = { socket, clock, pending: new Map(), nextId: 1, closedError: undefined }
  socket.on(
    'data',
    createLineReader({
      lineBytesMax,
      onLine: line => handleFrame(connection, line),
      onTooLarge: () => {
        failAll(connection, new ControlError('protocol', `the agent sent a frame over ${lineBytesMax} bytes`))
        socket.destroy()
      },
      stopped: () => socket.destroyed,
    }),
  )
  socket.on('error', () => undefined) // 'close' follows and fails the pending calls
  socket.on('close', () =>
    failAll(connection, new ControlError('connection-closed', 'the agent closed the connection')),
  )
  return {
    call: (method, params, options = {}) => startCall(connection, method, params, options),
    close() {
      failAll(connection, new ControlError('connection-closed', 'the connection was closed'))
      socket.destroy()
    },
  }
}

function failAll(connection: Connection, error: ControlError): void {
  connection.closedError ??= error
  for (const call of connection.pending.values()) call.reject(error)
  connection.pending.clear()
}

function handleFrame(connection: Connection, line: string): void {
  let frame: unknown
  try {
    frame = JSON.parse(line)
  } catch {
    failAll(connection, new ControlError('protocol', 'the agent sent a line that is not JSON'))
    connection.socket.destroy()
    return
  }
  if (frame === null || typeof frame !== 'object') return
  const { id, event, data, result, error } = frame as Record<string, unknown>
  if (id === null && isErrorBody(error)) {
    // A connection-level refusal (too many clients, oversized line): nothing more will come.
    failAll(connection, controlErrorOf(error))
    return
  }
  const call = typeof id === 'number' ? connection.pending.get(id) : undefined
  if (call === undefined) return // a late frame of a call we gave up on
  if (typeof event === 'string') {
    try {
      call.onEvent?.(event, data)
    } catch {
      // the caller's callback failing must not break the stream of other calls
    }
    return
  }
  connection.pending.delete(id as number)
  if ('result' in frame) call.resolve(result)
  else if (isErrorBody(error)) call.reject(controlErrorOf(error))
  else call.reject(new ControlError('protocol', 'the agent sent a frame without result or error'))
}

function startCall(
  connection: Connection,
  method: string,
  params: unknown,
  options: ControlCallOptions,
): Promise<unknown> {
  if (connection.closedError !== undefined) return Promise.reject(connection.closedError)
  const { signal, timeoutMs, onEvent } = options
  if (signal?.aborted) return Promise.reject(new ControlError('aborted', 'cancelled'))
  const { socket, pending } = connection
  const id = connection.nextId++
  return new Promise<unknown>((resolve, reject) => {
    let timer: Timer | undefined
    const cleanup = () => {
      timer?.cancel()
      signal?.removeEventListener('abort', onAbort)
    }
    const giveUp = (error: ControlError) => {
      if (!pending.delete(id)) return
      cleanup()
      if (!socket.destroyed) socket.write(encodeLine({ id, cancel: true }))
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
      timer = connection.clock.setTimer(
        () => giveUp(new ControlError('timeout', `no answer within ${timeoutMs}ms`)),
        timeoutMs,
        { keepAlive: true },
      )
    }
    socket.write(encodeLine({ id, method, params: params ?? null }))
  })
}
