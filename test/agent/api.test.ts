// Proves the HTTP API's own rules with stand-in control handlers (no node, no socket unless said):
// the bearer token (401, counted), the route table's mapping of path, query and body to a control
// method's parameters, the control error codes as HTTP statuses, a missing method as 501, bounded
// and validated input (body size, JSON, query types, path parameters), exec's NDJSON stream with the
// summary line of `mesh exec --jsonl`, call time limits, the in-flight bound, and, on a real
// 127.0.0.1 socket, that a client that goes away cancels its call.
import { afterEach, describe, expect, it } from 'vitest'
import { API_ROUTES } from '../../src/agent/api/routes.js'
import { createHttpApi, type HttpApiInit } from '../../src/agent/http-api.js'
import { ControlError, type ControlHandler } from '../../src/control/index.js'

const TOKEN = 'A'.repeat(43)
const auth = { authorization: `Bearer ${TOKEN}` }

/** Records every call: method name and params. */
function recorder(overrides: Record<string, ControlHandler> = {}) {
  const calls: Array<{ method: string; params: unknown }> = []
  const handlers: Record<string, ControlHandler> = {}
  for (const route of API_ROUTES) {
    handlers[route.control] = async params => {
      calls.push({ method: route.control, params })
      return { method: route.control }
    }
  }
  Object.assign(handlers, overrides)
  return { calls, handlers }
}

function api(handlers: Record<string, ControlHandler>, extra: Partial<HttpApiInit> = {}) {
  return createHttpApi({ listen: '127.0.0.1:0', handlers, token: TOKEN, version: 'test', ...extra })
}

const stops: Array<() => Promise<void>> = []
afterEach(async () => {
  for (const stop of stops.splice(0)) await stop()
})

describe('HTTP API: authentication', () => {
  it('refuses a missing or wrong token with 401 and counts each refusal', async () => {
    const { calls, handlers } = recorder()
    const server = api(handlers)
    const none = await server.app.request('/v1/status')
    expect(none.status).toBe(401)
    expect(none.headers.get('www-authenticate')).toContain('Bearer')
    expect(((await none.json()) as { error: { code: string } }).error.code).toBe('unauthorized')
    const wrong = await server.app.request('/v1/status', {
      headers: { authorization: `Bearer ${'B'.repeat(43)}` },
    })
    expect(wrong.status).toBe(401)
    const basic = await server.app.request('/v1/status', { headers: { authorization: `Basic ${TOKEN}` } })
    expect(basic.status).toBe(401)
    // An unknown path without a token is 401 too (nothing to probe).
    expect((await server.app.request('/v1/nothing-here')).status).toBe(401)
    expect(calls).toEqual([])
    expect(server.counters().unauthorized).toBe(4)
    expect(server.counters().byRoute.status?.['401']).toBe(3)
    const ok = await server.app.request('/v1/status', { headers: auth })
    expect(ok.status).toBe(200)
    expect(await ok.json()).toEqual({ method: 'status' })
    expect(server.counters().byRoute.status?.['200']).toBe(1)
    expect(server.counters().unauthorized).toBe(4)
  })

  it('serves the page, its script and the OpenAPI document without a token', async () => {
    const server = api(recorder().handlers)
    const page = await server.app.request('/')
    expect(page.status).toBe(200)
    expect(page.headers.get('content-type')).toContain('text/html')
    expect(page.headers.get('content-security-policy')).toContain("script-src 'self'")
    expect(await page.text()).toContain('<script src="/app.js"')
    const script = await (await server.app.request('/app.js')).text()
    expect(script).toContain('["uptime","ping","facts"]')
    expect(script).not.toContain('__BUILTINS__')
    expect(script).not.toContain('innerHTML')
    const doc = (await (await server.app.request('/v1/openapi.json')).json()) as { openapi: string }
    expect(doc.openapi).toBe('3.1.0')
  })
})

describe('HTTP API: routes to control methods', () => {
  it('passes path, query and body as the parameters of the named method', async () => {
    const { calls, handlers } = recorder()
    const server = api(handlers)
    const post = (path: string, body?: unknown) =>
      server.app.request(path, {
        method: 'POST',
        headers: { ...auth, 'content-type': 'application/json' },
        ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
      })
    expect((await post('/v1/ca/requests/abc123/sign')).status).toBe(200)
    // A body field cannot override the path's id.
    expect((await post('/v1/ca/requests/abc123/reject', undefined)).status).toBe(200)
    expect((await post('/v1/ca/reject', { requester: 'n1' })).status).toBe(200)
    expect((await post('/v1/ca/revoke', { target: 'w2' })).status).toBe(200)
    const wait = await server.app.request(`/v1/jobs/${'a'.repeat(32)}/wait?timeoutMs=2500`, { headers: auth })
    expect(wait.status).toBe(200)
    expect((await server.app.request('/v1/jobs?limit=5', { headers: auth })).status).toBe(200)
    expect(calls).toEqual([
      { method: 'ca.sign', params: { id: 'abc123' } },
      { method: 'ca.reject', params: { id: 'abc123' } },
      { method: 'ca.reject', params: { requester: 'n1' } },
      { method: 'ca.revoke', params: { target: 'w2' } },
      { method: 'jobs.wait', params: { id: 'a'.repeat(32), timeoutMs: 2500 } },
      { method: 'jobs.list', params: { limit: 5 } },
    ])
  })

  it('answers each control error code with its HTTP status', async () => {
    const thrower = (code: ConstructorParameters<typeof ControlError>[0]) => async () => {
      throw new ControlError(code, `because ${code}`)
    }
    const server = api({
      status: thrower('invalid-params'),
      members: thrower('failed'),
      zones: async () => {
        throw new Error('a bug')
      },
    })
    const get = async (path: string) => {
      const res = await server.app.request(path, { headers: auth })
      return { status: res.status, body: (await res.json()) as { error: { code: string; message: string } } }
    }
    expect(await get('/v1/status')).toEqual({
      status: 400,
      body: { error: { code: 'invalid-params', message: 'because invalid-params' } },
    })
    expect((await get('/v1/members')).status).toBe(409)
    const bug = await get('/v1/zones')
    expect(bug.status).toBe(500)
    expect(bug.body.error.message).not.toContain('a bug') // internals stay in the log
    // No jobs.list handler on this agent: 501, not 404.
    const missing = await get('/v1/jobs')
    expect(missing.status).toBe(501)
    expect(missing.body.error.code).toBe('unknown-method')
    expect((await get('/v1/no/such/path')).status).toBe(404)
    const wrongMethod = await server.app.request('/v1/status', { method: 'DELETE', headers: auth })
    expect(wrongMethod.status).toBe(405)
    expect(wrongMethod.headers.get('allow')).toBe('GET')
  })

  it('refuses bad input before any handler runs', async () => {
    const { calls, handlers } = recorder()
    const server = api(handlers, { limits: { bodyBytesMax: 1024 } })
    const send = (path: string, body: string, type = 'application/json') =>
      server.app.request(path, { method: 'POST', headers: { ...auth, 'content-type': type }, body })
    const expectRefused = async (res: Response | Promise<Response>, status: number) => {
      const r = await res
      expect(r.status).toBe(status)
      expect(((await r.json()) as { error: { code: string } }).error.code).toMatch(
        /^(invalid-params|bad-request)$/,
      )
    }
    await expectRefused(send('/v1/ca/revoke', '{"target":'), 400)
    await expectRefused(send('/v1/ca/revoke', '[1,2]'), 400)
    await expectRefused(send('/v1/ca/revoke', '"w2"'), 400)
    await expectRefused(send('/v1/ca/revoke', JSON.stringify({ target: 'x'.repeat(2000) })), 413)
    await expectRefused(send('/v1/ca/revoke', 'target=w2', 'application/x-www-form-urlencoded'), 415)
    await expectRefused(server.app.request('/v1/jobs?limit=ten', { headers: auth }), 400)
    await expectRefused(server.app.request('/v1/jobs?limit=0', { headers: auth }), 400)
    await expectRefused(server.app.request('/v1/jobs?verbose=1', { headers: auth }), 400)
    await expectRefused(server.app.request('/v1/status?x=1', { headers: auth }), 400)
    await expectRefused(server.app.request(`/v1/jobs/${'a'.repeat(200)}`, { headers: auth }), 400)
    await expectRefused(server.app.request('/v1/jobs/a%20b', { headers: auth }), 400)
    expect(calls).toEqual([])
  })
})

describe('HTTP API: exec streams NDJSON', () => {
  const result = {
    id: 'r1',
    action: 'uptime',
    expected: ['w1', 'w2'],
    replies: [
      { node: 'w1', status: 'ok', expected: true },
      { node: 'w2', status: 'failed', expected: true },
    ],
    missing: [],
  }

  it('sends each event as a line as it happens, then the summary line', async () => {
    let release: () => void = () => undefined
    const gate = new Promise<void>(resolve => {
      release = resolve
    })
    const server = api({
      exec: async (_params, context) => {
        context.emit('published', { kind: 'published', id: 'r1', expected: ['w1', 'w2'] })
        await gate
        context.emit('done', { kind: 'done', reply: result.replies[0] })
        context.emit('done', { kind: 'done', reply: result.replies[1] })
        return result
      },
    })
    const res = await server.app.request('/v1/exec', {
      method: 'POST',
      headers: { ...auth, 'content-type': 'application/json' },
      body: JSON.stringify({ action: 'uptime', timeoutMs: 1000 }),
    })
    // The answer started before the handler finished: the first line is readable now.
    expect(res.status).toBe(200)
    expect(res.headers.get('content-type')).toContain('application/x-ndjson')
    const reader = res.body!.getReader()
    const first = new TextDecoder().decode((await reader.read()).value)
    expect(JSON.parse(first)).toEqual({
      event: 'published',
      kind: 'published',
      id: 'r1',
      expected: ['w1', 'w2'],
    })
    release()
    let rest = ''
    for (;;) {
      const chunk = await reader.read()
      if (chunk.done) break
      rest += new TextDecoder().decode(chunk.value)
    }
    const lines = rest
      .trim()
      .split('\n')
      .map(l => JSON.parse(l) as Record<string, unknown>)
    expect(lines.map(l => l.event)).toEqual(['done', 'done', 'summary'])
    expect(lines[2]).toEqual({
      event: 'summary',
      id: 'r1',
      expected: ['w1', 'w2'],
      missing: [],
      failed: ['w2'],
    })
  })

  it('answers a refusal before the first event as a plain error, one after it as an error line', async () => {
    const early = api({
      exec: async () => {
        throw new ControlError('invalid-params', 'timeoutMs must be a positive integer')
      },
    })
    const request = { method: 'POST', headers: { ...auth, 'content-type': 'application/json' }, body: '{}' }
    const refused = await early.app.request('/v1/exec', request)
    expect(refused.status).toBe(400)
    expect(await refused.json()).toEqual({
      error: { code: 'invalid-params', message: 'timeoutMs must be a positive integer' },
    })
    const late = api({
      exec: async (_p, context) => {
        context.emit('published', { id: 'r2', expected: [] })
        throw new ControlError('failed', 'lost the node')
      },
    })
    const failed = await late.app.request('/v1/exec', request)
    expect(failed.status).toBe(200)
    const lines = (await failed.text())
      .trim()
      .split('\n')
      .map(l => JSON.parse(l))
    expect(lines).toEqual([
      { event: 'published', id: 'r2', expected: [] },
      { event: 'error', error: { code: 'failed', message: 'lost the node' } },
    ])
  })
})

describe('HTTP API: bounds', () => {
  it('answers 504 when a call outlives its limit, and aborts the handler', async () => {
    let aborted = false
    const server = api(
      {
        status: (_p, context) =>
          new Promise(() => {
            context.signal.addEventListener('abort', () => {
              aborted = true
            })
          }),
      },
      { limits: { callTimeoutMs: 50 } },
    )
    const res = await server.app.request('/v1/status', { headers: auth })
    expect(res.status).toBe(504)
    expect(aborted).toBe(true)
  })

  it('answers 429 past the calls in flight, and serves again once they end', async () => {
    let release: () => void = () => undefined
    const gate = new Promise<void>(resolve => {
      release = resolve
    })
    const server = api({ status: () => gate.then(() => ({})) }, { limits: { requestsInFlightMax: 2 } })
    const held = [
      server.app.request('/v1/status', { headers: auth }),
      server.app.request('/v1/status', { headers: auth }),
    ]
    await new Promise(r => setTimeout(r, 10))
    const third = await server.app.request('/v1/status', { headers: auth })
    expect(third.status).toBe(429)
    expect(server.counters().tooManyRequests).toBe(1)
    release()
    expect((await Promise.all(held)).map(r => r.status)).toEqual([200, 200])
    expect((await server.app.request('/v1/status', { headers: auth })).status).toBe(200)
  })

  it('frees the slot of a handler that throws at once (not async), streaming or not', async () => {
    const throwing = (() => {
      throw new ControlError('failed', 'thrown synchronously')
    }) as unknown as ControlHandler
    const server = api(
      { status: throwing, exec: throwing },
      { limits: { requestsInFlightMax: 1, streamsMax: 1 } },
    )
    const exec = { method: 'POST', headers: { ...auth, 'content-type': 'application/json' }, body: '{}' }
    for (let i = 0; i < 3; i++) {
      expect((await server.app.request('/v1/status', { headers: auth })).status).toBe(409)
      expect((await server.app.request('/v1/exec', exec)).status).toBe(409)
    }
    expect(server.counters().tooManyRequests).toBe(0)
  })

  it('cancels a streaming call when its client disconnects (real socket on 127.0.0.1)', async () => {
    let signal: AbortSignal | undefined
    const server = api({
      exec: (_p, context) => {
        signal = context.signal
        context.emit('published', { id: 'r3', expected: ['w1'] })
        return new Promise(resolve => context.signal.addEventListener('abort', () => resolve({ id: 'r3' })))
      },
    })
    stops.push(() => server.stop())
    const listener = await server.start()
    expect(listener.host).toBe('127.0.0.1')
    expect(listener.port).toBeGreaterThan(0)
    const client = new AbortController()
    const res = await fetch(`${listener.url}/v1/exec`, {
      method: 'POST',
      headers: { ...auth, 'content-type': 'application/json' },
      body: JSON.stringify({ action: 'uptime', timeoutMs: 60_000 }),
      signal: client.signal,
    })
    const reader = res.body!.getReader()
    expect(new TextDecoder().decode((await reader.read()).value)).toContain('"published"')
    expect(signal?.aborted).toBe(false)
    client.abort()
    const deadline = Date.now() + 5_000
    while (signal?.aborted !== true && Date.now() < deadline) await new Promise(r => setTimeout(r, 20))
    expect(signal?.aborted).toBe(true)
  })

  it('refuses an address in use with a clear error', async () => {
    const first = api({})
    stops.push(() => first.stop())
    const listener = await first.start()
    const second = api({}, { listen: `127.0.0.1:${listener.port}` })
    await expect(second.start()).rejects.toThrow(
      /cannot listen on 127\.0\.0\.1:\d+ \(apiListen\): the address is in use/,
    )
  })
})
