/**
 * The request envelope published on the request topic.
 *
 * Deterministic CBOR `{ body, sig }` (see src/wire/envelope.ts, domain `DOMAIN_REQUEST`) with body
 * `{ v: 1, id, issuer, issuedAtMs, expiresAtMs, filter, action, args, replyTo: { peerId, addrs } }`,
 * signed by the operator key whose certificate is `issuer`. Decoding checks shape and limits only;
 * the certificate, signature, time window and everything else are checked by validate.ts.
 */

import { CERTIFICATE_BYTES_MAX } from '../ca/certificate.js'
import { type CborValue, DecodeError } from '../wire/cbor.js'
import { DOMAIN_REQUEST } from '../wire/domains.js'
import type { SigningKey } from '../wire/ed25519.js'
import { type OpenedEnvelope, openEnvelope, sealEnvelope, verifyEnvelope } from '../wire/envelope.js'
import {
  describeValue,
  onlyKeys,
  readBytes,
  readInteger,
  readRecord,
  readText,
  readTextList,
} from '../wire/fields.js'
import { toHex } from '../wire/hash.js'
import { ACTION_CHARS_MAX, isValidActionName } from './action-name.js'
import {
  type CompiledFilter,
  compileFilter,
  FilterParseError,
  filterFromCbor,
  filterToCbor,
  type TargetFilter,
} from './filter.js'

/** Largest encoded request accepted or created, in bytes. */
export const REQUEST_BYTES_MAX = 64 * 1024
/** Size of a request id, in bytes. */
export const REQUEST_ID_BYTES = 16
/** Most arguments per request. */
export const ARGS_MAX = 64
/** Longest single argument, in characters. */
export const ARG_CHARS_MAX = 4096
/** Most reply addresses (multiaddrs) a requester may list. */
export const REPLY_ADDRS_MAX = 16
/** Longest reply address or peer id, in characters. */
export const ADDRESS_CHARS_MAX = 256

/** Where the requester wants replies: its peer id and dialable addresses. */
export interface ReplyTo {
  readonly peerId: string
  readonly addrs: readonly string[]
}

/** The signed content of a request. Times are ms since the epoch. */
export interface RequestBody {
  readonly v: 1
  /** 16 random bytes chosen by the requester. */
  readonly id: Uint8Array
  /** The operator's certificate, exactly as encoded (`SignedCertificate.bytes`). */
  readonly issuer: Uint8Array
  readonly issuedAtMs: number
  readonly expiresAtMs: number
  readonly filter: TargetFilter
  readonly action: string
  readonly args: readonly string[]
  readonly replyTo: ReplyTo
}

/** A decoded request: shape and limits checked, filter compiled, signature NOT yet verified. */
export interface DecodedRequest {
  readonly body: RequestBody
  /** Lower-case hex of `body.id`. */
  readonly idHex: string
  readonly filter: CompiledFilter
  /** The whole envelope as received. */
  readonly bytes: Uint8Array
  readonly envelope: OpenedEnvelope
}

/** Why a request could not be decoded. A closed set. */
export type RequestDecodeCode = 'too-large' | 'malformed' | 'unsupported-version' | 'bad-filter'

/** A request that could not be decoded; `code` says how. */
export class RequestDecodeError extends Error {
  override name = 'RequestDecodeError'
  readonly code: RequestDecodeCode
  constructor(code: RequestDecodeCode, message: string) {
    super(message)
    this.code = code
  }
}

/** Everything needed to create a request. The caller supplies randomness (`id`) and time. */
export interface RequestInit {
  readonly id: Uint8Array
  /** The operator's certificate bytes. */
  readonly issuer: Uint8Array
  /** The operator's key; must match the certificate's public key for nodes to accept the request. */
  readonly key: SigningKey
  readonly issuedAtMs: number
  readonly expiresAtMs: number
  readonly filter: TargetFilter
  readonly action: string
  readonly args?: readonly string[]
  readonly replyTo: ReplyTo
}

/**
 * Encodes and signs a request, then decodes it again so that whatever this returns is exactly what
 * every node will accept structurally.
 * @throws RequestDecodeError when the init breaks a limit or the filter does not compile
 */
export function createRequest(init: RequestInit): DecodedRequest {
  const body: CborValue = {
    v: 1,
    id: init.id,
    issuer: init.issuer,
    issuedAtMs: init.issuedAtMs,
    expiresAtMs: init.expiresAtMs,
    filter: filterToCbor(init.filter) as CborValue,
    action: init.action,
    args: [...(init.args ?? [])],
    replyTo: { peerId: init.replyTo.peerId, addrs: [...init.replyTo.addrs] },
  }
  return decodeRequest(sealEnvelope(DOMAIN_REQUEST, init.key, body))
}

/**
 * Decodes request bytes (size limit first). Never returns a partially checked request.
 * @throws RequestDecodeError
 */
export function decodeRequest(bytes: Uint8Array, bytesMax = REQUEST_BYTES_MAX): DecodedRequest {
  if (bytes.byteLength > bytesMax) {
    throw new RequestDecodeError('too-large', `request of ${bytes.byteLength} bytes exceeds ${bytesMax}`)
  }
  let envelope: OpenedEnvelope
  try {
    envelope = openEnvelope(bytes, bytesMax)
  } catch (err) {
    if (err instanceof DecodeError) throw new RequestDecodeError(err.code, err.message)
    throw err
  }
  const b = envelope.body
  if (b.v !== 1) {
    throw new RequestDecodeError(
      typeof b.v === 'number' ? 'unsupported-version' : 'malformed',
      `request version ${describeValue(b.v)} is not supported`,
    )
  }
  let body: RequestBody
  try {
    onlyKeys(
      b,
      ['v', 'id', 'issuer', 'issuedAtMs', 'expiresAtMs', 'filter', 'action', 'args', 'replyTo'],
      'request',
    )
    const action = readText(b, 'action', ACTION_CHARS_MAX)
    if (!isValidActionName(action))
      throw new DecodeError('malformed', `action '${action}' is not a valid name`)
    const r = readRecord(b.replyTo, 'replyTo', ['peerId', 'addrs'])
    body = {
      v: 1,
      id: readBytes(b, 'id', { length: REQUEST_ID_BYTES }),
      issuer: readBytes(b, 'issuer', { bytesMin: 1, bytesMax: CERTIFICATE_BYTES_MAX }),
      issuedAtMs: readInteger(b, 'issuedAtMs'),
      expiresAtMs: readInteger(b, 'expiresAtMs'),
      filter: filterFromCbor(b.filter),
      action,
      args: readTextList(b, 'args', ARGS_MAX, ARG_CHARS_MAX),
      replyTo: {
        peerId: readText(r, 'peerId', ADDRESS_CHARS_MAX),
        addrs: readTextList(r, 'addrs', REPLY_ADDRS_MAX, ADDRESS_CHARS_MAX),
      },
    }
  } catch (err) {
    if (err instanceof DecodeError) throw new RequestDecodeError('malformed', err.message)
    if (err instanceof FilterParseError) throw new RequestDecodeError('malformed', err.message)
    throw err
  }
  let filter: CompiledFilter
  try {
    filter = compileFilter(body.filter)
  } catch (err) {
    if (err instanceof FilterParseError) throw new RequestDecodeError('bad-filter', err.message)
    throw err
  }
  return { body, idHex: toHex(body.id), filter, bytes, envelope }
}

/** True when the request is signed by `publicKey` (the issuer certificate's key). Never throws. */
export function verifyRequestSignature(request: DecodedRequest, publicKey: Uint8Array): boolean {
  return verifyEnvelope(DOMAIN_REQUEST, publicKey, request.envelope)
}
