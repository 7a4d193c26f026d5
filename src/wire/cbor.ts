/**
 * Deterministic CBOR for everything that is signed or hashed.
 *
 * Encoding uses cborg's canonical rules (shortest integers, map keys sorted length-first, no
 * indefinite lengths). Decoding is strict: it refuses undefined, indefinite lengths, duplicate map
 * keys and non-shortest integers, and every decode is bounded by a byte limit before it starts and by
 * {@link NESTING_DEPTH_MAX} while it runs, so random bytes produce a typed {@link DecodeError}, never
 * a crash. {@link decodeCanonicalCbor} goes further and accepts only the one deterministic encoding of
 * a value (map keys in canonical order included), for bytes whose exact form matters: the signed
 * envelope and its body.
 *
 * {@link DecodeError} is the one error of the wire layer: the field readers in fields.ts throw it too.
 */
import { type DecodeOptions, decode, encode, type Token, Tokenizer } from 'cborg'

/** A value that can be CBOR-encoded deterministically. Floats are deliberately absent: use integers. */
export type CborValue =
  | null
  | boolean
  | number
  | bigint
  | string
  | Uint8Array
  | CborValue[]
  | { [key: string]: CborValue | undefined }

/**
 * Raised when bytes are not a well-formed, canonical CBOR item within the size limit, or (from the
 * field readers) when a decoded field is missing, of the wrong type or out of range.
 */
export class DecodeError extends Error {
  override name = 'DecodeError'
  readonly code: 'too-large' | 'malformed'
  constructor(code: 'too-large' | 'malformed', message: string) {
    super(message)
    this.code = code
  }
}

/**
 * Deepest nesting of arrays, maps and tags any decode accepts (the deepest mesh format nests five).
 * Without it a few kilobytes of nested arrays reach the JavaScript stack limit, and decoding and
 * re-encoding a thousand nested maps took 20-60 ms (found by the fuzz campaign, docs/fuzz.md).
 */
export const NESTING_DEPTH_MAX = 16

/** Thrown inside the tokenizer when a decode reads more items than allowed; passed on as is. */
class ItemsExceeded extends Error {}

/** One open array, map or tag: the items still to come, and for maps the last key's UTF-8 bytes. */
interface OpenItem {
  left: number
  readonly map: boolean
  lastKey?: Uint8Array
}

const utf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true })

/**
 * cborg's tokenizer, bounded by {@link NESTING_DEPTH_MAX} and, for canonical decoding, checking as it
 * goes what only the deterministic encoding satisfies beyond cborg's strict mode (which already
 * refuses non-shortest heads, indefinite lengths, duplicate keys, tags and simple values): map keys in
 * canonical order (length-first, then bytewise) and none named `__proto__`, texts of valid UTF-8 that
 * do not start with a byte order mark (the decoder would drop it or replace bad bytes, so the value
 * would not spell the bytes), and no floats (no mesh format has any; an integral float would re-encode
 * as an integer). Exactly the bytes that re-encode to themselves, less the floats.
 */
class CheckingTokenizer {
  private readonly inner: Tokenizer
  private readonly open: OpenItem[] = []
  private items = 0
  constructor(
    private readonly bytes: Uint8Array,
    options: DecodeOptions,
    private readonly canonical: boolean,
    private readonly itemsMax: number,
  ) {
    this.inner = new Tokenizer(bytes, options)
  }
  done(): boolean {
    return this.inner.done()
  }
  pos(): number {
    return this.inner.pos()
  }
  next(): Token {
    if (++this.items > this.itemsMax) throw new ItemsExceeded(`more than ${this.itemsMax} items`)
    const at = this.inner.pos()
    const token = this.inner.next()
    const major = token.type.major
    const open = this.open
    const top = open[open.length - 1]
    if (this.canonical) this.check(token, at, top)
    if (top !== undefined) top.left--
    const items = major === 4 ? token.value : major === 5 ? 2 * token.value : major === 6 ? 1 : 0
    if (items > 0) {
      if (open.length >= NESTING_DEPTH_MAX) throw new Error(`nested deeper than ${NESTING_DEPTH_MAX}`)
      open.push({ left: items, map: major === 5 })
    } else {
      while (open.length > 0 && open[open.length - 1]!.left === 0) open.pop()
    }
    return token
  }

  private check(token: Token, at: number, top: OpenItem | undefined): void {
    const major = token.type.major
    if (major === 7 && token.type.name === 'float') throw new Error('floats are not canonical here')
    if (major !== 3) return
    const info = (this.bytes[at] ?? 0) & 0x1f
    const head = info < 24 ? 1 : info === 24 ? 2 : info === 25 ? 3 : info === 26 ? 5 : 9
    const text = this.bytes.subarray(at + head, at + (token.encodedLength ?? 0))
    let ascii = true
    for (let i = 0; i < text.byteLength; i++) {
      if ((text[i] ?? 0) >= 0x80) {
        ascii = false
        break
      }
    }
    if (!ascii) {
      if (text[0] === 0xef && text[1] === 0xbb && text[2] === 0xbf) throw new Error('text starts with a BOM')
      try {
        utf8.decode(text)
      } catch {
        throw new Error('text is not valid UTF-8')
      }
    }
    // A map's slots alternate key, value: with an even count left, this text is a key.
    if (top?.map === true && top.left % 2 === 0) {
      const last = top.lastKey
      if (last !== undefined && !keyFollows(last, text))
        throw new Error('map keys are not in canonical order')
      // encodeCbor cannot write it back: assigning `__proto__` sets the prototype, not a field.
      if (token.value === '__proto__') throw new Error('a map key __proto__ does not re-encode')
      top.lastKey = text
    }
  }
}

/** True when `key` sorts strictly after `last` in canonical (length-first, then bytewise) order. */
function keyFollows(last: Uint8Array, key: Uint8Array): boolean {
  if (last.byteLength !== key.byteLength) return last.byteLength < key.byteLength
  for (let i = 0; i < key.byteLength; i++) {
    const d = (key[i] ?? 0) - (last[i] ?? 0)
    if (d !== 0) return d > 0
  }
  return false
}

const decodeOptions = {
  strict: true,
  allowUndefined: false,
  allowIndefinite: false,
  allowInfinity: false,
  allowNaN: false,
  rejectDuplicateMapKeys: true,
  useMaps: false,
} as const

/** Encodes `value` canonically. Object properties whose value is `undefined` are omitted. */
export function encodeCbor(value: CborValue): Uint8Array {
  return encode(stripUndefined(value))
}

/**
 * Decodes one CBOR item of at most `bytesMax` bytes and at most `itemsMax` data items (every integer,
 * string, array, map and map key counts one). A format whose messages hold few items passes a small
 * bound, so a hostile message of the same size cannot take longer to decode than a real one: a 2.6 MB
 * hello of tiny maps took 290-390 ms to decode before the hello had a bound (docs/fuzz.md).
 * @throws DecodeError with code `too-large` or `malformed`
 */
export function decodeCbor(
  bytes: Uint8Array,
  bytesMax: number,
  itemsMax = Number.POSITIVE_INFINITY,
): unknown {
  if (bytes.byteLength > bytesMax) {
    throw new DecodeError('too-large', `${bytes.byteLength} bytes exceeds the limit of ${bytesMax}`)
  }
  return decodeChecked(bytes, false, itemsMax)
}

function decodeChecked(bytes: Uint8Array, canonical: boolean, itemsMax: number): unknown {
  // A plain view, as cborg makes of a Buffer itself: byte strings decoded from a Buffer would be Buffers.
  const view =
    bytes.constructor === Uint8Array
      ? bytes
      : new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength)
  try {
    const tokenizer = new CheckingTokenizer(view, decodeOptions, canonical, itemsMax)
    return decode(view, { ...decodeOptions, tokenizer })
  } catch (err) {
    if (err instanceof ItemsExceeded) throw new DecodeError('too-large', err.message)
    throw new DecodeError('malformed', `not canonical CBOR: ${(err as Error).message}`)
  }
}

/**
 * Like {@link decodeCbor}, and also refuses bytes that are not byte-identical to the deterministic
 * encoding of what they decode to (e.g. a map whose keys are not in canonical order), so one value
 * has exactly one accepted encoding. Floats are refused (a {@link CborValue} has none).
 *
 * Checked while decoding rather than by re-encoding and comparing: re-encoding made canonical decoding
 * three to ten times as slow as decoding (16 ms instead of 1.6 ms for a 12 KB map of 1,300 entries,
 * found by the fuzz campaign, docs/fuzz.md); the campaign checks that both agree. `itemsMax` as for
 * {@link decodeCbor}.
 * @throws DecodeError with code `too-large` or `malformed`
 */
export function decodeCanonicalCbor(
  bytes: Uint8Array,
  bytesMax: number,
  itemsMax = Number.POSITIVE_INFINITY,
): unknown {
  if (bytes.byteLength > bytesMax) {
    throw new DecodeError('too-large', `${bytes.byteLength} bytes exceeds the limit of ${bytesMax}`)
  }
  return decodeChecked(bytes, true, itemsMax)
}

function stripUndefined(value: CborValue): CborValue {
  if (Array.isArray(value)) return value.map(stripUndefined)
  if (value !== null && typeof value === 'object' && !(value instanceof Uint8Array)) {
    const out: { [key: string]: CborValue } = {}
    for (const [k, v] of Object.entries(value)) if (v !== undefined) out[k] = stripUndefined(v)
    return out
  }
  return value
}

/** Type guard for plain decoded CBOR maps. */
export function isRecord(value: unknown): value is Record<string, unknown> {
  return (
    value !== null && typeof value === 'object' && !Array.isArray(value) && !(value instanceof Uint8Array)
  )
}
