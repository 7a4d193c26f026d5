/**
 * Strict readers for decoded message bodies. Each returns the field with its type narrowed, or throws
 * a {@link DecodeError} `malformed` naming the field, so decoders read like a schema and random input
 * always ends in a typed error.
 */
import { DecodeError } from '../ca/encoding.js'

/** Refuses fields other than `allowed`, so two encodings of one meaning cannot both verify. */
export function onlyKeys(body: Record<string, unknown>, allowed: readonly string[], what: string): void {
  for (const key of Object.keys(body)) {
    if (!allowed.includes(key)) throw new DecodeError('malformed', `${what}: unknown field '${key}'`)
  }
}

/** A text field of at most `charsMax` characters. */
export function readText(body: Record<string, unknown>, key: string, charsMax: number): string {
  const value = body[key]
  if (typeof value !== 'string') throw new DecodeError('malformed', `${key} must be text`)
  if (value.length > charsMax) throw new DecodeError('malformed', `${key} longer than ${charsMax} characters`)
  return value
}

/** An optional text field. */
export function readOptionalText(
  body: Record<string, unknown>,
  key: string,
  charsMax: number,
): string | undefined {
  return body[key] === undefined ? undefined : readText(body, key, charsMax)
}

/** A byte-string field of `bytesMin`..`bytesMax` bytes. */
export function readBytes(
  body: Record<string, unknown>,
  key: string,
  bytesMin: number,
  bytesMax: number,
): Uint8Array {
  const value = body[key]
  if (!(value instanceof Uint8Array)) throw new DecodeError('malformed', `${key} must be bytes`)
  if (value.byteLength < bytesMin || value.byteLength > bytesMax) {
    throw new DecodeError('malformed', `${key} must be ${bytesMin}..${bytesMax} bytes`)
  }
  return value
}

/** An integer field within `min`..`max` (inclusive). */
export function readInteger(body: Record<string, unknown>, key: string, min: number, max: number): number {
  const value = body[key]
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < min || value > max) {
    throw new DecodeError('malformed', `${key} must be an integer in ${min}..${max}`)
  }
  return value
}

/** A list of at most `itemsMax` texts, each at most `charsMax` characters. */
export function readTextList(
  body: Record<string, unknown>,
  key: string,
  itemsMax: number,
  charsMax: number,
): string[] {
  const value = body[key]
  if (!Array.isArray(value) || value.length > itemsMax) {
    throw new DecodeError('malformed', `${key} must be a list of at most ${itemsMax} texts`)
  }
  return value.map((item, i) => {
    if (typeof item !== 'string' || item.length > charsMax) {
      throw new DecodeError('malformed', `${key}[${i}] must be text of at most ${charsMax} characters`)
    }
    return item
  })
}

/** A text → text map with at most `entriesMax` entries and bounded keys and values. */
export function readTextMap(
  body: Record<string, unknown>,
  key: string,
  entriesMax: number,
  keyCharsMax: number,
  valueCharsMax: number,
): Record<string, string> {
  const value = body[key]
  if (value === null || typeof value !== 'object' || Array.isArray(value) || value instanceof Uint8Array) {
    throw new DecodeError('malformed', `${key} must be a map`)
  }
  const entries = Object.entries(value as Record<string, unknown>)
  if (entries.length > entriesMax) {
    throw new DecodeError('malformed', `${key} has more than ${entriesMax} entries`)
  }
  const out: Record<string, string> = Object.create(null)
  for (const [k, v] of entries) {
    if (k.length === 0 || k.length > keyCharsMax || typeof v !== 'string' || v.length > valueCharsMax) {
      throw new DecodeError('malformed', `${key}.${k.slice(0, keyCharsMax)} out of bounds`)
    }
    out[k] = v
  }
  return out
}
