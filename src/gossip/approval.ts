/**
 * Approvals (the two-person rule): other operators' signatures over a request's body.
 *
 * A request needing co-signatures travels as `{ request: <the proposer's signed envelope>, approvals:
 * [{ cert, sig }…] }` (deterministic CBOR, approvals sorted by signature bytes), where each `sig` is the
 * approver's ed25519 signature of `DOMAIN_APPROVAL ‖ 0 ‖ body` — the very body bytes the proposer
 * signed. So an approval covers the whole request (action, args, filter, validity window, id), and
 * approving a changed request is impossible: its body bytes differ.
 *
 * Checks ({@link verifyApprovals}), stopping at the first approval no honest node would pass on (a
 * forged certificate or signature, the proposer's own, a repeat, not an operator) and dropping, with a
 * reason, one whose certificate is the CA's but not valid now (revoked, expired): the certificate
 * verifies at `nowMs` (chain, validity, revocation), carries the `operator` role, is not the proposer's
 * name (a proposer does not approve their own request), is not a second approval by the same operator
 * name, and its key signed the body. What the kept approvals are worth is the policy's question
 * (authorize.ts: `signatures`, `weights`).
 */
import { CERTIFICATE_BYTES_MAX } from '../ca/certificate.js'
import type { Certificate, CertificateVerifier, SignedCertificate } from '../ca/types.js'
import { DecodeError, encodeCbor, isRecord } from '../wire/cbor.js'
import { DOMAIN_APPROVAL } from '../wire/domains.js'
import { SIGNATURE_BYTES, type SigningKey, signBytes, verifyBytes } from '../wire/ed25519.js'
import { authenticatedMessage } from '../wire/envelope.js'
import { readBytes } from '../wire/fields.js'
import { toHex } from '../wire/hash.js'

/** Most approvals one request may carry. */
export const APPROVALS_MAX = 16

/** One approval as carried. */
export interface Approval {
  /** The approver's certificate bytes. */
  readonly cert: Uint8Array
  readonly sig: Uint8Array
}

/** Why an approval was dropped. */
export type ApprovalRejection =
  /** The certificate is the CA's but not valid now (revoked, expired, not yet valid): dropped. */
  | 'bad-certificate'
  /** Not a certificate of this CA at all (malformed, too large, forged): the message is forged. */
  | 'forged-certificate'
  | 'not-operator'
  | 'proposer'
  | 'duplicate'
  | 'bad-signature'

/** The approvals that held, and the ones that did not with their reasons. */
export interface ApprovalCheck {
  /** Distinct approving operators (never the proposer), in the order carried. */
  readonly approvers: readonly Certificate[]
  /** Each kept approval with its verified certificate (same order as `approvers`). */
  readonly accepted: readonly { readonly approval: Approval; readonly cert: Certificate }[]
  readonly rejected: readonly { readonly reason: ApprovalRejection; readonly detail: string }[]
}

/** Signs `bodyBytes` (a request envelope's body) as an approval by `signer`. */
export function createApproval(
  signer: { readonly key: SigningKey; readonly certificate: SignedCertificate },
  bodyBytes: Uint8Array,
): Approval {
  return {
    cert: signer.certificate.bytes,
    sig: signBytes(signer.key, authenticatedMessage(DOMAIN_APPROVAL, bodyBytes)),
  }
}

/** The wire form of a request with approvals; with none, the plain envelope itself. */
export function encodeApprovedRequest(envelope: Uint8Array, approvals: readonly Approval[]): Uint8Array {
  if (approvals.length === 0) return envelope
  const sorted = [...approvals].sort((a, b) => (toHex(a.sig) < toHex(b.sig) ? -1 : 1))
  return encodeCbor({ request: envelope, approvals: sorted.map(a => ({ cert: a.cert, sig: a.sig })) })
}

/**
 * Splits a decoded outer map of the approved form into the inner envelope and approvals (shape and
 * sizes checked, nothing verified).
 * @throws DecodeError
 */
export function readApprovedRequest(outer: Record<string, unknown>): {
  envelope: Uint8Array
  approvals: Approval[]
} {
  const keys = Object.keys(outer).sort()
  if (keys.length !== 2 || keys[0] !== 'approvals' || keys[1] !== 'request')
    throw new DecodeError('malformed', 'an approved request is { request, approvals }')
  if (!(outer.request instanceof Uint8Array)) throw new DecodeError('malformed', 'request must be bytes')
  const list = outer.approvals
  if (!Array.isArray(list) || list.length === 0 || list.length > APPROVALS_MAX)
    throw new DecodeError('malformed', `approvals must be a list of 1-${APPROVALS_MAX}`)
  const approvals = list.map((a, i) => {
    if (!isRecord(a) || Object.keys(a).length !== 2)
      throw new DecodeError('malformed', `approvals[${i}] must be { cert, sig }`)
    return {
      cert: readBytes(a, 'cert', { bytesMin: 1, bytesMax: CERTIFICATE_BYTES_MAX }),
      sig: readBytes(a, 'sig', { length: SIGNATURE_BYTES }),
    }
  })
  for (let i = 1; i < approvals.length; i++) {
    if (!(toHex((approvals[i - 1] as Approval).sig) < toHex((approvals[i] as Approval).sig)))
      throw new DecodeError('malformed', 'approvals must be sorted by signature, without repeats')
  }
  return { envelope: outer.request, approvals }
}

/** Verifies approvals of the request whose body bytes are `bodyBytes` and whose proposer is `proposer`. */
export function verifyApprovals(
  approvals: readonly Approval[],
  bodyBytes: Uint8Array,
  proposer: Certificate,
  verifier: CertificateVerifier,
  nowMs: number,
): ApprovalCheck {
  const approvers: Certificate[] = []
  const accepted: { approval: Approval; cert: Certificate }[] = []
  const rejected: { reason: ApprovalRejection; detail: string }[] = []
  const names = new Set<string>()
  let message: Uint8Array | undefined
  for (const approval of approvals) {
    const verdict = verifier(approval.cert, nowMs)
    if (!verdict.ok) {
      const honest = ['revoked', 'expired', 'not-yet-valid'].includes(verdict.reason)
      rejected.push({ reason: honest ? 'bad-certificate' : 'forged-certificate', detail: verdict.detail })
      // No honest node forwards a forged approval: stop here, so garbage costs one check, not sixteen.
      if (!honest) break
      continue
    }
    const cert = verdict.signed.certificate
    if (!cert.roles.includes('operator')) {
      rejected.push({ reason: 'not-operator', detail: `${cert.name} is not an operator` })
      break
    }
    if (cert.name === proposer.name) {
      rejected.push({ reason: 'proposer', detail: `${cert.name} proposed the request and cannot approve it` })
      break
    }
    if (names.has(cert.name)) {
      rejected.push({ reason: 'duplicate', detail: `${cert.name} approved more than once` })
      break
    }
    message ??= authenticatedMessage(DOMAIN_APPROVAL, bodyBytes)
    if (!verifyBytes(cert.publicKey, message, approval.sig)) {
      rejected.push({ reason: 'bad-signature', detail: `the approval of ${cert.name} does not verify` })
      break
    }
    names.add(cert.name)
    approvers.push(cert)
    accepted.push({ approval, cert })
  }
  return { approvers, accepted, rejected }
}
