// TEMPORARY shim for src/node until the node-layer merge; do not import in new code
export { type CborValue, DecodeError, decodeCbor, encodeCbor, isRecord } from '../wire/cbor.js'
