/**
 * The HTTP API's route table: each HTTP method and path under `/v1/` names the control method it runs
 * (src/agent/control-methods.ts) and how its parameters are gathered from the path, the query and a
 * JSON body. The server (http-api.ts) and the OpenAPI document (openapi.ts) are both built from this
 * table, so a path cannot be served without being documented or documented without being served.
 *
 * The API adds no logic of its own: parameters reach the same handler the control socket calls, which
 * validates them exactly as it does for the CLI. A method the agent does not have (an older agent
 * without `jobs.*`) is answered 501, not 404, so clients can tell "no such path" from "not here yet".
 */
import { EXEC_TIMEOUT_MS_MAX } from '../control-methods.js'

/** Longest JSON body accepted (bytes). Exec requests are small; the largest field is a `--where`. */
export const API_BODY_BYTES_MAX = 64 * 1024
/** Longest path parameter (a request id, a job id); real ones are hex of at most 64 characters. */
export const API_PATH_PARAM_LENGTH_MAX = 128
/** How long a call that carries no timeout of its own may run before it is answered 504. */
export const API_CALL_TIMEOUT_MS = 30_000
/** What a call with its own `timeoutMs` (exec, jobs.wait) gets on top, for the last replies to arrive. */
export const API_CALL_TIMEOUT_SLACK_MS = 10_000

/** A query parameter: its type and, for integers, the range accepted. */
export interface QueryParam {
  readonly type: 'integer' | 'string' | 'boolean'
  readonly doc: string
  readonly minimum?: number
  readonly maximum?: number
}

/** One route. */
export interface ApiRoute {
  readonly method: 'GET' | 'POST'
  /** OpenAPI form, with `{name}` path parameters. */
  readonly path: string
  /** The control method it runs. */
  readonly control: string
  /** A stable id (OpenAPI `operationId`, metrics label). */
  readonly id: string
  readonly summary: string
  /** True when the answer is NDJSON: one line per event as it happens, then a summary line. */
  readonly stream?: boolean
  /** Query parameters passed to the handler under the same names. */
  readonly query?: Readonly<Record<string, QueryParam>>
  /** True when a JSON object body is accepted; its fields become parameters (path ones win). */
  readonly body?: boolean
  /** True when the call has a time limit of its own (`timeoutMs`); the API allows it plus a slack. */
  readonly ownTimeout?: boolean
}

/** Every route. Add a control method here to expose it (and describe it in openapi.ts). */
export const API_ROUTES: readonly ApiRoute[] = [
  { method: 'GET', path: '/v1/status', control: 'status', id: 'status', summary: 'This node' },
  { method: 'GET', path: '/v1/members', control: 'members', id: 'members', summary: 'Members' },
  {
    method: 'GET',
    path: '/v1/zones',
    control: 'zones',
    id: 'zones',
    summary: 'Zones, their members and authorities',
  },
  {
    method: 'POST',
    path: '/v1/exec',
    control: 'exec',
    id: 'exec',
    summary: 'Run an action on every node that matches the filter; replies stream as NDJSON',
    stream: true,
    body: true,
    ownTimeout: true,
  },
  {
    method: 'GET',
    path: '/v1/jobs',
    control: 'jobs.list',
    id: 'jobsList',
    summary: 'Recent jobs this node knows, newest first',
    query: { limit: { type: 'integer', doc: 'most jobs to list (default 100)', minimum: 1 } },
  },
  {
    method: 'GET',
    path: '/v1/jobs/{id}',
    control: 'jobs.show',
    id: 'jobsShow',
    summary: "A job's results",
  },
  {
    method: 'GET',
    path: '/v1/jobs/{id}/wait',
    control: 'jobs.wait',
    id: 'jobsWait',
    summary: "Wait for a job's results",
    query: {
      timeoutMs: {
        type: 'integer',
        doc: 'how long to wait, ms',
        minimum: 1,
        maximum: EXEC_TIMEOUT_MS_MAX,
      },
    },
    ownTimeout: true,
  },
  {
    method: 'GET',
    path: '/v1/ca/requests',
    control: 'ca.list',
    id: 'caList',
    summary: 'Pending signing requests (CA node only)',
  },
  {
    method: 'POST',
    path: '/v1/ca/requests/{id}/sign',
    control: 'ca.sign',
    id: 'caSign',
    summary: 'Issue the certificate of a pending request',
  },
  {
    method: 'POST',
    path: '/v1/ca/requests/{id}/reject',
    control: 'ca.reject',
    id: 'caReject',
    summary: 'Refuse a pending request',
  },
  {
    method: 'POST',
    path: '/v1/ca/reject',
    control: 'ca.reject',
    id: 'caRejectBulk',
    summary: 'Refuse every pending request (`all`) or every one of a requester (`requester`)',
    body: true,
  },
  {
    method: 'POST',
    path: '/v1/ca/revoke',
    control: 'ca.revoke',
    id: 'caRevoke',
    summary: 'Revoke a member (by name or certificate serial) across the mesh',
    body: true,
  },
]

/** The names of `{name}` parameters in `path`, in order. */
export function pathParams(path: string): string[] {
  return [...path.matchAll(/\{([A-Za-z]+)\}/g)].map(m => m[1] as string)
}

/** `path` in the router's form (`/v1/jobs/:id`). */
export function routerPath(path: string): string {
  return path.replace(/\{([A-Za-z]+)\}/g, ':$1')
}

/** The time limit of one call with `params`, ms. */
export function callTimeoutMs(
  route: ApiRoute,
  params: Readonly<Record<string, unknown>>,
  defaultMs = API_CALL_TIMEOUT_MS,
): number {
  if (route.ownTimeout !== true) return defaultMs
  // Without a timeoutMs the handler applies its own default; the call is still bounded.
  const own = params.timeoutMs
  const ms = typeof own === 'number' && Number.isSafeInteger(own) && own > 0 ? own : EXEC_TIMEOUT_MS_MAX
  return Math.min(ms, EXEC_TIMEOUT_MS_MAX) + API_CALL_TIMEOUT_SLACK_MS
}
