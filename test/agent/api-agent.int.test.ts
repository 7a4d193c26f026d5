// Proves the HTTP API and the metrics in a real agent (mesh init, then startAgent with MESH_API_LISTEN
// and MESH_METRICS_LISTEN on 127.0.0.1): `mesh api token` prints the token the agent accepts, a
// missing or wrong token is 401 and shows in the metrics, every documented route is served (a method
// this agent lacks answers 501), answers and exec's NDJSON events match the OpenAPI schemas (checked
// with ajv, which is shown to reject a wrong answer), and a scrape of /metrics, parsed by a real
// exposition parser, shows this node, its lease, the uptime it ran and the exec's latency.
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Ajv2020 } from 'ajv/dist/2020.js'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { API_ROUTES } from '../../src/agent/api/routes.js'
import { ensureApiToken } from '../../src/agent/api/token.js'
import { controlHandlers } from '../../src/agent/control-methods.js'
import { initHome } from '../../src/agent/init.js'
import { type RunningAgent, startAgent } from '../../src/agent/runtime.js'
import { createCli } from '../../src/cli.js'
import { silentLogger } from '../../src/node/log.js'
import { parseExposition } from './metrics-exposition.js'

const root = mkdtempSync(join(tmpdir(), 'mesh-api-agent-'))
const home = join(root, 'c1')
let agent: RunningAgent
let apiUrl = ''
let metricsUrl = ''
let token = ''

const ajv = new Ajv2020({ strict: false, allErrors: true })
let schemas: Record<string, unknown> = {}

async function call(path: string, init: RequestInit = {}): Promise<Response> {
  return fetch(`${apiUrl}${path}`, {
    ...init,
    headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json', ...init.headers },
  })
}

async function scrape() {
  const res = await fetch(`${metricsUrl}/metrics`)
  expect(res.status).toBe(200)
  return parseExposition(await res.text())
}

async function until(what: string, check: () => Promise<boolean>, timeoutMs = 15_000): Promise<void> {
  const deadline = Date.now() + timeoutMs
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
    await new Promise(r => setTimeout(r, 100))
  }
}

beforeAll(async () => {
  await initHome(home, { name: 'c1', zone: 'core' }, Date.now())
  agent = await startAgent({
    home,
    env: {
      MESH_LISTEN: '/ip4/127.0.0.1/tcp/0',
      MESH_MDNS: 'false',
      MESH_API_LISTEN: '127.0.0.1:0',
      MESH_METRICS_LISTEN: '127.0.0.1:0',
    },
    logger: silentLogger(),
  })
  apiUrl = agent.http.api?.url ?? ''
  metricsUrl = agent.http.metrics?.url ?? ''
  token = await ensureApiToken(home)
  const doc = (await (await fetch(`${apiUrl}/v1/openapi.json`)).json()) as Record<string, unknown>
  ajv.addSchema(doc, 'openapi.json')
  schemas = (doc.components as { schemas: Record<string, unknown> }).schemas
})

afterAll(async () => {
  await agent?.stop()
  rmSync(root, { recursive: true, force: true })
})

/** Problems of `value` against `schema`, whose `#/components/…` refs name the served document. */
function check(schema: unknown, value: unknown): string[] {
  const validate = ajv.compile(rewrite(schema))
  return validate(value) ? [] : (validate.errors ?? []).map(e => `${e.instancePath} ${e.message}`)
}
/** Points the document's local `#/components/…` refs at the registered document. */
function rewrite(schema: unknown): Record<string, unknown> {
  return JSON.parse(JSON.stringify(schema).replaceAll('"#/components/', '"openapi.json#/components/'))
}

describe('HTTP API in a running agent', () => {
  it('serves both listeners on 127.0.0.1 from the configuration', () => {
    expect(apiUrl).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/)
    expect(metricsUrl).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/)
  })

  it('accepts the token `mesh api token` prints, refuses others with 401, and counts them', async () => {
    let printed = ''
    const cli = createCli({
      stdout: { write: s => (printed += s) },
      stderr: { write: () => true },
      env: {},
      userHome: root,
    })
    expect(await cli.run(['--home', home, 'api', 'token'])).toBe(0)
    expect(printed.trim()).toBe(token)
    expect((await call('/v1/status')).status).toBe(200)
    expect((await fetch(`${apiUrl}/v1/status`)).status).toBe(401)
    expect((await call('/v1/status', { headers: { authorization: 'Bearer nope' } })).status).toBe(401)
    const m = await scrape()
    expect(m.value('mesh_api_unauthorized_total')).toBe(2)
    expect(m.value('mesh_api_requests_total', { route: 'status', code: '401' })).toBe(2)
    expect(m.value('mesh_api_requests_total', { route: 'status', code: '200' })).toBeGreaterThanOrEqual(1)
  })

  it('documents exactly the served routes, each running a method the agent has (or 501)', async () => {
    const doc = (await (await fetch(`${apiUrl}/v1/openapi.json`)).json()) as {
      paths: Record<string, Record<string, { operationId: string; 'x-control-method': string }>>
    }
    const documented = Object.entries(doc.paths).flatMap(([path, item]) =>
      Object.entries(item).map(
        ([method, op]) => `${method.toUpperCase()} ${path} ${op.operationId} ${op['x-control-method']}`,
      ),
    )
    expect(documented.sort()).toEqual(
      API_ROUTES.map(r => `${r.method} ${r.path} ${r.id} ${r.control}`).sort(),
    )
    const handlers = controlHandlers(agent.node, new Uint8Array(32))
    for (const route of API_ROUTES) {
      // A short wait: an unknown job is looked up in the mesh until the wait ends.
      const path = `${route.path.replace('{id}', '0'.repeat(32))}${route.id === 'jobsWait' ? '?timeoutMs=100' : ''}`
      const res = await call(path, route.method === 'POST' ? { method: 'POST', body: '{}' } : {})
      // Served: never 404 or 405; without the method on this agent, 501.
      expect([404, 405], `${route.method} ${path}`).not.toContain(res.status)
      if (handlers[route.control] === undefined) expect(res.status, route.control).toBe(501)
      else expect(res.status, route.control).not.toBe(501)
      if (res.headers.get('content-type')?.includes('ndjson')) await res.text()
    }
  })

  it('answers in the documented shapes', async () => {
    const answers: Array<[string, unknown]> = [
      ['/v1/status', { $ref: '#/components/schemas/Status' }],
      ['/v1/members', { type: 'array', items: { $ref: '#/components/schemas/Member' }, minItems: 1 }],
      ['/v1/zones', { type: 'array', items: { $ref: '#/components/schemas/Zone' }, minItems: 1 }],
      ['/v1/ca/requests', { type: 'array', items: { $ref: '#/components/schemas/PendingRequest' } }],
    ]
    for (const [path, schema] of answers) {
      const res = await call(path)
      expect(res.status, path).toBe(200)
      expect(check(schema, await res.json()), path).toEqual([])
    }
    const jobs = await call('/v1/jobs')
    if (jobs.status !== 501)
      expect(check({ $ref: '#/components/schemas/JobList' }, await jobs.json())).toEqual([])
    // The schemas are not vacuous: a status without a name, a member in an unknown state fail.
    expect(check({ $ref: '#/components/schemas/Status' }, { zone: 'core' })).not.toEqual([])
    expect(
      check(
        { $ref: '#/components/schemas/Member' },
        {
          name: 'x',
          peerId: 'p',
          zone: 'z',
          roles: [],
          addrs: [],
          state: 'sleeping',
          lastSeenMs: 0,
          facts: {},
        },
      ),
    ).not.toEqual([])
    expect(Object.keys(schemas)).toContain('ExecEvent')
  })

  it('streams an exec as NDJSON events in the documented shape, then shows it in the metrics', async () => {
    await until(
      'the core lease',
      async () => (await scrape()).value('mesh_zone_authority_held', { zone: 'core' }) === 1,
    )
    // The route test above ran job lookups (themselves execs): counts that are not uptime's are deltas.
    const before = await scrape()
    const delta = (after: typeof before, name: string, labels: Record<string, string>) =>
      (after.value(name, labels) ?? 0) - (before.value(name, labels) ?? 0)
    const res = await call('/v1/exec', {
      method: 'POST',
      body: JSON.stringify({ action: 'uptime', args: [], filter: {}, timeoutMs: 5_000 }),
    })
    expect(res.status).toBe(200)
    expect(res.headers.get('content-type')).toContain('application/x-ndjson')
    const lines = (await res.text())
      .trim()
      .split('\n')
      .map(l => JSON.parse(l) as { event: string; reply?: { output: string } })
    for (const line of lines)
      expect(check({ $ref: '#/components/schemas/ExecEvent' }, line), JSON.stringify(line)).toEqual([])
    expect(lines[0]?.event).toBe('published')
    expect(lines.find(l => l.event === 'done')?.reply?.output).toMatch(/load average/)
    expect(lines.at(-1)).toMatchObject({ event: 'summary', expected: ['c1'], missing: [], failed: [] })
    // Refused parameters before anything was published: a plain 400.
    const bad = await call('/v1/exec', {
      method: 'POST',
      body: JSON.stringify({ action: 'uptime', timeoutMs: -1 }),
    })
    expect(bad.status).toBe(400)
    expect(check({ $ref: '#/components/schemas/Error' }, await bad.json())).toEqual([])

    const m = await scrape()
    expect(m.value('mesh_node_info', { name: 'c1', zone: 'core' })).toBe(1)
    expect(m.value('mesh_members', { zone: 'core', state: 'alive' })).toBe(1)
    expect(m.value('mesh_actions_total', { action: 'uptime', status: 'ok' })).toBe(1)
    expect(Number(m.sample('mesh_action_duration_seconds', { action: 'uptime', status: 'ok' })?.count)).toBe(
      1,
    )
    expect(Number(m.sample('mesh_exec_duration_seconds', { action: 'uptime' })?.count)).toBe(1)
    expect(delta(m, 'mesh_replies_received_total', { result: 'ok' })).toBe(1)
    expect(delta(m, 'mesh_replies_sent_total', { kind: 'done', status: 'ok' })).toBe(1)
    expect(m.value('mesh_requests_total', { code: 'accept-execute' })).toBeGreaterThanOrEqual(1)
    expect(m.value('mesh_zone_authority_epoch', { zone: 'core' })).toBeGreaterThanOrEqual(1)
    expect(m.value('mesh_certificate_expiry_timestamp_seconds')).toBeGreaterThan(Date.now() / 1000)
    expect(m.value('mesh_revocation_list_version')).toBe(0)
    expect(m.value('mesh_ca_pending_requests')).toBe(0)
    expect(m.value('process_resident_memory_bytes')).toBeGreaterThan(0)
  })

  it('stops both listeners with the agent', async () => {
    const other = join(root, 'c2')
    await initHome(other, { name: 'c2', zone: 'core' }, Date.now())
    const second = await startAgent({
      home: other,
      env: {
        MESH_LISTEN: '/ip4/127.0.0.1/tcp/0',
        MESH_API_LISTEN: '127.0.0.1:0',
        MESH_METRICS_LISTEN: '127.0.0.1:0',
      },
      logger: silentLogger(),
    })
    const urls = [`${second.http.api?.url}/v1/openapi.json`, `${second.http.metrics?.url}/metrics`]
    for (const url of urls) expect((await fetch(url)).status).toBe(200)
    await second.stop()
    for (const url of urls) await expect(fetch(url)).rejects.toThrow()
  })
})
