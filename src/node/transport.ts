/**
 * The connection stack every mesh peer speaks, in one place: TCP (or @libp2p/memory in tests), Noise,
 * yamux, and the optional pnet fence. The node's host and the joiner's short-lived dial-only host both
 * build on it, so a joiner can never speak something the mesh does not.
 */
import { noise } from '@chainsafe/libp2p-noise'
import { yamux } from '@chainsafe/libp2p-yamux'
import { memory } from '@libp2p/memory'
import { preSharedKey } from '@libp2p/pnet'
import { tcp } from '@libp2p/tcp'
import type { Libp2pOptions } from 'libp2p'

/** The transport, encryption, multiplexing and pnet options of a mesh peer. */
export function connectionStack(init: {
  readonly transport?: 'tcp' | 'memory'
  /** The pnet pre-shared key file contents; absent = no outer fence. */
  readonly pnetKey?: Uint8Array
}): Pick<Libp2pOptions, 'transports' | 'connectionEncrypters' | 'streamMuxers' | 'connectionProtector'> {
  return {
    transports: [init.transport === 'memory' ? memory() : tcp()],
    connectionEncrypters: [noise()],
    streamMuxers: [yamux()],
    ...(init.pnetKey !== undefined ? { connectionProtector: preSharedKey({ psk: init.pnetKey }) } : {}),
  }
}
