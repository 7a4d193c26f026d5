// Proves on real libp2p over 127.0.0.1 that a revoked node is told and stops trying: after the CA
// revokes ops1, ops1 learns it (its peers hang up, and its next hello is refused with the CA-signed list
// as proof), `mesh status` reports the certificate `revoked`, the error line is logged exactly once, and
// in a bounded window past the moment its renewal was due it attempts no renewal and dials nobody, for
// upkeep, authority or anything else (ops1 keeps its peers `suspect`, not `dead`, so without the fix
// upkeep would keep redialling them). ops1 leaves the revocation topic first: gossip may or may not
// reach it before it is cut, and the hello is the path that must not depend on luck.
import { pino } from 'pino'
import { afterEach, describe, expect, it } from 'vitest'
import { controlHandlers } from '../../src/agent/control-methods.js'
import { decodeCertificate } from '../../src/ca/certificate.js'
import { renewalStartMs } from '../../src/ca/renewal-schedule.js'
import { TOPICS } from '../../src/node/host.js'
import { randomKey, startTestMesh, type TestMesh, type TestNode, waitFor } from './harness.js'

const REVOKED_LINE =
  "this node's certificate was revoked by the CA; it can no longer take part; join again with mesh join"
/** ops1's certificate lifetime: renewal falls due 10 s after issue, inside the test's window. */
const CERTIFICATE_TTL_MS = 15_000

/** A certificate for `name` from `ca`'s issuer (so the issuer can revoke it), with its key. */
async function issue(ca: TestNode, name: string) {
  const key = randomKey()
  const effects = await ca.issuer!.run({
    type: 'issue',
    requestId: name,
    publicKey: key.publicKey,
    name,
    zone: 'edge',
    roles: ['agent'],
  })
  const issued = effects.find(e => e.type === 'command-reply')
  if (issued?.type !== 'command-reply' || !issued.result.ok || issued.result.command !== 'issue') {
    throw new Error(`issue failed: ${JSON.stringify(issued)}`)
  }
  const decoded = decodeCertificate(issued.result.certificate)
  if (!decoded.ok) throw new Error('the CA issued an undecodable certificate')
  return { key, certificate: decoded.signed }
}

describe('a revoked node', () => {
  let mesh: TestMesh | undefined
  afterEach(async () => {
    await mesh?.stop()
    mesh = undefined
  })

  it('connected to its only peer when revoked, is told at its next hello, with the list as proof', async () => {
    // With one peer the race is gone: ca1 cuts ops2 before gossiping the list, so only a hello it is
    // still let in for (never dialled, but not shut out) can tell it.
    mesh = await startTestMesh([{ name: 'ca1', zone: 'core', ca: true }])
    const identity = await issue(mesh.node('ca1'), 'ops2')
    const ops2 = await mesh.add({ name: 'ops2', zone: 'edge', identity })
    await mesh.converge()
    ops2.host.services.pubsub.unsubscribe(TOPICS.revocation)
    await mesh.node('ca1').issuer!.run({ type: 'revoke', requestId: 'r', target: 'ops2' })
    await waitFor(() => ops2.isRevoked(identity.certificate.certificate.serial), 5_000, 'ops2 to learn it')
  })

  it('learns it within seconds, says so once, shows it in status, stops renewing and dialling', async () => {
    mesh = await startTestMesh([
      {
        name: 'ca1',
        zone: 'core',
        ca: true,
        config: { certificateTtlMs: CERTIFICATE_TTL_MS, clockSkewToleranceMs: 1_000 },
      },
      { name: 'm1', zone: 'edge' },
    ])
    const ca1 = mesh.node('ca1')
    // ops1 must hold a certificate the issuer knows, or there is nothing to revoke.
    const identity = await issue(ca1, 'ops1')
    const serial = identity.certificate.certificate.serial
    const renewalDueMs = renewalStartMs(identity.certificate.certificate)

    const errors: Array<{ msg: string; serial?: string }> = []
    const logger = pino({ level: 'error' }, { write: (line: string) => void errors.push(JSON.parse(line)) })
    const ops1 = await mesh.add({
      name: 'ops1',
      zone: 'edge',
      identity,
      config: { deadAfterMs: 600_000 },
      init: { logger },
    })
    await mesh.converge()
    const status = controlHandlers(ops1, mesh.ca.key.publicKey).status as () => Promise<{
      certificateState: string
      certificateSerial: string
    }>
    expect((await status()).certificateState).toBe('valid')

    ops1.host.services.pubsub.unsubscribe(TOPICS.revocation)
    const revoke = await ca1.issuer!.run({ type: 'revoke', requestId: 'r', target: 'ops1' })
    expect(revoke.some(e => e.type === 'command-reply' && e.result.ok)).toBe(true)
    await waitFor(() => ops1.isRevoked(serial), 5_000, 'ops1 to learn that its certificate is revoked')
    const state = await status()
    expect(state).toMatchObject({ certificateState: 'revoked', certificateSerial: serial })
    expect(Date.now()).toBeLessThan(renewalDueMs) // else the window below would prove nothing
    const revokedLines = () => errors.filter(e => e.msg === REVOKED_LINE)
    expect(revokedLines()).toEqual([expect.objectContaining({ serial })])

    // From now on: no dial started (upkeep and discovery call host.dial; authority, renewal and replies
    // dialProtocol) and no renewal attempt. Dials already in flight may still land, so calls are counted.
    const host = ops1.host as unknown as Record<'dial' | 'dialProtocol', (...args: unknown[]) => unknown>
    const dials = { dial: 0, dialProtocol: 0 }
    for (const method of ['dial', 'dialProtocol'] as const) {
      const original = host[method].bind(host)
      host[method] = (...args: unknown[]) => {
        dials[method] += 1
        return original(...args)
      }
    }
    const attempts = ops1.enrolment.counters.renewalAttempts
    // Past the moment renewal was due, and at least four upkeep rounds (500 ms each on `test`).
    const until = Math.max(renewalDueMs + 1_500, Date.now() + 2_500)
    await waitFor(() => Date.now() > until, until - Date.now() + 2_000, 'the observation window')
    expect(ops1.enrolment.counters.renewalAttempts).toBe(attempts)
    expect(dials).toEqual({ dial: 0, dialProtocol: 0 })
    expect(revokedLines()).toHaveLength(1)
    expect((await status()).certificateState).toBe('revoked')
    // Everyone else keeps it out.
    for (const name of ['ca1', 'm1']) {
      expect(mesh.node(name).admission.certificateOf(ops1.peerId)).toBeUndefined()
    }
  })
})
