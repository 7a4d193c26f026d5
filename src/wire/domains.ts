/**
 * The domain strings of every authenticated message kind: the one table, and the only place such a
 * string is written down.
 *
 * Every envelope authenticates `domain || 0x00 || body` (see envelope.ts), so bytes signed or MACed
 * as one kind can never pass as another, even though one key signs several kinds (a node key signs
 * requests, replies, member records, suspicions and its own signing requests; the CA key signs certificates and
 * revocation lists). A domain changes only together with its format: the CA formats moved to
 * version 2 when they started using domains, and their domains carry that number.
 */

/** A signed request (gossip), by the operator's node key. */
export const DOMAIN_REQUEST = 'mesh/request/v1'
/** An approval of a request (two-person rule, src/gossip/approval.ts): over the request's body, by an operator's key. */
export const DOMAIN_APPROVAL = 'mesh/approval/v1'
/** A signed reply (ack or done) to a request, by the replying node's key. */
export const DOMAIN_REPLY = 'mesh/reply/v1'
/** A member's record (identity, addresses, facts, incarnation), by the member's own node key. */
export const DOMAIN_MEMBER = 'mesh/member/v1'
/** A suspicion that a member did not answer probes, by the accusing node's key. */
export const DOMAIN_SUSPICION = 'mesh/suspicion/v1'
/** A certificate, by the CA key. */
export const DOMAIN_CERTIFICATE = 'mesh/certificate/v2'
/** A signing request (CSR), by the key to be certified (proof of possession). */
export const DOMAIN_SIGNING_REQUEST = 'mesh/signing-request/v2'
/** A revocation list, by the CA key. */
export const DOMAIN_REVOCATION_LIST = 'mesh/revocation-list/v2'
/** A zone roster (the certified agent members that vote on zone leases), by the CA key. */
export const DOMAIN_ZONE_ROSTER = 'mesh/zone-roster/v1'
/** A record of a node's audit log (src/audit/record.ts), by the node's own key. */
export const DOMAIN_AUDIT_RECORD = 'mesh/audit-record/v1'
/** A CA handover (`mesh ca add-holder`, src/ca/handover.ts): the CA key and state for a new holder, by the CA key. */
export const DOMAIN_CA_HANDOVER = 'mesh/ca-handover/v1'
/** A join ticket: HMAC-SHA-256 under the mesh's ticket secret, not a signature. */
export const DOMAIN_TICKET = 'mesh/ticket/v2'

/** Domains whose envelope carries an ed25519 signature (`{ body, sig }`). */
export const SIGNATURE_DOMAINS = [
  DOMAIN_REQUEST,
  DOMAIN_APPROVAL,
  DOMAIN_REPLY,
  DOMAIN_MEMBER,
  DOMAIN_SUSPICION,
  DOMAIN_CERTIFICATE,
  DOMAIN_SIGNING_REQUEST,
  DOMAIN_REVOCATION_LIST,
  DOMAIN_ZONE_ROSTER,
  DOMAIN_AUDIT_RECORD,
  DOMAIN_CA_HANDOVER,
] as const
/** Domains whose envelope carries an HMAC-SHA-256 (`{ body, mac }`). */
export const MAC_DOMAINS = [DOMAIN_TICKET] as const

/** A domain of a signed message kind. */
export type SignatureDomain = (typeof SIGNATURE_DOMAINS)[number]
/** A domain of a MACed message kind. */
export type MacDomain = (typeof MAC_DOMAINS)[number]
/** Any domain in the table. */
export type Domain = SignatureDomain | MacDomain
