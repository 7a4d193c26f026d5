/**
 * The deny list of admission: peers we refuse to dial or accept for a while (a failed hello) or for the
 * life of the process (a revoked certificate). It is bounded, so a flood of bad peers costs memory only
 * up to {@link DENIED_PEERS_MAX} entries, and expiry is checked lazily on lookup against the {@link Clock}
 * port, so it needs no timers of its own. Split out of admission.ts so the connection gater's one piece
 * of state has one owner.
 *
 * An entry may deny one direction only: a revoked peer is never dialled again, but its inbound
 * connections still reach the hello, which refuses it with the CA-signed list that revokes it (so the
 * revoked node learns it and can check it itself). That refusal denies it both ways for
 * {@link DENY_TTL_MS}, so a revoked peer that keeps coming back costs one hello per TTL.
 */
import type { PeerId } from '@libp2p/interface'
import type { Clock } from './clock.js'

/**
 * How long a peer that failed hello stays denied. Revoked peers are denied without expiry for the life
 * of the process (and their certificates are refused by the verifier whatever the deny list holds).
 */
export const DENY_TTL_MS = 10 * 60_000
/** Most denied peers remembered; the oldest entry is dropped beyond it. */
export const DENIED_PEERS_MAX = 10_000

/** Which connections an entry denies: those we open (`outbound`) or those the peer opens (`inbound`). */
export type DenyDirection = 'inbound' | 'outbound'

/** A bounded map of denied peers with per-entry, per-direction expiry. */
export interface DenyList {
  /**
   * Whether `peerId` is denied now in `direction` (either direction when omitted). An entry expired in
   * both directions is dropped (and answers false); a hit is reported to `onHit` (admission counts them
   * as denied dials).
   */
  denies(peerId: PeerId | string, direction?: DenyDirection): boolean
  /**
   * Denies `peerId` for `ttlMs`, or for good when undefined, in `directions` (default both). Never
   * shortens what the entry already denies; beyond the bound the oldest entry goes.
   */
  add(peerId: string, ttlMs?: number, directions?: readonly DenyDirection[]): void
}

const BOTH: readonly DenyDirection[] = ['inbound', 'outbound']

/** Creates an empty deny list reading time from `clock`. */
export function createDenyList(init: { readonly clock: Clock; readonly onHit?: () => void }): DenyList {
  const { clock } = init
  // peerId → until (ms) per direction, Infinity for good, 0 when that direction is not denied
  const denied = new Map<string, Record<DenyDirection, number>>()
  return {
    denies(peerId, direction) {
      const id = peerId.toString()
      const entry = denied.get(id)
      if (entry === undefined) return false
      const nowMs = clock.nowMs()
      if (entry.inbound <= nowMs && entry.outbound <= nowMs) {
        denied.delete(id)
        return false
      }
      const until = direction === undefined ? Math.max(entry.inbound, entry.outbound) : entry[direction]
      if (until <= nowMs) return false
      init.onHit?.()
      return true
    },

    add(peerId, ttlMs, directions = BOTH) {
      const entry = denied.get(peerId) ?? { inbound: 0, outbound: 0 }
      if (!denied.has(peerId) && denied.size >= DENIED_PEERS_MAX) {
        const oldest = denied.keys().next().value
        if (oldest !== undefined) denied.delete(oldest)
      }
      const until = ttlMs === undefined ? Number.POSITIVE_INFINITY : clock.nowMs() + ttlMs
      for (const direction of directions) entry[direction] = Math.max(entry[direction], until)
      denied.set(peerId, entry)
    },
  }
}
