/**
 * Zone rosters on a running node: the newest valid CA-signed roster (src/ca/zone-roster.ts) it has
 * seen, from the home, hello, gossip or its own issuer. The zone-authority driver computes voters from
 * it, so every node should hold the newest one soon: adopting a roster tells the subscribers and asks
 * the store to save it, and {@link ZoneRosters.republish} asks (rate-limited) for it to be gossiped again
 * when a peer is seen behind.
 *
 * On the gossip topic a roster travels inside a small wrapper with a random nonce
 * ({@link encodeZoneRosterMessage}): gossipsub drops a payload it has seen within its duplicate window
 * (minutes), our own publish included, so republishing the bare roster bytes would do nothing for that
 * long. The nonce gives each publication its own message id; receivers that hold the roster already
 * ignore it (not forwarded), so a republication costs one hop per node, and adoption is monotonic, so
 * it cannot loop.
 */
import {
  newerZoneRoster,
  type SignedZoneRoster,
  verifyZoneRoster,
  ZONE_ROSTER_BYTES_MAX,
  type ZoneRosterRejection,
} from '../ca/zone-roster.js'
import { decodeCbor, encodeCbor, isRecord } from '../wire/cbor.js'
import { createNewestDocument } from './ca-documents.js'
import type { Clock } from './clock.js'
import type { Logger } from './log.js'
import type { TopicVerdict } from './topic-validators.js'

/** Shortest time between two republications of the roster on the gossip topic. */
export const ZONE_ROSTER_REPUBLISH_INTERVAL_MS = 2_000
/** Bytes of the random nonce in a gossip roster message. */
export const ZONE_ROSTER_NONCE_BYTES = 8
/** Largest gossip roster message: a roster of the largest allowed size plus the wrapper. */
export const ZONE_ROSTER_MESSAGE_BYTES_MAX = ZONE_ROSTER_BYTES_MAX + 1_024
/** Most CBOR items a gossip roster message is decoded with (a map of three fields). */
const ZONE_ROSTER_MESSAGE_ITEMS_MAX = 16

/** Called with each newly adopted roster. */
export type ZoneRosterListener = (signed: SignedZoneRoster) => void

/** Counters of the roster state, for `mesh status` and tests. */
export interface ZoneRosterCounters {
  /** Version of the roster held; undefined when there is none. */
  readonly version: number | undefined
  /** Rosters adopted (from any origin, the home included). */
  readonly adopted: number
  /** Rosters refused, by reason. */
  readonly refused: Readonly<Partial<Record<ZoneRosterRejection, number>>>
  /** Republications asked for and let through (each one gossip publication). */
  readonly republished: number
  /** Republications dropped by the rate limit ({@link ZONE_ROSTER_REPUBLISH_INTERVAL_MS}). */
  readonly republishLimited: number
}

/** The node's zone-roster state. */
export interface ZoneRosters {
  /** The newest roster adopted, if any. */
  current(): SignedZoneRoster | undefined
  /** Adopts `bytes` if it is a valid roster of our CA with a higher version than ours; true when adopted. Never throws. */
  offer(bytes: Uint8Array, origin: string): boolean
  /** The gossip verdict for roster bytes: invalid rosters are rejected, valid but not newer ones ignored. */
  verdict(bytes: Uint8Array, origin: string): TopicVerdict
  /** The gossip verdict for a whole topic message ({@link encodeZoneRosterMessage}). */
  messageVerdict(data: Uint8Array, origin: string): TopicVerdict
  /** Subscribes to adoptions; returns an unsubscribe function. */
  onAdopted(listener: ZoneRosterListener): () => void
  /**
   * Asks for the current roster to be published again on the gossip topic: calls the
   * {@link onRepublish} listeners at most once per {@link ZONE_ROSTER_REPUBLISH_INTERVAL_MS} (calls in
   * between are dropped and counted). A no-op when there is no roster.
   */
  republish(): void
  /** Subscribes the publisher to republications; returns an unsubscribe function. */
  onRepublish(listener: ZoneRosterListener): () => void
  counters(): ZoneRosterCounters
}

/** Encodes a gossip roster message: the roster's signed bytes and a random nonce (see the file note). */
export function encodeZoneRosterMessage(roster: Uint8Array, nonce: Uint8Array): Uint8Array {
  return encodeCbor({ v: 1, roster, nonce })
}

/** The roster bytes of a gossip roster message, or undefined when it is not one. Never throws. */
export function decodeZoneRosterMessage(data: Uint8Array): Uint8Array | undefined {
  let message: unknown
  try {
    // `{ v, roster, nonce }`: a handful of items, whatever the size of the roster's bytes.
    message = decodeCbor(data, ZONE_ROSTER_MESSAGE_BYTES_MAX, ZONE_ROSTER_MESSAGE_ITEMS_MAX)
  } catch {
    return undefined
  }
  if (!isRecord(message) || message.v !== 1 || !(message.roster instanceof Uint8Array)) return undefined
  if (!(message.nonce instanceof Uint8Array) || message.nonce.byteLength > 32) return undefined
  return message.roster
}

/** Creates the roster state, adopting `initial` (the roster saved in the home) if valid. */
export function createZoneRosters(init: {
  readonly caPublicKey: Uint8Array
  /** The roster saved by an earlier run; one that does not verify is logged and left out. */
  readonly initial?: Uint8Array
  /** Saves an adopted roster (not the one read from the home); failures are logged. */
  readonly save?: (bytes: Uint8Array) => Promise<void>
  readonly log: Logger
  /** Times the republish limit and the refusal log's rate limit. */
  readonly clock: Clock
}): ZoneRosters {
  const { clock } = init
  let republished = 0
  let republishLimited = 0
  let lastRepublishMs: number | undefined
  const republishListeners = new Set<ZoneRosterListener>()
  const store = createNewestDocument<SignedZoneRoster>({
    what: 'zone roster',
    verify: bytes => verifyZoneRoster(bytes, init.caPublicKey),
    newer: (candidate, current) => newerZoneRoster(candidate.roster, current?.roster),
    describe: signed => ({ version: signed.roster.version, members: signed.roster.members.length }),
    initial: init.initial,
    save: init.save,
    log: init.log,
    clock,
  })
  const { verdict } = store

  /** Gossip messages whose wrapper was not a roster message (counted with the refused rosters). */
  let wrappersMalformed = 0
  return {
    current: store.current,
    offer: store.offer,
    verdict,
    messageVerdict(data, origin) {
      const roster = decodeZoneRosterMessage(data)
      if (roster === undefined) {
        wrappersMalformed += 1
        return { kind: 'refused', code: 'malformed', action: 'reject' }
      }
      return verdict(roster, origin)
    },
    onAdopted: store.onAdopted,
    republish() {
      const held = store.current()
      // Nothing to spread yet.
      if (held === undefined) return
      const nowMs = clock.monotonicMs()
      if (lastRepublishMs !== undefined && nowMs - lastRepublishMs < ZONE_ROSTER_REPUBLISH_INTERVAL_MS) {
        republishLimited += 1
        return
      }
      lastRepublishMs = nowMs
      republished += 1
      for (const listener of republishListeners) listener(held)
    },
    onRepublish(listener) {
      republishListeners.add(listener)
      return () => republishListeners.delete(listener)
    },
    counters: () => {
      const refused = { ...store.refused() }
      if (wrappersMalformed > 0) refused.malformed = (refused.malformed ?? 0) + wrappersMalformed
      return {
        version: store.current()?.roster.version,
        adopted: store.adopted(),
        refused,
        republished,
        republishLimited,
      }
    },
  }
}
