// TEMPORARY shim for src/node until the node-layer merge; do not import in new code
export { openEnvelope } from '../wire/envelope.js'
