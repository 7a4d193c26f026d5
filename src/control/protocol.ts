/**
 * The control channel's protocol: the local link between `mesh` commands and the running agent, a Unix
 * domain socket at `<home>/agent.sock`, mode 0600, speaking newline-delimited JSON (easy to debug with
 * `socat`).
 *
 * ```
 * client → server  { "id": 1, "method": "exec", "params": {…} }        a request
 * client → server  { "id": 1, "cancel": true }                        cancel request 1
 * server → client  { "id": 1, "event": "reply", "data": {…} }         zero or more, while it runs
 * server → client  { "id": 1, "result": {…} }                         then exactly one of these
 *                  { "id": 1, "error": { "code": "…", "message": "…" } }
 * ```
 * Several requests may be in flight on one connection; frames carry the request id. A frame with id
 * null and an error is a connection-level refusal (too many clients, oversized line, unreadable frame).
 *
 * This file holds what both ends agree on: the frame shapes, the error codes, the limits and the socket
 * path rules. The framing itself is in line-reader.ts, the ends in server.ts and client.ts. Like the rest
 * of the channel it depends on `node:` built-ins only, so the CLI can load the client without libp2p.
 */
import { join } from 'node:path'

/** File name of the control socket inside the home directory. */
export const CONTROL_SOCKET_NAME = 'agent.sock'
/** Mode of the control socket: only the owner may talk to the agent. */
export const CONTROL_SOCKET_MODE = 0o600
/** Longest socket path Linux accepts (sun_path is 108 bytes with the terminating NUL). */
export const CONTROL_SOCKET_PATH_BYTES_MAX = 107

/** The socket path for a home directory. */
export function controlSocketPath(home: string): string {
  return join(home, CONTROL_SOCKET_NAME)
}

// ---------------------------------------------------------------------------------------------------
// Frames

/** A request id: a number, or a string of at most {@link REQUEST_ID_LENGTH_MAX} characters. */
export type RequestId = string | number
/** Longest string request id the server accepts. */
export const REQUEST_ID_LENGTH_MAX = 64

/** client → server: run `method`. */
export interface RequestFrame {
  readonly id: RequestId
  readonly method: string
  readonly params: unknown
}

/** client → server: stop request `id`. */
export interface CancelFrame {
  readonly id: RequestId
  readonly cancel: true
}

/** server → client: an event of a running request. */
export interface EventFrame {
  readonly id: RequestId
  readonly event: string
  readonly data: unknown
}

/** server → client: the request finished. */
export interface ResultFrame {
  readonly id: RequestId
  readonly result: unknown
}

/** The error of an {@link ErrorFrame}. */
export interface ErrorBody {
  readonly code: string
  readonly message: string
}

/** server → client: the request failed, or (id null) the connection is refused. */
export interface ErrorFrame {
  readonly id: RequestId | null
  readonly error: ErrorBody
}

/** A frame the client sends. */
export type ClientFrame = RequestFrame | CancelFrame
/** A frame the server sends. */
export type ServerFrame = EventFrame | ResultFrame | ErrorFrame

// ---------------------------------------------------------------------------------------------------
// Errors

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

/** The codes that travel in error frames; a handler's ControlError with another code becomes `internal`. */
export const REMOTE_ERROR_CODES: ReadonlySet<string> = new Set<ControlErrorCode>([
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

/** True when `value` has the shape of an {@link ErrorBody}. */
export function isErrorBody(value: unknown): value is ErrorBody {
  if (value === null || typeof value !== 'object') return false
  const { code, message } = value as Record<string, unknown>
  return typeof code === 'string' && typeof message === 'string'
}

/** An error frame's body as a ControlError; a code this end does not know becomes `failed`. */
export function controlErrorOf(error: ErrorBody): ControlError {
  const code = REMOTE_ERROR_CODES.has(error.code) ? (error.code as ControlErrorCode) : 'failed'
  return new ControlError(code, error.message)
}

// ---------------------------------------------------------------------------------------------------
// Limits

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

/** Longest frame the client accepts from the agent by default (bytes). */
export const CLIENT_LINE_BYTES_MAX_DEFAULT = 64 * 1024 * 1024
/** How long the client waits for the agent to accept a connection by default. */
export const CONNECT_TIMEOUT_MS_DEFAULT = 5_000
