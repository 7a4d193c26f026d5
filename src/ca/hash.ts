// TEMPORARY shim for src/node until the node-layer merge; do not import in new code
export { bytesEqual, toHex } from '../wire/hash.js'
