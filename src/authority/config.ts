/**
 * Timing and limits of the zone-authority protocol, with the relationships between them checked
 * together (STYLE.md §2) and named profiles. All durations are milliseconds on the node's own
 * monotonic clock.
 */

/** Configuration of one node's authority state machine. */
export interface AuthorityConfig {
  /** Lease length a voter promises from the moment it receives a request. */
  readonly leaseTtlMs: number
  /** A holder starts a renewal this long after it sent its last successful request. */
  readonly renewIntervalMs: number
  /** Bound on how far two nodes' elapsed times may diverge over one lease TTL (drift budget). */
  readonly leaseDriftBudgetMs: number
  /** How long a campaign or renewal waits for replies before it is abandoned. */
  readonly attemptTimeoutMs: number
  /** Extra wait per preference rank before a lower-ranked live candidate campaigns on a free lease. */
  readonly campaignStaggerMs: number
  /** Upper bound of the random wait after a failed attempt. */
  readonly retryBackoffMs: number
  /** A peer heard from within this window counts as live whatever the driver's hints say. */
  readonly livenessTimeoutMs: number
  /** A recovering voter repeats its sync request at this interval until enough peers answered. */
  readonly syncIntervalMs: number
  /** After a voter-set change, majorities of the old set are still required for this long. */
  readonly membershipSettleMs: number
  /** Most roster members accepted (roster larger than this is refused and counted). */
  readonly membersMax: number
  /** Most zones this node votes in at once (its own and those it witnesses). */
  readonly zonesMax: number
  /** Most superseded voter sets kept per zone during settle periods. */
  readonly voterHistoryMax: number
  /** Longest node id and zone name accepted, in UTF-16 code units. */
  readonly idLengthMax: number
  readonly zoneLengthMax: number
}

const LIMITS = {
  membersMax: 4096,
  zonesMax: 256,
  voterHistoryMax: 8,
  idLengthMax: 128,
  zoneLengthMax: 64,
} as const

/**
 * Named timing profiles. `lan` targets fail-over in about 2.5 s after a holder dies (on average: TTL +
 * skew after the last renewal, then one round trip; at most about 3.8 s); `wan` tolerates slower
 * links; `test` is the simulator's profile. `lan` renews every 2 s with a 3 s lease (it was 1 s and
 * 2 s): a holder renews with up to four voters, two messages each, and at one renewal a second that
 * alone was 8 of the 10 messages a second an agent may spend (issue 9); now it is 4, with the same
 * 1 s between a renewal and the lease's end and the same 10 % drift budget.
 */
export const authorityProfiles: Readonly<Record<'lan' | 'wan' | 'test', AuthorityConfig>> = {
  lan: {
    leaseTtlMs: 3_000,
    renewIntervalMs: 2_000,
    leaseDriftBudgetMs: 300,
    attemptTimeoutMs: 400,
    campaignStaggerMs: 300,
    retryBackoffMs: 200,
    livenessTimeoutMs: 3_000,
    syncIntervalMs: 300,
    membershipSettleMs: 10_000,
    ...LIMITS,
  },
  wan: {
    leaseTtlMs: 8_000,
    renewIntervalMs: 2_000,
    leaseDriftBudgetMs: 800,
    attemptTimeoutMs: 2_000,
    campaignStaggerMs: 1_000,
    retryBackoffMs: 1_000,
    livenessTimeoutMs: 6_000,
    syncIntervalMs: 1_000,
    membershipSettleMs: 30_000,
    ...LIMITS,
  },
  test: {
    leaseTtlMs: 1_000,
    renewIntervalMs: 250,
    leaseDriftBudgetMs: 100,
    attemptTimeoutMs: 150,
    campaignStaggerMs: 150,
    retryBackoffMs: 100,
    livenessTimeoutMs: 600,
    syncIntervalMs: 150,
    membershipSettleMs: 3_000,
    membersMax: 64,
    zonesMax: 16,
    voterHistoryMax: 8,
    idLengthMax: 64,
    zoneLengthMax: 32,
  },
}

/**
 * Every problem with `c`, as one line each (empty when valid). Checks types (positive safe integers)
 * and the relationships safety and liveness rest on:
 * - renewIntervalMs + attemptTimeoutMs + leaseDriftBudgetMs < leaseTtlMs: a renewal started on time
 *   completes before the holder must stop acting;
 * - 2 × leaseDriftBudgetMs < leaseTtlMs: a lease leaves the holder some time to act;
 * - attemptTimeoutMs ≤ renewIntervalMs, livenessTimeoutMs ≥ renewIntervalMs,
 *   membershipSettleMs ≥ 2 × leaseTtlMs.
 * Never throws.
 */
export function validateAuthorityConfig(c: AuthorityConfig): string[] {
  const problems: string[] = []
  const keys: (keyof AuthorityConfig)[] = [
    'leaseTtlMs',
    'renewIntervalMs',
    'leaseDriftBudgetMs',
    'attemptTimeoutMs',
    'campaignStaggerMs',
    'retryBackoffMs',
    'livenessTimeoutMs',
    'syncIntervalMs',
    'membershipSettleMs',
    'membersMax',
    'zonesMax',
    'voterHistoryMax',
    'idLengthMax',
    'zoneLengthMax',
  ]
  for (const key of keys) {
    const v = (c as unknown as Record<string, unknown>)[key]
    if (typeof v !== 'number' || !Number.isSafeInteger(v) || v <= 0) {
      problems.push(`${key} must be a positive integer, got ${String(v)}`)
    }
  }
  if (problems.length > 0) return problems
  if (c.renewIntervalMs + c.attemptTimeoutMs + c.leaseDriftBudgetMs >= c.leaseTtlMs) {
    problems.push(
      `renewIntervalMs (${c.renewIntervalMs}) + attemptTimeoutMs (${c.attemptTimeoutMs}) + leaseDriftBudgetMs (${c.leaseDriftBudgetMs}) must be less than leaseTtlMs (${c.leaseTtlMs})`,
    )
  }
  if (2 * c.leaseDriftBudgetMs >= c.leaseTtlMs) {
    problems.push(
      `2 × leaseDriftBudgetMs (${c.leaseDriftBudgetMs}) must be less than leaseTtlMs (${c.leaseTtlMs})`,
    )
  }
  if (c.attemptTimeoutMs > c.renewIntervalMs) {
    problems.push(
      `attemptTimeoutMs (${c.attemptTimeoutMs}) must not exceed renewIntervalMs (${c.renewIntervalMs})`,
    )
  }
  if (c.livenessTimeoutMs < c.renewIntervalMs) {
    problems.push(
      `livenessTimeoutMs (${c.livenessTimeoutMs}) must be at least renewIntervalMs (${c.renewIntervalMs})`,
    )
  }
  if (c.membershipSettleMs < 2 * c.leaseTtlMs) {
    problems.push(
      `membershipSettleMs (${c.membershipSettleMs}) must be at least 2 × leaseTtlMs (${c.leaseTtlMs})`,
    )
  }
  return problems
}
