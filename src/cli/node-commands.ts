/**
 * The commands that run a node (libp2p, the CA, keys) inside the CLI process: `init`, `join`, `agent`
 * and `demo`. They are the only commands that load libp2p, noble, pino, zod and smol-toml; every other
 * command talks to the running agent over the control socket (src/cli/agent-client.ts). So this module
 * is where the bundled CLI splits: scripts/bundle.mjs builds it, with all it imports, into its own file
 * (dist/mesh-node.cjs) that src/cli/node-bundle.ts loads on first use, and `mesh status` starts without
 * reading 1.4 MB of JavaScript it never runs (docs/memory.md).
 */
export { agent } from './agent.js'
export { auditVerifyCopy } from './audit-copy.js'
export { demo } from './demo.js'
export { init } from './init.js'
export { join } from './join.js'
