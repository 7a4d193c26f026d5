/**
 * The OpenAPI 3.1 document of the HTTP API, served at `/v1/openapi.json`. Paths and methods come from
 * the route table (api/routes.ts); this file adds what each operation takes and answers. Schemas are
 * JSON Schema 2020-12 (OpenAPI 3.1's dialect), the shapes of docs/cli.md's `--json` output; objects
 * stay open (`additionalProperties` allowed) so a newer agent may add fields. test/agent/api-openapi
 * checks every route against it and real answers against its schemas.
 */

import { API_BODY_BYTES_MAX, API_ROUTES, type ApiRoute, pathParams } from './api/routes.js'
import { EXEC_TIMEOUT_MS_MAX } from './control-methods.js'

type Schema = Record<string, unknown>

const ref = (name: string): Schema => ({ $ref: `#/components/schemas/${name}` })
const str: Schema = { type: 'string' }
const int: Schema = { type: 'integer' }
const strings: Schema = { type: 'array', items: str }
const obj = (properties: Record<string, Schema>, required: string[] = Object.keys(properties)): Schema => ({
  type: 'object',
  properties,
  required,
})

/** Reusable schemas. */
export const API_SCHEMAS: Readonly<Record<string, Schema>> = {
  Error: obj({ error: obj({ code: str, message: str }) }),
  Status: obj(
    {
      name: str,
      zone: str,
      roles: strings,
      peerId: str,
      addrs: strings,
      fingerprint: str,
      version: str,
      ca: { type: 'boolean' },
      certificateExpiresAtMs: int,
      certificateState: { enum: ['valid', 'revoked'] },
      certificateSerial: str,
      counters: { type: 'object' },
      traffic: obj({ windowMs: int, protocols: { type: 'object' }, total: { type: 'object' } }),
    },
    ['name', 'zone', 'roles', 'peerId', 'addrs', 'fingerprint', 'version', 'certificateExpiresAtMs'],
  ),
  Member: obj(
    {
      name: str,
      peerId: str,
      zone: str,
      roles: strings,
      addrs: strings,
      state: { enum: ['alive', 'suspect', 'dead', 'left'] },
      lastSeenMs: int,
      facts: { type: 'object', additionalProperties: str },
    },
    ['name', 'peerId', 'zone', 'roles', 'addrs', 'state', 'lastSeenMs', 'facts'],
  ),
  Zone: obj({
    zone: str,
    members: strings,
    authority: { type: ['string', 'null'] },
    epoch: int,
    leaseRemainingMs: { type: ['integer', 'null'] },
  }),
  Filter: {
    type: 'object',
    description: 'Which nodes run the action; absent parts match every node (docs/cli.md, mesh exec)',
    properties: {
      zone: str,
      node: { type: 'string', description: 'glob over node names' },
      facts: { type: 'array', items: obj({ key: str, pattern: str }) },
      where: { type: 'string', description: "a --where expression, e.g. 'zone=db and not name=d2'" },
      once: { type: 'boolean', description: 'only the zone authority of each matching zone' },
    },
  },
  ExecRequest: obj(
    {
      action: str,
      args: strings,
      filter: ref('Filter'),
      timeoutMs: { type: 'integer', minimum: 1, maximum: EXEC_TIMEOUT_MS_MAX },
    },
    ['action', 'timeoutMs'],
  ),
  Reply: obj(
    {
      node: str,
      zone: str,
      status: { enum: ['ok', 'failed', 'denied', 'error', 'cancelled'] },
      exitCode: { type: ['integer', 'null'] },
      output: str,
      durationMs: int,
      expected: { type: 'boolean' },
      reason: str,
      epoch: int,
    },
    ['node', 'zone', 'status', 'exitCode', 'output', 'durationMs'],
  ),
  ExecEvent: {
    description:
      'One NDJSON line of POST /v1/exec, as `mesh exec --jsonl` prints it: the event name and its data',
    oneOf: [
      obj({ event: { const: 'published' }, id: str, expected: strings }),
      obj({ event: { const: 'ack' }, node: str, expected: { type: 'boolean' } }),
      obj({ event: { const: 'done' }, reply: ref('Reply') }, ['event', 'reply']),
      obj(
        {
          event: { const: 'output' },
          node: str,
          stream: { enum: ['stdout', 'stderr'] },
          seq: int,
          data: str,
        },
        ['event', 'node', 'data'],
      ),
      obj({ event: { enum: ['duplicate', 'wrong-request', 'overflow', 'ignored'] }, node: str }, ['event']),
      obj({ event: { const: 'summary' }, id: str, expected: strings, missing: strings, failed: strings }, [
        'event',
        'id',
        'expected',
        'missing',
        'failed',
      ]),
      obj({ event: { const: 'error' }, error: obj({ code: str, message: str }) }),
    ],
  },
  PendingRequest: obj(
    {
      id: str,
      name: str,
      zone: str,
      peerId: str,
      keyFingerprint: str,
      requestedAtMs: int,
      expiresAtMs: int,
      origin: str,
    },
    ['id', 'name', 'zone', 'peerId', 'keyFingerprint', 'requestedAtMs', 'expiresAtMs'],
  ),
  Decided: obj({ id: str, name: str }),
  Rejected: {
    oneOf: [ref('Decided'), obj({ rejected: int, requester: str }, ['rejected'])],
  },
  RejectRequest: {
    type: 'object',
    description: 'exactly one of all or requester',
    properties: { all: { const: true }, requester: str },
  },
  RevokeRequest: obj({ target: { type: 'string', description: 'member name or certificate serial' } }),
  Revoked: obj({ serials: strings, names: strings, listVersion: int }),
  JobSummary: obj(
    {
      job: str,
      action: str,
      args: strings,
      operator: str,
      filter: str,
      atMs: int,
      issuedHere: { type: 'boolean' },
      running: { type: 'boolean' },
      expected: int,
      ok: int,
      failed: int,
      missing: int,
      ownStatus: str,
    },
    ['job', 'action', 'atMs', 'expected', 'ok', 'failed', 'missing'],
  ),
  JobList: obj({ jobs: { type: 'array', items: ref('JobSummary') } }),
  JobResult: {
    description: "a job's results in the `mesh exec --json` shape, plus what is known about the job",
    ...obj(
      {
        job: str,
        action: str,
        expected: strings,
        replies: { type: 'array', items: ref('Reply') },
        missing: strings,
        running: { type: 'boolean' },
      },
      ['job', 'expected', 'replies', 'missing'],
    ),
  },
}

/** Per route id: the request body, the 200 answer, and a description. */
const OPERATIONS: Readonly<Record<string, { body?: string; answer: Schema; description?: string }>> = {
  status: { answer: ref('Status') },
  members: { answer: { type: 'array', items: ref('Member') } },
  zones: { answer: { type: 'array', items: ref('Zone') } },
  exec: {
    body: 'ExecRequest',
    answer: ref('ExecEvent'),
    description:
      'Answers application/x-ndjson: one ExecEvent per line as replies arrive, ending with a summary line (or an error line). Parameters the agent refuses before anything was published are a plain 400.',
  },
  jobsList: { answer: ref('JobList') },
  jobsShow: { answer: ref('JobResult') },
  jobsWait: { answer: ref('JobResult') },
  caList: { answer: { type: 'array', items: ref('PendingRequest') } },
  caSign: { answer: ref('Decided') },
  caReject: { answer: ref('Decided') },
  caRejectBulk: { body: 'RejectRequest', answer: ref('Rejected') },
  caRevoke: { body: 'RevokeRequest', answer: ref('Revoked') },
}

const errorAnswer = (description: string) => ({
  description,
  content: { 'application/json': { schema: ref('Error') } },
})

function operation(route: ApiRoute): Schema {
  const op = OPERATIONS[route.id]
  if (op === undefined) throw new Error(`assertion: route ${route.id} has no OpenAPI operation`)
  const parameters = [
    ...pathParams(route.path).map(name => ({ name, in: 'path', required: true, schema: str })),
    ...Object.entries(route.query ?? {}).map(([name, q]) => ({
      name,
      in: 'query',
      required: false,
      description: q.doc,
      schema: {
        type: q.type,
        ...(q.minimum !== undefined ? { minimum: q.minimum } : {}),
        ...(q.maximum !== undefined ? { maximum: q.maximum } : {}),
      },
    })),
  ]
  const contentType = route.stream === true ? 'application/x-ndjson' : 'application/json'
  return {
    operationId: route.id,
    summary: route.summary,
    ...(op.description !== undefined ? { description: op.description } : {}),
    'x-control-method': route.control,
    ...(parameters.length > 0 ? { parameters } : {}),
    ...(op.body !== undefined
      ? {
          requestBody: {
            required: route.id === 'exec',
            description: `JSON, at most ${API_BODY_BYTES_MAX} bytes`,
            content: { 'application/json': { schema: ref(op.body) } },
          },
        }
      : {}),
    responses: {
      '200': { description: 'done', content: { [contentType]: { schema: op.answer } } },
      '400': errorAnswer('invalid parameters (invalid-params, bad-request)'),
      '401': errorAnswer('missing or wrong bearer token'),
      '409': errorAnswer('the operation failed (failed), e.g. not the CA node, unknown id'),
      '429': errorAnswer('too many calls at once'),
      '501': errorAnswer('this agent has no such control method (unknown-method)'),
      '504': errorAnswer('the call ran past its time limit'),
    },
  }
}

/** The document. */
export function openApiDocument(version: string): Record<string, unknown> {
  const paths: Record<string, Record<string, Schema>> = {}
  for (const route of API_ROUTES) {
    const item = paths[route.path] ?? {}
    item[route.method.toLowerCase()] = operation(route)
    paths[route.path] = item
  }
  return {
    openapi: '3.1.0',
    info: {
      title: 'mesh agent API',
      version,
      description:
        "The agent's control methods over HTTP (docs/api.md). Every path needs 'Authorization: Bearer TOKEN'; 'mesh api token' prints the token.",
    },
    servers: [{ url: '/' }],
    security: [{ bearer: [] }],
    paths,
    components: {
      securitySchemes: { bearer: { type: 'http', scheme: 'bearer' } },
      schemas: API_SCHEMAS,
    },
  }
}
