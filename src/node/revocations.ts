/**
 * Revocation lists on a running node: the newest valid list it has seen, from the home, hello, gossip,
 * its own issuer or a renewal answer. Adopting a list tells the subscribers (admission cuts revoked
 * peers, membership and the authority roster drop them) and asks the store to save it.
 */
import {
  createRevocationLookup,
  newer,
  type RevocationLookup,
  type SignedRevocationList,
  verifyRevocationList,
} from '../ca/revocation.js'
import { createNewestDocument } from './ca-documents.js'
import { type Clock, systemClock } from './clock.js'
import type { EventBus } from './events.js'
import type { Logger } from './log.js'
import type { TopicVerdict } from './topic-validators.js'

/** Called with each newly adopted list. */
export type RevocationListener = (list: SignedRevocationList) => void

/** The node's revocation state. */
export interface Revocations {
  isRevoked(serial: string): boolean
  isPeerRevoked(peerId: string): boolean
  /** The newest list adopted, if any. */
  current(): SignedRevocationList | undefined
  /** Adopts `bytes` if it is a valid list of our CA newer than ours; true when adopted. */
  offer(bytes: Uint8Array, origin: string): boolean
  /** The gossip verdict: invalid lists are rejected, valid but not newer ones ignored. */
  verdict(bytes: Uint8Array, origin: string): TopicVerdict
  /** Subscribes to adoptions; returns an unsubscribe function. */
  onAdopted(listener: RevocationListener): () => void
}

/** Creates the revocation state, adopting `initial` (the list saved in the home) if valid. */
export function createRevocations(init: {
  readonly caPublicKey: Uint8Array
  readonly initial?: Uint8Array
  readonly save?: (bytes: Uint8Array) => Promise<void>
  readonly log: Logger
  /** Times the refusal log's rate limit; default the system clock. */
  readonly clock?: Clock
  /** Where adoptions are reported (the audit log); optional. */
  readonly events?: Pick<EventBus, 'emit'>
}): Revocations {
  let lookup: RevocationLookup = createRevocationLookup(undefined)
  const store = createNewestDocument<SignedRevocationList>({
    what: 'revocation list',
    verify: bytes => verifyRevocationList(bytes, init.caPublicKey),
    newer: (candidate, current) => newer(candidate.list, current?.list),
    describe: signed => ({ version: signed.list.version, entries: signed.list.entries.length }),
    adopt: signed => {
      lookup = createRevocationLookup(signed.list)
    },
    initial: init.initial,
    save: init.save,
    log: init.log,
    clock: init.clock ?? systemClock,
  })
  const clock = init.clock ?? systemClock
  /** Runs `consider`, reporting an adoption with its origin and the list it replaced. */
  const reported = <T>(origin: string, consider: () => T): T => {
    const previous = store.current()
    const result = consider()
    const list = store.current()
    if (list !== previous && list !== undefined)
      init.events?.emit({ type: 'revocation-adopted', list, previous, origin, atMs: clock.nowMs() })
    return result
  }
  return {
    isRevoked: serial => lookup.isRevoked(serial),
    isPeerRevoked: peerId => lookup.isPeerRevoked(peerId),
    current: store.current,
    offer: (bytes, origin) => reported(origin, () => store.offer(bytes, origin)),
    verdict: (bytes, origin) => reported(origin, () => store.verdict(bytes, origin)),
    onAdopted: store.onAdopted,
  }
}
