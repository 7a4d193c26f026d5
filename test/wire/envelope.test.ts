// Proves the one envelope of src/wire: sealed envelopes open and verify; the authenticator covers
// the domain (a signature or MAC under one domain, or over the bare body, never verifies under
// another); opening refuses an outer map or body that is not byte-identical to its deterministic
// encoding (keys out of canonical order) while the canonical spelling of the same content opens; and
// the domain table is the single, well-formed owner of every domain string in src.
import { readdirSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { DecodeError, encodeCbor } from '../../src/wire/cbor.js'
import {
  DOMAIN_CERTIFICATE,
  DOMAIN_REPLY,
  DOMAIN_REQUEST,
  DOMAIN_TICKET,
  MAC_DOMAINS,
  SIGNATURE_DOMAINS,
} from '../../src/wire/domains.js'
import { signBytes, signingKeyFromSeed } from '../../src/wire/ed25519.js'
import {
  authenticatedMessage,
  openEnvelope,
  openMacEnvelope,
  sealEnvelope,
  sealMacEnvelope,
  verifyEnvelope,
  verifyMacEnvelope,
} from '../../src/wire/envelope.js'
import { hash, mac } from '../../src/wire/hash.js'
import { encodeMapInOrder, legacyMacEnvelope, legacySignedEnvelope } from './encodings.js'

const key = signingKeyFromSeed(hash(new TextEncoder().encode('wire/key')))
const secret = hash(new TextEncoder().encode('wire/secret'))
const content = { v: 1, name: 'web1', zone: 'core', sentAtMs: 1234, data: new Uint8Array([1, 2, 3]) }
const BYTES_MAX = 4096

function openError(open: () => unknown): string {
  try {
    open()
    return 'ok'
  } catch (err) {
    if (err instanceof DecodeError) return err.code
    throw err
  }
}

describe('signed envelope', () => {
  it('seals, opens and verifies under its domain only', () => {
    const bytes = sealEnvelope(DOMAIN_REQUEST, key, content)
    const opened = openEnvelope(bytes, BYTES_MAX)
    expect(opened.body).toEqual(content)
    expect(verifyEnvelope(DOMAIN_REQUEST, key.publicKey, opened)).toBe(true)
    for (const other of SIGNATURE_DOMAINS.filter(domain => domain !== DOMAIN_REQUEST)) {
      expect(verifyEnvelope(other, key.publicKey, opened)).toBe(false)
    }
    // The version-1 CA rule (signature over the bare body) verifies under no domain.
    const bare = openEnvelope(legacySignedEnvelope(key, content), BYTES_MAX)
    for (const domain of SIGNATURE_DOMAINS) expect(verifyEnvelope(domain, key.publicKey, bare)).toBe(false)
  })

  it('signs exactly domain || 0x00 || body', () => {
    const opened = openEnvelope(sealEnvelope(DOMAIN_REPLY, key, content), BYTES_MAX)
    const message = authenticatedMessage(DOMAIN_REPLY, opened.bodyBytes)
    expect(Buffer.from(message).toString('latin1')).toBe(
      `${DOMAIN_REPLY}\0${Buffer.from(opened.bodyBytes).toString('latin1')}`,
    )
    expect(opened.sig).toEqual(signBytes(key, message))
  })

  it('refuses an outer map whose keys are not in canonical order', () => {
    const bytes = sealEnvelope(DOMAIN_CERTIFICATE, key, content)
    const { bodyBytes, sig } = openEnvelope(bytes, BYTES_MAX)
    // Canonical order is length-first: `sig` before `body`.
    expect(
      encodeMapInOrder([
        ['sig', sig],
        ['body', bodyBytes],
      ]),
    ).toEqual(bytes)
    const reordered = encodeMapInOrder([
      ['body', bodyBytes],
      ['sig', sig],
    ])
    expect(openError(() => openEnvelope(reordered, BYTES_MAX))).toBe('malformed')
  })

  it('refuses a body whose keys are not in canonical order, even when correctly signed', () => {
    const canonical = encodeCbor(content)
    const reversed = encodeMapInOrder(Object.entries(content).reverse())
    expect(reversed).not.toEqual(canonical)
    const seal = (body: Uint8Array) =>
      encodeCbor({ body, sig: signBytes(key, authenticatedMessage(DOMAIN_REQUEST, body)) })
    const good = openEnvelope(seal(canonical), BYTES_MAX)
    expect(verifyEnvelope(DOMAIN_REQUEST, key.publicKey, good)).toBe(true)
    expect(openError(() => openEnvelope(seal(reversed), BYTES_MAX))).toBe('malformed')
  })

  it('refuses other shapes with typed errors', () => {
    const sig = new Uint8Array(64)
    const body = encodeCbor(content)
    expect(openError(() => openEnvelope(new Uint8Array(BYTES_MAX + 1), BYTES_MAX))).toBe('too-large')
    expect(openError(() => openEnvelope(encodeCbor({ body, sig: new Uint8Array(63) }), BYTES_MAX))).toBe(
      'malformed',
    )
    expect(openError(() => openEnvelope(encodeCbor({ body, sig, x: 1 }), BYTES_MAX))).toBe('malformed')
    expect(openError(() => openEnvelope(encodeCbor({ body, mac: sig }), BYTES_MAX))).toBe('malformed')
    expect(openError(() => openEnvelope(encodeCbor({ body: encodeCbor([1]), sig }), BYTES_MAX))).toBe(
      'malformed',
    )
    expect(openError(() => openEnvelope(encodeCbor({ body: Uint8Array.of(0xff), sig }), BYTES_MAX))).toBe(
      'malformed',
    )
  })

  it('never throws anything but DecodeError on random bytes (property)', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 300 }), bytes => {
        expect(['malformed', 'too-large', 'ok']).toContain(openError(() => openEnvelope(bytes, BYTES_MAX)))
        expect(['malformed', 'too-large', 'ok']).toContain(openError(() => openMacEnvelope(bytes, BYTES_MAX)))
      }),
      { numRuns: 300 },
    )
  })
})

describe('MACed envelope', () => {
  it('seals, opens and checks under the ticket domain, not over the bare body', () => {
    const bytes = sealMacEnvelope(DOMAIN_TICKET, secret, content)
    const opened = openMacEnvelope(bytes, BYTES_MAX)
    expect(opened.body).toEqual(content)
    expect(opened.mac).toEqual(mac(secret, authenticatedMessage(DOMAIN_TICKET, opened.bodyBytes)))
    expect(verifyMacEnvelope(DOMAIN_TICKET, secret, opened)).toBe(true)
    expect(verifyMacEnvelope(DOMAIN_TICKET, hash(secret), opened)).toBe(false)
    const bare = openMacEnvelope(legacyMacEnvelope(secret, content), BYTES_MAX)
    expect(verifyMacEnvelope(DOMAIN_TICKET, secret, bare)).toBe(false)
    // A signed envelope is not a MACed one, and the other way round.
    expect(openError(() => openEnvelope(bytes, BYTES_MAX))).toBe('malformed')
    expect(openError(() => openMacEnvelope(sealEnvelope(DOMAIN_REQUEST, key, content), BYTES_MAX))).toBe(
      'malformed',
    )
  })

  it('refuses an outer map whose keys are not in canonical order', () => {
    const { bodyBytes, mac: tag } = openMacEnvelope(
      sealMacEnvelope(DOMAIN_TICKET, secret, content),
      BYTES_MAX,
    )
    const reordered = encodeMapInOrder([
      ['body', bodyBytes],
      ['mac', tag],
    ])
    expect(openError(() => openMacEnvelope(reordered, BYTES_MAX))).toBe('malformed')
  })
})

describe('domain table', () => {
  const domains: readonly string[] = [...SIGNATURE_DOMAINS, ...MAC_DOMAINS]

  it('lists distinct, NUL-free domains of the form mesh/<kind>/v<n>', () => {
    expect(new Set(domains).size).toBe(domains.length)
    for (const domain of domains) expect(domain).toMatch(/^mesh\/[a-z-]+\/v[0-9]+$/)
  })

  it('is the only place in src that spells a domain string', () => {
    const files = (dir: string): string[] =>
      readdirSync(dir, { withFileTypes: true }).flatMap(entry =>
        entry.isDirectory() ? files(join(dir, entry.name)) : [join(dir, entry.name)],
      )
    const owner = join('src', 'wire', 'domains.ts')
    // The pubsub topic names in src/node/host.ts are not domains; the presence topic happens to be
    // spelled like the presence domain.
    const topics = join('src', 'node', 'host.ts')
    const spelled = files('src')
      .filter(file => file.endsWith('.ts') && file !== owner && file !== topics)
      .filter(file => domains.some(domain => readFileSync(file, 'utf8').includes(domain)))
    expect(spelled).toEqual([])
  })
})
