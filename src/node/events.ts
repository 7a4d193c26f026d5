/**
 * The node's event stream: what happened, for observers that keep their own books (the job store,
 * the audit log, metrics): requests validated, replies sent, execs finished, peers admitted or refused,
 * revocation lists adopted, the CA issuer's decisions. Components emit; nothing decides on an event, and a listener that throws
 * is logged and left registered, never allowed to break the emitter.
 *
 * Events are synchronous and carry references, not copies: a listener must not change them and must
 * hand slow work (disk, network) to its own queue.
 */
import type { IssuerEffect, IssuerInput } from '../ca/issuer.js'
import type { SignedRevocationList } from '../ca/revocation.js'
import type { SignedCertificate } from '../ca/types.js'
import type { ReplyStatus } from '../gossip/reply.js'
import type { OutcomeCode, RequestRefusalCode, VerifiedRequest } from '../gossip/validate.js'
import type { Logger } from './log.js'

/** Every event a node emits. */
export type NodeEvent =
  /** A request this node refused in validation (never a decision to run it). */
  | {
      readonly type: 'request-refused'
      readonly code: RequestRefusalCode
      readonly detail: string
      readonly upstream: string | undefined
      readonly atMs: number
    }
  /**
   * A request that passed validation. `verdict`: `execute` (for us, allowed), `denied` (for us,
   * policy refused), `not-for-us`, `unknown-action` (for us, no such action here).
   */
  | {
      readonly type: 'request-accepted'
      readonly request: VerifiedRequest
      readonly verdict: 'execute' | 'denied' | 'not-for-us' | 'unknown-action'
      readonly code: OutcomeCode
      readonly upstream: string | undefined
      readonly atMs: number
    }
  /** This node signed and sent a reply (`bytes`, the whole signed envelope) to `request`. */
  | {
      readonly type: 'reply-sent'
      readonly request: VerifiedRequest
      readonly kind: 'ack' | 'done'
      readonly bytes: Uint8Array
      /** For a done: what it says. `ran` is true when the action really started on this node. */
      readonly done?: {
        readonly status: ReplyStatus
        readonly exitCode: number | null
        readonly durationMs: number
        readonly output: string
        readonly reason?: string
        readonly ran: boolean
      }
      readonly atMs: number
    }
  /** An exec issued from this node finished (all answered, timed out, or aborted). */
  | {
      readonly type: 'exec-finished'
      readonly id: string
      readonly action: string
      readonly expected: number
      readonly ok: number
      readonly failed: number
      readonly missing: number
      /** From issue to the last reply or the deadline, by this node's clock. */
      readonly durationMs: number
      readonly atMs: number
    }
  /** A peer's certificate passed the hello (admission.ts): the first of its connections, not every one. */
  | {
      readonly type: 'peer-admitted'
      readonly peer: string
      readonly certificate: SignedCertificate
      readonly atMs: number
    }
  /** A peer's hello failed verification: it is hung up on and denied for a while (admission.ts). */
  | {
      readonly type: 'peer-refused'
      readonly peer: string
      readonly addr: string
      readonly reason: string
      readonly atMs: number
    }
  /**
   * A newer CA-signed revocation list was adopted (revocations.ts) from `origin` (hello, gossip,
   * issuer, renewal); `previous` is the list it replaces. Not emitted for the list read from the home.
   */
  | {
      readonly type: 'revocation-adopted'
      readonly list: SignedRevocationList
      readonly previous: SignedRevocationList | undefined
      readonly origin: string
      readonly atMs: number
    }
  /**
   * The CA issuer carried out `input` (issuer-driver.ts): `answers` are the replies and command replies
   * it gave; `saved` is false when its state could not be persisted (the CA then stops).
   */
  | {
      readonly type: 'issuer-decision'
      readonly input: IssuerInput
      readonly answers: readonly IssuerEffect[]
      readonly saved: boolean
      readonly atMs: number
    }

/** A listener. */
export type NodeEventListener = (event: NodeEvent) => void

/** Emits to every listener; {@link EventBus.on} returns an unsubscribe function. */
export interface EventBus {
  emit(event: NodeEvent): void
  on(listener: NodeEventListener): () => void
  /** Listener calls that threw. */
  readonly errors: number
}

/** Most listeners at once: an embedder that subscribes in a loop is told, not left to leak. */
export const EVENT_LISTENERS_MAX = 64

/** Creates an event bus. */
export function createEventBus(log: Logger): EventBus {
  const listeners = new Set<NodeEventListener>()
  let errors = 0
  return {
    emit(event) {
      if (listeners.size === 0) return
      for (const listener of listeners) {
        try {
          listener(event)
        } catch (err) {
          errors += 1
          // The first few name the culprit; the counter keeps the total.
          if (errors <= 8) log.warn({ type: event.type, err: String(err) }, 'event listener threw')
        }
      }
    },
    on(listener) {
      if (listeners.size >= EVENT_LISTENERS_MAX)
        throw new Error(`at most ${EVENT_LISTENERS_MAX} event listeners at once`)
      listeners.add(listener)
      return () => {
        listeners.delete(listener)
      }
    },
    get errors() {
      return errors
    },
  }
}
