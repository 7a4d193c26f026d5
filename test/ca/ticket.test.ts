// Proves join tickets round-trip, that any single-character change to the line or single-byte
// change to its binary form is refused (unreadable, or failing the CA's check), and that checkTicket
// gives the closed reason for other-mesh, forged, expired and reused tickets. The MAC is bound to the
// ticket domain, and version-1 tickets (`mesh1.` lines) are refused as coming from an older mesh.
// Uses fast-check.
import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { fingerprintOf } from '../../src/ca/fingerprint.js'
import {
  BOOTSTRAP_ADDRESSES_MAX,
  checkTicket,
  createTicket,
  parseTicket,
  TICKET_CHARS_MAX,
  TICKET_PREFIX,
  TicketError,
  type TicketFields,
} from '../../src/ca/ticket.js'
import { ROLES, type Role } from '../../src/ca/types.js'
import type { CborValue } from '../../src/wire/cbor.js'
import { DOMAIN_TICKET } from '../../src/wire/domains.js'
import { openMacEnvelope, sealMacEnvelope } from '../../src/wire/envelope.js'
import { legacyMacEnvelope } from '../wire/encodings.js'
import { HOUR_MS, keyFor, secretFor, seededRandomBytes, T0 } from './fixtures.js'

const secret = secretFor('mesh')
const meshFingerprint = fingerprintOf(keyFor('ca').publicKey)
const random = seededRandomBytes('ticket')

function fields(overrides: Partial<TicketFields> = {}): TicketFields {
  return {
    meshFingerprint,
    bootstrap: ['/ip4/127.0.0.1/tcp/4001/p2p/12D3KooWAHoEkEqnKzM5PXFygh2movVBCSX3k8tDsT2cneU68Gyt'],
    name: 'web1',
    zone: 'edge',
    roles: ['agent'],
    expiresAtMs: T0 + 24 * HOUR_MS,
    nonce: random(16),
    ...overrides,
  }
}

const checkOptions = { secret, meshFingerprint, nowMs: T0 }

/** The binary form of a ticket line. */
function bytesOf(text: string): Uint8Array {
  return new Uint8Array(Buffer.from(text.slice(TICKET_PREFIX.length), 'base64url'))
}
const B64URL = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_'

/** True when the CA would refuse `text` (it cannot be read, or fails the check). */
function refused(text: string): boolean {
  try {
    return !checkTicket(parseTicket(text), checkOptions).ok
  } catch (err) {
    expect(err).toBeInstanceOf(TicketError)
    return true
  }
}

describe('ticket', () => {
  it('round-trips any valid fields (property)', () => {
    fc.assert(
      fc.property(
        fc.stringMatching(/^[a-z0-9][a-z0-9.-]{0,63}$/),
        fc.subarray([...ROLES] as Role[], { minLength: 1 }),
        fc.array(fc.stringMatching(/^\/[a-z0-9/.]{0,200}$/), { maxLength: BOOTSTRAP_ADDRESSES_MAX }),
        fc.nat({ max: 2 ** 48 }),
        fc.uint8Array({ minLength: 16, maxLength: 16 }),
        (name, roles, bootstrap, expiresAtMs, nonce) => {
          const text = createTicket(
            secret,
            fields({ name, zone: name, roles, bootstrap, expiresAtMs, nonce }),
          )
          expect(text.startsWith(TICKET_PREFIX)).toBe(true)
          expect(text.length).toBeLessThanOrEqual(TICKET_CHARS_MAX)
          expect(/^[A-Za-z0-9._-]+$/.test(text)).toBe(true)
          const ticket = parseTicket(`  ${text}\n`)
          expect(ticket).toMatchObject({
            name,
            zone: name,
            roles,
            bootstrap,
            expiresAtMs,
            nonce,
            meshFingerprint,
          })
          expect(ticket.text).toBe(text)
          expect(checkTicket(ticket, { ...checkOptions, nowMs: expiresAtMs }).ok).toBe(true)
        },
      ),
      { numRuns: 100 },
    )
  })

  it('any single-character change of the line is refused (every position)', () => {
    const text = createTicket(secret, fields())
    expect(refused(text)).toBe(false)
    for (let position = 0; position < text.length; position++) {
      const original = text[position] ?? ''
      const replacement = B64URL[(B64URL.indexOf(original) + 1 + position) % B64URL.length] ?? '.'
      const altered =
        text.slice(0, position) + (replacement === original ? '.' : replacement) + text.slice(position + 1)
      expect(refused(altered), `position ${position}`).toBe(true)
    }
    expect(refused(text.slice(0, -1))).toBe(true)
    expect(refused(`${text}A`)).toBe(true)
  })

  it('any single-byte change of the binary form is refused (property over positions)', () => {
    const text = createTicket(secret, fields())
    const bytes = Buffer.from(text.slice(TICKET_PREFIX.length), 'base64url')
    fc.assert(
      fc.property(fc.nat({ max: bytes.length - 1 }), fc.integer({ min: 1, max: 255 }), (position, delta) => {
        const altered = Buffer.from(bytes)
        altered[position] = ((altered[position] ?? 0) + delta) & 255
        expect(refused(TICKET_PREFIX + altered.toString('base64url'))).toBe(true)
      }),
      { numRuns: 500 },
    )
  })

  it('checkTicket reasons', () => {
    const ticket = parseTicket(createTicket(secret, fields()))
    const reason = (options: Partial<Parameters<typeof checkTicket>[1]>) => {
      const verdict = checkTicket(ticket, { ...checkOptions, ...options })
      return verdict.ok ? 'ok' : verdict.reason
    }
    expect(reason({})).toBe('ok')
    expect(reason({ nowMs: ticket.expiresAtMs })).toBe('ok')
    expect(reason({ nowMs: ticket.expiresAtMs + 1 })).toBe('expired')
    expect(reason({ secret: secretFor('other') })).toBe('bad-mac')
    expect(reason({ meshFingerprint: fingerprintOf(keyFor('other-ca').publicKey) })).toBe('wrong-mesh')
    expect(reason({ isNonceUsed: nonce => nonce === ticket.nonceHex })).toBe('reused')
    expect(reason({ isNonceUsed: () => false })).toBe('ok')
  })

  it('a ticket made with another secret for our fingerprint is bad-mac', () => {
    const forged = parseTicket(createTicket(secretFor('attacker'), fields({ roles: ['ca'] })))
    const verdict = checkTicket(forged, checkOptions)
    expect(verdict.ok ? 'ok' : verdict.reason).toBe('bad-mac')
  })

  it('parseTicket: typed errors for bad lines', () => {
    const code = (text: string) => {
      try {
        parseTicket(text)
        return 'ok'
      } catch (err) {
        return err instanceof TicketError ? err.code : 'crash'
      }
    }
    expect(code('')).toBe('malformed')
    expect(TICKET_PREFIX).toBe('mesh2.')
    expect(code('mesh2.')).toBe('malformed')
    expect(code('mesh3.AAAA')).toBe('malformed')
    expect(code('mesh2.!!!!')).toBe('malformed')
    expect(code(`mesh2.${'A'.repeat(TICKET_CHARS_MAX)}`)).toBe('too-large')
  })

  it('the MAC covers the ticket domain: the same secret over the bare body is bad-mac', () => {
    const { body } = openMacEnvelope(bytesOf(createTicket(secret, fields())), 4096)
    const line = (bytes: Uint8Array) => TICKET_PREFIX + Buffer.from(bytes).toString('base64url')
    const reason = (bytes: Uint8Array) => {
      const verdict = checkTicket(parseTicket(line(bytes)), checkOptions)
      return verdict.ok ? 'ok' : verdict.reason
    }
    expect(reason(sealMacEnvelope(DOMAIN_TICKET, secret, body as CborValue))).toBe('ok')
    expect(reason(legacyMacEnvelope(secret, body as CborValue))).toBe('bad-mac')
  })

  it('refuses a version-1 ticket as coming from an older mesh', () => {
    const { body } = openMacEnvelope(bytesOf(createTicket(secret, fields())), 4096)
    const old = legacyMacEnvelope(secret, { ...body, version: 1 } as CborValue)
    const message = (text: string) => {
      try {
        parseTicket(text)
        return 'ok'
      } catch (err) {
        return err instanceof TicketError ? `${err.code}: ${err.message}` : 'crash'
      }
    }
    const older = /^malformed: .*ticket format version 1 is from an older mesh; create a new ticket/
    // As an older mesh wrote it (`mesh1.` line), and with the body version alone left at 1.
    expect(message(`mesh1.${Buffer.from(old).toString('base64url')}`)).toMatch(older)
    expect(message(TICKET_PREFIX + Buffer.from(old).toString('base64url'))).toMatch(older)
  })

  it('createTicket refuses invalid fields', () => {
    expect(() => createTicket(secret, fields({ name: 'a b' }))).toThrow(TicketError)
    expect(() => createTicket(secret, fields({ roles: [] }))).toThrow(TicketError)
    expect(() => createTicket(secret, fields({ nonce: new Uint8Array(3) }))).toThrow(TicketError)
    expect(() => createTicket(secret, fields({ bootstrap: ['not-an-address'] }))).toThrow(TicketError)
    expect(() =>
      createTicket(secret, fields({ bootstrap: Array(BOOTSTRAP_ADDRESSES_MAX + 1).fill('/ip4/1.2.3.4') })),
    ).toThrow(TicketError)
    expect(() => createTicket(new Uint8Array(8), fields())).toThrow(TypeError)
  })
})
