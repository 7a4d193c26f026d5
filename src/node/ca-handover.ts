/**
 * `/mesh/ca-handover/1.0.0` (`mesh ca add-holder`, docs/ca-ha.md): a CA holder hands the CA key, the
 * ticket secret, its current CA state and the new holder set to a member it makes a holder, and the new
 * holder set to every other holder. One signed handover (src/ca/handover.ts) answered by one answer.
 *
 * Receiving: on every node whose certificate carries the `ca` role (the CA admitted it as a possible
 * holder: an operator asked for it with `mesh ticket create NAME --role ca --role agent`), behind admission's
 * gate, one exchange at a time. The handover must check out (signed by the mesh CA key, the CA key
 * itself, addressed to this node by the connection's peer, fresh) and is stored through
 * `store` (the agent writes the CA files in the home) before the answer says so. The node starts
 * serving as a holder when its agent next starts: the holder set is read at start.
 *
 * Sending: {@link CaHandover.send} opens the stream on the connection to the admitted peer (Noise
 * encrypts it; hello proved the peer's certificate), so the key only ever goes to the member named.
 */
import type { Connection, Stream } from '@libp2p/interface'
import { peerIdFromString } from '@libp2p/peer-id'
import {
  decodeHandoverAnswer,
  encodeHandoverAnswer,
  HANDOVER_BYTES_MAX,
  type Handover,
  type HandoverAnswer,
  openHandover,
} from '../ca/handover.js'
import type { Clock } from './clock.js'
import { countedLpStream } from './counted-stream.js'
import type { StreamHandler } from './enrolment/types.js'
import type { Host } from './host.js'
import type { Logger } from './log.js'
import type { Traffic } from './traffic.js'

export const CA_HANDOVER_PROTOCOL = '/mesh/ca-handover/1.0.0'
/** Time limit of one handover exchange (the state may be megabytes). */
export const CA_HANDOVER_TIMEOUT_MS = 30_000

/** What the service needs. */
export interface CaHandoverComponents {
  readonly host: Host
  readonly gated: (handler: StreamHandler) => StreamHandler
  readonly self: string
  readonly caPublicKey: Uint8Array
  /** Whether this node may become a holder (its certificate has the `ca` role). */
  readonly mayHold: boolean
  /** Stores a checked handover durably; absent: this node keeps no files (refused as `no-store`). */
  readonly store?: (handover: Handover) => Promise<void>
  readonly clock: Clock
  readonly log: Logger
  readonly traffic: Traffic
}

/** Counters for `mesh status --json` (`counters.caHandover`). */
export interface CaHandoverCounters {
  readonly received: number
  readonly stored: number
  readonly refused: Readonly<Record<string, number>>
}

/** The service. */
export interface CaHandover {
  start(): Promise<void>
  stop(): Promise<void>
  /** Sends signed handover bytes to `peerId` and returns its answer. @throws when unreachable or it does not answer */
  send(peerId: string, bytes: Uint8Array): Promise<HandoverAnswer>
  counters(): CaHandoverCounters
}

/** Creates the service. */
export function createCaHandover(components: CaHandoverComponents): CaHandover {
  const { host, log, clock, traffic } = components
  let received = 0
  let stored = 0
  const refused: Record<string, number> = Object.create(null)
  let busy = false

  const handle = async (stream: Stream, connection: Connection): Promise<void> => {
    received++
    const signal = AbortSignal.timeout(CA_HANDOVER_TIMEOUT_MS)
    const sender = connection.remotePeer.toString()
    const lp = countedLpStream(stream, { maxDataLength: HANDOVER_BYTES_MAX }, traffic, 'ca')
    const answer = async (a: HandoverAnswer): Promise<void> => {
      if (!a.ok) {
        refused[a.reason] = (refused[a.reason] ?? 0) + 1
        log.warn({ peer: sender, reason: a.reason, detail: a.detail }, 'CA handover refused')
      }
      await lp.write(encodeHandoverAnswer(a), { signal })
      await stream.close({ signal })
    }
    try {
      if (busy) return await answer({ ok: false, reason: 'busy', detail: 'another handover is in progress' })
      busy = true
      try {
        const bytes = (await lp.read({ signal })).subarray()
        if (!components.mayHold)
          return await answer({
            ok: false,
            reason: 'not-a-ca-member',
            detail:
              "this node's certificate has no ca role; give it one: mesh ticket create NAME --role ca --role agent",
          })
        if (components.store === undefined)
          return await answer({
            ok: false,
            reason: 'no-store',
            detail: 'this node keeps no files (an embedded node)',
          })
        const opened = openHandover(bytes, {
          caPublicKey: components.caPublicKey,
          self: components.self,
          sender,
          nowMs: clock.nowMs(),
        })
        if (!opened.ok) return await answer({ ok: false, reason: opened.reason, detail: opened.detail })
        try {
          await components.store(opened.handover)
        } catch (err) {
          return await answer({ ok: false, reason: 'store-failed', detail: (err as Error).message })
        }
        stored++
        log.warn(
          { from: sender, holders: opened.handover.holders.length },
          'this node is now a CA holder; restart its agent so the holders serve together',
        )
        await answer({ ok: true })
      } finally {
        busy = false
      }
    } catch (err) {
      log.debug({ peer: sender, err: (err as Error).message }, 'CA handover exchange failed')
      stream.abort(err as Error)
    }
  }

  return {
    async start() {
      await host.handle(CA_HANDOVER_PROTOCOL, components.gated(handle), { maxInboundStreams: 1 })
    },
    async stop() {
      await host.unhandle(CA_HANDOVER_PROTOCOL).catch(() => {})
    },
    async send(peerId, bytes) {
      const signal = AbortSignal.timeout(CA_HANDOVER_TIMEOUT_MS)
      const stream = await host.dialProtocol(peerIdFromString(peerId), CA_HANDOVER_PROTOCOL, { signal })
      const lp = countedLpStream(stream, { maxDataLength: 4096 }, traffic, 'ca')
      try {
        await lp.write(bytes, { signal })
        const answer = decodeHandoverAnswer((await lp.read({ signal })).subarray())
        await stream.close({ signal }).catch(() => {})
        return answer
      } catch (err) {
        stream.abort(err as Error)
        throw err
      }
    },
    counters: () => ({ received, stored, refused: { ...refused } }),
  }
}
