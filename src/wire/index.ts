/**
 * The wire layer: deterministic CBOR, hashes, ed25519, the one authenticated envelope with its table
 * of domain strings, and the one set of strict field readers. Every signed or stored format of mesh
 * (src/ca, src/gossip) is built from these; nothing here knows about certificates or requests.
 */
export * from './cbor.js'
export * from './domains.js'
export * from './ed25519.js'
export * from './envelope.js'
export * from './fields.js'
export * from './hash.js'
