/**
 * Roles on the wire: the canonical order every CA format stores them in, and the strict reader that
 * insists on it, so equal role sets always encode equally (and sign equally).
 */
import { DecodeError } from '../wire/cbor.js'
import { readArray } from '../wire/fields.js'
import { ROLES, type Role } from './types.js'

/** A non-empty, duplicate-free list of roles in canonical order (as in {@link ROLES}). */
export function readRoles(record: Record<string, unknown>, key: string): Role[] {
  const roles = readArray(record, key, ROLES.length, item => {
    if (typeof item !== 'string' || !(ROLES as readonly string[]).includes(item)) {
      throw new DecodeError('malformed', `${key} holds an unknown role`)
    }
    return item as Role
  })
  if (roles.length === 0) throw new DecodeError('malformed', `${key} is empty`)
  const canonical = canonicalRoles(roles)
  if (canonical.length !== roles.length || canonical.some((role, i) => role !== roles[i])) {
    throw new DecodeError('malformed', `${key} is not in canonical order or repeats a role`)
  }
  return roles
}

/** Sorts roles into the order of {@link ROLES} and drops duplicates, so equal sets encode equally. */
export function canonicalRoles(roles: readonly Role[]): Role[] {
  return ROLES.filter(role => roles.includes(role))
}
