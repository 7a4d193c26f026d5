/**
 * Signing requests (CSRs): a node asking the CA for a certificate, signed with the key to be
 * certified (proof of possession: nobody can get a certificate for a key they do not hold).
 *
 * Wire form: the signed envelope of src/wire/envelope.ts, `{ body, sig }`, signed by the requester's
 * own key under {@link DOMAIN_SIGNING_REQUEST}; the body's `version` is {@link SIGNING_REQUEST_VERSION}.
 * Three kinds, told apart by what they carry:
 * - with `ticket`: admission by ticket; the requested name and zone are ignored;
 * - with `certificate`: renewal, authenticated by the still-valid certificate of the same key;
 * - with neither: a request that waits for an operator (`mesh ca sign`), using `name` and `zone`.
 */

import { DecodeError } from '../wire/cbor.js'
import { DOMAIN_SIGNING_REQUEST } from '../wire/domains.js'
import { PUBLIC_KEY_BYTES, type SigningKey } from '../wire/ed25519.js'
import { openEnvelope, sealEnvelope, verifyEnvelope } from '../wire/envelope.js'
import {
  isValidName,
  readBytes,
  readFormatVersion,
  readInteger,
  readName,
  readOptionalBytes,
  readOptionalText,
  readRecord,
  readText,
  tryRead,
} from '../wire/fields.js'
import { hash } from '../wire/hash.js'
import { CERTIFICATE_BYTES_MAX } from './certificate.js'
import { peerIdOfPublicKey } from './identity.js'
import { TICKET_CHARS_MAX } from './ticket.js'

/** Format version of signing requests; version 1 (signed without a domain) is refused. */
export const SIGNING_REQUEST_VERSION = 2
/** Largest encoded signing request, in bytes (room for a full ticket and a full certificate). */
export const SIGNING_REQUEST_BYTES_MAX = 6144
/** Nonce size in bytes. */
export const SIGNING_REQUEST_NONCE_BYTES = 16

const PEER_ID_CHARS_MAX = 128
const REQUIRED_KEYS = ['version', 'publicKey', 'peerId', 'createdAtMs', 'nonce'] as const
const OPTIONAL_KEYS = ['name', 'zone', 'ticket', 'certificate'] as const

/** What the requester fills in; the key and PeerId come from the signing key. */
export interface SigningRequestFields {
  /** Wished name and zone; only used for requests without a ticket or certificate. */
  readonly name?: string
  readonly zone?: string
  /** A ticket line (`mesh2.…`), for admission by ticket. */
  readonly ticket?: string
  /** The current certificate's bytes, for renewal. */
  readonly certificate?: Uint8Array
  /** When the request was made, ms since the epoch (requester clock). */
  readonly createdAtMs: number
  /** 16 random bytes, so two requests of one key never encode equally by accident. */
  readonly nonce: Uint8Array
}

/** A decoded signing request. */
export interface SigningRequest extends SigningRequestFields {
  readonly version: typeof SIGNING_REQUEST_VERSION
  /** Raw 32-byte ed25519 public key to certify. */
  readonly publicKey: Uint8Array
  /** The PeerId derived from `publicKey`. */
  readonly peerId: string
}

/** A signing request with its exact bytes and their SHA-256. */
export interface SignedSigningRequest {
  readonly request: SigningRequest
  readonly bytes: Uint8Array
  readonly hash: Uint8Array
}

/** Why a signing request was refused before the CA looked at what it asks for. A closed set. */
export type SigningRequestRejection = 'malformed' | 'too-large' | 'bad-signature' | 'stale' | 'from-future'

/** Result of {@link verifySigningRequest}. */
export type SigningRequestVerdict =
  | { readonly ok: true; readonly signed: SignedSigningRequest }
  | { readonly ok: false; readonly reason: SigningRequestRejection; readonly detail: string }

/** Inputs of {@link verifySigningRequest}. */
export interface SigningRequestCheckOptions {
  readonly nowMs: number
  /** Oldest acceptable `createdAtMs`, as an age in ms. A polling joiner resends one request for this long. */
  readonly maxAgeMs: number
  /** Tolerated clock difference for requests dated in the future. */
  readonly clockSkewToleranceMs: number
}

/** Raised by {@link createSigningRequest} for fields that could not form a valid request. */
export class SigningRequestError extends Error {
  override name = 'SigningRequestError'
  readonly code: 'invalid-fields' | 'too-large'
  constructor(code: 'invalid-fields' | 'too-large', message: string) {
    super(message)
    this.code = code
  }
}

/**
 * Builds and signs a request with the requester's (new) key.
 * @throws SigningRequestError
 */
export function createSigningRequest(key: SigningKey, fields: SigningRequestFields): SignedSigningRequest {
  const peerId = peerIdOfPublicKey(key.publicKey)
  if (peerId === undefined) throw new SigningRequestError('invalid-fields', 'key is not an ed25519 key')
  if (fields.nonce.byteLength !== SIGNING_REQUEST_NONCE_BYTES) {
    throw new SigningRequestError('invalid-fields', 'nonce must be 16 bytes')
  }
  if (!Number.isSafeInteger(fields.createdAtMs) || fields.createdAtMs < 0) {
    throw new SigningRequestError('invalid-fields', 'createdAtMs must be a non-negative integer')
  }
  for (const [label, value] of [
    ['name', fields.name],
    ['zone', fields.zone],
  ] as const) {
    if (value !== undefined && !isValidName(value)) {
      throw new SigningRequestError('invalid-fields', `invalid ${label} ${JSON.stringify(value)}`)
    }
  }
  const request: SigningRequest = {
    version: SIGNING_REQUEST_VERSION,
    publicKey: key.publicKey,
    peerId,
    ...fields,
  }
  const bytes = sealEnvelope(DOMAIN_SIGNING_REQUEST, key, {
    version: SIGNING_REQUEST_VERSION,
    publicKey: key.publicKey,
    peerId,
    name: fields.name,
    zone: fields.zone,
    ticket: fields.ticket,
    certificate: fields.certificate,
    createdAtMs: fields.createdAtMs,
    nonce: fields.nonce,
  })
  if (bytes.byteLength > SIGNING_REQUEST_BYTES_MAX) {
    throw new SigningRequestError('too-large', `request is ${bytes.byteLength} bytes`)
  }
  return { request, bytes, hash: hash(bytes) }
}

/**
 * Decodes a request and checks its proof of possession and age. Never throws.
 * Order: size, structure, signature, age.
 */
export function verifySigningRequest(
  bytes: Uint8Array,
  options: SigningRequestCheckOptions,
): SigningRequestVerdict {
  const read = tryRead(() => {
    const envelope = openEnvelope(bytes, SIGNING_REQUEST_BYTES_MAX)
    return { envelope, request: readSigningRequest(envelope.body) }
  })
  if (!read.ok) return read
  const { envelope, request } = read.value
  if (!verifyEnvelope(DOMAIN_SIGNING_REQUEST, request.publicKey, envelope)) {
    return { ok: false, reason: 'bad-signature', detail: 'not signed by the key it asks to certify' }
  }
  if (request.createdAtMs > options.nowMs + options.clockSkewToleranceMs) {
    return {
      ok: false,
      reason: 'from-future',
      detail: `created at ${request.createdAtMs}, now ${options.nowMs}`,
    }
  }
  if (request.createdAtMs < options.nowMs - options.maxAgeMs) {
    return { ok: false, reason: 'stale', detail: `created at ${request.createdAtMs}, now ${options.nowMs}` }
  }
  return { ok: true, signed: { request, bytes, hash: hash(bytes) } }
}

function readSigningRequest(content: unknown): SigningRequest {
  const record = readRecord(content, 'signing request', REQUIRED_KEYS, OPTIONAL_KEYS)
  const version = readFormatVersion(
    record,
    'signing request',
    SIGNING_REQUEST_VERSION,
    'upgrade mesh on the joining machine and run mesh join again',
  )
  const publicKey = readBytes(record, 'publicKey', { length: PUBLIC_KEY_BYTES })
  const peerId = readText(record, 'peerId', PEER_ID_CHARS_MAX)
  if (peerIdOfPublicKey(publicKey) !== peerId) {
    throw new DecodeError('malformed', 'peerId does not match publicKey')
  }
  const request: SigningRequest = {
    version,
    publicKey,
    peerId,
    createdAtMs: readInteger(record, 'createdAtMs'),
    nonce: readBytes(record, 'nonce', { length: SIGNING_REQUEST_NONCE_BYTES }),
  }
  const ticket = readOptionalText(record, 'ticket', TICKET_CHARS_MAX)
  const certificate = readOptionalBytes(record, 'certificate', { bytesMax: CERTIFICATE_BYTES_MAX })
  return {
    ...request,
    ...(Object.hasOwn(record, 'name') ? { name: readName(record, 'name') } : {}),
    ...(Object.hasOwn(record, 'zone') ? { zone: readName(record, 'zone') } : {}),
    ...(ticket !== undefined ? { ticket } : {}),
    ...(certificate !== undefined ? { certificate } : {}),
  }
}
