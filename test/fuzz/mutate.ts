/**
 * The mutation engine: turns one valid message into a hostile one, deterministically from a
 * {@link SimRandom} (test/sim/random.ts, sfc32 seeded through splitmix32), so a case is replayed by its
 * campaign seed and index alone.
 *
 * Structured mutations work on the message's CBOR tree (cbor-tree.ts), at any depth, inside nested
 * envelopes too (the certificate inside a request, the records inside a membership message, the
 * signing request inside a join message): type confusion, edge values, field swaps, drops and
 * additions, duplicate keys, key order, item order, non-canonical heads, deep nesting, oversize fields, fields
 * taken from other message types, and re-signing. Every envelope on the way from a changed node to the
 * root is sealed again by a policy: kept (the signature no longer matches), signed by the right key
 * (so the checks behind the signature are reached), by another key of the ring, under another domain,
 * or given a zero, random or short authenticator. Byte mutations (bit flips, interesting bytes,
 * truncation, extension, splices, insertions, deletions) run on the serialized bytes, or on one inner
 * byte string before the envelopes around it are sealed again. Text inputs (tickets, `--where`
 * expressions, patterns) get character and grammar mutations.
 */

import { SIGNATURE_DOMAINS, type SignatureDomain } from '../../src/wire/domains.js'
import { signBytes } from '../../src/wire/ed25519.js'
import { authenticatedMessage } from '../../src/wire/envelope.js'
import { mac, toHex } from '../../src/wire/hash.js'
import type { SimRandom } from '../sim/random.js'
import {
  canonicalKeyOrder,
  type EnvelopeNode,
  field,
  type HeadWidth,
  int,
  type Node,
  nodeAt,
  positions,
  replaceAt,
  type Sealer,
  type SealPolicy,
  type Step,
  serialize,
  text,
  textOf,
} from './cbor-tree.js'
import type { Seed, World } from './world.js'

/** A mutated input and the mutations that made it, in order. */
export interface Mutant {
  readonly input: Uint8Array | string
  readonly kinds: readonly string[]
}

/** Tree mutations (on the CBOR structure, at any depth). */
export const TREE_KINDS = [
  'type-confusion',
  'edge-value',
  'field-swap',
  'field-drop',
  'field-add',
  'duplicate-key',
  'key-order',
  'item-order',
  'non-canonical',
  'deep-nesting',
  'oversize',
  'foreign-field',
  'resign',
  'identity-swap',
  'inner-bytes',
] as const
/** Byte mutations (on the serialized input). */
export const BYTE_KINDS = [
  'bit-flip',
  'byte-set',
  'truncate',
  'extend',
  'splice',
  'insert',
  'delete',
] as const
/** Text mutations (tickets, expressions, patterns). */
export const TEXT_KINDS = [
  'char-flip',
  'char-insert',
  'char-delete',
  'token-insert',
  'text-truncate',
] as const
/** Ticket-line mutations. */
export const TICKET_KINDS = ['prefix', 'whitespace', 'base64'] as const

/** Everything the engine draws from besides the seed itself. */
export interface MutationContext {
  readonly world: World
  /** Every map key of the corpus, plus a few that are known to be trouble. */
  readonly keys: readonly string[]
  /** Trees of every bytes seed, as donors of foreign fields. */
  readonly donors: readonly Node[]
  /** Certificates of every identity as `wrapped` nodes, for identity swaps. */
  readonly certificates: readonly { node: Node; keyId: string }[]
  /** Every seed, for foreign messages and splices. */
  readonly seeds: readonly Seed[]
}

/** Precomputes what the mutations draw from. */
export function createMutationContext(world: World): MutationContext {
  const keys = new Set(['x', '', '__proto__', 'constructor', 'toString', 'V', 'v ', 'body', 'sig', 'mac'])
  const donors: Node[] = []
  const seeds: Seed[] = []
  for (const list of world.corpus.values()) {
    for (const seed of list) {
      seeds.push(seed)
      if (seed.tree === undefined) continue
      donors.push(seed.tree)
      collectKeys(seed.tree, keys)
    }
  }
  const certificates = world.identities.flatMap(identity => {
    const node = seedTreeOf(world, identity.certificate.bytes)
    return node === undefined ? [] : [{ node, keyId: toHex(identity.key.publicKey) }]
  })
  return { world, keys: [...keys], donors, certificates, seeds }
}

/** The corpus tree (with signers) of a certificate, wrapped as the byte string it travels as. */
function seedTreeOf(world: World, bytes: Uint8Array): Node | undefined {
  const hex = toHex(bytes)
  for (const seed of world.corpus.get('certificate') ?? []) {
    if (typeof seed.input !== 'string' && toHex(seed.input) === hex && seed.tree?.k === 'env') {
      return { k: 'wrapped', env: seed.tree }
    }
  }
  return undefined
}

function collectKeys(node: Node, keys: Set<string>): void {
  switch (node.k) {
    case 'map':
      for (const [k, v] of node.entries) {
        const name = textOf(k)
        if (name !== undefined) keys.add(name)
        collectKeys(v, keys)
      }
      return
    case 'array':
      for (const item of node.items) collectKeys(item, keys)
      return
    case 'env':
      collectKeys(node.body, keys)
      return
    case 'wrapped':
      collectKeys(node.env, keys)
      return
    default:
      return
  }
}

/** How many mutations one case stacks: mostly one, sometimes two or three. */
function depthOf(r: SimRandom): number {
  const x = r.next()
  return x < 0.7 ? 1 : x < 0.9 ? 2 : 3
}

/**
 * Mutates `seed` into a hostile input. With a small probability the input stays valid (`none`), or is
 * a message of another type (`foreign-message`), so acceptance paths and cross-type confusion are
 * exercised as well.
 */
export function mutate(seed: Seed, ctx: MutationContext, r: SimRandom): Mutant {
  const roll = r.next()
  if (roll < 0.02) return { input: seed.input, kinds: ['none'] }
  if (roll < 0.05) {
    const other = r.pick(ctx.seeds.filter(s => s.type !== seed.type))
    const inner = r.chance(0.5) ? mutate(other, ctx, r) : { input: other.input, kinds: [] }
    return { input: asFormat(inner.input, seed), kinds: ['foreign-message', ...inner.kinds] }
  }
  if (seed.format === 'text' && seed.prefix === undefined) return mutateText(seed.input as string, r)
  if (seed.format === 'text') return mutateTicket(seed, ctx, r)
  return mutateBytes(seed, ctx, r)
}

function asFormat(input: Uint8Array | string, seed: Seed): Uint8Array | string {
  if (seed.format === 'text') {
    if (typeof input === 'string') return input
    return seed.prefix !== undefined
      ? seed.prefix + Buffer.from(input).toString('base64url')
      : Buffer.from(input).toString('latin1')
  }
  return typeof input === 'string' ? new TextEncoder().encode(input) : input
}

function mutateBytes(seed: Seed, ctx: MutationContext, r: SimRandom): Mutant {
  const count = depthOf(r)
  const kinds: string[] = []
  const sealer = createSealer(ctx, r)
  let tree = seed.tree
  const byteSteps: string[] = []
  for (let i = 0; i < count; i++) {
    // Tree mutations when there is a tree (most of the time), byte mutations otherwise.
    if (tree !== undefined && r.chance(0.75)) {
      const kind = r.pick(TREE_KINDS)
      tree = treeMutation(kind, tree, ctx, r, sealer)
      kinds.push(kind)
    } else {
      const kind = r.pick(BYTE_KINDS)
      byteSteps.push(kind)
      kinds.push(kind)
    }
  }
  let bytes = tree === undefined ? (seed.input as Uint8Array) : serialize(tree, sealer)
  for (const kind of byteSteps) bytes = byteMutation(kind, bytes, ctx, r)
  return { input: bytes, kinds }
}

function mutateTicket(seed: Seed, ctx: MutationContext, r: SimRandom): Mutant {
  const count = depthOf(r)
  const kinds: string[] = []
  const sealer = createSealer(ctx, r)
  let tree = seed.tree
  const later: string[] = []
  for (let i = 0; i < count; i++) {
    const x = r.next()
    if (tree !== undefined && x < 0.5) {
      const kind = r.pick(TREE_KINDS)
      tree = treeMutation(kind, tree, ctx, r, sealer)
      kinds.push(kind)
    } else if (x < 0.65) {
      const kind = r.pick(BYTE_KINDS)
      later.push(kind)
      kinds.push(kind)
    } else {
      const kind = r.chance(0.5) ? r.pick(TICKET_KINDS) : r.pick(TEXT_KINDS)
      later.push(kind)
      kinds.push(kind)
    }
  }
  let bytes: Uint8Array = tree === undefined ? new Uint8Array() : serialize(tree, sealer)
  let line = (seed.prefix ?? '') + Buffer.from(bytes).toString('base64url')
  for (const kind of later) {
    if ((BYTE_KINDS as readonly string[]).includes(kind)) {
      bytes = byteMutation(
        kind,
        new Uint8Array(Buffer.from(line.slice(seed.prefix?.length ?? 0), 'base64url')),
        ctx,
        r,
      )
      line = (seed.prefix ?? '') + Buffer.from(bytes).toString('base64url')
    } else if ((TICKET_KINDS as readonly string[]).includes(kind)) line = ticketMutation(kind, line, r)
    else line = textMutation(kind, line, r)
  }
  return { input: line, kinds }
}

function mutateText(input: string, r: SimRandom): Mutant {
  const count = depthOf(r)
  const kinds: string[] = []
  let out = input
  for (let i = 0; i < count; i++) {
    const kind = r.pick(TEXT_KINDS)
    out = textMutation(kind, out, r)
    kinds.push(kind)
  }
  return { input: out, kinds }
}

// ---------------------------------------------------------------------------------------------------
// Sealing.

/** Signs re-sealed envelopes by their policy, drawing keys and domains from the case's generator. */
export function createSealer(ctx: MutationContext, r: SimRandom): Sealer {
  const keys = [...ctx.world.keyring.values()]
  const secrets = [...ctx.world.secrets.values()]
  return (env, bodyBytes) => {
    const policy = env.seal ?? 'keep'
    const length = env.tagKey === 'sig' ? 64 : 32
    switch (policy) {
      case 'keep':
        return env.tag
      case 'zero':
        return new Uint8Array(length)
      case 'random':
        return randomBytes(r, length)
      case 'short':
        return env.tag.subarray(0, length - 1)
      default:
        break
    }
    const signer = env.signer
    if (signer === undefined) return env.tag
    const domain =
      policy === 'other-domain'
        ? r.pick(SIGNATURE_DOMAINS.filter(d => d !== signer.domain))
        : (signer.domain as SignatureDomain)
    if (env.tagKey === 'mac') {
      const right = ctx.world.secrets.get(signer.keyId)
      const secret = policy === 'other-key' ? r.pick(secrets.filter(s => s !== right)) : right
      return secret === undefined ? env.tag : mac(secret, authenticatedMessage(domain, bodyBytes))
    }
    const right = ctx.world.keyring.get(signer.keyId)
    const key = policy === 'other-key' ? r.pick(keys.filter(k => k !== right)) : right
    return key === undefined ? env.tag : signBytes(key, authenticatedMessage(domain, bodyBytes))
  }
}

/** The policy for the innermost envelope around a change, and for those further out. */
function sealPolicy(r: SimRandom, envelopesAbove: number): SealPolicy {
  const x = r.next()
  if (envelopesAbove > 0) return x < 0.65 ? 'right' : 'keep'
  if (x < 0.35) return 'keep'
  if (x < 0.75) return 'right'
  if (x < 0.87) return 'other-key'
  if (x < 0.92) return 'other-domain'
  return r.pick<SealPolicy>(['zero', 'random', 'short'])
}

// ---------------------------------------------------------------------------------------------------
// Tree mutations.

interface Child {
  readonly step: Step
  readonly node: Node
}

function childrenOf(node: Node, r: SimRandom): Child[] {
  switch (node.k) {
    case 'array':
      return node.items.map((item, index) => ({ step: { at: 'item', index }, node: item }))
    case 'map':
      // Values mostly; keys sometimes (renaming a field is a mutation too).
      return node.entries.map(([key, value], index) =>
        r.chance(0.12)
          ? { step: { at: 'key', index }, node: key }
          : { step: { at: 'value', index }, node: value },
      )
    case 'env':
      return [{ step: { at: 'body' }, node: node.body }]
    case 'wrapped':
      return [{ step: { at: 'env' }, node: node.env }]
    case 'tag':
      return [{ step: { at: 'tagged' }, node: node.item }]
    default:
      return []
  }
}

/**
 * A random path. Mostly a node drawn uniformly from every node of the tree (so deep fields, such as
 * those of a certificate inside a request, are reached as often as shallow ones); sometimes a random
 * descent that stops early (so whole containers and envelopes are replaced too).
 */
function randomPath(root: Node, r: SimRandom, accept: (node: Node) => boolean = () => true): Step[] {
  if (r.chance(0.75)) {
    const candidates = positions(root).filter(p => p.path.length > 0 && accept(p.node))
    if (candidates.length > 0) return [...r.pick(candidates).path]
  }
  for (let attempt = 0; attempt < 8; attempt++) {
    const path: Step[] = []
    let node = root
    for (;;) {
      const children = childrenOf(node, r)
      const mustDescend = node.k === 'env' || path.length === 0
      if (children.length === 0 || (!mustDescend && r.chance(0.3) && accept(node))) break
      const child = r.pick(children)
      path.push(child.step)
      node = child.node
    }
    if (accept(node)) return path
  }
  return []
}

function treeMutation(kind: string, root: Node, ctx: MutationContext, r: SimRandom, sealer: Sealer): Node {
  const seal = (above: number) => sealPolicy(r, above)
  switch (kind) {
    case 'type-confusion':
      return replaceAt(root, randomPath(root, r), node => typeConfusion(node, r), seal)
    case 'edge-value':
      return replaceAt(root, randomPath(root, r), node => edgeValue(node, r, ctx), seal)
    case 'field-swap':
      return fieldSwap(root, r, seal)
    case 'field-drop':
      return replaceAt(root, randomPath(root, r, isContainer), node => dropOne(node, r), seal)
    case 'field-add':
      return replaceAt(root, randomPath(root, r, isMap), node => addField(node, r, ctx), seal)
    case 'duplicate-key':
      return replaceAt(root, randomPath(root, r, isMap), node => duplicateKey(node, r), seal)
    case 'key-order':
      return replaceAt(root, randomPath(root, r, isMap), node => reorder(node, r), seal)
    case 'item-order':
      return replaceAt(root, randomPath(root, r, isArray), node => reorderItems(node, r), seal)
    case 'non-canonical':
      return replaceAt(root, randomPath(root, r), node => nonCanonical(node, r, sealer), seal)
    case 'deep-nesting':
      return replaceAt(root, randomPath(root, r), () => deepNesting(r), seal)
    case 'oversize':
      return replaceAt(root, randomPath(root, r), node => oversize(node, r), seal)
    case 'foreign-field':
      return replaceAt(root, randomPath(root, r), node => foreignField(node, r, ctx), seal)
    case 'resign':
      return resign(root, r)
    case 'identity-swap':
      return identitySwap(root, r, ctx)
    case 'inner-bytes':
      return replaceAt(
        root,
        randomPath(root, r, isStringLike),
        node => innerBytes(node, r, ctx, sealer),
        seal,
      )
    default:
      throw new Error(`unknown tree mutation ${kind}`)
  }
}

const isContainer = (node: Node): boolean => node.k === 'map' || node.k === 'array'
const isMap = (node: Node): boolean => node.k === 'map'
const isArray = (node: Node): boolean => node.k === 'array' && node.items.length >= 2
const isStringLike = (node: Node): boolean => node.k === 'bytes' || node.k === 'wrapped' || node.k === 'text'

const TWO_53 = 2n ** 53n
const INTERESTING_INTS: readonly bigint[] = [
  0n,
  1n,
  -1n,
  23n,
  24n,
  255n,
  256n,
  65_535n,
  65_536n,
  2n ** 31n - 1n,
  2n ** 31n,
  2n ** 32n - 1n,
  2n ** 32n,
  2n ** 40n,
  2n ** 40n + 1n,
  TWO_53 - 1n,
  TWO_53,
  TWO_53 + 1n,
  2n ** 63n,
  2n ** 64n - 1n,
  -TWO_53,
  -(TWO_53 + 1n),
  -(2n ** 63n),
  -(2n ** 64n),
]
const LENGTHS = [
  0, 1, 2, 15, 16, 17, 31, 32, 33, 63, 64, 65, 127, 128, 129, 255, 256, 257, 511, 512, 513, 1023, 1024, 1025,
  4095, 4096, 4097, 16_384, 16_385,
]
const TEXTS = [
  '',
  ' ',
  'a',
  'A',
  '\u0000',
  'é',
  '😀',
  '/',
  '*',
  '?',
  '..',
  '-x',
  '.x',
  'web1',
  'web',
  'core',
  'agent',
  'operator',
  'ca',
  'ack',
  'done',
  'ok',
  'hello',
  'csr',
  'issued',
  'pending',
  'refused',
  'error',
  'mesh1.',
  '/(a+)+$/',
  '/a*a*a*b/',
  '/^a*a*b/',
  '/[/',
  '\\1',
  '12D3KooWAHoEkEqnKzM5PXFygh2movVBCSX3k8tDsT2cneU68Gyt',
]
const INVALID_UTF8: readonly Uint8Array[] = [
  Uint8Array.of(0xff),
  Uint8Array.of(0xc0, 0x80),
  Uint8Array.of(0xed, 0xa0, 0x80),
  Uint8Array.of(0xe2, 0x82),
  Uint8Array.of(0x61, 0x80),
]

function randomBytes(r: SimRandom, length: number): Uint8Array {
  const out = new Uint8Array(length)
  for (let i = 0; i < length; i++) out[i] = r.int(0, 255)
  return out
}

function typeConfusion(node: Node, r: SimRandom): Node {
  const palette: (() => Node)[] = [
    () => int(r.pick(INTERESTING_INTS.slice(0, 8))),
    () => int(r.pick(INTERESTING_INTS)),
    () => text(r.pick(TEXTS)),
    () => (node.k === 'int' ? text(node.v.toString()) : text('1')),
    () => ({ k: 'bytes', v: node.k === 'text' ? node.v : new Uint8Array(r.pick([0, 16, 32, 64])) }),
    () => (node.k === 'bytes' ? { k: 'text', v: node.v } : text('')),
    () => ({ k: 'array', items: [] }),
    () => ({ k: 'array', items: [node] }),
    () => ({ k: 'map', entries: [] }),
    () => ({ k: 'map', entries: [[text('x'), node]] }),
    () => ({ k: 'simple', v: r.pick([20, 21, 22, 23, 16, 0]) }),
    () => ({
      k: 'float',
      v: r.pick([1.5, -0, 1, 0, Number.NaN, Number.POSITIVE_INFINITY, 2 ** 53]),
      bits: r.pick([16, 32, 64] as const),
    }),
    () => (node.k === 'int' ? { k: 'float', v: Number(node.v), bits: 64 } : { k: 'float', v: 0.5, bits: 64 }),
    () => ({ k: 'tag', tag: r.pick([0n, 1n, 2n, 24n, 55_799n]), item: node }),
    () => (node.k === 'array' && node.items.length > 0 ? node.items[0]! : { k: 'simple', v: 22 }),
    () => (node.k === 'wrapped' ? node.env : node.k === 'env' ? { k: 'wrapped', env: node } : text('x')),
  ]
  for (let attempt = 0; attempt < 4; attempt++) {
    const next = r.pick(palette)()
    if (next.k !== node.k) return next
  }
  return r.pick(palette)()
}

function edgeValue(node: Node, r: SimRandom, ctx: MutationContext): Node {
  switch (node.k) {
    case 'int': {
      const v = node.v
      return int(r.pick([...INTERESTING_INTS, v + 1n, v - 1n, -v, v * 1000n, v + 30_000n, v - 30_001n]))
    }
    case 'text': {
      const original = textOf(node) ?? ''
      const x = r.next()
      if (x < 0.3) return text(r.pick(TEXTS))
      if (x < 0.45) return { k: 'text', v: r.pick(INVALID_UTF8) }
      if (x < 0.75) return text(r.pick(['a', 'é', '😀', '0', '-']).repeat(r.pick(LENGTHS)))
      return text(
        r.pick([
          original.toUpperCase(),
          `${original}\u0000`,
          ` ${original}`,
          `${original} `,
          original.slice(1),
          original.slice(0, -1),
          original + original,
          original.normalize('NFD'),
        ]),
      )
    }
    case 'bytes': {
      const length = r.pick(LENGTHS.slice(0, 25))
      const x = r.next()
      if (x < 0.3) return { k: 'bytes', v: new Uint8Array(length) }
      if (x < 0.6) return { k: 'bytes', v: randomBytes(r, length) }
      const padded = new Uint8Array(length)
      padded.set(node.v.subarray(0, length))
      return { k: 'bytes', v: padded }
    }
    case 'array': {
      const items = node.items
      const first = items[0] ?? int(0)
      const x = r.next()
      if (x < 0.15) return { ...node, items: [] }
      if (x < 0.3) return { ...node, items: [...items].reverse() }
      if (x < 0.45) return { ...node, items: [...items, first] }
      if (x < 0.6) return { ...node, items: [...items, { k: 'simple', v: 22 }] }
      return {
        ...node,
        items: Array.from({ length: r.pick([2, 3, 4, 5, 8, 9, 16, 17, 64, 65, 256, 257, 513]) }, () => first),
      }
    }
    case 'map':
      return r.chance(0.5) ? { ...node, entries: [] } : { ...node, entries: node.entries.slice(0, 1) }
    case 'simple':
      return { k: 'simple', v: node.v === 20 ? 21 : node.v === 21 ? 20 : r.pick([20, 21, 22, 23]) }
    case 'wrapped':
    case 'env':
      return foreignField(node, r, ctx)
    default:
      return typeConfusion(node, r)
  }
}

function fieldSwap(root: Node, r: SimRandom, seal: (above: number) => SealPolicy): Node {
  if (r.chance(0.5)) {
    // Two values of one map.
    return replaceAt(
      root,
      randomPath(root, r, node => node.k === 'map' && node.entries.length >= 2),
      node => {
        if (node.k !== 'map' || node.entries.length < 2) return node
        const i = r.int(0, node.entries.length - 1)
        let j = r.int(0, node.entries.length - 2)
        if (j >= i) j++
        const entries = [...node.entries]
        const a = entries[i]!
        const b = entries[j]!
        entries[i] = [a[0], b[1]]
        entries[j] = [b[0], a[1]]
        return { ...node, entries }
      },
      seal,
    )
  }
  // Two nodes anywhere in the tree.
  const p1 = randomPath(root, r)
  const p2 = randomPath(root, r)
  const n1 = nodeAt(root, p1)
  const n2 = nodeAt(root, p2)
  if (n1 === undefined || n2 === undefined) return root
  const once = replaceAt(root, p1, () => n2, seal)
  return replaceAt(once, p2, node => (nodeAt(once, p2) === node ? n1 : node), seal)
}

function dropOne(node: Node, r: SimRandom): Node {
  if (node.k === 'map' && node.entries.length > 0) {
    const i = r.int(0, node.entries.length - 1)
    return { ...node, entries: node.entries.filter((_, n) => n !== i) }
  }
  if (node.k === 'array' && node.items.length > 0) {
    const i = r.int(0, node.items.length - 1)
    return { ...node, items: node.items.filter((_, n) => n !== i) }
  }
  return node
}

function smallValue(r: SimRandom, ctx: MutationContext): Node {
  return r.pick<() => Node>([
    () => int(r.pick(INTERESTING_INTS.slice(0, 6))),
    () => text(r.pick(TEXTS)),
    () => ({ k: 'simple', v: r.pick([20, 21, 22]) }),
    () => ({ k: 'bytes', v: new Uint8Array(r.pick([0, 16, 32])) }),
    () => randomNode(r.pick(ctx.donors), r),
  ])()
}

function randomNode(tree: Node, r: SimRandom): Node {
  return nodeAt(tree, randomPath(tree, r)) ?? tree
}

function addField(node: Node, r: SimRandom, ctx: MutationContext): Node {
  if (node.k !== 'map') return node
  const key = text(r.pick(ctx.keys))
  const value = smallValue(r, ctx)
  const entries = [...node.entries]
  if (r.chance(0.7)) {
    // Canonical position, so only the content is wrong.
    let at = entries.findIndex(([k]) => canonicalKeyOrder(key, k) < 0)
    if (at < 0) at = entries.length
    entries.splice(at, 0, [key, value])
  } else entries.splice(r.int(0, entries.length), 0, [key, value])
  return { ...node, entries }
}

function duplicateKey(node: Node, r: SimRandom): Node {
  if (node.k !== 'map' || node.entries.length === 0) return node
  const i = r.int(0, node.entries.length - 1)
  const [key, value] = node.entries[i]!
  const entries = [...node.entries]
  entries.splice(i + 1, 0, [key, r.chance(0.5) ? value : int(1)])
  return { ...node, entries }
}

function reorder(node: Node, r: SimRandom): Node {
  if (node.k !== 'map' || node.entries.length < 2) return node
  const i = r.int(0, node.entries.length - 2)
  const entries = [...node.entries]
  ;[entries[i], entries[i + 1]] = [entries[i + 1]!, entries[i]!]
  return { ...node, entries }
}

/** The same items in another order: reversed, rotated, or two swapped (sets must have one order). */
function reorderItems(node: Node, r: SimRandom): Node {
  if (node.k !== 'array' || node.items.length < 2) return node
  const items = [...node.items]
  const x = r.next()
  if (x < 0.4) items.reverse()
  else if (x < 0.6) items.push(items.shift()!)
  else {
    const i = r.int(0, items.length - 2)
    ;[items[i], items[i + 1]] = [items[i + 1]!, items[i]!]
  }
  return { ...node, items }
}

function wider(r: SimRandom): HeadWidth {
  return r.pick<HeadWidth>([1, 2, 4, 8])
}

/** An envelope's outer map with `body` before its authenticator: the content is right, the order is not. */
function reversedEnvelope(env: EnvelopeNode, sealer: Sealer): Node {
  const bodyBytes = serialize(env.body, sealer)
  return {
    k: 'map',
    entries: [
      [text('body'), { k: 'bytes', v: bodyBytes }],
      [text(env.tagKey), { k: 'bytes', v: sealer(env, bodyBytes) }],
    ],
  }
}

function nonCanonical(node: Node, r: SimRandom, sealer: Sealer): Node {
  switch (node.k) {
    case 'int':
      if (r.chance(0.2)) return { k: 'float', v: Number(node.v), bits: r.pick([16, 32, 64] as const) }
      if (r.chance(0.1) && node.v >= 0n) {
        return { k: 'tag', tag: 2n, item: { k: 'bytes', v: Uint8Array.of(Number(node.v & 0xffn)) } }
      }
      return { ...node, w: wider(r) }
    case 'bytes':
    case 'text':
      return r.chance(0.4) ? { ...node, chunks: r.int(1, 3) } : { ...node, w: wider(r) }
    case 'array':
      return r.chance(0.5) ? { ...node, indefinite: true } : { ...node, w: wider(r) }
    case 'map':
      return r.chance(0.5) ? { ...node, indefinite: true } : { ...node, w: wider(r) }
    case 'wrapped':
      return { k: 'bytes', v: serialize(reversedEnvelope(node.env, sealer), sealer) }
    case 'env':
      return reversedEnvelope(node, sealer)
    default:
      return { k: 'tag', tag: 24n, item: { k: 'bytes', v: Uint8Array.of(0x00) } }
  }
}

const nestings = new Map<string, Node>()

/** Nested arrays, maps or tags of the given depth, as raw bytes (no recursion needed to write them). */
function deepNesting(r: SimRandom): Node {
  const depth = r.pick([8, 16, 17, 64, 256, 1024, 4096, 20_000, 100_000])
  const shape = r.pick(['array', 'map', 'tag', 'mixed'] as const)
  const key = `${shape}/${depth}`
  const known = nestings.get(key)
  if (known !== undefined) return known
  const unit =
    shape === 'array'
      ? [0x81]
      : shape === 'map'
        ? [0xa1, 0x61, 0x61]
        : shape === 'tag'
          ? [0xc1]
          : [0x82, 0x00, 0xa1, 0x60]
  const out = new Uint8Array(depth * unit.length + 1)
  for (let i = 0; i < depth; i++) out.set(unit, i * unit.length)
  out[out.length - 1] = 0xf6
  const node: Node = { k: 'raw', v: out }
  nestings.set(key, node)
  return node
}

const OVERSIZES = [1025, 4097, 16_385, 65_537, 1_048_577, 2_097_153]
/** Entries of the dense fills: 16 KB, 64 KB, 240 KB and 1 MB of one-field maps. */
const DENSE_ENTRIES = [4_000, 16_000, 60_000, 250_000]
const denseFills = new Map<number, Node>()

/** An array of `entries` maps `{ a: 0 }` (four bytes each): the most items per byte a decoder can get. */
function denseFill(entries: number): Node {
  let node = denseFills.get(entries)
  if (node === undefined) {
    const out = new Uint8Array(5 + 4 * entries)
    out.set([0x9a, entries >>> 24, (entries >>> 16) & 0xff, (entries >>> 8) & 0xff, entries & 0xff])
    for (let i = 0; i < entries; i++) out.set([0xa1, 0x61, 0x61, 0x00], 5 + 4 * i)
    node = { k: 'raw', v: out }
    denseFills.set(entries, node)
  }
  return node
}

function oversize(node: Node, r: SimRandom): Node {
  if (r.chance(0.12)) return denseFill(r.pick(DENSE_ENTRIES))
  const length = r.pick(OVERSIZES)
  switch (node.k) {
    case 'text':
      return text('a'.repeat(length))
    case 'bytes':
    case 'wrapped':
      return { k: 'bytes', v: new Uint8Array(length) }
    case 'array': {
      const item = node.items[0] ?? int(0)
      return { ...node, items: Array.from({ length: r.pick([257, 513, 4097, 8193, 16_385]) }, () => item) }
    }
    case 'map': {
      const count = r.pick([65, 257, 4097])
      const extra: [Node, Node][] = Array.from({ length: count }, (_, i) => [text(`k${i}`), int(i)])
      return { ...node, entries: [...node.entries, ...extra] }
    }
    default:
      return { k: 'bytes', v: new Uint8Array(length) }
  }
}

function foreignField(node: Node, r: SimRandom, ctx: MutationContext): Node {
  const donor = r.pick(ctx.donors)
  if (node.k === 'map') {
    // Same-named field of another message when there is one.
    const names = node.entries.map(([k]) => textOf(k)).filter((n): n is string => n !== undefined)
    for (const name of names) {
      const other = field(donor.k === 'env' ? donor.body : donor, name)
      if (other !== undefined && r.chance(0.5)) {
        return {
          ...node,
          entries: node.entries.map(([k, v]) => (textOf(k) === name ? [k, other] : [k, v])),
        }
      }
    }
  }
  return randomNode(donor, r)
}

function resign(root: Node, r: SimRandom): Node {
  // Find an envelope on a random descent (the root one most often).
  const path: Step[] = []
  let node = root
  const envelopes: Step[][] = []
  for (let depth = 0; depth < 12; depth++) {
    if (node.k === 'env') envelopes.push([...path])
    const children = childrenOf(node, r)
    if (children.length === 0) break
    const child = r.pick(children)
    path.push(child.step)
    node = child.node
  }
  if (envelopes.length === 0) return root
  const target = r.chance(0.6) ? envelopes[0]! : r.pick(envelopes)
  const policy = r.pick<SealPolicy>([
    'other-key',
    'other-key',
    'other-domain',
    'right',
    'zero',
    'random',
    'short',
  ])
  return replaceAt(
    root,
    target,
    env => (env.k === 'env' ? { ...env, seal: policy } : env),
    above => (above === 0 ? 'right' : r.chance(0.7) ? 'right' : 'keep'),
  )
}

/**
 * Replaces a certificate carried in a signed body by another identity's certificate and signs the body
 * with that identity's key: a genuine message of another identity that claims the original's name.
 */
function identitySwap(root: Node, r: SimRandom, ctx: MutationContext): Node {
  if (root.k !== 'env' || root.body.k !== 'map') return root
  const index = root.body.entries.findIndex(([, v]) => v.k === 'wrapped')
  if (index < 0) return resign(root, r)
  const swap = r.pick(ctx.certificates)
  const entries = [...root.body.entries]
  entries[index] = [entries[index]![0], swap.node]
  const signer = root.signer === undefined ? undefined : { domain: root.signer.domain, keyId: swap.keyId }
  return {
    ...root,
    body: { ...root.body, entries },
    seal: 'right',
    ...(signer !== undefined ? { signer } : {}),
  } as EnvelopeNode
}

function innerBytes(node: Node, r: SimRandom, ctx: MutationContext, sealer: Sealer): Node {
  let content: Uint8Array
  if (node.k === 'wrapped') content = serialize(node.env, sealer)
  else if (node.k === 'bytes' || node.k === 'text') content = node.v
  else return node
  const mutated = byteMutation(r.pick(BYTE_KINDS), content, ctx, r)
  return node.k === 'text' ? { k: 'text', v: mutated } : { k: 'bytes', v: mutated }
}

// ---------------------------------------------------------------------------------------------------
// Byte mutations.

const INTERESTING_BYTES = [
  0x00, 0x01, 0x17, 0x18, 0x19, 0x1a, 0x1b, 0x1c, 0x1f, 0x20, 0x3f, 0x40, 0x57, 0x5f, 0x60, 0x7f, 0x80, 0x9f,
  0xa0, 0xbf, 0xc0, 0xc2, 0xd8, 0xdf, 0xe0, 0xf4, 0xf5, 0xf6, 0xf7, 0xf8, 0xf9, 0xfa, 0xfb, 0xff,
]

function concat(...parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((sum, part) => sum + part.byteLength, 0))
  let at = 0
  for (const part of parts) {
    out.set(part, at)
    at += part.byteLength
  }
  return out
}

function byteMutation(kind: string, input: Uint8Array, ctx: MutationContext, r: SimRandom): Uint8Array {
  const bytes = Uint8Array.from(input)
  const at = () => r.int(0, Math.max(0, bytes.byteLength - 1))
  switch (kind) {
    case 'bit-flip': {
      if (bytes.byteLength === 0) return Uint8Array.of(r.int(0, 255))
      for (let n = r.int(1, 8); n > 0; n--) {
        const i = at()
        bytes[i] = (bytes[i] ?? 0) ^ (1 << r.int(0, 7))
      }
      return bytes
    }
    case 'byte-set': {
      if (bytes.byteLength === 0) return Uint8Array.of(r.pick(INTERESTING_BYTES))
      for (let n = r.int(1, 4); n > 0; n--) bytes[at()] = r.pick(INTERESTING_BYTES)
      return bytes
    }
    case 'truncate': {
      const length = r.chance(0.5) ? Math.max(0, bytes.byteLength - r.int(1, 8)) : r.int(0, bytes.byteLength)
      return bytes.slice(0, length)
    }
    case 'extend': {
      const tail = r.pick<() => Uint8Array>([
        () => Uint8Array.of(0x00),
        () => randomBytes(r, r.int(1, 16)),
        () => bytes,
        () => Uint8Array.of(0xff),
      ])()
      return concat(bytes, tail)
    }
    case 'splice': {
      const donor = r.pick(ctx.seeds)
      const other = typeof donor.input === 'string' ? new TextEncoder().encode(donor.input) : donor.input
      const from = r.int(0, other.byteLength)
      const piece = other.subarray(from, from + r.int(1, 64))
      const start = r.int(0, bytes.byteLength)
      const end = Math.min(bytes.byteLength, start + r.int(0, 64))
      return concat(bytes.subarray(0, start), piece, bytes.subarray(end))
    }
    case 'insert': {
      const start = r.int(0, bytes.byteLength)
      const piece = r.chance(0.5) ? randomBytes(r, r.int(1, 8)) : Uint8Array.of(r.pick(INTERESTING_BYTES))
      return concat(bytes.subarray(0, start), piece, bytes.subarray(start))
    }
    case 'delete': {
      const start = r.int(0, bytes.byteLength)
      const end = Math.min(bytes.byteLength, start + r.int(1, 16))
      return concat(bytes.subarray(0, start), bytes.subarray(end))
    }
    default:
      throw new Error(`unknown byte mutation ${kind}`)
  }
}

// ---------------------------------------------------------------------------------------------------
// Text mutations.

const CHARS = [
  ...'abcxyzAZ09_-.:=!/*?()[]{}|^$+\\"\' \t\n',
  'é',
  '😀',
  '\u0000',
  '\u00a0',
  '\u2028',
  '\ud800',
]
const TOKENS = [
  ' and ',
  ' or ',
  'not ',
  ' AND ',
  '(',
  ')',
  '=',
  '!=',
  '"',
  "'",
  '/',
  '*',
  '?',
  '+',
  '{2,}',
  '{0,99999}',
  '|',
  '\\',
  '\\/',
  '.*',
  '(a+)+',
  '(a|aa)*',
  '[a-z]*',
  'a*',
  'a*a*',
  '^',
  '$',
  'zone=',
  'name=',
  '\\1',
  '\\k<n>',
  '(?:',
  '(?=',
  '(?<n>',
  '[',
  ']',
  'not '.repeat(17),
  '('.repeat(17),
  ')'.repeat(17),
  ' and a=b'.repeat(70),
  '/x/ or z=/y/ or z=/w/ or z=/v/ or z=/u/ or z=/t/ or z=/s/ or z=/r/ or z=/q/',
]

function textMutation(kind: string, input: string, r: SimRandom): string {
  const chars = [...input]
  const at = () => r.int(0, chars.length)
  switch (kind) {
    case 'char-flip': {
      if (chars.length === 0) return r.pick(CHARS)
      for (let n = r.int(1, 3); n > 0; n--) chars[Math.min(at(), chars.length - 1)] = r.pick(CHARS)
      return chars.join('')
    }
    case 'char-insert': {
      chars.splice(at(), 0, r.pick(CHARS))
      return chars.join('')
    }
    case 'char-delete': {
      chars.splice(at(), r.int(1, 4))
      return chars.join('')
    }
    case 'token-insert': {
      chars.splice(at(), 0, r.pick(TOKENS))
      return chars.join('')
    }
    case 'text-truncate':
      return chars.slice(0, at()).join('')
    default:
      throw new Error(`unknown text mutation ${kind}`)
  }
}

function ticketMutation(kind: string, line: string, r: SimRandom): string {
  const dot = line.indexOf('.')
  const body = dot >= 0 ? line.slice(dot + 1) : line
  switch (kind) {
    case 'prefix':
      return r.pick(['mesh1.', 'mesh3.', 'Mesh2.', 'mesh2', 'mesh22.', '', 'mesh02.', 'mesh2..']) + body
    case 'whitespace':
      return r.pick([
        ` ${line}`,
        `${line}\n`,
        `\t${line}\r\n`,
        `${line.slice(0, 20)} ${line.slice(20)}`,
        `${line}\u00a0`,
        `\u2028${line}`,
      ])
    case 'base64': {
      if (body.length === 0) return `${line}=`
      const last = body[body.length - 1]!
      const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_'
      return r.pick([
        `${line}=`,
        `${line}==`,
        line.replace(/-/g, '+'),
        line.replace(/_/g, '/'),
        `${line.slice(0, -1)}${alphabet[(alphabet.indexOf(last) + 1) % 64]}`,
        `${line.slice(0, -1)}${alphabet[alphabet.indexOf(last) ^ 1] ?? 'A'}`,
        line.slice(0, -1),
        `${line}A`,
      ])
    }
    default:
      throw new Error(`unknown ticket mutation ${kind}`)
  }
}
