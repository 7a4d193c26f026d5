/**
 * The audit log's pure core: the record format (a signed, hash-linked envelope per record, framed by a
 * length prefix), its verification, and how a record reads as a line or as JSON. No I/O: the library
 * seals records (src/node/audit.ts), the agent stores them (src/agent/audit-file.ts). docs/audit.md.
 */
export * from './format.js'
export * from './record.js'
export * from './verify.js'
