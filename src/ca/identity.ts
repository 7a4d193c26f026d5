/** The link between a raw ed25519 public key and the libp2p PeerId the transport authenticates. */
import { publicKeyFromRaw } from '@libp2p/crypto/keys'
import { peerIdFromPublicKey } from '@libp2p/peer-id'
import { PUBLIC_KEY_BYTES } from '../wire/ed25519.js'

/**
 * The PeerId string (`12D3KooW…`) of a raw 32-byte ed25519 public key, or `undefined` when the bytes
 * are not one. Never throws.
 */
export function peerIdOfPublicKey(publicKey: Uint8Array): string | undefined {
  if (publicKey.byteLength !== PUBLIC_KEY_BYTES) return undefined
  try {
    return peerIdFromPublicKey(publicKeyFromRaw(publicKey)).toString()
  } catch {
    return undefined
  }
}
