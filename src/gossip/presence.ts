/**
 * The signed presence heartbeat each node publishes on the presence topic.
 *
 * Envelope (src/wire/envelope.ts, domain `DOMAIN_PRESENCE`) signed by the node key, with body
 * `{ v: 1, name, zone, roles, peerId, addrs, facts, seq, sentAtMs, intervalMs, cert }`. Name, zone, roles and
 * peer id are repeated from the certificate so that receivers need not trust anything else, and
 * verification refuses a heartbeat whose copy differs from the certificate.
 *
 * `seq` must grow with every heartbeat, across restarts too: the driver starts it at its wall clock
 * in ms and adds one per heartbeat, so a restarted node still moves forward.
 */

import { CERTIFICATE_BYTES_MAX } from '../ca/certificate.js'
import type { CertificateRejection, CertificateVerifier, Role, SignedCertificate } from '../ca/types.js'
import { ROLES } from '../ca/types.js'
import { type CborValue, DecodeError } from '../wire/cbor.js'
import { DOMAIN_PRESENCE } from '../wire/domains.js'
import type { SigningKey } from '../wire/ed25519.js'
import { openEnvelope, sealEnvelope, verifyEnvelope } from '../wire/envelope.js'
import {
  NAME_CHARS_MAX,
  onlyKeys,
  readBytes,
  readInteger,
  readText,
  readTextList,
  readTextMap,
} from '../wire/fields.js'
import { ADDRESS_CHARS_MAX, REPLY_ADDRS_MAX } from './request.js'

/** Largest encoded heartbeat, in bytes. */
export const PRESENCE_BYTES_MAX = 16 * 1024
/** Most facts per heartbeat. */
export const FACTS_MAX = 64
/** Longest heartbeat period a sender may announce (ms). */
export const HEARTBEAT_INTERVAL_MS_MAX = 10 * 60_000

/** Longest fact key, in characters. */
export const FACT_KEY_CHARS_MAX = 64
/** Longest fact value, in characters. */
export const FACT_VALUE_CHARS_MAX = 256

/** The signed content of a heartbeat. */
export interface Heartbeat {
  readonly v: 1
  readonly name: string
  readonly zone: string
  readonly roles: readonly Role[]
  readonly peerId: string
  readonly addrs: readonly string[]
  /** hostname, os, arch, kernel, version, uptime, and user tags from config. */
  readonly facts: Readonly<Record<string, string>>
  readonly seq: number
  /**
   * The sender's current heartbeat period, ms: receivers scale their suspect/dead timeouts to it, so a
   * large mesh can beat less often (the message count grows with N²) without being declared dead.
   */
  readonly intervalMs: number
  /** Sender's clock when signed, ms since the epoch. */
  readonly sentAtMs: number
  readonly cert: Uint8Array
}

/** What the node fills in; identity fields come from its certificate. */
export interface HeartbeatInit {
  readonly addrs: readonly string[]
  readonly facts: Readonly<Record<string, string>>
  readonly seq: number
  readonly sentAtMs: number
  /** See {@link Heartbeat.intervalMs}. */
  readonly intervalMs: number
}

/**
 * Creates a signed heartbeat for the node holding `key` and `certificate`.
 * @throws TypeError when a limit is broken (too many facts or addresses, bad seq)
 */
export function createHeartbeat(
  key: SigningKey,
  certificate: SignedCertificate,
  init: HeartbeatInit,
): Uint8Array {
  const cert = certificate.certificate
  const facts = Object.entries(init.facts)
  if (facts.length > FACTS_MAX) throw new TypeError(`more than ${FACTS_MAX} facts`)
  for (const [k, v] of facts) {
    if (k.length === 0 || k.length > FACT_KEY_CHARS_MAX || v.length > FACT_VALUE_CHARS_MAX) {
      throw new TypeError(`fact ${k.slice(0, FACT_KEY_CHARS_MAX)} out of bounds`)
    }
  }
  if (init.addrs.length > REPLY_ADDRS_MAX) throw new TypeError(`more than ${REPLY_ADDRS_MAX} addresses`)
  if (!Number.isSafeInteger(init.seq) || init.seq < 0)
    throw new TypeError('seq must be a non-negative integer')
  if (
    !Number.isSafeInteger(init.intervalMs) ||
    init.intervalMs < 1 ||
    init.intervalMs > HEARTBEAT_INTERVAL_MS_MAX
  ) {
    throw new TypeError(`intervalMs must be an integer from 1 to ${HEARTBEAT_INTERVAL_MS_MAX}`)
  }
  const body: CborValue = {
    v: 1,
    name: cert.name,
    zone: cert.zone,
    roles: [...cert.roles],
    peerId: cert.peerId,
    addrs: [...init.addrs],
    facts: Object.fromEntries(facts),
    seq: init.seq,
    sentAtMs: init.sentAtMs,
    intervalMs: init.intervalMs,
    cert: certificate.bytes,
  }
  const bytes = sealEnvelope(DOMAIN_PRESENCE, key, body)
  if (bytes.byteLength > PRESENCE_BYTES_MAX) throw new TypeError('heartbeat exceeds PRESENCE_BYTES_MAX')
  return bytes
}

/** Why a heartbeat was refused. A closed set. */
export type HeartbeatRejection =
  | 'too-large'
  | 'malformed'
  | 'unsupported-version'
  | 'bad-certificate'
  | 'identity-mismatch'
  | 'bad-signature'
  | 'from-the-future'
  | 'too-old'

/** A verified heartbeat together with the sender's verified certificate. */
export interface VerifiedHeartbeat {
  readonly heartbeat: Heartbeat
  readonly certificate: SignedCertificate
}

/** Result of {@link verifyHeartbeat}; never throws. */
export type HeartbeatVerdict =
  | { readonly ok: true; readonly verified: VerifiedHeartbeat }
  | {
      readonly ok: false
      readonly reason: HeartbeatRejection
      readonly detail: string
      readonly certificateReason?: CertificateRejection
    }

/** What {@link verifyHeartbeat} checks against. */
export interface HeartbeatCheck {
  readonly verifier: CertificateVerifier
  readonly nowMs: number
  /** How far ahead of our clock `sentAtMs` may be, ms. */
  readonly clockSkewToleranceMs: number
  /** Oldest acceptable heartbeat, ms before now (so an old one replayed cannot resurrect a node). */
  readonly maxAgeMs: number
}

/**
 * Verifies a heartbeat: size, decode, certificate (chain, validity, revocation via the verifier),
 * identity fields equal to the certificate's, signature, send time within the window.
 */
export function verifyHeartbeat(bytes: Uint8Array, check: HeartbeatCheck): HeartbeatVerdict {
  let heartbeat: Heartbeat
  let envelope: ReturnType<typeof openEnvelope>
  try {
    envelope = openEnvelope(bytes, PRESENCE_BYTES_MAX)
    const b = envelope.body
    if (b.v !== 1) {
      return typeof b.v === 'number'
        ? refuse('unsupported-version', `heartbeat version ${b.v}`)
        : refuse('malformed', 'heartbeat version missing')
    }
    heartbeat = heartbeatFromBody(b)
  } catch (err) {
    if (err instanceof DecodeError) return refuse(err.code, err.message)
    throw err
  }
  const verdict = check.verifier(heartbeat.cert, check.nowMs)
  if (!verdict.ok) {
    return { ok: false, reason: 'bad-certificate', detail: verdict.detail, certificateReason: verdict.reason }
  }
  const cert = verdict.signed.certificate
  const sameRoles =
    cert.roles.length === heartbeat.roles.length && cert.roles.every(r => heartbeat.roles.includes(r))
  if (
    cert.name !== heartbeat.name ||
    cert.zone !== heartbeat.zone ||
    cert.peerId !== heartbeat.peerId ||
    !sameRoles
  ) {
    return refuse(
      'identity-mismatch',
      `heartbeat for ${heartbeat.name} differs from its certificate (${cert.name})`,
    )
  }
  if (!verifyEnvelope(DOMAIN_PRESENCE, cert.publicKey, envelope)) {
    return refuse('bad-signature', `heartbeat from ${cert.name} is not signed by its certificate key`)
  }
  if (heartbeat.sentAtMs > check.nowMs + check.clockSkewToleranceMs) {
    return refuse(
      'from-the-future',
      `heartbeat sent ${heartbeat.sentAtMs - check.nowMs} ms ahead of our clock`,
    )
  }
  if (heartbeat.sentAtMs < check.nowMs - check.maxAgeMs) {
    return refuse('too-old', `heartbeat is ${check.nowMs - heartbeat.sentAtMs} ms old`)
  }
  return { ok: true, verified: { heartbeat, certificate: verdict.signed } }
}

function refuse(reason: HeartbeatRejection, detail: string): HeartbeatVerdict {
  return { ok: false, reason, detail }
}

function heartbeatFromBody(b: Record<string, unknown>): Heartbeat {
  onlyKeys(
    b,
    ['v', 'name', 'zone', 'roles', 'peerId', 'addrs', 'facts', 'seq', 'sentAtMs', 'intervalMs', 'cert'],
    'heartbeat',
  )
  const roles = readTextList(b, 'roles', ROLES.length, 16)
  for (const role of roles) {
    if (!ROLES.includes(role as Role)) throw new DecodeError('malformed', `unknown role '${role}'`)
  }
  return {
    v: 1,
    name: readText(b, 'name', NAME_CHARS_MAX),
    zone: readText(b, 'zone', NAME_CHARS_MAX),
    roles: roles as Role[],
    peerId: readText(b, 'peerId', ADDRESS_CHARS_MAX),
    addrs: readTextList(b, 'addrs', REPLY_ADDRS_MAX, ADDRESS_CHARS_MAX),
    facts: readTextMap(b, 'facts', FACTS_MAX, FACT_KEY_CHARS_MAX, FACT_VALUE_CHARS_MAX),
    seq: readInteger(b, 'seq'),
    sentAtMs: readInteger(b, 'sentAtMs'),
    intervalMs: readInteger(b, 'intervalMs', { min: 1, max: HEARTBEAT_INTERVAL_MS_MAX }),
    cert: readBytes(b, 'cert', { bytesMin: 1, bytesMax: CERTIFICATE_BYTES_MAX }),
  }
}
