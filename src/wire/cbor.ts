/**
 * Deterministic CBOR for everything that is signed or hashed.
 *
 * Encoding uses cborg's canonical rules (shortest integers, map keys sorted length-first, no
 * indefinite lengths). Decoding is strict: it refuses undefined, indefinite lengths, duplicate map
 * keys and non-shortest integers, and every decode is bounded by a byte limit before it starts, so
 * random bytes produce a typed {@link DecodeError}, never a crash. {@link decodeCanonicalCbor} goes
 * further and accepts only the one deterministic encoding of a value (map keys in canonical order
 * included), for bytes whose exact form matters: the signed envelope and its body.
 *
 * {@link DecodeError} is the one error of the wire layer: the field readers in fields.ts throw it too.
 */
import { decode, encode } from 'cborg'
import { bytesEqual } from './hash.js'

/** A value that can be CBOR-encoded deterministically. Floats are deliberately absent: use integers. */
export type CborValue =
  | null
  | boolean
  | number
  | bigint
  | string
  | Uint8Array
  | CborValue[]
  | { [key: string]: CborValue | undefined }

/**
 * Raised when bytes are not a well-formed, canonical CBOR item within the size limit, or (from the
 * field readers) when a decoded field is missing, of the wrong type or out of range.
 */
export class DecodeError extends Error {
  override name = 'DecodeError'
  readonly code: 'too-large' | 'malformed'
  constructor(code: 'too-large' | 'malformed', message: string) {
    super(message)
    this.code = code
  }
}

const decodeOptions = {
  strict: true,
  allowUndefined: false,
  allowIndefinite: false,
  allowInfinity: false,
  allowNaN: false,
  rejectDuplicateMapKeys: true,
  useMaps: false,
} as const

/** Encodes `value` canonically. Object properties whose value is `undefined` are omitted. */
export function encodeCbor(value: CborValue): Uint8Array {
  return encode(stripUndefined(value))
}

/**
 * Decodes one CBOR item of at most `bytesMax` bytes.
 * @throws DecodeError with code `too-large` or `malformed`
 */
export function decodeCbor(bytes: Uint8Array, bytesMax: number): unknown {
  if (bytes.byteLength > bytesMax) {
    throw new DecodeError('too-large', `${bytes.byteLength} bytes exceeds the limit of ${bytesMax}`)
  }
  try {
    return decode(bytes, decodeOptions)
  } catch (err) {
    throw new DecodeError('malformed', `not canonical CBOR: ${(err as Error).message}`)
  }
}

/**
 * Like {@link decodeCbor}, and also refuses bytes that are not byte-identical to the deterministic
 * re-encoding of what they decode to (e.g. a map whose keys are not in canonical order), so one value
 * has exactly one accepted encoding.
 * @throws DecodeError with code `too-large` or `malformed`
 */
export function decodeCanonicalCbor(bytes: Uint8Array, bytesMax: number): unknown {
  const value = decodeCbor(bytes, bytesMax)
  let again: Uint8Array
  try {
    again = encodeCbor(value as CborValue)
  } catch (err) {
    throw new DecodeError('malformed', `cannot re-encode: ${(err as Error).message}`)
  }
  if (!bytesEqual(again, bytes)) throw new DecodeError('malformed', 'not the deterministic encoding')
  return value
}

function stripUndefined(value: CborValue): CborValue {
  if (Array.isArray(value)) return value.map(stripUndefined)
  if (value !== null && typeof value === 'object' && !(value instanceof Uint8Array)) {
    const out: { [key: string]: CborValue } = {}
    for (const [k, v] of Object.entries(value)) if (v !== undefined) out[k] = stripUndefined(v)
    return out
  }
  return value
}

/** Type guard for plain decoded CBOR maps. */
export function isRecord(value: unknown): value is Record<string, unknown> {
  return (
    value !== null && typeof value === 'object' && !Array.isArray(value) && !(value instanceof Uint8Array)
  )
}
