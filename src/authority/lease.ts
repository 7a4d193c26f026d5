/**
 * Lease window arithmetic. All times are milliseconds on ONE node's own clock; nothing here compares
 * timestamps taken on different clocks. Clocks may drift apart at a bounded rate; the skew budget
 * (`leaseDriftBudgetMs`) bounds how far two clocks' elapsed times can diverge over one lease TTL, and it is
 * paid twice: the holder stops early by it and voters wait past their grant by it.
 *
 *   holder:  sent request at S ──────────── acts until S + ttl − skew
 *   voter:   received at R ≥ S ── grant expires R + ttl ── grants another only after R + ttl + skew
 */

/** The timing values the lease rules need (a subset of the authority config). */
export interface LeaseTiming {
  /** Length of one lease, as promised by a voter from the moment it receives a request. */
  readonly leaseTtlMs: number
  /** Bound on how far two clocks' elapsed times can diverge over one lease TTL. */
  readonly leaseDriftBudgetMs: number
}

/**
 * Local time until which a holder may act on a lease whose request it SENT at `sentAtMs` (its clock):
 * the TTL less the skew budget, counted from sending so that message delay only shortens the window.
 */
export function holderActUntilMs(sentAtMs: number, timing: LeaseTiming): number {
  return sentAtMs + timing.leaseTtlMs - timing.leaseDriftBudgetMs
}

/** Local time at which a voter's grant, made on receiving the request at `receivedAtMs`, expires. */
export function grantExpiresAtMs(receivedAtMs: number, timing: LeaseTiming): number {
  return receivedAtMs + timing.leaseTtlMs
}

/**
 * Local time from which a voter may grant to a DIFFERENT candidate: its grant's expiry plus the skew
 * budget, so a holder whose clock runs slow has certainly stopped acting.
 */
export function grantFreeAtMs(expiresAtMs: number, timing: LeaseTiming): number {
  return expiresAtMs + timing.leaseDriftBudgetMs
}

/**
 * Local time until which a voter that (re)started at `startedAtMs` with no memory must not grant:
 * any grant it made before it lost its memory is free by then (one lease period plus the budget).
 */
export function restartQuietUntilMs(startedAtMs: number, timing: LeaseTiming): number {
  return startedAtMs + timing.leaseTtlMs + timing.leaseDriftBudgetMs
}

/** Milliseconds left before `untilMs` at `nowMs`, never negative. */
export function remainingMs(untilMs: number, nowMs: number): number {
  return Math.max(0, untilMs - nowMs)
}
