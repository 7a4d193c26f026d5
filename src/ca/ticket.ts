/**
 * Join tickets: one copy-pastable line that is enough to join a mesh.
 *
 * Text form: `mesh2.` + base64url (no padding) of the MACed envelope of src/wire/envelope.ts,
 * `{ body, mac }`, where `mac` is HMAC-SHA-256 keyed by the mesh's ticket secret (held by the CA) over
 * {@link DOMAIN_TICKET} and the body. The digit in the prefix and the body's `version` are both
 * {@link TICKET_VERSION}; a `mesh1.` line is refused as coming from an older mesh.
 * The joiner reads a ticket without the secret ({@link parseTicket}) to learn where to dial and which
 * CA fingerprint to demand; only the CA can tell whether it is genuine ({@link checkTicket}). The
 * base64url is parsed strictly (canonical spelling only), so every change to the line is either
 * unreadable or fails the MAC.
 */
import { DecodeError } from '../wire/cbor.js'
import { DOMAIN_TICKET } from '../wire/domains.js'
import { openMacEnvelope, sealMacEnvelope, verifyMacEnvelope } from '../wire/envelope.js'
import {
  isValidName,
  readArray,
  readBytes,
  readFormatVersion,
  readInteger,
  readName,
  readRecord,
  tryRead,
} from '../wire/fields.js'
import { bytesEqual, toHex } from '../wire/hash.js'
import { FINGERPRINT_BYTES } from './fingerprint.js'
import { canonicalRoles, readRoles } from './roles.js'
import type { Role } from './types.js'

/** Format version of tickets; version 1 (MACed without a domain) is refused. */
export const TICKET_VERSION = 2
/** Start of every ticket line; the digit is {@link TICKET_VERSION}. */
export const TICKET_PREFIX = `mesh${TICKET_VERSION}.`
/** Largest decoded ticket, in bytes (one with eight long addresses is about 1.3 KiB). */
export const TICKET_BYTES_MAX = 2048
/** Largest ticket line, in characters, implied by {@link TICKET_BYTES_MAX}. */
export const TICKET_CHARS_MAX = TICKET_PREFIX.length + Math.ceil((TICKET_BYTES_MAX * 4) / 3)
/** Nonce size in bytes. */
export const TICKET_NONCE_BYTES = 16
/** Ticket secret size in bytes. */
export const TICKET_SECRET_BYTES = 32
/** Most bootstrap addresses in one ticket. */
export const BOOTSTRAP_ADDRESSES_MAX = 8
/** Longest bootstrap multiaddr, in characters. */
export const MULTIADDR_CHARS_MAX = 256

const OLDER_TICKET_REMEDY = 'create a new ticket with mesh ticket create on the CA node'
/** A ticket line of any version: `mesh<digits>.`. */
const ANY_VERSION_PREFIX = /^mesh(\d+)\./
const FIELD_KEYS = ['version', 'mesh', 'bootstrap', 'name', 'zone', 'roles', 'expiresAtMs', 'nonce'] as const
const BASE64URL_PATTERN = /^[A-Za-z0-9_-]*$/

/** What a ticket grants and where to go with it. */
export interface TicketFields {
  /** SHA-256 of the CA public key (32 bytes): the joiner refuses a mesh that cannot prove it. */
  readonly meshFingerprint: Uint8Array
  /** Multiaddrs of the issuing node, as text (not parsed here). */
  readonly bootstrap: readonly string[]
  /** The name, zone and roles the certificate will carry, whatever the joiner asks for. */
  readonly name: string
  readonly zone: string
  readonly roles: readonly Role[]
  /** Last moment the CA accepts the ticket, ms since the epoch (CA clock). */
  readonly expiresAtMs: number
  /** 16 random bytes; the CA records it when the ticket is used. */
  readonly nonce: Uint8Array
}

/** A parsed ticket: its fields plus what {@link checkTicket} needs. */
export interface Ticket extends TicketFields {
  /** The line exactly as parsed. */
  readonly text: string
  /** The authenticated body bytes and their MAC (over the ticket domain and the body). */
  readonly body: Uint8Array
  readonly mac: Uint8Array
  /** The nonce as lower-case hex: the key of the CA's used-nonce record. */
  readonly nonceHex: string
}

/** Why a ticket line could not be read. */
export class TicketError extends Error {
  override name = 'TicketError'
  readonly code: 'malformed' | 'too-large'
  constructor(code: 'malformed' | 'too-large', message: string) {
    super(message)
    this.code = code
  }
}

/** Why the CA refuses a readable ticket. A closed set. */
export type TicketRejection = 'wrong-mesh' | 'bad-mac' | 'expired' | 'reused'

/** Result of {@link checkTicket}. */
export type TicketVerdict =
  | { readonly ok: true }
  | { readonly ok: false; readonly reason: TicketRejection; readonly detail: string }

/** Inputs of {@link checkTicket}. */
export interface TicketCheckOptions {
  /** The mesh's 32-byte ticket secret. */
  readonly secret: Uint8Array
  /** This mesh's fingerprint. */
  readonly meshFingerprint: Uint8Array
  readonly nowMs: number
  /** True when the nonce (hex) was already used. Absent: reuse is not checked. */
  readonly isNonceUsed?: (nonceHex: string) => boolean
}

/**
 * Builds the ticket line. Throws on invalid fields (operator input is validated before this).
 * @throws TicketError code `malformed` for invalid fields, `too-large` when over {@link TICKET_BYTES_MAX}
 */
export function createTicket(secret: Uint8Array, fields: TicketFields): string {
  if (secret.byteLength !== TICKET_SECRET_BYTES) throw new TypeError('ticket secret must be 32 bytes')
  const roles = canonicalRoles(fields.roles)
  const problem = fieldProblem(fields, roles)
  if (problem !== undefined) throw new TicketError('malformed', problem)
  const bytes = sealMacEnvelope(DOMAIN_TICKET, secret, {
    version: TICKET_VERSION,
    mesh: fields.meshFingerprint,
    bootstrap: [...fields.bootstrap],
    name: fields.name,
    zone: fields.zone,
    roles: [...roles],
    expiresAtMs: fields.expiresAtMs,
    nonce: fields.nonce,
  })
  if (bytes.byteLength > TICKET_BYTES_MAX) {
    throw new TicketError('too-large', `ticket is ${bytes.byteLength} bytes, limit ${TICKET_BYTES_MAX}`)
  }
  return TICKET_PREFIX + Buffer.from(bytes).toString('base64url')
}

function fieldProblem(fields: TicketFields, roles: readonly Role[]): string | undefined {
  if (fields.meshFingerprint.byteLength !== FINGERPRINT_BYTES) return 'mesh fingerprint must be 32 bytes'
  if (fields.nonce.byteLength !== TICKET_NONCE_BYTES) return 'nonce must be 16 bytes'
  if (!isValidName(fields.name)) return `invalid name ${JSON.stringify(fields.name)}`
  if (!isValidName(fields.zone)) return `invalid zone ${JSON.stringify(fields.zone)}`
  if (roles.length === 0) return 'a ticket grants at least one role'
  if (!Number.isSafeInteger(fields.expiresAtMs) || fields.expiresAtMs < 0)
    return 'expiresAtMs must be an integer'
  if (fields.bootstrap.length > BOOTSTRAP_ADDRESSES_MAX)
    return `more than ${BOOTSTRAP_ADDRESSES_MAX} addresses`
  if (fields.bootstrap.some(address => !isAddressText(address)))
    return 'a bootstrap address is not a multiaddr'
  return undefined
}

function isAddressText(address: string): boolean {
  return address.startsWith('/') && address.length <= MULTIADDR_CHARS_MAX
}

/**
 * Reads a ticket line (blanks around it are ignored). Needs no secret: it does not prove the ticket
 * genuine, only readable.
 * @throws TicketError
 */
export function parseTicket(text: string): Ticket {
  const line = text.trim()
  if (line.length > TICKET_CHARS_MAX) {
    throw new TicketError('too-large', `ticket is ${line.length} characters, limit ${TICKET_CHARS_MAX}`)
  }
  if (!line.startsWith(TICKET_PREFIX)) {
    const version = ANY_VERSION_PREFIX.exec(line)?.[1]
    if (version !== undefined && Number(version) < TICKET_VERSION) {
      throw new TicketError(
        'malformed',
        `ticket format version ${version} is from an older mesh; ${OLDER_TICKET_REMEDY}`,
      )
    }
    throw new TicketError('malformed', `a ticket starts with '${TICKET_PREFIX}'`)
  }
  const encoded = line.slice(TICKET_PREFIX.length)
  const bytes = Buffer.from(encoded, 'base64url')
  // Buffer skips stray characters and ignores spare bits: insist on the one canonical spelling.
  if (!BASE64URL_PATTERN.test(encoded) || bytes.toString('base64url') !== encoded) {
    throw new TicketError('malformed', 'ticket is not canonical base64url (was it cut or altered?)')
  }
  const read = tryRead(() => {
    const envelope = openMacEnvelope(new Uint8Array(bytes), TICKET_BYTES_MAX)
    return { envelope, fields: readTicketFields(envelope.body) }
  })
  if (!read.ok) throw new TicketError(read.reason, `unreadable ticket: ${read.detail}`)
  const { envelope, fields } = read.value
  return {
    ...fields,
    text: line,
    body: envelope.bodyBytes,
    mac: envelope.mac,
    nonceHex: toHex(fields.nonce),
  }
}

function readTicketFields(content: unknown): TicketFields {
  const record = readRecord(content, 'ticket', FIELD_KEYS)
  readFormatVersion(record, 'ticket', TICKET_VERSION, OLDER_TICKET_REMEDY)
  const bootstrap = readArray(record, 'bootstrap', BOOTSTRAP_ADDRESSES_MAX, item => {
    if (typeof item !== 'string' || !isAddressText(item))
      throw new DecodeError('malformed', 'bootstrap holds a non-address')
    return item
  })
  return {
    meshFingerprint: readBytes(record, 'mesh', { length: FINGERPRINT_BYTES }),
    bootstrap,
    name: readName(record, 'name'),
    zone: readName(record, 'zone'),
    roles: readRoles(record, 'roles'),
    expiresAtMs: readInteger(record, 'expiresAtMs'),
    nonce: readBytes(record, 'nonce', { length: TICKET_NONCE_BYTES }),
  }
}

/**
 * The CA's check: this mesh, genuine, not expired, not used. In that order, so a ticket of another
 * mesh says so rather than "bad MAC". Does not record the nonce: the issuer does, durably.
 */
export function checkTicket(ticket: Ticket, options: TicketCheckOptions): TicketVerdict {
  if (!bytesEqual(ticket.meshFingerprint, options.meshFingerprint)) {
    return { ok: false, reason: 'wrong-mesh', detail: 'ticket was issued by another mesh' }
  }
  if (!verifyMacEnvelope(DOMAIN_TICKET, options.secret, { bodyBytes: ticket.body, mac: ticket.mac })) {
    return { ok: false, reason: 'bad-mac', detail: 'ticket authenticator does not match (altered or forged)' }
  }
  if (options.nowMs > ticket.expiresAtMs) {
    return { ok: false, reason: 'expired', detail: `ticket expired at ${ticket.expiresAtMs}` }
  }
  if (options.isNonceUsed?.(ticket.nonceHex) === true) {
    return { ok: false, reason: 'reused', detail: 'ticket was already used' }
  }
  return { ok: true }
}
