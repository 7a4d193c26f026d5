/**
 * The types of the SWIM membership core (swim.ts). Kept apart so the driver (src/node/membership-driver.ts),
 * the wire codec (src/membership/wire.ts) and the simulator (test/sim/swim-sim.ts) share one definition.
 *
 * The core knows members by id (the driver uses the peer id string) and treats what a member says about
 * itself (its signed record: certificate, addresses, facts) and what an accuser signs (a suspicion) as
 * opaque payloads the driver has already verified. It never sees bytes, keys or clocks.
 */

/** Liveness of a member as one node sees it. `left` is a member that said goodbye (a signed leave). */
export type SwimState = 'alive' | 'suspect' | 'dead' | 'left'

/**
 * A change spread by dissemination (piggybacked on probes and acks, and in `gossip` messages).
 * - `alive`: the member's own signed record at `incarnation` (`left: true` for its goodbye).
 * - `suspect`: `from` could not reach `id` at `incarnation`; `proof` is the accuser's signed claim.
 */
export type SwimUpdate<R, P> =
  | {
      readonly kind: 'alive'
      readonly id: string
      readonly incarnation: number
      readonly left: boolean
      readonly record: R
    }
  | {
      readonly kind: 'suspect'
      readonly id: string
      readonly incarnation: number
      readonly from: string
      readonly proof: P
    }

/** One line of a push-pull digest: what the sender holds about `id`. */
export interface SwimDigestEntry {
  readonly id: string
  readonly incarnation: number
  readonly state: SwimState
}

/**
 * Messages between cores. Every `updates` list is piggyback (at most `piggybackMax` entries), except a
 * `sync`'s (at most `membersMax`, within the message byte limit).
 */
export type SwimMessage<R, P> =
  /** Are you there? Answered by `ack` with the same `seq`. */
  | { readonly type: 'ping'; readonly seq: number; readonly updates: readonly SwimUpdate<R, P>[] }
  /** I am (or: `target` answered my ping on your behalf, when it answers a `ping-req`). */
  | { readonly type: 'ack'; readonly seq: number; readonly updates: readonly SwimUpdate<R, P>[] }
  /** Please ping `target` for me and send me an `ack` with this `seq` if it answers. */
  | {
      readonly type: 'ping-req'
      readonly seq: number
      readonly target: string
      readonly updates: readonly SwimUpdate<R, P>[]
    }
  /** Dissemination only (sent while updates wait for retransmission). */
  | { readonly type: 'gossip'; readonly updates: readonly SwimUpdate<R, P>[] }
  /**
   * Push-pull anti-entropy: the sender's digest, plus the records the sender holds newer than the
   * receiver's digest (in a reply). `reply: false` opens an exchange and asks for a `reply: true`.
   */
  | {
      readonly type: 'sync'
      readonly reply: boolean
      readonly digest: readonly SwimDigestEntry[]
      readonly updates: readonly SwimUpdate<R, P>[]
    }

/** Inputs to `Swim.step`. */
export type SwimInput<R, P> =
  /** A decoded message whose sender the transport authenticated as `from`, with every record verified. */
  | { readonly type: 'message'; readonly from: string; readonly message: SwimMessage<R, P> }
  /** This node's own record, re-signed (at start, after a change of facts or addresses, or to refute). */
  | { readonly type: 'local'; readonly incarnation: number; readonly record: R }
  /** A connection to `id` passed hello: exchange state with it (push-pull) unless done recently. */
  | { readonly type: 'contact'; readonly id: string }
  /** The member's certificate was revoked: remove it and refuse it from now on. */
  | { readonly type: 'revoke'; readonly id: string }
  /** This node is stopping: spread `record` (its signed goodbye, `left: true`) to its neighbours. */
  | { readonly type: 'leave'; readonly incarnation: number; readonly record: R }

/** Effects drained with `Swim.drain`, in the order they arose. */
export type SwimEffect<R, P> =
  /** Deliver `message` to `id` (loss is tolerated). */
  | { readonly type: 'send'; readonly to: string; readonly message: SwimMessage<R, P> }
  /** Sign this node's record again at `incarnation` (refutation of a suspicion) and step it as `local`. */
  | { readonly type: 'sign-self'; readonly incarnation: number }
  /** Sign a suspicion of `id` at `incarnation` and step it back as a `suspect` update from this node. */
  | { readonly type: 'sign-suspect'; readonly id: string; readonly incarnation: number }
  | { readonly type: 'joined'; readonly id: string }
  | { readonly type: 'state'; readonly id: string; readonly from: SwimState; readonly to: SwimState }
  | { readonly type: 'removed'; readonly id: string; readonly reason: 'revoked' | 'forgotten' | 'evicted' }

/** One member as the core holds it. */
export interface SwimMember<R> {
  readonly id: string
  readonly incarnation: number
  readonly state: SwimState
  readonly record: R
  /** `nowMs` of the last evidence it was alive (an ack, a message from it, a newer record). */
  readonly lastAliveMs: number
  /** `nowMs` when it entered its current state. */
  readonly sinceMs: number
}

/** Counters (all only grow). */
export interface SwimCounters {
  probes: number
  probesFailed: number
  indirectProbes: number
  suspicionsRaised: number
  refutations: number
  declaredDead: number
  updatesApplied: number
  updatesStale: number
  /** Updates dropped from the dissemination queue because it was full. */
  updatesDropped: number
  /** New members refused because the table was full of live members. */
  tableFull: number
  /** Messages from ids not in the table (answered only with a sync), or about revoked ids. */
  unknownSenders: number
  syncs: number
  /** Ping-reqs refused because the most relays (pings done for another prober) were pending. Optional only so
   * that counter literals written before it still compile; swim.ts always sets it. */
  pingRequestsDropped?: number
  /** Updates learnt from a push-pull exchange that were news here (and so disseminated again). Optional as above. */
  updatesFromSync?: number
  /** Ticks that came late by more than a quarter of the probe timeout (this node's event loop was stalled). Optional as above. */
  lateTicks?: number
  /** Probe outcomes and suspicion deadlines given once more time because their tick came late. Optional as above. */
  graced?: number
}

/** Timings and limits; defaults are SWIM_DEFAULTS. All durations ms. */
export interface SwimConfig {
  /** One probe per interval (memberlist ProbeInterval). */
  readonly probeIntervalMs: number
  /** Wait for a direct ack before asking others (memberlist ProbeTimeout). */
  readonly probeTimeoutMs: number
  /** Helpers asked to probe indirectly when the direct probe times out. */
  readonly indirectChecks: number
  /** Independent monitoring rings: each member is probed by up to this many observers. */
  readonly rings: number
  /** Suspicion timeout floor: max(suspicionMinMs, suspicionMult · log10(max(n, 10)) · probeIntervalMs). */
  readonly suspicionMult: number
  readonly suspicionMinMs: number
  /** The timeout with no confirmation is this many times the floor; confirmations shorten it (Lifeguard). */
  readonly suspicionMaxScale: number
  /** Dissemination: while updates wait, every gossipIntervalMs to gossipFanout neighbours. */
  readonly gossipIntervalMs: number
  readonly gossipFanout: number
  /** Each update is sent retransmitMult · ceil(log10(n + 1)) times. */
  readonly retransmitMult: number
  /** Most updates piggybacked on one message. */
  readonly piggybackMax: number
  /** Push-pull base period, scaled up with log n beyond 32 members (memberlist pushPullScale). */
  readonly syncIntervalMs: number
  /** Dead and left members are forgotten after this long. */
  readonly forgetAfterMs: number
  /** Most members kept (this node included). */
  readonly membersMax: number
  /** Most updates waiting for dissemination. */
  readonly queueMax: number
  /**
   * Lifeguard's local health: the largest multiplier of the probe timeout and interval (memberlist
   * AwarenessMaxMultiplier). The score goes up on a failed probe, a refutation of a suspicion of this
   * node and a stalled tick, down on every acked probe; 1 turns it off. Optional for configurations
   * written before it (default 8).
   */
  readonly healthMax?: number
}
