/**
 * Test harness: an in-process mesh of real libp2p nodes on 127.0.0.1 (TCP) or @libp2p/memory, with
 * certificates from a throwaway CA. Every wait is bounded; `stop()` stops every node it started.
 */
import { issueCertificate, newSerial } from '../../src/ca/certificate.js'
import { emptyIssuerState } from '../../src/ca/issuer-state.js'
import type { Role } from '../../src/ca/types.js'
import { type SignedZoneRoster, signZoneRoster } from '../../src/ca/zone-roster.js'
import { type AgentConfig, defaultConfig } from '../../src/node/config.js'
import { type Identity, secureRandomBytes } from '../../src/node/keys.js'
import { createMeshNode, internalsOf, type NodeInternals } from '../../src/node/node.js'
import type { MeshNode, MeshNodeInit } from '../../src/node/node-types.js'

/** A node with its internals (host, admission, enrolment, actions, authority) at hand, for tests. */
export type TestNode = MeshNode & NodeInternals

/** `node` with its internals merged in (the node's members close over its state, so copying is safe). */
export function withInternals(node: MeshNode): TestNode {
  return { ...node, ...internalsOf(node) }
}

import { type SigningKey, signingKeyFromSeed } from '../../src/wire/ed25519.js'
import { hash } from '../../src/wire/hash.js'

/** A throwaway certificate authority. */
export interface TestCa {
  readonly key: SigningKey
  readonly ticketSecret: Uint8Array
  identity(
    name: string,
    zone: string,
    roles: Role[],
    validity?: { notBeforeMs: number; notAfterMs: number },
  ): Identity
  /** A zone roster signed by this CA: `members` at `version` (default 1), every one added at version 1. */
  zoneRoster(members: ReadonlyArray<{ peerId: string; zone: string }>, version?: number): SignedZoneRoster
}

let seedCounter = 0
/** A fresh random signing key. */
export function randomKey(): SigningKey {
  return signingKeyFromSeed(secureRandomBytes(32))
}

/** A CA whose key is derived from `label` (different labels = different meshes). */
export function createTestCa(label = `ca-${seedCounter++}-${Math.random()}`): TestCa {
  const key = signingKeyFromSeed(hash(new TextEncoder().encode(label)))
  return {
    key,
    ticketSecret: hash(new TextEncoder().encode(`${label}/tickets`)),
    identity(name, zone, roles, validity) {
      const nodeKey = randomKey()
      const nowMs = Date.now()
      const certificate = issueCertificate(key, {
        serial: newSerial(secureRandomBytes),
        name,
        publicKey: nodeKey.publicKey,
        zone,
        roles,
        notBeforeMs: validity?.notBeforeMs ?? nowMs - 60_000,
        notAfterMs: validity?.notAfterMs ?? nowMs + 86_400_000,
      })
      return { key: nodeKey, certificate }
    },
    zoneRoster(members, version = 1) {
      return signZoneRoster(key, {
        version,
        issuedAtMs: Date.now(),
        members: members.map(m => ({ peerId: m.peerId, zone: m.zone, since: 1 })),
        priors: [],
      })
    },
  }
}

/**
 * `specs` with an identity each (fresh unless given) and, as `init.zoneRoster`, one roster signed by
 * `ca` listing every spec with the agent role (peer id and zone), so every node starts with the same
 * voters' roster. Off unless a test asks (startTestMesh/startTopology option `zoneRoster`). A CA node's
 * own issuer signs its rosters from version 1 too, so do not mix this with certificates issued by a
 * test node's issuer: two different rosters would carry the same version.
 */
export function withZoneRoster(ca: TestCa, specs: readonly NodeSpec[], version = 1): NodeSpec[] {
  const withIds = specs.map(spec => ({
    ...spec,
    identity: spec.identity ?? ca.identity(spec.name, spec.zone, rolesOf(spec)),
  }))
  const members = withIds
    .filter(spec => spec.identity.certificate.certificate.roles.includes('agent'))
    .map(spec => ({ peerId: spec.identity.certificate.certificate.peerId, zone: spec.zone }))
  const roster = ca.zoneRoster(members, version).bytes
  return withIds.map(spec => ({ ...spec, init: { ...spec.init, zoneRoster: roster } }))
}

/** The roles a spec's node gets when the spec names none. */
function rolesOf(spec: NodeSpec): Role[] {
  return spec.roles ?? (spec.ca === true ? ['ca', 'agent'] : ['agent'])
}

/** One node to create. */
export interface NodeSpec {
  readonly name: string
  readonly zone: string
  readonly roles?: Role[]
  /** Give this node the CA material (issuer). */
  readonly ca?: boolean
  readonly operator?: boolean
  readonly config?: Partial<AgentConfig>
  /** Use this identity instead of a fresh one (e.g. a forged or expired certificate). */
  readonly identity?: Identity
  readonly init?: Partial<MeshNodeInit>
}

/** A running in-process mesh. */
export interface TestMesh {
  readonly ca: TestCa
  readonly nodes: TestNode[]
  node(name: string): TestNode
  /** Adds and starts one more node, dialled to the first node. */
  add(spec: NodeSpec): Promise<TestNode>
  /** Waits (bounded) until every node lists every other as alive. */
  converge(timeoutMs?: number): Promise<void>
  stop(): Promise<void>
}

/** Polls `check` every 25 ms until it is true or `timeoutMs` passes (then throws with `what`). */
export async function waitFor(check: () => boolean, timeoutMs: number, what: string): Promise<void> {
  const deadline = Date.now() + timeoutMs
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`)
    await new Promise(r => setTimeout(r, 25))
  }
}

/** The node called `name` among `nodes`; throws when there is none. */
function nodeNamed(nodes: readonly TestNode[], name: string): TestNode {
  const found = nodes.find(n => n.name === name)
  if (found === undefined) throw new Error(`no node ${name}`)
  return found
}

/** Waits (bounded) until every node lists every other as alive. */
async function convergeAll(nodes: readonly TestNode[], timeoutMs = 20_000): Promise<void> {
  const names = nodes.map(n => n.name).sort()
  await waitFor(
    () =>
      nodes.every(n => {
        const alive = n
          .members()
          .filter(m => m.state === 'alive')
          .map(m => m.name)
        return names.every(name => alive.includes(name))
      }),
    timeoutMs,
    `membership of ${names.join(', ')} to converge`,
  )
}

/** Stops every node, ignoring failures (each stop is idempotent). */
async function stopAll(nodes: readonly TestNode[]): Promise<void> {
  await Promise.all(nodes.map(n => n.stop().catch(() => {})))
}

/** Test timing profile on loopback TCP. */
export function testConfig(overrides: Partial<AgentConfig> = {}): AgentConfig {
  return { ...defaultConfig('test', { listen: ['/ip4/127.0.0.1/tcp/0'] }), ...overrides }
}

/** Starts a mesh of `specs`, each node dialling the first one. */
export async function startTestMesh(
  specs: NodeSpec[],
  options: {
    transport?: 'tcp' | 'memory'
    ca?: TestCa
    /** Give every node one CA-signed zone roster listing all of `specs` ({@link withZoneRoster}). */
    zoneRoster?: boolean
  } = {},
): Promise<TestMesh> {
  const ca = options.ca ?? createTestCa()
  if (options.zoneRoster === true) specs = withZoneRoster(ca, specs)
  const nodes: TestNode[] = []
  const make = async (spec: NodeSpec): Promise<TestNode> => {
    const node = await createTestNode(ca, spec, options.transport ?? 'tcp')
    await node.start()
    return node
  }
  const mesh: TestMesh = {
    ca,
    nodes,
    node: name => nodeNamed(nodes, name),
    async add(spec) {
      const node = await make(spec)
      nodes.push(node)
      const first = nodes[0]
      if (first !== undefined && first !== node) await node.dial(first.addrs()[0]!).catch(() => {})
      return node
    },
    converge: timeoutMs => convergeAll(nodes, timeoutMs),
    stop: () => stopAll(nodes),
  }
  for (const spec of specs) {
    try {
      await mesh.add(spec)
    } catch (err) {
      await mesh.stop()
      throw err
    }
  }
  return mesh
}

/**
 * Creates (does not start) one node of `ca` from `spec`, dialling nobody: startTestMesh's `add` always
 * dials the first node, hand-built topologies use this instead. Listens on a fresh loopback TCP port or
 * a fresh @libp2p/memory address. The caller starts and stops it.
 */
export async function createTestNode(
  ca: TestCa,
  spec: NodeSpec,
  transport: 'tcp' | 'memory' = 'tcp',
): Promise<TestNode> {
  const roles = rolesOf(spec)
  const identity = spec.identity ?? ca.identity(spec.name, spec.zone, roles)
  const listen =
    transport === 'memory'
      ? [`/memory/mesh-${process.pid}-${Date.now()}-${seedCounter++}`]
      : ['/ip4/127.0.0.1/tcp/0']
  const node = await createMeshNode({
    node: identity,
    caPublicKey: ca.key.publicKey,
    operator:
      spec.operator === true ? ca.identity(`${spec.name}-operator`, spec.zone, ['operator']) : undefined,
    ca:
      spec.ca === true
        ? { caKey: ca.key, ticketSecret: ca.ticketSecret, issuerState: emptyIssuerState() }
        : undefined,
    config: testConfig({ listen, ...spec.config }),
    transport,
    ...spec.init,
  })
  return withInternals(node)
}

/** A hand-built mesh whose connections are exactly the given links. */
export interface TestTopology {
  readonly ca: TestCa
  readonly nodes: TestNode[]
  node(name: string): TestNode
  /** Names of the peers `name` has ever had a connection with (recorded from before its start). */
  connectionsSeen(name: string): ReadonlySet<string>
  /** Waits (bounded) until every node lists every other as alive. */
  converge(timeoutMs?: number): Promise<void>
  /** Stops every node; never rejects. */
  stop(): Promise<void>
}

/**
 * Starts `specs` connected exactly along `links` (pairs of names). Every pair that is not a link is
 * denied for good on both sides through admission (`deny`), before any node starts, so neither the
 * agent's connection maintenance (which dials members it learns from heartbeats), nor gossipsub peer
 * exchange, nor a reply's direct-dial fallback can add an edge: a message between unlinked nodes must
 * travel through the others. Each link is dialled (bounded by the hello timeout) and awaited until
 * both ends have admitted each other.
 */
export async function startTopology(
  specs: NodeSpec[],
  links: ReadonlyArray<readonly [string, string]>,
  options: {
    transport?: 'tcp' | 'memory'
    ca?: TestCa
    timeoutMs?: number
    /** Give every node one CA-signed zone roster listing all of `specs` ({@link withZoneRoster}). */
    zoneRoster?: boolean
  } = {},
): Promise<TestTopology> {
  const ca = options.ca ?? createTestCa()
  if (options.zoneRoster === true) specs = withZoneRoster(ca, specs)
  const nodes: TestNode[] = []
  const seen = new Map<string, Set<string>>() // name → peer ids it connected with
  const topology: TestTopology = {
    ca,
    nodes,
    node: name => nodeNamed(nodes, name),
    connectionsSeen(name) {
      const ids = seen.get(name) ?? new Set<string>()
      return new Set(nodes.filter(n => ids.has(n.peerId)).map(n => n.name))
    },
    converge: timeoutMs => convergeAll(nodes, timeoutMs),
    stop: () => stopAll(nodes),
  }
  const linked = (a: string, b: string): boolean =>
    links.some(([x, y]) => (x === a && y === b) || (x === b && y === a))
  try {
    // Create every node first (peer ids are needed for the denials), start them after.
    const created: TestNode[] = []
    for (const spec of specs) {
      const ids = new Set<string>()
      seen.set(spec.name, ids)
      const node = await createTestNode(ca, spec, options.transport)
      node.host.addEventListener('connection:open', evt => ids.add(evt.detail.remotePeer.toString()))
      created.push(node)
      nodes.push(node)
    }
    for (const a of created) {
      for (const b of created) {
        if (a !== b && !linked(a.name, b.name)) a.admission.deny(b.peerId, 'test topology: not a link')
      }
    }
    for (const node of created) await node.start()
    for (const [x, y] of links) {
      const a = topology.node(x)
      const b = topology.node(y)
      await a.dial(b.addrs()[0]!)
      const timeoutMs = options.timeoutMs ?? 10_000
      const [fromA, fromB] = await Promise.all([
        a.admission.waitFor(b.peerId, timeoutMs),
        b.admission.waitFor(a.peerId, timeoutMs),
      ])
      if (fromA === undefined || fromB === undefined) throw new Error(`link ${x}-${y} was not admitted`)
    }
  } catch (err) {
    await topology.stop()
    throw err
  }
  return topology
}
