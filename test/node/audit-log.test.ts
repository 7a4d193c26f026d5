// Proves the library's audit log (src/node/audit.ts) turns node events into a whole, signed chain: a
// fake store records every append; events of each kind are emitted on a real event bus and the
// appended records are decoded and verified with the real verifier. Then the writing discipline:
// records that arrive while a write is in flight go out together in the next append (group commit),
// a full queue drops records before they are sealed and puts a `dropped` record on the log (the chain
// has no gap), a flood of refusals is recorded as counts past a bound, a failed append is retried with
// the same bytes, a restart continues the chain, and the audit-tail action keeps the newest lines
// within the output limit (and the default policy grants it to operators only).
import { describe, expect, it } from 'vitest'
import {
  AUDIT_EMPTY_HEAD,
  type AuditStoreHead,
  frameAuditRecords,
  openAuditRecord,
} from '../../src/audit/record.js'
import { verifyAuditLog } from '../../src/audit/verify.js'
import type { Certificate, Role, SignedCertificate } from '../../src/ca/types.js'
import { AUDIT_TAIL_ACTION, authorize, DEFAULT_POLICY } from '../../src/gossip/authorize.js'
import type { VerifiedRequest } from '../../src/gossip/validate.js'
import {
  AUDIT_ARGS_BYTES_MAX,
  auditEntryOf,
  auditTailAction,
  createAuditLog,
  parseAuditTailArgs,
} from '../../src/node/audit.js'
import { createManualClock } from '../../src/node/clock.js'
import type { Signer } from '../../src/node/credentials.js'
import { createEventBus, type NodeEvent } from '../../src/node/events.js'
import { silentLogger } from '../../src/node/log.js'
import { signingKeyFromSeed } from '../../src/wire/ed25519.js'
import { hash, toHex } from '../../src/wire/hash.js'

const key = signingKeyFromSeed(hash(new TextEncoder().encode('audit-log-test')))
const signer = {
  key,
  certificate: { certificate: { name: 'n1', zone: 'web', serial: 'ab'.repeat(16), peerId: '12D3KooN1' } },
} as unknown as Signer
const AT = 1_700_000_000_000

function request(id: number, args: string[] = ['-a']): VerifiedRequest {
  const idHex = id.toString(16).padStart(32, '0')
  return {
    idHex,
    jobHex: idHex,
    bytes: new Uint8Array([1, 2, id]),
    body: { action: 'uptime', args },
    issuer: { certificate: { name: 'alice' } },
    approvers: [],
  } as unknown as VerifiedRequest
}

/** A store that keeps every append; `hold()` makes appends wait until `release()`, `failNext` rejects one. */
function fakeStore(head: AuditStoreHead = { ...AUDIT_EMPTY_HEAD, tornBytes: 0 }) {
  const appends: Uint8Array[][] = []
  const attempts: Uint8Array[][] = []
  let gate: Promise<void> | undefined
  let open: (() => void) | undefined
  const store = {
    failNext: 0,
    loadAuditHead: async () => head,
    async appendAudit(records: readonly Uint8Array[]) {
      if (gate !== undefined) await gate
      attempts.push([...records])
      if (store.failNext > 0) {
        store.failNext -= 1
        throw new Error('disk full')
      }
      appends.push([...records])
    },
  }
  return {
    store,
    appends,
    attempts,
    records: () => appends.flat(),
    hold() {
      gate = new Promise(resolve => {
        open = resolve
      })
    },
    release() {
      gate = undefined
      open?.()
    },
  }
}

function setup(options: { queueRecordsMax?: number; head?: AuditStoreHead } = {}) {
  const clock = createManualClock(AT)
  const events = createEventBus(silentLogger())
  const fake = fakeStore(options.head)
  const log = createAuditLog(
    { signer, store: fake.store, events, clock, log: silentLogger() },
    { queueRecordsMax: options.queueRecordsMax ?? 4096, retryMs: 1_000 },
  )
  return { clock, events, fake, log }
}

const bodies = (records: Uint8Array[]) =>
  records.map(r => {
    const opened = openAuditRecord(r, key.publicKey)
    if (!opened.ok || !opened.signed) throw new Error('record does not open')
    return opened.body.body
  })
const verified = (records: Uint8Array[]) =>
  verifyAuditLog([{ name: 's', bytes: frameAuditRecords(records) }], key.publicKey, { fromGenesis: true })

const accepted = (id: number, verdict: 'execute' | 'not-for-us' | 'denied'): NodeEvent => ({
  type: 'request-accepted',
  request: request(id),
  verdict,
  code:
    verdict === 'execute' ? 'accept-execute' : verdict === 'denied' ? 'accept-denied' : 'accept-not-for-us',
  upstream: 'peerX',
  atMs: AT + id,
})

describe('audit log: events to records', () => {
  it('logs each kind of event, leaves out acks and finished execs, and the chain verifies', async () => {
    const { events, fake, log } = setup()
    await log.start()
    events.emit(accepted(1, 'not-for-us'))
    events.emit(accepted(2, 'execute'))
    events.emit({
      type: 'request-refused',
      code: 'bad-signature',
      detail: 'x'.repeat(1000),
      upstream: 'p',
      atMs: AT,
    })
    events.emit({ type: 'reply-sent', request: request(2), kind: 'ack', bytes: new Uint8Array(), atMs: AT })
    events.emit({
      type: 'reply-sent',
      request: request(2),
      kind: 'done',
      bytes: new Uint8Array(),
      done: { status: 'ok', exitCode: 0, durationMs: 12.7, output: 'load 0.1\n', ran: true },
      atMs: AT,
    })
    events.emit({
      type: 'reply-sent',
      request: request(3),
      kind: 'done',
      bytes: new Uint8Array(),
      done: { status: 'denied', exitCode: null, durationMs: 0, output: '', reason: 'no rule', ran: false },
      atMs: AT,
    })
    const certificate = {
      certificate: { name: 'n2', zone: 'db', serial: 'cd'.repeat(16), roles: ['agent'], peerId: 'P2' },
    } as unknown as SignedCertificate
    events.emit({ type: 'peer-admitted', peer: 'P2', certificate, atMs: AT })
    events.emit({ type: 'peer-refused', peer: 'P3', addr: '/ip4/1.2.3.4/tcp/1', reason: 'revoked', atMs: AT })
    const entry = (serial: string) => ({
      serial,
      name: `m-${serial}`,
      peerId: `p-${serial}`,
      revokedAtMs: 1,
      notAfterMs: 2,
    })
    events.emit({
      type: 'revocation-adopted',
      list: { list: { version: 2, entries: [entry('s1'), entry('s2')] } } as never,
      previous: { list: { version: 1, entries: [entry('s1')] } } as never,
      origin: 'gossip',
      atMs: AT,
    })
    events.emit({
      type: 'issuer-decision',
      input: {
        type: 'create-ticket',
        requestId: 't1',
        name: 'n9',
        zone: 'web',
        roles: ['agent'],
        ttlMs: 60_000,
        bootstrap: [],
      },
      answers: [
        {
          type: 'command-reply',
          requestId: 't1',
          result: { ok: true, command: 'create-ticket', ticket: 'SECRET-TICKET', expiresAtMs: AT + 60_000 },
        },
      ],
      saved: true,
      atMs: AT,
    })
    events.emit({
      type: 'exec-finished',
      id: 'x',
      action: 'uptime',
      expected: 1,
      ok: 1,
      failed: 0,
      missing: 0,
      durationMs: 1,
      atMs: AT,
    })
    await log.settled()
    const records = fake.records()
    const b = bodies(records)
    expect(b.map(r => r.type)).toEqual([
      'start',
      'request',
      'request',
      'refused',
      'done',
      'done',
      'admitted',
      'peer-refused',
      'revocation',
      'issuer',
    ])
    expect(b[0]).toMatchObject({ seq: 1, name: 'n1', zone: 'web', peer: '12D3KooN1' })
    // Not for us: compact (every node sees every request).
    expect(Object.keys(b[1]!).sort()).toEqual([
      'action',
      'atMs',
      'id',
      'operator',
      'prev',
      'seq',
      'type',
      'v',
      'verdict',
    ])
    expect(b[2]).toMatchObject({
      verdict: 'execute',
      action: 'uptime',
      operator: 'alice',
      args: ['-a'],
      code: 'accept-execute',
    })
    expect(toHex(b[2]!.request as Uint8Array)).toBe(toHex(hash(new Uint8Array([1, 2, 2]))))
    expect((b[3]!.detail as string).length).toBeLessThanOrEqual(257)
    expect(b[4]).toMatchObject({
      ran: true,
      status: 'ok',
      exitCode: 0,
      durationMs: 13,
      operator: 'alice',
      approvers: [],
      outputBytes: 9,
    })
    expect(toHex(b[4]!.outputDigest as Uint8Array)).toBe(toHex(hash(new TextEncoder().encode('load 0.1\n'))))
    expect(b[5]).toMatchObject({ ran: false, status: 'denied', reason: 'no rule' })
    expect(b[5]).not.toHaveProperty('action')
    expect(b[6]).toMatchObject({ peer: 'P2', name: 'n2', zone: 'db', roles: ['agent'] })
    expect(b[7]).toMatchObject({ peer: 'P3', reason: 'revoked' })
    expect(b[8]).toMatchObject({
      origin: 'gossip',
      version: 2,
      entries: 2,
      added: [{ serial: 's2', name: 'm-s2', peer: 'p-s2' }],
    })
    expect(b[9]).toMatchObject({
      input: 'create-ticket',
      name: 'n9',
      outcome: 'ticket-created',
      ttlMs: 60_000,
    })
    expect(Buffer.from(records[9]!).toString('latin1')).not.toContain('SECRET-TICKET')
    expect(verified(records)).toMatchObject({ status: 'ok', records: 10 })
    expect(log.counters()).toMatchObject({ state: 'running', written: 10, dropped: 0, seq: 10 })
  })

  it('cuts long arguments and keeps a digest of all of them', () => {
    const args = Array.from({ length: 10 }, (_, i) => `${i}`.repeat(300))
    const entry = auditEntryOf({ ...accepted(1, 'execute'), request: request(1, args) } as NodeEvent)
    expect(entry?.fields.argsTruncated).toBe(true)
    const kept = entry?.fields.args as string[]
    expect(kept.join('').length).toBeLessThanOrEqual(AUDIT_ARGS_BYTES_MAX)
    expect(kept).toEqual(args.slice(0, kept.length))
    expect(entry?.fields.argsDigest).toBeInstanceOf(Uint8Array)
  })

  it('records a decision whose state could not be saved as not-saved', () => {
    const entry = auditEntryOf({
      type: 'issuer-decision',
      input: { type: 'revoke', requestId: 'r', target: 'n5' },
      answers: [],
      saved: false,
      atMs: AT,
    })
    expect(entry?.fields).toMatchObject({ input: 'revoke', target: 'n5', outcome: 'not-saved' })
  })
})

describe('audit log: writing', () => {
  it('group commit: what arrives while a write is in flight goes out in one next append', async () => {
    const { events, fake, log } = setup()
    await log.start()
    await log.settled()
    fake.hold()
    events.emit(accepted(1, 'not-for-us'))
    await Promise.resolve()
    await Promise.resolve()
    for (let i = 2; i <= 101; i++) events.emit(accepted(i, 'not-for-us'))
    fake.release()
    await log.settled()
    expect(fake.appends.map(a => a.length)).toEqual([1, 1, 100])
    expect(log.counters()).toMatchObject({ written: 102, writes: 3 })
    expect(verified(fake.records()).status).toBe('ok')
  })

  it('a full queue drops records before sealing them and says so in a dropped record: no gap', async () => {
    const { events, fake, log } = setup({ queueRecordsMax: 10 })
    await log.start()
    await log.settled()
    fake.hold()
    events.emit(accepted(0, 'not-for-us'))
    await Promise.resolve()
    await Promise.resolve()
    for (let i = 1; i <= 50; i++) events.emit(accepted(i, 'not-for-us'))
    expect(log.counters()).toMatchObject({ dropped: 40, queued: 11 })
    fake.release()
    await log.settled()
    events.emit(accepted(99, 'not-for-us'))
    await log.settled()
    const b = bodies(fake.records())
    const dropped = b.find(r => r.type === 'dropped')
    expect(dropped).toMatchObject({ count: 40, firstAtMs: AT + 11, lastAtMs: AT + 50 })
    expect(b[b.length - 1]).toMatchObject({ id: (99).toString(16).padStart(32, '0') })
    expect(verified(fake.records())).toMatchObject({ status: 'ok' })
  })

  it('a flood of refusals: the first 20 per code and window one by one, the rest as one suppressed count', async () => {
    const { clock, events, fake, log } = setup()
    await log.start()
    const refuse = (code: 'bad-signature' | 'expired') =>
      events.emit({ type: 'request-refused', code, detail: 'forged', upstream: 'evil', atMs: clock.nowMs() })
    for (let i = 0; i < 500; i++) refuse('bad-signature')
    refuse('expired')
    await log.settled()
    const count = () => bodies(fake.records()).filter(r => r.type === 'refused')
    expect(count()).toHaveLength(21)
    clock.advance(10_000)
    await log.settled()
    expect(count().at(-1)).toMatchObject({ code: 'bad-signature', suppressed: 480, windowMs: 10_000 })
    for (let i = 0; i < 25; i++) refuse('bad-signature') // a new window
    await log.stop(1_000) // the open window's count is written before stop
    const last = count()
    expect(last).toHaveLength(21 + 1 + 20 + 1)
    expect(last.at(-1)).toMatchObject({ code: 'bad-signature', suppressed: 5 })
    expect(verified(fake.records()).status).toBe('ok')
  })

  it('retries a failed append with the same records after retryMs', async () => {
    const { clock, events, fake, log } = setup()
    fake.store.failNext = 1
    await log.start()
    events.emit(accepted(1, 'not-for-us'))
    await new Promise(resolve => setImmediate(resolve))
    expect(fake.appends).toHaveLength(0)
    expect(log.counters().writeFailures).toBe(1)
    clock.advance(1_000)
    await log.settled()
    // The failed batch (the start record) again, byte for byte, then the event.
    expect(fake.attempts.map(a => a.length)).toEqual([1, 1, 1])
    expect(Buffer.compare(fake.attempts[0]![0]!, fake.attempts[1]![0]!)).toBe(0)
    expect(fake.appends).toHaveLength(2)
    expect(verified(fake.records())).toMatchObject({ status: 'ok', records: 2 })
  })

  it('a restart continues the chain from the stored head', async () => {
    const first = setup()
    await first.log.start()
    first.events.emit(accepted(1, 'not-for-us'))
    await first.log.stop(1_000)
    const before = first.fake.records()
    const last = before[before.length - 1]!
    const second = setup({ head: { seq: before.length, hash: hash(last), tornBytes: 17 } })
    await second.log.start()
    second.events.emit(accepted(2, 'not-for-us'))
    await second.log.settled()
    const after = second.fake.records()
    expect(bodies(after)[0]).toMatchObject({ type: 'start', seq: 3, tornBytes: 17 })
    expect(verified([...before, ...after])).toMatchObject({ status: 'ok', records: 4 })
  })

  it('stop waits for the queue, then counts what is left as dropped; later events are ignored', async () => {
    const { clock, events, fake, log } = setup()
    await log.start()
    await log.settled()
    fake.hold()
    events.emit(accepted(1, 'not-for-us'))
    await Promise.resolve()
    events.emit(accepted(2, 'not-for-us'))
    const stopping = log.stop(500)
    await new Promise(resolve => setImmediate(resolve))
    clock.advance(500)
    await stopping
    expect(log.counters()).toMatchObject({ state: 'stopped', dropped: 2 })
    events.emit(accepted(3, 'not-for-us'))
    expect(log.counters().queued).toBe(0)
    fake.release()
  })

  it('keeps no records when the head cannot be loaded', async () => {
    const clock = createManualClock(AT)
    const events = createEventBus(silentLogger())
    let appended = 0
    const log = createAuditLog({
      signer,
      store: {
        loadAuditHead: async () => {
          throw new Error('EACCES')
        },
        appendAudit: async () => {
          appended += 1
        },
      },
      events,
      clock,
      log: silentLogger(),
    })
    events.emit(accepted(1, 'not-for-us'))
    await log.start()
    events.emit(accepted(2, 'not-for-us'))
    await log.settled()
    expect(appended).toBe(0)
    expect(log.counters()).toMatchObject({ state: 'failed', dropped: 1 })
  })
})

describe('audit-tail action', () => {
  it('the default policy gives it to holders of the operator role only', () => {
    const cert = (roles: Role[]) => ({ name: 'alice', roles }) as unknown as Certificate
    const ask = (roles: Role[]) =>
      authorize(DEFAULT_POLICY, { action: AUDIT_TAIL_ACTION, operator: cert(roles), nodeZone: 'web' }).allow
    expect(ask(['operator'])).toBe(true)
    expect(ask(['agent'])).toBe(false)
    expect(ask(['agent', 'ca'])).toBe(false)
  })

  it('parses --since and refuses anything else', () => {
    expect(parseAuditTailArgs([])).toEqual({})
    expect(parseAuditTailArgs(['--since', '5m'])).toEqual({ sinceMs: 300_000 })
    expect(parseAuditTailArgs(['--since=10s'])).toEqual({ sinceMs: 10_000 })
    expect(parseAuditTailArgs(['--since'])).toHaveProperty('problem')
    expect(parseAuditTailArgs(['--since', 'soon'])).toHaveProperty('problem')
    expect(parseAuditTailArgs(['rm', '-rf'])).toHaveProperty('problem')
  })

  it('prints the newest records that fit the output limit, oldest first, and says how many were left out', async () => {
    const { events, fake, log, clock } = setup()
    await log.start()
    for (let i = 1; i <= 200; i++) events.emit(accepted(i, 'not-for-us'))
    await log.settled()
    const asked: number[] = []
    const handler = auditTailAction(
      async (sinceMs, bytesMax) => {
        asked.push(sinceMs, bytesMax)
        return fake.records()
      },
      4_096,
      clock,
    )
    const signal = new AbortController().signal
    const result = await handler({
      name: 'audit-tail',
      args: ['--since', '1h'],
      signal,
      request: {},
      write: () => {},
    })
    expect(asked).toEqual([AT - 3_600_000, 8_192])
    const output = result.output as string
    expect(Buffer.byteLength(output)).toBeLessThanOrEqual(4_096)
    const lines = output.trimEnd().split('\n')
    expect(lines[0]).toMatch(/^\(\d+ older records left out/)
    expect(lines[lines.length - 1]).toMatch(/ #201 request /)
    expect(lines[1]).toMatch(
      /^\d{4}-\d\d-\d\dT.* #\d+ request action=uptime id=\w+ operator=alice verdict=not-for-us$/,
    )
    expect(
      await handler({ name: 'audit-tail', args: ['x'], signal, request: {}, write: () => {} }),
    ).toMatchObject({
      exitCode: 2,
    })
  })
})
