/**
 * The HTTP/JSON API (docs/api.md): the control methods over HTTP on `apiListen`, off by default, and
 * the web view at `/`. Built with hono on Node's own http server.
 *
 * ```
 * GET  /                  the web view (public: it holds no data; it asks for the token)
 * GET  /v1/openapi.json   the OpenAPI document (public)
 * *    /v1/…              routes.ts → the control handler of the same name; bearer token required
 * ```
 * A request under `/v1/` must carry `Authorization: Bearer TOKEN` (the home's `api.token`, see
 * api/token.ts); a missing or wrong token is 401 and counted. Parameters come from the path, the
 * query and a JSON body and reach the handler the control socket uses, which validates them the same
 * way. Errors are `{ "error": { "code", "message" } }` with the control channel's codes: 400
 * `invalid-params`, 409 `failed`, 501 `unknown-method` (this agent has no such method, e.g. jobs on
 * an older agent), 429 `too-many-requests`, 504 `timeout`, 500 `internal`. `POST /v1/exec` answers
 * NDJSON, one event per line as `mesh exec --jsonl` prints them, then its summary line; a failure
 * before the first event is a plain error answer with its status, one after it an `error` line.
 *
 * Bounded: body bytes, path parameter length, requests in flight, streams at once, bytes queued for a
 * slow reader, connections, the time to send headers and each call's run time.
 */
import { createServer } from 'node:http'
import type { HttpBindings } from '@hono/node-server'
import { getRequestListener } from '@hono/node-server'
import { type Context, Hono } from 'hono'
import { ControlError, type ControlHandler, type ControlHandlerContext } from '../control/index.js'
import { type HttpListener, listenHttp } from './api/listen.js'
import {
  API_BODY_BYTES_MAX,
  API_CALL_TIMEOUT_MS,
  API_PATH_PARAM_LENGTH_MAX,
  API_ROUTES,
  type ApiRoute,
  callTimeoutMs,
  pathParams,
  type QueryParam,
  routerPath,
} from './api/routes.js'
import { tokenMatches } from './api/token.js'
import type { ApiCounterSource } from './metrics.js'
import { openApiDocument } from './openapi.js'
import { WEB_APP_CSS, WEB_APP_JS, webPageHtml } from './web/page.js'

/** Named limits of the API server. */
export interface HttpApiLimits {
  readonly bodyBytesMax: number
  /** Calls under /v1/ running at once; more are answered 429. */
  readonly requestsInFlightMax: number
  /** Streaming calls (exec) at once, within {@link requestsInFlightMax}. */
  readonly streamsMax: number
  /** Bytes of events queued for a reader that does not keep up; past it the call is cancelled. */
  readonly streamBufferBytesMax: number
  readonly connectionsMax: number
  /** Time a client has to send its request (headers and body), ms. */
  readonly requestTimeoutMs: number
  /** How long a call without a timeout of its own may run before it is answered 504, ms. */
  readonly callTimeoutMs: number
}

/** Defaults of {@link HttpApiLimits}. */
export const DEFAULT_HTTP_API_LIMITS: HttpApiLimits = {
  bodyBytesMax: API_BODY_BYTES_MAX,
  requestsInFlightMax: 64,
  streamsMax: 16,
  streamBufferBytesMax: 8 * 1024 * 1024,
  connectionsMax: 128,
  requestTimeoutMs: 10_000,
  callTimeoutMs: API_CALL_TIMEOUT_MS,
}

/** Counters of the API: requests by route and status, refusals. Monotonic. */
export interface HttpApiCounters extends ApiCounterSource {
  readonly tooManyRequests: number
  readonly slowReadersCancelled: number
}

/** What {@link createHttpApi} needs. */
export interface HttpApiInit {
  /** `HOST:PORT`, the `apiListen` value. */
  readonly listen: string
  readonly handlers: Readonly<Record<string, ControlHandler>>
  /** The bearer token every /v1/ call must present. */
  readonly token: string
  /** Shown in the OpenAPI document and the web view. */
  readonly version: string
  readonly limits?: Partial<HttpApiLimits>
  readonly log?: (level: 'debug' | 'warn', message: string, context: Record<string, unknown>) => void
}

/** The API server. */
export interface HttpApi {
  /** The hono app (tests call `app.request` without a socket). */
  readonly app: Hono<ApiEnv>
  /** Listens. @throws ListenError */
  start(): Promise<HttpListener>
  /** Cancels running calls, closes connections, stops listening. Idempotent. */
  stop(): Promise<void>
  counters(): HttpApiCounters
}

type Variables = { route: string }
type ApiEnv = { Bindings: HttpBindings; Variables: Variables }

/** An error answer. */
class ApiError extends Error {
  override name = 'ApiError'
  readonly status: number
  readonly code: string
  constructor(status: number, code: string, message: string) {
    super(message)
    this.status = status
    this.code = code
  }
}

/** HTTP status of each control error code a handler may throw. */
const STATUS_OF_CODE: Readonly<Record<string, number>> = {
  'invalid-params': 400,
  'bad-request': 400,
  'unknown-method': 501,
  failed: 409,
  'too-many-requests': 429,
  cancelled: 503,
  internal: 500,
}

const JSON_TYPE = 'application/json; charset=utf-8'
const NDJSON_TYPE = 'application/x-ndjson; charset=utf-8'
/** The web view loads only its own script and style, and talks only to this origin. */
const PAGE_CSP =
  "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

/** Creates the API; nothing listens until {@link HttpApi.start}. */
export function createHttpApi(init: HttpApiInit): HttpApi {
  const limits = { ...DEFAULT_HTTP_API_LIMITS, ...init.limits }
  const log = init.log ?? (() => undefined)
  const byRoute: Record<string, Record<string, number>> = {}
  const counters = { unauthorized: 0, tooManyRequests: 0, slowReadersCancelled: 0 }
  const running = new Set<AbortController>()
  let inFlight = 0
  let streams = 0
  let stopped = false
  const document = JSON.stringify(openApiDocument(init.version))

  const app = new Hono<ApiEnv>()
  app.use('*', async (c, next) => {
    // Named before authentication, so a refused call counts under the route it tried.
    c.set('route', routeIdOf(c.req.method, c.req.path))
    await next()
    c.header('x-content-type-options', 'nosniff')
    c.header('referrer-policy', 'no-referrer')
    if (!c.res.headers.has('cache-control')) c.header('cache-control', 'no-store')
    const route = c.get('route')
    const row = byRoute[route] ?? {}
    const status = String(c.res.status)
    row[status] = (row[status] ?? 0) + 1
    byRoute[route] = row
  })

  app.get('/', c => {
    c.set('route', 'page')
    c.header('content-security-policy', PAGE_CSP)
    return c.html(webPageHtml(init.version))
  })
  app.get('/app.js', c => {
    c.set('route', 'page')
    return c.body(WEB_APP_JS, 200, { 'content-type': 'text/javascript; charset=utf-8' })
  })
  app.get('/app.css', c => {
    c.set('route', 'page')
    return c.body(WEB_APP_CSS, 200, { 'content-type': 'text/css; charset=utf-8' })
  })
  app.get('/v1/openapi.json', c => {
    c.set('route', 'openapi')
    return c.body(document, 200, { 'content-type': JSON_TYPE })
  })

  // Every other /v1/ path needs the token, also one that does not exist (no probing without it).
  app.use('/v1/*', async (c, next) => {
    const header = c.req.header('authorization') ?? ''
    const match = /^Bearer +([^\s]+) *$/i.exec(header)
    if (match === null || !tokenMatches(match[1] as string, init.token)) {
      counters.unauthorized += 1
      c.header('www-authenticate', 'Bearer realm="mesh"')
      return errorResponse(
        c,
        new ApiError(
          401,
          'unauthorized',
          match === null
            ? "missing 'Authorization: Bearer TOKEN' header; 'mesh api token' prints the token"
            : "wrong token; 'mesh api token' prints this agent's token",
        ),
      )
    }
    await next()
  })

  const methodsByPath = new Map<string, string[]>()
  for (const route of API_ROUTES) {
    const path = routerPath(route.path)
    methodsByPath.set(path, [...(methodsByPath.get(path) ?? []), route.method])
    app.on(route.method, path, c => {
      c.set('route', route.id)
      return serveRoute(c, route).catch(err => errorResponse(c, asApiError(err, log)))
    })
  }
  for (const [path, methods] of methodsByPath) {
    app.all(path, c => {
      c.header('allow', methods.join(', '))
      return errorResponse(c, new ApiError(405, 'bad-request', `use ${methods.join(' or ')} on this path`))
    })
  }
  app.notFound(c =>
    errorResponse(c, new ApiError(404, 'not-found', `no such path ${c.req.path}; see /v1/openapi.json`)),
  )
  app.onError((err, c) => errorResponse(c, asApiError(err, log)))

  async function serveRoute(c: Context<ApiEnv>, route: ApiRoute): Promise<Response> {
    if (stopped) throw new ApiError(503, 'cancelled', 'the agent is stopping')
    if (inFlight >= limits.requestsInFlightMax || (route.stream === true && streams >= limits.streamsMax)) {
      counters.tooManyRequests += 1
      c.header('retry-after', '1')
      throw new ApiError(429, 'too-many-requests', 'too many API calls at once; retry shortly')
    }
    const params = await gatherParams(c, route, limits.bodyBytesMax)
    const handler = init.handlers[route.control]
    if (handler === undefined)
      throw new ApiError(
        501,
        'unknown-method',
        `this agent has no '${route.control}' method (an older version?); upgrade the agent`,
      )
    inFlight += 1
    if (route.stream === true) streams += 1
    const controller = new AbortController()
    running.add(controller)
    const release = () => {
      if (!running.delete(controller)) return
      inFlight -= 1
      if (route.stream === true) streams -= 1
      clearTimeout(timer)
      c.req.raw.signal.removeEventListener('abort', onClientGone)
    }
    const timeoutMs = callTimeoutMs(route, params, limits.callTimeoutMs)
    const timer = setTimeout(
      () => controller.abort(new ApiError(504, 'timeout', `the call took longer than ${timeoutMs} ms`)),
      timeoutMs,
    )
    const onClientGone = () => controller.abort(new ApiError(499, 'cancelled', 'the client went away'))
    c.req.raw.signal.addEventListener('abort', onClientGone, { once: true })
    if (route.stream === true) return streamCall(handler, params, controller, release)
    try {
      const result = await withAbort(
        invoke(handler, params, { signal: controller.signal, emit: () => undefined }),
        controller.signal,
      )
      return c.body(JSON.stringify(result ?? null), 200, { 'content-type': JSON_TYPE })
    } finally {
      release()
    }
  }

  /**
   * Runs a streaming call: waits for its first event (or its end), so a refusal before anything
   * happened is a plain error answer; then answers NDJSON while the handler runs.
   */
  async function streamCall(
    handler: ControlHandler,
    params: Record<string, unknown>,
    controller: AbortController,
    release: () => void,
  ): Promise<Response> {
    const encoder = new TextEncoder()
    let stream: ReadableStreamDefaultController<Uint8Array> | undefined
    let open = true
    const body = new ReadableStream<Uint8Array>(
      {
        start(s) {
          stream = s
        },
        cancel() {
          open = false
          controller.abort(new ApiError(499, 'cancelled', 'the client went away'))
        },
      },
      { highWaterMark: 64 * 1024, size: chunk => chunk.byteLength },
    )
    const push = (line: unknown) => {
      if (!open || stream === undefined) return
      stream.enqueue(encoder.encode(`${JSON.stringify(line)}\n`))
      if ((stream.desiredSize ?? 0) < -limits.streamBufferBytesMax) {
        counters.slowReadersCancelled += 1
        controller.abort(new ApiError(499, 'cancelled', 'the client does not read its answer'))
      }
    }
    const close = () => {
      if (!open) return
      open = false
      stream?.close()
    }
    let started: () => void = () => undefined
    const firstEvent = new Promise<void>(resolve => {
      started = resolve
    })
    let events = 0
    const run = withAbort(
      invoke(handler, params, {
        signal: controller.signal,
        emit: (event, data) => {
          events += 1
          push({ event, ...(typeof data === 'object' && data !== null ? data : { data }) })
          started()
        },
      }),
      controller.signal,
    )
    const outcome = run.then(
      result => ({ ok: true as const, result }),
      (err: unknown) => ({ ok: false as const, err }),
    )
    await Promise.race([firstEvent, outcome])
    if (events === 0) {
      const settled = await outcome
      if (!settled.ok) {
        release()
        throw settled.err
      }
    }
    void outcome.then(settled => {
      if (settled.ok) push(summaryLine(settled.result))
      else {
        const error = asApiError(settled.err, log)
        push({ event: 'error', error: { code: error.code, message: error.message } })
      }
      close()
      release()
    })
    return new Response(body, { status: 200, headers: { 'content-type': NDJSON_TYPE } })
  }

  const listener = getRequestListener(app.fetch, {
    overrideGlobalObjects: false,
    errorHandler: err => {
      log('warn', 'API request failed', { err: String(err) })
      return new Response(JSON.stringify({ error: { code: 'internal', message: 'internal error' } }), {
        status: 500,
        headers: { 'content-type': JSON_TYPE },
      })
    },
  })
  const server = createServer(
    {
      requestTimeout: limits.requestTimeoutMs,
      headersTimeout: limits.requestTimeoutMs,
      maxHeaderSize: 16 * 1024,
    },
    (req, res) => void listener(req, res),
  )
  server.maxConnections = limits.connectionsMax
  server.keepAliveTimeout = 5_000
  let listening: HttpListener | undefined
  let stopping: Promise<void> | undefined

  return {
    app,
    async start() {
      listening ??= await listenHttp(server, init.listen, 'apiListen')
      return listening
    },
    stop() {
      stopping ??= (async () => {
        stopped = true
        for (const controller of running)
          controller.abort(new ApiError(503, 'cancelled', 'the agent is stopping'))
        await listening?.stop()
      })()
      return stopping
    },
    counters: () => ({
      byRoute: Object.fromEntries(Object.entries(byRoute).map(([k, v]) => [k, { ...v }])),
      ...counters,
    }),
  }
}

const ROUTE_PATTERNS = API_ROUTES.map(route => ({
  route,
  pattern: new RegExp(`^${route.path.replace(/\{[A-Za-z]+\}/g, '[^/]+')}$`),
}))

/** The route id of a request (metrics label): a route of the table, `page`, `openapi` or `not-found`. */
function routeIdOf(method: string, path: string): string {
  if (path === '/' || path === '/app.js' || path === '/app.css') return 'page'
  if (path === '/v1/openapi.json') return 'openapi'
  const match = ROUTE_PATTERNS.find(p => p.route.method === method && p.pattern.test(path))
  return match?.route.id ?? 'not-found'
}

/** The line `mesh exec --jsonl` ends with (src/cli/exec.ts prints the same fields). */
function summaryLine(result: unknown): unknown {
  const r = (result ?? {}) as {
    id?: unknown
    expected?: unknown
    missing?: unknown
    replies?: Array<{ node: string; status: string; expected: boolean }>
  }
  const failed = Array.isArray(r.replies)
    ? r.replies.filter(x => x.expected && x.status !== 'ok').map(x => x.node)
    : []
  return { event: 'summary', id: r.id, expected: r.expected, missing: r.missing, failed }
}

/** Calls `handler`; one that throws at once (not async) rejects like one that fails later. */
function invoke(handler: ControlHandler, params: unknown, context: ControlHandlerContext): Promise<unknown> {
  try {
    return Promise.resolve(handler(params, context))
  } catch (err) {
    return Promise.reject(err)
  }
}

/** Rejects with the signal's reason when it aborts first (a handler that ignores its signal). */
function withAbort<T>(promise: Promise<T>, signal: AbortSignal): Promise<T> {
  if (signal.aborted) return Promise.reject(signal.reason)
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(signal.reason)
    signal.addEventListener('abort', onAbort, { once: true })
    promise.then(
      value => {
        signal.removeEventListener('abort', onAbort)
        resolve(value)
      },
      (err: unknown) => {
        signal.removeEventListener('abort', onAbort)
        reject(err)
      },
    )
  })
}

/** Path parameters, query parameters and the JSON body, checked for shape (the handler checks values). */
async function gatherParams(
  c: Context<ApiEnv>,
  route: ApiRoute,
  bodyBytesMax: number,
): Promise<Record<string, unknown>> {
  const params: Record<string, unknown> = {}
  if (route.body === true) Object.assign(params, await readJsonBody(c.req.raw, bodyBytesMax))
  const query = c.req.query()
  for (const [name, value] of Object.entries(query)) {
    const spec = route.query?.[name]
    if (spec === undefined)
      throw new ApiError(
        400,
        'invalid-params',
        `unknown query parameter '${name.slice(0, 64)}'${route.query === undefined ? '' : `; known: ${Object.keys(route.query).join(', ')}`}`,
      )
    params[name] = queryValue(name, spec, value)
  }
  for (const name of pathParams(route.path)) {
    const value = c.req.param(name) ?? ''
    if (value.length === 0 || value.length > API_PATH_PARAM_LENGTH_MAX || /[\s\p{Cc}]/u.test(value))
      throw new ApiError(
        400,
        'invalid-params',
        `${name} must be 1 to ${API_PATH_PARAM_LENGTH_MAX} characters without spaces`,
      )
    params[name] = value
  }
  return params
}

function queryValue(name: string, spec: QueryParam, text: string): unknown {
  switch (spec.type) {
    case 'string':
      if (text.length > API_PATH_PARAM_LENGTH_MAX)
        throw new ApiError(400, 'invalid-params', `${name} is too long`)
      return text
    case 'boolean':
      if (text === 'true' || text === '1') return true
      if (text === 'false' || text === '0') return false
      throw new ApiError(400, 'invalid-params', `${name} must be true or false`)
    case 'integer': {
      const n = /^\d{1,16}$/.test(text) ? Number(text) : Number.NaN
      const min = spec.minimum ?? 0
      const max = spec.maximum ?? Number.MAX_SAFE_INTEGER
      if (!Number.isSafeInteger(n) || n < min || n > max)
        throw new ApiError(400, 'invalid-params', `${name} must be an integer from ${min} to ${max}`)
      return n
    }
  }
}

/** Reads a JSON object body of at most `bytesMax` bytes; an empty body is `{}`. */
async function readJsonBody(request: Request, bytesMax: number): Promise<Record<string, unknown>> {
  const declared = Number(request.headers.get('content-length') ?? '0')
  if (declared > bytesMax) throw new ApiError(413, 'bad-request', `the body is larger than ${bytesMax} bytes`)
  const type = request.headers.get('content-type') ?? ''
  const chunks: Uint8Array[] = []
  let length = 0
  if (request.body !== null) {
    const reader = request.body.getReader()
    for (;;) {
      const { done, value } = await reader.read()
      if (done) break
      length += value.byteLength
      if (length > bytesMax) {
        await reader.cancel().catch(() => undefined)
        throw new ApiError(413, 'bad-request', `the body is larger than ${bytesMax} bytes`)
      }
      chunks.push(value)
    }
  }
  if (length === 0) return {}
  if (!/^application\/json\s*(;|$)/i.test(type))
    throw new ApiError(415, 'bad-request', "send the body as JSON with 'Content-Type: application/json'")
  let parsed: unknown
  try {
    parsed = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(Buffer.concat(chunks)))
  } catch (err) {
    throw new ApiError(400, 'bad-request', `the body is not JSON: ${(err as Error).message.slice(0, 120)}`)
  }
  if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed))
    throw new ApiError(400, 'invalid-params', 'the body must be a JSON object')
  return parsed as Record<string, unknown>
}

/** Any failure as an answer: ControlErrors by their code, anything unexpected as 500 (logged). */
function asApiError(
  err: unknown,
  log: (level: 'debug' | 'warn', message: string, context: Record<string, unknown>) => void,
): ApiError {
  if (err instanceof ApiError) return err
  if (err instanceof ControlError || (err instanceof Error && err.name === 'ControlError')) {
    const code = (err as ControlError).code
    const status = STATUS_OF_CODE[code]
    if (status !== undefined) return new ApiError(status, code, err.message)
  }
  log('warn', 'API handler failed', { err: String(err) })
  return new ApiError(500, 'internal', 'internal error; see the agent log')
}

function errorResponse(c: Context, error: ApiError): Response {
  return c.body(
    JSON.stringify({ error: { code: error.code, message: error.message } }),
    error.status as 400,
    {
      'content-type': JSON_TYPE,
    },
  )
}
