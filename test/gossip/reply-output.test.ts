/**
 * Proves the `output` reply kind (live output chunks): a signed chunk verifies end to end with every
 * field, each bound of the decoder refuses a hand-signed body that breaks it (stream, seq, empty or
 * oversized data, unknown fields) while the largest legal chunk fits, a forged or altered chunk is
 * refused like any reply, ack and done encode byte for byte as before, and the UTF-8 length and split
 * helpers agree with Node's encoder (property tests). Then the collector: each (node, seq) is passed
 * on once as `{ kind, node, stream, seq, data }`, repeats are duplicates, chunks after the node's done
 * or past the per-node byte bound are ignored and counted, reordering within the window is accepted,
 * memory stays O(window), and chunks of unexpected nodes count toward the unexpected bound.
 */
import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import {
  createReply,
  OUTPUT_CHUNK_BYTES_MAX,
  OUTPUT_SEQ_MAX,
  OUTPUT_STREAM_BYTES_MAX,
  type OutputInit,
  utf8ByteLength,
  type VerifiedReply,
  verifyReply,
} from '../../src/gossip/reply.js'
import {
  createReplyCollector,
  OUTPUT_REORDER_WINDOW,
  UNEXPECTED_NODES_MAX,
} from '../../src/gossip/reply-collector.js'
import { splitUtf8 } from '../../src/node/live-output.js'
import { DOMAIN_REPLY } from '../../src/wire/domains.js'
import { signingKeyFromSeed } from '../../src/wire/ed25519.js'
import { sealEnvelope } from '../../src/wire/envelope.js'
import { toHex } from '../../src/wire/hash.js'
import { FakeCa, type TestIdentity, testId } from './fixtures.js'

const NOW = 1_800_000_000_000
const REQ = testId(42)

function fleet() {
  const ca = new FakeCa()
  const nodes = new Map<string, TestIdentity>()
  for (const name of ['a', 'b', 'c']) nodes.set(name, ca.issue(name, { zone: 'web', roles: ['agent'] }))
  return { ca, node: (name: string) => nodes.get(name)! }
}

const chunk = (over: Partial<OutputInit> = {}): OutputInit => ({
  kind: 'output',
  requestId: REQ,
  sentAtMs: NOW,
  stream: 'stdout',
  seq: 0,
  data: 'line one\n',
  ...over,
})

/** A reply body signed by `id` as it is, whatever it says (to reach the decoder's bounds). */
function signedBody(id: TestIdentity, over: Record<string, unknown>): Uint8Array {
  const cert = id.certificate
  const body = {
    v: 1,
    kind: 'output',
    requestId: REQ,
    node: cert.certificate.name,
    zone: cert.certificate.zone,
    cert: cert.bytes,
    sentAtMs: NOW,
    stream: 'stdout',
    seq: 0,
    data: 'x',
    ...over,
  }
  return sealEnvelope(DOMAIN_REPLY, id.key, body as Parameters<typeof sealEnvelope>[2])
}

describe('output replies', () => {
  it('verifies a chunk end to end, carrying every field', () => {
    const { ca, node } = fleet()
    const verdict = verifyReply(createReply(node('b'), chunk({ stream: 'stderr', seq: 7, data: 'é€😀\n' })), {
      verifier: ca.verifier,
      nowMs: NOW,
      requestId: REQ,
    })
    expect(verdict.ok).toBe(true)
    if (!verdict.ok || verdict.verified.reply.kind !== 'output') throw new Error('not an output reply')
    const r = verdict.verified.reply
    expect([r.node, r.zone, r.stream, r.seq, r.data, r.sentAtMs]).toEqual([
      'b',
      'web',
      'stderr',
      7,
      'é€😀\n',
      NOW,
    ])
  })

  it('takes the largest chunk and the last seq', () => {
    const { ca, node } = fleet()
    // 4 KiB of 4-byte characters: 2,048 UTF-16 units, exactly the byte bound.
    const data = '😀'.repeat(OUTPUT_CHUNK_BYTES_MAX / 4)
    const bytes = createReply(node('a'), chunk({ seq: OUTPUT_SEQ_MAX, data }))
    expect(verifyReply(bytes, { verifier: ca.verifier, nowMs: NOW }).ok).toBe(true)
  })

  it.each<[string, Record<string, unknown>]>([
    ['an unknown stream', { stream: 'stdin' }],
    ['a seq past the bound', { seq: OUTPUT_SEQ_MAX + 1 }],
    ['a negative seq', { seq: -1 }],
    ['a fractional seq', { seq: 1.5 }],
    ['empty data', { data: '' }],
    ['data of one byte too many', { data: 'a'.repeat(OUTPUT_CHUNK_BYTES_MAX + 1) }],
    ['data within the characters but not the bytes', { data: 'é'.repeat(OUTPUT_CHUNK_BYTES_MAX / 2 + 1) }],
    ['data that is not text', { data: new Uint8Array([0x61]) }],
    ['a done field', { status: 'ok' }],
    ['an unknown field', { extra: 1 }],
  ])('refuses a signed chunk with %s as malformed', (_label, over) => {
    const { ca, node } = fleet()
    const verdict = verifyReply(signedBody(node('a'), over), { verifier: ca.verifier, nowMs: NOW })
    expect(verdict).toMatchObject({ ok: false, reason: 'malformed' })
  })

  it('accepts the hand-signed body the bounds test starts from (so each refusal is its field)', () => {
    const { ca, node } = fleet()
    expect(verifyReply(signedBody(node('a'), {}), { verifier: ca.verifier, nowMs: NOW }).ok).toBe(true)
  })

  it('refuses a forged chunk, one for another request and any altered byte', () => {
    const { ca, node } = fleet()
    const forged = createReply(
      { key: signingKeyFromSeed(new Uint8Array(32).fill(3)), certificate: node('a').certificate },
      chunk(),
    )
    expect(verifyReply(forged, { verifier: ca.verifier, nowMs: NOW })).toMatchObject({
      ok: false,
      reason: 'bad-signature',
    })
    const other = createReply(node('a'), chunk({ requestId: testId(1) }))
    expect(verifyReply(other, { verifier: ca.verifier, nowMs: NOW, requestId: REQ })).toMatchObject({
      ok: false,
      reason: 'wrong-request',
    })
    const bytes = createReply(node('a'), chunk())
    for (let i = 0; i < bytes.byteLength; i++) {
      const altered = bytes.slice()
      altered[i] = (altered[i] ?? 0) ^ 0x40
      expect(verifyReply(altered, { verifier: ca.verifier, nowMs: NOW }).ok).toBe(false)
    }
  })

  it('refuses to create a chunk its producer should have sized (caller bugs)', () => {
    const { node } = fleet()
    expect(() => createReply(node('a'), chunk({ data: '' }))).toThrow(TypeError)
    expect(() => createReply(node('a'), chunk({ data: 'a'.repeat(OUTPUT_CHUNK_BYTES_MAX + 1) }))).toThrow(
      TypeError,
    )
    expect(() => createReply(node('a'), chunk({ seq: OUTPUT_SEQ_MAX + 1 }))).toThrow(TypeError)
    expect(() => createReply(node('a'), chunk({ stream: 'tty' as 'stdout' }))).toThrow(TypeError)
  })

  it('keeps ack and done byte for byte as before (the body is exactly the old fields)', () => {
    const { node } = fleet()
    const id = node('a')
    const cert = id.certificate
    const common = {
      v: 1,
      kind: 'ack',
      requestId: REQ,
      node: 'a',
      zone: 'web',
      cert: cert.bytes,
      sentAtMs: NOW,
    }
    const ack = createReply(id, { kind: 'ack', requestId: REQ, sentAtMs: NOW })
    expect(toHex(ack)).toBe(toHex(sealEnvelope(DOMAIN_REPLY, id.key, common)))
    const done = createReply(id, {
      kind: 'done',
      requestId: REQ,
      sentAtMs: NOW,
      status: 'ok',
      exitCode: 0,
      output: 'up',
      durationMs: 3,
    })
    const doneBody = {
      ...common,
      kind: 'done',
      status: 'ok',
      exitCode: 0,
      output: 'up',
      outputTruncated: false,
      durationMs: 3,
      epoch: undefined,
      reason: undefined,
    }
    expect(toHex(done)).toBe(toHex(sealEnvelope(DOMAIN_REPLY, id.key, doneBody)))
  })

  it('counts UTF-8 bytes and splits on character boundaries as Node does', () => {
    fc.assert(
      fc.property(fc.string({ unit: 'binary', maxLength: 200 }), fc.nat(600), (text, bytesMax) => {
        expect(utf8ByteLength(text)).toBe(Buffer.byteLength(text, 'utf8'))
        const { head, headBytes, rest } = splitUtf8(text, bytesMax)
        expect(head + rest).toBe(text)
        expect(headBytes).toBe(Buffer.byteLength(head, 'utf8'))
        expect(headBytes).toBeLessThanOrEqual(bytesMax)
        // Maximal: the next character would not have fitted.
        if (rest !== '') {
          const next = String.fromCodePoint(rest.codePointAt(0)!)
          expect(headBytes + Buffer.byteLength(next, 'utf8')).toBeGreaterThan(bytesMax)
        }
      }),
      { numRuns: 300 },
    )
    // Lone surrogates count as the U+FFFD they encode to.
    expect(utf8ByteLength('\ud800x')).toBe(Buffer.byteLength('\ud800x', 'utf8'))
    expect(utf8ByteLength('x\udc00')).toBe(Buffer.byteLength('x\udc00', 'utf8'))
  })
})

describe('reply collector: live output', () => {
  const setup = (expected = ['a', 'b']) => {
    const f = fleet()
    const c = createReplyCollector({
      requestId: REQ,
      requestIdHex: toHex(REQ),
      action: 'tail',
      expected,
      deadlineMs: NOW + 5_000,
    })
    const verified = (name: string, init: Parameters<typeof createReply>[1]): VerifiedReply => {
      const verdict = verifyReply(createReply(f.node(name), init), { verifier: f.ca.verifier, nowMs: NOW })
      if (!verdict.ok) throw new Error(verdict.detail)
      return verdict.verified
    }
    const out = (name: string, seq: number, data = `line ${seq}\n`) =>
      c.accept(verified(name, chunk({ seq, data })), NOW)
    return { f, c, verified, out }
  }

  it('passes each chunk on once, in exactly the CLI shape', () => {
    const { c, out, verified } = setup()
    const event = c.accept(verified('a', chunk({ stream: 'stderr', seq: 0, data: 'oops\n' })), NOW)
    expect(event).toStrictEqual({ kind: 'output', node: 'a', stream: 'stderr', seq: 0, data: 'oops\n' })
    expect(out('a', 0).kind).toBe('duplicate')
    expect(out('a', 1)).toMatchObject({ kind: 'output', seq: 1 })
    // Another node's seq 0 is its own.
    expect(out('b', 0)).toMatchObject({ kind: 'output', node: 'b', seq: 0 })
    expect(c.outputCounters()).toEqual({
      chunks: 3,
      bytes: 'oops\n'.length + 'line 1\n'.length + 'line 0\n'.length,
      duplicates: 1,
      afterDone: 0,
      overLimit: 0,
    })
    // Output changes nothing of the result document.
    expect(c.result()).toMatchObject({ replies: [], missing: ['a', 'b'], acked: [], unexpected: [] })
    expect(c.state).toBe('pending')
  })

  it('accepts chunks out of order within the window and refuses their copies', () => {
    const { out } = setup()
    expect([3, 1, 0, 2].map(seq => out('a', seq).kind)).toEqual(['output', 'output', 'output', 'output'])
    expect([0, 1, 2, 3].map(seq => out('a', seq).kind)).toEqual([
      'duplicate',
      'duplicate',
      'duplicate',
      'duplicate',
    ])
  })

  it('gives up on a chunk more than the window behind the newest', () => {
    const { out } = setup()
    expect(out('a', 0).kind).toBe('output')
    // seq 1 is lost; the stream goes on far past the window.
    expect(out('a', 1 + OUTPUT_REORDER_WINDOW).kind).toBe('output')
    expect(out('a', 1).kind).toBe('duplicate')
    // Missing too, but within the window of the newest: accepted.
    expect(out('a', 2).kind).toBe('output')
  })

  it('ignores and counts chunks after the node is done; the done is untouched', () => {
    const { c, out, verified } = setup()
    out('a', 0)
    const done = c.accept(
      verified('a', {
        kind: 'done',
        requestId: REQ,
        sentAtMs: NOW,
        status: 'ok',
        exitCode: 0,
        output: 'line 0\nline 1\n',
        durationMs: 5,
      }),
      NOW,
    )
    expect(done.kind).toBe('done')
    expect(out('a', 1)).toStrictEqual({ kind: 'ignored', node: 'a', reason: 'after-done' })
    expect(c.outputCounters().afterDone).toBe(1)
    expect(c.result().replies[0]?.output).toBe('line 0\nline 1\n')
  })

  it('ignores and counts data past the per-node byte bound', () => {
    const { c, out, verified } = setup()
    // One signed full chunk, its seq changed: the collector trusts verification, not re-checks it.
    const full = verified('a', chunk({ data: 'x'.repeat(OUTPUT_CHUNK_BYTES_MAX) }))
    const fit = OUTPUT_STREAM_BYTES_MAX / OUTPUT_CHUNK_BYTES_MAX
    for (let seq = 0; seq < fit; seq++) {
      const event = c.accept({ ...full, reply: { ...full.reply, seq } as VerifiedReply['reply'] }, NOW)
      if (event.kind !== 'output') throw new Error(`chunk ${seq}: ${event.kind}`)
    }
    expect(out('a', fit, 'y')).toStrictEqual({ kind: 'ignored', node: 'a', reason: 'over-limit' })
    expect(c.outputCounters()).toMatchObject({ chunks: fit, bytes: OUTPUT_STREAM_BYTES_MAX, overLimit: 1 })
    // Other nodes have their own bound.
    expect(out('b', 0).kind).toBe('output')
  })

  it('counts nodes that only stream toward the unexpected bound, once each', () => {
    const { c, verified } = setup(['a'])
    const template = verified('c', chunk())
    const as = (node: string, seq: number) =>
      c.accept({ ...template, reply: { ...template.reply, node, seq } as VerifiedReply['reply'] }, NOW)
    for (let i = 0; i < UNEXPECTED_NODES_MAX; i++) {
      expect(as(`x${i}`, 0).kind).toBe('output')
      // A second chunk of a node already counted is not a new node.
      expect(as(`x${i}`, 1).kind).toBe('output')
    }
    expect(as('one-too-many', 0).kind).toBe('overflow')
    expect(c.overflowCount).toBe(1)
    // Nodes already known may still complete.
    const done = verified('c', {
      kind: 'done',
      requestId: REQ,
      sentAtMs: NOW,
      status: 'ok',
      exitCode: 0,
      output: '',
      durationMs: 1,
    })
    expect(c.accept({ ...done, reply: { ...done.reply, node: 'x5' } }, NOW).kind).toBe('done')
  })
})
