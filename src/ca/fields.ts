/**
 * Strict readers for decoded CBOR maps. Every signed or stored structure in src/ca is a map with an
 * exact key set; these helpers check one field each and throw {@link FieldError} with the field's name,
 * which the decoders turn into their own typed `malformed` result. Keeping the checks here means one
 * definition of "a 32-byte key" or "a millisecond timestamp" for every format.
 */
import { isRecord } from './encoding.js'
import { ROLES, type Role } from './types.js'

/** A field that is missing, of the wrong type or out of range. Decoders catch it; it never escapes them. */
export class FieldError extends Error {
  override name = 'FieldError'
  readonly code = 'malformed'
}

/** Longest name or zone, in characters. */
export const NAME_CHARS_MAX = 64

/** Names and zones: a letter or digit, then letters, digits, `.`, `_` or `-`. */
const NAME_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._-]*$/

/** True when `text` is usable as a node name or zone (1..{@link NAME_CHARS_MAX} chars, see pattern). */
export function isValidName(text: string): boolean {
  return text.length >= 1 && text.length <= NAME_CHARS_MAX && NAME_PATTERN.test(text)
}

/** Returns `value` as a record whose keys are exactly `required` plus any of `optional`. */
export function readRecord(
  value: unknown,
  what: string,
  required: readonly string[],
  optional: readonly string[] = [],
): Record<string, unknown> {
  if (!isRecord(value)) throw new FieldError(`${what} is not a map`)
  for (const key of required) {
    if (!Object.hasOwn(value, key)) throw new FieldError(`${what} lacks ${key}`)
  }
  for (const key of Object.keys(value)) {
    if (!required.includes(key) && !optional.includes(key)) throw new FieldError(`${what} has unknown ${key}`)
  }
  return value
}

/** A byte string, of exactly `length` bytes when given, else at most `bytesMax`. */
export function readBytes(
  record: Record<string, unknown>,
  key: string,
  size: { length: number } | { bytesMax: number },
): Uint8Array {
  const value = record[key]
  if (!(value instanceof Uint8Array)) throw new FieldError(`${key} is not bytes`)
  if ('length' in size && value.byteLength !== size.length) {
    throw new FieldError(`${key} is ${value.byteLength} bytes, not ${size.length}`)
  }
  if ('bytesMax' in size && value.byteLength > size.bytesMax) {
    throw new FieldError(`${key} exceeds ${size.bytesMax} bytes`)
  }
  return value
}

/** Optional byte string: `undefined` when the key is absent. */
export function readOptionalBytes(
  record: Record<string, unknown>,
  key: string,
  size: { length: number } | { bytesMax: number },
): Uint8Array | undefined {
  return Object.hasOwn(record, key) ? readBytes(record, key, size) : undefined
}

/** A text string of at most `charsMax` characters. */
export function readString(record: Record<string, unknown>, key: string, charsMax: number): string {
  const value = record[key]
  if (typeof value !== 'string') throw new FieldError(`${key} is not text`)
  if (value.length > charsMax) throw new FieldError(`${key} exceeds ${charsMax} characters`)
  return value
}

/** Optional text: `undefined` when the key is absent. */
export function readOptionalString(
  record: Record<string, unknown>,
  key: string,
  charsMax: number,
): string | undefined {
  return Object.hasOwn(record, key) ? readString(record, key, charsMax) : undefined
}

/** A node name or zone (see {@link isValidName}). */
export function readName(record: Record<string, unknown>, key: string): string {
  const value = readString(record, key, NAME_CHARS_MAX)
  if (!isValidName(value)) throw new FieldError(`${key} is not a valid name`)
  return value
}

/** A non-negative safe integer (timestamps in ms, versions, counts). */
export function readInteger(record: Record<string, unknown>, key: string): number {
  const value = record[key]
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < 0) {
    throw new FieldError(`${key} is not a non-negative integer`)
  }
  return value
}

/** A constant: the field must equal `expected` (format versions). */
export function readConstant<T extends number | string>(
  record: Record<string, unknown>,
  key: string,
  expected: T,
): T {
  if (record[key] !== expected) throw new FieldError(`${key} is not ${String(expected)}`)
  return expected
}

/** An array of at most `itemsMax` items, each read by `readItem`. */
export function readArray<T>(
  record: Record<string, unknown>,
  key: string,
  itemsMax: number,
  readItem: (item: unknown, index: number) => T,
): T[] {
  const value = record[key]
  if (!Array.isArray(value)) throw new FieldError(`${key} is not an array`)
  if (value.length > itemsMax) throw new FieldError(`${key} has more than ${itemsMax} items`)
  return value.map(readItem)
}

/** A non-empty, duplicate-free list of roles in canonical order (as in {@link ROLES}). */
export function readRoles(record: Record<string, unknown>, key: string): Role[] {
  const roles = readArray(record, key, ROLES.length, item => {
    if (typeof item !== 'string' || !(ROLES as readonly string[]).includes(item)) {
      throw new FieldError(`${key} holds an unknown role`)
    }
    return item as Role
  })
  if (roles.length === 0) throw new FieldError(`${key} is empty`)
  const canonical = canonicalRoles(roles)
  if (canonical.length !== roles.length || canonical.some((role, i) => role !== roles[i])) {
    throw new FieldError(`${key} is not in canonical order or repeats a role`)
  }
  return roles
}

/** Sorts roles into the order of {@link ROLES} and drops duplicates, so equal sets encode equally. */
export function canonicalRoles(roles: readonly Role[]): Role[] {
  return ROLES.filter(role => roles.includes(role))
}

/** Runs `read`, turning a {@link FieldError} into `{ ok: false, detail }`; other errors propagate. */
export function tryRead<T>(read: () => T): { ok: true; value: T } | { ok: false; detail: string } {
  try {
    return { ok: true, value: read() }
  } catch (err) {
    if (err instanceof FieldError) return { ok: false, detail: err.message }
    throw err
  }
}
