/**
 * The two-person rule on the requesting side: proposals and approvals.
 *
 * `mesh exec … --propose` signs a request (the whole of it: action, args, filter, validity window,
 * id) without running it, and gossips it on `mesh/proposal/v1`; every node keeps the proposals it
 * sees (bounded, per proposer too). `mesh approve ID` on another operator's node adds that operator's
 * approval — a signature over the same body bytes (src/gossip/approval.ts) — and gossips the proposal
 * with every approval so far; nodes merge approvals per proposal. When a node holding an operator
 * identity (the proposer's or an approver's) finds that its own policy is met for every zone the
 * request targets, it publishes the approved request on the request topic, where every target checks
 * every signature against its own policy again (validate.ts). Replies go to the proposer, whose node
 * collects them into its job store until the request expires.
 *
 * Refused with a reason: an approval by the proposer, a second one by the same operator, an approval
 * of an expired or unknown proposal, an approval by an operator whose certificate is revoked. Nothing
 * runs below the threshold: a target whose policy is not met answers `denied` naming the signatures it
 * counted.
 */
import type { CertificateVerifier } from '../ca/types.js'
import { type Approval, createApproval, encodeApprovedRequest, verifyApprovals } from '../gossip/approval.js'
import { type AuthorizationPolicy, authorize } from '../gossip/authorize.js'
import { verifyReply } from '../gossip/reply.js'
import { createReplyCollector } from '../gossip/reply-collector.js'
import {
  type DecodedRequest,
  decodeRequest,
  REQUEST_BYTES_MAX,
  RequestDecodeError,
  verifyRequestSignature,
} from '../gossip/request.js'
import { checkValidityWindow, type RequestOutcome } from '../gossip/validate.js'
import type { MemberView } from '../membership/view.js'
import { expectedNodes } from '../membership/view.js'
import { DecodeError, decodeCanonicalCbor, encodeCbor, isRecord } from '../wire/cbor.js'
import type { Clock } from './clock.js'
import type { Signer } from './credentials.js'
import type { Exec } from './exec.js'
import { filterText, type JobStore } from './jobs.js'
import type { Logger } from './log.js'
import type { ReplyRouter } from './replies.js'
import type { TopicVerdict } from './topic-validators.js'

/** Most proposals kept. */
export const PROPOSALS_MAX = 256
/** Most live proposals of one proposer. */
export const PROPOSALS_PER_OPERATOR_MAX = 32

/** One proposal as `mesh proposals` lists it. */
export interface ProposalView {
  readonly id: string
  readonly action: string
  readonly args: readonly string[]
  readonly filter: DecodedRequest['body']['filter']
  readonly proposer: string
  readonly approvers: readonly string[]
  readonly issuedAtMs: number
  readonly expiresAtMs: number
  /** Published on the request topic (by this node or, as far as this node knows, another). */
  readonly published: boolean
  /** The one-line text form: what is being approved. */
  readonly text: string
}

/** A proposal operation that cannot be done; `code` says why. */
export class ProposalError extends Error {
  override name = 'ProposalError'
  readonly code: 'unknown' | 'expired' | 'proposer' | 'already-approved' | 'revoked' | 'no-operator'
  constructor(code: ProposalError['code'], message: string) {
    super(message)
    this.code = code
  }
}

interface Held {
  request: DecodedRequest
  readonly proposer: string
  approvals: Map<string, Approval>
  published: boolean
}

/** What the component needs. */
export interface ProposalsComponents {
  readonly operator: () => Signer | undefined
  readonly sign: Exec['sign']
  readonly members: () => readonly MemberView[]
  readonly verifier: CertificateVerifier
  readonly policy: () => AuthorizationPolicy
  readonly isRevoked: (serial: string) => boolean
  /** This node's own request pipeline (marks the replay cache, runs it here if it matches). */
  readonly handle: (bytes: Uint8Array, upstream: undefined) => RequestOutcome
  readonly publishRequest: (bytes: Uint8Array) => Promise<unknown>
  readonly publishProposal: (bytes: Uint8Array) => Promise<unknown>
  readonly router: Pick<ReplyRouter, 'consume' | 'remember'>
  readonly jobs?: Pick<JobStore, 'issued' | 'collected' | 'late'>
  readonly clock: Clock
  readonly log: Logger
}

/** Settings. */
export interface ProposalsInit {
  readonly clockSkewToleranceMs: number
  readonly requestLifetimeMsMax: number
}

/** The component. */
export interface Proposals {
  /** Signs and gossips a proposal; returns it. */
  propose(options: Parameters<Exec['sign']>[0]): Promise<ProposalView>
  /** Adds this node's operator's approval; publishes the request when the threshold is met here. */
  approve(id: string): Promise<ProposalView>
  list(): ProposalView[]
  /** The proposal topic's validator. */
  verdict(bytes: Uint8Array, source: string): TopicVerdict
}

/**
 * A proposal message: `{ proposal: <request bytes with the approvals so far> }`. Wrapped so that its
 * bytes differ from the request published once approved: gossipsub's message id is the hash of the
 * bytes whatever the topic, and the same bytes again would be dropped as a duplicate.
 */
export function wrapProposal(request: Uint8Array): Uint8Array {
  return encodeCbor({ proposal: request })
}

/** The request bytes inside a proposal message. @throws DecodeError */
export function unwrapProposal(message: Uint8Array): Uint8Array {
  const outer = decodeCanonicalCbor(message, REQUEST_BYTES_MAX + 64, 16)
  if (!isRecord(outer) || Object.keys(outer).length !== 1 || !(outer.proposal instanceof Uint8Array))
    throw new DecodeError('malformed', 'a proposal message is { proposal: bytes }')
  return outer.proposal
}

/** Creates the component. */
export function createProposals(components: ProposalsComponents, init: ProposalsInit): Proposals {
  const { clock, log } = components
  const held = new Map<string, Held>()

  const view = (h: Held): ProposalView => {
    const b = h.request.body
    const target = Object.keys(b.filter).length === 0 ? 'every node' : filterText(b.filter, { full: true })
    return {
      id: h.request.idHex,
      action: b.action,
      args: b.args,
      filter: b.filter,
      proposer: h.proposer,
      approvers: [...h.approvals.keys()].sort(),
      issuedAtMs: b.issuedAtMs,
      expiresAtMs: b.expiresAtMs,
      published: h.published,
      text: `${[b.action, ...b.args].join(' ')} on ${target} by ${h.proposer}, until ${new Date(b.expiresAtMs).toISOString()}`,
    }
  }

  const prune = (nowMs: number): void => {
    for (const [id, h] of held) {
      if (h.request.body.expiresAtMs + init.clockSkewToleranceMs < nowMs) held.delete(id)
    }
  }

  const bytesOf = (h: Held): Uint8Array =>
    encodeApprovedRequest(h.request.envelopeBytes, [...h.approvals.values()])

  /** The approvers that verify now (a revoked one drops out). */
  const approversOf = (h: Held) => {
    const proposerCert = components.verifier(h.request.body.issuer, clock.nowMs())
    if (!proposerCert.ok) return undefined
    const check = verifyApprovals(
      [...h.approvals.values()],
      h.request.envelope.bodyBytes,
      proposerCert.signed.certificate,
      components.verifier,
      clock.nowMs(),
    )
    return { proposer: proposerCert.signed.certificate, approvers: check.approvers }
  }

  /** True when this node's policy is met for every zone the request targets now. */
  const thresholdMet = (h: Held): boolean => {
    const signers = approversOf(h)
    if (signers === undefined) return false
    const targets = new Set(expectedNodes(components.members(), h.request.filter))
    const zones = new Set(
      components
        .members()
        .filter(m => targets.has(m.name))
        .map(m => m.zone),
    )
    if (zones.size === 0) return false
    for (const zone of zones) {
      const decision = authorize(components.policy(), {
        action: h.request.body.action,
        operator: signers.proposer,
        nodeZone: zone,
        approvers: signers.approvers,
      })
      if (!decision.allow) return false
    }
    return true
  }

  const publishIfMet = (h: Held): void => {
    if (h.published || components.operator() === undefined || !thresholdMet(h)) return
    h.published = true
    const bytes = bytesOf(h)
    const own = components.handle(bytes, undefined)
    if (own.kind === 'refused') {
      log.warn({ proposal: h.request.idHex, code: own.code }, 'approved request refused by our own checks')
      return
    }
    log.info(
      { proposal: h.request.idHex, approvers: [...h.approvals.keys()] },
      'proposal approved; request published',
    )
    void components
      .publishRequest(bytes)
      .catch(err => log.warn({ err: String(err) }, 'request not published'))
  }

  /** Checks and merges a proposal message; true when it told us something new. */
  const merge = (
    message: Uint8Array,
  ): { ok: true; news: boolean } | { ok: false; code: string; reject: boolean } => {
    let request: DecodedRequest
    try {
      request = decodeRequest(unwrapProposal(message))
    } catch (err) {
      if (err instanceof RequestDecodeError) return { ok: false, code: err.code, reject: true }
      if (err instanceof DecodeError) return { ok: false, code: 'malformed', reject: true }
      throw err
    }
    const nowMs = clock.nowMs()
    const cert = components.verifier(request.body.issuer, nowMs)
    if (!cert.ok) return { ok: false, code: `certificate-${cert.reason}`, reject: false }
    const proposer = cert.signed.certificate
    if (!proposer.roles.includes('operator')) return { ok: false, code: 'not-operator', reject: true }
    if (!verifyRequestSignature(request, proposer.publicKey))
      return { ok: false, code: 'bad-signature', reject: true }
    const window = checkValidityWindow(request.body.issuedAtMs, request.body.expiresAtMs, nowMs, init)
    if (window !== undefined)
      return { ok: false, code: window, reject: window === 'bad-window' || window === 'lifetime-too-long' }
    const check = verifyApprovals(
      request.approvals,
      request.envelope.bodyBytes,
      proposer,
      components.verifier,
      nowMs,
    )
    if (check.rejected.some(r => r.reason !== 'bad-certificate'))
      return { ok: false, code: 'bad-approval', reject: true }
    prune(nowMs)
    let h = held.get(request.idHex)
    let news = false
    if (h === undefined) {
      const mine = [...held.values()].filter(x => x.proposer === proposer.name).length
      if (held.size >= PROPOSALS_MAX || mine >= PROPOSALS_PER_OPERATOR_MAX)
        return { ok: false, code: 'overloaded', reject: false }
      h = { request, proposer: proposer.name, approvals: new Map(), published: false }
      held.set(request.idHex, h)
      news = true
    }
    for (const { approval, cert: approver } of check.accepted) {
      if (!h.approvals.has(approver.name)) {
        h.approvals.set(approver.name, approval)
        news = true
      }
    }
    if (news) publishIfMet(h)
    return { ok: true, news }
  }

  /** Collects the replies to a proposal of ours into the job store until it expires. */
  const collect = (request: DecodedRequest, expected: readonly string[]): void => {
    const jobs = components.jobs
    components.router.remember(request.idHex, undefined, request.body.replyTo, request.body.expiresAtMs)
    jobs?.issued(request, expected)
    const collector = createReplyCollector({
      requestId: request.body.id,
      requestIdHex: request.idHex,
      action: request.body.action,
      expected,
      deadlineMs: request.body.expiresAtMs,
    })
    const dones = new Map<string, Uint8Array>()
    let finished = false
    const finish = (): void => {
      if (finished) return
      finished = true
      timer.cancel()
      unconsume()
      collector.tick(clock.nowMs())
      // Each done is in the store already (late); the summary record carries the counts.
      jobs?.collected(request, collector.result(), [])
    }
    const unconsume = components.router.consume(request.idHex, bytes => {
      const verdict = verifyReply(bytes, {
        verifier: components.verifier,
        nowMs: clock.nowMs(),
        requestId: request.body.id,
      })
      if (!verdict.ok) return
      const event = collector.accept(verdict.verified, clock.nowMs())
      if (event.kind === 'done' && !dones.has(event.reply.node)) {
        dones.set(event.reply.node, bytes)
        jobs?.late(request.idHex, bytes)
      }
      if (collector.state === 'complete') finish()
    })
    const timer = clock.setTimer(finish, Math.max(0, request.body.expiresAtMs - clock.nowMs()), {
      keepAlive: false,
    })
  }

  return {
    async propose(options) {
      const { request, expected } = components.sign(options)
      const proposer = components.operator()?.certificate.certificate.name ?? '?'
      const h: Held = { request, proposer, approvals: new Map(), published: false }
      prune(clock.nowMs())
      held.set(request.idHex, h)
      collect(request, expected)
      await components
        .publishProposal(wrapProposal(request.bytes))
        .catch(err =>
          log.warn(
            { err: String(err) },
            'proposal not published (peers will not see it until it is approved here)',
          ),
        )
      publishIfMet(h) // a policy without a signature requirement for it: runs as a plain request would
      return view(h)
    },

    async approve(id) {
      const signer = components.operator()
      if (signer === undefined)
        throw new ProposalError(
          'no-operator',
          'this node holds no operator identity; approve on an operator node',
        )
      const h = held.get(id)
      if (h === undefined)
        throw new ProposalError(
          'unknown',
          `no proposal ${id} is known here (see mesh proposals; it may not have reached this node yet)`,
        )
      const nowMs = clock.nowMs()
      if (h.request.body.expiresAtMs <= nowMs)
        throw new ProposalError(
          'expired',
          `proposal ${id} expired at ${new Date(h.request.body.expiresAtMs).toISOString()}`,
        )
      const me = signer.certificate.certificate
      if (me.name === h.proposer)
        throw new ProposalError('proposer', `${me.name} proposed ${id} and cannot approve it too`)
      if (h.approvals.has(me.name))
        throw new ProposalError('already-approved', `${me.name} approved ${id} already`)
      if (components.isRevoked(me.serial))
        throw new ProposalError(
          'revoked',
          `the certificate of ${me.name} is revoked; its approval would not count`,
        )
      h.approvals.set(me.name, createApproval(signer, h.request.envelope.bodyBytes))
      await components
        .publishProposal(wrapProposal(bytesOf(h)))
        .catch(err => log.warn({ err: String(err) }, 'approval not gossiped'))
      publishIfMet(h)
      return view(h)
    },

    list() {
      prune(clock.nowMs())
      return [...held.values()].map(view).sort((a, b) => b.issuedAtMs - a.issuedAtMs)
    },

    verdict(bytes) {
      const merged = merge(bytes)
      if (merged.ok) return { kind: 'accept', code: merged.news ? 'accept' : 'known' }
      return { kind: 'refused', code: merged.code, action: merged.reject ? 'reject' : 'ignore' }
    },
  }
}
