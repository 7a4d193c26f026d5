/**
 * `/p2p/<peer>` on an address, as text: the part of dial.ts that needs no libp2p, so that modules the
 * CLI loads (src/agent/control-methods.ts: ticket bootstrap addresses) can use it too.
 */

/** `addr` with `/p2p/<peerId>` appended unless it already names a peer. */
export function withPeerId(addr: string, peerId: string): string {
  return addr.includes('/p2p/') ? addr : `${addr}/p2p/${peerId}`
}
