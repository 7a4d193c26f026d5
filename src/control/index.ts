/**
 * The control channel between `mesh` commands and the running agent: the protocol (frames, error codes,
 * limits, socket path), the agent's server and the CLI's client. Everything here depends on `node:`
 * built-ins only (and the Clock port), so loading it never pulls in libp2p.
 */
export {
  type ConnectControlOptions,
  type ControlCallOptions,
  type ControlClient,
  callControl,
  connectControl,
} from './client.js'
export { createLineReader, encodeLine, type LineReader, type LineReaderOptions } from './line-reader.js'
export {
  type CancelFrame,
  CLIENT_LINE_BYTES_MAX_DEFAULT,
  type ClientFrame,
  CONNECT_TIMEOUT_MS_DEFAULT,
  CONTROL_SOCKET_MODE,
  CONTROL_SOCKET_NAME,
  CONTROL_SOCKET_PATH_BYTES_MAX,
  ControlError,
  type ControlErrorCode,
  type ControlServerLimits,
  controlErrorOf,
  controlSocketPath,
  DEFAULT_CONTROL_SERVER_LIMITS,
  type ErrorBody,
  type ErrorFrame,
  type EventFrame,
  isErrorBody,
  REMOTE_ERROR_CODES,
  REQUEST_ID_LENGTH_MAX,
  type RequestFrame,
  type RequestId,
  type ResultFrame,
  type ServerFrame,
} from './protocol.js'
export {
  type ControlHandler,
  type ControlHandlerContext,
  type ControlServer,
  type ControlServerCounters,
  type ControlServerInit,
  type ControlServerLog,
  createControlServer,
} from './server.js'
