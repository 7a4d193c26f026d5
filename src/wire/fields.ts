/**
 * Strict readers for decoded CBOR maps: the one set used by every format (CA certificates, signing
 * requests, revocation lists, tickets, issuer state and key files; gossip requests, replies and
 * heartbeats). Each reads one field, returns it with its type narrowed, or throws a
 * {@link DecodeError} `malformed` naming the field, so decoders read like a schema and random input
 * always ends in a typed error. {@link tryRead} turns that error into a result for the decoders that
 * promise never to throw. Keeping the checks here means one definition of "a 32-byte key" or "a
 * name" for every format.
 */
import { DecodeError, isRecord } from './cbor.js'

/** Longest name or zone, in characters. */
export const NAME_CHARS_MAX = 64

/** Names and zones: a letter or digit, then letters, digits, `.`, `_` or `-`. */
const NAME_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._-]*$/

/** True when `text` is usable as a node name or zone (1..{@link NAME_CHARS_MAX} chars, see pattern). */
export function isValidName(text: string): boolean {
  return text.length >= 1 && text.length <= NAME_CHARS_MAX && NAME_PATTERN.test(text)
}

function malformed(detail: string): DecodeError {
  return new DecodeError('malformed', detail)
}

/**
 * A decoded value as an error message shows it: numbers and short texts as they are, anything else by
 * its kind. Never the whole of a large value: `String()` of a 1 MB byte string in a version field took
 * 20 ms (found by the fuzz campaign, docs/fuzz.md).
 */
export function describeValue(value: unknown): string {
  if (typeof value === 'string') return value.length > 32 ? `${value.slice(0, 32)}…` : value
  if (value === null || typeof value !== 'object') return String(value)
  if (value instanceof Uint8Array) return `${value.byteLength} bytes`
  return Array.isArray(value) ? `a list of ${value.length}` : 'a map'
}

/** Refuses fields other than `allowed`, so two encodings of one meaning cannot both verify. */
export function onlyKeys(record: Record<string, unknown>, allowed: readonly string[], what: string): void {
  for (const key of Object.keys(record)) {
    if (!allowed.includes(key)) throw malformed(`${what} has unknown field '${key}'`)
  }
}

/** Returns `value` as a record whose keys are exactly `required` plus any of `optional`. */
export function readRecord(
  value: unknown,
  what: string,
  required: readonly string[],
  optional: readonly string[] = [],
): Record<string, unknown> {
  if (!isRecord(value)) throw malformed(`${what} is not a map`)
  for (const key of required) {
    if (!Object.hasOwn(value, key)) throw malformed(`${what} lacks ${key}`)
  }
  onlyKeys(value, [...required, ...optional], what)
  return value
}

/** Size of a byte-string field: exactly `length` bytes, or `bytesMin` (default 0) to `bytesMax`. */
export type ByteSize = { readonly length: number } | { readonly bytesMin?: number; readonly bytesMax: number }

/** A byte string of the given {@link ByteSize}. */
export function readBytes(record: Record<string, unknown>, key: string, size: ByteSize): Uint8Array {
  const value = record[key]
  if (!(value instanceof Uint8Array)) throw malformed(`${key} is not bytes`)
  if ('length' in size) {
    if (value.byteLength !== size.length) {
      throw malformed(`${key} is ${value.byteLength} bytes, not ${size.length}`)
    }
  } else if (value.byteLength < (size.bytesMin ?? 0) || value.byteLength > size.bytesMax) {
    throw malformed(`${key} is ${value.byteLength} bytes, not ${size.bytesMin ?? 0}..${size.bytesMax}`)
  }
  return value
}

/** Optional byte string: `undefined` when the key is absent. */
export function readOptionalBytes(
  record: Record<string, unknown>,
  key: string,
  size: ByteSize,
): Uint8Array | undefined {
  return Object.hasOwn(record, key) ? readBytes(record, key, size) : undefined
}

/** A text string of at most `charsMax` characters. */
export function readText(record: Record<string, unknown>, key: string, charsMax: number): string {
  const value = record[key]
  if (typeof value !== 'string') throw malformed(`${key} is not text`)
  if (value.length > charsMax) throw malformed(`${key} exceeds ${charsMax} characters`)
  return value
}

/** Optional text: `undefined` when the key is absent. */
export function readOptionalText(
  record: Record<string, unknown>,
  key: string,
  charsMax: number,
): string | undefined {
  return Object.hasOwn(record, key) ? readText(record, key, charsMax) : undefined
}

/** A node name or zone (see {@link isValidName}). */
export function readName(record: Record<string, unknown>, key: string): string {
  const value = readText(record, key, NAME_CHARS_MAX)
  if (!isValidName(value)) throw malformed(`${key} is not a valid name`)
  return value
}

/** Inclusive bounds of an integer field; by default `0..Number.MAX_SAFE_INTEGER`. */
export interface IntegerRange {
  readonly min?: number
  readonly max?: number
}

/** A safe integer within `range` (timestamps in ms, versions, counts, exit codes). */
export function readInteger(record: Record<string, unknown>, key: string, range: IntegerRange = {}): number {
  const { min = 0, max = Number.MAX_SAFE_INTEGER } = range
  const value = record[key]
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < min || value > max) {
    throw malformed(`${key} is not an integer in ${min}..${max}`)
  }
  return value
}

/** A constant: the field must equal `expected`. */
export function readConstant<T extends number | string>(
  record: Record<string, unknown>,
  key: string,
  expected: T,
): T {
  if (record[key] !== expected) throw malformed(`${key} is not ${String(expected)}`)
  return expected
}

/**
 * The `version` field of a versioned format, which must be `current`. An older version is refused
 * with a message that says the bytes come from an older mesh and what to do about it (`remedy`).
 */
export function readFormatVersion<T extends number>(
  record: Record<string, unknown>,
  format: string,
  current: T,
  remedy: string,
): T {
  const value = record.version
  if (value === current) return current
  if (typeof value === 'number' && Number.isSafeInteger(value) && value >= 1 && value < current) {
    throw malformed(`${format} format version ${value} is from an older mesh; ${remedy}`)
  }
  throw malformed(`${format} format version ${describeValue(value)} is not supported (expected ${current})`)
}

/** An array of at most `itemsMax` items, each read by `readItem`. */
export function readArray<T>(
  record: Record<string, unknown>,
  key: string,
  itemsMax: number,
  readItem: (item: unknown, index: number) => T,
): T[] {
  const value = record[key]
  if (!Array.isArray(value)) throw malformed(`${key} is not an array`)
  if (value.length > itemsMax) throw malformed(`${key} has more than ${itemsMax} items`)
  return value.map(readItem)
}

/** An array of at most `itemsMax` texts, each at most `charsMax` characters. */
export function readTextList(
  record: Record<string, unknown>,
  key: string,
  itemsMax: number,
  charsMax: number,
): string[] {
  return readArray(record, key, itemsMax, (item, i) => {
    if (typeof item !== 'string' || item.length > charsMax) {
      throw malformed(`${key}[${i}] is not text of at most ${charsMax} characters`)
    }
    return item
  })
}

/** A text → text map with at most `entriesMax` entries and bounded keys and values. */
export function readTextMap(
  record: Record<string, unknown>,
  key: string,
  entriesMax: number,
  keyCharsMax: number,
  valueCharsMax: number,
): Record<string, string> {
  const value = record[key]
  if (!isRecord(value)) throw malformed(`${key} is not a map`)
  const entries = Object.entries(value)
  if (entries.length > entriesMax) throw malformed(`${key} has more than ${entriesMax} entries`)
  const out: Record<string, string> = Object.create(null)
  for (const [k, v] of entries) {
    if (k.length === 0 || k.length > keyCharsMax || typeof v !== 'string' || v.length > valueCharsMax) {
      throw malformed(`${key}.${k.slice(0, keyCharsMax)} out of bounds`)
    }
    out[k] = v
  }
  return out
}

/** Outcome of {@link tryRead}: the value, or the {@link DecodeError}'s code and message. */
export type ReadResult<T> =
  | { readonly ok: true; readonly value: T }
  | { readonly ok: false; readonly reason: DecodeError['code']; readonly detail: string }

/** Runs `read`, turning a {@link DecodeError} into `{ ok: false, reason, detail }`; others propagate. */
export function tryRead<T>(read: () => T): ReadResult<T> {
  try {
    return { ok: true, value: read() }
  } catch (err) {
    if (err instanceof DecodeError) return { ok: false, reason: err.code, detail: err.message }
    throw err
  }
}
