/**
 * Certificates: the CA's signature binding a name, zone and roles to a node's ed25519 key (its PeerId).
 *
 * Wire form: the signed envelope of src/wire/envelope.ts, `{ body, sig }`, signed by the CA key under
 * {@link DOMAIN_CERTIFICATE}; the body's `version` is {@link CERTIFICATE_VERSION}. Verification is
 * one ordered pipeline returning a closed reason: size → decode → issuer → signature → revocation →
 * validity window. The first failing step names the verdict, so an expired certificate from another
 * CA is `wrong-issuer`, not `expired`.
 */
import { DecodeError } from '../wire/cbor.js'
import { DOMAIN_CERTIFICATE } from '../wire/domains.js'
import { PUBLIC_KEY_BYTES, type SigningKey } from '../wire/ed25519.js'
import { type OpenedEnvelope, openEnvelope, sealEnvelope, verifyEnvelope } from '../wire/envelope.js'
import {
  isValidName,
  readBytes,
  readFormatVersion,
  readInteger,
  readName,
  readRecord,
  readText,
  tryRead,
} from '../wire/fields.js'
import { bytesEqual, hash, toHex } from '../wire/hash.js'
import { FINGERPRINT_BYTES, fingerprintOf } from './fingerprint.js'
import { peerIdOfPublicKey } from './identity.js'
import { canonicalRoles, readRoles } from './roles.js'
import type {
  Certificate,
  CertificateRejection,
  CertificateVerdict,
  CertificateVerifier,
  Role,
  SignedCertificate,
} from './types.js'

/** Format version of certificates; version 1 (signed without a domain) is refused. */
export const CERTIFICATE_VERSION = 2
/** Largest encoded certificate accepted, in bytes (a real one is about 330). */
export const CERTIFICATE_BYTES_MAX = 1024
/** Serial size in bytes before hex encoding. */
export const SERIAL_BYTES = 16
/** Clock difference tolerated at both ends of the validity window unless the caller says otherwise. */
export const CLOCK_SKEW_TOLERANCE_MS_DEFAULT = 30_000
/** Default bound of {@link createCertificateVerifier}'s cache, in entries. */
export const DEFAULT_VERIFIER_CACHE_ENTRIES_MAX = 4096

const PEER_ID_CHARS_MAX = 128
const SERIAL_PATTERN = /^[0-9a-f]{32}$/
const FIELD_KEYS = [
  'version',
  'serial',
  'name',
  'publicKey',
  'peerId',
  'zone',
  'roles',
  'notBeforeMs',
  'notAfterMs',
  'issuer',
] as const

/** What the CA decides when issuing; the PeerId and issuer fingerprint are derived, not chosen. */
export interface CertificateFields {
  /** 16 random bytes as lower-case hex, see {@link newSerial}. */
  readonly serial: string
  readonly name: string
  /** Raw 32-byte ed25519 public key of the holder. */
  readonly publicKey: Uint8Array
  readonly zone: string
  /** Any order, duplicates allowed; stored canonical (sorted as in `ROLES`, de-duplicated). */
  readonly roles: readonly Role[]
  /** Validity window, ms since the epoch, inclusive at both ends. */
  readonly notBeforeMs: number
  readonly notAfterMs: number
}

/** Raised by {@link issueCertificate} when the fields could not form a valid certificate. */
export class CertificateError extends Error {
  override name = 'CertificateError'
  readonly code = 'invalid-fields'
}

/** Result of {@link decodeCertificate}: structure only, no signature or time checks. */
export type CertificateDecoding =
  | { readonly ok: true; readonly signed: SignedCertificate }
  | { readonly ok: false; readonly reason: 'malformed' | 'too-large'; readonly detail: string }

/** Inputs of {@link verifyCertificate}. */
export interface CertificateCheckOptions {
  /** Raw 32-byte public key of the mesh CA. */
  readonly caPublicKey: Uint8Array
  readonly nowMs: number
  /** Tolerated clock difference, default {@link CLOCK_SKEW_TOLERANCE_MS_DEFAULT}. */
  readonly clockSkewToleranceMs?: number
  /** True when the serial is on the current revocation list. Must not throw. */
  readonly isRevoked?: (serial: string) => boolean
}

/** A fresh serial from 16 bytes of `randomBytes`. */
export function newSerial(randomBytes: (count: number) => Uint8Array): string {
  const bytes = randomBytes(SERIAL_BYTES)
  if (bytes.byteLength !== SERIAL_BYTES) throw new TypeError(`randomBytes returned ${bytes.byteLength} bytes`)
  return toHex(bytes)
}

/** True when `text` has the shape of a serial (32 lower-case hex characters). */
export function isSerial(text: string): boolean {
  return SERIAL_PATTERN.test(text)
}

/**
 * Signs a certificate for `fields` with the CA key.
 * @throws CertificateError when a field is invalid (bad name, key, serial or window)
 */
export function issueCertificate(caKey: SigningKey, fields: CertificateFields): SignedCertificate {
  const peerId = peerIdOfPublicKey(fields.publicKey)
  const roles = canonicalRoles(fields.roles)
  if (peerId === undefined) throw new CertificateError('publicKey is not a 32-byte ed25519 key')
  if (!isSerial(fields.serial)) throw new CertificateError('serial must be 32 lower-case hex characters')
  if (!isValidName(fields.name)) throw new CertificateError(`invalid name ${JSON.stringify(fields.name)}`)
  if (!isValidName(fields.zone)) throw new CertificateError(`invalid zone ${JSON.stringify(fields.zone)}`)
  if (roles.length === 0) throw new CertificateError('a certificate needs at least one role')
  if (
    !Number.isSafeInteger(fields.notBeforeMs) ||
    !Number.isSafeInteger(fields.notAfterMs) ||
    fields.notBeforeMs < 0 ||
    fields.notAfterMs < fields.notBeforeMs
  ) {
    throw new CertificateError('validity window must be integers with notBeforeMs <= notAfterMs')
  }
  const certificate: Certificate = {
    version: CERTIFICATE_VERSION,
    serial: fields.serial,
    name: fields.name,
    publicKey: fields.publicKey,
    peerId,
    zone: fields.zone,
    roles,
    notBeforeMs: fields.notBeforeMs,
    notAfterMs: fields.notAfterMs,
    issuer: fingerprintOf(caKey.publicKey),
  }
  const bytes = sealEnvelope(DOMAIN_CERTIFICATE, caKey, { ...certificate, roles: [...roles] })
  return { certificate, bytes, hash: hash(bytes) }
}

/** Decodes a certificate without checking its signature or dates. Never throws. */
export function decodeCertificate(bytes: Uint8Array): CertificateDecoding {
  const parts = decodeCertificateParts(bytes)
  return parts.ok ? { ok: true, signed: parts.signed } : parts
}

type CertificateParts =
  | { ok: true; signed: SignedCertificate; envelope: OpenedEnvelope }
  | { ok: false; reason: 'malformed' | 'too-large'; detail: string }

function decodeCertificateParts(bytes: Uint8Array): CertificateParts {
  const read = tryRead(() => {
    const envelope = openEnvelope(bytes, CERTIFICATE_BYTES_MAX)
    return { envelope, certificate: readCertificate(envelope.body) }
  })
  if (!read.ok) return read
  const { envelope, certificate } = read.value
  return { ok: true, signed: { certificate, bytes, hash: hash(bytes) }, envelope }
}

function readCertificate(content: unknown): Certificate {
  const record = readRecord(content, 'certificate', FIELD_KEYS)
  const version = readFormatVersion(
    record,
    'certificate',
    CERTIFICATE_VERSION,
    're-create the home with mesh init (CA) or join again with mesh join (member)',
  )
  const serial = readText(record, 'serial', SERIAL_BYTES * 2)
  if (!isSerial(serial)) throw new DecodeError('malformed', 'serial is not 32 lower-case hex characters')
  const publicKey = readBytes(record, 'publicKey', { length: PUBLIC_KEY_BYTES })
  const peerId = readText(record, 'peerId', PEER_ID_CHARS_MAX)
  // The certificate must name the PeerId the transport will authenticate for this key.
  if (peerIdOfPublicKey(publicKey) !== peerId) {
    throw new DecodeError('malformed', 'peerId does not match publicKey')
  }
  const notBeforeMs = readInteger(record, 'notBeforeMs')
  const notAfterMs = readInteger(record, 'notAfterMs')
  if (notAfterMs < notBeforeMs) throw new DecodeError('malformed', 'notAfterMs precedes notBeforeMs')
  return {
    version,
    serial,
    name: readName(record, 'name'),
    publicKey,
    peerId,
    zone: readName(record, 'zone'),
    roles: readRoles(record, 'roles'),
    notBeforeMs,
    notAfterMs,
    issuer: readBytes(record, 'issuer', { length: FINGERPRINT_BYTES }),
  }
}

/**
 * Where `nowMs` falls relative to a certificate's window, allowing `clockSkewToleranceMs` at both ends:
 * `undefined` inside, otherwise the rejection. Pure; tested with tables.
 */
export function checkValidityWindow(
  certificate: Pick<Certificate, 'notBeforeMs' | 'notAfterMs'>,
  nowMs: number,
  clockSkewToleranceMs: number,
): { reason: 'not-yet-valid' | 'expired'; detail: string } | undefined {
  if (nowMs + clockSkewToleranceMs < certificate.notBeforeMs) {
    return { reason: 'not-yet-valid', detail: `valid from ${certificate.notBeforeMs}, now ${nowMs}` }
  }
  if (nowMs - clockSkewToleranceMs > certificate.notAfterMs) {
    return { reason: 'expired', detail: `expired at ${certificate.notAfterMs}, now ${nowMs}` }
  }
  return undefined
}

/** Full verification of certificate bytes against the mesh CA. Never throws. */
export function verifyCertificate(bytes: Uint8Array, options: CertificateCheckOptions): CertificateVerdict {
  const checked = checkSignedPart(bytes, options.caPublicKey, fingerprintOf(options.caPublicKey))
  if (!checked.ok) return checked
  return checkCurrentPart(checked.signed, options)
}

function reject(reason: CertificateRejection, detail: string): CertificateVerdict {
  return { ok: false, reason, detail }
}

/** The time-independent steps: decode, issuer, signature. */
function checkSignedPart(
  bytes: Uint8Array,
  caPublicKey: Uint8Array,
  meshFingerprint: Uint8Array,
): CertificateVerdict {
  const parts = decodeCertificateParts(bytes)
  if (!parts.ok) return parts
  if (!bytesEqual(parts.signed.certificate.issuer, meshFingerprint)) {
    return reject('wrong-issuer', 'issued by another CA')
  }
  if (!verifyEnvelope(DOMAIN_CERTIFICATE, caPublicKey, parts.envelope)) {
    return reject('bad-signature', 'signature does not verify with the mesh CA key')
  }
  return { ok: true, signed: parts.signed }
}

/** The steps that depend on the moment: revocation and validity window. */
function checkCurrentPart(
  signed: SignedCertificate,
  options: Pick<CertificateCheckOptions, 'nowMs' | 'clockSkewToleranceMs' | 'isRevoked'>,
): CertificateVerdict {
  const { certificate } = signed
  if (options.isRevoked?.(certificate.serial) === true) {
    return reject('revoked', `serial ${certificate.serial} is revoked`)
  }
  const window = checkValidityWindow(
    certificate,
    options.nowMs,
    options.clockSkewToleranceMs ?? CLOCK_SKEW_TOLERANCE_MS_DEFAULT,
  )
  if (window !== undefined) return reject(window.reason, window.detail)
  return { ok: true, signed }
}

/** Configuration of {@link createCertificateVerifier}. */
export interface CertificateVerifierInit {
  /** Raw 32-byte public key of the mesh CA. */
  readonly caPublicKey: Uint8Array
  /** Consulted on every call, cached or not. Must not throw. */
  readonly isRevoked?: (serial: string) => boolean
  /** Most certificates whose signature is remembered; default {@link DEFAULT_VERIFIER_CACHE_ENTRIES_MAX}. */
  readonly cacheEntriesMax?: number
  readonly clockSkewToleranceMs?: number
}

/** Counters of a caching verifier, for metrics. */
export interface CertificateVerifierStats {
  readonly cacheHits: number
  readonly cacheMisses: number
  /** Times the cache was full and dropped its least recently used entry (a limit hit). */
  readonly cacheEvictions: number
  readonly cacheEntries: number
}

/** A {@link CertificateVerifier} that remembers good signatures; `stats()` reads its counters. */
export type CachingCertificateVerifier = CertificateVerifier & {
  readonly stats: () => CertificateVerifierStats
}

/**
 * Builds the hot-path verifier. Signature and structure checks are cached by certificate hash
 * (bounded, least recently used dropped first); revocation and the validity window are checked on
 * every call, so a cached certificate still expires and can still be revoked. Failures are not cached.
 */
export function createCertificateVerifier(init: CertificateVerifierInit): CachingCertificateVerifier {
  const entriesMax = init.cacheEntriesMax ?? DEFAULT_VERIFIER_CACHE_ENTRIES_MAX
  if (!Number.isSafeInteger(entriesMax) || entriesMax < 1)
    throw new RangeError('cacheEntriesMax must be >= 1')
  const caPublicKey = Uint8Array.from(init.caPublicKey)
  const meshFingerprint = fingerprintOf(caPublicKey)
  const cache = new Map<string, SignedCertificate>()
  let cacheHits = 0
  let cacheMisses = 0
  let cacheEvictions = 0
  const current = { isRevoked: init.isRevoked, clockSkewToleranceMs: init.clockSkewToleranceMs }

  const verifier: CertificateVerifier = (bytes, nowMs) => {
    if (bytes.byteLength > CERTIFICATE_BYTES_MAX) {
      return reject('too-large', `${bytes.byteLength} bytes exceeds ${CERTIFICATE_BYTES_MAX}`)
    }
    const key = toHex(hash(bytes))
    let signed = cache.get(key)
    if (signed !== undefined) {
      cacheHits++
      cache.delete(key)
      cache.set(key, signed)
    } else {
      cacheMisses++
      const checked = checkSignedPart(bytes, caPublicKey, meshFingerprint)
      if (!checked.ok) return checked
      signed = checked.signed
      if (cache.size >= entriesMax) {
        const oldest = cache.keys().next().value
        if (oldest !== undefined) cache.delete(oldest)
        cacheEvictions++
      }
      cache.set(key, signed)
    }
    return checkCurrentPart(signed, { ...current, nowMs })
  }
  const stats = (): CertificateVerifierStats => ({
    cacheHits,
    cacheMisses,
    cacheEvictions,
    cacheEntries: cache.size,
  })
  return Object.assign(verifier, { stats })
}
