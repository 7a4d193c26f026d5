// Proves certificate renewal on real libp2p over 127.0.0.1: with a short certificate lifetime a member
// renews over /mesh/ca/1.0.0 and the CA node renews through its own issuer, each at two thirds of the
// lifetime, swap the new certificate in (saved through the store), and stay admitted and alive after
// their original certificates expired: a node that connects afterwards admits them.
import { afterAll, describe, expect, it } from 'vitest'
import { renewalStartMs } from '../../src/ca/renewal-schedule.js'
import type { SignedCertificate } from '../../src/ca/types.js'
import { createTestCa, startTestMesh, type TestMesh, waitFor } from './harness.js'

// A small skew budget so second-long lifetimes are legal (the issuer wants TTL > 4 × skew).
const SKEW_MS = 100

describe('renewal', () => {
  let mesh: TestMesh | undefined
  afterAll(async () => {
    await mesh?.stop()
  })

  it('renews at two thirds of the lifetime and keeps working after the old certificate expired', async () => {
    const ca = createTestCa()
    const now = Date.now()
    const window = { notBeforeMs: now - 1_000, notAfterMs: now + 2_000 }
    const caIdentity = ca.identity('ca1', 'core', ['ca', 'agent'], window)
    const memberIdentity = ca.identity('m1', 'edge', ['agent'], window)
    const saved: SignedCertificate[] = []
    mesh = await startTestMesh(
      [
        {
          name: 'ca1',
          zone: 'core',
          ca: true,
          identity: caIdentity,
          config: { certificateTtlMs: 4_000, clockSkewToleranceMs: SKEW_MS },
        },
        {
          name: 'm1',
          zone: 'edge',
          identity: memberIdentity,
          config: { clockSkewToleranceMs: SKEW_MS },
          init: { store: { saveNodeCertificate: async cert => void saved.push(cert) } },
        },
      ],
      { ca },
    )
    await mesh.converge()
    const ca1 = mesh.node('ca1')
    const m1 = mesh.node('m1')
    const dueMs = renewalStartMs(window)
    await waitFor(
      () =>
        ca1.certificate().certificate.serial !== caIdentity.certificate.certificate.serial &&
        m1.certificate().certificate.serial !== memberIdentity.certificate.certificate.serial,
      5_000,
      'both nodes to renew',
    )
    const renewedAt = Date.now()
    expect(renewedAt).toBeGreaterThanOrEqual(dueMs)
    console.info(`renewal: both renewed ${renewedAt - dueMs} ms after the two-thirds mark`)
    expect(m1.enrolment.counters.renewed).toBeGreaterThanOrEqual(1)
    expect(ca1.enrolment.counters.caRequests).toBeGreaterThanOrEqual(1) // m1's request came over /mesh/ca
    const renewed = m1.certificate().certificate
    expect([renewed.name, renewed.zone, renewed.roles]).toEqual(['m1', 'edge', ['agent']])
    expect(renewed.notAfterMs).toBeGreaterThan(window.notAfterMs)
    expect(saved.at(-1)?.certificate.serial).toBe(m1.certificate().certificate.serial)

    // Past the old certificates' end (plus the 100 ms skew budget), a newcomer admits both.
    await waitFor(() => Date.now() > window.notAfterMs + 2 * SKEW_MS, 5_000, 'the old certificates to expire')
    const late = await mesh.add({ name: 'late', zone: 'edge', config: { clockSkewToleranceMs: SKEW_MS } })
    await late.dial(m1.addrs()[0]!).catch(() => {})
    await waitFor(
      () => ['ca1', 'm1'].every(name => late.members().some(m => m.name === name && m.state === 'alive')),
      5_000,
      'the newcomer to see ca1 and m1 alive',
    )
    await waitFor(() => late.admission.certificateOf(m1.peerId) !== undefined, 5_000, 'late to admit m1')
    // m1 proved itself with a renewed certificate (the original one had expired by then).
    const proved = late.admission.certificateOf(m1.peerId)?.certificate
    expect(proved?.serial).not.toBe(memberIdentity.certificate.certificate.serial)
    expect(proved?.notAfterMs).toBeGreaterThan(Date.now())
  })
})
