// The two-person rule in the pure parts: approvals over a request's body (approval.ts), the policy's
// `signatures` and `weights` (authorize.ts), and the pipeline (validate.ts): each refusal named —
// an approval by the proposer, a second one by the same operator, a forged one, one over a changed
// request, one by a revoked approver — and nothing allowed below the threshold, whatever the order
// of the rules.
import { describe, expect, it } from 'vitest'
import {
  type Approval,
  createApproval,
  encodeApprovedRequest,
  verifyApprovals,
} from '../../src/gossip/approval.js'
import { type AuthorizationPolicy, authorize, PolicyError, parsePolicy } from '../../src/gossip/authorize.js'
import { createReplayCache } from '../../src/gossip/replay.js'
import { createRequest, decodeRequest } from '../../src/gossip/request.js'
import { createRequestValidator } from '../../src/gossip/validate.js'
import { FakeCa, type TestIdentity, testId } from './fixtures.js'

const NOW = 1_800_000_000_000
const ca = new FakeCa()
const alice = ca.issue('alice', { roles: ['operator'] })
const bob = ca.issue('bob', { roles: ['operator'] })
const carol = ca.issue('carol', { roles: ['operator'] })
const dave = ca.issue('dave', { roles: ['operator'] })
const agent = ca.issue('web1', { roles: ['agent'] })

const policy: AuthorizationPolicy = parsePolicy({
  rules: [
    // A broad rule first: it must not lift the two-person rule below.
    { actions: ['*'], roles: ['operator'] },
    { actions: ['restart-db'], roles: ['operator'], zones: ['db'], signatures: 2 },
    {
      actions: ['drop-db'],
      operators: ['*'],
      zones: ['db'],
      weights: { alice: 2, 'role:operator': 1 },
      minWeight: 3,
    },
  ],
})

let n = 0
function proposal(action = 'restart-db', by: TestIdentity = alice) {
  n += 1
  return createRequest({
    id: testId(n),
    issuer: by.certificate.bytes,
    key: by.key,
    issuedAtMs: NOW,
    expiresAtMs: NOW + 30_000,
    filter: { zone: 'db' },
    action,
    replyTo: { peerId: 'p', addrs: [] },
  })
}
const approve = (request: ReturnType<typeof proposal>, who: TestIdentity): Approval =>
  createApproval(who, request.envelope.bodyBytes)

function validator() {
  return createRequestValidator(
    {
      verifier: ca.verifier,
      replay: createReplayCache({ clockSkewToleranceMs: 2_000, entriesMax: 100 }),
      self: () => ({ name: 'd1', zone: 'db', facts: {} }),
      policy: () => policy,
    },
    { clockSkewToleranceMs: 2_000, requestLifetimeMsMax: 60_000 },
  )
}

describe('approvals', () => {
  it('round-trip in the approved form; the envelope alone is unchanged', () => {
    const request = proposal()
    const bytes = encodeApprovedRequest(request.envelopeBytes, [
      approve(request, bob),
      approve(request, carol),
    ])
    const decoded = decodeRequest(bytes)
    expect(decoded.idHex).toBe(request.idHex)
    expect(decoded.approvals).toHaveLength(2)
    expect(decoded.envelopeBytes).toEqual(request.envelopeBytes)
    expect(encodeApprovedRequest(request.envelopeBytes, [])).toBe(request.envelopeBytes)
  })

  it('names the approval that does not hold, stopping at the first forged one', () => {
    const request = proposal()
    const body = request.envelope.bodyBytes
    const other = proposal()
    const check = (approvals: Approval[]) =>
      verifyApprovals(approvals, body, alice.certificate.certificate, ca.verifier, NOW)
    const reasons = (approvals: Approval[]) => check(approvals).rejected.map(r => r.reason)
    expect(reasons([approve(request, alice)])).toEqual(['proposer'])
    expect(reasons([approve(request, bob), approve(request, bob)])).toEqual(['duplicate'])
    expect(reasons([approve(other, carol)])).toEqual(['bad-signature'])
    expect(reasons([approve(request, agent)])).toEqual(['not-operator'])
    const stranger = new FakeCa().issue('mallory', { roles: ['operator'] })
    expect(reasons([approve(request, stranger)])).toEqual(['forged-certificate'])
    // Fail fast: nothing after a forged approval is even looked at (garbage costs one check).
    const after = check([approve(request, alice), approve(request, bob)])
    expect(after.rejected).toHaveLength(1)
    // A good approval before is kept; a revoked approver is only dropped.
    const eve = ca.issue('eve2', { roles: ['operator'] })
    const mixed = [approve(request, bob), approve(request, eve)]
    ca.revoke(eve)
    const dropped = check(mixed)
    expect(dropped.approvers.map(c => c.name)).toEqual(['bob'])
    expect(dropped.rejected.map(r => r.reason)).toEqual(['bad-certificate'])
  })
})

describe('policy signatures and weights', () => {
  const cert = (who: TestIdentity) => who.certificate.certificate
  it('needs two distinct operators for restart-db in db, whatever the rule order', () => {
    const alone = authorize(policy, { action: 'restart-db', operator: cert(alice), nodeZone: 'db' })
    expect(alone.allow).toBe(false)
    expect(alone.allow === false && alone.reason).toMatch(/rule 2 needs 2 signatures .* has 1 \(alice\)/)
    const two = authorize(policy, {
      action: 'restart-db',
      operator: cert(alice),
      nodeZone: 'db',
      approvers: [cert(bob)],
    })
    expect(two).toMatchObject({ allow: true, reason: 'allowed by rule 1, approved by bob' })
    // Outside db the two-person rule does not apply.
    expect(authorize(policy, { action: 'restart-db', operator: cert(alice), nodeZone: 'web' }).allow).toBe(
      true,
    )
  })

  it('adds weights: alice 2 + any operator 1 reaches 3; two plain operators do not', () => {
    const q = (operator: TestIdentity, approvers: TestIdentity[]) =>
      authorize(policy, {
        action: 'drop-db',
        operator: cert(operator),
        nodeZone: 'db',
        approvers: approvers.map(cert),
      })
    expect(q(alice, [bob]).allow).toBe(true)
    expect(q(bob, [carol]).allow).toBe(false)
    expect(q(bob, [carol, dave]).allow).toBe(true)
  })

  it('refuses malformed signature fields', () => {
    expect(() => parsePolicy({ rules: [{ actions: ['x'], signatures: 0 }] })).toThrow(PolicyError)
    expect(() => parsePolicy({ rules: [{ actions: ['x'], weights: { a: 1 } }] })).toThrow(/go together/)
    expect(() => parsePolicy({ rules: [{ actions: ['x'], minWeight: 2, weights: { a: 101 } }] })).toThrow(
      PolicyError,
    )
  })
})

describe('the pipeline with approvals', () => {
  it('denies below the threshold and runs at it', () => {
    const v = validator()
    const request = proposal()
    expect(v.validate(request.envelopeBytes, NOW)).toMatchObject({ kind: 'accept-denied' })
    // The same request with a second operator's approval is a new message: it runs.
    const approved = encodeApprovedRequest(request.envelopeBytes, [approve(request, bob)])
    const outcome = v.validate(approved, NOW)
    expect(outcome.kind).toBe('accept-execute')
    expect(outcome.kind !== 'refused' && outcome.request.approvers.map(c => c.name)).toEqual(['bob'])
    // ...but it is the same request for the run record.
    expect(outcome.kind !== 'refused' && outcome.request.runKey).toBe(
      `${request.idHex}:${alice.certificate.certificate.serial}`,
    )
  })

  it('refuses forged, own and repeated approvals as bad-approval (a byte-identical repeat is malformed)', () => {
    const v = validator()
    const request = proposal()
    const forged = { ...approve(request, bob), sig: new Uint8Array(64).fill(1) }
    for (const approvals of [
      [forged],
      [approve(request, alice)],
      // A second approval by an operator of the same name (a renewed certificate: another key).
      [approve(request, bob), approve(request, ca.issue('bob', { roles: ['operator'] }))],
    ]) {
      const bytes = encodeApprovedRequest(request.envelopeBytes, approvals)
      expect(v.validate(bytes, NOW)).toMatchObject({
        kind: 'refused',
        code: 'bad-approval',
        action: 'reject',
      })
    }
    // The very same approval twice is not even well-formed.
    const same = approve(request, bob)
    expect(v.validate(encodeApprovedRequest(request.envelopeBytes, [same, same]), NOW)).toMatchObject({
      kind: 'refused',
      code: 'malformed',
    })
  })

  it('drops a revoked approver and says so in the denial', () => {
    const eve = ca.issue('eve', { roles: ['operator'] })
    const request = proposal()
    const bytes = encodeApprovedRequest(request.envelopeBytes, [approve(request, eve)])
    ca.revoke(eve)
    const outcome = validator().validate(bytes, NOW)
    expect(outcome.kind).toBe('accept-denied')
    expect(outcome.kind === 'accept-denied' && outcome.reason).toMatch(
      /has 1 \(alice\); approvals dropped: serial .* revoked/,
    )
  })

  it('carries up to 16 approvals and refuses more', () => {
    const request = proposal('ping')
    const many = Array.from({ length: 17 }, (_, i) =>
      approve(request, ca.issue(`op${i}`, { roles: ['operator'] })),
    )
    expect(
      decodeRequest(encodeApprovedRequest(request.envelopeBytes, many.slice(0, 16))).approvals,
    ).toHaveLength(16)
    expect(() => decodeRequest(encodeApprovedRequest(request.envelopeBytes, many))).toThrow(
      /approvals must be a list of 1-16|more than \d+ items/,
    )
  })
})
