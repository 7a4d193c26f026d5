/**
 * Proves each defect the fuzz campaign found stays fixed (docs/fuzz.md lists them), with the inputs
 * it found, shrunk by hand: deep nesting is refused by depth; canonical decoding, now checked while
 * decoding, refuses exactly what does not re-encode to itself; frames with few real items are decoded
 * with item bounds; CA documents are parsed only once their signature holds; a request filter and a
 * member record have one signed spelling each; error messages do not print large values; costly
 * regexes are refused. Times are not asserted.
 */
import { describe, expect, it } from 'vitest'
import { decodeJoinAnswer } from '../../src/ca/join-wire.js'
import { verifyRevocationList } from '../../src/ca/revocation.js'
import { verifyZoneRoster } from '../../src/ca/zone-roster.js'
import { FilterParseError, parsePattern } from '../../src/gossip/filter.js'
import { decodeReplyBatch } from '../../src/gossip/reply.js'
import { decodeRequest, RequestDecodeError } from '../../src/gossip/request.js'
import { createRecord, verifyRecord } from '../../src/membership/record.js'
import { decodeMemberMessage } from '../../src/membership/wire.js'
import { decodeHello } from '../../src/node/hello.js'
import { decodeZoneRosterMessage } from '../../src/node/zone-rosters.js'
import {
  type CborValue,
  DecodeError,
  decodeCanonicalCbor,
  decodeCbor,
  encodeCbor,
  NESTING_DEPTH_MAX,
} from '../../src/wire/cbor.js'
import { DOMAIN_MEMBER, DOMAIN_REQUEST, DOMAIN_ZONE_ROSTER } from '../../src/wire/domains.js'
import { openEnvelope, sealEnvelope } from '../../src/wire/envelope.js'
import { encodeMapInOrder } from '../wire/encodings.js'
import { createWorld, NOW } from './world.js'

const world = createWorld(1)

function code(run: () => unknown): string {
  try {
    run()
    return 'ok'
  } catch (err) {
    if (err instanceof DecodeError || err instanceof RequestDecodeError || err instanceof FilterParseError) {
      return err.code
    }
    throw err
  }
}

function nested(depth: number): Uint8Array {
  const bytes = new Uint8Array(depth + 1).fill(0x81)
  bytes[depth] = 0x00
  return bytes
}

/**
 * `{ head…, field: [{ a: 0 }, …] }` with `entries` one-field maps (the most items per byte), written
 * directly: `field` sorts after the head's keys, so the map is canonical.
 */
function dense(entries: number, field: string, head: Record<string, CborValue> = { v: 1 }): Uint8Array {
  const keys = Object.keys(head)
  const parts: Uint8Array[] = [Uint8Array.of(0xa0 + keys.length + 1)]
  for (const key of keys) parts.push(encodeCbor(key), encodeCbor(head[key]!))
  parts.push(
    encodeCbor(field),
    Uint8Array.of(0x9a, entries >>> 24, (entries >>> 16) & 0xff, (entries >>> 8) & 0xff, entries & 0xff),
  )
  parts.push(new Uint8Array(4 * entries).map((_, i) => [0xa1, 0x61, 0x61, 0x00][i % 4]!))
  return Uint8Array.from(Buffer.concat(parts))
}

describe('CBOR nesting (a 4 KB record of nested arrays took 40-70 ms and could reach the stack limit)', () => {
  it(`decodes ${NESTING_DEPTH_MAX} levels and refuses one more, or a hundred thousand`, () => {
    expect(code(() => decodeCbor(nested(NESTING_DEPTH_MAX), 1 << 20))).toBe('ok')
    expect(code(() => decodeCanonicalCbor(nested(NESTING_DEPTH_MAX), 1 << 20))).toBe('ok')
    for (const depth of [NESTING_DEPTH_MAX + 1, 4096, 100_000]) {
      expect(code(() => decodeCbor(nested(depth), 1 << 20))).toBe('malformed')
      expect(code(() => decodeCanonicalCbor(nested(depth), 1 << 20))).toBe('malformed')
    }
  })
})

describe('canonical decoding, checked while decoding (re-encoding made it 3-10 times slower)', () => {
  it('refuses exactly what does not re-encode to itself', () => {
    const refused: [string, Uint8Array][] = [
      [
        'keys out of order',
        encodeMapInOrder([
          ['bb', 1],
          ['a', 2],
        ]),
      ],
      [
        'a text starting with a byte order mark',
        Uint8Array.of(0xa1, 0x61, 0x6b, 0x64, 0xef, 0xbb, 0xbf, 0x78),
      ],
      ['invalid UTF-8', Uint8Array.of(0xa1, 0x61, 0x6b, 0x62, 0x61, 0x80)],
      ['a float', Uint8Array.of(0xa1, 0x61, 0x6b, 0xf9, 0x3e, 0x00)],
      ['an integral float', Uint8Array.of(0xa1, 0x61, 0x6b, 0xf9, 0x3c, 0x00)],
      ['a __proto__ key', encodeMapInOrder([['__proto__', new Uint8Array(1)]])],
    ]
    for (const [what, bytes] of refused) {
      expect(
        code(() => decodeCanonicalCbor(bytes, 1 << 20)),
        what,
      ).toBe('malformed')
    }
    // The lenient decoder reads them: the BOM silently dropped, the bad byte replaced.
    expect(decodeCbor(refused[1]![1], 1 << 20)).toEqual({ k: 'x' })
    const big: Record<string, CborValue> = {}
    for (let i = 0; i < 1_300; i++) big[`k${i}`] = [i, `é${i}`, new Uint8Array(2)]
    const bytes = encodeCbor(big)
    expect(encodeCbor(decodeCanonicalCbor(bytes, 1 << 20) as CborValue)).toEqual(bytes)
  })
})

describe('item bounds on frames (dense frames of their byte limit took 100-390 ms)', () => {
  it('refuses a hello, a reply batch, a member message and a join answer of tiny maps as too large', () => {
    expect(code(() => decodeHello(dense(600_000, 'cert')))).toBe('too-large')
    expect(code(() => decodeReplyBatch(dense(250_000, 'replies')))).toBe('too-large')
    expect(code(() => decodeMemberMessage(dense(250_000, 'u', { t: 3 })))).toBe('too-large')
    expect(decodeJoinAnswer(dense(250_000, 'result'))).toMatchObject({ ok: false, reason: 'too-large' })
    expect(decodeZoneRosterMessage(dense(250_000, 'roster'))).toBeUndefined()
  })
})

describe('CA documents are parsed only once the CA signature holds', () => {
  it('refuses 1 MB of tiny maps without a CA signature as bad-signature, unparsed', () => {
    const body = dense(250_000, 'entries', { issuer: new Uint8Array(32) })
    const forged = encodeCbor({ body, sig: new Uint8Array(64) })
    expect(verifyRevocationList(forged, world.ca.publicKey)).toMatchObject({
      ok: false,
      reason: 'bad-signature',
    })
    expect(verifyZoneRoster(forged, world.ca.publicKey)).toMatchObject({ ok: false, reason: 'bad-signature' })
    // A small document of another mesh is still reported as such.
    const foreign = world.corpus.get('revocation-list')!.at(-1)!.input as Uint8Array
    expect(verifyRevocationList(foreign, world.ca.publicKey)).toMatchObject({
      ok: false,
      reason: 'wrong-issuer',
    })
  })
})

describe('one signed spelling per message', () => {
  it('refuses a request whose filter holds an empty fact list or once: false, though its operator signed it', () => {
    const op = world.byLabel.get('op1')!
    const template = openEnvelope(world.corpus.get('request')![0]!.input as Uint8Array, 1 << 20).body
    for (const filter of [{ facts: [] }, { once: false }, { zone: 'web', once: false }]) {
      const bytes = sealEnvelope(DOMAIN_REQUEST, op.key, {
        ...(template as Record<string, CborValue>),
        filter,
      })
      expect(
        code(() => decodeRequest(bytes)),
        JSON.stringify(filter),
      ).toBe('malformed')
    }
  })

  it("refuses a record whose roles are not in its certificate's order, though its member signed it", () => {
    const hub = world.byLabel.get('hub1')!
    const init = { addrs: [], facts: {}, bootedAtS: 0, incarnation: NOW, left: false }
    const body = openEnvelope(createRecord(hub.key, hub.certificate, init), 1 << 20).body
    expect(body.roles).toEqual(['agent', 'ca'])
    const reordered = sealEnvelope(DOMAIN_MEMBER, hub.key, {
      ...(body as Record<string, CborValue>),
      roles: ['ca', 'agent'],
    })
    expect(verifyRecord(reordered, world.verifier, NOW)).toMatchObject({
      ok: false,
      reason: 'identity-mismatch',
    })
  })
})

describe('error messages (String() of a 1 MB version field took 20 ms)', () => {
  it('describe a large decoded value by its kind, not its content', () => {
    const body = openEnvelope(world.zoneRoster.bytes, 1 << 21).body as Record<string, CborValue>
    const roster = sealEnvelope(DOMAIN_ZONE_ROSTER, world.ca, { ...body, version: new Uint8Array(1 << 20) })
    expect(verifyZoneRoster(roster, world.ca.publicKey)).toMatchObject({
      ok: false,
      reason: 'malformed',
      detail: 'zone roster format version 1048576 bytes is not supported (expected 1)',
    })
  })
})

describe('filter regexes (a cost-256³ regex took 8-12 ms on a 256-character subject)', () => {
  it('refuses the regex the campaign found, and keeps the cheaper ones', () => {
    expect(code(() => parsePattern('/a*[a-z]*b//'))).toBe('unsafe-regex')
    expect(code(() => parsePattern('/a*[a-z]*b/'))).toBe('unsafe-regex')
    expect(code(() => parsePattern('/^a*[a-z]*b/'))).toBe('ok')
  })
})
