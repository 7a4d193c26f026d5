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
import { type Clock, systemClock } from './clock.js'
import { createLogLimiter, type Logger } from './log.js'
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
}): Revocations {
  const { log } = init
  const limited = createLogLimiter(log, init.clock ?? systemClock)
  let list: SignedRevocationList | undefined
  let lookup: RevocationLookup = createRevocationLookup(undefined)
  const listeners = new Set<RevocationListener>()
  /** Verifies `bytes` once; adopts the list when it is newer. `refused` carries the verdict's reason. */
  const consider = (bytes: Uint8Array, origin: string): 'adopted' | 'not-newer' | { refused: string } => {
    const verdict = verifyRevocationList(bytes, init.caPublicKey)
    if (!verdict.ok) {
      limited.log(
        'warn',
        `refused:${verdict.reason}`,
        { origin, reason: verdict.reason },
        'revocation list refused',
      )
      return { refused: verdict.reason }
    }
    if (!newer(verdict.signed.list, list?.list)) return 'not-newer'
    list = verdict.signed
    lookup = createRevocationLookup(verdict.signed.list)
    log.info(
      { version: verdict.signed.list.version, entries: verdict.signed.list.entries.length, origin },
      'revocation list adopted',
    )
    for (const listener of listeners) listener(verdict.signed)
    void init.save?.(bytes).catch(err => log.error({ err: String(err) }, 'cannot save revocations'))
    return 'adopted'
  }
  const offer = (bytes: Uint8Array, origin: string): boolean => consider(bytes, origin) === 'adopted'
  if (init.initial !== undefined) offer(init.initial, 'home')
  return {
    isRevoked: serial => lookup.isRevoked(serial),
    isPeerRevoked: peerId => lookup.isPeerRevoked(peerId),
    current: () => list,
    offer,
    verdict(bytes, origin) {
      // One signature check per gossiped list: invalid ones are rejected, valid but not newer ignored.
      const outcome = consider(bytes, origin)
      if (outcome === 'adopted') return { kind: 'accept' }
      if (outcome === 'not-newer') return { kind: 'refused', code: 'not-newer', action: 'ignore' }
      return { kind: 'refused', code: outcome.refused, action: 'reject' }
    },
    onAdopted(listener) {
      listeners.add(listener)
      return () => listeners.delete(listener)
    },
  }
}
