/**
 * Proves the renewal component's timer on a manual clock, with fake CA client parts that record each
 * signing request they get: no attempt before two thirds of the certificate's lifetime and one right
 * at it, a retry after the policy's backoff (doubling) when the CA fails, `stop` and `renew: false`
 * leaving no timer, and after a success (answered by a real issuer core) the next attempt scheduled at
 * two thirds of the new certificate. The certificates are real, signed by a throwaway CA key.
 */
import { describe, expect, it } from 'vitest'
import { decodeCertificate } from '../../src/ca/certificate.js'
import { createIssuer } from '../../src/ca/issuer.js'
import type { JoinAnswer } from '../../src/ca/join-wire.js'
import type { RenewalPolicy } from '../../src/ca/renewal-schedule.js'
import { verifySigningRequest } from '../../src/ca/signing-request.js'
import type { SignedCertificate } from '../../src/ca/types.js'
import { createManualClock, createSeededRandom, type ManualClock } from '../../src/node/clock.js'
import { createCredentials } from '../../src/node/credentials.js'
import type { CaClient } from '../../src/node/enrolment/ca-client.js'
import { createRenewal } from '../../src/node/enrolment/renewal.js'
import {
  type EnrolmentComponents,
  type EnrolmentCounters,
  emptyEnrolmentCounters,
  type RenewalOutcome,
} from '../../src/node/enrolment/types.js'
import type { IssuerDriver } from '../../src/node/issuer-driver.js'
import type { Identity } from '../../src/node/keys.js'
import { silentLogger } from '../../src/node/log.js'
import { createTraffic } from '../../src/node/traffic.js'
import { seededRandomBytes } from '../ca/fixtures.js'
import { createTestCa, randomKey } from './harness.js'

const START = 1_800_000_000_000
const LIFETIME = 3_000_000 // renewal starts at 2_000_000
const SKEW = 60_000
const policy: RenewalPolicy = {
  retryBaseMs: 5_000,
  retryMinMs: 1_000,
  retryMaxMs: 600_000,
  recheckMaxMs: 3_600_000, // longer than any wait here: one timer per wait
  clockSkewToleranceMs: SKEW,
}

/** Lets the attempt's promise chain (and the re-scheduling after it) run. */
const flush = async (): Promise<void> => {
  for (let i = 0; i < 3; i++) await new Promise(resolve => setImmediate(resolve))
}

const busy: JoinAnswer = { type: 'error', code: 'busy', message: 'the CA is busy' }

function newCounters(): EnrolmentCounters {
  return emptyEnrolmentCounters({ allowed: 0, refusedGlobal: 0, refusedPerIp: 0, evicted: 0 })
}

function setup(
  opts: {
    identity?: (clock: ManualClock) => Identity
    caPublicKey?: Uint8Array
    answer?: (bytes: Uint8Array) => Promise<JoinAnswer>
    issuer?: boolean
    renew?: boolean
  } = {},
) {
  const testCa = createTestCa('renewal-timer')
  const clock = createManualClock(START)
  const identity =
    opts.identity?.(clock) ??
    testCa.identity('web1', 'web', ['agent'], { notBeforeMs: START, notAfterMs: START + LIFETIME })
  const credentials = createCredentials(identity)
  const askedAt: { atMs: number; via: 'local' | 'remote'; bytes: Uint8Array }[] = []
  const answer = opts.answer ?? (async () => busy)
  const ca: CaClient = {
    runLocal: async bytes => {
      askedAt.push({ atMs: clock.monotonicMs(), via: 'local', bytes })
      return answer(bytes)
    },
    askCa: async bytes => {
      askedAt.push({ atMs: clock.monotonicMs(), via: 'remote', bytes })
      return answer(bytes)
    },
    submit: async () => busy,
  }
  const unused = (): never => {
    throw new Error('not used by renewal')
  }
  const components: EnrolmentComponents = {
    peerId: '12D3KooSelf',
    host: { handle: unused, unhandle: unused, dialProtocol: unused, getConnections: () => [] },
    gated: handler => handler,
    verifiedPeers: () => [],
    members: () => [],
    issuer: () => (opts.issuer === true ? ({} as IssuerDriver) : undefined),
    credentials,
    offerRevocations: () => true,
    caPublicKey: opts.caPublicKey ?? testCa.key.publicKey,
    clock,
    random: createSeededRandom(1),
    log: silentLogger(),
    traffic: createTraffic({ clock }),
  }
  const counters = newCounters()
  const renewal = createRenewal(
    components,
    { helloTimeoutMs: 5_000, clockSkewToleranceMs: SKEW, ...(opts.renew === false ? { renew: false } : {}) },
    { counters, ca, policy },
  )
  const attempts = () => askedAt.map(a => a.atMs)
  return { clock, renewal, counters, credentials, askedAt, attempts, identity }
}

describe('renewal timer', () => {
  it('makes no attempt before two thirds of the lifetime, and one right at it', async () => {
    const { clock, renewal, attempts, askedAt, identity, counters } = setup()
    renewal.start()
    renewal.start() // idempotent
    expect(clock.pending()).toBe(1)
    clock.advance((2 * LIFETIME) / 3 - 1)
    await flush()
    expect(attempts()).toEqual([])
    clock.advance(1)
    expect(attempts()).toEqual([2_000_000]) // asked synchronously, from the timer
    expect(askedAt[0]?.via).toBe('remote') // no local issuer: a CA holder is asked
    // The request carries the current certificate and is signed by the node's key.
    const verdict = verifySigningRequest(askedAt[0]?.bytes ?? new Uint8Array(), {
      nowMs: clock.nowMs(),
      maxAgeMs: 60_000,
      clockSkewToleranceMs: SKEW,
    })
    expect(verdict.ok).toBe(true)
    if (verdict.ok) {
      expect(verdict.signed.request.certificate).toEqual(identity.certificate.bytes)
      expect(verdict.signed.request.publicKey).toEqual(identity.key.publicKey)
    }
    await flush()
    expect(counters).toMatchObject({ renewalAttempts: 1, renewalFailed: 1, renewed: 0 })
  })

  it('retries a failed attempt after the backoff, doubling it on each failure', async () => {
    const { clock, renewal, attempts } = setup()
    renewal.start()
    clock.advance(2_000_000)
    await flush()
    expect(clock.pending()).toBe(1) // the retry
    clock.advance(policy.retryBaseMs - 1)
    await flush()
    expect(attempts()).toEqual([2_000_000])
    clock.advance(1)
    await flush()
    expect(attempts()).toEqual([2_000_000, 2_005_000])
    clock.advance(2 * policy.retryBaseMs - 1)
    await flush()
    expect(attempts()).toHaveLength(2)
    clock.advance(1)
    await flush()
    expect(attempts()).toEqual([2_000_000, 2_005_000, 2_015_000])
  })

  it('asks its own issuer when it has one', async () => {
    const { clock, renewal, askedAt } = setup({ issuer: true })
    renewal.start()
    clock.advance(2_000_000)
    await flush()
    expect(askedAt.map(a => a.via)).toEqual(['local'])
  })

  it('stop cancels the timer, before the first attempt and during a backoff', async () => {
    const first = setup()
    first.renewal.start()
    first.renewal.stop()
    expect(first.clock.pending()).toBe(0)
    first.clock.advance(LIFETIME)
    await flush()
    expect(first.attempts()).toEqual([])

    const retrying = setup()
    retrying.renewal.start()
    retrying.clock.advance(2_000_000)
    await flush()
    expect(retrying.clock.pending()).toBe(1)
    retrying.renewal.stop()
    expect(retrying.clock.pending()).toBe(0)
    retrying.clock.advance(LIFETIME)
    await flush()
    expect(retrying.attempts()).toHaveLength(1)
  })

  it('arms nothing with renew: false', async () => {
    const { clock, renewal, attempts } = setup({ renew: false })
    renewal.start()
    expect(clock.pending()).toBe(0)
    clock.advance(LIFETIME)
    await flush()
    expect(attempts()).toEqual([])
  })

  it('after a success swaps the certificate in and waits for two thirds of the new one', async () => {
    const caKey = randomKey()
    const issuer = createIssuer({
      caKey,
      ticketSecret: new Uint8Array(32).fill(3),
      randomBytes: seededRandomBytes('renewal-timer'),
      config: { certificateTtlMs: LIFETIME },
    })
    let clockRef: ManualClock | undefined
    const nodeKey = randomKey()
    const { clock, renewal, attempts, credentials, counters } = setup({
      caPublicKey: caKey.publicKey,
      identity: clock => {
        clockRef = clock
        issuer.step(
          {
            type: 'issue',
            requestId: 'init',
            publicKey: nodeKey.publicKey,
            name: 'web1',
            zone: 'web',
            roles: ['agent'],
          },
          clock.nowMs(),
        )
        const reply = issuer.drainEffects().find(e => e.type === 'command-reply')
        if (reply?.type !== 'command-reply' || !reply.result.ok || reply.result.command !== 'issue')
          throw new Error('issue failed')
        const decoded = decodeCertificate(reply.result.certificate)
        if (!decoded.ok) throw new Error('bad certificate')
        return { key: nodeKey, certificate: decoded.signed }
      },
      answer: async bytes => {
        issuer.step({ type: 'signing-request', requestId: 'renew', bytes }, clockRef?.nowMs() ?? 0)
        const reply = issuer.drainEffects().find(e => e.type === 'reply')
        if (reply?.type !== 'reply') throw new Error('no reply')
        return { type: 'result', result: reply.result }
      },
    })
    const original: SignedCertificate = credentials.certificate()
    const { notBeforeMs, notAfterMs } = original.certificate
    renewal.start()
    const renewAt = notBeforeMs + Math.floor(((notAfterMs - notBeforeMs) * 2) / 3)
    clock.advance(renewAt - clock.nowMs())
    await flush()
    expect(counters).toMatchObject({ renewalAttempts: 1, renewed: 1, renewalFailed: 0 })
    const renewed = credentials.certificate().certificate
    expect(renewed.serial).not.toBe(original.certificate.serial)
    expect(renewed.notAfterMs).toBeGreaterThan(notAfterMs)
    // The next attempt: two thirds into the new certificate, not a retry after backoff.
    const nextAt = renewed.notBeforeMs + Math.floor(((renewed.notAfterMs - renewed.notBeforeMs) * 2) / 3)
    expect(nextAt - clock.nowMs()).toBeGreaterThan(policy.retryMaxMs)
    clock.advance(nextAt - clock.nowMs() - 1)
    await flush()
    expect(attempts()).toHaveLength(1)
    clock.advance(1)
    expect(attempts()).toHaveLength(2)
  })
})

describe('renewal outcome', () => {
  it('renewNow reports a busy CA as a failure without throwing', async () => {
    const { renewal, counters } = setup()
    const outcome: RenewalOutcome = await renewal.renewNow()
    expect(outcome).toMatchObject({ ok: false, reason: 'busy' })
    expect(counters.renewalFailed).toBe(1)
  })
})
