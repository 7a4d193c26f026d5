/**
 * `exec` on the requesting node: signs a request with the operator identity, runs it through this
 * node's own pipeline (which also runs it here when it matches us), publishes it, and collects the
 * signed replies that the reply router delivers until every expected node has answered, the timeout
 * passes or the caller aborts.
 */

import type { CertificateVerifier } from '../ca/types.js'
import type { TargetFilter } from '../gossip/filter.js'
import { verifyReply } from '../gossip/reply.js'
import {
  type CollectEvent,
  createReplyCollector,
  type ExecResult,
  outcomeCounts,
} from '../gossip/reply-collector.js'
import { createRequest, type DecodedRequest, HOLDERS_MAX, type RequestInit } from '../gossip/request.js'
import type { RequestOutcome, RequestRefusalCode } from '../gossip/validate.js'
import type { MemberView } from '../membership/view.js'
import { expectedNodes } from '../membership/view.js'
import { hash, toHex } from '../wire/hash.js'
import type { Clock, Random } from './clock.js'
import type { Signer } from './credentials.js'
import type { EventBus } from './events.js'
import { JOB_LOOKUP_ACTION } from './job-lookup.js'
import type { JobStore } from './jobs.js'
import { createLogLimiter, type Logger } from './log.js'
import type { ReplyRouter } from './replies.js'

/** Length of a request id, bytes. */
export const REQUEST_ID_BYTES = 16
/** Most of our addresses carried in a request's replyTo. */
export const REPLY_TO_ADDRS_MAX = 16

/** Options of {@link Exec.exec} (and MeshNode.exec). */
export interface ExecOptions {
  readonly action: string
  readonly args?: readonly string[]
  readonly filter?: TargetFilter
  /** How long to wait for replies; also the request's lifetime. */
  readonly timeoutMs: number
  readonly signal?: AbortSignal
  /**
   * The job this request belongs to (16 bytes): the waves of one rollout share it. Default: a job of
   * its own, whose id is the request's id.
   */
  readonly job?: Uint8Array
  /** Called for each ack, completion, duplicate or stray reply as it arrives. */
  readonly onEvent?: (
    event: CollectEvent | { kind: 'published'; id: string; expected: readonly string[] },
  ) => void
}

/** {@link Exec.exec} refused to publish a request its own validation pipeline refuses; `code` says why. */
export class ExecRefusedError extends Error {
  override name = 'ExecRefusedError'
  readonly code: RequestRefusalCode
  constructor(code: RequestRefusalCode, message: string) {
    super(message)
    this.code = code
  }
}

/**
 * A `--once` request found members matching its filter but no zone authority among them right now
 * (no lease held, or none known here yet), so nobody would run it; nothing was published.
 */
export class ExecNoAuthorityError extends Error {
  override name = 'ExecNoAuthorityError'
  readonly code = 'no-authority'
  /** The zones that match but have no authority, sorted. */
  readonly zones: readonly string[]
  constructor(zones: readonly string[]) {
    super(
      zones.length === 1
        ? `zone ${zones[0]} has no authority right now`
        : `zones ${zones.join(', ')} have no authority right now`,
    )
    this.zones = zones
  }
}

/**
 * For a `--once` filter that matches nobody: the zones whose members match everything but the
 * authority condition (the zones that have no authority right now); empty when no member matches at all.
 */
export function zonesWithoutAuthority(members: readonly MemberView[], filter: TargetFilter): string[] {
  // Every alive member counted as its zone's authority: who would match if each zone had one.
  const candidates = new Set(expectedNodes(members, filter, new Set(members.map(m => m.name))))
  const zones = new Set(members.filter(m => candidates.has(m.name)).map(m => m.zone))
  return [...zones].sort()
}

/** What exec needs. */
export interface ExecComponents {
  /** The identity that signs requests, or undefined when this node may not issue any. */
  readonly operator: () => Signer | undefined
  readonly isRunning: () => boolean
  readonly peerId: string
  readonly addrs: () => string[]
  readonly members: () => readonly MemberView[]
  /**
   * Names of the proven holders of `zones` (the expected set of `--once`): those a joint majority of
   * each zone's voters names right now, never a member's own claim.
   */
  readonly authorities: (zones: readonly string[]) => Promise<Set<string>>
  /** Runs a request through this node's pipeline (and executor). */
  readonly handle: (bytes: Uint8Array, upstream: undefined) => RequestOutcome
  readonly publish: (bytes: Uint8Array) => Promise<unknown>
  readonly router: Pick<ReplyRouter, 'consume' | 'remember'>
  readonly verifier: CertificateVerifier
  /** Where a finished exec is reported (metrics: latency as the requester sees it); optional. */
  readonly events?: Pick<EventBus, 'emit'>
  /** The job store: what was issued, collected, and what arrived late (after exec returned). */
  readonly jobs?: Pick<JobStore, 'issued' | 'collected' | 'late'>
  readonly clock: Clock
  readonly random: Random
  readonly log: Logger
}

/** Settings. */
export interface ExecInit {
  readonly requestLifetimeMsMax: number
}

/** The exec component. */
export interface Exec {
  exec(options: ExecOptions): Promise<ExecResult>
  /**
   * Signs a request as exec would, without running or publishing it (a proposal of the two-person
   * rule, proposals.ts), and the names expected to answer it now.
   * @throws as exec does for a missing operator identity or a bad filter
   */
  sign(options: Pick<ExecOptions, 'action' | 'args' | 'filter' | 'timeoutMs'>): {
    request: DecodedRequest
    expected: string[]
  }
  /** Replies that failed verification. */
  repliesRefused(): number
  /** Byte-identical copies of a done already accepted, dropped without verifying them again. */
  duplicatesSkipped(): number
}

/** The key of a reply for spotting byte-identical copies: the hash of its bytes (cheap beside a verification). */
function copyKey(bytes: Uint8Array): string {
  return toHex(hash(bytes))
}

/** Creates the exec component. */
export function createExec(components: ExecComponents, init: ExecInit): Exec {
  const { clock, log, router } = components
  const limited = createLogLimiter(log, clock)
  let repliesRefused = 0
  let duplicatesSkipped = 0

  const refusalMessage = (
    outcome: Extract<RequestOutcome, { kind: 'refused' }>,
    timeoutMs: number,
  ): string => {
    if (outcome.code === 'lifetime-too-long') {
      return `a timeout of ${timeoutMs} ms is longer than the longest request lifetime nodes accept (requestLifetimeMsMax, ${init.requestLifetimeMsMax} ms)`
    }
    return `request refused by this node's own checks (${outcome.code}): ${outcome.detail}`
  }

  /** A request signed by `operator`, valid from `issuedAtMs` for `options.timeoutMs`, replies to us. */
  const signRequest = (
    operator: Signer,
    issuedAtMs: number,
    options: Pick<ExecOptions, 'action' | 'args' | 'filter' | 'timeoutMs'>,
    extra: Pick<RequestInit, 'job' | 'holders'>,
  ): DecodedRequest =>
    createRequest({
      id: components.random.bytes(REQUEST_ID_BYTES),
      issuer: operator.certificate.bytes,
      key: operator.key,
      issuedAtMs,
      expiresAtMs: issuedAtMs + options.timeoutMs,
      filter: options.filter ?? {},
      action: options.action,
      args: options.args ?? [],
      replyTo: { peerId: components.peerId, addrs: components.addrs().slice(0, REPLY_TO_ADDRS_MAX) },
      ...extra,
    })

  /** Resolves when `isDone()` after a wake, at the deadline, or on abort. */
  const waitUntil = (
    deadlineMs: number,
    signal: AbortSignal | undefined,
    setWake: (wake: () => void) => void,
  ) =>
    new Promise<void>(resolve => {
      const timer = clock.setTimer(done, Math.max(0, deadlineMs - clock.nowMs()), { keepAlive: true })
      signal?.addEventListener('abort', done, { once: true })
      setWake(done)
      function done(): void {
        timer.cancel()
        signal?.removeEventListener('abort', done)
        resolve()
      }
    })

  const exec = async (options: ExecOptions): Promise<ExecResult> => {
    const operator = components.operator()
    if (operator === undefined) {
      throw new Error(
        'this node holds no operator identity; run exec on a node created by mesh init, or join one with --role operator',
      )
    }
    if (!components.isRunning()) throw new Error('the node is not running')
    const issuedAtMs = clock.nowMs()
    const members = components.members()
    const once = options.filter?.once === true
    // For --once, the zones whose members would match if they held the lease, and who proves to.
    const onceZones =
      once && options.filter !== undefined ? zonesWithoutAuthority(members, options.filter) : []
    const authorities = onceZones.length > 0 ? await components.authorities(onceZones) : new Set<string>()
    const expected = expectedNodes(members, options.filter ?? {}, authorities)
    if (expected.length === 0 && once) {
      // Nobody holds the lease: say so, rather than "no member matches", and publish nothing.
      const zones = zonesWithoutAuthority(members, options.filter ?? {}).filter(
        zone => !members.some(m => m.zone === zone && authorities.has(m.name)),
      )
      if (zones.length > 0) throw new ExecNoAuthorityError(zones)
    }
    const request = signRequest(operator, issuedAtMs, options, {
      ...(options.job === undefined ? {} : { job: options.job }),
      // Who is expected to run a --once request: one that lost the lease meanwhile then says so.
      ...(once ? { holders: expected.slice(0, HOLDERS_MAX) } : {}),
    })
    const collector = createReplyCollector({
      requestId: request.body.id,
      requestIdHex: request.idHex,
      action: options.action,
      expected,
      deadlineMs: issuedAtMs + options.timeoutMs,
    })
    let wake: () => void = () => {}
    // Lookups are not jobs of their own: recording them would fill every store with copies of others.
    const jobs = options.action === JOB_LOOKUP_ACTION ? undefined : components.jobs
    /** The signed done of each node, as received, for the job store. */
    const dones = new Map<string, Uint8Array>()
    /** Hashes of the dones accepted (byte-identical copies are dropped unverified). */
    const acceptedSigs = new Set<string>()
    let finished = false
    const unconsume = router.consume(request.idHex, bytes => {
      // A copy of a done already verified (the gossip path and the direct fallback both delivered it)
      // is dropped before its signature is checked again: at N nodes, copies cost N verifications.
      if (acceptedSigs.has(copyKey(bytes))) {
        duplicatesSkipped += 1
        return
      }
      const verdict = verifyReply(bytes, {
        verifier: components.verifier,
        nowMs: clock.nowMs(),
        requestId: request.body.id,
      })
      if (!verdict.ok) {
        repliesRefused += 1
        const context = { request: request.idHex, reason: verdict.reason, detail: verdict.detail }
        limited.log('warn', `reply:${verdict.reason}`, context, 'reply refused')
        return
      }
      const reply = verdict.verified.reply
      if (finished) {
        // After exec returned (every expected node answered early): a node that was away, ran the
        // request when it came back, and answers before expiry still lands in the job record.
        if (reply.kind === 'done' && !dones.has(reply.node)) {
          dones.set(reply.node, bytes)
          acceptedSigs.add(copyKey(bytes))
          jobs?.late(request.idHex, bytes)
        }
        return
      }
      if (reply.kind === 'done' && !dones.has(reply.node)) {
        dones.set(reply.node, bytes)
        acceptedSigs.add(copyKey(bytes))
      }
      const event = collector.accept(verdict.verified, clock.nowMs())
      options.onEvent?.(event)
      if (collector.state !== 'pending') wake()
    })
    let keepConsuming = false
    try {
      router.remember(request.idHex, undefined, request.body.replyTo, request.body.expiresAtMs)
      // Gossipsub does not deliver our own messages: validate (marks the replay cache) and run locally.
      const own = components.handle(request.bytes, undefined)
      // Every node runs the same pipeline: what we refuse would be refused everywhere while we waited
      // out the whole timeout (e.g. a timeout beyond requestLifetimeMsMax), so it is not published.
      if (own.kind === 'refused') throw new ExecRefusedError(own.code, refusalMessage(own, options.timeoutMs))
      jobs?.issued(request, expected)
      keepConsuming = jobs !== undefined
      options.onEvent?.({ kind: 'published', id: request.idHex, expected })
      await components
        .publish(request.bytes)
        .catch(err => log.warn({ err: String(err) }, 'request not published'))
      if (collector.state === 'pending') {
        await waitUntil(issuedAtMs + options.timeoutMs, options.signal, w => {
          wake = w
        })
      }
      collector.tick(clock.nowMs())
      const result = collector.result()
      finished = true
      jobs?.collected(request, result, [...dones.values()])
      const { ok, failed, missing, answered } = outcomeCounts(result)
      const lastAtMs = Math.max(issuedAtMs, ...answered.map(r => r.receivedAtMs))
      components.events?.emit({
        type: 'exec-finished',
        id: result.id,
        action: result.action,
        expected: result.expected.length,
        ok,
        failed,
        missing,
        durationMs: (result.missing.length > 0 ? clock.nowMs() : lastAtMs) - issuedAtMs,
        atMs: clock.nowMs(),
      })
      return result
    } finally {
      const leftMs = request.body.expiresAtMs - clock.nowMs()
      if (keepConsuming && leftMs > 0) clock.setTimer(unconsume, leftMs, { keepAlive: false })
      else unconsume()
    }
  }

  const sign: Exec['sign'] = options => {
    const operator = components.operator()
    if (operator === undefined) {
      throw new Error(
        'this node holds no operator identity; propose on a node created by mesh init, or join one with --role operator',
      )
    }
    const request = signRequest(operator, clock.nowMs(), options, {})
    return { request, expected: expectedNodes(components.members(), request.filter) }
  }

  return { exec, sign, repliesRefused: () => repliesRefused, duplicatesSkipped: () => duplicatesSkipped }
}
