/**
 * Proves signed replies verify end to end and are refused with a typed reason when anything is off
 * (forged key, altered byte, wrong identity, non-agent, other request), that batch frames carry
 * replies unchanged within their limits, and that the requester's collector handles duplicates,
 * out-of-order acks, unexpected nodes, completion and the timeout with the missing list.
 */
import { describe, expect, it } from 'vitest'
import {
  createReply,
  decodeReplyBatch,
  encodeReplyBatch,
  packReplyBatches,
  REPLY_BATCH_REPLIES_MAX,
  REPLY_OUTPUT_BYTES_MAX,
  truncateUtf8,
  type VerifiedReply,
  verifyReply,
} from '../../src/gossip/reply.js'
import { createReplyCollector, UNEXPECTED_NODES_MAX } from '../../src/gossip/reply-collector.js'
import { signingKeyFromSeed } from '../../src/wire/ed25519.js'
import { FakeCa, type TestIdentity, testId } from './fixtures.js'

const NOW = 1_800_000_000_000
const REQ = testId(42)

function fleet() {
  const ca = new FakeCa()
  const nodes = new Map<string, TestIdentity>()
  for (const name of ['a', 'b', 'c']) nodes.set(name, ca.issue(name, { zone: 'web', roles: ['agent'] }))
  return { ca, nodes, node: (name: string) => nodes.get(name)! }
}

const done = (over: Partial<Parameters<typeof createReply>[1]> = {}) =>
  ({
    kind: 'done',
    requestId: REQ,
    sentAtMs: NOW,
    status: 'ok',
    exitCode: 0,
    output: 'up 3 days',
    durationMs: 12,
    ...over,
  }) as Parameters<typeof createReply>[1]

describe('replies', () => {
  it('verifies an ack and a done, carrying every field', () => {
    const { ca, node } = fleet()
    const ack = verifyReply(createReply(node('a'), { kind: 'ack', requestId: REQ, sentAtMs: NOW }), {
      verifier: ca.verifier,
      nowMs: NOW,
      requestId: REQ,
    })
    expect(ack.ok && ack.verified.reply.kind).toBe('ack')
    const verdict = verifyReply(createReply(node('b'), done({ epoch: 7, reason: 'fine' })), {
      verifier: ca.verifier,
      nowMs: NOW,
    })
    expect(verdict.ok).toBe(true)
    if (verdict.ok && verdict.verified.reply.kind === 'done') {
      const r = verdict.verified.reply
      expect([r.node, r.zone, r.status, r.exitCode, r.output, r.durationMs, r.epoch, r.reason]).toEqual([
        'b',
        'web',
        'ok',
        0,
        'up 3 days',
        12,
        7,
        'fine',
      ])
      expect(verdict.verified.requestIdHex).toBe('ab00000000000000000000000000002a')
    }
  })

  it('cuts long output on a character boundary and flags it', () => {
    const { ca, node } = fleet()
    const verdict = verifyReply(
      createReply(node('a'), done({ output: 'é'.repeat(REPLY_OUTPUT_BYTES_MAX) })),
      {
        verifier: ca.verifier,
        nowMs: NOW,
      },
    )
    expect(verdict.ok).toBe(true)
    if (verdict.ok && verdict.verified.reply.kind === 'done') {
      expect(verdict.verified.reply.outputTruncated).toBe(true)
      expect(new TextEncoder().encode(verdict.verified.reply.output).byteLength).toBeLessThanOrEqual(
        REPLY_OUTPUT_BYTES_MAX,
      )
      expect(verdict.verified.reply.output).not.toContain('\uFFFD')
    }
    expect(truncateUtf8('abc', 3)).toEqual({ text: 'abc', truncated: false })
    expect(truncateUtf8('a€', 3)).toEqual({ text: 'a', truncated: true })
  })

  it.each<[string, (f: ReturnType<typeof fleet>) => { bytes: Uint8Array; requestId?: Uint8Array }, string]>([
    [
      'forged (other key, stolen certificate)',
      f => ({
        bytes: createReply(
          { key: signingKeyFromSeed(new Uint8Array(32).fill(3)), certificate: f.node('a').certificate },
          done(),
        ),
      }),
      'bad-signature',
    ],
    [
      'wrong request',
      f => ({ bytes: createReply(f.node('a'), done()), requestId: testId(1) }),
      'wrong-request',
    ],
    [
      'operator, not agent',
      f => ({ bytes: createReply(f.ca.issue('op', { roles: ['operator'] }), done()) }),
      'not-agent',
    ],
    ['unknown CA', () => ({ bytes: createReply(new FakeCa().issue('x'), done()) }), 'bad-certificate'],
    ['garbage', () => ({ bytes: new Uint8Array([0xa0]) }), 'malformed'],
    ['oversized', () => ({ bytes: new Uint8Array(40_000) }), 'too-large'],
  ])('refuses %s', (_label, make, reason) => {
    const f = fleet()
    const { bytes, requestId } = make(f)
    const verdict = verifyReply(bytes, {
      verifier: f.ca.verifier,
      nowMs: NOW,
      ...(requestId ? { requestId } : {}),
    })
    expect(verdict.ok).toBe(false)
    if (!verdict.ok) expect(verdict.reason).toBe(reason)
  })

  it('refuses a revoked node with the certificate reason', () => {
    const f = fleet()
    const bytes = createReply(f.node('a'), done())
    f.ca.revoke(f.node('a'))
    const verdict = verifyReply(bytes, { verifier: f.ca.verifier, nowMs: NOW })
    expect(verdict).toMatchObject({ ok: false, reason: 'bad-certificate', certificateReason: 'revoked' })
  })

  it('refuses any single altered byte', () => {
    const f = fleet()
    const bytes = createReply(f.node('a'), done())
    for (let i = 0; i < bytes.byteLength; i++) {
      const altered = bytes.slice()
      altered[i] = (altered[i] ?? 0) ^ 0x40
      expect(verifyReply(altered, { verifier: f.ca.verifier, nowMs: NOW }).ok).toBe(false)
    }
  })
})

describe('reply batches', () => {
  it('carries replies byte for byte', () => {
    const f = fleet()
    const replies = ['a', 'b', 'c'].map(n => createReply(f.node(n), done()))
    const decoded = decodeReplyBatch(encodeReplyBatch(replies))
    expect(decoded).toEqual(replies)
    for (const r of decoded) expect(verifyReply(r, { verifier: f.ca.verifier, nowMs: NOW }).ok).toBe(true)
  })

  it('packs many replies into frames within the limits, in order', () => {
    const f = fleet()
    const one = createReply(f.node('a'), done({ output: 'x'.repeat(8000) }))
    const replies = Array.from({ length: 600 }, () => one)
    const { frames, dropped } = packReplyBatches([...replies, new Uint8Array(40_000)])
    expect(dropped).toBe(1)
    const unpacked = frames.flatMap(frame => decodeReplyBatch(frame))
    expect(unpacked.length).toBe(600)
    for (const frame of frames)
      expect(decodeReplyBatch(frame).length).toBeLessThanOrEqual(REPLY_BATCH_REPLIES_MAX)
    expect(frames.length).toBeGreaterThanOrEqual(Math.ceil(600 / REPLY_BATCH_REPLIES_MAX))
  })

  it('refuses a batch with too many replies or non-bytes entries', () => {
    expect(() =>
      encodeReplyBatch(Array.from({ length: REPLY_BATCH_REPLIES_MAX + 1 }, () => new Uint8Array(1))),
    ).toThrow(RangeError)
    expect(() => decodeReplyBatch(new Uint8Array([0xa1, 0x61, 0x76, 0x01]))).toThrow(
      expect.objectContaining({ code: 'malformed' }),
    )
  })
})

describe('reply collector', () => {
  const verified = (
    f: ReturnType<typeof fleet>,
    name: string,
    init: Parameters<typeof createReply>[1],
  ): VerifiedReply => {
    const verdict = verifyReply(createReply(f.node(name), init), { verifier: f.ca.verifier, nowMs: NOW })
    if (!verdict.ok) throw new Error(verdict.detail)
    return verdict.verified
  }
  const ack = { kind: 'ack', requestId: REQ, sentAtMs: NOW } as const

  const collector = (expected: string[]) =>
    createReplyCollector({
      requestId: REQ,
      requestIdHex: 'id',
      action: 'uptime',
      expected,
      deadlineMs: NOW + 5000,
    })

  it('completes when every expected node is done, whatever the order', () => {
    const f = fleet()
    const c = collector(['a', 'b'])
    expect(c.accept(verified(f, 'b', done()), NOW).kind).toBe('done')
    expect(c.state).toBe('pending')
    expect(c.accept(verified(f, 'a', ack), NOW).kind).toBe('ack')
    expect(c.result().acked).toEqual(['a'])
    expect(c.accept(verified(f, 'a', done({ status: 'failed', exitCode: 2 })), NOW + 1).kind).toBe('done')
    expect(c.state).toBe('complete')
    expect(c.tick(NOW + 10_000)).toBe('complete')
    const result = c.result()
    expect(result.missing).toEqual([])
    expect(result.replies.map(r => [r.node, r.status, r.exitCode])).toEqual([
      ['b', 'ok', 0],
      ['a', 'failed', 2],
    ])
  })

  it('ignores duplicates: a second done, a second ack, a late ack', () => {
    const f = fleet()
    const c = collector(['a', 'b'])
    c.accept(verified(f, 'a', ack), NOW)
    expect(c.accept(verified(f, 'a', ack), NOW).kind).toBe('duplicate')
    c.accept(verified(f, 'a', done()), NOW)
    expect(c.accept(verified(f, 'a', done({ output: 'different' })), NOW).kind).toBe('duplicate')
    expect(c.accept(verified(f, 'a', ack), NOW).kind).toBe('duplicate')
    expect(c.result().replies).toHaveLength(1)
    expect(c.result().replies[0]?.output).toBe('up 3 days')
  })

  it('reports unexpected nodes and does not let them complete the run', () => {
    const f = fleet()
    const c = collector(['a'])
    const event = c.accept(verified(f, 'c', done()), NOW)
    expect(event).toMatchObject({ kind: 'done', reply: { node: 'c', expected: false } })
    expect(c.state).toBe('pending')
    expect(c.result().unexpected).toEqual(['c'])
  })

  it('lists the missing nodes at the timeout', () => {
    const f = fleet()
    const c = collector(['a', 'b', 'c'])
    c.accept(verified(f, 'b', done()), NOW)
    c.accept(verified(f, 'c', ack), NOW)
    expect(c.tick(NOW + 4999)).toBe('pending')
    expect(c.tick(NOW + 5000)).toBe('timed-out')
    expect(c.missing()).toEqual(['a', 'c'])
    expect(c.result().acked).toEqual(['c'])
    // A straggler is still recorded but the run stays timed out.
    c.accept(verified(f, 'a', done()), NOW + 6000)
    c.accept(verified(f, 'c', done()), NOW + 6000)
    expect(c.state).toBe('timed-out')
    expect(c.missing()).toEqual([])
  })

  it('is complete at once with nobody expected', () => {
    expect(collector([]).state).toBe('complete')
  })

  it('refuses replies to another request', () => {
    const f = fleet()
    const c = collector(['a'])
    const other = verifyReply(createReply(f.node('a'), done({ requestId: testId(9) })), {
      verifier: f.ca.verifier,
      nowMs: NOW,
    })
    if (!other.ok) throw new Error('setup')
    expect(c.accept(other.verified, NOW).kind).toBe('wrong-request')
    expect(c.missing()).toEqual(['a'])
  })

  it('bounds the unexpected nodes it keeps', () => {
    const f = fleet()
    const c = collector(['a'])
    const template = verified(f, 'b', done())
    for (let i = 0; i < UNEXPECTED_NODES_MAX + 5; i++) {
      c.accept({ ...template, reply: { ...template.reply, node: `x${i}` } }, NOW)
    }
    expect(c.overflowCount).toBe(5)
    expect(c.result().unexpected).toHaveLength(UNEXPECTED_NODES_MAX)
  })
})
