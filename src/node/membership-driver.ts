/**
 * The membership driver: publishes this node's signed heartbeat on the presence topic, verifies the
 * heartbeats others publish, feeds both into the pure membership table (src/gossip/membership.ts) and
 * logs its events. The period stretches with the mesh's size and is announced in each heartbeat, so
 * receivers scale their timeouts to match.
 */
import type { CertificateVerifier } from '../ca/types.js'
import { HEARTBEAT_STRETCH_MAX, type Membership } from '../gossip/membership.js'

export { HEARTBEAT_STRETCH_MAX }

import { createHeartbeat, verifyHeartbeat } from '../gossip/presence.js'
import type { Clock, Timer } from './clock.js'
import type { Signer } from './credentials.js'
import type { Logger } from './log.js'
import type { TopicVerdict } from './topic-validators.js'

/** Members per configured heartbeat period before the period stretches (see heartbeatIntervalNow). */
export const HEARTBEAT_MEMBERS_PER_INTERVAL = 5
/** Delay of the early heartbeat a newly admitted peer or a new authority triggers. */
export const EARLY_HEARTBEAT_DELAY_MS = 50
/** Most addresses announced in a heartbeat. */
export const HEARTBEAT_ADDRS_MAX = 16

/** What the driver needs. */
export interface MembershipDriverComponents {
  readonly membership: Membership
  readonly verifier: CertificateVerifier
  readonly signer: Signer
  /** Publishes heartbeat bytes on the presence topic. */
  readonly publish: (bytes: Uint8Array) => Promise<unknown>
  /** Facts to announce (the node's facts and any authority it holds). */
  readonly facts: () => Record<string, string>
  /** Our dialable addresses. */
  readonly addrs: () => string[]
  readonly clock: Clock
  readonly log: Logger
}

/** Settings. */
export interface MembershipDriverInit {
  readonly heartbeatIntervalMs: number
  /** How far ahead of our clock a heartbeat's send time may be (the request clock-skew tolerance). */
  readonly clockSkewToleranceMs: number
  /** Oldest heartbeat accepted (dead-after). */
  readonly deadAfterMs: number
}

/** The driver. */
export interface MembershipDriver {
  start(): void
  stop(): void
  /** Publishes a heartbeat soon (new peer admitted, authority changed). */
  beatSoon(): void
  /** The presence topic's verdict for a heartbeat. */
  verdict(bytes: Uint8Array): TopicVerdict
  /** Advances the table's timers and logs its events. */
  tick(): void
}

/** Creates the driver. */
export function createMembershipDriver(
  components: MembershipDriverComponents,
  init: MembershipDriverInit,
): MembershipDriver {
  const { membership, clock, log } = components
  // Starts at the wall clock so it keeps increasing across restarts (peers drop stale sequence numbers).
  let seq = clock.nowMs()
  let loop: Timer | undefined
  let early: Timer | undefined
  let running = false

  const check = () => ({
    verifier: components.verifier,
    nowMs: clock.nowMs(),
    clockSkewToleranceMs: init.clockSkewToleranceMs,
    maxAgeMs: init.deadAfterMs,
  })

  /**
   * The heartbeat period now: the configured one for up to {@link HEARTBEAT_MEMBERS_PER_INTERVAL}
   * members, stretched in proportion beyond (at most {@link HEARTBEAT_STRETCH_MAX} times). Every node
   * beating every second costs each node O(N) messages a second (and the mesh O(N²)): measured at 10
   * nodes, 1 s heartbeats took 25 of 37 ms/s of CPU per node.
   */
  const intervalNow = (): number => {
    // Alive members only: after a large mesh shrinks, the period must shrink too.
    const members = membership.list().filter(m => m.state === 'alive').length
    const stretch = Math.min(
      HEARTBEAT_STRETCH_MAX,
      Math.max(1, Math.ceil(members / HEARTBEAT_MEMBERS_PER_INTERVAL)),
    )
    return init.heartbeatIntervalMs * stretch
  }

  const beat = (): void => {
    if (!running) return
    const bytes = createHeartbeat(components.signer.key, components.signer.certificate, {
      addrs: components.addrs().slice(0, HEARTBEAT_ADDRS_MAX),
      facts: components.facts(),
      seq: seq++,
      sentAtMs: clock.nowMs(),
      intervalMs: intervalNow(),
    })
    // Gossipsub does not deliver our own messages: we are a member of our own table too.
    const self = verifyHeartbeat(bytes, check())
    if (self.ok) membership.step(self.verified, clock.nowMs())
    components.publish(bytes).catch(err => log.debug({ err: String(err) }, 'heartbeat not published'))
  }

  const beatLoop = (): void => {
    beat()
    if (running) loop = clock.setTimer(beatLoop, intervalNow())
  }

  return {
    start() {
      if (running) return
      running = true
      beatLoop()
    },
    stop() {
      running = false
      loop?.cancel()
      early?.cancel()
      early = undefined
    },
    beatSoon() {
      if (early !== undefined || !running) return
      early = clock.setTimer(() => {
        early = undefined
        beat()
      }, EARLY_HEARTBEAT_DELAY_MS)
    },
    verdict(bytes) {
      const verdict = verifyHeartbeat(bytes, check())
      if (!verdict.ok) {
        // Verdicts that depend on our own clock or revocation knowledge may differ between honest peers.
        const clockish =
          verdict.reason === 'from-the-future' ||
          verdict.reason === 'too-old' ||
          verdict.reason === 'bad-certificate'
        return { kind: 'refused', code: verdict.reason, action: clockish ? 'ignore' : 'reject' }
      }
      membership.step(verdict.verified, clock.nowMs())
      return { kind: 'accept' }
    },
    tick() {
      membership.tick(clock.nowMs())
      for (const event of membership.drain()) {
        if (event.kind === 'state')
          log.info({ member: event.name, from: event.from, to: event.to }, 'member state changed')
        else if (event.kind === 'joined') log.info({ member: event.name }, 'member joined')
        else log.info({ member: event.name, reason: event.reason }, 'member removed')
      }
    },
  }
}
