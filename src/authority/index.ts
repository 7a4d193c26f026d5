/** Zone authority: quorum leases with deterministic preference (docs/authority.md). */
export {
  type Authority,
  AuthorityConfigError,
  type AuthorityCounter,
  type AuthorityEffect,
  type AuthorityInput,
  AuthorityInvariantError,
  createAuthority,
  EPOCH_STEP_MAX,
  LOOKUPS_MAX,
  type LostReason,
  type ZoneView,
} from './authority.js'
export { type AuthorityConfig, authorityProfiles, validateAuthorityConfig } from './config.js'
export {
  grantExpiresAtMs,
  grantFreeAtMs,
  holderActUntilMs,
  type LeaseTiming,
  remainingMs,
  restartQuietUntilMs,
} from './lease.js'
export {
  type AuthorityMessage,
  authorityMessageBytesMax,
  describeMessage,
  type MessageErrorCode,
  type MessageLimits,
  type ParseResult,
  parseAuthorityMessage,
  type RefuseReason,
} from './messages.js'
export { isJointQuorum, isQuorum, isQuorumPossible, majoritySize, recoveryQuorumSize } from './quorum.js'
export { rankCandidates, rendezvousScore } from './rendezvous.js'
export {
  memberZone,
  normalizeRoster,
  type RosterErrorCode,
  type RosterMember,
  type RosterResult,
  rosterZones,
  VOTERS_MAX,
  votingZones,
  type ZoneVoters,
  zoneVoters,
} from './voters.js'
