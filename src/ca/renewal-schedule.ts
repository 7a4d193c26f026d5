/**
 * When a node renews its certificate: pure schedule arithmetic (STYLE.md §2), tested with tables.
 *
 *   notBefore ─────────────── renewAt (2/3) ────────── notAfter
 *                 wait             │ attempt, on failure back off:
 *                                  │ retryBase, ×2, … capped at retryMax,
 *                                  │ never later than notAfter − skew budget
 *
 * The CA refuses renewals before half the lifetime (issuer.ts, `too-early`), so two thirds leaves a
 * sixth of the lifetime for clock differences and a sixth plus a third for retries before expiry.
 * Once the certificate is past `notAfter − clockSkewToleranceMs` the CA would refuse it as expired (it
 * allows the same skew), so the schedule says `expired`: only a new join helps then.
 */

/** How renewal retries. All durations in ms. */
export interface RenewalPolicy {
  /** First retry delay after a failed attempt. */
  readonly retryBaseMs: number
  /** Shortest retry delay, however close expiry is. */
  readonly retryMinMs: number
  /** Longest retry delay. */
  readonly retryMaxMs: number
  /** Longest single timer; the schedule is re-evaluated after it (keeps timers below 2^31 ms and follows wall-clock jumps). */
  readonly recheckMaxMs: number
  /** Clock-difference budget shared with the CA. */
  readonly clockSkewToleranceMs: number
}

/** Defaults of {@link RenewalPolicy} (skew is the node's config). */
export const DEFAULT_RENEWAL_RETRY_BASE_MS = 5_000
export const DEFAULT_RENEWAL_RETRY_MIN_MS = 1_000
export const DEFAULT_RENEWAL_RETRY_MAX_MS = 10 * 60_000
export const DEFAULT_RENEWAL_RECHECK_MAX_MS = 60 * 60_000

/** What to do next. `delayMs` is how long to wait before the next attempt (or re-check). */
export type RenewalDecision =
  | { readonly kind: 'wait'; readonly delayMs: number }
  | { readonly kind: 'renew' }
  | { readonly kind: 'expired' }

/** The moment renewal starts: two thirds into the validity window (integer ms). */
export function renewalStartMs(window: { notBeforeMs: number; notAfterMs: number }): number {
  return window.notBeforeMs + Math.floor(((window.notAfterMs - window.notBeforeMs) * 2) / 3)
}

/**
 * Retry delay after `failures` (≥ 1) consecutive failed attempts with `remainingMs` of usable lifetime
 * left: exponential from `retryBaseMs`, capped at `retryMaxMs` and at a quarter of what remains (so a
 * node close to expiry tries a few more times), never below `retryMinMs`.
 */
export function retryDelayMs(
  failures: number,
  remainingMs: number,
  policy: Pick<RenewalPolicy, 'retryBaseMs' | 'retryMinMs' | 'retryMaxMs'>,
): number {
  const exponent = Math.min(Math.max(failures, 1) - 1, 30)
  const backoffMs = Math.min(policy.retryMaxMs, policy.retryBaseMs * 2 ** exponent)
  return Math.max(policy.retryMinMs, Math.min(backoffMs, Math.floor(remainingMs / 4)))
}

/**
 * Decides, at `nowMs`, what the renewal loop does for a certificate with this window after `failures`
 * consecutive failed attempts, the last one at `lastAttemptMs` (undefined when none failed).
 */
export function renewalDecision(
  window: { notBeforeMs: number; notAfterMs: number },
  nowMs: number,
  failures: number,
  lastAttemptMs: number | undefined,
  policy: RenewalPolicy,
): RenewalDecision {
  const lastUsableMs = window.notAfterMs + policy.clockSkewToleranceMs
  if (nowMs >= lastUsableMs) return { kind: 'expired' }
  const startMs = renewalStartMs(window)
  let dueMs = startMs
  if (failures > 0 && lastAttemptMs !== undefined) {
    dueMs = Math.max(startMs, lastAttemptMs + retryDelayMs(failures, lastUsableMs - lastAttemptMs, policy))
    // A last try just before the CA would call it expired beats giving up early.
    dueMs = Math.min(dueMs, Math.max(startMs, lastUsableMs - 1))
    // That last try failed too: nothing is left to try before expiry, so never retry without a pause.
    if (dueMs <= lastAttemptMs) dueMs = lastUsableMs
  }
  if (nowMs >= dueMs) return { kind: 'renew' }
  return { kind: 'wait', delayMs: Math.min(dueMs - nowMs, policy.recheckMaxMs) }
}
