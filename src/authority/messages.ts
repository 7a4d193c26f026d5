/**
 * Wire messages of the zone-authority protocol: plain data that `encodeCbor` encodes (integers, strings,
 * booleans, null; no floats, no undefined). Every message names its zone and its sender; the driver
 * signs, transports and verifies them, and must only hand the core a message whose `from` is the
 * authenticated signer. {@link parseAuthorityMessage} checks decoded values and never throws.
 */
import { type CborValue, encodeCbor, isRecord } from '../wire/cbor.js'

/** Why a voter refused a request. `held`: it granted another candidate whose lease is not free yet;
 * `stale`: the proposed epoch is not above the highest epoch it knows; `recovering`: it restarted and
 * is still in its quiet period; `not-member`: the candidate is not a member of the zone in its roster;
 * `roster`: the request was made under another roster version than the voter's (only voters holding
 * the same version count the same voters, so a vote across versions would prove nothing). */
export type RefuseReason = 'held' | 'stale' | 'recovering' | 'not-member' | 'roster'

/** Fields that identify one lease attempt of one candidate process. */
interface AttemptIds {
  /** Random id of the candidate's process lifetime (from the injected generator). */
  readonly incarnation: number
  /** Attempt counter within that incarnation. */
  readonly attempt: number
}

/** Candidate → voter: grant me (or renew) the zone's lease at `epoch`. */
export interface RequestMessage extends AttemptIds {
  readonly type: 'request'
  readonly zone: string
  readonly from: string
  readonly epoch: number
  /** Version of the roster the candidate counts voters by (0: an unsigned roster learnt from heartbeats). */
  readonly rosterVersion: number
}

/** Voter → candidate: granted for one lease TTL from the moment the request arrived. */
export interface GrantMessage extends AttemptIds {
  readonly type: 'grant'
  readonly zone: string
  readonly from: string
  readonly epoch: number
}

/** Voter → candidate: refused, with what the voter knows so the candidate can adapt. */
export interface RefuseMessage extends AttemptIds {
  readonly type: 'refuse'
  readonly zone: string
  readonly from: string
  readonly reason: RefuseReason
  /** Highest epoch the voter knows. */
  readonly maxEpoch: number
  /** Candidate the voter's open grant belongs to (reason `held`), else null. */
  readonly holder: string | null
  /** Version of the voter's roster (reason `roster` tells the candidate which version to fetch). */
  readonly rosterVersion: number
}

/** Candidate → voter: I abandoned this attempt without acting on it; drop the grant it produced. */
export interface ReleaseMessage extends AttemptIds {
  readonly type: 'release'
  readonly zone: string
  readonly from: string
  readonly epoch: number
}

/** Recovering voter → other voters: tell me the highest epoch you know. */
export interface SyncMessage {
  readonly type: 'sync'
  readonly zone: string
  readonly from: string
}

/** Voter → recovering voter: answer to {@link SyncMessage}. */
export interface StateMessage {
  readonly type: 'state'
  readonly zone: string
  readonly from: string
  readonly maxEpoch: number
  /** True when the sender cannot vouch for its knowledge (itself recovering, or not a voter). */
  readonly recovering: boolean
}

/** Any node → a zone's voter: whom have you granted the zone's lease to? (`query` pairs the answer.) */
export interface WhoMessage {
  readonly type: 'who'
  readonly zone: string
  readonly from: string
  readonly query: number
}

/**
 * Voter → asker: the holder of the voter's open, unexpired grant for the zone (null when none), its
 * epoch, and the voter's roster version (answers count only under the asker's version). A majority of
 * a zone's voters naming one holder and epoch is the proof that node holds the lease: a holder's own
 * word (its heartbeat) is not.
 */
export interface HolderMessage {
  readonly type: 'holder'
  readonly zone: string
  readonly from: string
  readonly query: number
  readonly holder: string | null
  readonly epoch: number
  readonly rosterVersion: number
}

/** Every message of the protocol. */
export type AuthorityMessage =
  | RequestMessage
  | GrantMessage
  | RefuseMessage
  | ReleaseMessage
  | SyncMessage
  | StateMessage
  | WhoMessage
  | HolderMessage

/** Largest encoded authority message the driver should accept, in bytes (ids and zones are bounded). */
export const authorityMessageBytesMax = 1_024

/** Size limits applied when parsing; lengths in UTF-16 code units. */
export interface MessageLimits {
  readonly idLengthMax: number
  readonly zoneLengthMax: number
}

/** Closed set of reasons a decoded value is not an {@link AuthorityMessage}. */
export type MessageErrorCode = 'not-a-map' | 'unknown-type' | 'bad-field'

/**
 * Encodes a message for the wire (deterministic CBOR). Every field is a string, a safe integer, null or
 * a list of those, so the message is a CBOR value; TypeScript's interfaces just lack the index signature.
 */
export function encodeAuthorityMessage(message: AuthorityMessage): Uint8Array {
  return encodeCbor(message as unknown as CborValue)
}

/** Result of {@link parseAuthorityMessage}. */
export type ParseResult =
  | { readonly ok: true; readonly message: AuthorityMessage }
  | { readonly ok: false; readonly code: MessageErrorCode; readonly field?: string }

const REFUSE_REASONS: readonly RefuseReason[] = ['held', 'stale', 'recovering', 'not-member', 'roster']

function isCount(value: unknown): value is number {
  return typeof value === 'number' && Number.isSafeInteger(value) && value >= 0
}

/**
 * Highest epoch any message may carry (2^40). The core proposes `maxEpoch + 1`, so an epoch at the
 * edge of the safe integers would stop every later proposal; at one new epoch per 100 ms this bound
 * lasts 3,000 years. Voters also refuse jumps above {@link EPOCH_STEP_MAX} (authority.ts).
 */
export const EPOCH_MAX = 2 ** 40

/** Epoch-valued fields (and roster versions, which grow as slowly), bounded by {@link EPOCH_MAX}. */
const EPOCH_FIELDS: ReadonlySet<string> = new Set(['epoch', 'maxEpoch', 'rosterVersion'])

/**
 * Validates a decoded CBOR value as an {@link AuthorityMessage}: known type, every field present with
 * the right type, integers non-negative and safe, strings non-empty and within `limits`. Unknown
 * extra fields are refused (`bad-field`) so signed bytes mean exactly one thing. Never throws.
 */
export function parseAuthorityMessage(value: unknown, limits: MessageLimits): ParseResult {
  if (!isRecord(value)) return { ok: false, code: 'not-a-map' }
  const type = value.type
  const shapes: Record<string, readonly string[]> = {
    request: ['type', 'zone', 'from', 'epoch', 'incarnation', 'attempt', 'rosterVersion'],
    grant: ['type', 'zone', 'from', 'epoch', 'incarnation', 'attempt'],
    release: ['type', 'zone', 'from', 'epoch', 'incarnation', 'attempt'],
    refuse: [
      'type',
      'zone',
      'from',
      'reason',
      'maxEpoch',
      'holder',
      'incarnation',
      'attempt',
      'rosterVersion',
    ],
    sync: ['type', 'zone', 'from'],
    state: ['type', 'zone', 'from', 'maxEpoch', 'recovering'],
    who: ['type', 'zone', 'from', 'query'],
    holder: ['type', 'zone', 'from', 'query', 'holder', 'epoch', 'rosterVersion'],
  }
  if (typeof type !== 'string' || !Object.hasOwn(shapes, type)) return { ok: false, code: 'unknown-type' }
  const fields = shapes[type] ?? []
  for (const key of Object.keys(value)) {
    if (!fields.includes(key)) return { ok: false, code: 'bad-field', field: key }
  }
  for (const field of fields) {
    const v = value[field]
    let good: boolean
    switch (field) {
      case 'type':
        good = true
        break
      case 'zone':
        good = typeof v === 'string' && v.length > 0 && v.length <= limits.zoneLengthMax
        break
      case 'from':
        good = typeof v === 'string' && v.length > 0 && v.length <= limits.idLengthMax
        break
      case 'holder':
        good = v === null || (typeof v === 'string' && v.length > 0 && v.length <= limits.idLengthMax)
        break
      case 'reason':
        good = typeof v === 'string' && (REFUSE_REASONS as readonly string[]).includes(v)
        break
      case 'recovering':
        good = typeof v === 'boolean'
        break
      default:
        good = isCount(v) && (!EPOCH_FIELDS.has(field) || v <= EPOCH_MAX)
    }
    if (!good) return { ok: false, code: 'bad-field', field }
  }
  return { ok: true, message: value as unknown as AuthorityMessage }
}

/** One-line human summary of a message, for logs and simulator transcripts. */
export function describeMessage(m: AuthorityMessage): string {
  switch (m.type) {
    case 'request':
      return `request ${m.zone} e${m.epoch} r${m.rosterVersion} #${m.attempt}`
    case 'grant':
    case 'release':
      return `${m.type} ${m.zone} e${m.epoch} #${m.attempt}`
    case 'refuse':
      return `refuse ${m.zone} ${m.reason} max=e${m.maxEpoch} r${m.rosterVersion}${m.holder === null ? '' : ` holder=${m.holder}`} #${m.attempt}`
    case 'sync':
      return `sync ${m.zone}`
    case 'state':
      return `state ${m.zone} max=e${m.maxEpoch}${m.recovering ? ' recovering' : ''}`
    case 'who':
      return `who ${m.zone} ?${m.query}`
    case 'holder':
      return `holder ${m.zone} ${m.holder ?? 'none'} e${m.epoch} r${m.rosterVersion} ?${m.query}`
  }
}
