/**
 * Secret files in a node's home: the node (or CA) ed25519 key and the CA's ticket secret.
 *
 * Form: `encodeCbor({ version: 1, type, ... })`. A key file also stores the public key, so a flipped
 * bit in the seed is detected as `corrupt` instead of silently becoming another identity. Decoding
 * never falls back to a new key: every problem is a typed {@link KeyFileError} the CLI reports.
 * Writing the bytes atomically with mode 0600 is the driver's job.
 */
import { DecodeError, decodeCbor, encodeCbor } from '../wire/cbor.js'
import { PUBLIC_KEY_BYTES, SECRET_KEY_BYTES, type SigningKey, signingKeyFromSeed } from '../wire/ed25519.js'
import { readBytes, readRecord, readText, tryRead } from '../wire/fields.js'
import { bytesEqual } from '../wire/hash.js'
import { TICKET_SECRET_BYTES } from './ticket.js'

/** Largest key or secret file accepted, in bytes (a real one is about 100). */
export const KEY_FILE_BYTES_MAX = 512

/** Why a key or secret file could not be used. */
export type KeyFileErrorCode = 'too-large' | 'malformed' | 'unsupported' | 'corrupt'

/** Raised by {@link decodeKeyFile} and {@link decodeTicketSecretFile}. */
export class KeyFileError extends Error {
  override name = 'KeyFileError'
  readonly code: KeyFileErrorCode
  constructor(code: KeyFileErrorCode, message: string) {
    super(message)
    this.code = code
  }
}

/** Encodes a signing key as `{ version: 1, type: 'ed25519', seed, publicKey }`. */
export function encodeKeyFile(key: SigningKey): Uint8Array {
  return encodeCbor({ version: 1, type: 'ed25519', seed: key.secretKey, publicKey: key.publicKey })
}

/**
 * Decodes a key file.
 * @throws KeyFileError `too-large`, `malformed`, `unsupported` (other version or key type) or
 *   `corrupt` (the seed does not give the stored public key)
 */
export function decodeKeyFile(bytes: Uint8Array): SigningKey {
  const record = readFile(bytes, ['version', 'type', 'seed', 'publicKey'], 'ed25519')
  const read = tryRead(() => ({
    seed: readBytes(record, 'seed', { length: SECRET_KEY_BYTES }),
    publicKey: readBytes(record, 'publicKey', { length: PUBLIC_KEY_BYTES }),
  }))
  if (!read.ok) throw new KeyFileError('malformed', `key file: ${read.detail}`)
  const key = signingKeyFromSeed(Uint8Array.from(read.value.seed))
  if (!bytesEqual(key.publicKey, read.value.publicKey)) {
    throw new KeyFileError('corrupt', 'key file: the seed does not match the stored public key')
  }
  return key
}

/** Encodes the CA's ticket secret as `{ version: 1, type: 'ticket-secret', secret }`. */
export function encodeTicketSecretFile(secret: Uint8Array): Uint8Array {
  if (secret.byteLength !== TICKET_SECRET_BYTES) throw new TypeError('ticket secret must be 32 bytes')
  return encodeCbor({ version: 1, type: 'ticket-secret', secret })
}

/**
 * Decodes a ticket secret file (32 bytes).
 * @throws KeyFileError `too-large`, `malformed` or `unsupported`
 */
export function decodeTicketSecretFile(bytes: Uint8Array): Uint8Array {
  const record = readFile(bytes, ['version', 'type', 'secret'], 'ticket-secret')
  const read = tryRead(() => readBytes(record, 'secret', { length: TICKET_SECRET_BYTES }))
  if (!read.ok) throw new KeyFileError('malformed', `ticket secret file: ${read.detail}`)
  return Uint8Array.from(read.value)
}

function readFile(bytes: Uint8Array, keys: readonly string[], type: string): Record<string, unknown> {
  let content: unknown
  try {
    content = decodeCbor(bytes, KEY_FILE_BYTES_MAX)
  } catch (err) {
    if (err instanceof DecodeError) throw new KeyFileError(err.code, `${type} file: ${err.message}`)
    throw err
  }
  const header = tryRead(() => {
    const record = readRecord(content, `${type} file`, keys)
    return { record, version: record.version, type: readText(record, 'type', 32) }
  })
  if (!header.ok) throw new KeyFileError('malformed', header.detail)
  if (header.value.version !== 1 || header.value.type !== type) {
    throw new KeyFileError(
      'unsupported',
      `expected a version 1 ${type} file, found version ${String(header.value.version)} ${header.value.type}`,
    )
  }
  return header.value.record
}
