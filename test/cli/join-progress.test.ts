// Proves `mesh join` without a ticket to a 127.0.0.1 port where nothing listens, with no --timeout
// (so the approval wait is its 1 h default), no longer hangs: on a TTY it prints a progress line per
// attempt to stderr and exits 1 with one clear line at the 20 s reach limit.
// A unit-project file although it dials 127.0.0.1: it mostly waits, so it runs beside the serial
// integration files instead of adding its 20 s to them.
import { mkdtemp, rm } from 'node:fs/promises'
import { type AddressInfo, createServer } from 'node:net'
import { tmpdir } from 'node:os'
import { join as joinPath } from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'
import { fingerprintOf, formatFingerprint } from '../../src/ca/fingerprint.js'
import { createCli } from '../../src/cli.js'
import { JOIN_REACH_TIMEOUT_MS_DEFAULT } from '../../src/node/enrolment/joiner.js'
import { generateSigningKey } from '../../src/node/keys.js'

/** A 127.0.0.1 TCP port that was just bound and closed: nothing listens there. */
async function closedPort(): Promise<number> {
  const server = createServer()
  await new Promise<void>(resolve => server.listen(0, '127.0.0.1', resolve))
  const { port } = server.address() as AddressInfo
  await new Promise(resolve => server.close(resolve))
  return port
}

describe('mesh join progress (CLI)', () => {
  const dirs: string[] = []
  afterAll(async () => {
    await Promise.all(dirs.map(d => rm(d, { recursive: true, force: true })))
  })

  it('ticketless, nothing listening: progress lines on a TTY, then exit 1 at the reach limit', async () => {
    const dir = await mkdtemp(joinPath(tmpdir(), 'mesh-join-progress-'))
    dirs.push(dir)
    const address = `/ip4/127.0.0.1/tcp/${await closedPort()}`
    let out = ''
    let err = ''
    const io = {
      stdout: { write: (s: string) => (out += s) },
      stderr: { write: (s: string) => (err += s), isTTY: true },
      env: {},
      userHome: tmpdir(),
    }
    const fingerprint = formatFingerprint(fingerprintOf(generateSigningKey().publicKey))
    const startedAt = Date.now()
    const code = await createCli(io).run([
      '--home',
      joinPath(dir, 'home'),
      'join',
      '--bootstrap',
      address,
      '--fingerprint',
      fingerprint,
      '--name',
      'u',
      '--zone',
      'web',
    ])
    const elapsed = Date.now() - startedAt
    expect(code).toBe(1)
    expect(elapsed).toBeGreaterThanOrEqual(JOIN_REACH_TIMEOUT_MS_DEFAULT - 1_000)
    expect(elapsed).toBeLessThan(JOIN_REACH_TIMEOUT_MS_DEFAULT + 5_000)
    expect(out).toBe('')
    const lines = err.trimEnd().split('\n')
    // One line per attempt (every 5 s), then the error.
    expect(lines.length).toBeGreaterThanOrEqual(4)
    expect(lines[0]).toMatch(
      new RegExp(`^trying ${address} … connection refused; retrying in 5 s \\((19|20) s left\\)$`),
    )
    for (const line of lines.slice(0, -1)) expect(line).toMatch(/^trying .* … connection refused; /)
    expect(lines.at(-1)).toMatch(
      new RegExp(
        `^mesh: cannot reach the mesh at ${address}: connection refused \\(\\d+ attempts in 20s\\); check the address`,
      ),
    )
  }, 40_000)
})
