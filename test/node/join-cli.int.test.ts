// Proves `mesh join` as a user runs it, in process against a real CA node on 127.0.0.1 built from a
// home made by initHome: flag errors exit 2, a ticket join writes a loadable home (key, certificate,
// CA key, revocations, config with listen and bootstrap) and the joined node becomes a member; an
// occupied home and a refused ticket fail with one line and exit 1; a join without a ticket prints the
// approval hint with the key fingerprint and finishes once the request is signed.

import { existsSync } from 'node:fs'
import { mkdtemp, rm } from 'node:fs/promises'
import { type AddressInfo, createServer } from 'node:net'
import { tmpdir } from 'node:os'
import { join as joinPath } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import {
  homePaths,
  loadHome,
  pendingJoinKey,
  saveIssuerState,
  saveNodeCertificate,
  saveRevocations,
} from '../../src/agent/home.js'
import { initHome } from '../../src/agent/init.js'
import { fingerprintOf, formatFingerprint } from '../../src/ca/fingerprint.js'
import { join } from '../../src/cli/join.js'
import { type CliIo, createCli } from '../../src/cli.js'
import { requestCertificate } from '../../src/node/enrolment/joiner.js'
import { generateSigningKey } from '../../src/node/keys.js'
import { createMeshNode } from '../../src/node/node.js'
import type { MeshNode } from '../../src/node/node-types.js'
import { testConfig, waitFor } from './harness.js'

/** A 127.0.0.1 TCP port that was just bound and closed: nothing listens there. */
async function closedPort(): Promise<number> {
  const server = createServer()
  await new Promise<void>(resolve => server.listen(0, '127.0.0.1', resolve))
  const { port } = server.address() as AddressInfo
  await new Promise(resolve => server.close(resolve))
  return port
}

function captureIo(tty = false): CliIo & { out: () => string; err: () => string } {
  let out = ''
  let err = ''
  return {
    stdout: { write: (s: string) => (out += s) },
    stderr: { write: (s: string) => (err += s), isTTY: tty },
    env: {},
    userHome: tmpdir(),
    out: () => out,
    err: () => err,
  }
}

describe('mesh join (CLI)', () => {
  const dirs: string[] = []
  const nodes: MeshNode[] = []
  let ca: MeshNode
  const tempHome = async () => {
    const dir = await mkdtemp(joinPath(tmpdir(), 'mesh-cli-join-'))
    dirs.push(dir)
    return joinPath(dir, 'home')
  }
  const ticket = async (name: string, bootstrap: string[] = ca.addrs()): Promise<string> => {
    const effects = await ca.issuer!.run({
      type: 'create-ticket',
      requestId: name,
      name,
      zone: 'edge',
      roles: ['agent'],
      ttlMs: 60_000,
      bootstrap,
    })
    const reply = effects[0]
    if (reply?.type !== 'command-reply' || !reply.result.ok || reply.result.command !== 'create-ticket') {
      throw new Error('no ticket')
    }
    return reply.result.ticket
  }

  beforeAll(async () => {
    const home = await tempHome()
    await initHome(home, { name: 'ca1', zone: 'core', listen: ['/ip4/127.0.0.1/tcp/0'] }, Date.now())
    const state = await loadHome(home)
    ca = await createMeshNode({
      node: state.node,
      caPublicKey: state.caPublicKey,
      operator: state.operator,
      ca: state.ca,
      revocations: state.revocations,
      config: testConfig(),
      store: {
        saveIssuerState: s => saveIssuerState(home, s),
        saveRevocations: b => saveRevocations(home, b),
        saveNodeCertificate: c => saveNodeCertificate(home, c),
      },
    })
    nodes.push(ca)
    await ca.start()
  })
  afterAll(async () => {
    await Promise.all(nodes.map(n => n.stop().catch(() => {})))
    await Promise.all(dirs.map(d => rm(d, { recursive: true, force: true })))
  })

  it('exits 2 when given neither a ticket nor the manual flags, or both', async () => {
    const home = await tempHome()
    for (const argv of [
      ['--home', home, 'join'],
      ['--home', home, 'join', '--ticket', 'mesh2.x', '--name', 'a'],
      ['--home', home, 'join', '--bootstrap', '/ip4/127.0.0.1/tcp/1', '--name', 'a'],
    ]) {
      const io = captureIo()
      expect(await createCli(io).run(argv)).toBe(2)
      expect(io.err()).toMatch(/^mesh: .*(--ticket|needed)/)
    }
  })

  it('joins with a ticket, writes a loadable home and runs as a member', async () => {
    const home = await tempHome()
    const io = captureIo()
    const code = await createCli(io).run([
      '--home',
      home,
      'join',
      '--ticket',
      await ticket('cli1'),
      '--listen',
      '/ip4/127.0.0.1/tcp/0',
    ])
    expect([code, io.err()]).toEqual([0, ''])
    expect(io.out()).toMatch(/^joined mesh sha256:\S+ as cli1 \(zone edge, roles agent\)/)
    const state = await loadHome(home)
    expect(state.node.certificate.certificate.name).toBe('cli1')
    expect(state.revocations).toBeDefined()
    expect(state.configFile.listen).toEqual(['/ip4/127.0.0.1/tcp/0'])
    expect(state.configFile.bootstrap).toEqual(ca.addrs())
    const node = await createMeshNode({
      node: state.node,
      caPublicKey: state.caPublicKey,
      revocations: state.revocations,
      config: testConfig({ bootstrap: state.configFile.bootstrap as string[] }),
    })
    nodes.push(node)
    await node.start()
    await waitFor(
      () => ca.members().some(m => m.name === 'cli1' && m.state === 'alive'),
      10_000,
      'ca1 to see cli1',
    )

    // The same home again: refused, nothing touched.
    const again = captureIo()
    expect(await createCli(again).run(['--home', home, 'join', '--ticket', await ticket('cli2')])).toBe(1)
    expect(again.err()).toMatch(/already holds a node/)
  })

  it('fails with one line and exit 1 for a used ticket', async () => {
    const line = await ticket('cli3')
    expect(await createCli(captureIo()).run(['--home', await tempHome(), 'join', '--ticket', line])).toBe(0)
    const io = captureIo()
    expect(await createCli(io).run(['--home', await tempHome(), 'join', '--ticket', line, '--json'])).toBe(1)
    expect(io.err()).toBe(
      'mesh: the mesh refused to join: ticket was already used; ask for a new one with mesh ticket create\n',
    )
    expect(io.out()).toBe('')
  })

  it('resumes a join interrupted after the CA signed: same key, same ticket, its certificate', async () => {
    const line = await ticket('cli4')
    const home = await tempHome()
    // The first run wrote its key, and the CA signed it, but the run died before saving the answer.
    const { key } = await pendingJoinKey(home, generateSigningKey)
    const signed = await requestCertificate({ key, ticket: line })
    expect(existsSync(homePaths(home).nodeKey)).toBe(false)
    // Another home with the same ticket is refused as before (a fresh key)...
    const other = captureIo()
    expect(await createCli(other).run(['--home', await tempHome(), 'join', '--ticket', line])).toBe(1)
    expect(other.err()).toMatch(/ticket was already used/)
    // ...while the interrupted home's retry gets the certificate the CA signed for its key.
    const io = captureIo()
    const argv = ['--home', home, 'join', '--ticket', line, '--listen', '/ip4/127.0.0.1/tcp/0']
    expect([await createCli(io).run(argv), io.err()]).toEqual([0, ''])
    const state = await loadHome(home)
    expect(state.node.certificate.certificate.serial).toBe(signed.certificate.certificate.serial)
    expect(Buffer.from(state.node.key.publicKey)).toEqual(Buffer.from(key.publicKey))
    expect(existsSync(homePaths(home).joinKey)).toBe(false)
  })

  it('waits for approval without a ticket, printing the hint, and finishes once signed', async () => {
    const home = await tempHome()
    const io = captureIo()
    const joining = join(
      io,
      { home, json: true, jsonl: false },
      {
        bootstrap: ca.addrs(),
        fingerprint: formatFingerprint(fingerprintOf((await loadHome(dirs[0]! + '/home')).caPublicKey)),
        name: 'asked',
        zone: 'edge',
        listen: ['/ip4/127.0.0.1/tcp/0'],
        timeout: 10_000,
        pollIntervalMs: 100,
      },
    )
    await waitFor(() => io.err().includes('waiting for approval'), 5_000, 'the approval hint')
    const id = /mesh ca sign ([a-z2-7]+)/.exec(io.err())?.[1]
    expect(io.err()).toMatch(/key fingerprint [A-Z2-7]{4}-[A-Z2-7]{4}-[A-Z2-7]{4}-[A-Z2-7]{4}/i)
    await ca.issuer!.run({ type: 'sign-pending', requestId: 's', id: id! })
    expect(await joining).toBe(0)
    const printed = JSON.parse(io.out())
    expect([printed.name, printed.zone, printed.roles]).toEqual(['asked', 'edge', ['agent']])
    expect((await loadHome(home)).node.certificate.certificate.name).toBe('asked')
  })

  it('with a ticket, fails fast on an unreachable mesh; progress only on a TTY or with --verbose', async () => {
    const address = `/ip4/127.0.0.1/tcp/${await closedPort()}`
    const line = await ticket('unreached', [address])
    const failure = `mesh: cannot reach the mesh at ${address}: connection refused (`
    const progressLine = new RegExp(
      `^trying ${address} … connection refused; retrying in \\d s \\(\\d s left\\)$`,
      'm',
    )
    for (const [tty, extra] of [
      [false, []],
      [true, []],
      [false, ['--verbose']],
    ] as const) {
      const io = captureIo(tty)
      const startedAt = Date.now()
      // --verbose is parsed by src/cli.ts once the lead wires it; here join() gets the flag directly.
      const code =
        extra.length === 0
          ? await createCli(io).run(['--home', await tempHome(), 'join', '--ticket', line, '--timeout', '2s'])
          : await join(
              io,
              { home: await tempHome(), json: false, jsonl: false },
              { ticket: line, timeout: 2_000, verbose: true },
            ).catch((err: Error) => {
              io.stderr.write(`mesh: ${err.message}\n`)
              return 1
            })
      expect(code).toBe(1)
      expect(Date.now() - startedAt).toBeLessThan(6_000)
      const lines = io.err().trimEnd().split('\n')
      expect(lines.at(-1)!.startsWith(failure)).toBe(true)
      if (tty || extra.length > 0) {
        expect(io.err()).toMatch(progressLine)
        expect(lines.length).toBeGreaterThanOrEqual(2)
      } else {
        expect(lines).toHaveLength(1)
      }
    }
  }, 30_000)
})
