// Proves `mesh audit` against a stub agent: the real control server and control handlers over a
// stub node, with a real audit directory (src/agent/audit-file.ts) in a temp home, so no libp2p. It
// prints one line per record (only the recent ones with --since), `--json` the records and counters;
// `--verify` prints "ok", then names the first broken record and exits 1 once a byte is edited;
// `--verify --dir` checks a copy without an agent and reports a torn last record as such (exit 0);
// misused flags are usage errors.
import { copyFile, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { type AuditFile, auditSegmentName, openAuditFile } from '../../src/agent/audit-file.js'
import { controlHandlers } from '../../src/agent/control-methods.js'
import {
  AUDIT_EMPTY_HEAD,
  type AuditChainHead,
  frameAuditRecords,
  sealAuditRecord,
} from '../../src/audit/record.js'
import { createCli } from '../../src/cli.js'
import { type ControlServer, controlSocketPath, createControlServer } from '../../src/control/index.js'
import type { MeshNode } from '../../src/node/node-types.js'
import { createTestCa } from '../node/harness.js'

let home: string
let server: ControlServer | undefined
let audit: AuditFile | undefined
const ca = createTestCa('audit-cli')
const identity = ca.identity('n1', 'web', ['agent'])
const key = identity.key
const auditDir = () => join(home, 'audit')

beforeEach(async () => {
  home = await mkdtemp(join(tmpdir(), 'mesh-audit-cli-'))
  await writeFile(join(home, 'node.cert'), identity.certificate.bytes)
})
afterEach(async () => {
  await server?.stop()
  server = undefined
  await audit?.close()
  audit = undefined
  await rm(home, { recursive: true, force: true })
})

/** Appends `n` records after `head`, the first `old` of them two hours old. */
async function fill(
  n: number,
  old: number,
  head: AuditChainHead = AUDIT_EMPTY_HEAD,
): Promise<AuditChainHead> {
  const records: Uint8Array[] = []
  let at = head
  for (let i = 0; i < n; i++) {
    const atMs = Date.now() - (i < old ? 7_200_000 : 1_000)
    const sealed = sealAuditRecord(key, at, {
      type: 'request',
      atMs,
      fields: { verdict: 'execute', id: `r${at.seq + 1}`, action: 'uptime', operator: 'alice', args: ['-p'] },
    })
    records.push(sealed.bytes)
    at = sealed.head
  }
  await audit!.append(records)
  return at
}

async function agent(): Promise<void> {
  audit = await openAuditFile({ directory: auditDir(), segmentBytesMax: 1 << 20, segmentsMax: 4 })
  const node = {
    certificate: () => identity.certificate,
    counters: () => ({ audit: { state: 'running', written: 5, dropped: 0, writeFailures: 0 } }),
  } as unknown as MeshNode
  server = createControlServer({
    path: controlSocketPath(home),
    handlers: controlHandlers(node, new Uint8Array(32), { audit: () => audit }),
  })
  await server.start()
}

async function run(argv: string[]) {
  const out: string[] = []
  const err: string[] = []
  const cli = createCli({
    stdout: { write: (s: string) => out.push(s) },
    stderr: { write: (s: string) => err.push(s) },
    env: { NO_COLOR: '1' },
    userHome: '/nonexistent-home',
  })
  const code = await cli.run(['--home', home, ...argv])
  return { code, out: out.join(''), err: err.join('') }
}

describe('mesh audit', () => {
  it('prints one line per record; --since keeps the recent ones; --json gives records and counters', async () => {
    await agent()
    await fill(5, 2)
    const all = await run(['audit'])
    expect([all.code, all.err]).toEqual([0, ''])
    const lines = all.out.trimEnd().split('\n')
    expect(lines).toHaveLength(5)
    expect(lines[0]).toMatch(
      /^\S+Z #1 request action=uptime args=\["-p"\] id=r1 operator=alice verdict=execute$/,
    )
    const recent = await run(['audit', '--since', '1h'])
    expect(
      recent.out
        .trimEnd()
        .split('\n')
        .map(l => l.split(' ')[1]),
    ).toEqual(['#3', '#4', '#5'])
    const json = await run(['--json', 'audit'])
    const parsed = JSON.parse(json.out)
    expect(parsed.records).toHaveLength(5)
    expect(parsed.records[4]).toMatchObject({ seq: 5, type: 'request', operator: 'alice' })
    expect(parsed).toMatchObject({ truncated: false, counters: { written: 5 }, files: { segments: 1 } })
  })

  it('--verify: ok, then the first broken record (exit 1) once a byte is edited', async () => {
    await agent()
    await fill(4, 0)
    const ok = await run(['audit', '--verify'])
    expect([ok.code, ok.out]).toEqual([0, 'audit log ok: 4 records, seq 1..4\n'])
    const path = join(auditDir(), auditSegmentName(1))
    const bytes = await readFile(path)
    const frameBytes = bytes.byteLength / 4 // four frames of one size (ids r1..r4)
    bytes[2 * frameBytes + 40]! ^= 0x01 // inside record 3
    await writeFile(path, bytes)
    const broken = await run(['audit', '--verify'])
    expect(broken.code).toBe(1)
    expect(broken.out).toMatch(
      /^audit log broken at record 2 \(seq 3, expected 3\) in audit-0000000001\.log offset \d+: bad-signature/,
    )
    const json = await run(['--json', 'audit', '--verify'])
    expect(JSON.parse(json.out)).toMatchObject({
      status: 'broken',
      broken: { index: 2, reason: 'bad-signature' },
    })
  })

  it('--verify --dir: checks a copy without an agent; a torn last record is reported as such', async () => {
    audit = await openAuditFile({ directory: auditDir(), segmentBytesMax: 1 << 20, segmentsMax: 4 })
    const head = await fill(3, 0)
    const copy = join(home, 'copy')
    await mkdir(copy)
    const extra = sealAuditRecord(key, head, { type: 'start', atMs: Date.now(), fields: {} }).bytes
    const framed = frameAuditRecords([extra])
    const original = await readFile(join(auditDir(), auditSegmentName(1)))
    await writeFile(join(copy, auditSegmentName(1)), Buffer.concat([original, framed.subarray(0, 20)]))
    const torn = await run(['audit', '--verify', '--dir', copy])
    expect(torn.code).toBe(0)
    expect(torn.out).toMatch(
      /^audit log ok up to a torn last record \(a write cut short by a crash, not tampering\): 3 records/,
    )
    // Someone else's key: every record fails.
    const other = ca.identity('n2', 'web', ['agent'])
    await writeFile(join(home, 'other.cert'), other.certificate.bytes)
    await copyFile(join(auditDir(), auditSegmentName(1)), join(copy, auditSegmentName(1)))
    const wrong = await run(['audit', '--verify', '--dir', copy, '--cert', join(home, 'other.cert')])
    expect(wrong.code).toBe(1)
    expect(wrong.out).toContain('bad-signature')
  })

  it('refuses misused flags, and says when no agent runs', async () => {
    expect((await run(['audit', '--dir', '/tmp'])).code).toBe(2)
    expect((await run(['audit', '--verify', '--since', '1h'])).code).toBe(2)
    expect((await run(['audit', '--since', 'soon'])).code).toBe(2)
    const none = await run(['audit'])
    expect(none.code).toBe(1)
    expect(none.err).toMatch(/^mesh: .*\n$/)
  })
})
