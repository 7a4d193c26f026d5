/**
 * The CA's decision core: a pure state machine (STYLE.md §1) that turns signing requests and
 * operator commands into certificates, refusals, revocation lists and state to persist.
 *
 *   step(input, nowMs) ──► decide ──► state change ──► effects: persist → publish-roster
 *                                                                  → publish-revocations → reply
 *   tick(nowMs)        ──► expire pending requests, used nonces, dead records ──► persist
 *                                                        (+ publish-roster, publish-revocations)
 *
 * Effects come out in the order they must be carried out. The driver MUST finish a `persist`
 * (durably, atomically) before carrying out any effect after it: that is what makes a ticket single
 * use across crashes (the nonce is on disk before the certificate leaves) and what makes a published
 * revocation survive a restart. If a persist fails, the driver must drop the later effects and stop
 * using this issuer (restart from the last good state).
 *
 * Idempotence: a requester whose reply was lost may resend. The same key with the same ticket gets
 * the same certificate again (not "reused"); the same key while pending gets the same pending id,
 * and once signed the certificate; a renewal resent for the same old certificate gets the same new
 * one. Certificates are re-created from records (ed25519 is deterministic), so no bytes are stored.
 *
 * Zone roster: the issuer keeps the signed zone roster (src/ca/zone-roster.ts) of the certified agent
 * members in its durable state. Every `persist` first brings the roster up to date with the records
 * (live, unrevoked, role `agent`, one entry per peer id), so the state on disk always holds the roster
 * that matches its records; when that changed the roster, the new versions follow the `persist` as
 * `publish-roster` effects. A roster is signed only when it changed. After every step and tick the
 * issuer checks once more and persists and publishes if something is still unpublished: that is how
 * the roster computed at creation from a restored state (e.g. an older home without one) reaches the
 * disk and the mesh, on the first step or tick.
 *
 * No I/O, clock or randomness of its own: time comes in as `nowMs`, randomness via `randomBytes`.
 */

import type { SigningKey } from '../wire/ed25519.js'
import { isValidName } from '../wire/fields.js'
import { bytesEqual, toHex } from '../wire/hash.js'
import {
  CertificateError,
  checkValidityWindow,
  issueCertificate,
  newSerial,
  verifyCertificate,
} from './certificate.js'
import { fingerprintOf, shortFingerprint } from './fingerprint.js'
import { peerIdOfPublicKey } from './identity.js'
import {
  emptyIssuerState,
  ISSUED_ENTRIES_MAX,
  type IssuedRecord,
  type IssuerRosterState,
  type IssuerState,
  PENDING_REQUESTS_MAX,
  REQUEST_ORIGIN_CHARS_MAX,
  type RequestRecord,
  USED_NONCES_MAX,
  type UsedNonceRecord,
} from './issuer-state.js'
import {
  REVOCATION_ENTRIES_MAX,
  type RevocationEntry,
  type SignedRevocationList,
  signRevocationList,
} from './revocation.js'
import { canonicalRoles } from './roles.js'
import { type SigningRequest, verifySigningRequest } from './signing-request.js'
import {
  checkTicket,
  createTicket,
  MULTIADDR_CHARS_MAX,
  parseTicket,
  TICKET_NONCE_BYTES,
  TICKET_SECRET_BYTES,
  TicketError,
} from './ticket.js'
import type { Role, SignedCertificate } from './types.js'
import {
  nextZoneRoster,
  type SignedZoneRoster,
  signZoneRoster,
  ZONE_ROSTER_MEMBERS_MAX,
} from './zone-roster.js'

const DAY_MS = 24 * 60 * 60 * 1000
const REQUEST_ID_BYTES = 5
const REQUEST_ID_ATTEMPTS_MAX = 8
const REQUEST_ID_ALPHABET = 'abcdefghijklmnopqrstuvwxyz234567'

/** Issuer timing and limits. All durations in ms. */
export interface IssuerConfig {
  /** Lifetime of issued certificates. Default 30 days. */
  readonly certificateTtlMs: number
  /** How long a request without ticket waits for the operator, and how long a decision is kept for the joiner's poll. Default 7 days. */
  readonly pendingTtlMs: number
  /** Most request records (pending and decided). Default and ceiling {@link PENDING_REQUESTS_MAX}. */
  readonly pendingMax: number
  /**
   * Most pending requests from one origin (the member that forwarded them, the joiner's IP, `self`),
   * so one requester cannot fill the table that everyone's approval-based joins share. Default
   * {@link PENDING_PER_ORIGIN_MAX_DEFAULT} (or `pendingMax` when that is lower); at most `pendingMax`.
   */
  readonly pendingPerOriginMax: number
  /** Most used-nonce records. Default and ceiling {@link USED_NONCES_MAX}. */
  readonly usedNoncesMax: number
  /** Most live issued-certificate records. Default and ceiling {@link ISSUED_ENTRIES_MAX}. */
  readonly issuedMax: number
  /** Clock difference tolerated between nodes. Default 60 s. */
  readonly clockSkewToleranceMs: number
  /** Longest ticket lifetime `create-ticket` accepts. Default 30 days. */
  readonly ticketTtlMaxMs: number
}

/**
 * Default of {@link IssuerConfig.pendingPerOriginMax}: an operator approving joins by hand rarely has
 * more than a handful waiting behind one member, and 64 members' worth still fits the 1,024 table.
 */
export const PENDING_PER_ORIGIN_MAX_DEFAULT = 16

/** Defaults of {@link IssuerConfig}. */
export const DEFAULT_ISSUER_CONFIG: IssuerConfig = {
  certificateTtlMs: 30 * DAY_MS,
  pendingTtlMs: 7 * DAY_MS,
  pendingMax: PENDING_REQUESTS_MAX,
  pendingPerOriginMax: PENDING_PER_ORIGIN_MAX_DEFAULT,
  usedNoncesMax: USED_NONCES_MAX,
  issuedMax: ISSUED_ENTRIES_MAX,
  clockSkewToleranceMs: 60_000,
  ticketTtlMaxMs: 30 * DAY_MS,
}

/** Raised by {@link validateIssuerConfig} with every problem found, one per line. */
export class IssuerConfigError extends Error {
  override name = 'IssuerConfigError'
  readonly code = 'invalid-config'
  readonly problems: readonly string[]
  constructor(problems: readonly string[]) {
    super(problems.join('\n'))
    this.problems = problems
  }
}

/**
 * Fills defaults and checks types and relationships, reporting all problems at once.
 * @throws IssuerConfigError
 */
export function validateIssuerConfig(partial: Partial<IssuerConfig> = {}): IssuerConfig {
  const config = { ...DEFAULT_ISSUER_CONFIG, ...partial }
  // A small table (tests, tiny meshes) lowers the default per-origin share rather than failing.
  if (partial.pendingPerOriginMax === undefined && Number.isSafeInteger(config.pendingMax))
    config.pendingPerOriginMax = Math.min(PENDING_PER_ORIGIN_MAX_DEFAULT, config.pendingMax)
  const problems: string[] = []
  for (const [key, value] of Object.entries(config)) {
    if (!Number.isSafeInteger(value) || value <= 0) problems.push(`${key} must be a positive integer`)
  }
  const ceilings: [keyof IssuerConfig, number][] = [
    ['pendingMax', PENDING_REQUESTS_MAX],
    ['usedNoncesMax', USED_NONCES_MAX],
    ['issuedMax', ISSUED_ENTRIES_MAX],
  ]
  for (const [key, ceiling] of ceilings) {
    if (config[key] > ceiling) problems.push(`${key} must be at most ${ceiling}`)
  }
  // Renewal happens in the second half of the lifetime; both halves must outlast the skew budget.
  if (config.certificateTtlMs <= 4 * config.clockSkewToleranceMs) {
    problems.push('certificateTtlMs must exceed 4 × clockSkewToleranceMs')
  }
  if (config.pendingTtlMs <= config.clockSkewToleranceMs)
    problems.push('pendingTtlMs must exceed clockSkewToleranceMs')
  if (config.pendingPerOriginMax > config.pendingMax)
    problems.push('pendingPerOriginMax must be at most pendingMax')
  if (problems.length > 0) throw new IssuerConfigError(problems)
  return config
}

/** Construction parameters of {@link createIssuer}. */
export interface IssuerInit {
  readonly caKey: SigningKey
  /** 32-byte ticket secret. */
  readonly ticketSecret: Uint8Array
  readonly config?: Partial<IssuerConfig>
  /** State restored from disk; absent for a new CA. */
  readonly state?: IssuerState
  /** Source of randomness (serials, nonces, request ids): cryptographically secure in production. */
  readonly randomBytes: (count: number) => Uint8Array
}

/** What the issuer is asked to do. `requestId` is the driver's correlation id for the answer. */
export type IssuerInput =
  /**
   * A signing request from the network (or the local node's renewal). Answered by a `reply`.
   * `origin` says who asked, for the per-origin bound on pending requests: the certificate name of
   * the member that sent it over `/mesh/ca` (or its peer id), `ip:ADDRESS` for a direct join on the
   * CA node, `self` for the local node's renewal. Requests without one share one allowance.
   */
  | {
      readonly type: 'signing-request'
      readonly requestId: string
      readonly bytes: Uint8Array
      readonly origin?: string
    }
  /** `mesh ca sign ID`; `roles` default to `['agent']`. Answered by a `command-reply`. */
  | {
      readonly type: 'sign-pending'
      readonly requestId: string
      readonly id: string
      readonly roles?: readonly Role[]
    }
  /** `mesh ca reject ID`. */
  | { readonly type: 'reject-pending'; readonly requestId: string; readonly id: string }
  /** `mesh ca reject --all` (no `origin`) or `--requester ORIGIN`: every pending request, one persist. */
  | { readonly type: 'reject-all-pending'; readonly requestId: string; readonly origin?: string }
  /** `mesh ca revoke NAME|SERIAL`: a serial of a live certificate, else every live certificate of that name. */
  | { readonly type: 'revoke'; readonly requestId: string; readonly target: string }
  /** Direct issuance for `mesh init` (the CA's own node and the operator identity). */
  | {
      readonly type: 'issue'
      readonly requestId: string
      readonly publicKey: Uint8Array
      readonly name: string
      readonly zone: string
      readonly roles: readonly Role[]
    }
  /** `mesh ticket create`. */
  | {
      readonly type: 'create-ticket'
      readonly requestId: string
      readonly name: string
      readonly zone: string
      readonly roles: readonly Role[]
      readonly ttlMs: number
      readonly bootstrap: readonly string[]
    }

/** Why a signing request was refused. A closed set; `message` is a one-line explanation for users. */
export type SigningRefusalReason =
  | 'malformed'
  | 'too-large'
  | 'bad-signature'
  | 'stale'
  | 'from-future'
  | 'wrong-mesh'
  | 'bad-mac'
  | 'expired'
  | 'reused'
  | 'bad-certificate'
  | 'too-early'
  | 'rejected'
  | 'revoked'
  | 'limit'

/** The answer to a signing request. */
export type SigningResult =
  | {
      readonly status: 'issued'
      readonly certificate: Uint8Array
      /** The CA public key: the requester checks its hash against the fingerprint it expects. */
      readonly caPublicKey: Uint8Array
      /** The current signed revocation list, so a new member starts with it. */
      readonly revocationList: Uint8Array
    }
  | { readonly status: 'pending'; readonly id: string }
  | { readonly status: 'refused'; readonly reason: SigningRefusalReason; readonly message: string }

/** Why an operator command failed. A closed set. */
export type CommandFailure =
  | 'unknown-id'
  | 'not-pending'
  | 'unknown-target'
  | 'already-revoked'
  | 'invalid'
  | 'limit'

/** The answer to an operator command. */
export type CommandResult =
  | {
      readonly ok: true
      readonly command: 'sign'
      readonly id: string
      readonly name: string
      readonly certificate: Uint8Array
    }
  | { readonly ok: true; readonly command: 'reject'; readonly id: string; readonly name: string }
  | {
      readonly ok: true
      readonly command: 'reject-all'
      /** How many pending requests were rejected (0 when none matched). */
      readonly rejected: number
      /** The origin asked for; absent for `--all`. */
      readonly origin?: string
    }
  | {
      readonly ok: true
      readonly command: 'revoke'
      readonly serials: readonly string[]
      readonly names: readonly string[]
      readonly listVersion: number
    }
  | {
      readonly ok: true
      readonly command: 'issue'
      readonly certificate: Uint8Array
      readonly serial: string
    }
  | {
      readonly ok: true
      readonly command: 'create-ticket'
      readonly ticket: string
      readonly expiresAtMs: number
    }
  | { readonly ok: false; readonly code: CommandFailure; readonly message: string }

/** What the driver must do, in order (see the module note on `persist`). */
export type IssuerEffect =
  | { readonly type: 'persist'; readonly state: IssuerState }
  | { readonly type: 'publish-revocations'; readonly list: Uint8Array; readonly listVersion: number }
  /** A new signed zone roster: adopt it locally and spread it. Always follows the `persist` holding it. */
  | { readonly type: 'publish-roster'; readonly roster: Uint8Array; readonly rosterVersion: number }
  | { readonly type: 'reply'; readonly requestId: string; readonly result: SigningResult }
  | { readonly type: 'command-reply'; readonly requestId: string; readonly result: CommandResult }

/** One line of `mesh ca list`. */
export interface PendingSummary {
  readonly id: string
  readonly name: string
  readonly zone: string
  readonly peerId: string
  /** Short form of SHA-256 of the requester's public key, to compare with what the joiner prints. */
  readonly keyFingerprint: string
  readonly requestedAtMs: number
  readonly expiresAtMs: number
  /** Who asked (see the `signing-request` input); absent for requests recorded before origins. */
  readonly origin?: string
}

/** Counters for metrics: refusals by reason, limit hits and expiries. */
export interface IssuerCounters {
  readonly issued: number
  readonly refused: Readonly<Partial<Record<SigningRefusalReason, number>>>
  /** Every limit hit, the per-origin one included. */
  readonly limitHits: number
  /** Requests refused because their origin already had `pendingPerOriginMax` pending. */
  readonly originLimitHits: number
  /** Rejected records dropped before their pick-up window ended, to make room in a full table. */
  readonly rejectedEvicted: number
  readonly pendingExpired: number
}

/** The issuer state machine. Not safe to call re-entrantly; the driver serialises calls. */
export interface Issuer {
  /** Handles one input at `nowMs`; effects accumulate until {@link Issuer.drainEffects}. */
  step(input: IssuerInput, nowMs: number): void
  /** Expires what is due at `nowMs`. Call every few seconds to minutes. */
  tick(nowMs: number): void
  /** Returns and forgets the accumulated effects, in the order they must be carried out. */
  drainEffects(): IssuerEffect[]
  /** Requests waiting for the operator, oldest first. */
  listPending(): PendingSummary[]
  /** The current revocation list, signed (version 0 when nothing was ever revoked). */
  revocationList(): SignedRevocationList
  /** True when `serial` is on the current revocation list. */
  isRevoked(serial: string): boolean
  /**
   * The current zone roster, signed (version 0, empty, when no agent certificate was ever issued).
   * Right after creation it already reflects a restored state's records, even before that roster is
   * persisted and published (on the first step or tick).
   */
  zoneRoster(): SignedZoneRoster
  /** A snapshot of the durable state (what the last or next `persist` carries). */
  state(): IssuerState
  counters(): IssuerCounters
  /** SHA-256 of the CA public key. */
  readonly meshFingerprint: Uint8Array
}

/**
 * Creates an issuer, restoring `init.state` when given.
 * @throws IssuerConfigError for invalid config; TypeError for a ticket secret of the wrong size;
 * ZoneRosterError for a state whose roster could not be signed (decodeIssuerState refuses those)
 */
export function createIssuer(init: IssuerInit): Issuer {
  const config = validateIssuerConfig(init.config)
  if (init.ticketSecret.byteLength !== TICKET_SECRET_BYTES)
    throw new TypeError('ticket secret must be 32 bytes')
  const { caKey, ticketSecret, randomBytes } = init
  const meshFingerprint = fingerprintOf(caKey.publicKey)
  const restored = init.state ?? emptyIssuerState()

  const issued = new Map<string, IssuedRecord>(restored.issued.map(record => [record.serial, record]))
  const renewals = new Map<string, string>() // old serial → new serial
  for (const record of issued.values())
    if (record.renewalOf !== undefined) renewals.set(record.renewalOf, record.serial)
  const usedNonces = new Map<string, UsedNonceRecord>(
    restored.usedNonces.map(record => [record.nonce, record]),
  )
  const requests = new Map<string, RequestRecord>(restored.requests.map(record => [record.id, record]))
  const requestsByKey = new Map<string, string>(
    restored.requests.map(record => [toHex(record.publicKey), record.id]),
  )
  let revocation = {
    listVersion: restored.revocation.listVersion,
    issuedAtMs: restored.revocation.issuedAtMs,
    entries: new Map<string, RevocationEntry>(
      restored.revocation.entries.map(entry => [entry.serial, entry]),
    ),
  }
  let signedList = signList()

  /** Peer id of each record's key, computed once per record (it costs a key decode and a hash). */
  const peerIds = new WeakMap<IssuedRecord, string | undefined>()
  let roster: IssuerRosterState = restored.roster ?? {
    rosterVersion: 0,
    issuedAtMs: 0,
    members: [],
    priors: [],
  }
  /** The signed form of `roster`; assigned right below, by `advanceRoster` or `signRoster`. */
  let signedRoster: SignedZoneRoster
  /** Rosters signed but not yet behind a `persist`, oldest first. */
  let unpublishedRosters: SignedZoneRoster[] = []
  // A restored state may predate rosters or disagree with its records: bring it up to date now, with
  // the latest time the state knows as its issue time (there is no clock here); it is persisted and
  // published on the first step or tick.
  advanceRoster(latestTimeOf(restored))
  if (unpublishedRosters.length === 0) signedRoster = signRoster()

  let effects: IssuerEffect[] = []
  let issuedCount = 0
  let limitHits = 0
  let originLimitHits = 0
  let rejectedEvicted = 0
  let pendingExpired = 0
  const refused: Partial<Record<SigningRefusalReason, number>> = {}

  function signList(): SignedRevocationList {
    return signRevocationList(caKey, {
      version: revocation.listVersion,
      issuedAtMs: revocation.issuedAtMs,
      entries: [...revocation.entries.values()],
    })
  }

  function snapshot(): IssuerState {
    return {
      version: 1,
      revocation: {
        listVersion: revocation.listVersion,
        issuedAtMs: revocation.issuedAtMs,
        entries: [...revocation.entries.values()],
      },
      issued: [...issued.values()],
      usedNonces: [...usedNonces.values()],
      requests: [...requests.values()],
      roster,
    }
  }

  /** Brings the roster up to date first, so the persisted state holds the roster of its records. */
  function persist(nowMs: number): void {
    advanceRoster(nowMs)
    effects.push({ type: 'persist', state: snapshot() })
    for (const signed of unpublishedRosters) {
      effects.push({ type: 'publish-roster', roster: signed.bytes, rosterVersion: signed.roster.version })
    }
    unpublishedRosters = []
  }

  /** Persists (and so publishes) a roster change not yet behind a persist. Ends every step and tick. */
  function flushRoster(nowMs: number): void {
    advanceRoster(nowMs)
    if (unpublishedRosters.length > 0) persist(nowMs)
  }

  function signRoster(): SignedZoneRoster {
    return signZoneRoster(caKey, {
      version: roster.rosterVersion,
      issuedAtMs: roster.issuedAtMs,
      members: roster.members,
      priors: roster.priors,
    })
  }

  function peerIdOf(record: IssuedRecord): string | undefined {
    if (!peerIds.has(record)) peerIds.set(record, peerIdOfPublicKey(record.publicKey))
    return peerIds.get(record)
  }

  /**
   * The certified agent members, peer id → zone: live records with role `agent` whose peer id has no
   * revoked serial (as `isPeerRevoked` on every node); of two live records of one key, the one that
   * ends last. At most {@link ZONE_ROSTER_MEMBERS_MAX}: issuance refuses a new member beyond that, so
   * only a state from before rosters can hold more; then current members are kept first, the rest by
   * peer id (deterministic).
   */
  function certifiedMembers(): Map<string, string> {
    const revokedPeers = new Set<string>()
    for (const entry of revocation.entries.values()) revokedPeers.add(entry.peerId)
    const chosen = new Map<string, IssuedRecord>()
    for (const record of issued.values()) {
      if (!record.roles.includes('agent') || isRevoked(record.serial)) continue
      const peerId = peerIdOf(record)
      if (peerId === undefined || revokedPeers.has(peerId)) continue
      const other = chosen.get(peerId)
      if (other === undefined || endsLater(record, other)) chosen.set(peerId, record)
    }
    let entries = [...chosen].map(([peerId, record]): [string, string] => [peerId, record.zone])
    if (entries.length > ZONE_ROSTER_MEMBERS_MAX) {
      const current = new Set(roster.members.map(m => m.peerId))
      const rank = (peerId: string) => (current.has(peerId) ? 0 : 1)
      entries = entries
        .sort(([a], [b]) => rank(a) - rank(b) || (a < b ? -1 : a > b ? 1 : 0))
        .slice(0, ZONE_ROSTER_MEMBERS_MAX)
    }
    return new Map(entries)
  }

  /** Moves the roster to the records' members when they differ, signing the new version once. */
  function advanceRoster(nowMs: number): void {
    const next = nextZoneRoster(roster_(), certifiedMembers())
    if (next !== undefined) adoptRoster(next, nowMs)
  }

  /** The current roster as {@link nextZoneRoster} takes it. */
  function roster_() {
    return { version: roster.rosterVersion, members: roster.members, priors: roster.priors }
  }

  function adoptRoster(next: NonNullable<ReturnType<typeof nextZoneRoster>>, nowMs: number): void {
    roster = {
      rosterVersion: next.version,
      issuedAtMs: nowMs,
      members: next.members,
      priors: next.priors,
    }
    signedRoster = signRoster()
    unpublishedRosters.push(signedRoster)
  }

  function publish(): void {
    effects.push({ type: 'publish-revocations', list: signedList.bytes, listVersion: revocation.listVersion })
  }

  function reply(requestId: string, result: SigningResult): void {
    if (result.status === 'refused') refused[result.reason] = (refused[result.reason] ?? 0) + 1
    effects.push({ type: 'reply', requestId, result })
  }

  function refuse(requestId: string, reason: SigningRefusalReason, message: string): void {
    if (reason === 'limit') limitHits++
    reply(requestId, { status: 'refused', reason, message })
  }

  function commandReply(requestId: string, result: CommandResult): void {
    if (!result.ok && result.code === 'limit') limitHits++
    effects.push({ type: 'command-reply', requestId, result })
  }

  function issuedResult(certificate: SignedCertificate): SigningResult {
    return {
      status: 'issued',
      certificate: certificate.bytes,
      caPublicKey: caKey.publicKey,
      revocationList: signedList.bytes,
    }
  }

  /** Re-creates the exact certificate of a record (deterministic signature). */
  function certificateOf(record: IssuedRecord): SignedCertificate {
    return issueCertificate(caKey, record)
  }

  function isRevoked(serial: string): boolean {
    return revocation.entries.has(serial)
  }

  /**
   * Issues and records a certificate; a `limit` refusal message when the issued table is full, or when
   * the certificate would add an agent member to a full zone roster.
   */
  function issue(
    fields: { publicKey: Uint8Array; name: string; zone: string; roles: readonly Role[]; renewalOf?: string },
    nowMs: number,
  ): IssuedRecord | string {
    if (issued.size >= config.issuedMax) return 'the CA holds too many live certificates'
    if (fields.roles.includes('agent') && roster.members.length >= ZONE_ROSTER_MEMBERS_MAX) {
      const peerId = peerIdOfPublicKey(fields.publicKey)
      if (!roster.members.some(m => m.peerId === peerId)) {
        return `the zone roster already lists ${ZONE_ROSTER_MEMBERS_MAX} agent members`
      }
    }
    const serial = newSerial(randomBytes)
    // A repeated serial means the random source is broken; refusing to continue is the safe answer.
    if (issued.has(serial) || revocation.entries.has(serial)) throw new Error('assertion: serial collision')
    const record: IssuedRecord = {
      serial,
      name: fields.name,
      zone: fields.zone,
      roles: canonicalRoles(fields.roles),
      publicKey: Uint8Array.from(fields.publicKey),
      notBeforeMs: nowMs,
      notAfterMs: nowMs + config.certificateTtlMs,
      ...(fields.renewalOf !== undefined ? { renewalOf: fields.renewalOf } : {}),
    }
    certificateOf(record) // validates the fields before anything is recorded
    issued.set(serial, record)
    if (record.renewalOf !== undefined) renewals.set(record.renewalOf, serial)
    issuedCount++
    return record
  }

  function newRequestId(): string {
    for (let attempt = 0; attempt < REQUEST_ID_ATTEMPTS_MAX; attempt++) {
      const bytes = randomBytes(REQUEST_ID_BYTES)
      let id = ''
      for (const byte of bytes) id += REQUEST_ID_ALPHABET[byte & 31]
      if (id.length === REQUEST_ID_BYTES && !requests.has(id)) return id
    }
    throw new Error('assertion: randomBytes keeps producing taken request ids')
  }

  function onSigningRequest(
    requestId: string,
    bytes: Uint8Array,
    origin: string | undefined,
    nowMs: number,
  ): void {
    const verdict = verifySigningRequest(bytes, {
      nowMs,
      maxAgeMs: config.pendingTtlMs,
      clockSkewToleranceMs: config.clockSkewToleranceMs,
    })
    if (!verdict.ok) {
      refuse(requestId, verdict.reason, `signing request refused (${verdict.reason}): ${verdict.detail}`)
      return
    }
    const request = verdict.signed.request
    if (request.ticket !== undefined) onTicketRequest(requestId, request, request.ticket, nowMs)
    else if (request.certificate !== undefined) onRenewal(requestId, request, request.certificate, nowMs)
    else onWaitingRequest(requestId, request, origin, nowMs)
  }

  function onTicketRequest(requestId: string, request: SigningRequest, text: string, nowMs: number): void {
    let ticket: ReturnType<typeof parseTicket>
    try {
      ticket = parseTicket(text)
    } catch (err) {
      if (!(err instanceof TicketError)) throw err
      refuse(requestId, err.code, `ticket refused: ${err.message}`)
      return
    }
    const verdict = checkTicket(ticket, { secret: ticketSecret, meshFingerprint, nowMs })
    if (!verdict.ok) {
      refuse(requestId, verdict.reason, ticketMessage(verdict.reason))
      return
    }
    const used = usedNonces.get(ticket.nonceHex)
    if (used !== undefined) {
      const record = issued.get(used.serial)
      // The same key retrying after a lost reply gets the same certificate; anyone else is refused.
      if (
        bytesEqual(used.publicKey, request.publicKey) &&
        record !== undefined &&
        !isRevoked(record.serial)
      ) {
        reply(requestId, issuedResult(certificateOf(record)))
      } else {
        refuse(requestId, 'reused', ticketMessage('reused'))
      }
      return
    }
    if (usedNonces.size >= config.usedNoncesMax) {
      refuse(requestId, 'limit', 'the CA holds too many used tickets; try again later')
      return
    }
    const record = issue({ ...ticket, publicKey: request.publicKey }, nowMs)
    if (typeof record === 'string') {
      refuse(requestId, 'limit', record)
      return
    }
    usedNonces.set(ticket.nonceHex, {
      nonce: ticket.nonceHex,
      expiresAtMs: ticket.expiresAtMs + config.clockSkewToleranceMs,
      publicKey: record.publicKey,
      serial: record.serial,
    })
    persist(nowMs)
    reply(requestId, issuedResult(certificateOf(record)))
  }

  function onRenewal(requestId: string, request: SigningRequest, bytes: Uint8Array, nowMs: number): void {
    const verdict = verifyCertificate(bytes, {
      caPublicKey: caKey.publicKey,
      nowMs,
      clockSkewToleranceMs: config.clockSkewToleranceMs,
      isRevoked,
    })
    if (!verdict.ok) {
      const reason = verdict.reason === 'revoked' ? 'revoked' : 'bad-certificate'
      refuse(
        requestId,
        reason,
        `renewal refused: current certificate is ${verdict.reason} (${verdict.detail})`,
      )
      return
    }
    const current = verdict.signed.certificate
    if (!bytesEqual(current.publicKey, request.publicKey)) {
      refuse(requestId, 'bad-certificate', 'renewal refused: the certificate belongs to another key')
      return
    }
    const previous = renewals.get(current.serial)
    const renewed = previous === undefined ? undefined : issued.get(previous)
    if (renewed !== undefined && !isRevoked(renewed.serial)) {
      reply(requestId, issuedResult(certificateOf(renewed)))
      return
    }
    const halfLifeMs = Math.floor((current.notAfterMs - current.notBeforeMs) / 2)
    if (nowMs < current.notBeforeMs + halfLifeMs) {
      refuse(requestId, 'too-early', `renewal refused: renew after ${current.notBeforeMs + halfLifeMs}`)
      return
    }
    const record = issue({ ...current, renewalOf: current.serial }, nowMs)
    if (typeof record === 'string') {
      refuse(requestId, 'limit', record)
      return
    }
    persist(nowMs)
    reply(requestId, issuedResult(certificateOf(record)))
  }

  /** Pending requests of `origin` (undefined: those recorded without one). The table is ≤ pendingMax. */
  function pendingCountOf(origin: string | undefined): number {
    let count = 0
    for (const record of requests.values())
      if (record.status === 'pending' && record.origin === origin) count++
    return count
  }

  /**
   * Makes room for one record in a full table by dropping the oldest rejected one: rejected records
   * are only kept so a polling joiner learns the verdict, and without this a bulk rejection of a
   * flood would still hold the table for `pendingTtlMs`. Pending and signed records are never dropped.
   */
  function makeRoomForRequest(): boolean {
    if (requests.size < config.pendingMax) return true
    for (const [id, record] of requests) {
      if (record.status !== 'rejected') continue
      requests.delete(id)
      requestsByKey.delete(toHex(record.publicKey))
      rejectedEvicted++
      return true
    }
    return false
  }

  function onWaitingRequest(
    requestId: string,
    request: SigningRequest,
    origin: string | undefined,
    nowMs: number,
  ): void {
    const keyHex = toHex(request.publicKey)
    const existingId = requestsByKey.get(keyHex)
    const existing = existingId === undefined ? undefined : requests.get(existingId)
    if (existing !== undefined) {
      answerKnownRequest(requestId, existing)
      return
    }
    if (request.name === undefined || request.zone === undefined) {
      refuse(requestId, 'malformed', 'a request without ticket must name the node and its zone')
      return
    }
    if (pendingCountOf(origin) >= config.pendingPerOriginMax) {
      originLimitHits++
      refuse(
        requestId,
        'limit',
        `${config.pendingPerOriginMax} requests from ${origin ?? 'this requester'} already wait for the operator; ` +
          'try again once they are decided (mesh ca list, mesh ca reject --requester)',
      )
      return
    }
    if (!makeRoomForRequest()) {
      refuse(requestId, 'limit', 'too many requests are waiting for the operator; try again later')
      return
    }
    const record: RequestRecord = {
      id: newRequestId(),
      status: 'pending',
      publicKey: Uint8Array.from(request.publicKey),
      peerId: request.peerId,
      name: request.name,
      zone: request.zone,
      requestedAtMs: nowMs,
      expiresAtMs: nowMs + config.pendingTtlMs,
      ...(origin !== undefined ? { origin } : {}),
    }
    requests.set(record.id, record)
    requestsByKey.set(keyHex, record.id)
    persist(nowMs)
    reply(requestId, { status: 'pending', id: record.id })
  }

  function answerKnownRequest(requestId: string, existing: RequestRecord): void {
    if (existing.status === 'pending') {
      reply(requestId, { status: 'pending', id: existing.id })
      return
    }
    if (existing.status === 'rejected') {
      refuse(requestId, 'rejected', `request ${existing.id} was rejected by the operator`)
      return
    }
    const record = existing.serial === undefined ? undefined : issued.get(existing.serial)
    if (record === undefined || isRevoked(record.serial)) {
      refuse(requestId, 'revoked', `the certificate issued for request ${existing.id} is no longer valid`)
      return
    }
    reply(requestId, issuedResult(certificateOf(record)))
  }

  /** The pending request `id`, or undefined after answering the command with why it is not one. */
  function pendingOrReply(requestId: string, id: string): RequestRecord | undefined {
    const existing = requests.get(id)
    if (existing === undefined) {
      commandReply(requestId, { ok: false, code: 'unknown-id', message: `no request with id ${id}` })
      return undefined
    }
    if (existing.status !== 'pending') {
      commandReply(requestId, {
        ok: false,
        code: 'not-pending',
        message: `request ${id} is already ${existing.status}`,
      })
      return undefined
    }
    return existing
  }

  function onSignPending(requestId: string, id: string, roles: readonly Role[], nowMs: number): void {
    const existing = pendingOrReply(requestId, id)
    if (existing === undefined) return
    if (canonicalRoles(roles).length === 0) {
      commandReply(requestId, { ok: false, code: 'invalid', message: 'at least one role is needed' })
      return
    }
    const record = issue({ ...existing, roles }, nowMs)
    if (typeof record === 'string') {
      commandReply(requestId, { ok: false, code: 'limit', message: record })
      return
    }
    requests.set(id, {
      ...existing,
      status: 'signed',
      serial: record.serial,
      expiresAtMs: nowMs + config.pendingTtlMs,
    })
    persist(nowMs)
    commandReply(requestId, {
      ok: true,
      command: 'sign',
      id,
      name: record.name,
      certificate: certificateOf(record).bytes,
    })
  }

  function onRejectPending(requestId: string, id: string, nowMs: number): void {
    const existing = pendingOrReply(requestId, id)
    if (existing === undefined) return
    requests.set(id, { ...existing, status: 'rejected', expiresAtMs: nowMs + config.pendingTtlMs })
    persist(nowMs)
    commandReply(requestId, { ok: true, command: 'reject', id, name: existing.name })
  }

  function onRejectAllPending(requestId: string, origin: string | undefined, nowMs: number): void {
    let rejected = 0
    for (const [id, record] of requests) {
      if (record.status !== 'pending' || (origin !== undefined && record.origin !== origin)) continue
      requests.set(id, { ...record, status: 'rejected', expiresAtMs: nowMs + config.pendingTtlMs })
      rejected++
    }
    if (rejected > 0) persist(nowMs) // one write for the whole batch
    commandReply(requestId, {
      ok: true,
      command: 'reject-all',
      rejected,
      ...(origin !== undefined ? { origin } : {}),
    })
  }

  function onRevoke(requestId: string, target: string, nowMs: number): void {
    const bySerial = issued.get(target)
    const matches =
      bySerial !== undefined ? [bySerial] : [...issued.values()].filter(record => record.name === target)
    if (matches.length === 0) {
      commandReply(requestId, {
        ok: false,
        code: 'unknown-target',
        message: `no live certificate has serial or name ${JSON.stringify(target)}`,
      })
      return
    }
    const fresh = matches.filter(record => !isRevoked(record.serial))
    if (fresh.length === 0) {
      commandReply(requestId, { ok: false, code: 'already-revoked', message: `${target} is already revoked` })
      return
    }
    if (revocation.entries.size + fresh.length > REVOCATION_ENTRIES_MAX) {
      commandReply(requestId, { ok: false, code: 'limit', message: 'the revocation list is full' })
      return
    }
    const entries = new Map(revocation.entries)
    for (const record of fresh) {
      entries.set(record.serial, {
        serial: record.serial,
        name: record.name,
        peerId: peerIdOfPublicKey(record.publicKey) ?? '',
        revokedAtMs: nowMs,
        notAfterMs: record.notAfterMs,
      })
    }
    revocation = { listVersion: revocation.listVersion + 1, issuedAtMs: nowMs, entries }
    signedList = signList()
    persist(nowMs)
    publish()
    commandReply(requestId, {
      ok: true,
      command: 'revoke',
      serials: fresh.map(record => record.serial),
      names: [...new Set(fresh.map(record => record.name))],
      listVersion: revocation.listVersion,
    })
  }

  function onIssue(requestId: string, input: Extract<IssuerInput, { type: 'issue' }>, nowMs: number): void {
    if (
      peerIdOfPublicKey(input.publicKey) === undefined ||
      !isValidName(input.name) ||
      !isValidName(input.zone)
    ) {
      commandReply(requestId, { ok: false, code: 'invalid', message: 'invalid public key, name or zone' })
      return
    }
    if (canonicalRoles(input.roles).length === 0) {
      commandReply(requestId, { ok: false, code: 'invalid', message: 'at least one role is needed' })
      return
    }
    const record = issue(input, nowMs)
    if (typeof record === 'string') {
      commandReply(requestId, { ok: false, code: 'limit', message: record })
      return
    }
    persist(nowMs)
    commandReply(requestId, {
      ok: true,
      command: 'issue',
      certificate: certificateOf(record).bytes,
      serial: record.serial,
    })
  }

  function onCreateTicket(
    requestId: string,
    input: Extract<IssuerInput, { type: 'create-ticket' }>,
    nowMs: number,
  ): void {
    if (!Number.isSafeInteger(input.ttlMs) || input.ttlMs <= 0 || input.ttlMs > config.ticketTtlMaxMs) {
      commandReply(requestId, {
        ok: false,
        code: 'invalid',
        message: `ticket lifetime must be between 1 ms and ${config.ticketTtlMaxMs} ms`,
      })
      return
    }
    const badAddress = input.bootstrap.find(
      address => !address.startsWith('/') || address.length > MULTIADDR_CHARS_MAX,
    )
    if (badAddress !== undefined) {
      commandReply(requestId, { ok: false, code: 'invalid', message: `not a multiaddr: ${badAddress}` })
      return
    }
    const expiresAtMs = nowMs + input.ttlMs
    try {
      const ticket = createTicket(ticketSecret, {
        meshFingerprint,
        bootstrap: input.bootstrap,
        name: input.name,
        zone: input.zone,
        roles: input.roles,
        expiresAtMs,
        nonce: randomBytes(TICKET_NONCE_BYTES),
      })
      commandReply(requestId, { ok: true, command: 'create-ticket', ticket, expiresAtMs })
    } catch (err) {
      if (!(err instanceof TicketError)) throw err
      commandReply(requestId, { ok: false, code: 'invalid', message: err.message })
    }
  }

  function step(input: IssuerInput, nowMs: number): void {
    try {
      switch (input.type) {
        case 'signing-request':
          if (input.origin !== undefined && !isValidOrigin(input.origin)) {
            refuse(input.requestId, 'malformed', 'the request origin is empty or too long')
            break
          }
          onSigningRequest(input.requestId, input.bytes, input.origin, nowMs)
          break
        case 'sign-pending':
          onSignPending(input.requestId, input.id, input.roles ?? ['agent'], nowMs)
          break
        case 'reject-pending':
          onRejectPending(input.requestId, input.id, nowMs)
          break
        case 'reject-all-pending':
          if (input.origin !== undefined && !isValidOrigin(input.origin)) {
            commandReply(input.requestId, { ok: false, code: 'invalid', message: 'invalid requester' })
            break
          }
          onRejectAllPending(input.requestId, input.origin, nowMs)
          break
        case 'revoke':
          onRevoke(input.requestId, input.target, nowMs)
          break
        case 'issue':
          onIssue(input.requestId, input, nowMs)
          break
        case 'create-ticket':
          onCreateTicket(input.requestId, input, nowMs)
          break
      }
    } catch (err) {
      // Only a field the checks above missed can land here; answer rather than leave the peer waiting.
      if (!(err instanceof CertificateError)) throw err
      if (input.type === 'signing-request') refuse(input.requestId, 'malformed', err.message)
      else commandReply(input.requestId, { ok: false, code: 'invalid', message: err.message })
    }
    flushRoster(nowMs)
  }

  function tick(nowMs: number): void {
    let changed = false
    for (const [id, record] of requests) {
      if (record.expiresAtMs >= nowMs) continue
      if (record.status === 'pending') pendingExpired++
      requests.delete(id)
      requestsByKey.delete(toHex(record.publicKey))
      changed = true
    }
    for (const [nonce, record] of usedNonces) {
      if (record.expiresAtMs >= nowMs) continue
      usedNonces.delete(nonce)
      changed = true
    }
    for (const [serial, record] of issued) {
      if (checkValidityWindow(record, nowMs, config.clockSkewToleranceMs)?.reason !== 'expired') continue
      issued.delete(serial)
      if (record.renewalOf !== undefined) renewals.delete(record.renewalOf)
      changed = true
    }
    const live = new Map(
      [...revocation.entries].filter(([, entry]) => entry.notAfterMs + config.clockSkewToleranceMs >= nowMs),
    )
    const listChanged = live.size !== revocation.entries.size
    if (listChanged) {
      revocation = { listVersion: revocation.listVersion + 1, issuedAtMs: nowMs, entries: live }
      signedList = signList()
    }
    if (changed || listChanged) persist(nowMs)
    if (listChanged) publish()
    flushRoster(nowMs)
  }

  return {
    step,
    tick,
    drainEffects() {
      const drained = effects
      effects = []
      return drained
    },
    listPending() {
      return [...requests.values()]
        .filter(record => record.status === 'pending')
        .sort((a, b) => a.requestedAtMs - b.requestedAtMs)
        .map(record => ({
          id: record.id,
          name: record.name,
          zone: record.zone,
          peerId: record.peerId,
          keyFingerprint: shortFingerprint(fingerprintOf(record.publicKey)),
          requestedAtMs: record.requestedAtMs,
          expiresAtMs: record.expiresAtMs,
          ...(record.origin !== undefined ? { origin: record.origin } : {}),
        }))
    },
    revocationList: () => signedList,
    isRevoked,
    zoneRoster: () => signedRoster,
    state: snapshot,
    counters: () => ({
      issued: issuedCount,
      refused: { ...refused },
      limitHits,
      originLimitHits,
      rejectedEvicted,
      pendingExpired,
    }),
    meshFingerprint,
  }
}

/** Of two live records of one key, true when `a` is the one to take: the later end, then the larger serial. */
function endsLater(a: IssuedRecord, b: IssuedRecord): boolean {
  return a.notAfterMs > b.notAfterMs || (a.notAfterMs === b.notAfterMs && a.serial > b.serial)
}

/** The latest time a restored state records (its roster's issue time when nothing is later). */
function latestTimeOf(state: IssuerState): number {
  let latestMs = Math.max(state.roster?.issuedAtMs ?? 0, state.revocation.issuedAtMs)
  for (const record of state.issued) latestMs = Math.max(latestMs, record.notBeforeMs)
  return latestMs
}

/** An origin the state file can hold: 1 to {@link REQUEST_ORIGIN_CHARS_MAX} characters. */
function isValidOrigin(origin: string): boolean {
  return origin.length >= 1 && origin.length <= REQUEST_ORIGIN_CHARS_MAX
}

function ticketMessage(reason: 'wrong-mesh' | 'bad-mac' | 'expired' | 'reused'): string {
  switch (reason) {
    case 'wrong-mesh':
      return 'ticket belongs to another mesh'
    case 'bad-mac':
      return 'ticket is not genuine (altered or forged); ask for a new one with mesh ticket create'
    case 'expired':
      return 'ticket expired; ask for a new one with mesh ticket create'
    case 'reused':
      return 'ticket was already used; ask for a new one with mesh ticket create'
  }
}
