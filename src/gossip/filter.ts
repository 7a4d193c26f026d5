/**
 * Target filters: which nodes a request is for.
 *
 * A request carries the filter exactly as the operator wrote it (`--zone`, `--node`, `--fact`,
 * `--where`, `--once`), inside the signed body. Every node compiles it and evaluates it against
 * itself; the requester evaluates it against the membership table to know whom to expect. All parts
 * combine with AND.
 *
 * `names` is the one part no flag writes: a rollout (src/node/rollout.ts) sends each wave as its own
 * request whose filter is the operator's filter AND "the name is exactly one of these", so a node
 * outside the wave does not run it even though the rest of the filter matches it, and still decides
 * that from the signed filter itself. The list is sorted and free of duplicates on the wire (one
 * signed encoding per filter), holds 1 to {@link NAMES_MAX} valid node names, and so stays within the
 * request size limit: 512 names of the longest length (64 characters) take 33.8 KB of the 64 KiB
 * request, leaving room for the largest certificate, reply addresses, facts and `--where`; 1,024 would
 * not fit.
 *
 * Patterns (`--node`, `--fact` values, `--where` values): `/regex/` (unanchored search, compiled
 * with the `u` flag), a glob when the text contains `*` or `?` (anchored, `*` any run, `?` one
 * character), otherwise exact text. In `--where`, a quoted value is always exact text, so quotes are
 * the way to match a literal `*`, `/`, space or keyword.
 *
 * Regexes come from operators, whose requests every node evaluates, so catastrophic backtracking
 * must be impossible in practice: the source is bounded by {@link REGEX_CHARS_MAX}, a quantified
 * group that itself contains a quantifier (`(a+)+`) and backreferences are refused, the estimated
 * backtracking cost of sequential quantifiers is bounded by {@link REGEX_COST_MAX}, a filter holds
 * at most {@link REGEX_PATTERNS_MAX} regexes, and the subject is cut to
 * {@link MATCH_SUBJECT_CHARS_MAX} characters.
 *
 * `--where` grammar (precedence not > and > or; keywords are `and`/`or`/`not` in lower or upper case):
 * ```
 * expr    := and ('or' and)*
 * and     := unary ('and' unary)*
 * unary   := 'not' unary | '(' expr ')' | term
 * term    := KEY ('=' | '!=') VALUE        KEY := [A-Za-z0-9_.:-]+  (zone, name, or a fact name)
 * VALUE   := '/' regex '/' | '"' text '"' | "'" text "'" | bare   (bare: up to space or parenthesis)
 * ```
 * `KEY!=VALUE` is exactly `not KEY=VALUE`; a fact the node does not have never equals anything.
 */

import { isValidName, NAME_CHARS_MAX } from '../wire/fields.js'

/** Longest pattern text (exact, glob or `/regex/` including slashes), in characters. */
export const PATTERN_CHARS_MAX = 256
/** Longest regex source between the slashes, in characters. */
export const REGEX_CHARS_MAX = 128
/** Longest `--where` expression, in characters. */
export const WHERE_CHARS_MAX = 1024
/** Most terms (KEY=VALUE) in one `--where` expression. */
export const WHERE_TERMS_MAX = 64
/** Deepest nesting of `not` and parentheses in one `--where` expression. */
export const WHERE_DEPTH_MAX = 16
/** Most `--fact` entries in one filter. */
export const FACT_FILTERS_MAX = 16
/** Longest fact key, zone or node name in a filter, in characters. */
export const KEY_CHARS_MAX = 64
/**
 * Regex subjects (name, zone, fact value) beyond this many characters are cut before matching. Equal
 * to the longest fact value a heartbeat may carry, so in practice nothing is cut.
 */
export const MATCH_SUBJECT_CHARS_MAX = 256
/**
 * Largest estimated backtracking cost of one filter regex: the product of its choice points, where an
 * unbounded quantifier (`*`, `+`, `{n,}`) counts {@link MATCH_SUBJECT_CHARS_MAX}, `?` 2, `{n,m}`
 * m-n+1, each `|` 2, and an unanchored regex (no leading `^`) another {@link MATCH_SUBJECT_CHARS_MAX}
 * for its start positions. 256² × 16 lets `a*b`, `a.*b` and `^a*a*b` pass (about 0.1 ms on a
 * 256-character subject; a cost-256² regex measured 0.08-0.12 ms of CPU) and refuses `a*a*b`,
 * `^a*a*a*b` and `.*.*x` (cost 256³: 8-12 ms each, found by the fuzz campaign, docs/fuzz.md), so the
 * {@link REGEX_PATTERNS_MAX} regexes of one filter stay within a few ms on every node.
 */
export const REGEX_COST_MAX = 256 ** 2 * 16
/** Most regex patterns in one filter (node, facts and `--where` together), bounding per-request work. */
export const REGEX_PATTERNS_MAX = 8
/**
 * Most node names in a filter's `names` list (one rollout wave). 512 × 66 CBOR bytes (a 64-character
 * name and its header) = 33.8 KB, about half of the 64 KiB request limit (request.ts REQUEST_BYTES_MAX).
 */
export const NAMES_MAX = 512

const KEY_PATTERN = /^[A-Za-z0-9_.:-]+$/

/** Why a filter, pattern or `--where` expression was refused. A closed set. */
export type FilterErrorCode =
  | 'malformed'
  | 'too-long'
  | 'too-complex'
  | 'bad-key'
  | 'bad-regex'
  | 'unsafe-regex'
  | 'syntax'

/** A filter, pattern or expression that cannot be used. `column` is 1-based within `--where`. */
export class FilterParseError extends Error {
  override name = 'FilterParseError'
  readonly code: FilterErrorCode
  /** 1-based column in the `--where` text, when the error comes from it. */
  readonly column: number | undefined
  constructor(code: FilterErrorCode, message: string, column?: number) {
    super(column === undefined ? message : `column ${column}: ${message}`)
    this.code = code
    this.column = column
  }
}

/** One `--fact KEY=VALUE` entry: `pattern` is exact text, a glob or a `/regex/`. */
export interface FactFilter {
  readonly key: string
  readonly pattern: string
}

/** The filter as signed into a request: the operator's text, uncompiled. Absent parts match all. */
export interface TargetFilter {
  /** Exact zone name. */
  readonly zone?: string
  /** Pattern over the node name. */
  readonly node?: string
  readonly facts?: readonly FactFilter[]
  /** A `--where` expression. */
  readonly where?: string
  /** Only the zone authority of each matching zone runs the request. */
  readonly once?: boolean
  /**
   * The node's name must be exactly one of these (a rollout wave): 1 to {@link NAMES_MAX} valid node
   * names. Sent sorted, without duplicates.
   */
  readonly names?: readonly string[]
}

/** What a filter is evaluated against: one node as it sees itself, or a member as the requester sees it. */
export interface FilterSubject {
  readonly name: string
  readonly zone: string
  readonly facts: Readonly<Record<string, string>>
  /** True when this node currently holds its zone's authority lease (needed by `once`). */
  readonly authority?: boolean
}

/** A compiled pattern; `test` never throws and runs in time bounded by the limits above. */
export interface CompiledPattern {
  readonly kind: 'exact' | 'glob' | 'regex'
  readonly text: string
  test(subject: string): boolean
}

/** A parsed `--where` expression. */
export type WhereExpr =
  | {
      readonly op: 'term'
      readonly key: string
      readonly negated: boolean
      readonly pattern: CompiledPattern
    }
  | { readonly op: 'not'; readonly arg: WhereExpr }
  | { readonly op: 'and' | 'or'; readonly args: readonly WhereExpr[] }

/** A filter ready to evaluate; build with {@link compileFilter}. */
export interface CompiledFilter {
  readonly source: TargetFilter
  readonly zone: string | undefined
  readonly node: CompiledPattern | undefined
  readonly facts: readonly { readonly key: string; readonly pattern: CompiledPattern }[]
  readonly where: WhereExpr | undefined
  readonly once: boolean
  /** The `names` list as a set, or undefined when the filter has none. */
  readonly names: ReadonlySet<string> | undefined
}

/**
 * Glob match (`*` any run, `?` one character), anchored at both ends. Linear-time two-pointer
 * algorithm with single backtrack point, so no input can make it slow.
 */
export function globMatch(glob: string, text: string): boolean {
  let g = 0
  let t = 0
  let starG = -1
  let starT = 0
  while (t < text.length) {
    const c = glob[g]
    if (c === '*') {
      starG = g++
      starT = t
    } else if (c !== undefined && (c === '?' || c === text[t])) {
      g++
      t++
    } else if (starG >= 0) {
      g = starG + 1
      t = ++starT
    } else {
      return false
    }
  }
  while (glob[g] === '*') g++
  return g === glob.length
}

/**
 * Compiles pattern text: `/regex/`, glob (contains `*` or `?`) or exact text.
 * @throws FilterParseError `too-long`, `bad-regex` or `unsafe-regex`
 */
export function parsePattern(text: string): CompiledPattern {
  if (text.length > PATTERN_CHARS_MAX) {
    throw new FilterParseError('too-long', `pattern longer than ${PATTERN_CHARS_MAX} characters`)
  }
  if (text.length >= 2 && text.startsWith('/') && text.endsWith('/')) return regexPattern(text)
  if (text.includes('*') || text.includes('?')) {
    return { kind: 'glob', text, test: subject => globMatch(text, subject) }
  }
  return exactPattern(text)
}

function exactPattern(text: string): CompiledPattern {
  return { kind: 'exact', text, test: subject => subject === text }
}

function regexPattern(text: string): CompiledPattern {
  const source = text.slice(1, -1)
  if (source.length === 0) throw new FilterParseError('bad-regex', 'empty regex //')
  if (source.length > REGEX_CHARS_MAX) {
    throw new FilterParseError('too-long', `regex longer than ${REGEX_CHARS_MAX} characters`)
  }
  checkRegexSafety(source)
  let regex: RegExp
  try {
    regex = new RegExp(source, 'u')
  } catch (err) {
    throw new FilterParseError('bad-regex', `invalid regex ${text}: ${(err as Error).message}`)
  }
  return { kind: 'regex', text, test: subject => regex.test(clip(subject)) }
}

function clip(subject: string): string {
  return subject.length > MATCH_SUBJECT_CHARS_MAX ? subject.slice(0, MATCH_SUBJECT_CHARS_MAX) : subject
}

/**
 * Refuses the regex shapes that backtrack badly: a quantified group containing a quantifier or an
 * alternation (`(a+)+`, `(a|b)*`, `(x{2,})+`; an outer `?` is fine), backreferences, and an
 * estimated cost above {@link REGEX_COST_MAX}. A conservative heuristic: it may refuse a harmless
 * regex, never the reverse for these shapes.
 */
function checkRegexSafety(source: string): void {
  // One entry per open group: whether a quantifier or alternation appeared inside it.
  const groups: boolean[] = []
  let inClass = false
  let lastClosedGroupQuantified = false
  let cost = source.startsWith('^') ? 1 : MATCH_SUBJECT_CHARS_MAX
  let previousWasQuantifier = false
  for (let i = 0; i < source.length; i++) {
    const c = source[i]
    if (c === '\\') {
      const next = source[i + 1] ?? ''
      if (/[1-9k]/.test(next) && !inClass) {
        throw new FilterParseError('unsafe-regex', 'backreferences are not allowed in filter regexes')
      }
      i++
      lastClosedGroupQuantified = false
      previousWasQuantifier = false
      continue
    }
    if (inClass) {
      if (c === ']') inClass = false
      continue
    }
    // `?` right after a quantifier makes it lazy; it is not a quantifier of its own.
    const isQuantifier: boolean = c === '*' || c === '+' || c === '{' || (c === '?' && !previousWasQuantifier)
    previousWasQuantifier = isQuantifier
    let choices = c === '?' ? 2 : MATCH_SUBJECT_CHARS_MAX
    if (c === '{') {
      // Skip to the closing brace so its digits and comma are not read as atoms.
      const close = source.indexOf('}', i)
      const bounds = /^\{(\d+)(,(\d*))?\}$/.exec(source.slice(i, close + 1))
      if (close > i) i = close
      if (bounds !== null) {
        const min = Number(bounds[1])
        const max =
          bounds[2] === undefined ? min : bounds[3] === '' ? Number.POSITIVE_INFINITY : Number(bounds[3])
        choices = Math.max(1, Math.min(MATCH_SUBJECT_CHARS_MAX, max - min + 1))
      }
    }
    if (isQuantifier || c === '|') {
      cost *= c === '|' ? 2 : choices
      if (cost > REGEX_COST_MAX) {
        throw new FilterParseError(
          'unsafe-regex',
          'regex too expensive: too many quantifiers or alternatives',
        )
      }
    }
    if (isQuantifier && lastClosedGroupQuantified && c !== '?') {
      throw new FilterParseError('unsafe-regex', 'nested quantifiers such as (a+)+ are not allowed')
    }
    if (c === '[') inClass = true
    else if (c === '(') {
      groups.push(false)
      // `(?:`, `(?=`, `(?<name>`: this `?` is group syntax, not a quantifier.
      if (source[i + 1] === '?') i++
    } else if (c === ')') {
      const inner = groups.pop() ?? false
      lastClosedGroupQuantified = inner
      if (inner && groups.length > 0) groups[groups.length - 1] = true
      continue
    } else if (isQuantifier || c === '|') {
      if (groups.length > 0) groups[groups.length - 1] = true
    }
    lastClosedGroupQuantified = false
  }
}

/**
 * Parses a `--fact KEY=VALUE` flag (split at the first `=`).
 * @throws FilterParseError `syntax`, `bad-key`, `too-long`, `bad-regex` or `unsafe-regex`
 */
export function parseFactFlag(text: string): FactFilter {
  const at = text.indexOf('=')
  if (at < 0) throw new FilterParseError('syntax', `--fact expects KEY=VALUE, got '${text}'`)
  const fact = { key: text.slice(0, at), pattern: text.slice(at + 1) }
  checkKey(fact.key)
  parsePattern(fact.pattern)
  return fact
}

function checkKey(key: string, column?: number): void {
  if (key.length === 0 || key.length > KEY_CHARS_MAX || !KEY_PATTERN.test(key)) {
    throw new FilterParseError(
      'bad-key',
      `key '${key.slice(0, KEY_CHARS_MAX)}' must be 1-${KEY_CHARS_MAX} characters of A-Z a-z 0-9 _ . : -`,
      column,
    )
  }
}

/**
 * Parses a `--where` expression.
 * @throws FilterParseError with the 1-based column of the problem
 */
export function parseWhere(text: string): WhereExpr {
  if (text.length > WHERE_CHARS_MAX) {
    throw new FilterParseError('too-long', `--where longer than ${WHERE_CHARS_MAX} characters`)
  }
  return new WhereParser(text).parse()
}

const KEYWORDS: Record<string, 'and' | 'or' | 'not'> = {
  and: 'and',
  AND: 'and',
  or: 'or',
  OR: 'or',
  not: 'not',
  NOT: 'not',
}

class WhereParser {
  private pos = 0
  private terms = 0
  private depth = 0
  constructor(private readonly text: string) {}

  parse(): WhereExpr {
    const expr = this.parseOr()
    this.skipSpace()
    if (this.pos < this.text.length) {
      const what = this.text[this.pos] === ')' ? "unmatched ')'" : `unexpected '${this.peekWord()}'`
      this.fail('syntax', `${what}; expected 'and', 'or' or the end`)
    }
    return expr
  }

  private parseOr(): WhereExpr {
    const args = [this.parseAnd()]
    while (this.acceptKeyword('or')) args.push(this.parseAnd())
    return args.length === 1 ? args[0]! : { op: 'or', args }
  }

  private parseAnd(): WhereExpr {
    const args = [this.parseUnary()]
    while (this.acceptKeyword('and')) args.push(this.parseUnary())
    return args.length === 1 ? args[0]! : { op: 'and', args }
  }

  private parseUnary(): WhereExpr {
    this.skipSpace()
    if (this.pos >= this.text.length) this.fail('syntax', 'expected a term KEY=VALUE, "not" or "("')
    if (++this.depth > WHERE_DEPTH_MAX) this.fail('too-complex', `nested deeper than ${WHERE_DEPTH_MAX}`)
    try {
      if (this.text[this.pos] === '(') {
        const open = this.pos
        this.pos++
        const inner = this.parseOr()
        this.skipSpace()
        if (this.text[this.pos] !== ')') this.fail('syntax', `'(' at column ${open + 1} is not closed`)
        this.pos++
        return inner
      }
      const start = this.pos
      const word = this.readKey()
      this.skipSpace()
      const isOperator = this.text.startsWith('=', this.pos) || this.text.startsWith('!=', this.pos)
      if (KEYWORDS[word] === 'not' && !isOperator) return { op: 'not', arg: this.parseUnary() }
      if (word.length === 0) this.fail('syntax', `expected a term KEY=VALUE, got '${this.peekWord()}'`)
      if (KEYWORDS[word] !== undefined && !isOperator) {
        this.fail('syntax', `unexpected '${word}'; expected a term KEY=VALUE, "not" or "("`, start)
      }
      checkKey(word, start + 1)
      if (!isOperator) this.fail('syntax', `expected '=' or '!=' after '${word}'`)
      const negated = this.text[this.pos] === '!'
      this.pos += negated ? 2 : 1
      if (++this.terms > WHERE_TERMS_MAX) this.fail('too-complex', `more than ${WHERE_TERMS_MAX} terms`)
      return { op: 'term', key: word, negated, pattern: this.readValue() }
    } finally {
      this.depth--
    }
  }

  private readValue(): CompiledPattern {
    this.skipSpace()
    const start = this.pos
    const c = this.text[this.pos]
    if (c === undefined) this.fail('syntax', 'expected a value after the operator')
    if (c === '"' || c === "'") {
      let value = ''
      this.pos++
      while (this.pos < this.text.length && this.text[this.pos] !== c) {
        if (this.text[this.pos] === '\\' && this.pos + 1 < this.text.length) this.pos++
        value += this.text[this.pos++]
      }
      if (this.pos >= this.text.length)
        this.fail('syntax', `quote at column ${start + 1} is not closed`, start)
      this.pos++
      if (value.length > PATTERN_CHARS_MAX) this.fail('too-long', 'quoted value too long', start)
      return exactPattern(value)
    }
    if (c === '/') {
      this.pos++
      while (this.pos < this.text.length && this.text[this.pos] !== '/') {
        // `\/` stays inside the regex; any other escape is left for the regex engine.
        if (this.text[this.pos] === '\\') this.pos++
        this.pos++
      }
      if (this.pos >= this.text.length)
        this.fail('syntax', `regex at column ${start + 1} is not closed`, start)
      this.pos++
    } else {
      while (this.pos < this.text.length && !/[\s()]/.test(this.text[this.pos]!)) this.pos++
      if (this.pos === start) this.fail('syntax', 'expected a value after the operator')
    }
    // `\/` inside a regex is a valid escape for the engine too, so the raw text is passed as is.
    const raw = this.text.slice(start, this.pos)
    try {
      return parsePattern(raw)
    } catch (err) {
      if (err instanceof FilterParseError) this.fail(err.code, err.message, start)
      throw err
    }
  }

  private readKey(): string {
    const start = this.pos
    while (this.pos < this.text.length && /[A-Za-z0-9_.:-]/.test(this.text[this.pos]!)) this.pos++
    return this.text.slice(start, this.pos)
  }

  private acceptKeyword(keyword: 'and' | 'or'): boolean {
    this.skipSpace()
    const save = this.pos
    const word = this.readKey()
    // A keyword must stand alone: `order=x` is a term, not `or` followed by `der=x`, and `or=x`
    // is a term about a fact named `or`.
    const after = this.text.slice(this.pos).trimStart()
    if (KEYWORDS[word] === keyword && !after.startsWith('=') && !after.startsWith('!=')) return true
    this.pos = save
    return false
  }

  private skipSpace(): void {
    while (this.pos < this.text.length && /\s/.test(this.text[this.pos]!)) this.pos++
  }

  private peekWord(): string {
    const m = /^\S{1,20}/.exec(this.text.slice(this.pos))
    return m === null ? '' : m[0]
  }

  private fail(code: FilterErrorCode, message: string, at = this.pos): never {
    throw new FilterParseError(code, message, at + 1)
  }
}

/** Evaluates a parsed `--where` expression against a subject. Never throws. */
export function evaluateWhere(expr: WhereExpr, subject: FilterSubject): boolean {
  switch (expr.op) {
    case 'term': {
      const value = lookup(subject, expr.key)
      const equal = value !== undefined && expr.pattern.test(value)
      return expr.negated ? !equal : equal
    }
    case 'not':
      return !evaluateWhere(expr.arg, subject)
    case 'and':
      return expr.args.every(arg => evaluateWhere(arg, subject))
    case 'or':
      return expr.args.some(arg => evaluateWhere(arg, subject))
  }
}

function lookup(subject: FilterSubject, key: string): string | undefined {
  if (key === 'zone') return subject.zone
  if (key === 'name') return subject.name
  return Object.hasOwn(subject.facts, key) ? subject.facts[key] : undefined
}

/**
 * Checks and compiles a filter (including its `--where`). Do this once per request.
 * @throws FilterParseError
 */
export function compileFilter(filter: TargetFilter): CompiledFilter {
  if (filter.zone !== undefined) checkKey(filter.zone)
  const facts = filter.facts ?? []
  if (facts.length > FACT_FILTERS_MAX) {
    throw new FilterParseError('too-complex', `more than ${FACT_FILTERS_MAX} --fact filters`)
  }
  const compiled: CompiledFilter = {
    source: filter,
    zone: filter.zone,
    node: filter.node === undefined ? undefined : parsePattern(filter.node),
    facts: facts.map(f => {
      checkKey(f.key)
      return { key: f.key, pattern: parsePattern(f.pattern) }
    }),
    where: filter.where === undefined ? undefined : parseWhere(filter.where),
    once: filter.once === true,
    names: filter.names === undefined ? undefined : checkNames(filter.names),
  }
  const patterns = [compiled.node, ...compiled.facts.map(f => f.pattern), ...wherePatterns(compiled.where)]
  if (patterns.filter(p => p?.kind === 'regex').length > REGEX_PATTERNS_MAX) {
    throw new FilterParseError('too-complex', `more than ${REGEX_PATTERNS_MAX} regexes in one filter`)
  }
  return compiled
}

/**
 * The set of a `names` list: 1 to {@link NAMES_MAX} valid node names (duplicates count once).
 * @throws FilterParseError `too-complex` for too many, `bad-key` for an empty list or a bad name
 */
function checkNames(names: readonly string[]): ReadonlySet<string> {
  if (!Array.isArray(names) || names.length === 0) {
    throw new FilterParseError('bad-key', 'filter.names must list at least one node name')
  }
  if (names.length > NAMES_MAX) {
    throw new FilterParseError('too-complex', `more than ${NAMES_MAX} names in one filter`)
  }
  for (const name of names) {
    if (typeof name !== 'string' || !isValidName(name)) {
      const shown = typeof name === 'string' ? name.slice(0, NAME_CHARS_MAX) : typeof name
      throw new FilterParseError(
        'bad-key',
        `'${shown}' is not a node name (1-${NAME_CHARS_MAX} characters of A-Z a-z 0-9 . _ -, starting with a letter or digit)`,
      )
    }
  }
  return new Set(names)
}

function wherePatterns(expr: WhereExpr | undefined): CompiledPattern[] {
  if (expr === undefined) return []
  if (expr.op === 'term') return [expr.pattern]
  if (expr.op === 'not') return wherePatterns(expr.arg)
  return expr.args.flatMap(wherePatterns)
}

/**
 * True when `subject` matches every part of the filter. A raw {@link TargetFilter} is compiled first.
 * @throws FilterParseError only when given an uncompiled, invalid filter
 */
export function matchesFilter(filter: TargetFilter | CompiledFilter, subject: FilterSubject): boolean {
  const compiled = isCompiled(filter) ? filter : compileFilter(filter)
  if (compiled.zone !== undefined && subject.zone !== compiled.zone) return false
  if (compiled.node !== undefined && !compiled.node.test(subject.name)) return false
  for (const fact of compiled.facts) {
    const value = lookup(subject, fact.key)
    if (value === undefined || !fact.pattern.test(value)) return false
  }
  if (compiled.where !== undefined && !evaluateWhere(compiled.where, subject)) return false
  if (compiled.once && subject.authority !== true) return false
  if (compiled.names !== undefined && !compiled.names.has(subject.name)) return false
  return true
}

function isCompiled(filter: TargetFilter | CompiledFilter): filter is CompiledFilter {
  return 'source' in filter
}

/**
 * Reads a filter from decoded CBOR, checking shapes and limits (not yet compiling patterns).
 * @throws FilterParseError `malformed`
 */
export function filterFromCbor(value: unknown): TargetFilter {
  if (value === null || typeof value !== 'object' || Array.isArray(value) || value instanceof Uint8Array) {
    throw new FilterParseError('malformed', 'filter must be a map')
  }
  const record = value as Record<string, unknown>
  for (const key of Object.keys(record)) {
    if (!['zone', 'node', 'facts', 'where', 'once', 'names'].includes(key)) {
      throw new FilterParseError('malformed', `unknown filter field '${key}'`)
    }
  }
  const { zone, node, facts, where, once, names } = record
  const optionalString = (v: unknown, field: string): string | undefined => {
    if (v === undefined) return undefined
    if (typeof v !== 'string') throw new FilterParseError('malformed', `filter.${field} must be text`)
    return v
  }
  // Only the spelling filterToCbor writes: `once` only when true, `facts` only when not empty, so one
  // filter has one signed encoding.
  if (once !== undefined && once !== true) {
    throw new FilterParseError('malformed', 'filter.once must be true when present')
  }
  let factList: FactFilter[] | undefined
  if (facts !== undefined) {
    if (!Array.isArray(facts) || facts.length === 0 || facts.length > FACT_FILTERS_MAX) {
      throw new FilterParseError('malformed', `filter.facts must be a list of 1 to ${FACT_FILTERS_MAX}`)
    }
    factList = facts.map(f => {
      const entry = f as Record<string, unknown> | null
      if (
        entry === null ||
        typeof entry !== 'object' ||
        typeof entry.key !== 'string' ||
        typeof entry.pattern !== 'string' ||
        Object.keys(entry).length !== 2
      ) {
        throw new FilterParseError('malformed', 'filter.facts entries must be { key, pattern }')
      }
      return { key: entry.key, pattern: entry.pattern }
    })
  }
  let nameList: string[] | undefined
  if (names !== undefined) {
    // Only filterToCbor's spelling: 1 to NAMES_MAX texts in strictly ascending order (sorted, no
    // duplicates). Whether each is a valid node name is compileFilter's check.
    if (!Array.isArray(names) || names.length === 0 || names.length > NAMES_MAX) {
      throw new FilterParseError('malformed', `filter.names must be a list of 1 to ${NAMES_MAX}`)
    }
    nameList = names.map((n, i) => {
      if (typeof n !== 'string' || n.length > NAME_CHARS_MAX) {
        throw new FilterParseError(
          'malformed',
          `filter.names entries must be text of at most ${NAME_CHARS_MAX}`,
        )
      }
      const previous = names[i - 1] as string | undefined
      if (previous !== undefined && !(previous < n)) {
        throw new FilterParseError('malformed', 'filter.names must be sorted and without duplicates')
      }
      return n
    })
  }
  const out: { -readonly [K in keyof TargetFilter]: TargetFilter[K] } = {}
  const z = optionalString(zone, 'zone')
  const n = optionalString(node, 'node')
  const w = optionalString(where, 'where')
  if (z !== undefined) out.zone = z
  if (n !== undefined) out.node = n
  if (factList !== undefined) out.facts = factList
  if (w !== undefined) out.where = w
  if (once === true) out.once = true
  if (nameList !== undefined) out.names = nameList
  return out
}

/**
 * The CBOR form of a filter (absent parts omitted, `once` only when true, `names` sorted by code unit
 * and without duplicates).
 */
export function filterToCbor(filter: TargetFilter): {
  [key: string]: string | boolean | FactFilter[] | string[]
} {
  const out: { [key: string]: string | boolean | FactFilter[] | string[] } = {}
  if (filter.zone !== undefined) out.zone = filter.zone
  if (filter.node !== undefined) out.node = filter.node
  if (filter.facts !== undefined && filter.facts.length > 0) {
    out.facts = filter.facts.map(f => ({ key: f.key, pattern: f.pattern }))
  }
  if (filter.where !== undefined) out.where = filter.where
  if (filter.once === true) out.once = true
  if (filter.names !== undefined) out.names = [...new Set(filter.names)].sort()
  return out
}
