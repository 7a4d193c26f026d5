/**
 * The wire form of membership messages on `/mesh/member/1.0.0` (one length-prefixed CBOR map per
 * message, on long-lived streams). Messages themselves are not signed: the stream is authenticated
 * (Noise, then hello), so the sender is known; the records and suspicions inside are signed by their
 * authors (record.ts) and forwarded byte for byte.
 *
 * `{ t, s?, g?, r?, d?, u }`: type (0 ping, 1 ack, 2 ping-req, 3 gossip, 4 sync), seq, target (ping-req),
 * reply (sync), digest (sync: `[[peerId, incarnation, state], …]`, state 0 alive, 1 suspect, 2 dead,
 * 3 left) and updates (`[[0, record] | [1, suspicion], …]`).
 */

import { ADDRESS_CHARS_MAX } from '../gossip/request.js'
import { type CborValue, DecodeError, decodeCanonicalCbor, encodeCbor } from '../wire/cbor.js'
import { readArray, readBytes, readInteger, readRecord } from '../wire/fields.js'
import { RECORD_BYTES_MAX, SUSPICION_BYTES_MAX } from './record.js'
import type { SwimDigestEntry, SwimState } from './swim-types.js'

/** Largest encoded message (a push-pull reply of many records); streams refuse longer frames. */
export const MEMBER_MESSAGE_BYTES_MAX = 1024 * 1024
/** Most updates in one message. */
export const MESSAGE_UPDATES_MAX = 512
/** Most digest entries in one sync (the core's table limit). */
export const DIGEST_ENTRIES_MAX = 4096
/**
 * Most CBOR items a message is decoded with: the map and its fields, each update a pair (three items),
 * each digest entry a triple (four). A dense 1 MB message took about 200 ms to decode without it.
 */
const MESSAGE_ITEMS_MAX = 16 + 3 * MESSAGE_UPDATES_MAX + 4 * DIGEST_ENTRIES_MAX

const TYPES = ['ping', 'ack', 'ping-req', 'gossip', 'sync'] as const
const STATES: readonly SwimState[] = ['alive', 'suspect', 'dead', 'left']

/** An update as it travels: the signed bytes, checked by the driver before the core sees them. */
export type WireUpdate =
  | { readonly kind: 'record'; readonly bytes: Uint8Array }
  | { readonly kind: 'suspicion'; readonly bytes: Uint8Array }

/** A decoded message with its updates still as bytes. */
export type WireMessage =
  | { readonly type: 'ping' | 'ack'; readonly seq: number; readonly updates: readonly WireUpdate[] }
  | {
      readonly type: 'ping-req'
      readonly seq: number
      readonly target: string
      readonly updates: readonly WireUpdate[]
    }
  | { readonly type: 'gossip'; readonly updates: readonly WireUpdate[] }
  | {
      readonly type: 'sync'
      readonly reply: boolean
      readonly digest: readonly SwimDigestEntry[]
      readonly updates: readonly WireUpdate[]
    }

/** Encodes a message (the driver has turned the core's updates into their signed bytes). */
export function encodeMemberMessage(message: WireMessage): Uint8Array {
  const body: Record<string, CborValue> = {
    t: TYPES.indexOf(message.type),
    u: message.updates.map(u => [u.kind === 'record' ? 0 : 1, u.bytes]),
  }
  if (message.type === 'ping' || message.type === 'ack' || message.type === 'ping-req') body.s = message.seq
  if (message.type === 'ping-req') body.g = message.target
  if (message.type === 'sync') {
    body.r = message.reply
    body.d = message.digest.map(e => [e.id, e.incarnation, STATES.indexOf(e.state)])
  }
  return encodeCbor(body)
}

/**
 * Decodes and bounds a message.
 * @throws DecodeError `too-large` or `malformed`
 */
export function decodeMemberMessage(bytes: Uint8Array): WireMessage {
  const value = decodeCanonicalCbor(bytes, MEMBER_MESSAGE_BYTES_MAX, MESSAGE_ITEMS_MAX)
  const b = readRecord(value, 'member message', ['t', 'u'], ['s', 'g', 'r', 'd'])
  const type = TYPES[readInteger(b, 't', { max: TYPES.length - 1 })] as (typeof TYPES)[number]
  const updates = readArray(b, 'u', MESSAGE_UPDATES_MAX, readUpdate)
  switch (type) {
    case 'ping':
    case 'ack':
      return { type, seq: readInteger(b, 's'), updates }
    case 'ping-req': {
      const target = b.g
      if (typeof target !== 'string' || target.length === 0 || target.length > ADDRESS_CHARS_MAX)
        throw new DecodeError('malformed', 'ping-req target is not a peer id')
      return { type, seq: readInteger(b, 's'), target, updates }
    }
    case 'gossip':
      return { type, updates }
    case 'sync': {
      if (typeof b.r !== 'boolean') throw new DecodeError('malformed', 'sync reply flag is not a boolean')
      return { type, reply: b.r, digest: readArray(b, 'd', DIGEST_ENTRIES_MAX, readDigestEntry), updates }
    }
  }
}

function readUpdate(item: unknown): WireUpdate {
  if (!Array.isArray(item) || item.length !== 2) throw new DecodeError('malformed', 'update is not a pair')
  const [kind, bytes] = item as [unknown, unknown]
  const holder = { bytes }
  if (kind === 0)
    return { kind: 'record', bytes: readBytes(holder, 'bytes', { bytesMin: 1, bytesMax: RECORD_BYTES_MAX }) }
  if (kind === 1)
    return {
      kind: 'suspicion',
      bytes: readBytes(holder, 'bytes', { bytesMin: 1, bytesMax: SUSPICION_BYTES_MAX }),
    }
  throw new DecodeError('malformed', 'unknown update kind')
}

function readDigestEntry(item: unknown): SwimDigestEntry {
  if (!Array.isArray(item) || item.length !== 3)
    throw new DecodeError('malformed', 'digest entry is not a triple')
  const [id, incarnation, state] = item as [unknown, unknown, unknown]
  if (typeof id !== 'string' || id.length === 0 || id.length > ADDRESS_CHARS_MAX)
    throw new DecodeError('malformed', 'digest entry id is not a peer id')
  const holder = { incarnation, state }
  return {
    id,
    incarnation: readInteger(holder, 'incarnation'),
    state: STATES[readInteger(holder, 'state', { max: STATES.length - 1 })] as SwimState,
  }
}
