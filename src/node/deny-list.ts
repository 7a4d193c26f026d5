/**
 * The deny list of admission: peers we refuse to dial or accept for a while (a failed hello) or for the
 * life of the process (a revoked certificate). It is bounded, so a flood of bad peers costs memory only
 * up to {@link DENIED_PEERS_MAX} entries, and expiry is checked lazily on lookup against the {@link Clock}
 * port, so it needs no timers of its own. Split out of admission.ts so the connection gater's one piece
 * of state has one owner.
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

/** A bounded map of denied peers with per-entry expiry. */
export interface DenyList {
  /**
   * Whether `peerId` is denied now. An expired entry is dropped (and answers false); a hit is reported
   * to `onHit` (admission counts them as denied dials).
   */
  denies(peerId: PeerId | string): boolean
  /** Denies `peerId` for `ttlMs`, or for good when undefined; beyond the bound the oldest entry goes. */
  add(peerId: string, ttlMs?: number): void
}

/** Creates an empty deny list reading time from `clock`. */
export function createDenyList(init: { readonly clock: Clock; readonly onHit?: () => void }): DenyList {
  const { clock } = init
  const denied = new Map<string, number>() // peerId → until (ms), Infinity for good
  return {
    denies(peerId) {
      const id = peerId.toString()
      const until = denied.get(id)
      if (until === undefined) return false
      if (until <= clock.nowMs()) {
        denied.delete(id)
        return false
      }
      init.onHit?.()
      return true
    },

    add(peerId, ttlMs) {
      if (denied.size >= DENIED_PEERS_MAX) {
        const oldest = denied.keys().next().value
        if (oldest !== undefined) denied.delete(oldest)
      }
      denied.set(peerId, ttlMs === undefined ? Number.POSITIVE_INFINITY : clock.nowMs() + ttlMs)
    },
  }
}
