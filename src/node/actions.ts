export * from './actions/index.js' // TEMPORARY shim until the node-layer merge
