// Audit write cost per request (issue 12): what the audit log (src/node/audit.ts, src/agent/audit-file.ts)
// adds to every request a node validates.
//
//   node bench/audit.mjs [RECORDS]        (default 20000; bundles the sources with esbuild first)
//
// 1. seal: CPU per record to turn an event into a signed record (fields, CBOR, ed25519, SHA-256), the
//    synchronous part every request pays on every node; measured with process.cpuUsage.
// 2. group commit: RECORDS events emitted in bursts of 100 per turn of the event loop, whenever the
//    queue is under half full, into a real audit directory (temp dir, fdatasync per append): the
//    records/s the log sustains, records per fsync, CPU per record.
// 3. one at a time: each record waits for its own fsync (an idle node): records/s = 1 / fsync latency.
// Everything runs in a temp directory removed at the end; no network, no child processes.
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { importSources } from './sources.mjs'

const entry = `
export { createAuditLog, auditEntryOf } from './src/node/audit.ts'
export { openAuditFile } from './src/agent/audit-file.ts'
export { sealAuditRecord, AUDIT_EMPTY_HEAD } from './src/audit/record.ts'
export { createEventBus } from './src/node/events.ts'
export { systemClock } from './src/node/clock.ts'
export { silentLogger } from './src/node/log.ts'
export { signingKeyFromSeed, signBytes } from './src/wire/ed25519.ts'
export { encodeCbor } from './src/wire/cbor.ts'
export { hash } from './src/wire/hash.ts'
`
const m = await importSources('audit', entry)

const records = Number(process.argv[2] ?? 20_000)
const key = m.signingKeyFromSeed(m.hash(new TextEncoder().encode('bench')))
const signer = {
  key,
  certificate: { certificate: { name: 'n1', zone: 'web', serial: 'ab'.repeat(16), peerId: 'P' } },
}
const request = i => ({
  idHex: i.toString(16).padStart(32, '0'),
  jobHex: i.toString(16).padStart(32, '0'),
  bytes: new Uint8Array(600),
  body: { action: 'uptime', args: [] },
  issuer: { certificate: { name: 'alice' } },
  approvers: [],
})
// The two records a request the node runs leaves (request + done), and the one of a request for others.
const events = i => [
  {
    type: 'request-accepted',
    request: request(i),
    verdict: 'execute',
    code: 'accept-execute',
    atMs: Date.now(),
  },
  {
    type: 'reply-sent',
    request: request(i),
    kind: 'done',
    bytes: new Uint8Array(),
    done: {
      status: 'ok',
      exitCode: 0,
      durationMs: 3,
      output: ' 10:00:00 up 1 day, load average: 0.1\n',
      ran: true,
    },
    atMs: Date.now(),
  },
]
const notForUs = i => ({
  type: 'request-accepted',
  request: request(i),
  verdict: 'not-for-us',
  code: 'accept-not-for-us',
  atMs: Date.now(),
})
const cpuUs = () => {
  const u = process.cpuUsage()
  return u.user + u.system
}

// 1. Sealing alone (after a warm-up, so the JIT has compiled the path).
for (const [label, make] of [
  ['warm-up', i => [notForUs(i)]],
  ['not-for-us request', i => [notForUs(i)]],
  ['executed request (request + done)', events],
]) {
  let head = m.AUDIT_EMPTY_HEAD
  let n = 0
  const t0 = cpuUs()
  for (let i = 0; i < records; i++) {
    for (const event of make(i)) {
      head = m.sealAuditRecord(key, head, m.auditEntryOf(event)).head
      n += 1
    }
  }
  const perRecord = (cpuUs() - t0) / n
  if (label === 'warm-up') continue
  console.log(`seal ${label}: ${perRecord.toFixed(1)} µs CPU per record (${n} records)`)
}

// Its parts, for one not-for-us record (wall time per call).
{
  const body = {
    v: 1,
    seq: 12_345,
    atMs: Date.now(),
    prev: new Uint8Array(32),
    type: 'request',
    verdict: 'not-for-us',
    id: 'ab'.repeat(16),
    action: 'uptime',
    operator: 'alice',
  }
  const bytes = m.encodeCbor(body)
  const time = f => {
    for (let i = 0; i < 2_000; i++) f()
    const t0 = performance.now()
    for (let i = 0; i < records; i++) f()
    return (((performance.now() - t0) * 1000) / records).toFixed(1)
  }
  console.log(
    `  of which: CBOR encode ${time(() => m.encodeCbor(body))} µs, ed25519 sign ${time(() => m.signBytes(key, bytes))} µs, ` +
      `SHA-256 ${time(() => m.hash(bytes))} µs (${bytes.byteLength}-byte body)`,
  )
}

// 2 and 3. Through the real files.
async function run(label, burst) {
  const dir = await mkdtemp(join(tmpdir(), 'mesh-bench-audit-'))
  try {
    const file = await m.openAuditFile({
      directory: join(dir, 'audit'),
      segmentBytesMax: 8 << 20,
      segmentsMax: 4,
    })
    const bus = m.createEventBus(m.silentLogger())
    const log = m.createAuditLog(
      {
        signer,
        store: { appendAudit: r => file.append(r), loadAuditHead: async () => file.head() },
        events: bus,
        clock: m.systemClock,
        log: m.silentLogger(),
      },
      {},
    )
    await log.start()
    await log.settled()
    const total = burst === 1 ? Math.min(records, 500) : records
    const wall0 = performance.now()
    const cpu0 = cpuUs()
    for (let i = 0; i < total; i += burst) {
      // Offered as fast as the log takes them: a burst whenever the queue is under half full.
      while (log.counters().queued > 2_048) await new Promise(r => setTimeout(r, 1))
      for (let j = i; j < Math.min(total, i + burst); j++) bus.emit(notForUs(j))
      if (burst === 1) await log.settled()
      else await new Promise(r => setImmediate(r))
    }
    await log.settled()
    const wallS = (performance.now() - wall0) / 1000
    const c = log.counters()
    const written = c.written - 1
    console.log(
      `${label}: ${Math.round(written / wallS)} records/s, ${(c.written / c.writes) | 0} records per fsync, ` +
        `${((cpuUs() - cpu0) / written).toFixed(1)} µs CPU per record (${written} records, ${c.dropped} dropped)`,
    )
    await log.stop(2_000)
    await file.close()
  } finally {
    await rm(dir, { recursive: true, force: true })
  }
}
await run('group commit (bursts of 100)', 100)
await run('one at a time (each waits for its fsync)', 1)
