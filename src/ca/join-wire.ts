/**
 * Wire format of the two enrolment protocols (pure codecs, no I/O):
 *
 * `/mesh/join/1.0.0`: open to uncertified peers (a joiner holds no certificate yet), two steps on one
 * stream, so the joiner verifies the mesh before it reveals its ticket:
 *
 *   joiner                                   member
 *     │ {v:1, type:'hello'}                    │
 *     │ ─────────────────────────────────────► │
 *     │ {v:1, type:'hello', caPublicKey, cert} │   joiner: sha256(caPublicKey) = expected fingerprint,
 *     │ ◄───────────────────────────────────── │   cert verifies under it, cert.peerId = Noise peer
 *     │ {v:1, type:'csr', bytes}               │
 *     │ ─────────────────────────────────────► │   member: own issuer, or forwards on /mesh/ca/1.0.0
 *     │ {v:1, type:'result', result}           │
 *     │ ◄───────────────────────────────────── │
 *
 * `/mesh/ca/1.0.0`: certified peers only (admission-gated); one `csr` answered by one `result`. Used
 * by members forwarding a joiner's request to a CA holder and by nodes renewing their certificate.
 *
 * The member may answer any step with `{v:1, type:'error', code, message}` instead (the joiner never sends errors).
 */

import { type CborValue, DecodeError, decodeCbor, encodeCbor, isRecord } from '../wire/cbor.js'
import { PUBLIC_KEY_BYTES } from '../wire/ed25519.js'
import { bytesEqual } from '../wire/hash.js'
import { CERTIFICATE_BYTES_MAX, verifyCertificate } from './certificate.js'
import { fingerprintOf } from './fingerprint.js'
import type { SigningRefusalReason, SigningResult } from './issuer.js'
import { REVOCATION_LIST_BYTES_MAX, type SignedRevocationList, verifyRevocationList } from './revocation.js'
import { SIGNING_REQUEST_BYTES_MAX } from './signing-request.js'
import type { SignedCertificate } from './types.js'

/** Protocol id of the join exchange (uncertified peers allowed). */
export const JOIN_PROTOCOL = '/mesh/join/1.0.0'
/** Protocol id of CA requests between members (admission-gated). */
export const CA_PROTOCOL = '/mesh/ca/1.0.0'

/** Room for the CBOR map around a signing request. */
const FRAMING_BYTES = 128
/** Largest message a joiner or forwarder sends: one signing request plus framing. */
export const JOIN_REQUEST_BYTES_MAX = SIGNING_REQUEST_BYTES_MAX + FRAMING_BYTES
/** Largest answer: a certificate, the CA key and a full revocation list, plus framing. */
export const JOIN_ANSWER_BYTES_MAX =
  REVOCATION_LIST_BYTES_MAX + CERTIFICATE_BYTES_MAX + PUBLIC_KEY_BYTES + 4 * FRAMING_BYTES
/** Longest error message or refusal message carried, in characters. */
export const JOIN_MESSAGE_CHARS_MAX = 512
/** Longest pending request id, in characters. */
const PENDING_ID_CHARS_MAX = 64
/**
 * Most CBOR items a join message is decoded with: the largest, an issued result, is a map of three
 * fields holding a map of four; certificates and lists travel as byte strings.
 */
const JOIN_MESSAGE_ITEMS_MAX = 32

/** Why a member answered with an error instead of a result. A closed set. */
export type JoinErrorAnswerCode =
  /** The join protocol's rate limit was hit: retry later. */
  | 'rate-limited'
  /** Too many exchanges are in progress. */
  | 'busy'
  /** The message could not be read or came out of order. */
  | 'malformed'
  /** No CA holder could be reached to forward the request to. */
  | 'no-ca'
  /** The CA failed while handling the request (e.g. could not persist). */
  | 'ca-failure'

const ERROR_CODES: readonly JoinErrorAnswerCode[] = [
  'rate-limited',
  'busy',
  'malformed',
  'no-ca',
  'ca-failure',
]
const REFUSAL_REASONS: readonly SigningRefusalReason[] = [
  'malformed',
  'too-large',
  'bad-signature',
  'stale',
  'from-future',
  'wrong-mesh',
  'bad-mac',
  'expired',
  'reused',
  'bad-certificate',
  'too-early',
  'rejected',
  'revoked',
  'limit',
]

/** What the joiner (or a forwarder) sends. */
export type JoinRequest = { readonly type: 'hello' } | { readonly type: 'csr'; readonly bytes: Uint8Array }

/** What a member answers. */
export type JoinAnswer =
  | { readonly type: 'hello'; readonly caPublicKey: Uint8Array; readonly cert: Uint8Array }
  | { readonly type: 'result'; readonly result: SigningResult }
  | { readonly type: 'error'; readonly code: JoinErrorAnswerCode; readonly message: string }

/** Why bytes were not a valid message. */
export type WireDecoding<T> =
  | { readonly ok: true; readonly message: T }
  | { readonly ok: false; readonly reason: 'malformed' | 'too-large'; readonly detail: string }

/** Encodes a request. */
export function encodeJoinRequest(request: JoinRequest): Uint8Array {
  return encodeCbor({ v: 1, ...request } as CborValue)
}

/** Encodes an answer; long messages are cut to {@link JOIN_MESSAGE_CHARS_MAX}. */
export function encodeJoinAnswer(answer: JoinAnswer): Uint8Array {
  if (answer.type === 'error') {
    return encodeCbor({ v: 1, ...answer, message: answer.message.slice(0, JOIN_MESSAGE_CHARS_MAX) })
  }
  if (answer.type === 'result' && answer.result.status === 'refused') {
    const result = { ...answer.result, message: answer.result.message.slice(0, JOIN_MESSAGE_CHARS_MAX) }
    return encodeCbor({ v: 1, type: 'result', result })
  }
  return encodeCbor({ v: 1, ...answer } as CborValue)
}

function decodeRecord(bytes: Uint8Array, bytesMax: number): Record<string, unknown> {
  const value = decodeCbor(bytes, bytesMax, JOIN_MESSAGE_ITEMS_MAX)
  if (!isRecord(value) || value.v !== 1) throw new DecodeError('malformed', 'not a version 1 message')
  return value
}

function wire<T>(read: () => T): WireDecoding<T> {
  try {
    return { ok: true, message: read() }
  } catch (err) {
    if (err instanceof DecodeError) return { ok: false, reason: err.code, detail: err.message }
    throw err
  }
}

function bytesField(record: Record<string, unknown>, key: string, bytesMax: number): Uint8Array {
  const value = record[key]
  if (!(value instanceof Uint8Array)) throw new DecodeError('malformed', `${key} must be bytes`)
  if (value.byteLength > bytesMax) throw new DecodeError('too-large', `${key} exceeds ${bytesMax} bytes`)
  return value
}

function textField(record: Record<string, unknown>, key: string, charsMax: number): string {
  const value = record[key]
  if (typeof value !== 'string' || value.length > charsMax) {
    throw new DecodeError('malformed', `${key} must be text of at most ${charsMax} characters`)
  }
  return value
}

/** Decodes a request. Never throws. */
export function decodeJoinRequest(bytes: Uint8Array): WireDecoding<JoinRequest> {
  return wire(() => {
    const record = decodeRecord(bytes, JOIN_REQUEST_BYTES_MAX)
    if (record.type === 'hello') return { type: 'hello' }
    if (record.type === 'csr')
      return { type: 'csr', bytes: bytesField(record, 'bytes', SIGNING_REQUEST_BYTES_MAX) }
    throw new DecodeError('malformed', 'unknown request type')
  })
}

/** Decodes an answer. Never throws. */
export function decodeJoinAnswer(bytes: Uint8Array): WireDecoding<JoinAnswer> {
  return wire(() => {
    const record = decodeRecord(bytes, JOIN_ANSWER_BYTES_MAX)
    switch (record.type) {
      case 'hello': {
        const caPublicKey = bytesField(record, 'caPublicKey', PUBLIC_KEY_BYTES)
        if (caPublicKey.byteLength !== PUBLIC_KEY_BYTES)
          throw new DecodeError('malformed', 'caPublicKey must be 32 bytes')
        return { type: 'hello', caPublicKey, cert: bytesField(record, 'cert', CERTIFICATE_BYTES_MAX) }
      }
      case 'result':
        return { type: 'result', result: readResult(record.result) }
      case 'error': {
        const code = record.code
        if (typeof code !== 'string' || !(ERROR_CODES as readonly string[]).includes(code)) {
          throw new DecodeError('malformed', 'unknown error code')
        }
        return {
          type: 'error',
          code: code as JoinErrorAnswerCode,
          message: textField(record, 'message', JOIN_MESSAGE_CHARS_MAX),
        }
      }
      default:
        throw new DecodeError('malformed', 'unknown answer type')
    }
  })
}

function readResult(value: unknown): SigningResult {
  if (!isRecord(value)) throw new DecodeError('malformed', 'result must be a map')
  switch (value.status) {
    case 'issued':
      return {
        status: 'issued',
        certificate: bytesField(value, 'certificate', CERTIFICATE_BYTES_MAX),
        caPublicKey: bytesField(value, 'caPublicKey', PUBLIC_KEY_BYTES),
        revocationList: bytesField(value, 'revocationList', REVOCATION_LIST_BYTES_MAX),
      }
    case 'pending':
      return { status: 'pending', id: textField(value, 'id', PENDING_ID_CHARS_MAX) }
    case 'refused': {
      const reason = value.reason
      if (typeof reason !== 'string' || !(REFUSAL_REASONS as readonly string[]).includes(reason)) {
        throw new DecodeError('malformed', 'unknown refusal reason')
      }
      return {
        status: 'refused',
        reason: reason as SigningRefusalReason,
        message: textField(value, 'message', JOIN_MESSAGE_CHARS_MAX),
      }
    }
    default:
      throw new DecodeError('malformed', 'unknown result status')
  }
}

/** What an issued certificate must say, as the requester expects it. */
export interface IssuedExpectation {
  /** The CA key whose hash is the mesh fingerprint the requester trusts. */
  readonly caPublicKey: Uint8Array
  /** The requester's own public key. */
  readonly publicKey: Uint8Array
  /** Name and zone the certificate must carry (from the ticket, the request, or the old certificate). */
  readonly name?: string
  readonly zone?: string
  /** Roles it must carry exactly (from the ticket); absent when the operator chooses. */
  readonly roles?: readonly string[]
  readonly nowMs: number
  readonly clockSkewToleranceMs: number
}

/** Result of {@link checkIssued}. */
export type IssuedCheck =
  | {
      readonly ok: true
      readonly certificate: SignedCertificate
      readonly revocationList: SignedRevocationList
    }
  | { readonly ok: false; readonly detail: string }

/**
 * Checks an `issued` answer before the requester stores or uses it: the CA key is the trusted one, the
 * certificate verifies under it, is valid now, certifies our key with the expected name, zone and
 * roles, and the revocation list is signed by the same CA. Pure; never throws.
 */
export function checkIssued(
  result: Extract<SigningResult, { status: 'issued' }>,
  expect: IssuedExpectation,
): IssuedCheck {
  if (!bytesEqual(result.caPublicKey, expect.caPublicKey)) {
    return { ok: false, detail: 'the answer names another CA key than the mesh proved' }
  }
  const verdict = verifyCertificate(result.certificate, {
    caPublicKey: expect.caPublicKey,
    nowMs: expect.nowMs,
    clockSkewToleranceMs: expect.clockSkewToleranceMs,
  })
  if (!verdict.ok) return { ok: false, detail: `issued certificate is ${verdict.reason} (${verdict.detail})` }
  const certificate = verdict.signed.certificate
  if (!bytesEqual(certificate.publicKey, expect.publicKey)) {
    return { ok: false, detail: 'issued certificate is for another key' }
  }
  if (expect.name !== undefined && certificate.name !== expect.name) {
    return { ok: false, detail: `issued certificate names ${certificate.name}, expected ${expect.name}` }
  }
  if (expect.zone !== undefined && certificate.zone !== expect.zone) {
    return { ok: false, detail: `issued certificate has zone ${certificate.zone}, expected ${expect.zone}` }
  }
  if (
    expect.roles !== undefined &&
    [...certificate.roles].sort().join() !== [...expect.roles].sort().join()
  ) {
    return { ok: false, detail: `issued certificate has roles ${certificate.roles.join(',')}` }
  }
  const list = verifyRevocationList(result.revocationList, expect.caPublicKey)
  if (!list.ok) return { ok: false, detail: `revocation list is ${list.reason}` }
  return { ok: true, certificate: verdict.signed, revocationList: list.signed }
}

/** Result of {@link checkMeshProof}. */
export type MeshProof =
  | { readonly ok: true; readonly certificate: SignedCertificate }
  | { readonly ok: false; readonly detail: string }

/**
 * The joiner's check of a member's hello, before it sends anything secret: the CA key hashes to the
 * fingerprint the joiner expects (from its ticket or --fingerprint), the member's certificate verifies
 * under that key and is valid now, and it certifies the very peer Noise authenticated on this
 * connection (so a man in the middle cannot replay a real member's certificate). Pure; never throws.
 */
export function checkMeshProof(
  hello: { readonly caPublicKey: Uint8Array; readonly cert: Uint8Array },
  expected: {
    readonly fingerprint: Uint8Array
    readonly remotePeer: string
    readonly nowMs: number
    readonly clockSkewToleranceMs: number
  },
): MeshProof {
  if (!bytesEqual(fingerprintOf(hello.caPublicKey), expected.fingerprint)) {
    return { ok: false, detail: 'its CA key does not match the fingerprint' }
  }
  const verdict = verifyCertificate(hello.cert, {
    caPublicKey: hello.caPublicKey,
    nowMs: expected.nowMs,
    clockSkewToleranceMs: expected.clockSkewToleranceMs,
  })
  if (!verdict.ok) return { ok: false, detail: `its certificate is ${verdict.reason} (${verdict.detail})` }
  if (verdict.signed.certificate.peerId !== expected.remotePeer) {
    return { ok: false, detail: 'its certificate belongs to another peer than the one that answered' }
  }
  return { ok: true, certificate: verdict.signed }
}
