/**
 * The gossipsub gate of admission (LIBP2P-NOTES §2): stream middleware that holds every gossipsub
 * stream to and from a peer until its hello verdict, so a peer that has not passed never enters our
 * topic-peer set (we neither publish to it nor read what it sends). Also home of {@link GatedChain},
 * the middleware array that works around a libp2p chain-mutation bug. Split out of admission.ts
 * because it is the one piece that depends on libp2p's middleware internals.
 */
import type { Libp2p, PeerId, StreamMiddleware } from '@libp2p/interface'
import type { SignedCertificate } from '../ca/types.js'

/** Gossip streams wait for the hello verdict up to this many hello timeouts (the verdict normally ends it). */
export const GATE_WAIT_HELLO_TIMEOUTS = 4

/** Gossipsub protocol ids whose streams wait for the hello verdict. */
export const GOSSIPSUB_PROTOCOLS = ['/meshsub/1.2.0', '/meshsub/1.1.0', '/meshsub/1.0.0']

/**
 * Installs the gate on every {@link GOSSIPSUB_PROTOCOLS} id of `node`: a stream proceeds once `waitFor`
 * yields the peer's certificate, and is aborted when it yields none.
 */
export function useGossipsubGate(
  node: Libp2p,
  waitFor: (peerId: PeerId, timeoutMs: number) => Promise<SignedCertificate | undefined>,
  helloTimeoutMs: number,
): void {
  for (const protocol of GOSSIPSUB_PROTOCOLS) {
    node.use(
      protocol,
      new GatedChain(async (stream, connection, next) => {
        // Wait for the verdict, not for a fixed time: on a loaded machine hello can take longer than
        // its timeout's worth of queueing, and a gossip stream aborted here is never reopened.
        const certificate = await waitFor(connection.remotePeer, GATE_WAIT_HELLO_TIMEOUTS * helloTimeoutMs)
        if (certificate === undefined) throw new Error('peer not admitted')
        next(stream, connection)
      }),
    )
  }
}

/**
 * A middleware chain that works around libp2p ≤ 3.3.11 mutating the stored chain on every inbound
 * stream (`getMiddleware(protocol).push(handlerWrapper)`; upstream PR js-libp2p#3534). `push` only
 * remembers the newest handler wrapper, which the tail entry runs for inbound streams; outbound streams
 * skip it. Once upstream copies the array instead, `push` is never called and this is a plain chain.
 */
export class GatedChain extends Array<StreamMiddleware> {
  static override get [Symbol.species](): ArrayConstructor {
    return Array
  }

  private inboundTail: StreamMiddleware | undefined

  /** A chain of `middleware` followed by the entry that runs libp2p's handler wrapper on inbound streams. */
  constructor(...middleware: StreamMiddleware[]) {
    super()
    super.push(...middleware, (stream, connection, next) => {
      const tail = this.inboundTail
      if (tail !== undefined && stream.direction === 'inbound') return tail(stream, connection, next)
      next(stream, connection)
    })
  }

  /** Remembers the newest pushed entry as the inbound tail instead of growing the chain. */
  override push(...items: StreamMiddleware[]): number {
    this.inboundTail = items[items.length - 1]
    return this.length
  }
}
