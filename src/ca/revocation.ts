/**
 * Revocation lists: the CA's signed, versioned statement of which certificates are withdrawn.
 *
 * Wire form: the signed envelope of src/wire/envelope.ts, `{ body, sig }`, signed by the CA key under
 * {@link DOMAIN_REVOCATION_LIST}; the body's `version` is {@link REVOCATION_LIST_FORMAT_VERSION} (the
 * list's own, increasing number is `listVersion`). Every node keeps the
 * newest list it has verified ({@link newer}); a higher version always replaces a lower one, so an
 * old list replayed by anyone is ignored. Entries carry the certificate's `notAfterMs` so the CA can
 * drop them once the certificate would be refused as expired anyway, keeping the list bounded.
 */

import { type CborValue, DecodeError, decodeCbor, encodeCbor } from '../wire/cbor.js'
import { DOMAIN_REVOCATION_LIST } from '../wire/domains.js'
import type { SigningKey } from '../wire/ed25519.js'
import { sealEnvelope } from '../wire/envelope.js'
import {
  readArray,
  readBytes,
  readFormatVersion,
  readInteger,
  readName,
  readRecord,
  readText,
  tryRead,
} from '../wire/fields.js'
import { type CaDocumentRejection, openCaDocument } from './ca-document.js'
import { isSerial } from './certificate.js'
import { FINGERPRINT_BYTES, fingerprintOf } from './fingerprint.js'

/** Format version of revocation lists; version 1 (signed without a domain) is refused. */
export const REVOCATION_LIST_FORMAT_VERSION = 2
/** Most entries in one list. */
export const REVOCATION_ENTRIES_MAX = 4096
/** Largest encoded list, in bytes (a full list of long names is about 0.9 MiB). */
export const REVOCATION_LIST_BYTES_MAX = 1_048_576
/**
 * Most CBOR items of a list's body: its fields, and eleven per entry (a map of five fields). A list is
 * decoded before its signature is checked; without the bound 1 MB of tiny maps took 170-230 ms.
 */
const REVOCATION_LIST_ITEMS_MAX = 16 + 11 * REVOCATION_ENTRIES_MAX

const PEER_ID_CHARS_MAX = 128

/** One withdrawn certificate. */
export interface RevocationEntry {
  readonly serial: string
  readonly name: string
  /** PeerId of the holder, so transports can drop and deny it without its certificate at hand. */
  readonly peerId: string
  readonly revokedAtMs: number
  /** The certificate's own end; after it the entry may be dropped. */
  readonly notAfterMs: number
}

/** The content of a revocation list. Entries are sorted by serial, one per serial. */
export interface RevocationList {
  /** Increases by one with every list the CA publishes; 0 is the empty list before any revocation. */
  readonly version: number
  readonly issuedAtMs: number
  /** The mesh fingerprint (SHA-256 of the CA public key). */
  readonly issuer: Uint8Array
  readonly entries: readonly RevocationEntry[]
}

/** A list with its exact signed bytes (what is published and stored). */
export interface SignedRevocationList {
  readonly list: RevocationList
  readonly bytes: Uint8Array
}

/** Why a list was refused. A closed set. */
export type RevocationListRejection = CaDocumentRejection

/** Result of {@link verifyRevocationList}. */
export type RevocationListVerdict =
  | { readonly ok: true; readonly signed: SignedRevocationList }
  | { readonly ok: false; readonly reason: RevocationListRejection; readonly detail: string }

/** Raised by {@link signRevocationList} for content that could not form a valid list. */
export class RevocationListError extends Error {
  override name = 'RevocationListError'
  readonly code: 'invalid-fields' | 'too-large'
  constructor(code: 'invalid-fields' | 'too-large', message: string) {
    super(message)
    this.code = code
  }
}

/**
 * Signs a list; entries may come in any order (they are sorted) but serials must be unique.
 * @throws RevocationListError
 */
export function signRevocationList(
  caKey: SigningKey,
  content: { version: number; issuedAtMs: number; entries: readonly RevocationEntry[] },
): SignedRevocationList {
  const entries = [...content.entries].sort((a, b) =>
    a.serial < b.serial ? -1 : a.serial > b.serial ? 1 : 0,
  )
  if (entries.length > REVOCATION_ENTRIES_MAX) {
    throw new RevocationListError('too-large', `more than ${REVOCATION_ENTRIES_MAX} entries`)
  }
  if (!Number.isSafeInteger(content.version) || content.version < 0) {
    throw new RevocationListError('invalid-fields', 'version must be a non-negative integer')
  }
  const list: RevocationList = {
    version: content.version,
    issuedAtMs: content.issuedAtMs,
    issuer: fingerprintOf(caKey.publicKey),
    entries,
  }
  const body: CborValue = {
    version: REVOCATION_LIST_FORMAT_VERSION,
    listVersion: list.version,
    issuedAtMs: list.issuedAtMs,
    issuer: list.issuer,
    entries: entries.map(entry => ({ ...entry })),
  }
  // Re-reading what we are about to sign keeps the writer and the reader on one definition.
  const read = tryRead(() => readRevocationList(decodeCbor(encodeCbor(body), Number.POSITIVE_INFINITY)))
  if (!read.ok) throw new RevocationListError('invalid-fields', read.detail)
  const bytes = sealEnvelope(DOMAIN_REVOCATION_LIST, caKey, body)
  if (bytes.byteLength > REVOCATION_LIST_BYTES_MAX) {
    throw new RevocationListError('too-large', `list is ${bytes.byteLength} bytes`)
  }
  return { list, bytes }
}

/** Decodes and verifies a list against the mesh CA key. Never throws. */
export function verifyRevocationList(bytes: Uint8Array, caPublicKey: Uint8Array): RevocationListVerdict {
  const opened = openCaDocument(bytes, caPublicKey, {
    domain: DOMAIN_REVOCATION_LIST,
    bytesMax: REVOCATION_LIST_BYTES_MAX,
    itemsMax: REVOCATION_LIST_ITEMS_MAX,
    read: readRevocationList,
    what: 'list',
  })
  return opened.ok ? { ok: true, signed: { list: opened.value, bytes } } : opened
}

function readRevocationList(content: unknown): RevocationList {
  const record = readRecord(content, 'revocation list', [
    'version',
    'listVersion',
    'issuedAtMs',
    'issuer',
    'entries',
  ])
  readFormatVersion(
    record,
    'revocation list',
    REVOCATION_LIST_FORMAT_VERSION,
    'upgrade mesh on the CA machine and re-create the home with mesh init',
  )
  const entries = readArray(record, 'entries', REVOCATION_ENTRIES_MAX, readEntry)
  for (let i = 1; i < entries.length; i++) {
    // Sorted and unique: one canonical encoding per set of entries.
    if ((entries[i - 1]?.serial ?? '') >= (entries[i]?.serial ?? '')) {
      throw new DecodeError('malformed', 'entries are not sorted by unique serial')
    }
  }
  return {
    version: readInteger(record, 'listVersion'),
    issuedAtMs: readInteger(record, 'issuedAtMs'),
    issuer: readBytes(record, 'issuer', { length: FINGERPRINT_BYTES }),
    entries,
  }
}

function readEntry(item: unknown): RevocationEntry {
  const record = readRecord(item, 'revocation entry', [
    'serial',
    'name',
    'peerId',
    'revokedAtMs',
    'notAfterMs',
  ])
  const serial = readText(record, 'serial', 32)
  if (!isSerial(serial))
    throw new DecodeError('malformed', 'entry serial is not 32 lower-case hex characters')
  return {
    serial,
    name: readName(record, 'name'),
    peerId: readText(record, 'peerId', PEER_ID_CHARS_MAX),
    revokedAtMs: readInteger(record, 'revokedAtMs'),
    notAfterMs: readInteger(record, 'notAfterMs'),
  }
}

/** True when `candidate` should replace `current` (higher version; anything beats no list). */
export function newer(candidate: RevocationList, current: RevocationList | undefined): boolean {
  return current === undefined || candidate.version > current.version
}

/** Fast membership tests over one list. */
export interface RevocationLookup {
  readonly version: number
  isRevoked(serial: string): boolean
  isPeerRevoked(peerId: string): boolean
}

/**
 * Builds lookup sets for a list. Note `isPeerRevoked` is true while any certificate of that PeerId
 * is revoked, even if it also holds a newer valid one; a re-admitted machine should use a new key.
 */
export function createRevocationLookup(list: RevocationList | undefined): RevocationLookup {
  const serials = new Set(list?.entries.map(entry => entry.serial))
  const peers = new Set(list?.entries.map(entry => entry.peerId))
  return {
    version: list?.version ?? 0,
    isRevoked: serial => serials.has(serial),
    isPeerRevoked: peerId => peers.has(peerId),
  }
}
