/**
 * What travels in membership messages, signed: a member's **record** (by the member itself) and a
 * **suspicion** (by the member that could not reach another one).
 *
 * A record is an envelope (domain DOMAIN_MEMBER) signed by the node key, body
 * `{ v: 1, name, zone, roles, peerId, addrs, facts, bootedAtS, incarnation, left, cert }`. Name, zone,
 * roles and peer id repeat the certificate's so a receiver needs nothing else, and verification refuses
 * a record whose copies differ. The incarnation starts at the member's wall clock in ms and grows by one
 * per change (facts, addresses, certificate, a refutation), so a restarted member moves forward too. A
 * record changes rarely and travels only when it changes and in push-pull exchanges: moving facts do
 * not belong in it (uptime travels as `bootedAtS`, the wall-clock second the host booted, and each
 * receiver derives `uptimeSeconds` from it).
 *
 * A suspicion is an envelope (domain DOMAIN_SUSPICION) signed by the accuser, body
 * `{ v: 1, subject, incarnation, from }`: "`from` could not reach `subject` at `incarnation`". Only the
 * subject can answer it, with a record of a higher incarnation; no node declares another dead on
 * anyone's word but its own timer (src/membership/swim.ts).
 */
import { CERTIFICATE_BYTES_MAX } from '../ca/certificate.js'
import type { CertificateRejection, CertificateVerifier, Role, SignedCertificate } from '../ca/types.js'
import { ROLES } from '../ca/types.js'
import { ADDRESS_CHARS_MAX, REPLY_ADDRS_MAX } from '../gossip/request.js'
import { type CborValue, DecodeError } from '../wire/cbor.js'
import { DOMAIN_MEMBER, DOMAIN_SUSPICION } from '../wire/domains.js'
import type { SigningKey } from '../wire/ed25519.js'
import { openEnvelope, sealEnvelope, verifyEnvelope } from '../wire/envelope.js'
import {
  describeValue,
  NAME_CHARS_MAX,
  onlyKeys,
  readBytes,
  readInteger,
  readText,
  readTextList,
  readTextMap,
} from '../wire/fields.js'

/** Largest encoded record, in bytes. */
export const RECORD_BYTES_MAX = 16 * 1024
/** Largest encoded suspicion, in bytes. */
export const SUSPICION_BYTES_MAX = 512
/** Most facts per record. */
export const FACTS_MAX = 64
/** Longest fact key, in characters. */
export const FACT_KEY_CHARS_MAX = 64
/** Longest fact value, in characters. */
export const FACT_VALUE_CHARS_MAX = 256
/** Most addresses per record (as many as a request's reply address list). */
export const RECORD_ADDRS_MAX = REPLY_ADDRS_MAX

/** The signed content of a record. */
export interface MemberRecord {
  readonly v: 1
  readonly name: string
  readonly zone: string
  readonly roles: readonly Role[]
  readonly peerId: string
  readonly addrs: readonly string[]
  /** hostname, os, arch, kernel, version, user tags, the authority held; not uptime. */
  readonly facts: Readonly<Record<string, string>>
  /** Wall-clock second the host booted (0 when unknown); receivers derive uptime from it. */
  readonly bootedAtS: number
  readonly incarnation: number
  /** True for the member's goodbye: it stopped on purpose. */
  readonly left: boolean
  readonly cert: Uint8Array
}

/** What the node fills in; identity fields come from its certificate. */
export interface RecordInit {
  readonly addrs: readonly string[]
  readonly facts: Readonly<Record<string, string>>
  readonly bootedAtS: number
  readonly incarnation: number
  readonly left: boolean
}

/** A record whose certificate and signature were checked. */
export interface VerifiedRecord {
  readonly record: MemberRecord
  readonly certificate: SignedCertificate
  /** The exact signed bytes (forwarded as they are). */
  readonly bytes: Uint8Array
}

/** Why a record or suspicion was refused. A closed set. */
export type RecordRejection =
  | 'too-large'
  | 'malformed'
  | 'unsupported-version'
  | 'bad-certificate'
  | 'identity-mismatch'
  | 'bad-signature'

/** Result of {@link verifyRecord}; never throws. */
export type RecordVerdict =
  | { readonly ok: true; readonly verified: VerifiedRecord }
  | {
      readonly ok: false
      readonly reason: RecordRejection
      readonly detail: string
      readonly certificateReason?: CertificateRejection
    }

/**
 * Creates a signed record for the node holding `key` and `certificate`.
 * @throws TypeError when a limit is broken (too many facts or addresses, bad incarnation)
 */
export function createRecord(key: SigningKey, certificate: SignedCertificate, init: RecordInit): Uint8Array {
  const cert = certificate.certificate
  const facts = Object.entries(init.facts)
  if (facts.length > FACTS_MAX) throw new TypeError(`more than ${FACTS_MAX} facts`)
  for (const [k, v] of facts) {
    if (k.length === 0 || k.length > FACT_KEY_CHARS_MAX || v.length > FACT_VALUE_CHARS_MAX) {
      throw new TypeError(`fact ${k.slice(0, FACT_KEY_CHARS_MAX)} out of bounds`)
    }
  }
  if (init.addrs.length > RECORD_ADDRS_MAX) throw new TypeError(`more than ${RECORD_ADDRS_MAX} addresses`)
  if (!Number.isSafeInteger(init.incarnation) || init.incarnation < 0)
    throw new TypeError('incarnation must be a non-negative integer')
  if (!Number.isSafeInteger(init.bootedAtS) || init.bootedAtS < 0)
    throw new TypeError('bootedAtS must be a non-negative integer')
  const body: CborValue = {
    v: 1,
    name: cert.name,
    zone: cert.zone,
    roles: [...cert.roles],
    peerId: cert.peerId,
    addrs: [...init.addrs],
    facts: Object.fromEntries(facts),
    bootedAtS: init.bootedAtS,
    incarnation: init.incarnation,
    left: init.left,
    cert: certificate.bytes,
  }
  const bytes = sealEnvelope(DOMAIN_MEMBER, key, body)
  if (bytes.byteLength > RECORD_BYTES_MAX) throw new TypeError('record exceeds RECORD_BYTES_MAX')
  return bytes
}

/** The identity and incarnation of a record, read without any check (to decide whether to verify it). */
export interface RecordHead {
  readonly peerId: string
  readonly incarnation: number
}

/**
 * Reads the peer id and incarnation of record bytes without verifying anything, or undefined when the
 * bytes do not decode. Cheap next to {@link verifyRecord}: the driver verifies only records that are news.
 */
export function peekRecord(bytes: Uint8Array): RecordHead | undefined {
  try {
    const { body } = openEnvelope(bytes, RECORD_BYTES_MAX)
    if (body.v !== 1) return undefined
    return {
      peerId: readText(body, 'peerId', ADDRESS_CHARS_MAX),
      incarnation: readInteger(body, 'incarnation'),
    }
  } catch (err) {
    if (err instanceof DecodeError) return undefined
    throw err
  }
}

/** Verifies a record: size, decode, certificate (chain, validity, revocation), identity copies, signature. */
export function verifyRecord(bytes: Uint8Array, verifier: CertificateVerifier, nowMs: number): RecordVerdict {
  let record: MemberRecord
  let envelope: ReturnType<typeof openEnvelope>
  try {
    envelope = openEnvelope(bytes, RECORD_BYTES_MAX)
    const b = envelope.body
    if (b.v !== 1) {
      return typeof b.v === 'number'
        ? refuse('unsupported-version', `record version ${b.v}`)
        : refuse('malformed', 'record version missing')
    }
    record = recordFromBody(b)
  } catch (err) {
    if (err instanceof DecodeError) return refuse(err.code, err.message)
    throw err
  }
  const verdict = verifier(record.cert, nowMs)
  if (!verdict.ok) {
    return { ok: false, reason: 'bad-certificate', detail: verdict.detail, certificateReason: verdict.reason }
  }
  const cert = verdict.signed.certificate
  // In the certificate's (canonical) order too, so one record has one signed encoding.
  const sameRoles =
    cert.roles.length === record.roles.length && cert.roles.every((r, i) => record.roles[i] === r)
  if (cert.name !== record.name || cert.zone !== record.zone || cert.peerId !== record.peerId || !sameRoles) {
    return refuse(
      'identity-mismatch',
      `record for ${record.name} differs from its certificate (${cert.name})`,
    )
  }
  if (!verifyEnvelope(DOMAIN_MEMBER, cert.publicKey, envelope)) {
    return refuse('bad-signature', `record of ${cert.name} is not signed by its certificate key`)
  }
  return { ok: true, verified: { record, certificate: verdict.signed, bytes } }
}

function refuse(
  reason: RecordRejection,
  detail: string,
): { ok: false; reason: RecordRejection; detail: string } {
  return { ok: false, reason, detail }
}

function recordFromBody(b: Record<string, unknown>): MemberRecord {
  onlyKeys(
    b,
    ['v', 'name', 'zone', 'roles', 'peerId', 'addrs', 'facts', 'bootedAtS', 'incarnation', 'left', 'cert'],
    'record',
  )
  const roles = readTextList(b, 'roles', ROLES.length, 16)
  for (const role of roles) {
    if (!ROLES.includes(role as Role)) throw new DecodeError('malformed', `unknown role '${role}'`)
  }
  if (typeof b.left !== 'boolean') throw new DecodeError('malformed', 'left is not a boolean')
  return {
    v: 1,
    name: readText(b, 'name', NAME_CHARS_MAX),
    zone: readText(b, 'zone', NAME_CHARS_MAX),
    roles: roles as Role[],
    peerId: readText(b, 'peerId', ADDRESS_CHARS_MAX),
    addrs: readTextList(b, 'addrs', RECORD_ADDRS_MAX, ADDRESS_CHARS_MAX),
    facts: readTextMap(b, 'facts', FACTS_MAX, FACT_KEY_CHARS_MAX, FACT_VALUE_CHARS_MAX),
    bootedAtS: readInteger(b, 'bootedAtS'),
    incarnation: readInteger(b, 'incarnation'),
    left: b.left,
    cert: readBytes(b, 'cert', { bytesMin: 1, bytesMax: CERTIFICATE_BYTES_MAX }),
  }
}

/** The signed content of a suspicion. */
export interface Suspicion {
  readonly v: 1
  readonly subject: string
  readonly incarnation: number
  readonly from: string
}

/** A suspicion as opened: its content and the bytes to forward; the signature is checked by {@link verifySuspicion}. */
export interface OpenedSuspicion {
  readonly suspicion: Suspicion
  readonly bytes: Uint8Array
  readonly envelope: ReturnType<typeof openEnvelope>
}

/** Signs "`from` (our peer id) could not reach `subject` at `incarnation`". */
export function createSuspicion(
  key: SigningKey,
  init: { subject: string; incarnation: number; from: string },
): Uint8Array {
  if (!Number.isSafeInteger(init.incarnation) || init.incarnation < 0)
    throw new TypeError('incarnation must be a non-negative integer')
  return sealEnvelope(DOMAIN_SUSPICION, key, {
    v: 1,
    subject: init.subject,
    incarnation: init.incarnation,
    from: init.from,
  })
}

/**
 * Decodes a suspicion without checking its signature (the accuser's key comes from the accuser's
 * record, which the caller looks up by `from`).
 * @throws DecodeError when malformed or too large
 */
export function openSuspicion(bytes: Uint8Array): OpenedSuspicion {
  const envelope = openEnvelope(bytes, SUSPICION_BYTES_MAX)
  const b = envelope.body
  if (b.v !== 1)
    throw new DecodeError('malformed', `suspicion version ${describeValue(b.v)} is not supported`)
  onlyKeys(b, ['v', 'subject', 'incarnation', 'from'], 'suspicion')
  return {
    suspicion: {
      v: 1,
      subject: readText(b, 'subject', ADDRESS_CHARS_MAX),
      incarnation: readInteger(b, 'incarnation'),
      from: readText(b, 'from', ADDRESS_CHARS_MAX),
    },
    bytes,
    envelope,
  }
}

/** True when the suspicion is signed by `accuserPublicKey`. */
export function verifySuspicion(opened: OpenedSuspicion, accuserPublicKey: Uint8Array): boolean {
  return verifyEnvelope(DOMAIN_SUSPICION, accuserPublicKey, opened.envelope)
}
