/**
 * Proves no decoder in the gossip layer crashes on hostile input: random bytes, random CBOR values
 * and envelopes with random bodies always end in a typed refusal (a result, DecodeError or
 * RequestDecodeError), never an unexpected exception. Uses fast-check.
 */
import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { DEFAULT_POLICY } from '../../src/gossip/authorize.js'
import { createReplayCache } from '../../src/gossip/replay.js'
import { decodeReplyBatch, verifyReply } from '../../src/gossip/reply.js'
import { decodeRequest, RequestDecodeError } from '../../src/gossip/request.js'
import { createRequestValidator } from '../../src/gossip/validate.js'
import { openSuspicion, peekRecord, verifyRecord } from '../../src/membership/record.js'
import { decodeMemberMessage } from '../../src/membership/wire.js'
import { type CborValue, DecodeError, encodeCbor } from '../../src/wire/cbor.js'
import { DOMAIN_MEMBER, DOMAIN_REPLY, DOMAIN_REQUEST, DOMAIN_SUSPICION } from '../../src/wire/domains.js'
import { signingKeyFromSeed } from '../../src/wire/ed25519.js'
import { sealEnvelope } from '../../src/wire/envelope.js'
import { FakeCa } from './fixtures.js'

const NOW = 1_800_000_000_000
const ca = new FakeCa()
const key = signingKeyFromSeed(new Uint8Array(32).fill(1))
const validator = createRequestValidator(
  {
    verifier: ca.verifier,
    replay: createReplayCache({ clockSkewToleranceMs: 1000 }),
    self: () => ({ name: 'n', zone: 'z', facts: {} }),
    policy: () => DEFAULT_POLICY,
  },
  { clockSkewToleranceMs: 1000, requestLifetimeMsMax: 60_000 },
)

const cborValue: fc.Arbitrary<CborValue> = fc.letrec<{ v: CborValue }>(tie => ({
  v: fc.oneof(
    { depthSize: 'small' },
    fc.constant(null),
    fc.boolean(),
    fc.integer(),
    fc.string({ maxLength: 8 }),
    fc.uint8Array({ maxLength: 20 }),
    fc.array(tie('v'), { maxLength: 4 }),
    fc.dictionary(
      fc.constantFrom('v', 'id', 'kind', 'filter', 'facts', 'node', 'action', 'args', 'replyTo', 'x'),
      tie('v'),
      { maxKeys: 5 },
    ),
  ),
})).v

/** Bodies close to valid: the right field names, random values. */
const nearBody = fc.record(
  {
    v: fc.oneof(fc.constant(1), fc.integer()),
    id: fc.uint8Array({ minLength: 15, maxLength: 17 }),
    issuer: fc.uint8Array({ maxLength: 8 }),
    issuedAtMs: fc.oneof(fc.integer(), fc.constant(NOW)),
    expiresAtMs: fc.integer(),
    filter: fc.oneof(cborValue, fc.record({ where: fc.string({ maxLength: 20 }) })),
    action: fc.string({ maxLength: 10 }),
    args: fc.oneof(cborValue, fc.array(fc.string({ maxLength: 4 }), { maxLength: 3 })),
    replyTo: cborValue,
    kind: fc.constantFrom('ack', 'done', 'x'),
    facts: cborValue,
  },
  { requiredKeys: [] },
) as fc.Arbitrary<CborValue>

function typed(run: () => unknown): void {
  try {
    run()
  } catch (err) {
    if (!(err instanceof DecodeError || err instanceof RequestDecodeError)) throw err
  }
}

describe('decoders never crash', () => {
  it('on random bytes', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 300 }), bytes => {
        typed(() => decodeRequest(bytes))
        typed(() => decodeReplyBatch(bytes))
        expect(validator.validate(bytes, NOW).kind).toBe('refused')
        expect(verifyReply(bytes, { verifier: ca.verifier, nowMs: NOW }).ok).toBe(false)
        expect(verifyRecord(bytes, ca.verifier, NOW).ok).toBe(false)
        expect(peekRecord(bytes)).toBeUndefined()
        typed(() => openSuspicion(bytes))
        typed(() => decodeMemberMessage(bytes))
      }),
      { numRuns: 3000 },
    )
  })

  it('on random CBOR values and on signed envelopes with near-valid bodies', () => {
    fc.assert(
      fc.property(fc.oneof(cborValue, nearBody), value => {
        const raw = encodeCbor(value)
        typed(() => decodeRequest(raw))
        typed(() => decodeReplyBatch(raw))
        typed(() => decodeMemberMessage(raw))
        for (const [domain, check] of [
          [DOMAIN_REQUEST, (b: Uint8Array) => expect(validator.validate(b, NOW).kind).toBe('refused')],
          [
            DOMAIN_REPLY,
            (b: Uint8Array) => expect(verifyReply(b, { verifier: ca.verifier, nowMs: NOW }).ok).toBe(false),
          ],
          [DOMAIN_MEMBER, (b: Uint8Array) => expect(verifyRecord(b, ca.verifier, NOW).ok).toBe(false)],
          [DOMAIN_SUSPICION, (b: Uint8Array) => typed(() => openSuspicion(b))],
        ] as const) {
          const sealed = sealEnvelope(domain, key, value)
          typed(() => decodeRequest(sealed))
          check(sealed)
        }
      }),
      { numRuns: 600 },
    )
    expect(validator.counters.internal).toBe(0)
  })
})
