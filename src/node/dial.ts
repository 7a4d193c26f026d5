/**
 * Dial targets: the one place that turns a peer id and its advertised addresses into what libp2p
 * dials. Addresses travel without `/p2p/<peer>` in some records (presence, roster, replyTo) and with it
 * in others; libp2p needs it to check it reached the right peer, so it is appended exactly here.
 */
import type { PeerId } from '@libp2p/interface'
import { peerIdFromString } from '@libp2p/peer-id'
import { type Multiaddr, multiaddr } from '@multiformats/multiaddr'
import { withPeerId } from './peer-address.js'

export { withPeerId }

/** The multiaddrs to dial `peerId` at, each naming the peer. @throws for an address that is not a multiaddr */
export function dialAddresses(peerId: string, addrs: readonly string[]): Multiaddr[] {
  return addrs.map(a => multiaddr(withPeerId(a, peerId)))
}

/** What to dial: the peer itself when already connected (libp2p reuses the connection), else its addresses. */
export function dialTarget(
  peerId: string,
  addrs: readonly string[],
  isConnected: (peer: PeerId) => boolean,
): PeerId | Multiaddr[] {
  const peer = peerIdFromString(peerId)
  return isConnected(peer) || addrs.length === 0 ? peer : dialAddresses(peerId, addrs)
}
