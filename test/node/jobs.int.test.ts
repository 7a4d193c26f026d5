// Jobs without a database: every exec is a job; the requester keeps what it collected, every node
// that ran it keeps its own signed reply, and an operator node that never saw the job fetches its
// results from the mesh with a signed lookup — also after the requester is gone. Pieces are verified
// end to end: a node's answer can only carry replies signed by the nodes that made them.
import { afterAll, describe, expect, it } from 'vitest'
import { createCertificateVerifier } from '../../src/ca/certificate.js'
import { createReply } from '../../src/gossip/reply.js'
import { createManualClock } from '../../src/node/clock.js'
import { assembleJob, decodeLookupAnswer, encodeLookupAnswer } from '../../src/node/job-lookup.js'
import { createJobStore, createMemoryJobLog } from '../../src/node/jobs.js'
import { silentLogger } from '../../src/node/log.js'
import { startTestMesh, type TestMesh, waitFor } from './harness.js'

describe('jobs', () => {
  let mesh: TestMesh | undefined
  afterAll(async () => {
    await mesh?.stop()
  })

  it('records, lists and looks up a job from a node that never saw it, after the requester stopped', async () => {
    mesh = await startTestMesh(
      [
        { name: 'op', zone: 'core', operator: true },
        { name: 'w1', zone: 'web' },
        { name: 'w2', zone: 'web' },
        { name: 'w3', zone: 'web' },
        { name: 'op2', zone: 'core', operator: true },
      ],
      { transport: 'memory' },
    )
    await mesh.converge()
    const result = await mesh.node('op').exec({ action: 'ping', filter: { zone: 'web' }, timeoutMs: 10_000 })
    expect(result.replies.map(r => r.status)).toEqual(['ok', 'ok', 'ok'])
    const job = result.id

    // The requester lists it with its counts; each target lists it with its own outcome.
    const listed = mesh.node('op').jobs.list()
    expect(listed[0]).toMatchObject({ job, action: 'ping', issuedHere: true, expected: 3, ok: 3, missing: 0 })
    await waitFor(
      () =>
        mesh!
          .node('w1')
          .jobs.list()
          .some(j => j.job === job),
      5_000,
      'w1 to record the job',
    )
    expect(mesh.node('w1').jobs.list()[0]).toMatchObject({ job, ownStatus: 'ok', issuedHere: false })
    // op2 was not targeted: the request reached it (not-for-us) but it keeps no record of it.
    expect(
      mesh
        .node('op2')
        .jobs.list()
        .some(j => j.job === job),
    ).toBe(false)

    const local = await mesh.node('op').jobs.show(job)
    expect(local).toMatchObject({ source: 'local', expectedFrom: 'requester', missing: [] })
    expect(local?.replies.map(r => r.node)).toEqual(['w1', 'w2', 'w3'])

    // Lookups are not jobs of their own.
    const fetched = await mesh.node('op2').jobs.show(job)
    expect(fetched).toMatchObject({
      source: 'mesh',
      job,
      action: 'ping',
      operator: 'op-operator',
      refused: 0,
    })
    expect(fetched?.replies.map(r => [r.node, r.status])).toEqual([
      ['w1', 'ok'],
      ['w2', 'ok'],
      ['w3', 'ok'],
    ])
    expect(
      mesh
        .node('op2')
        .jobs.list()
        .some(j => j.action === 'job-lookup'),
    ).toBe(false)

    // The requester stops: its results still come from the nodes that ran the job.
    await mesh.node('op').stop()
    const after = await mesh.node('op2').jobs.show(job, { timeoutMs: 3_000 })
    expect(after?.replies.map(r => r.node)).toEqual(['w1', 'w2', 'w3'])
    expect(after?.missing).toEqual([])

    // Nobody knows a made-up job.
    expect(await mesh.node('op2').jobs.show('00'.repeat(16), { timeoutMs: 2_000 })).toBeUndefined()
  }, 60_000)
})

describe('job lookup answers', () => {
  it('drops forged and foreign pieces: a node can withhold results, not invent them', async () => {
    const clock = createManualClock(Date.now())
    const store = createJobStore({ clock, logger: silentLogger(), log: createMemoryJobLog() })
    await store.start()
    const { createTestCa } = await import('./harness.js')
    const ca = createTestCa()
    const { createRequest } = await import('../../src/gossip/request.js')
    const op = ca.identity('op', 'core', ['operator'])
    const request = createRequest({
      id: new Uint8Array(16).fill(1),
      issuer: op.certificate.bytes,
      key: op.key,
      issuedAtMs: clock.nowMs(),
      expiresAtMs: clock.nowMs() + 10_000,
      filter: { zone: 'web' },
      action: 'ping',
      replyTo: { peerId: 'x', addrs: [] },
    })
    const w1 = ca.identity('w1', 'web', ['agent'])
    const signer = { key: w1.key, certificate: w1.certificate }
    const done = (status: 'ok' | 'failed') =>
      createReply(signer, {
        kind: 'done',
        requestId: request.body.id,
        sentAtMs: clock.nowMs(),
        status,
        exitCode: status === 'ok' ? 0 : 1,
        output: 'pong\n',
        durationMs: 3,
      })
    const good = done('ok')
    const forged = good.slice()
    forged[forged.length - 1] = (forged[forged.length - 1] as number) ^ 1
    const verifier = createCertificateVerifier({ caPublicKey: ca.key.publicKey })
    const view = assembleJob(
      request.jobHex,
      { requests: [request.bytes], replies: [forged, good] },
      verifier,
      clock.nowMs(),
    )
    expect(view?.refused).toBe(1)
    expect(view?.replies.map(r => r.node)).toEqual(['w1'])
    // A request of another job is refused as a piece of this one.
    expect(
      assembleJob('ab'.repeat(16), { requests: [request.bytes], replies: [good] }, verifier, clock.nowMs()),
    ).toBeUndefined()

    // Encoding round trip through the output text.
    const text = encodeLookupAnswer(
      { summary: {} as never, requests: [request.bytes], replies: [good], expected: {} },
      'w1',
    )
    const decoded = decodeLookupAnswer(text)
    expect(decoded?.replies).toHaveLength(1)
    expect(decodeLookupAnswer('mesh-job/1 !!!not base64 cbor')).toBeUndefined()
    expect(decodeLookupAnswer('')).toBeUndefined()
  })
})
