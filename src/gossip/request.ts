/**
 * The request envelope published on the request topic.
 *
 * Deterministic CBOR `{ body, sig }` (see src/wire/envelope.ts, domain `DOMAIN_REQUEST`) with body
 * `{ v: 1, id, issuer, issuedAtMs, expiresAtMs, filter, action, args, replyTo: { peerId, addrs }, job? }`,
 * signed by the operator key whose certificate is `issuer`. Decoding checks shape and limits only;
 * the certificate, signature, time window and everything else are checked by validate.ts.
 *
 * `job` (16 bytes, optional) names the job the request belongs to: the waves of one rollout are
 * separate requests of one job. Absent, the job is the request itself (its id is the request id), and
 * the encoding is the same as before the field existed.
 *
 * `holders` (optional, `--once` only) names the zone authorities the requester expects to answer. A
 * node named there that no longer holds its zone's lease answers "no longer the zone authority"
 * instead of staying silent, so the requester learns it at once rather than at its timeout. Naming a
 * node gives it nothing: it runs the request only if it holds the lease when the action starts.
 */

import { CERTIFICATE_BYTES_MAX } from '../ca/certificate.js'
import { type CborValue, DecodeError, decodeCanonicalCbor, isRecord } from '../wire/cbor.js'
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
import { APPROVALS_MAX, type Approval, readApprovedRequest } from './approval.js'
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
  /** The job this request is part of; absent: a job of its own. */
  readonly job?: Uint8Array
  /** For `--once`: the authorities the requester expects to answer (see the module note). */
  readonly holders?: readonly string[]
}

/** Most names in `holders` (one authority per zone a `--once` request matches). */
export const HOLDERS_MAX = 256
/** Longest name in `holders`. */
export const HOLDER_CHARS_MAX = 64

/** A decoded request: shape and limits checked, filter compiled, signature NOT yet verified. */
export interface DecodedRequest {
  readonly body: RequestBody
  /** Lower-case hex of `body.id`. */
  readonly idHex: string
  /** Lower-case hex of the job id: `body.job`, else the request id. */
  readonly jobHex: string
  readonly filter: CompiledFilter
  /** The whole message as received (the envelope, or the approved form wrapping it). */
  readonly bytes: Uint8Array
  readonly envelope: OpenedEnvelope
  /** The proposer's signed envelope alone (equal to `bytes` without approvals). */
  readonly envelopeBytes: Uint8Array
  /** Other operators' approvals carried with it (unverified; validate.ts checks them). */
  readonly approvals: readonly Approval[]
}

/** Most CBOR items of the outer map: the approved form with {@link APPROVALS_MAX} approvals. */
const OUTER_ITEMS_MAX = 8 + 5 * APPROVALS_MAX

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
  /** The job (16 bytes) when the request is one of several of a job. */
  readonly job?: Uint8Array
  /** For `--once`: the authorities expected to answer. */
  readonly holders?: readonly string[]
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
    ...(init.job === undefined ? {} : { job: init.job }),
    ...(init.holders === undefined || init.holders.length === 0 ? {} : { holders: [...init.holders].sort() }),
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
  let approvals: Approval[] = []
  let envelopeBytes = bytes
  try {
    // The approved form wraps the proposer's envelope: { request, approvals } (approval.ts).
    const outer = decodeCanonicalCbor(bytes, bytesMax, OUTER_ITEMS_MAX)
    if (isRecord(outer) && Object.hasOwn(outer, 'request')) {
      const approved = readApprovedRequest(outer)
      envelopeBytes = approved.envelope
      approvals = approved.approvals
    }
    envelope = openEnvelope(envelopeBytes, bytesMax)
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
      [
        'v',
        'id',
        'issuer',
        'issuedAtMs',
        'expiresAtMs',
        'filter',
        'action',
        'args',
        'replyTo',
        'job',
        'holders',
      ],
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
      ...(b.job === undefined ? {} : { job: readBytes(b, 'job', { length: REQUEST_ID_BYTES }) }),
      ...(b.holders === undefined
        ? {}
        : { holders: readTextList(b, 'holders', HOLDERS_MAX, HOLDER_CHARS_MAX) }),
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
  const idHex = toHex(body.id)
  return {
    body,
    idHex,
    jobHex: body.job === undefined ? idHex : toHex(body.job),
    filter,
    bytes,
    envelope,
    envelopeBytes,
    approvals,
  }
}

/** True when the request is signed by `publicKey` (the issuer certificate's key). Never throws. */
export function verifyRequestSignature(request: DecodedRequest, publicKey: Uint8Array): boolean {
  return verifyEnvelope(DOMAIN_REQUEST, publicKey, request.envelope)
}
