// Proves the highly available CA on real libp2p in one process (127.0.0.1 TCP: the joiner dials TCP
// only): three CA holders sharing the CA material by construction form the zone `ca`, whose lease
// elects the issuer; a burst of ticket joins runs while the issuing holder is stopped. Every join
// either completes once or fails with a JoinError; no ticket is accepted twice (each completed
// ticket, replayed with another key after failover, is refused by the new issuer); a non-issuing
// holder refuses operator commands with "not the issuer"; and a new join completes within 5 s of the
// stop.

import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { JoinError, type JoinResult, requestCertificate } from '../../src/node/enrolment/joiner.js'
import { NotIssuerError } from '../../src/node/issuer-driver.js'
import { generateSigningKey } from '../../src/node/keys.js'
import { createTestCa, startTestMesh, type TestMesh, type TestNode, waitFor } from './harness.js'

const FAST = { pollIntervalMs: 100, attemptTimeoutMs: 2_000, timeoutMs: 15_000 }
const BURST = 10

async function ticketFrom(node: TestNode, name: string, bootstrap: string[]): Promise<string> {
  const effects = await node.issuer!.run({
    type: 'create-ticket',
    requestId: `t-${name}`,
    name,
    zone: 'edge',
    roles: ['agent'],
    ttlMs: 60_000,
    bootstrap,
  })
  const reply = effects.find(e => e.type === 'command-reply')
  if (reply?.type !== 'command-reply' || !reply.result.ok || reply.result.command !== 'create-ticket')
    throw new Error('ticket not created')
  return reply.result.ticket
}

describe('CA with three holders: failover during a burst of joins', () => {
  let mesh: TestMesh
  const names = ['h1', 'h2', 'h3']

  beforeAll(async () => {
    const ca = createTestCa()
    const identities = names.map(name => ca.identity(name, 'ca', ['ca', 'agent']))
    const caHolders = identities.map(id => id.certificate.certificate.peerId)
    mesh = await startTestMesh(
      names.map((name, i) => ({ name, zone: 'ca', ca: true, identity: identities[i], init: { caHolders } })),
      { ca },
    )
    await mesh.converge()
  }, 40_000)
  afterAll(async () => {
    await mesh?.stop()
  })

  const serving = (): TestNode | undefined =>
    mesh.nodes.find(n => n.caHolders?.()?.role === 'serving' && n.issuer !== undefined)

  it('elects one issuer; the others refuse to sign', async () => {
    await waitFor(() => serving() !== undefined, 15_000, 'a serving CA holder')
    const issuer = serving()!
    expect(mesh.nodes.filter(n => n.caHolders?.()?.role === 'serving')).toHaveLength(1)
    const other = mesh.nodes.find(n => n !== issuer)!
    await expect(ticketFrom(other, 'x', other.addrs())).rejects.toBeInstanceOf(NotIssuerError)
    await expect(ticketFrom(other, 'x', other.addrs())).rejects.toThrow(/not the issuer/)
    const status = issuer.caHolders!()!
    expect(status.holders.map(h => h.name).sort()).toEqual(names)
    expect(status.zone).toBe('ca')
    expect(status.ballot?.issuer).toBe(issuer.peerId)
  }, 20_000)

  it('every join completes once or fails clearly; no ticket twice; joins resume within 5 s', async () => {
    const issuer = serving()!
    const bootstrap = mesh.nodes.flatMap(n => n.addrs().slice(0, 1))
    const tickets: string[] = []
    for (let i = 0; i < BURST; i++) tickets.push(await ticketFrom(issuer, `j${i}`, bootstrap))
    const joins = tickets.map(ticket =>
      requestCertificate({ key: generateSigningKey(), ticket, ...FAST }).then(
        (result): JoinResult | JoinError => result,
        (err: unknown): JoinResult | JoinError => {
          if (err instanceof JoinError) return err
          throw err
        },
      ),
    )
    // Mid-burst: stop the issuing holder once its first change has committed.
    await waitFor(
      () => (issuer.caHolders?.()?.counters.commits ?? 0) >= 1,
      10_000,
      'the first join to commit',
    )
    const stoppedAtMs = Date.now()
    await issuer.stop()
    const outcomes = await Promise.all(joins)

    const done = outcomes.filter((o): o is JoinResult => !(o instanceof JoinError))
    const failed = outcomes.filter((o): o is JoinError => o instanceof JoinError)
    for (const error of failed) expect(error.message.length).toBeGreaterThan(0)
    expect(done.length + failed.length).toBe(BURST)
    const serials = done.map(r => r.certificate.certificate.serial)
    expect(new Set(serials).size).toBe(serials.length)

    // A new issuer serves, and a fresh join completes within 5 s of the stop.
    await waitFor(() => serving() !== undefined, 5_000, 'a new issuer')
    const next = serving()!
    expect(next).not.toBe(issuer)
    const fresh = await requestCertificate({
      key: generateSigningKey(),
      ticket: await ticketFrom(next, 'after', bootstrap.slice(1).concat(bootstrap.slice(0, 1))),
      ...FAST,
    })
    const resumedMs = Date.now() - stoppedAtMs
    expect(fresh.certificate.certificate.name).toBe('after')
    expect(resumedMs).toBeLessThan(5_000)
    console.info(
      `CA failover: ${done.length}/${BURST} burst joins done, fresh join ${resumedMs} ms after stop`,
    )

    // No ticket accepted twice: every ticket a joiner got a certificate for is refused with another key.
    for (const [i, outcome] of outcomes.entries()) {
      if (outcome instanceof JoinError) continue
      const again = await requestCertificate({
        key: generateSigningKey(),
        ticket: tickets[i]!,
        ...FAST,
      }).then(
        () => undefined,
        (err: unknown) => err,
      )
      expect(again).toBeInstanceOf(JoinError)
      expect((again as JoinError).code).toBe('refused')
    }
  }, 90_000)
})
