/** Shared test fixtures for src/ca: deterministic keys and randomness, so failures replay exactly. */
import { type SigningKey, signingKeyFromSeed } from '../../src/wire/ed25519.js'
import { hash } from '../../src/wire/hash.js'

/** A deterministic `randomBytes` (SHA-256 in counter mode over `seed`); never use outside tests. */
export function seededRandomBytes(seed: string): (count: number) => Uint8Array {
  let counter = 0
  return count => {
    const out = new Uint8Array(count)
    for (let offset = 0; offset < count; offset += 32) {
      const block = hash(new TextEncoder().encode(`${seed}/${counter++}`))
      out.set(block.subarray(0, Math.min(32, count - offset)), offset)
    }
    return out
  }
}

/** A signing key derived from a label. */
export function keyFor(label: string): SigningKey {
  return signingKeyFromSeed(hash(new TextEncoder().encode(`key/${label}`)))
}

/** A 32-byte secret derived from a label. */
export function secretFor(label: string): Uint8Array {
  return hash(new TextEncoder().encode(`secret/${label}`))
}

/** A fixed "now" for tests: 2026-01-01T00:00:00Z. */
export const T0 = Date.UTC(2026, 0, 1)
export const HOUR_MS = 60 * 60 * 1000
export const DAY_MS = 24 * HOUR_MS
