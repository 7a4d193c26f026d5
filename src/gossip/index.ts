/**
 * The request layer's pure core: target filters, signed requests, replies and heartbeats, the replay
 * cache, the membership table, authorization and the one inbound validation pipeline. No I/O and no
 * libp2p here; src/node/ drives it.
 */
export * from './authorize.js'
export * from './filter.js'
export * from './replay.js'
export * from './reply.js'
export * from './reply-collector.js'
export * from './request.js'
export * from './validate.js'
