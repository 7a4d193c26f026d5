/**
 * The CA's durable state: everything the issuer must remember across restarts, as plain
 * CBOR-encodable data. The driver writes `encodeIssuerState(state)` atomically on every `persist`
 * effect and passes `decodeIssuerState(bytes)` back to `createIssuer` on start.
 * Secrets (CA key, ticket secret) are not part of it; they live in their own files (key-file.ts).
 */

import { DecodeError, decodeCbor, encodeCbor } from '../wire/cbor.js'
import { PUBLIC_KEY_BYTES } from '../wire/ed25519.js'
import {
  readArray,
  readBytes,
  readConstant,
  readInteger,
  readName,
  readRecord,
  readText,
  tryRead,
} from '../wire/fields.js'
import { isSerial } from './certificate.js'
import { REVOCATION_ENTRIES_MAX, type RevocationEntry } from './revocation.js'
import { readRoles } from './roles.js'
import type { Role } from './types.js'
import {
  readZonePriors,
  readZoneRosterMembers,
  ZONE_ROSTER_VERSION_MAX,
  type ZonePrior,
  type ZoneRosterMember,
} from './zone-roster.js'

/** Ceilings of the issuer's tables; configured limits may be lower, never higher. */
export const ISSUED_ENTRIES_MAX = 16_384
export const USED_NONCES_MAX = 16_384
export const PENDING_REQUESTS_MAX = 1024
/** Longest `origin` of a request record, in characters (`ip:` + an IPv6 address, a peer id, a name). */
export const REQUEST_ORIGIN_CHARS_MAX = 160
/** Largest state file accepted, in bytes: every table full fits with room to spare. */
export const ISSUER_STATE_BYTES_MAX = 16 * 1024 * 1024

const SERIAL_CHARS = 32
const NONCE_HEX_CHARS = 32
const REQUEST_ID_CHARS_MAX = 16
const PEER_ID_CHARS_MAX = 128

/** A certificate the CA issued and that has not expired yet; enough to re-create its exact bytes. */
export interface IssuedRecord {
  readonly serial: string
  readonly name: string
  readonly zone: string
  readonly roles: readonly Role[]
  readonly publicKey: Uint8Array
  readonly notBeforeMs: number
  readonly notAfterMs: number
  /** Serial of the certificate this one renewed, if it was a renewal. */
  readonly renewalOf?: string
}

/** A ticket nonce that was used, kept until the ticket would be refused as expired anyway. */
export interface UsedNonceRecord {
  /** The nonce as lower-case hex. */
  readonly nonce: string
  /** Ticket expiry plus the clock-skew budget: after it the record is dropped. */
  readonly expiresAtMs: number
  /** Key that used it and the certificate it got, so a retry after a lost reply gets the same answer. */
  readonly publicKey: Uint8Array
  readonly serial: string
}

/** Where a request without ticket stands. */
export type RequestStatus = 'pending' | 'signed' | 'rejected'

/** A request without ticket: waiting for the operator, or decided and kept for the joiner's poll. */
export interface RequestRecord {
  /** Short id the operator types (`mesh ca sign ID`). */
  readonly id: string
  readonly status: RequestStatus
  readonly publicKey: Uint8Array
  readonly peerId: string
  readonly name: string
  readonly zone: string
  readonly requestedAtMs: number
  /** When the record is dropped: pending expiry, or end of the pick-up window once decided. */
  readonly expiresAtMs: number
  /** Serial of the issued certificate, when signed. */
  readonly serial?: string
  /**
   * Who asked (the issuer's `signing-request` origin), for the per-origin bound and bulk rejection.
   * Optional so states written before it existed still decode (same format version).
   */
  readonly origin?: string
}

/**
 * The current zone roster (src/ca/zone-roster.ts), without its signature: the issuer signs it again on
 * start (ed25519 is deterministic, so the bytes are the same). Members are sorted by
 * peer id, as in the signed form.
 */
export interface IssuerRosterState {
  readonly rosterVersion: number
  readonly issuedAtMs: number
  readonly members: readonly ZoneRosterMember[]
  readonly priors: readonly ZonePrior[]
}

/** Everything the issuer persists. */
export interface IssuerState {
  readonly version: 1
  readonly revocation: {
    readonly listVersion: number
    readonly issuedAtMs: number
    readonly entries: readonly RevocationEntry[]
  }
  readonly issued: readonly IssuedRecord[]
  readonly usedNonces: readonly UsedNonceRecord[]
  readonly requests: readonly RequestRecord[]
  /**
   * The current zone roster. Optional so states written before rosters existed still decode (same
   * format version); the issuer then derives the roster from `issued` when it starts.
   */
  readonly roster?: IssuerRosterState
}

/** The state of a CA that has issued nothing. */
export function emptyIssuerState(): IssuerState {
  return {
    version: 1,
    revocation: { listVersion: 0, issuedAtMs: 0, entries: [] },
    issued: [],
    usedNonces: [],
    requests: [],
  }
}

/** Raised by {@link decodeIssuerState}. */
export class IssuerStateError extends Error {
  override name = 'IssuerStateError'
  readonly code: 'too-large' | 'malformed'
  constructor(code: 'too-large' | 'malformed', message: string) {
    super(message)
    this.code = code
  }
}

/** Encodes the state (deterministic CBOR). */
export function encodeIssuerState(state: IssuerState): Uint8Array {
  return encodeCbor({
    version: 1,
    revocation: { ...state.revocation, entries: state.revocation.entries.map(entry => ({ ...entry })) },
    issued: state.issued.map(record => ({ ...record, roles: [...record.roles] })),
    usedNonces: state.usedNonces.map(record => ({ ...record })),
    requests: state.requests.map(record => ({ ...record })),
    ...(state.roster !== undefined
      ? {
          roster: {
            rosterVersion: state.roster.rosterVersion,
            issuedAtMs: state.roster.issuedAtMs,
            members: state.roster.members.map(m => ({ peerId: m.peerId, zone: m.zone, since: m.since })),
            priors: state.roster.priors.map(p => ({ zone: p.zone, voters: [...p.voters], since: p.since })),
          },
        }
      : {}),
  })
}

/**
 * Decodes a state file.
 * @throws IssuerStateError
 */
export function decodeIssuerState(bytes: Uint8Array): IssuerState {
  let content: unknown
  try {
    content = decodeCbor(bytes, ISSUER_STATE_BYTES_MAX)
  } catch (err) {
    if (err instanceof DecodeError) throw new IssuerStateError(err.code, `issuer state: ${err.message}`)
    throw err
  }
  const read = tryRead(() => readState(content))
  if (!read.ok) throw new IssuerStateError('malformed', `issuer state: ${read.detail}`)
  return read.value
}

function readSerial(record: Record<string, unknown>, key: string): string {
  const serial = readText(record, key, SERIAL_CHARS)
  if (!isSerial(serial)) throw new DecodeError('malformed', `${key} is not a serial`)
  return serial
}

function readState(content: unknown): IssuerState {
  const record = readRecord(
    content,
    'state',
    ['version', 'revocation', 'issued', 'usedNonces', 'requests'],
    ['roster'],
  )
  readConstant(record, 'version', 1)
  const revocation = readRecord(record.revocation, 'revocation', ['listVersion', 'issuedAtMs', 'entries'])
  return {
    version: 1,
    revocation: {
      listVersion: readInteger(revocation, 'listVersion'),
      issuedAtMs: readInteger(revocation, 'issuedAtMs'),
      entries: readArray(revocation, 'entries', REVOCATION_ENTRIES_MAX, item => {
        const entry = readRecord(item, 'entry', ['serial', 'name', 'peerId', 'revokedAtMs', 'notAfterMs'])
        return {
          serial: readSerial(entry, 'serial'),
          name: readName(entry, 'name'),
          peerId: readText(entry, 'peerId', PEER_ID_CHARS_MAX),
          revokedAtMs: readInteger(entry, 'revokedAtMs'),
          notAfterMs: readInteger(entry, 'notAfterMs'),
        }
      }),
    },
    issued: readArray(record, 'issued', ISSUED_ENTRIES_MAX, item => {
      const issued = readRecord(
        item,
        'issued',
        ['serial', 'name', 'zone', 'roles', 'publicKey', 'notBeforeMs', 'notAfterMs'],
        ['renewalOf'],
      )
      return {
        serial: readSerial(issued, 'serial'),
        name: readName(issued, 'name'),
        zone: readName(issued, 'zone'),
        roles: readRoles(issued, 'roles'),
        publicKey: readBytes(issued, 'publicKey', { length: PUBLIC_KEY_BYTES }),
        notBeforeMs: readInteger(issued, 'notBeforeMs'),
        notAfterMs: readInteger(issued, 'notAfterMs'),
        ...(Object.hasOwn(issued, 'renewalOf') ? { renewalOf: readSerial(issued, 'renewalOf') } : {}),
      }
    }),
    usedNonces: readArray(record, 'usedNonces', USED_NONCES_MAX, item => {
      const used = readRecord(item, 'used nonce', ['nonce', 'expiresAtMs', 'publicKey', 'serial'])
      const nonce = readText(used, 'nonce', NONCE_HEX_CHARS)
      if (!/^[0-9a-f]{32}$/.test(nonce)) throw new DecodeError('malformed', 'nonce is not 32 hex characters')
      return {
        nonce,
        expiresAtMs: readInteger(used, 'expiresAtMs'),
        publicKey: readBytes(used, 'publicKey', { length: PUBLIC_KEY_BYTES }),
        serial: readSerial(used, 'serial'),
      }
    }),
    requests: readArray(record, 'requests', PENDING_REQUESTS_MAX, item => {
      const request = readRecord(
        item,
        'request',
        ['id', 'status', 'publicKey', 'peerId', 'name', 'zone', 'requestedAtMs', 'expiresAtMs'],
        ['serial', 'origin'],
      )
      const status = readText(request, 'status', 16)
      if (status !== 'pending' && status !== 'signed' && status !== 'rejected') {
        throw new DecodeError('malformed', 'request status is unknown')
      }
      const serial = Object.hasOwn(request, 'serial') ? readSerial(request, 'serial') : undefined
      if ((status === 'signed') !== (serial !== undefined))
        throw new DecodeError('malformed', 'serial iff signed')
      return {
        id: readText(request, 'id', REQUEST_ID_CHARS_MAX),
        status,
        publicKey: readBytes(request, 'publicKey', { length: PUBLIC_KEY_BYTES }),
        peerId: readText(request, 'peerId', PEER_ID_CHARS_MAX),
        name: readName(request, 'name'),
        zone: readName(request, 'zone'),
        requestedAtMs: readInteger(request, 'requestedAtMs'),
        expiresAtMs: readInteger(request, 'expiresAtMs'),
        ...(serial !== undefined ? { serial } : {}),
        ...(Object.hasOwn(request, 'origin')
          ? { origin: readText(request, 'origin', REQUEST_ORIGIN_CHARS_MAX) }
          : {}),
      }
    }),
    ...(Object.hasOwn(record, 'roster') ? { roster: readRosterState(record.roster) } : {}),
  }
}

function readRosterState(content: unknown): IssuerRosterState {
  const roster = readRecord(content, 'roster', ['rosterVersion', 'issuedAtMs', 'members', 'priors'])
  const rosterVersion = readInteger(roster, 'rosterVersion', { max: ZONE_ROSTER_VERSION_MAX })
  return {
    rosterVersion,
    issuedAtMs: readInteger(roster, 'issuedAtMs'),
    members: readZoneRosterMembers(roster, rosterVersion),
    priors: readZonePriors(roster, rosterVersion),
  }
}
