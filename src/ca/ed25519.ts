// TEMPORARY shim for src/node until the node-layer merge; do not import in new code
export { PUBLIC_KEY_BYTES, type SigningKey, signingKeyFromSeed } from '../wire/ed25519.js'
