// The job store over its file log: records survive a restart, a torn tail is cut off (the whole
// records before it are kept), a bit flip in the middle stops the load there (checksums), retention
// by count and age evicts the oldest, and compaction keeps the file within twice the live bytes.
import { mkdtemp, open, rm, stat, truncate } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'
import { createFileJobLog } from '../../src/agent/job-log.js'
import { createRequest } from '../../src/gossip/request.js'
import { createManualClock } from '../../src/node/clock.js'
import { createJobStore } from '../../src/node/jobs.js'
import { silentLogger } from '../../src/node/log.js'
import { createTestCa } from '../node/harness.js'

const ca = createTestCa()
const op = ca.identity('op', 'core', ['operator'])
let counter = 0
function request(nowMs: number, action = 'ping') {
  counter += 1
  const id = new Uint8Array(16)
  new DataView(id.buffer).setUint32(0, counter)
  return createRequest({
    id,
    issuer: op.certificate.bytes,
    key: op.key,
    issuedAtMs: nowMs,
    expiresAtMs: nowMs + 10_000,
    filter: { zone: 'web' },
    action,
    replyTo: { peerId: 'peer', addrs: [] },
  })
}
const result = (id: string, expected: string[]) => ({
  id,
  action: 'ping',
  expected,
  replies: [],
  missing: expected,
  acked: [],
  unexpected: [],
})

describe('job store on a file', () => {
  const dirs: string[] = []
  afterAll(async () => {
    for (const d of dirs) await rm(d, { recursive: true, force: true })
  })
  const fresh = async () => {
    const dir = await mkdtemp(join(tmpdir(), 'mesh-jobs-'))
    dirs.push(dir)
    return join(dir, 'jobs.log')
  }

  it('keeps jobs across a restart, with mode 0600', async () => {
    const path = await fresh()
    const clock = createManualClock(Date.now())
    const store = createJobStore({
      clock,
      logger: silentLogger(),
      log: createFileJobLog(path, silentLogger()),
    })
    await store.start()
    const r = request(clock.nowMs())
    store.issued(r, ['w1', 'w2'])
    store.collected(r, result(r.idHex, ['w1', 'w2']), [])
    await store.stop()
    expect((await stat(path)).mode & 0o777).toBe(0o600)

    const again = createJobStore({
      clock,
      logger: silentLogger(),
      log: createFileJobLog(path, silentLogger()),
    })
    await again.start()
    expect(again.list()).toEqual([
      expect.objectContaining({ job: r.idHex, issuedHere: true, expected: 2, missing: 2, running: false }),
    ])
    const detail = await again.get(r.idHex)
    expect(detail?.requests[0]).toEqual(r.bytes)
    await again.stop()
  })

  it('cuts a torn tail and stops at a corrupt record, keeping what came before', async () => {
    const path = await fresh()
    const clock = createManualClock(Date.now())
    const store = createJobStore({
      clock,
      logger: silentLogger(),
      log: createFileJobLog(path, silentLogger()),
    })
    await store.start()
    const ids: string[] = []
    for (let i = 0; i < 3; i++) {
      const r = request(clock.nowMs())
      ids.push(r.idHex)
      store.issued(r, ['w1'])
      await store.stop() // flushes one record per job, in order
    }
    const size = (await stat(path)).size
    await truncate(path, size - 5) // a crash mid-append
    const lines: string[] = []
    const logger = silentLogger()
    const warned = { ...logger, warn: (_: unknown, m: string) => void lines.push(m) } as typeof logger
    const torn = createJobStore({ clock, logger: silentLogger(), log: createFileJobLog(path, warned) })
    await torn.start()
    expect(torn.list().map(j => j.job)).toEqual([ids[1], ids[0]])
    expect(lines.join()).toMatch(/torn or corrupt/)
    await torn.stop()

    // A flipped byte inside the first record: its checksum fails, nothing after it is trusted.
    const handle = await open(path, 'r+')
    await handle.write(Buffer.from([0xff]), 0, 1, 20)
    await handle.close()
    const flipped = createJobStore({
      clock,
      logger: silentLogger(),
      log: createFileJobLog(path, silentLogger()),
    })
    await flipped.start()
    expect(flipped.list()).toEqual([])
    await flipped.stop()
  })

  it('evicts by count and age, compacts the file, and reports the size of 10,000 jobs', async () => {
    const path = await fresh()
    const clock = createManualClock(Date.now())
    const log = createFileJobLog(path, silentLogger())
    const store = createJobStore(
      { clock, logger: silentLogger(), log },
      { jobsMax: 10_000, ageMsMax: 3_600_000 },
    )
    await store.start()
    const signer = ca.identity('w1', 'web', ['agent'])
    const { createReply } = await import('../../src/gossip/reply.js')
    for (let i = 0; i < 12_000; i++) {
      const r = request(clock.nowMs())
      // As a target node records it: the request it ran and its own signed done.
      store.observe({
        type: 'request-accepted',
        request: r as never,
        verdict: 'execute',
        code: 'accept-execute' as never,
        upstream: undefined,
        atMs: clock.nowMs(),
      })
      const bytes = createReply(signer, {
        kind: 'done',
        requestId: r.body.id,
        sentAtMs: clock.nowMs(),
        status: 'ok',
        exitCode: 0,
        output: ' 12:00:00 up 3 days,  1 user,  load average: 0.01, 0.02, 0.00\n',
        durationMs: 4,
      })
      store.observe({
        type: 'reply-sent',
        request: r as never,
        kind: 'done',
        bytes,
        done: { status: 'ok', exitCode: 0, durationMs: 4, output: '', ran: true },
        atMs: clock.nowMs(),
      })
      if (i % 500 === 0) await store.stop()
    }
    await store.stop()
    const counters = store.counters()
    expect(counters.jobs).toBe(10_000)
    expect(counters.evicted).toBe(2_000)
    expect(counters.compactions).toBeGreaterThanOrEqual(0)
    const fileBytes = (await stat(path)).size
    expect(fileBytes).toBeLessThanOrEqual(2 * counters.liveBytes + 1024 * 1024 + 64 * 1024)
    // The figure for the closing note: bytes per job as a target node stores them.
    process.stdout.write(
      `job store: 10,000 jobs, ${counters.liveBytes} live bytes, file ${fileBytes} bytes\n`,
    )

    // An hour later every one of them is past its age.
    clock.advance(3_600_001)
    const r = request(clock.nowMs())
    store.issued(r, [])
    expect(store.counters().jobs).toBe(1)
    await store.stop()
  }, 120_000)
})
