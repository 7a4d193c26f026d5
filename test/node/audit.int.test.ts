// Proves on a three-node in-process mesh (@libp2p/memory) that every node keeps its own signed audit
// chain in real files (src/agent/audit-file.ts behind NodeStore): an exec leaves a `request` and a
// `done` record on the node that ran it (operator, args, exit, output digest) and a compact `request`
// on the nodes it was not for; admissions, the CA's revoke decision and the adopted revocation list
// are on record; an operator fetches another node's tail with the `audit-tail` action through a
// signed request, which is itself on that node's record; and every log verifies whole.
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { type AuditFile, openAuditFile } from '../../src/agent/audit-file.js'
import { AUDIT_TAIL_ACTION } from '../../src/gossip/authorize.js'
import type { NodeStore } from '../../src/node/node-types.js'
import { createTestCa, type NodeSpec, startTestMesh, type TestMesh, waitFor } from './harness.js'

describe('audit log on every node', () => {
  const ca = createTestCa()
  const files = new Map<string, AuditFile>()
  const keys = new Map<string, Uint8Array>()
  let mesh: TestMesh
  let root: string

  const spec = async (name: string, zone: string, extra: Partial<NodeSpec> = {}): Promise<NodeSpec> => {
    const identity = ca.identity(name, zone, extra.ca === true ? ['ca', 'agent'] : ['agent'])
    const file = await openAuditFile({
      directory: join(root, name),
      segmentBytesMax: 1024 * 1024,
      segmentsMax: 4,
      publicKey: identity.key.publicKey,
    })
    files.set(name, file)
    keys.set(name, identity.key.publicKey)
    const store: NodeStore = {
      appendAudit: records => file.append(records),
      loadAuditHead: async () => file.head(),
      readAuditTail: (sinceMs, bytesMax) => file.tail(sinceMs, bytesMax),
    }
    return {
      name,
      zone,
      identity,
      init: { store },
      config: { suspectAfterMs: 3_000, deadAfterMs: 6_000 },
      ...extra,
    }
  }
  const records = async (name: string) => (await files.get(name)!.view(0)).records
  /** Polls an async check every 25 ms, at most 5 s. */
  const eventually = async (check: () => Promise<boolean>, what: string) => {
    const deadline = Date.now() + 5_000
    while (!(await check())) {
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
      await new Promise(r => setTimeout(r, 25))
    }
  }

  beforeAll(async () => {
    root = await mkdtemp(join(tmpdir(), 'mesh-audit-int-'))
    mesh = await startTestMesh(
      [
        await spec('c1', 'core', { ca: true, operator: true }),
        await spec('w1', 'web'),
        await spec('w2', 'web'),
      ],
      { transport: 'memory', ca },
    )
    await mesh.converge()
  })
  afterAll(async () => {
    await mesh?.stop()
    for (const file of files.values()) await file.close()
    await rm(root, { recursive: true, force: true })
  })

  it('an exec is on record where it ran (request and done) and compactly where it was not for', async () => {
    const result = await mesh
      .node('c1')
      .exec({ action: 'uptime', args: [], filter: { node: 'w1' }, timeoutMs: 10_000 })
    expect(result.replies.map(r => [r.node, r.status])).toEqual([['w1', 'ok']])
    const id = result.id
    await eventually(
      async () => (await records('w1')).some(r => r.type === 'done' && r.id === id),
      'the done',
    )
    const w1 = await records('w1')
    expect(w1.find(r => r.type === 'request' && r.id === id)).toMatchObject({
      verdict: 'execute',
      action: 'uptime',
      operator: 'c1-operator',
      args: [],
      code: 'accept-execute',
    })
    expect(w1.find(r => r.type === 'done' && r.id === id)).toMatchObject({
      ran: true,
      status: 'ok',
      exitCode: 0,
      operator: 'c1-operator',
      approvers: [],
    })
    expect(w1.find(r => r.type === 'done' && r.id === id)?.outputDigest).toMatch(/^[0-9a-f]{64}$/)
    const w2 = await records('w2')
    const seen = w2.find(r => r.type === 'request' && r.id === id)
    expect(seen).toMatchObject({ verdict: 'not-for-us', action: 'uptime', operator: 'c1-operator' })
    expect(seen).not.toHaveProperty('args')
    // The requester validated its own request too.
    expect((await records('c1')).some(r => r.type === 'request' && r.id === id)).toBe(true)
    expect(w1[0]).toMatchObject({ type: 'start', seq: 1, name: 'w1' })
    expect(w1.some(r => r.type === 'admitted')).toBe(true)
  })

  it('an operator reads another node’s tail with audit-tail, and that request is on its record', async () => {
    const result = await mesh
      .node('c1')
      .exec({ action: AUDIT_TAIL_ACTION, args: ['--since', '1h'], filter: { node: 'w2' }, timeoutMs: 10_000 })
    expect(result.replies.map(r => [r.node, r.status])).toEqual([['w2', 'ok']])
    const output = result.replies[0]?.output ?? ''
    expect(output).toMatch(/ #1 start .*name=w2/)
    expect(output).toMatch(/ request action=uptime .*operator=c1-operator verdict=not-for-us/)
    // The audit-tail request itself: validated (execute) before it ran, so it is in its own output.
    expect(output).toMatch(/ request action=audit-tail args=\["--since","1h"\] .*verdict=execute/)
  })

  it('the CA’s decisions (issue, revoke) and the adopted list are on record', async () => {
    const c1 = mesh.node('c1')
    const ghost = ca.identity('ghost', 'web', ['agent'])
    const issued = await c1.issuer!.run({
      type: 'issue',
      requestId: 'i1',
      publicKey: ghost.key.publicKey,
      name: 'ghost',
      zone: 'web',
      roles: ['agent'],
    })
    const reply = issued.find(e => e.type === 'command-reply')
    if (reply?.type !== 'command-reply' || !reply.result.ok || reply.result.command !== 'issue')
      throw new Error('issue failed')
    const serial = reply.result.serial
    await c1.issuer!.run({ type: 'revoke', requestId: 'r1', target: 'ghost' })
    await waitFor(() => mesh.node('w1').isRevoked(serial), 10_000, 'w1 to adopt the list')
    await eventually(
      async () => (await records('w1')).some(r => r.type === 'revocation' && r.version === 1),
      'the record on w1',
    )
    const onCa = await records('c1')
    expect(onCa.find(r => r.type === 'issuer' && r.input === 'issue')).toMatchObject({
      outcome: 'issued',
      serial,
    })
    expect(onCa.find(r => r.type === 'issuer' && r.input === 'revoke')).toMatchObject({
      target: 'ghost',
      outcome: 'revoked',
      names: ['ghost'],
      serials: [serial],
    })
    // The empty list (version 0) came with c1's hello; version 1 adds ghost.
    expect((await records('w1')).filter(r => r.type === 'revocation')).toMatchObject([
      { version: 0, added: [] },
      { version: 1, entries: 1, added: [{ name: 'ghost', serial }] },
    ])
  })

  it('every node’s log verifies whole, from seq 1', async () => {
    for (const [name, file] of files) {
      await waitFor(() => (mesh.node(name).counters().audit?.queued ?? 0) === 0, 5_000, `${name}'s queue`)
      const report = await file.verify(keys.get(name)!)
      expect(report, name).toMatchObject({ status: 'ok', firstSeq: 1, rotatedOut: false })
      expect(report.records, name).toBe(mesh.node(name).counters().audit?.written)
    }
  })
})
