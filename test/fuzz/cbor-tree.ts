/**
 * The fuzzer's own CBOR: a parser that keeps everything about an encoding (key order, integer widths,
 * the exact UTF-8 bytes of texts) and a serializer that can write any of it back, canonical or not
 * (non-shortest heads, indefinite lengths, duplicate keys, floats, tags, simple values, raw bytes
 * spliced in verbatim). Signed envelopes (`{ body, sig }` / `{ body, mac }`) are parsed into
 * {@link EnvelopeNode}s, also when they travel inside a byte string, so a mutation can reach a
 * certificate inside a request and the envelopes around it can be re-sealed by a chosen policy.
 *
 * A second implementation on purpose: the corpus self-check (parse, then serialize, must give the
 * original bytes) cross-checks cborg's canonical encoder, and the serializer can write what cborg
 * refuses to.
 */

/** How an envelope whose body changed gets its authenticator back. */
export type SealPolicy =
  /** The original signature or MAC (no longer matches a changed body). */
  | 'keep'
  /** The key (or secret) and domain that signed the original: a genuine authenticator. */
  | 'right'
  /** Another key of the key ring (or another secret), same domain. */
  | 'other-key'
  /** The right key under another domain. */
  | 'other-domain'
  /** An authenticator of the right length that is all zeros, or random. */
  | 'zero'
  | 'random'
  /** One byte short. */
  | 'short'

/** Who authenticated an envelope (found by trying the key ring on the corpus). */
export interface Signer {
  readonly domain: string
  /** Hex of the public key (signatures) or of the secret (MACs). */
  readonly keyId: string
}

/** One node of the tree. Integers are bigints; texts keep their bytes (which may be invalid UTF-8). */
export type Node =
  | { readonly k: 'int'; readonly v: bigint; readonly w?: HeadWidth }
  | { readonly k: 'bytes'; readonly v: Uint8Array; readonly w?: HeadWidth; readonly chunks?: number }
  | { readonly k: 'text'; readonly v: Uint8Array; readonly w?: HeadWidth; readonly chunks?: number }
  | {
      readonly k: 'array'
      readonly items: readonly Node[]
      readonly w?: HeadWidth
      readonly indefinite?: boolean
    }
  | {
      readonly k: 'map'
      readonly entries: readonly (readonly [Node, Node])[]
      readonly w?: HeadWidth
      readonly indefinite?: boolean
    }
  | { readonly k: 'simple'; readonly v: number }
  | { readonly k: 'float'; readonly v: number; readonly bits: 16 | 32 | 64 }
  | { readonly k: 'tag'; readonly tag: bigint; readonly item: Node }
  | { readonly k: 'raw'; readonly v: Uint8Array }
  | EnvelopeNode
  | { readonly k: 'wrapped'; readonly env: EnvelopeNode }

/** A signed or MACed envelope: the outer map, its authenticator and its (parsed) body. */
export interface EnvelopeNode {
  readonly k: 'env'
  readonly tagKey: 'sig' | 'mac'
  readonly tag: Uint8Array
  readonly body: Node
  readonly signer?: Signer
  /** Set by a mutation: how to authenticate the body when serialized. Absent: keep the original. */
  readonly seal?: SealPolicy
}

/** A head's argument width: 0 means shortest (canonical), else that many bytes (1, 2, 4, 8). */
export type HeadWidth = 0 | 1 | 2 | 4 | 8

const encoder = new TextEncoder()
const decoder = new TextDecoder()

/** Text node from a JS string. */
export function text(value: string): Node {
  return { k: 'text', v: encoder.encode(value) }
}

/** The JS string of a text node (replacement characters for invalid UTF-8). */
export function textOf(node: Node): string | undefined {
  return node.k === 'text' ? decoder.decode(node.v) : undefined
}

/** Integer node. */
export function int(value: number | bigint): Node {
  return { k: 'int', v: BigInt(value) }
}

/** Thrown by {@link parse} on bytes that are not one well-formed CBOR item. */
export class TreeParseError extends Error {}

/**
 * Parses one CBOR item (the whole input). Byte strings that hold an envelope are parsed into
 * {@link EnvelopeNode}s when `envelopes` is true.
 * @throws TreeParseError
 */
export function parse(bytes: Uint8Array, envelopes = true): Node {
  const state = { bytes, pos: 0 }
  const node = readItem(state, envelopes, 0)
  if (state.pos !== bytes.byteLength) throw new TreeParseError('trailing bytes')
  return envelopes ? asEnvelope(node, true) : node
}

interface ParseState {
  readonly bytes: Uint8Array
  pos: number
}

function readHead(s: ParseState): { major: number; info: number; arg: bigint } {
  const first = s.bytes[s.pos++]
  if (first === undefined) throw new TreeParseError('truncated')
  const major = first >> 5
  const info = first & 0x1f
  if (info < 24) return { major, info, arg: BigInt(info) }
  if (info === 31) return { major, info, arg: -1n }
  const size = info === 24 ? 1 : info === 25 ? 2 : info === 26 ? 4 : info === 27 ? 8 : 0
  if (size === 0) throw new TreeParseError('reserved additional info')
  if (s.pos + size > s.bytes.byteLength) throw new TreeParseError('truncated')
  let arg = 0n
  for (let i = 0; i < size; i++) arg = (arg << 8n) | BigInt(s.bytes[s.pos++] ?? 0)
  return { major, info, arg }
}

function readItem(s: ParseState, envelopes: boolean, depth: number): Node {
  if (depth > 256) throw new TreeParseError('too deep')
  const { major, info, arg } = readHead(s)
  if (info === 31 && major !== 7) throw new TreeParseError('indefinite length')
  switch (major) {
    case 0:
      return { k: 'int', v: arg }
    case 1:
      return { k: 'int', v: -1n - arg }
    case 2:
    case 3: {
      const length = Number(arg)
      if (s.pos + length > s.bytes.byteLength) throw new TreeParseError('truncated')
      const v = s.bytes.subarray(s.pos, s.pos + length)
      s.pos += length
      if (major === 3) return { k: 'text', v }
      return envelopes ? bytesMaybeEnvelope(v) : { k: 'bytes', v }
    }
    case 4: {
      const items: Node[] = []
      for (let i = 0n; i < arg; i++) items.push(readItem(s, envelopes, depth + 1))
      return { k: 'array', items }
    }
    case 5: {
      const entries: [Node, Node][] = []
      for (let i = 0n; i < arg; i++) {
        const key = readItem(s, envelopes, depth + 1)
        entries.push([key, readItem(s, envelopes, depth + 1)])
      }
      return { k: 'map', entries }
    }
    case 6:
      return { k: 'tag', tag: arg, item: readItem(s, envelopes, depth + 1) }
    default: {
      if (info < 24) return { k: 'simple', v: info }
      if (info === 24) return { k: 'simple', v: Number(arg) }
      const view = new DataView(new ArrayBuffer(8))
      if (info === 25) return { k: 'float', v: halfToNumber(Number(arg)), bits: 16 }
      if (info === 26) {
        view.setUint32(0, Number(arg))
        return { k: 'float', v: view.getFloat32(0), bits: 32 }
      }
      if (info === 27) {
        view.setBigUint64(0, arg)
        return { k: 'float', v: view.getFloat64(0), bits: 64 }
      }
      throw new TreeParseError('break outside indefinite item')
    }
  }
}

function halfToNumber(half: number): number {
  const exponent = (half >> 10) & 0x1f
  const fraction = half & 0x3ff
  const sign = half & 0x8000 ? -1 : 1
  if (exponent === 0) return sign * 2 ** -14 * (fraction / 1024)
  if (exponent === 31) return fraction === 0 ? sign * Number.POSITIVE_INFINITY : Number.NaN
  return sign * 2 ** (exponent - 15) * (1 + fraction / 1024)
}

/** A byte string that holds a whole envelope becomes `wrapped`; anything else stays bytes. */
function bytesMaybeEnvelope(v: Uint8Array): Node {
  if (v.byteLength < 8 || (v[0] ?? 0) !== 0xa2) return { k: 'bytes', v }
  try {
    const inner = parse(v, true)
    if (inner.k === 'env') return { k: 'wrapped', env: inner }
  } catch {
    // Not CBOR: plain bytes.
  }
  return { k: 'bytes', v }
}

/** A two-entry map `{ sig|mac: bytes, body: bytes(map) }` in canonical order becomes an envelope. */
function asEnvelope(node: Node, top: boolean): Node {
  if (!top || node.k !== 'map' || node.entries.length !== 2) return node
  const [first, second] = node.entries
  if (first === undefined || second === undefined) return node
  const tagKey = textOf(first[0])
  if ((tagKey !== 'sig' && tagKey !== 'mac') || textOf(second[0]) !== 'body') return node
  const tag = first[1]
  const body = second[1]
  if (tag.k !== 'bytes') return node
  const bodyBytes = body.k === 'bytes' ? body.v : undefined
  if (bodyBytes === undefined) return node
  let parsedBody: Node
  try {
    parsedBody = parse(bodyBytes, true)
  } catch {
    return node
  }
  if (parsedBody.k !== 'map') return node
  return { k: 'env', tagKey, tag: tag.v, body: parsedBody }
}

/** How {@link serialize} authenticates a re-sealed envelope body (the key ring lives in world.ts). */
export type Sealer = (env: EnvelopeNode, bodyBytes: Uint8Array) => Uint8Array

const cache = new WeakMap<object, Uint8Array>()
const templates = new WeakSet<object>()

/** Marks every node of a parsed template, so that {@link serialize} caches their bytes (and only theirs). */
export function markTemplate(node: Node): void {
  templates.add(node)
  switch (node.k) {
    case 'array':
      for (const item of node.items) markTemplate(item)
      return
    case 'map':
      for (const [k, v] of node.entries) {
        markTemplate(k)
        markTemplate(v)
      }
      return
    case 'env':
      markTemplate(node.body)
      return
    case 'wrapped':
      markTemplate(node.env)
      return
    case 'tag':
      markTemplate(node.item)
      return
    default:
      return
  }
}

/**
 * Writes a tree back to bytes. Unchanged subtrees (the same objects as a parsed template, see
 * {@link markTemplate}) come from a cache, so a mutated copy of a large document costs only its changed
 * path. Envelopes whose body is the parsed original and that carry no seal policy keep their exact
 * original bytes.
 */
export function serialize(node: Node, sealer: Sealer): Uint8Array {
  const out = new ByteWriter()
  write(node, out, sealer)
  return out.finish()
}

function write(node: Node, out: ByteWriter, sealer: Sealer): void {
  const cached = cache.get(node)
  if (cached !== undefined) {
    out.push(cached)
    return
  }
  const start = out.length
  writeUncached(node, out, sealer)
  // Only the template's nodes are reused from case to case.
  if (templates.has(node)) cache.set(node, out.slice(start))
}

function writeUncached(node: Node, out: ByteWriter, sealer: Sealer): void {
  switch (node.k) {
    case 'int':
      if (node.v >= 0n) head(out, 0, node.v, node.w)
      else head(out, 1, -1n - node.v, node.w)
      return
    case 'bytes':
    case 'text': {
      const major = node.k === 'bytes' ? 2 : 3
      if (node.chunks !== undefined && node.chunks > 0) {
        out.byte((major << 5) | 31)
        const size = Math.max(1, Math.ceil(node.v.byteLength / node.chunks))
        for (let i = 0; i < node.v.byteLength; i += size) {
          const chunk = node.v.subarray(i, i + size)
          head(out, major, BigInt(chunk.byteLength), 0)
          out.push(chunk)
        }
        out.byte(0xff)
        return
      }
      head(out, major, BigInt(node.v.byteLength), node.w)
      out.push(node.v)
      return
    }
    case 'array':
      if (node.indefinite === true) out.byte(0x9f)
      else head(out, 4, BigInt(node.items.length), node.w)
      for (const item of node.items) write(item, out, sealer)
      if (node.indefinite === true) out.byte(0xff)
      return
    case 'map':
      if (node.indefinite === true) out.byte(0xbf)
      else head(out, 5, BigInt(node.entries.length), node.w)
      for (const [key, value] of node.entries) {
        write(key, out, sealer)
        write(value, out, sealer)
      }
      if (node.indefinite === true) out.byte(0xff)
      return
    case 'simple':
      if (node.v < 24) out.byte(0xe0 | node.v)
      else {
        out.byte(0xf8)
        out.byte(node.v & 0xff)
      }
      return
    case 'float': {
      const view = new DataView(new ArrayBuffer(8))
      if (node.bits === 64) {
        out.byte(0xfb)
        view.setFloat64(0, node.v)
        out.push(new Uint8Array(view.buffer, 0, 8))
      } else if (node.bits === 32) {
        out.byte(0xfa)
        view.setFloat32(0, node.v)
        out.push(new Uint8Array(view.buffer, 0, 4))
      } else {
        const half = halfBits(node.v)
        if (half === undefined) {
          out.byte(0xfa)
          view.setFloat32(0, node.v)
          out.push(new Uint8Array(view.buffer, 0, 4))
        } else {
          out.byte(0xf9)
          out.byte(half >> 8)
          out.byte(half & 0xff)
        }
      }
      return
    }
    case 'tag':
      head(out, 6, node.tag, 0)
      write(node.item, out, sealer)
      return
    case 'raw':
      out.push(node.v)
      return
    case 'wrapped': {
      const inner = serialize(node.env, sealer)
      head(out, 2, BigInt(inner.byteLength), 0)
      out.push(inner)
      return
    }
    case 'env': {
      const bodyBytes = serialize(node.body, sealer)
      const tag = sealer(node, bodyBytes)
      // Canonical order is length-first: `sig`/`mac` (3) before `body` (4).
      out.byte(0xa2)
      write(text(node.tagKey), out, sealer)
      head(out, 2, BigInt(tag.byteLength), 0)
      out.push(tag)
      write(text('body'), out, sealer)
      head(out, 2, BigInt(bodyBytes.byteLength), 0)
      out.push(bodyBytes)
      return
    }
  }
}

/** Half-precision bits of the few values the mutations write as halves; others are written as float32. */
const HALVES = new Map<string, number>([
  ['0', 0x0000],
  ['-0', 0x8000],
  ['1', 0x3c00],
  ['1.5', 0x3e00],
  ['-1', 0xbc00],
  ['65504', 0x7bff],
  ['Infinity', 0x7c00],
  ['-Infinity', 0xfc00],
  ['NaN', 0x7e00],
])

function halfBits(value: number): number | undefined {
  return HALVES.get(Object.is(value, -0) ? '-0' : String(value))
}

function head(out: ByteWriter, major: number, arg: bigint, width: HeadWidth = 0): void {
  const size =
    width !== 0 ? width : arg < 24n ? 0 : arg < 0x100n ? 1 : arg < 0x10000n ? 2 : arg < 0x100000000n ? 4 : 8
  if (size === 0) {
    out.byte((major << 5) | Number(arg))
    return
  }
  out.byte((major << 5) | (size === 1 ? 24 : size === 2 ? 25 : size === 4 ? 26 : 27))
  for (let i = size - 1; i >= 0; i--) out.byte(Number((arg >> BigInt(8 * i)) & 0xffn))
}

/**
 * Largest input the writer produces: above every decoder's limit (the largest, the issuer state's, is
 * 16 MiB). Stacked oversize mutations could otherwise ask for gigabytes (2 MB fields in a list of
 * 16,385); the bytes beyond are dropped, which leaves an input that is still too large.
 */
export const WRITTEN_BYTES_MAX = 17 * 1024 * 1024

/** Growable byte buffer, capped at {@link WRITTEN_BYTES_MAX}. */
class ByteWriter {
  private buffer = new Uint8Array(256)
  length = 0

  private room(extra: number): void {
    if (this.length + extra <= this.buffer.byteLength) return
    let size = this.buffer.byteLength * 2
    while (size < this.length + extra) size *= 2
    const next = new Uint8Array(size)
    next.set(this.buffer.subarray(0, this.length))
    this.buffer = next
  }

  byte(value: number): void {
    if (this.length >= WRITTEN_BYTES_MAX) return
    this.room(1)
    this.buffer[this.length++] = value & 0xff
  }

  push(bytes: Uint8Array): void {
    const room = WRITTEN_BYTES_MAX - this.length
    if (room <= 0) return
    const part = bytes.byteLength > room ? bytes.subarray(0, room) : bytes
    this.room(part.byteLength)
    this.buffer.set(part, this.length)
    this.length += part.byteLength
  }

  slice(start: number): Uint8Array {
    return this.buffer.slice(start, this.length)
  }

  finish(): Uint8Array {
    return this.buffer.slice(0, this.length)
  }
}

/** Canonical map order (length-first, then bytewise, on the encoded keys), as cborg writes it. */
export function canonicalKeyOrder(a: Node, b: Node): number {
  const ka = serialize(a, () => new Uint8Array())
  const kb = serialize(b, () => new Uint8Array())
  if (ka.byteLength !== kb.byteLength) return ka.byteLength - kb.byteLength
  for (let i = 0; i < ka.byteLength; i++) {
    const d = (ka[i] ?? 0) - (kb[i] ?? 0)
    if (d !== 0) return d
  }
  return 0
}

/** One step of a path from the root to a node. */
export type Step =
  | { readonly at: 'item'; readonly index: number }
  | { readonly at: 'key' | 'value'; readonly index: number }
  | { readonly at: 'body' }
  | { readonly at: 'env' }
  | { readonly at: 'tagged' }

/** A node together with the path that reaches it. */
export interface Located {
  readonly node: Node
  readonly path: readonly Step[]
}

/** Every node of the tree with its path (the root first), at most `limit` of them. */
export function positions(root: Node, limit = 4096): Located[] {
  const cached = positionCache.get(root)
  if (cached !== undefined) return cached
  const out: Located[] = []
  const walk = (node: Node, path: Step[]): void => {
    if (out.length >= limit) return
    out.push({ node, path })
    switch (node.k) {
      case 'array':
        node.items.forEach((item, index) => {
          walk(item, [...path, { at: 'item', index }])
        })
        return
      case 'map':
        node.entries.forEach(([key, value], index) => {
          walk(key, [...path, { at: 'key', index }])
          walk(value, [...path, { at: 'value', index }])
        })
        return
      case 'env':
        walk(node.body, [...path, { at: 'body' }])
        return
      case 'wrapped':
        walk(node.env, [...path, { at: 'env' }])
        return
      case 'tag':
        walk(node.item, [...path, { at: 'tagged' }])
        return
      default:
        return
    }
  }
  walk(root, [])
  positionCache.set(root, out)
  return out
}

const positionCache = new WeakMap<Node, Located[]>()

/**
 * Replaces the node at `path` by `replace(node)`, copying only the nodes on the path. Envelopes on the
 * path are given the seal policy `sealOf(depthFromTarget)` (0 for the innermost envelope).
 */
export function replaceAt(
  root: Node,
  path: readonly Step[],
  replace: (node: Node) => Node,
  sealOf: (envelopesAbove: number) => SealPolicy,
): Node {
  let envelopesSeen = 0
  const go = (node: Node, depth: number): Node => {
    if (depth === path.length) return replace(node)
    const step = path[depth]!
    let next: Node
    switch (step.at) {
      case 'item': {
        const item = node.k === 'array' ? node.items[step.index] : undefined
        if (node.k !== 'array' || item === undefined) return node
        const items = [...node.items]
        items[step.index] = go(item, depth + 1)
        next = { ...node, items }
        break
      }
      case 'key':
      case 'value': {
        const entry = node.k === 'map' ? node.entries[step.index] : undefined
        if (node.k !== 'map' || entry === undefined) return node
        const entries = [...node.entries]
        const [key, value] = entry
        entries[step.index] = step.at === 'key' ? [go(key, depth + 1), value] : [key, go(value, depth + 1)]
        next = { ...node, entries }
        break
      }
      case 'body': {
        if (node.k !== 'env') return node
        const body = go(node.body, depth + 1)
        const seal = sealOf(envelopesSeen++)
        next = { ...node, body, seal }
        break
      }
      case 'env': {
        if (node.k !== 'wrapped') return node
        const inner = go(node.env, depth + 1)
        next = inner.k === 'env' ? { ...node, env: inner } : inner
        break
      }
      case 'tagged': {
        if (node.k !== 'tag') return node
        next = { ...node, item: go(node.item, depth + 1) }
        break
      }
    }
    return next
  }
  return go(root, 0)
}

/** The node at `path`, or undefined when the path does not fit the tree. */
export function nodeAt(root: Node, path: readonly Step[]): Node | undefined {
  let node: Node | undefined = root
  for (const step of path) {
    if (node === undefined) return undefined
    switch (step.at) {
      case 'item':
        node = node.k === 'array' ? node.items[step.index] : undefined
        break
      case 'key':
      case 'value': {
        const entry: readonly [Node, Node] | undefined =
          node.k === 'map' ? node.entries[step.index] : undefined
        node = entry === undefined ? undefined : step.at === 'key' ? entry[0] : entry[1]
        break
      }
      case 'body':
        node = node.k === 'env' ? node.body : undefined
        break
      case 'env':
        node = node.k === 'wrapped' ? node.env : undefined
        break
      case 'tagged':
        node = node.k === 'tag' ? node.item : undefined
        break
    }
  }
  return node
}

/** The value of `key` in a map node. */
export function field(node: Node | undefined, key: string): Node | undefined {
  if (node === undefined || node.k !== 'map') return undefined
  return node.entries.find(([k]) => textOf(k) === key)?.[1]
}
