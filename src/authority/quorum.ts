/**
 * Quorum arithmetic for zone leases: majorities of a voter set, joint majorities across the voter
 * sets that are in force while a membership change settles, and the number of peers a restarted
 * voter must hear from so that what it learns intersects every majority.
 *
 * Voter sets are lists of node ids; duplicates in a list are counted once. Nothing here throws
 * except on counts that are not non-negative safe integers (a programming error).
 */

function assertCount(n: number, what: string): void {
  if (!Number.isSafeInteger(n) || n < 0)
    throw new RangeError(`${what} must be a non-negative integer, got ${n}`)
}

/**
 * Smallest number of voters that forms a majority of `voterCount` voters: ⌊n/2⌋ + 1.
 * For 0 voters this is 1, which no grant set can reach (an empty voter set never has a quorum).
 * @throws RangeError when `voterCount` is not a non-negative safe integer
 */
export function majoritySize(voterCount: number): number {
  assertCount(voterCount, 'voterCount')
  return Math.floor(voterCount / 2) + 1
}

/**
 * Whether `grants` (ids of voters that granted) contains a majority of `voters`.
 * Grants from ids outside `voters` do not count; each voter counts once.
 */
export function isQuorum(grants: Iterable<string>, voters: readonly string[]): boolean {
  const voterSet = new Set(voters)
  const counted = new Set<string>()
  for (const id of grants) if (voterSet.has(id)) counted.add(id)
  return counted.size >= majoritySize(voterSet.size)
}

/**
 * Joint quorum: `grants` holds a majority of EVERY set in `voterSets`. Used while a membership
 * change is in flight so that a holder elected under the old sets and one elected under the new
 * set always share a voter. An empty list of sets is never a quorum.
 */
export function isJointQuorum(grants: Iterable<string>, voterSets: readonly (readonly string[])[]): boolean {
  if (voterSets.length === 0) return false
  const grantList = [...grants]
  return voterSets.every(voters => isQuorum(grantList, voters))
}

/**
 * Whether a joint quorum of `voterSets` can still be reached when the voters in `refusals` have said
 * no: every set must keep a majority among the voters that have not refused.
 */
export function isQuorumPossible(
  refusals: Iterable<string>,
  voterSets: readonly (readonly string[])[],
): boolean {
  if (voterSets.length === 0) return false
  const refused = new Set(refusals)
  return voterSets.every(voters => {
    const set = new Set(voters)
    let open = 0
    for (const id of set) if (!refused.has(id)) open++
    return open >= majoritySize(set.size)
  })
}

/**
 * How many OTHER voters a voter that lost its memory must hear from before it trusts its recovered
 * knowledge (highest epoch): enough that the peers heard, together with any majority that excludes
 * the restarted voter, always overlap. For n voters that is n − majority(n) + 1, capped at n − 1.
 * @throws RangeError when `voterCount` is not a non-negative safe integer
 */
export function recoveryQuorumSize(voterCount: number): number {
  assertCount(voterCount, 'voterCount')
  if (voterCount <= 1) return 0
  return Math.min(voterCount - 1, voterCount - majoritySize(voterCount) + 1)
}
