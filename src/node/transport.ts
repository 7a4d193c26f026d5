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

/** A libp2p transport factory (what `tcp()` or `memory()` returns). */
export type TransportFactory = NonNullable<Libp2pOptions['transports']>[number]

/**
 * Which transport a peer speaks: TCP (the default), @libp2p/memory for in-process tests, or a factory
 * of its own (an embedding program's transport, or a test's fault-injecting wrapper).
 */
export type TransportChoice = 'tcp' | 'memory' | TransportFactory

/** The transport, encryption, multiplexing and pnet options of a mesh peer. */
export function connectionStack(init: {
  readonly transport?: TransportChoice
  /** The pnet pre-shared key file contents; absent = no outer fence. */
  readonly pnetKey?: Uint8Array
}): Pick<Libp2pOptions, 'transports' | 'connectionEncrypters' | 'streamMuxers' | 'connectionProtector'> {
  return {
    transports: [
      typeof init.transport === 'function' ? init.transport : init.transport === 'memory' ? memory() : tcp(),
    ],
    connectionEncrypters: [noise()],
    streamMuxers: [yamux()],
    ...(init.pnetKey !== undefined ? { connectionProtector: preSharedKey({ psk: init.pnetKey }) } : {}),
  }
}
