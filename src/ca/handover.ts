/**
 * CA handover (issue 12, `mesh ca add-holder`): what a CA holder sends a member it makes a holder, and
 * what every other holder gets when the holder set changes. Pure: encode, decode with every field
 * bounded, and the receiver's checks; no I/O.
 *
 * The message is an envelope signed by the CA key (its own domain, DOMAIN_CA_HANDOVER) over
 * `{ v: 1, from, to, issuedAtMs, holders, caKey, ticketSecret, issuerState }`:
 * - the signature proves the sender holds the CA key, and `to` and `issuedAtMs` bind it to one receiver
 *   and a short window, so a copy is no use to anyone else and goes stale;
 * - `caKey` (the 32-byte seed) must give the mesh CA's public key: a holder never stores a key that is
 *   not the one every member trusts;
 * - `holders` is the whole new holder set (peer ids, sender and receiver included, at most
 *   {@link HANDOVER_HOLDERS_MAX});
 * - `issuerState` is the CA state as the sender's issuer holds it at the moment of sending (the receiver
 *   seeds its replica from it).
 * Confidentiality is the stream's: the message only ever travels on a Noise-encrypted libp2p stream to
 * a peer that passed hello (its certificate names `to`), see src/node/ca-handover.ts.
 */
import { type CborValue, DecodeError, decodeCbor, encodeCbor, isRecord } from '../wire/cbor.js'
import { DOMAIN_CA_HANDOVER } from '../wire/domains.js'
import { type SigningKey, signingKeyFromSeed } from '../wire/ed25519.js'
import { openEnvelope, sealEnvelope, verifyEnvelope } from '../wire/envelope.js'
import {
  onlyKeys,
  readBytes,
  readConstant,
  readInteger,
  readText,
  readTextList,
  tryRead,
} from '../wire/fields.js'
import { bytesEqual } from '../wire/hash.js'
import { decodeIssuerState, ISSUER_STATE_BYTES_MAX, type IssuerState } from './issuer-state.js'
import { REPLICA_HOLDERS_MAX } from './replication.js'
import { TICKET_SECRET_BYTES } from './ticket.js'

/** Most holders a handover names (the replication core's limit). */
export const HANDOVER_HOLDERS_MAX = REPLICA_HOLDERS_MAX
/** Longest peer id accepted in a handover. */
export const HANDOVER_PEER_ID_CHARS_MAX = 128
/** Largest handover message: the largest CA state and a little around it. */
export const HANDOVER_BYTES_MAX = ISSUER_STATE_BYTES_MAX + 16 * 1024
/** How far a handover's `issuedAtMs` may be from the receiver's clock. */
export const HANDOVER_WINDOW_MS = 120_000

/** What a handover carries. */
export interface Handover {
  readonly from: string
  readonly to: string
  readonly issuedAtMs: number
  readonly holders: readonly string[]
  readonly caKey: SigningKey
  readonly ticketSecret: Uint8Array
  readonly issuerState: IssuerState
  /** The state's encoded bytes, as sent. */
  readonly issuerStateBytes: Uint8Array
}

/** Why a handover is refused; `detail` says it in words. */
export type HandoverRefusal =
  | 'malformed'
  | 'bad-signature'
  | 'wrong-key'
  | 'not-for-us'
  | 'wrong-sender'
  | 'stale'
  | 'bad-holders'

/** Signs a handover with the CA key. `issuerState` is the encoded state (encodeIssuerState). */
export function createHandover(init: {
  readonly caKey: SigningKey
  readonly from: string
  readonly to: string
  readonly issuedAtMs: number
  readonly holders: readonly string[]
  readonly ticketSecret: Uint8Array
  readonly issuerState: Uint8Array
}): Uint8Array {
  const body: CborValue = {
    v: 1,
    from: init.from,
    to: init.to,
    issuedAtMs: init.issuedAtMs,
    holders: [...init.holders],
    caKey: init.caKey.secretKey,
    ticketSecret: init.ticketSecret,
    issuerState: init.issuerState,
  }
  return sealEnvelope(DOMAIN_CA_HANDOVER, init.caKey, body)
}

/**
 * Opens and checks a handover received from `sender` by `self`: well formed, signed by the mesh CA key
 * `caPublicKey`, carrying that key's seed, addressed to `self` by `sender`, issued within
 * {@link HANDOVER_WINDOW_MS} of `nowMs`, with a holder set of distinct ids that names both. Never throws.
 */
export function openHandover(
  bytes: Uint8Array,
  check: {
    readonly caPublicKey: Uint8Array
    readonly self: string
    readonly sender: string
    readonly nowMs: number
  },
): { ok: true; handover: Handover } | { ok: false; reason: HandoverRefusal; detail: string } {
  const refuse = (reason: HandoverRefusal, detail: string) => ({ ok: false as const, reason, detail })
  let envelope: ReturnType<typeof openEnvelope>
  try {
    envelope = openEnvelope(bytes, HANDOVER_BYTES_MAX, 64)
  } catch (err) {
    return refuse('malformed', err instanceof DecodeError ? err.message : String(err))
  }
  if (!verifyEnvelope(DOMAIN_CA_HANDOVER, check.caPublicKey, envelope))
    return refuse('bad-signature', 'not signed by the mesh CA key')
  const b = envelope.body
  const read = tryRead(() => {
    onlyKeys(
      b,
      ['v', 'from', 'to', 'issuedAtMs', 'holders', 'caKey', 'ticketSecret', 'issuerState'],
      'handover',
    )
    readConstant(b, 'v', 1)
    return {
      from: readText(b, 'from', HANDOVER_PEER_ID_CHARS_MAX),
      to: readText(b, 'to', HANDOVER_PEER_ID_CHARS_MAX),
      issuedAtMs: readInteger(b, 'issuedAtMs', { min: 0 }),
      holders: readTextList(b, 'holders', HANDOVER_HOLDERS_MAX, HANDOVER_PEER_ID_CHARS_MAX),
      caKey: readBytes(b, 'caKey', { length: 32 }),
      ticketSecret: readBytes(b, 'ticketSecret', { length: TICKET_SECRET_BYTES }),
      issuerState: readBytes(b, 'issuerState', { bytesMax: ISSUER_STATE_BYTES_MAX }),
    }
  })
  if (!read.ok) return refuse('malformed', read.detail)
  const v = read.value
  const caKey = signingKeyFromSeed(Uint8Array.from(v.caKey))
  if (!bytesEqual(caKey.publicKey, check.caPublicKey))
    return refuse('wrong-key', 'the key handed over is not the mesh CA key')
  if (v.to !== check.self) return refuse('not-for-us', `addressed to ${v.to}`)
  if (v.from !== check.sender)
    return refuse('wrong-sender', `says it is from ${v.from}, came from ${check.sender}`)
  if (Math.abs(v.issuedAtMs - check.nowMs) > HANDOVER_WINDOW_MS)
    return refuse(
      'stale',
      `issued ${Math.round((check.nowMs - v.issuedAtMs) / 1000)} s from now (clocks apart, or replayed)`,
    )
  const holdersProblem = holderSetProblem(v.holders)
  if (holdersProblem !== undefined) return refuse('bad-holders', holdersProblem)
  if (!v.holders.includes(v.from) || !v.holders.includes(v.to))
    return refuse('bad-holders', 'the holder set must name the sender and the receiver')
  let issuerState: IssuerState
  try {
    issuerState = decodeIssuerState(v.issuerState)
  } catch (err) {
    return refuse('malformed', `issuer state: ${(err as Error).message}`)
  }
  return {
    ok: true,
    handover: {
      from: v.from,
      to: v.to,
      issuedAtMs: v.issuedAtMs,
      holders: v.holders,
      caKey,
      ticketSecret: Uint8Array.from(v.ticketSecret),
      issuerState,
      issuerStateBytes: Uint8Array.from(v.issuerState),
    },
  }
}

/**
 * What is wrong with a CA holder set, or undefined when it is one: 2 to {@link HANDOVER_HOLDERS_MAX}
 * distinct peer ids of 1 to {@link HANDOVER_PEER_ID_CHARS_MAX} characters. Shared by the handover and
 * the home's `ca/holders` file.
 */
export function holderSetProblem(holders: readonly unknown[]): string | undefined {
  if (holders.length < 2 || holders.length > HANDOVER_HOLDERS_MAX)
    return `the holder set must name 2 to ${HANDOVER_HOLDERS_MAX} holders`
  if (!holders.every(h => typeof h === 'string' && h.length > 0 && h.length <= HANDOVER_PEER_ID_CHARS_MAX))
    return `every holder must be a peer id of 1 to ${HANDOVER_PEER_ID_CHARS_MAX} characters`
  if (new Set(holders).size !== holders.length) return 'the holder set must name distinct holders'
  return undefined
}

/** The receiver's answer: stored, or refused with a reason. */
export type HandoverAnswer = { ok: true } | { ok: false; reason: string; detail: string }

/** Encodes an answer. */
export function encodeHandoverAnswer(answer: HandoverAnswer): Uint8Array {
  return encodeCbor(
    answer.ok ? { v: 1, ok: true } : { v: 1, ok: false, reason: answer.reason, detail: answer.detail },
  )
}

/** Decodes an answer. @throws DecodeError */
export function decodeHandoverAnswer(bytes: Uint8Array): HandoverAnswer {
  const r = decodeCbor(bytes, 2048)
  if (!isRecord(r)) throw new DecodeError('malformed', 'handover answer is not a map')
  if (r.v !== 1) throw new DecodeError('malformed', 'handover answer version')
  if (r.ok === true) return { ok: true }
  const read = tryRead(() => ({ reason: readText(r, 'reason', 64), detail: readText(r, 'detail', 512) }))
  if (!read.ok) throw new DecodeError('malformed', read.detail)
  return { ok: false, ...read.value }
}
