/**
 * The newest of one kind of CA-signed document a running node has seen (revocation lists, zone
 * rosters): offered from the home, hellos, gossip, the node's own issuer or a renewal answer, it is
 * verified once, adopted when its version is higher than the one held, saved, and announced to the
 * subscribers. The gossip verdict comes from the same check: invalid documents are rejected (the
 * sender is penalised), valid but not newer ones ignored.
 */
import type { CaDocumentRejection } from '../ca/ca-document.js'
import { bytesEqual } from '../wire/hash.js'
import type { Clock } from './clock.js'
import { createLogLimiter, type Logger } from './log.js'
import type { TopicVerdict } from './topic-validators.js'

/** The store of the newest document of one kind. */
export interface NewestDocument<T> {
  /** The newest document adopted, if any. */
  current(): T | undefined
  /** Adopts `bytes` if it is a valid document of our CA newer than ours; true when adopted. Never throws. */
  offer(bytes: Uint8Array, origin: string): boolean
  /** The gossip verdict for `bytes` (one verification). */
  verdict(bytes: Uint8Array, origin: string): TopicVerdict
  /** Subscribes to adoptions; returns an unsubscribe function. */
  onAdopted(listener: (document: T) => void): () => void
  /** Documents adopted so far, the one from the home included. */
  adopted(): number
  /** Documents refused, by reason. */
  refused(): Readonly<Partial<Record<CaDocumentRejection, number>>>
}

/** Creates the store; `initial` (the copy saved in the home) is offered at once and not saved again. */
export function createNewestDocument<T extends { readonly bytes: Uint8Array }>(init: {
  /** The kind, for log lines ("revocation list", "zone roster"). */
  readonly what: string
  readonly verify: (
    bytes: Uint8Array,
  ) =>
    | { readonly ok: true; readonly signed: T }
    | { readonly ok: false; readonly reason: CaDocumentRejection; readonly detail: string }
  /** True when `candidate` should replace `current`. */
  readonly newer: (candidate: T, current: T | undefined) => boolean
  /** What the adoption log line says of a document (version, size). */
  readonly describe: (document: T) => Record<string, unknown>
  /** Runs on adoption before the subscribers hear of it (derived lookups). */
  readonly adopt?: (document: T) => void
  readonly initial?: Uint8Array
  /** Saves an adopted document; failures are logged. */
  readonly save?: (bytes: Uint8Array) => Promise<void>
  readonly log: Logger
  /** Times the refusal log's rate limit. */
  readonly clock: Clock
}): NewestDocument<T> {
  const { log, what } = init
  const limited = createLogLimiter(log, init.clock)
  let held: T | undefined
  let adopted = 0
  const refused: Partial<Record<CaDocumentRejection, number>> = {}
  const listeners = new Set<(document: T) => void>()

  const save = (bytes: Uint8Array): void => {
    if (init.save === undefined) return
    const failed = (err: unknown) => log.error({ err: String(err) }, `cannot save the ${what}`)
    try {
      void init.save(bytes).catch(failed)
    } catch (err) {
      failed(err)
    }
  }

  /** Verifies `bytes` once; adopts the document when it is newer. */
  const consider = (
    bytes: Uint8Array,
    origin: string,
  ): 'adopted' | 'not-newer' | { refused: CaDocumentRejection } => {
    // The document we hold, sent back to us (every hello, every republication): nothing to verify.
    if (held !== undefined && bytesEqual(bytes, held.bytes)) return 'not-newer'
    const verdict = init.verify(bytes)
    if (!verdict.ok) {
      refused[verdict.reason] = (refused[verdict.reason] ?? 0) + 1
      limited.log(
        'warn',
        `refused:${verdict.reason}`,
        { origin, reason: verdict.reason, detail: verdict.detail },
        `${what} refused`,
      )
      return { refused: verdict.reason }
    }
    if (!init.newer(verdict.signed, held)) return 'not-newer'
    held = verdict.signed
    adopted += 1
    init.adopt?.(verdict.signed)
    log.info({ ...init.describe(verdict.signed), origin }, `${what} adopted`)
    if (origin !== 'home') save(bytes)
    for (const listener of listeners) listener(verdict.signed)
    return 'adopted'
  }

  const offer = (bytes: Uint8Array, origin: string): boolean => consider(bytes, origin) === 'adopted'
  if (init.initial !== undefined) offer(init.initial, 'home')
  return {
    current: () => held,
    offer,
    verdict(bytes, origin) {
      const outcome = consider(bytes, origin)
      if (outcome === 'adopted') return { kind: 'accept' }
      if (outcome === 'not-newer') return { kind: 'refused', code: 'not-newer', action: 'ignore' }
      return { kind: 'refused', code: outcome.refused, action: 'reject' }
    },
    onAdopted(listener) {
      listeners.add(listener)
      return () => listeners.delete(listener)
    },
    adopted: () => adopted,
    refused: () => ({ ...refused }),
  }
}
