/**
 * One target per decoder or validator that reads bytes or values from the network or from disk. A
 * target runs its decoder on one input and names the outcome: its own accept code, or the decoder's
 * refusal code (the `code` of its documented error class, or the reason of its result). Anything else
 * it throws escapes and is counted as an uncaught exception by the runner.
 *
 * Each target that accepts has an oracle (`check`), run on every accepted input that is not itself a
 * corpus message: what was accepted must be byte-identical to a valid message re-created from the
 * decoded content by src's own creator with THE RIGHT KEY from the ground truth (world.ts: the mesh
 * CA for certificates, lists and rosters; the key the certificate names for requests, replies and
 * records; the accuser's own key for suspicions; the key a signing request certifies; the mesh's
 * ticket secret). Signatures are deterministic (RFC 8032), so equal bytes mean "signed by that key
 * and spelled the one canonical way". A failed check is a forgery. Decoders that do not authenticate
 * (frames of authenticated streams, files) have no such oracle; where they accept a spelling their
 * own encoder would not write, the outcome is `ok-noncanonical` (by design for those, and counted).
 */

import { createAuthority } from '../../src/authority/authority.js'
import { authorityProfiles } from '../../src/authority/config.js'
import {
  type AuthorityMessage,
  authorityMessageBytesMax,
  encodeAuthorityMessage,
  parseAuthorityMessage,
} from '../../src/authority/messages.js'
import {
  CERTIFICATE_BYTES_MAX,
  decodeCertificate,
  issueCertificate,
  verifyCertificate,
} from '../../src/ca/certificate.js'
import { fingerprintOf } from '../../src/ca/fingerprint.js'
import { createIssuer, type SigningResult } from '../../src/ca/issuer.js'
import {
  decodeIssuerState,
  encodeIssuerState,
  ISSUER_STATE_BYTES_MAX,
  IssuerStateError,
} from '../../src/ca/issuer-state.js'
import {
  checkIssued,
  checkMeshProof,
  decodeJoinAnswer,
  decodeJoinRequest,
  encodeJoinAnswer,
  encodeJoinRequest,
  JOIN_ANSWER_BYTES_MAX,
  JOIN_REQUEST_BYTES_MAX,
} from '../../src/ca/join-wire.js'
import {
  decodeKeyFile,
  decodeTicketSecretFile,
  encodeKeyFile,
  encodeTicketSecretFile,
  KEY_FILE_BYTES_MAX,
  KeyFileError,
} from '../../src/ca/key-file.js'
import {
  REVOCATION_LIST_BYTES_MAX,
  signRevocationList,
  verifyRevocationList,
} from '../../src/ca/revocation.js'
import {
  createSigningRequest,
  SIGNING_REQUEST_BYTES_MAX,
  verifySigningRequest,
} from '../../src/ca/signing-request.js'
import { checkTicket, createTicket, parseTicket, TicketError } from '../../src/ca/ticket.js'
import { signZoneRoster, verifyZoneRoster, ZONE_ROSTER_BYTES_MAX } from '../../src/ca/zone-roster.js'
import { authorize, PolicyError, parsePolicy } from '../../src/gossip/authorize.js'
import {
  evaluateWhere,
  FilterParseError,
  filterToCbor,
  parsePattern,
  parseWhere,
} from '../../src/gossip/filter.js'
import { createReplayCache } from '../../src/gossip/replay.js'
import {
  decodeReplyBatch,
  encodeReplyBatch,
  REPLY_BATCH_BYTES_MAX,
  REPLY_BYTES_MAX,
  type Reply,
  verifyReply,
} from '../../src/gossip/reply.js'
import {
  decodeRequest,
  REQUEST_BYTES_MAX,
  type RequestBody,
  RequestDecodeError,
} from '../../src/gossip/request.js'
import {
  decodeRunLedger,
  encodeRunLedger,
  RUN_LEDGER_BYTES_MAX,
  RunLedgerFormatError,
} from '../../src/gossip/run-ledger.js'
import { createRequestValidator, outcomeCode } from '../../src/gossip/validate.js'
import {
  createRecord,
  createSuspicion,
  openSuspicion,
  peekRecord,
  RECORD_BYTES_MAX,
  SUSPICION_BYTES_MAX,
  verifyRecord,
  verifySuspicion,
} from '../../src/membership/record.js'
import {
  decodeMemberMessage,
  encodeMemberMessage,
  MEMBER_MESSAGE_BYTES_MAX,
} from '../../src/membership/wire.js'
import { decodeEpochs, EPOCHS_BYTES_MAX, encodeEpochs } from '../../src/node/authority-epochs.js'
import { decodeHello, HELLO_BYTES_MAX } from '../../src/node/hello.js'
import { requestIdOfReply } from '../../src/node/replies.js'
import { decodeRoster, encodeRoster, ROSTER_BYTES_MAX } from '../../src/node/roster.js'
import { decodeZoneRosterMessage, ZONE_ROSTER_MESSAGE_BYTES_MAX } from '../../src/node/zone-rosters.js'
import {
  type CborValue,
  DecodeError,
  decodeCanonicalCbor,
  decodeCbor,
  encodeCbor,
} from '../../src/wire/cbor.js'
import { DOMAIN_REPLY, DOMAIN_REQUEST } from '../../src/wire/domains.js'
import { openEnvelope, sealEnvelope } from '../../src/wire/envelope.js'
import { bytesEqual, toHex } from '../../src/wire/hash.js'
import { DAY_MS, seededRandomBytes } from '../ca/fixtures.js'
import { simRandom } from '../sim/random.js'
import { canonicalKeyOrder, type Node, parse, serialize, TreeParseError } from './cbor-tree.js'
import { ANSWERED_REQUEST_ID, NOW, type Seed, SKEW_MS, type World } from './world.js'

/** Any input: bytes, or text (tickets, expressions, patterns). */
export type Input = Uint8Array | string

/** What one run of a target concluded. */
export interface Verdict {
  /** The outcome code: an accept code (`ok`, `admit`, `accept-execute`, …) or the refusal code. */
  readonly code: string
  readonly accepted: boolean
  /** What the oracle checks (the decoded or verified value). */
  readonly value?: unknown
  /** The outcome is a caught internal error of the decoder (e.g. the pipeline's `internal`): a crash. */
  readonly crash?: string
}

/** A decoder or validator under test. */
export interface Target {
  readonly name: string
  /** The message types it is fed. */
  readonly types: readonly string[]
  /**
   * `report`: runs over the time budget are reported but do not fail the campaign (the generic CBOR
   * targets, which no real path calls with these limits, and the decoders of the node's own home
   * files and configuration, read once at start).
   */
  readonly timing?: 'report'
  /** Untimed preparation of fresh state for one run (a replay cache, an issuer, an authority core). */
  setup?(seed: Seed): unknown
  /** The timed run: the decoder itself, documented errors turned into codes. */
  run(input: Input, seed: Seed, state: unknown): Verdict
  /** The oracle for an accepted input that is not a corpus message: undefined, or what is wrong. */
  check?(input: Input, value: unknown, seed: Seed): string | undefined
  /** The oracle for a refused input: undefined, or why it should have been accepted. */
  checkRefusal?(input: Input, verdict: Verdict, seed: Seed): string | undefined
}

const ok = (value?: unknown, code = 'ok'): Verdict => ({ code, accepted: true, value })
const no = (code: string): Verdict => ({ code, accepted: false })

function bytesOf(input: Input): Uint8Array {
  return typeof input === 'string' ? new TextEncoder().encode(input) : input
}

function same(a: Uint8Array, b: Uint8Array): boolean {
  return bytesEqual(a, b)
}

/** Largest input the differential CBOR oracles re-encode. */
const DIFFERENTIAL_BYTES_MAX = 64 * 1024

/** Policies come from config.toml, not CBOR; the fuzzer carries them as CBOR values of at most this. */
const POLICY_BYTES_MAX = 64 * 1024

/** Every bytes type with the byte limit its real decoder applies (the generic CBOR targets use it too). */
const BYTES_MAX: Readonly<Record<string, number>> = {
  request: REQUEST_BYTES_MAX,
  reply: REPLY_BYTES_MAX,
  'reply-batch': REPLY_BATCH_BYTES_MAX,
  'member-record': RECORD_BYTES_MAX,
  suspicion: SUSPICION_BYTES_MAX,
  'member-message': MEMBER_MESSAGE_BYTES_MAX,
  hello: HELLO_BYTES_MAX,
  certificate: CERTIFICATE_BYTES_MAX,
  'revocation-list': REVOCATION_LIST_BYTES_MAX,
  'zone-roster': ZONE_ROSTER_BYTES_MAX,
  'zone-roster-message': ZONE_ROSTER_MESSAGE_BYTES_MAX,
  'signing-request': SIGNING_REQUEST_BYTES_MAX,
  'join-request': JOIN_REQUEST_BYTES_MAX,
  'join-answer': JOIN_ANSWER_BYTES_MAX,
  'authority-message': authorityMessageBytesMax,
  policy: POLICY_BYTES_MAX,
  'key-file': KEY_FILE_BYTES_MAX,
  'ticket-secret-file': KEY_FILE_BYTES_MAX,
  'issuer-state': ISSUER_STATE_BYTES_MAX,
  'run-ledger': RUN_LEDGER_BYTES_MAX,
  'authority-epochs': EPOCHS_BYTES_MAX,
  'roster-file': ROSTER_BYTES_MAX,
}
const BYTES_TYPES = Object.keys(BYTES_MAX)
const SIGNED_TYPES = [
  'request',
  'reply',
  'member-record',
  'suspicion',
  'certificate',
  'revocation-list',
  'zone-roster',
  'signing-request',
]

/** Builds every target over one world. */
export function createTargets(world: World): Target[] {
  const { ca } = world
  const keyOf = (publicKey: Uint8Array) => world.keyring.get(toHex(publicKey))
  const identityOfPeer = (peerId: string) => world.identities.find(i => i.peerId === peerId)

  /** A certificate the mesh verifier accepted must be one the mesh CA issues for its fields. */
  const certificateVerdicts = new Map<string, string | undefined>()
  const certificateProblem = (bytes: Uint8Array): string | undefined => {
    const id = toHex(bytes)
    if (certificateVerdicts.has(id)) return certificateVerdicts.get(id)
    const problem = certificateProblemOf(bytes)
    if (certificateVerdicts.size < 4096) certificateVerdicts.set(id, problem)
    return problem
  }
  const certificateProblemOf = (bytes: Uint8Array): string | undefined => {
    const decoded = decodeCertificate(bytes)
    if (!decoded.ok) return `forgery: an accepted certificate does not decode (${decoded.detail})`
    const c = decoded.signed.certificate
    let again: Uint8Array
    try {
      again = issueCertificate(ca, c).bytes
    } catch (err) {
      return `non-canonical: the CA would not issue an accepted certificate (${(err as Error).message})`
    }
    return same(again, bytes) ? undefined : 'forgery: accepted certificate is not one the mesh CA signed'
  }

  const requestBody = (b: RequestBody): CborValue => ({
    v: 1,
    id: b.id,
    issuer: b.issuer,
    issuedAtMs: b.issuedAtMs,
    expiresAtMs: b.expiresAtMs,
    filter: filterToCbor(b.filter) as CborValue,
    action: b.action,
    args: [...b.args],
    replyTo: { peerId: b.replyTo.peerId, addrs: [...b.replyTo.addrs] },
  })

  const replyBody = (reply: Reply, cert: { name: string; zone: string }): CborValue => {
    const common = {
      v: 1,
      kind: reply.kind,
      requestId: reply.requestId,
      node: cert.name,
      zone: cert.zone,
      cert: reply.cert,
      sentAtMs: reply.sentAtMs,
    }
    if (reply.kind === 'ack') return common
    if (reply.kind === 'output') return { ...common, stream: reply.stream, seq: reply.seq, data: reply.data }
    return {
      ...common,
      status: reply.status,
      exitCode: reply.exitCode,
      output: reply.output,
      outputTruncated: reply.outputTruncated,
      durationMs: reply.durationMs,
      epoch: reply.epoch,
      reason: reply.reason,
    }
  }

  /** A verified reply must be the reply its certificate's key signs for its content. */
  const replyProblem = (
    bytes: Uint8Array,
    value: {
      reply: Reply
      certificate: { bytes: Uint8Array; certificate: { publicKey: Uint8Array; name: string; zone: string } }
    },
  ): string | undefined => {
    const problem = certificateProblem(value.certificate.bytes)
    if (problem !== undefined) return problem
    const key = keyOf(value.certificate.certificate.publicKey)
    if (key === undefined) return 'forgery: reply verified under a key nobody holds'
    const again = sealEnvelope(DOMAIN_REPLY, key, replyBody(value.reply, value.certificate.certificate))
    return same(again, bytes) ? undefined : 'non-canonical: accepted reply is not the one its key signs'
  }

  const recordProblem = (bytes: Uint8Array, value: unknown): string | undefined => {
    const v = value as Extract<ReturnType<typeof verifyRecord>, { ok: true }>['verified']
    const problem = certificateProblem(v.certificate.bytes)
    if (problem !== undefined) return problem
    const key = keyOf(v.certificate.certificate.publicKey)
    if (key === undefined) return 'forgery: record verified under a key nobody holds'
    let again: Uint8Array
    try {
      again = createRecord(key, v.certificate, v.record)
    } catch (err) {
      return `non-canonical: createRecord refuses an accepted record (${(err as Error).message})`
    }
    return same(again, bytes) ? undefined : 'non-canonical: accepted record is not the one its key signs'
  }

  const suspicionProblem = (bytes: Uint8Array, value: unknown): string | undefined => {
    const s = value as { subject: string; incarnation: number; from: string }
    const accuser = identityOfPeer(s.from)
    if (accuser === undefined) return 'forgery: suspicion from nobody we know'
    const again = createSuspicion(accuser.key, s)
    return same(again, bytes)
      ? undefined
      : 'non-canonical: accepted suspicion is not the one its accuser signs'
  }

  const listProblem = (bytes: Uint8Array): string | undefined => {
    const verdict = verifyRevocationList(bytes, ca.publicKey)
    if (!verdict.ok) return 'forgery: list does not verify again'
    const l = verdict.signed.list
    let again: Uint8Array
    try {
      again = signRevocationList(ca, {
        version: l.version,
        issuedAtMs: l.issuedAtMs,
        entries: l.entries,
      }).bytes
    } catch (err) {
      return `non-canonical: the CA would not sign an accepted list (${(err as Error).message})`
    }
    return same(again, bytes) ? undefined : 'forgery: accepted list is not the one the mesh CA signs'
  }

  const rosterProblem = (bytes: Uint8Array): string | undefined => {
    const verdict = verifyZoneRoster(bytes, ca.publicKey)
    if (!verdict.ok) return 'forgery: roster does not verify again'
    const z = verdict.signed.roster
    let again: Uint8Array
    try {
      again = signZoneRoster(ca, {
        version: z.version,
        issuedAtMs: z.issuedAtMs,
        members: z.members,
        priors: z.priors,
      }).bytes
    } catch (err) {
      return `non-canonical: the CA would not sign an accepted roster (${(err as Error).message})`
    }
    return same(again, bytes) ? undefined : 'forgery: accepted roster is not the one the mesh CA signs'
  }

  const signingRequestProblem = (bytes: Uint8Array): string | undefined => {
    const verdict = verifySigningRequest(bytes, {
      nowMs: NOW,
      maxAgeMs: 365 * DAY_MS,
      clockSkewToleranceMs: 365 * DAY_MS,
    })
    if (!verdict.ok) return 'forgery: signing request does not verify again'
    const q = verdict.signed.request
    const key = keyOf(q.publicKey)
    if (key === undefined) return 'forgery: signing request signed by a key nobody holds'
    let again: Uint8Array
    try {
      again = createSigningRequest(key, {
        ...(q.name !== undefined ? { name: q.name } : {}),
        ...(q.zone !== undefined ? { zone: q.zone } : {}),
        ...(q.ticket !== undefined ? { ticket: q.ticket } : {}),
        ...(q.certificate !== undefined ? { certificate: q.certificate } : {}),
        createdAtMs: q.createdAtMs,
        nonce: q.nonce,
      }).bytes
    } catch (err) {
      return `non-canonical: createSigningRequest refuses an accepted request (${(err as Error).message})`
    }
    return same(again, bytes)
      ? undefined
      : 'non-canonical: accepted signing request is not the one its key signs'
  }

  const ticketProblem = (line: string): string | undefined => {
    let ticket: ReturnType<typeof parseTicket>
    try {
      ticket = parseTicket(line)
    } catch {
      return 'forgery: an accepted ticket does not parse again'
    }
    let again: string
    try {
      again = createTicket(world.ticketSecret, ticket)
    } catch (err) {
      return `non-canonical: createTicket refuses an accepted ticket (${(err as Error).message})`
    }
    return again === line.trim()
      ? undefined
      : 'forgery: accepted ticket is not one the mesh secret authenticates'
  }

  /** Canonical-CBOR check independent of cborg: our own parser, shortest heads, sorted unique keys, valid UTF-8. */
  const canonicalProblem = (bytes: Uint8Array): string | undefined => {
    let tree: Node
    try {
      tree = parse(bytes, false)
    } catch (err) {
      if (err instanceof TreeParseError)
        return `non-canonical: accepted bytes are not definite-length CBOR (${err.message})`
      throw err
    }
    let floats = false
    const walk = (node: Node): string | undefined => {
      switch (node.k) {
        case 'float':
          floats = true
          return undefined
        case 'text':
          try {
            new TextDecoder('utf-8', { fatal: true }).decode(node.v)
          } catch {
            return 'non-canonical: accepted text is not valid UTF-8'
          }
          return undefined
        case 'array':
          for (const item of node.items) {
            const p = walk(item)
            if (p !== undefined) return p
          }
          return undefined
        case 'map':
          for (let i = 0; i < node.entries.length; i++) {
            const [key, value] = node.entries[i]!
            if (i > 0 && canonicalKeyOrder(node.entries[i - 1]![0], key) >= 0) {
              return 'non-canonical: accepted map keys are not in canonical order or repeat'
            }
            const p = walk(key) ?? walk(value)
            if (p !== undefined) return p
          }
          return undefined
        case 'tag':
          return 'non-canonical: accepted a tag'
        default:
          return undefined
      }
    }
    const problem = walk(tree)
    if (problem !== undefined) return problem
    if (
      !floats &&
      !same(
        serialize(tree, env => env.tag),
        bytes,
      )
    )
      return 'non-canonical: accepted a non-shortest head'
    return undefined
  }

  const decodeError = (err: unknown): Verdict => {
    if (err instanceof DecodeError) return no(err.code)
    throw err
  }

  let issuerState: { issuer: ReturnType<typeof createIssuer>; dirty: boolean } | undefined

  const targets: Target[] = [
    {
      // The signed types reach it through openEnvelope; the lenient decoders use decodeCbor themselves.
      name: 'decodeCanonicalCbor',
      types: BYTES_TYPES.filter(type => !SIGNED_TYPES.includes(type)),
      timing: 'report',
      run(input, seed) {
        try {
          return ok(decodeCanonicalCbor(bytesOf(input), BYTES_MAX[seed.type] ?? 0))
        } catch (err) {
          return decodeError(err)
        }
      },
      // Differential: decodeCanonicalCbor checks canonical form while decoding; it must agree with the
      // definition (cborg's encoder re-encodes the value to the very bytes), both ways. On inputs up to
      // DIFFERENTIAL_BYTES_MAX: the checks do not depend on size, re-encoding a megabyte takes 0.5 s.
      check(input, value) {
        const bytes = bytesOf(input)
        if (bytes.byteLength > DIFFERENTIAL_BYTES_MAX) return undefined
        return (
          canonicalProblem(bytes) ??
          (same(reencode(value), bytes) ? undefined : 'non-canonical: re-encodes to other bytes')
        )
      },
      checkRefusal(input, verdict) {
        const bytes = bytesOf(input)
        if (verdict.code !== 'malformed' || bytes.byteLength > DIFFERENTIAL_BYTES_MAX) return undefined
        let value: unknown
        try {
          value = decodeCbor(bytes, bytes.byteLength)
        } catch {
          return undefined
        }
        if (hasFloat(value)) return undefined
        return same(reencode(value), bytes) ? 'refused its own deterministic encoding' : undefined
      },
    },
    {
      name: 'openEnvelope',
      types: SIGNED_TYPES,
      timing: 'report',
      run(input, seed) {
        try {
          return ok(openEnvelope(bytesOf(input), BYTES_MAX[seed.type] ?? 0))
        } catch (err) {
          return decodeError(err)
        }
      },
      check(input, value) {
        const opened = value as ReturnType<typeof openEnvelope>
        if (!same(encodeCbor({ body: opened.bodyBytes, sig: opened.sig }), bytesOf(input)))
          return 'non-canonical: opened envelope is not its canonical encoding'
        if (!same(reencode(opened.body), opened.bodyBytes))
          return 'non-canonical: opened body is not its canonical encoding'
        return undefined
      },
      checkRefusal(input, verdict) {
        const bytes = bytesOf(input)
        if (verdict.code !== 'malformed' || bytes.byteLength > DIFFERENTIAL_BYTES_MAX) return undefined
        try {
          const outer = decodeCbor(bytes, bytes.byteLength) as Record<string, unknown>
          const keys = Object.keys(outer ?? {})
            .sort()
            .join()
          if (
            keys !== 'body,sig' ||
            !(outer.body instanceof Uint8Array) ||
            !(outer.sig instanceof Uint8Array)
          )
            return undefined
          if (outer.sig.byteLength !== 64 || !same(reencode(outer), bytes)) return undefined
          const body = decodeCbor(outer.body, outer.body.byteLength)
          if (body === null || typeof body !== 'object' || Array.isArray(body) || body instanceof Uint8Array)
            return undefined
          if (hasFloat(body) || !same(reencode(body), outer.body)) return undefined
          return 'refused a canonical envelope'
        } catch {
          return undefined
        }
      },
    },
    {
      name: 'decodeRequest',
      types: ['request'],
      run(input) {
        try {
          return ok(decodeRequest(bytesOf(input)))
        } catch (err) {
          if (err instanceof RequestDecodeError) return no(err.code)
          throw err
        }
      },
      check(_input, value) {
        const decoded = value as ReturnType<typeof decodeRequest>
        return same(encodeCbor(requestBody(decoded.body)), decoded.envelope.bodyBytes)
          ? undefined
          : 'non-canonical: decoded request body is not what its fields encode to'
      },
    },
    {
      name: 'validate',
      types: ['request'],
      setup: () =>
        createRequestValidator(
          {
            verifier: world.verifier,
            replay: createReplayCache({ clockSkewToleranceMs: SKEW_MS }),
            self: () => world.self,
            policy: () => world.policy,
          },
          { clockSkewToleranceMs: SKEW_MS, requestLifetimeMsMax: 5 * 60_000 },
        ),
      run(input, _seed, state) {
        const validator = state as ReturnType<typeof createRequestValidator>
        const outcome = validator.validate(bytesOf(input), NOW)
        const code = outcomeCode(outcome)
        if (outcome.kind === 'refused') {
          return code === 'internal' ? { code, accepted: false, crash: outcome.detail } : no(code)
        }
        return ok(outcome.request, code)
      },
      check(input, value) {
        const request = value as Extract<
          ReturnType<ReturnType<typeof createRequestValidator>['validate']>,
          { request: unknown }
        >['request']
        const problem = certificateProblem(request.issuer.bytes)
        if (problem !== undefined) return problem
        const key = keyOf(request.issuer.certificate.publicKey)
        if (key === undefined) return 'forgery: request verified under a key nobody holds'
        const again = sealEnvelope(DOMAIN_REQUEST, key, requestBody(request.body))
        return same(again, bytesOf(input))
          ? undefined
          : 'non-canonical: accepted request is not the one its key signs'
      },
    },
    {
      name: 'verifyReply',
      types: ['reply'],
      run(input) {
        const verdict = verifyReply(bytesOf(input), {
          verifier: world.verifier,
          nowMs: NOW,
          requestId: ANSWERED_REQUEST_ID,
        })
        if (!verdict.ok)
          return no(
            verdict.certificateReason === undefined
              ? verdict.reason
              : `${verdict.reason}:${verdict.certificateReason}`,
          )
        return ok(verdict.verified)
      },
      check: (input, value) => replyProblem(bytesOf(input), value as Parameters<typeof replyProblem>[1]),
    },
    {
      name: 'decodeReplyBatch+verifyReply',
      types: ['reply-batch'],
      run(input) {
        let replies: Uint8Array[]
        try {
          replies = decodeReplyBatch(bytesOf(input))
        } catch (err) {
          return decodeError(err)
        }
        // As the reply router and the collector do: route by request id, then verify each reply.
        const verified: { bytes: Uint8Array; value: unknown }[] = []
        for (const reply of replies) {
          if (requestIdOfReply(reply) === undefined) continue
          const verdict = verifyReply(reply, { verifier: world.verifier, nowMs: NOW })
          if (verdict.ok) verified.push({ bytes: reply, value: verdict.verified })
        }
        const canonical = same(encodeReplyBatch(replies), bytesOf(input))
        return ok(verified, canonical ? (verified.length > 0 ? 'ok:verified' : 'ok') : 'ok-noncanonical')
      },
      check(_input, value) {
        for (const v of value as { bytes: Uint8Array; value: unknown }[]) {
          const problem = replyProblem(v.bytes, v.value as Parameters<typeof replyProblem>[1])
          if (problem !== undefined) return problem
        }
        return undefined
      },
    },
    {
      name: 'verifyRecord',
      types: ['member-record'],
      run(input) {
        const verdict = verifyRecord(bytesOf(input), world.verifier, NOW)
        if (!verdict.ok)
          return no(
            verdict.certificateReason === undefined
              ? verdict.reason
              : `${verdict.reason}:${verdict.certificateReason}`,
          )
        return ok(verdict.verified)
      },
      check: (input, value) => recordProblem(bytesOf(input), value),
    },
    {
      name: 'peekRecord',
      types: ['member-record'],
      run(input) {
        const head = peekRecord(bytesOf(input))
        return head === undefined ? no('unreadable') : ok(head)
      },
    },
    {
      name: 'openSuspicion+verifySuspicion',
      types: ['suspicion'],
      run(input) {
        let opened: ReturnType<typeof openSuspicion>
        try {
          opened = openSuspicion(bytesOf(input))
        } catch (err) {
          return decodeError(err)
        }
        // The driver takes the accuser's key from the accuser's verified record: the ground truth here.
        const accuser = identityOfPeer(opened.suspicion.from)
        if (accuser === undefined) return no('unknown-accuser')
        return verifySuspicion(opened, accuser.key.publicKey) ? ok(opened.suspicion) : no('bad-signature')
      },
      check: (input, value) => suspicionProblem(bytesOf(input), value),
    },
    {
      name: 'decodeMemberMessage+updates',
      types: ['member-message'],
      run(input) {
        let message: ReturnType<typeof decodeMemberMessage>
        try {
          message = decodeMemberMessage(bytesOf(input))
        } catch (err) {
          return decodeError(err)
        }
        // As the membership driver's verifyUpdates: peek, verify records; open, verify suspicions.
        const verified: { kind: 'record' | 'suspicion'; bytes: Uint8Array; value: unknown }[] = []
        for (const update of message.updates) {
          if (update.kind === 'record') {
            if (peekRecord(update.bytes) === undefined) continue
            const verdict = verifyRecord(update.bytes, world.verifier, NOW)
            if (verdict.ok) verified.push({ kind: 'record', bytes: update.bytes, value: verdict.verified })
          } else {
            try {
              const opened = openSuspicion(update.bytes)
              const accuser = identityOfPeer(opened.suspicion.from)
              if (accuser !== undefined && verifySuspicion(opened, accuser.key.publicKey)) {
                verified.push({ kind: 'suspicion', bytes: update.bytes, value: opened.suspicion })
              }
            } catch (err) {
              if (!(err instanceof DecodeError)) throw err
            }
          }
        }
        const canonical = same(encodeMemberMessage(message), bytesOf(input))
        return ok(verified, canonical ? (verified.length > 0 ? 'ok:verified' : 'ok') : 'ok-noncanonical')
      },
      check(_input, value) {
        for (const v of value as { kind: 'record' | 'suspicion'; bytes: Uint8Array; value: unknown }[]) {
          const problem =
            v.kind === 'record' ? recordProblem(v.bytes, v.value) : suspicionProblem(v.bytes, v.value)
          if (problem !== undefined) return problem
        }
        return undefined
      },
    },
    {
      name: 'hello',
      types: ['hello'],
      run(input, seed) {
        // Mirrors createHello's check(): decode, offer the list, verify the certificate against the
        // connection's peer (the template's sender: a mutation cannot change the Noise peer), offer the roster.
        let hello: ReturnType<typeof decodeHello>
        try {
          hello = decodeHello(bytesOf(input))
        } catch (err) {
          return decodeError(err)
        }
        const offered: { list?: Uint8Array; roster?: Uint8Array } = {}
        if (hello.crl !== undefined && verifyRevocationList(hello.crl, ca.publicKey).ok)
          offered.list = hello.crl
        if (hello.error !== undefined)
          return { code: 'refused-by-peer', accepted: offered.list !== undefined, value: offered }
        if (hello.cert === undefined) return no('malformed hello')
        const verdict = world.verifier(hello.cert, NOW)
        if (!verdict.ok) return no(`certificate-${verdict.reason}`)
        const peer = expectedPeer(seed)
        if (verdict.signed.certificate.peerId !== peer) return no('another-peer')
        if (hello.roster !== undefined && verifyZoneRoster(hello.roster, ca.publicKey).ok)
          offered.roster = hello.roster
        return ok({ ...offered, cert: hello.cert }, 'admit')
      },
      check(_input, value) {
        const v = value as { cert?: Uint8Array; list?: Uint8Array; roster?: Uint8Array }
        return (
          (v.cert === undefined ? undefined : certificateProblem(v.cert)) ??
          (v.list === undefined ? undefined : listProblem(v.list)) ??
          (v.roster === undefined ? undefined : rosterProblem(v.roster))
        )
      },
    },
    {
      name: 'decodeCertificate',
      types: ['certificate'],
      run(input) {
        const decoded = decodeCertificate(bytesOf(input))
        return decoded.ok ? ok(decoded.signed) : no(decoded.reason)
      },
      check(input, value) {
        const signed = value as Extract<ReturnType<typeof decodeCertificate>, { ok: true }>['signed']
        const c = signed.certificate
        const body = encodeCbor({ ...c, roles: [...c.roles] } as unknown as CborValue)
        return same(body, openEnvelope(bytesOf(input), 4096).bodyBytes)
          ? undefined
          : 'non-canonical: decoded certificate body is not what its fields encode to'
      },
    },
    {
      name: 'verifyCertificate',
      types: ['certificate'],
      run(input) {
        const verdict = verifyCertificate(bytesOf(input), {
          caPublicKey: ca.publicKey,
          nowMs: NOW,
          clockSkewToleranceMs: SKEW_MS,
          isRevoked: world.isRevoked,
        })
        return verdict.ok ? ok(verdict.signed) : no(verdict.reason)
      },
      check: input => certificateProblem(bytesOf(input)),
    },
    {
      name: 'certificateVerifier',
      types: ['certificate'],
      run(input) {
        const verdict = world.verifier(bytesOf(input), NOW)
        return verdict.ok ? ok(verdict.signed) : no(verdict.reason)
      },
      check: input => certificateProblem(bytesOf(input)),
    },
    {
      name: 'verifyRevocationList',
      types: ['revocation-list'],
      run(input) {
        const verdict = verifyRevocationList(bytesOf(input), ca.publicKey)
        return verdict.ok ? ok(verdict.signed) : no(verdict.reason)
      },
      check: input => listProblem(bytesOf(input)),
    },
    {
      name: 'verifyZoneRoster',
      types: ['zone-roster'],
      run(input) {
        const verdict = verifyZoneRoster(bytesOf(input), ca.publicKey)
        return verdict.ok ? ok(verdict.signed) : no(verdict.reason)
      },
      check: input => rosterProblem(bytesOf(input)),
    },
    {
      name: 'decodeZoneRosterMessage+verify',
      types: ['zone-roster-message'],
      run(input) {
        const roster = decodeZoneRosterMessage(bytesOf(input))
        if (roster === undefined) return no('malformed')
        const verdict = verifyZoneRoster(roster, ca.publicKey)
        return verdict.ok ? ok(roster) : no(verdict.reason)
      },
      check: (_input, value) => rosterProblem(value as Uint8Array),
    },
    {
      name: 'parseTicket+checkTicket',
      types: ['ticket'],
      run(input) {
        let ticket: ReturnType<typeof parseTicket>
        try {
          ticket = parseTicket(input as string)
        } catch (err) {
          if (err instanceof TicketError) return no(err.code)
          throw err
        }
        const verdict = checkTicket(ticket, {
          secret: world.ticketSecret,
          meshFingerprint: fingerprintOf(ca.publicKey),
          nowMs: NOW,
        })
        return verdict.ok ? ok(ticket) : no(verdict.reason)
      },
      check: input => ticketProblem(input as string),
    },
    {
      name: 'verifySigningRequest',
      types: ['signing-request'],
      run(input) {
        const verdict = verifySigningRequest(bytesOf(input), {
          nowMs: NOW,
          maxAgeMs: 7 * DAY_MS,
          clockSkewToleranceMs: SKEW_MS,
        })
        return verdict.ok ? ok(verdict.signed) : no(verdict.reason)
      },
      check: input => signingRequestProblem(bytesOf(input)),
    },
    {
      name: 'issuer',
      types: ['signing-request'],
      // A fresh issuer for every case, from the same state; one that only refused is still fresh, so it is
      // kept (creating one signs a list and a roster, the bulk of this target's time).
      setup() {
        if (issuerState === undefined || issuerState.dirty) {
          const issuer = createIssuer({
            caKey: ca,
            ticketSecret: world.ticketSecret,
            state: world.issuerState,
            randomBytes: seededRandomBytes('fuzz/issuer'),
            config: { clockSkewToleranceMs: SKEW_MS },
          })
          // A restored state is brought up to date at creation (its roster signed and persisted).
          issuer.tick(NOW)
          issuer.drainEffects()
          issuerState = { issuer, dirty: false }
        }
        return issuerState
      },
      run(input, _seed, state) {
        const held = state as { issuer: ReturnType<typeof createIssuer>; dirty: boolean }
        held.issuer.step(
          { type: 'signing-request', requestId: 'fuzz', bytes: bytesOf(input), origin: 'fuzz' },
          NOW,
        )
        const effects = held.issuer.drainEffects()
        const reply = effects.find(effect => effect.type === 'reply')
        held.dirty = effects.length !== 1 || reply?.type !== 'reply' || reply.result.status !== 'refused'
        if (reply === undefined || reply.type !== 'reply')
          return { code: 'no-reply', accepted: false, crash: 'the issuer did not answer' }
        const result = reply.result
        if (result.status === 'refused') return no(result.reason)
        return ok(result, result.status)
      },
      check(input, value) {
        const result = value as Exclude<SigningResult, { status: 'refused' }>
        const csrProblem = signingRequestProblem(bytesOf(input))
        if (csrProblem !== undefined) return csrProblem
        const request = verifySigningRequest(bytesOf(input), {
          nowMs: NOW,
          maxAgeMs: 365 * DAY_MS,
          clockSkewToleranceMs: 365 * DAY_MS,
        })
        if (!request.ok) return 'forgery: signing request does not verify again'
        const q = request.signed.request
        if (q.ticket !== undefined) {
          const problem = ticketProblem(q.ticket)
          if (problem !== undefined) return problem
        } else if (q.certificate !== undefined) {
          const problem = certificateProblem(q.certificate)
          if (problem !== undefined) return problem
        }
        if (result.status === 'issued') {
          const issued = decodeCertificate(result.certificate)
          if (!issued.ok || !same(issued.signed.certificate.publicKey, q.publicKey)) {
            return 'forgery: issued a certificate for another key than the request proves'
          }
        }
        return undefined
      },
    },
    {
      name: 'decodeJoinRequest',
      types: ['join-request'],
      run(input) {
        const decoded = decodeJoinRequest(bytesOf(input))
        if (!decoded.ok) return no(decoded.reason)
        const canonical = same(encodeJoinRequest(decoded.message), bytesOf(input))
        if (decoded.message.type === 'hello')
          return ok(decoded.message, canonical ? 'hello' : 'ok-noncanonical')
        // The CA (or a forwarder's CA) verifies the carried signing request next.
        const verdict = verifySigningRequest(decoded.message.bytes, {
          nowMs: NOW,
          maxAgeMs: 7 * DAY_MS,
          clockSkewToleranceMs: SKEW_MS,
        })
        if (!verdict.ok) return ok(undefined, `csr:${verdict.reason}`)
        return ok(decoded.message.bytes, canonical ? 'csr:ok' : 'csr:ok-noncanonical')
      },
      check: (_input, value) => (value instanceof Uint8Array ? signingRequestProblem(value) : undefined),
    },
    {
      name: 'decodeJoinAnswer+checks',
      types: ['join-answer'],
      run(input) {
        const decoded = decodeJoinAnswer(bytesOf(input))
        if (!decoded.ok) return no(decoded.reason)
        const message = decoded.message
        const canonical = same(encodeJoinAnswer(message), bytesOf(input)) ? '' : '-noncanonical'
        if (message.type === 'hello') {
          const proof = checkMeshProof(message, {
            fingerprint: fingerprintOf(ca.publicKey),
            remotePeer: world.byLabel.get('hub1')!.peerId,
            nowMs: NOW,
            clockSkewToleranceMs: SKEW_MS,
          })
          return proof.ok ? ok(message, `hello:proven${canonical}`) : no('hello:unproven')
        }
        if (message.type === 'result' && message.result.status === 'issued') {
          const issued = checkIssued(message.result, {
            caPublicKey: ca.publicKey,
            publicKey: world.joiner.publicKey,
            name: 'joiner1',
            zone: 'edge',
            roles: ['agent'],
            nowMs: NOW,
            clockSkewToleranceMs: SKEW_MS,
          })
          return issued.ok ? ok(message, `issued:ok${canonical}`) : no('issued:refused')
        }
        const what = message.type === 'result' ? message.result.status : message.type
        return { code: `${what}${canonical}`, accepted: false }
      },
      check(_input, value) {
        const message = value as Extract<ReturnType<typeof decodeJoinAnswer>, { ok: true }>['message']
        if (message.type === 'hello') {
          if (!same(message.caPublicKey, ca.publicKey)) return 'forgery: mesh proven with another CA key'
          return certificateProblem(message.cert)
        }
        if (message.type === 'result' && message.result.status === 'issued') {
          return certificateProblem(message.result.certificate) ?? listProblem(message.result.revocationList)
        }
        return undefined
      },
    },
    {
      name: 'parseAuthorityMessage',
      types: ['authority-message'],
      run(input) {
        let value: unknown
        try {
          value = decodeCbor(bytesOf(input), authorityMessageBytesMax)
        } catch (err) {
          return decodeError(err)
        }
        // The driver's limits (src/node/authority-driver.ts).
        const parsed = parseAuthorityMessage(value, { idLengthMax: 128, zoneLengthMax: 64 })
        if (!parsed.ok) return no(parsed.code)
        const canonical = same(encodeAuthorityMessage(parsed.message), bytesOf(input))
        return ok(parsed.message, canonical ? 'ok' : 'ok-noncanonical')
      },
    },
    {
      name: 'authority.step',
      types: ['authority-message'],
      setup() {
        const self = world.byLabel.get('web1')!.peerId
        const core = createAuthority({
          self,
          config: authorityProfiles.lan,
          random: simRandom(1).next,
          nowMs: 0,
        })
        const members = world.identities
          .filter(i => i.certificate.certificate.roles.includes('agent'))
          .map(i => ({ id: i.peerId, zone: i.certificate.certificate.zone }))
        core.step({ type: 'roster', members, version: 4 }, 0)
        core.tick(10_000)
        core.drainEffects()
        return core
      },
      run(input, _seed, state) {
        const core = state as ReturnType<typeof createAuthority>
        let value: unknown
        try {
          value = decodeCbor(bytesOf(input), authorityMessageBytesMax)
        } catch (err) {
          return decodeError(err)
        }
        const parsed = parseAuthorityMessage(value, { idLengthMax: 128, zoneLengthMax: 64 })
        if (!parsed.ok) return no(parsed.code)
        const message: AuthorityMessage = parsed.message
        // The driver hands the core the authenticated peer; a message naming another sender is dropped there.
        core.step({ type: 'message', from: message.from, message }, 10_001)
        core.tick(10_002)
        const effects = core.drainEffects()
        return ok(
          effects,
          effects.length === 0
            ? 'no-effect'
            : `effects:${[...new Set(effects.map(e => e.type))].sort().join('+')}`,
        )
      },
    },
    {
      name: 'parseWhere+evaluate',
      types: ['where'],
      run(input) {
        let expr: ReturnType<typeof parseWhere>
        try {
          expr = parseWhere(input as string)
        } catch (err) {
          if (err instanceof FilterParseError) return no(err.code)
          throw err
        }
        let matches = 0
        for (const subject of SUBJECTS) if (evaluateWhere(expr, subject)) matches++
        return ok(expr, matches > 0 ? 'ok:matches' : 'ok')
      },
    },
    {
      name: 'parsePattern+test',
      types: ['pattern'],
      run(input) {
        let pattern: ReturnType<typeof parsePattern>
        try {
          pattern = parsePattern(input as string)
        } catch (err) {
          if (err instanceof FilterParseError) return no(err.code)
          throw err
        }
        let matches = 0
        for (const subject of HOSTILE_STRINGS) if (pattern.test(subject)) matches++
        return ok(pattern, `ok:${pattern.kind}${matches > 0 ? ':matches' : ''}`)
      },
    },
    {
      name: 'parsePolicy+authorize',
      types: ['policy'],
      // Policies come from config.toml, written by the operator and read at start.
      timing: 'report',
      run(input) {
        let value: unknown
        try {
          value = decodeCbor(bytesOf(input), POLICY_BYTES_MAX)
        } catch (err) {
          return decodeError(err)
        }
        let policy: ReturnType<typeof parsePolicy>
        try {
          policy = parsePolicy(value)
        } catch (err) {
          if (err instanceof PolicyError) return no(err.code)
          throw err
        }
        let allowed = 0
        for (const identity of world.identities) {
          for (const action of ['uptime', 'restart-web', 'shell']) {
            const decision = authorize(policy, {
              action,
              operator: identity.certificate.certificate,
              nodeZone: 'web',
            })
            if (decision.allow) allowed++
          }
        }
        return ok(policy, allowed > 0 ? 'ok:allows' : 'ok')
      },
    },
    {
      name: 'decodeKeyFile',
      types: ['key-file'],
      timing: 'report',
      run(input) {
        try {
          const key = decodeKeyFile(bytesOf(input))
          return ok(key, same(encodeKeyFile(key), bytesOf(input)) ? 'ok' : 'ok-noncanonical')
        } catch (err) {
          if (err instanceof KeyFileError) return no(err.code)
          throw err
        }
      },
      check: (_input, value) =>
        keyOf((value as { publicKey: Uint8Array }).publicKey) === undefined
          ? 'forgery: a key file decoded to another key'
          : undefined,
    },
    {
      name: 'decodeTicketSecretFile',
      types: ['ticket-secret-file'],
      timing: 'report',
      run(input) {
        try {
          const secret = decodeTicketSecretFile(bytesOf(input))
          return ok(secret, same(encodeTicketSecretFile(secret), bytesOf(input)) ? 'ok' : 'ok-noncanonical')
        } catch (err) {
          if (err instanceof KeyFileError) return no(err.code)
          throw err
        }
      },
    },
    {
      name: 'decodeIssuerState',
      types: ['issuer-state'],
      timing: 'report',
      run(input) {
        try {
          const state = decodeIssuerState(bytesOf(input))
          // The issuer must be able to start from whatever decodes.
          createIssuer({
            caKey: ca,
            ticketSecret: world.ticketSecret,
            state,
            randomBytes: seededRandomBytes('fuzz/state'),
          })
          return ok(state, same(encodeIssuerState(state), bytesOf(input)) ? 'ok' : 'ok-noncanonical')
        } catch (err) {
          if (err instanceof IssuerStateError) return no(err.code)
          throw err
        }
      },
    },
    {
      name: 'decodeRunLedger',
      types: ['run-ledger'],
      timing: 'report',
      run(input) {
        try {
          const entries = decodeRunLedger(bytesOf(input))
          return ok(entries, same(encodeRunLedger(entries), bytesOf(input)) ? 'ok' : 'ok-noncanonical')
        } catch (err) {
          if (err instanceof RunLedgerFormatError) return no(err.code)
          throw err
        }
      },
    },
    {
      name: 'decodeEpochs',
      types: ['authority-epochs'],
      timing: 'report',
      run(input) {
        const epochs = decodeEpochs(bytesOf(input))
        if (epochs === undefined) return no('suspect')
        return ok(
          epochs,
          same(encodeEpochs(new Map(Object.entries(epochs))), bytesOf(input)) ? 'ok' : 'ok-noncanonical',
        )
      },
    },
    {
      name: 'decodeRoster',
      types: ['roster-file'],
      timing: 'report',
      run(input) {
        const entries = decodeRoster(bytesOf(input))
        if (entries.length === 0) return no('empty')
        return ok(entries, same(encodeRoster(entries), bytesOf(input)) ? 'ok' : 'ok-noncanonical')
      },
    },
  ]
  return targets
}

/**
 * encodeCbor of a decoded value, or empty bytes when it cannot be encoded: a decoded `__proto__` key
 * makes encodeCbor's copy take the value as its prototype (a TypeError for a byte string).
 */
function reencode(value: unknown): Uint8Array {
  try {
    return encodeCbor(value as CborValue)
  } catch {
    return new Uint8Array()
  }
}

/** True when a decoded value holds a number that only a float encodes (decoded integers are safe or bigint). */
function hasFloat(value: unknown): boolean {
  if (typeof value === 'number') return !Number.isSafeInteger(value) || Object.is(value, -0)
  if (Array.isArray(value)) return value.some(hasFloat)
  if (value !== null && typeof value === 'object' && !(value instanceof Uint8Array)) {
    return Object.values(value).some(hasFloat)
  }
  return false
}

/** The Noise-authenticated peer of a hello: the sender of the template (a mutation cannot change it). */
function expectedPeer(seed: Seed): string | undefined {
  try {
    const hello = decodeHello(seed.input as Uint8Array)
    if (hello.cert === undefined) return undefined
    const decoded = decodeCertificate(hello.cert)
    return decoded.ok ? decoded.signed.certificate.peerId : undefined
  } catch {
    return undefined
  }
}

/** Strings built to make regexes and globs work hard: the longest subjects a node may have. */
const HOSTILE_STRINGS: readonly string[] = [
  'a'.repeat(256),
  `${'a'.repeat(255)}!`,
  'ab'.repeat(128),
  `${'a-'.repeat(127)}!!`,
  'web1',
  '',
  'é😀'.repeat(64),
  'x'.repeat(10_000),
]

/** Subjects for `--where` evaluation, including facts as long as a record may carry. */
const SUBJECTS = HOSTILE_STRINGS.map((value, i) => ({
  name: i === 4 ? 'web1' : value.slice(0, 64),
  zone: i === 4 ? 'web' : value.slice(0, 64),
  facts: { os: value, arch: value, rack: value, hostname: value, a: value, or: value },
}))
