/**
 * Proves target filters select exactly the intended nodes: tables of patterns, `--fact`, `--where`
 * (including CLI.md's example) and parse errors with columns, plus a fast-check property comparing the
 * `--where` parser and evaluator with a deliberately naive evaluator over random expression trees
 * rendered with minimal parentheses (so precedence is exercised).
 */
import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import {
  compileFilter,
  FilterParseError,
  type FilterSubject,
  filterFromCbor,
  filterToCbor,
  globMatch,
  MATCH_SUBJECT_CHARS_MAX,
  matchesFilter,
  parseFactFlag,
  parsePattern,
  parseWhere,
  REGEX_CHARS_MAX,
  WHERE_DEPTH_MAX,
  WHERE_TERMS_MAX,
} from '../../src/gossip/filter.js'

const node = (name: string, zone: string, facts: Record<string, string> = {}): FilterSubject => ({
  name,
  zone,
  facts,
})

const fleet: FilterSubject[] = [
  node('d1', 'db', { os: 'linux' }),
  node('d2', 'db', { os: 'linux' }),
  node('d3', 'db', { os: 'freebsd' }),
  node('d4', 'db', { os: 'openbsd', role: 'replica' }),
  node('web1', 'web', { os: 'linux', tier: 'front' }),
  node('web2', 'web', { os: 'linux' }),
  node('api', 'web', { os: 'darwin' }),
]

const select = (where: string): string[] => fleet.filter(s => matchesFilter({ where }, s)).map(s => s.name)

describe('patterns', () => {
  it.each([
    ['web1', 'web1', true],
    ['web1', 'web10', false],
    ['web*', 'web10', true],
    ['web*', 'xweb', false],
    ['w?b1', 'web1', true],
    ['w?b1', 'wb1', false],
    ['*', '', true],
    ['a*b*c', 'aXXbYYc', true],
    ['a*b*c', 'aXXbYY', false],
    ['/bsd/', 'freebsd', true],
    ['/^free/', 'openbsd', false],
    ['/^d[0-9]+$/', 'd12', true],
    ['/x/', 'XYZ', false],
  ] as const)('%s vs %s → %s', (pattern, subject, expected) => {
    expect(parsePattern(pattern).test(subject)).toBe(expected)
  })

  it('classifies exact, glob and regex', () => {
    expect(parsePattern('abc').kind).toBe('exact')
    expect(parsePattern('a*').kind).toBe('glob')
    expect(parsePattern('a?').kind).toBe('glob')
    expect(parsePattern('/a/').kind).toBe('regex')
    expect(parsePattern('/').kind).toBe('exact')
  })

  it.each([
    ['/(/', 'bad-regex'],
    ['//', 'bad-regex'],
    ['/(a+)+$/', 'unsafe-regex'],
    ['/(a|b*)*/', 'unsafe-regex'],
    ['/((ab)*)+/', 'unsafe-regex'],
    ['/(a{2,})*/', 'unsafe-regex'],
    ['/(a)\\1/', 'unsafe-regex'],
    [`/${'a'.repeat(REGEX_CHARS_MAX + 1)}/`, 'too-long'],
    ['/a*a*a*b/', 'unsafe-regex'],
    ['/^a*a*a*a*b/', 'unsafe-regex'],
    ['/.*.*.*x/', 'unsafe-regex'],
    ['/a+a+a+b/', 'unsafe-regex'],
    ['/a{0,200}a{0,200}a{0,200}b/', 'unsafe-regex'],
    [`/^${'a?'.repeat(25)}aaaaa/`, 'unsafe-regex'],
    ['/a*\\d*?b+/', 'unsafe-regex'],
    // Cost 256³: 8-12 ms each on a 256-character subject, found by the fuzz campaign (docs/fuzz.md).
    ['/a*a*b/', 'unsafe-regex'],
    ['/^a*a*a*b/', 'unsafe-regex'],
    ['/.*.*x/', 'unsafe-regex'],
    ['/a*[a-z]*b/', 'unsafe-regex'],
  ])('refuses %s with %s', (pattern, code) => {
    expect(() => parsePattern(pattern)).toThrow(FilterParseError)
    try {
      parsePattern(pattern)
    } catch (err) {
      expect((err as FilterParseError).code).toBe(code)
    }
  })

  it('allows harmless quantified groups, classes, lazy quantifiers and group syntax', () => {
    expect(parsePattern('/(ab)+c/').test('ababc')).toBe(true)
    expect(parsePattern('/[(+]+x/').test('(+x')).toBe(true)
    expect(parsePattern('/(?:ab)+c/').test('ababc')).toBe(true)
    expect(parsePattern('/^a*?b+?c??d{1,2}?/').test('abd')).toBe(true)
    expect(parsePattern('/^web-(?<n>[0-9]+)$/').test('web-12')).toBe(true)
    expect(parsePattern('/^d[0-9]+(-[a-z]+)?$/').test('d1-x')).toBe(true)
    expect(parsePattern('/^\\d{1,3}\\.\\d{1,3}\\.\\d{1,3}\\.\\d{1,3}$/').test('10.0.0.1')).toBe(true)
    expect(parsePattern('/^web.*prod$/').test('web-1-prod')).toBe(true)
  })

  it('the costliest allowed regexes on the longest subject stay fast', () => {
    const subject = 'a'.repeat(MATCH_SUBJECT_CHARS_MAX + 1000)
    for (const re of ['/a*b/', '/^a*a*b/', '/a.*b/', '/a?a?a?a?aaaa$/', '/^(a|b)c*d*/']) {
      const started = performance.now()
      parsePattern(re).test(subject)
      expect(performance.now() - started).toBeLessThan(1000)
    }
  })

  it('glob matching agrees with a regex translation on random inputs', () => {
    const alphabet = fc.constantFrom('a', 'b', '*', '?')
    fc.assert(
      fc.property(
        fc.string({ unit: alphabet, maxLength: 8 }),
        fc.string({ unit: fc.constantFrom('a', 'b'), maxLength: 10 }),
        (glob, text) => {
          const re = new RegExp(`^${glob.replaceAll('*', '.*').replaceAll('?', '.')}$`, 's')
          expect(globMatch(glob, text)).toBe(re.test(text))
        },
      ),
      { numRuns: 2000 },
    )
  })
})

describe('--fact', () => {
  it('parses KEY=VALUE at the first =', () => {
    expect(parseFactFlag('os=linux')).toEqual({ key: 'os', pattern: 'linux' })
    expect(parseFactFlag('tag=a=b')).toEqual({ key: 'tag', pattern: 'a=b' })
    expect(parseFactFlag('os=/bsd/')).toEqual({ key: 'os', pattern: '/bsd/' })
  })

  it.each([
    ['os', 'syntax'],
    ['=linux', 'bad-key'],
    ['o s=x', 'bad-key'],
    ['os=/(/', 'bad-regex'],
  ])('refuses %s with %s', (flag, code) => {
    expect(() => parseFactFlag(flag)).toThrow(expect.objectContaining({ code }))
  })
})

describe('whole filters (all parts AND)', () => {
  it.each<[string, Parameters<typeof matchesFilter>[0], string[]]>([
    ['empty filter matches all', {}, fleet.map(s => s.name)],
    ['zone', { zone: 'db' }, ['d1', 'd2', 'd3', 'd4']],
    ['node glob', { node: 'web*' }, ['web1', 'web2']],
    ['node regex', { node: '/^d[12]$/' }, ['d1', 'd2']],
    ['fact exact', { facts: [{ key: 'os', pattern: 'linux' }] }, ['d1', 'd2', 'web1', 'web2']],
    ['fact regex', { facts: [{ key: 'os', pattern: '/bsd$/' }] }, ['d3', 'd4']],
    ['fact missing never matches', { facts: [{ key: 'tier', pattern: '*' }] }, ['web1']],
    [
      'zone AND fact AND where',
      { zone: 'web', facts: [{ key: 'os', pattern: 'linux' }], where: 'not name=web2' },
      ['web1'],
    ],
    [
      'two facts on one key',
      {
        facts: [
          { key: 'os', pattern: '*bsd' },
          { key: 'os', pattern: 'open*' },
        ],
      },
      ['d4'],
    ],
  ])('%s', (_label, filter, expected) => {
    expect(fleet.filter(s => matchesFilter(filter, s)).map(s => s.name)).toEqual(expected)
  })

  it('once matches only a zone authority', () => {
    const filter = compileFilter({ zone: 'db', once: true })
    expect(matchesFilter(filter, node('d1', 'db'))).toBe(false)
    expect(matchesFilter(filter, { ...node('d1', 'db'), authority: true })).toBe(true)
    expect(matchesFilter(filter, { ...node('w', 'web'), authority: true })).toBe(false)
  })

  it('round-trips through its CBOR form', () => {
    const filter = {
      zone: 'db',
      node: 'd*',
      facts: [{ key: 'os', pattern: '/bsd/' }],
      where: 'a=b',
      once: true,
    }
    expect(filterFromCbor(filterToCbor(filter))).toEqual(filter)
    expect(filterFromCbor(filterToCbor({}))).toEqual({})
  })

  it.each([null, 5, [], { zone: 5 }, { extra: 'x' }, { facts: [{ key: 'a' }] }, { once: 'yes' }])(
    'refuses malformed CBOR filter %j',
    value => {
      expect(() => filterFromCbor(value)).toThrow(expect.objectContaining({ code: 'malformed' }))
    },
  )
})

describe('--where', () => {
  it("selects CLI.md's example: zone=db and not (name=d2 or os=/bsd/)", () => {
    expect(select('zone=db and not (name=d2 or os=/bsd/)')).toEqual(['d1'])
  })

  it.each([
    ['zone=web', ['web1', 'web2', 'api']],
    ['zone!=web', ['d1', 'd2', 'd3', 'd4']],
    ['name=web*', ['web1', 'web2']],
    ['os=/bsd/ or name=api', ['d3', 'd4', 'api']],
    // not > and > or
    ['zone=web and os=linux or name=d1', ['d1', 'web1', 'web2']],
    ['name=d1 or zone=web and os=linux', ['d1', 'web1', 'web2']],
    ['not zone=db and os=linux', ['web1', 'web2']],
    ['not (zone=db and os=linux)', ['d3', 'd4', 'web1', 'web2', 'api']],
    ['not not zone=db', ['d1', 'd2', 'd3', 'd4']],
    ['role=replica', ['d4']],
    ['role!=replica', ['d1', 'd2', 'd3', 'web1', 'web2', 'api']],
    ['tier="front"', ['web1']],
    ["os='linux' AND name=d*", ['d1', 'd2']],
    ['name="web*"', []],
    ['  ( ( zone=db ) )  ', ['d1', 'd2', 'd3', 'd4']],
    ['os=/^(free|open)bsd$/', ['d3', 'd4']],
    ['name=/d\\/x/ or name=d1', ['d1']],
  ])('%s', (where, expected) => {
    expect(select(where)).toEqual(expected)
  })

  it('treats keywords followed by an operator as keys', () => {
    const subject = node('n', 'z', { not: 'x', or: 'y', and: 'z' })
    expect(matchesFilter({ where: 'not=x and or=y and and=z' }, subject)).toBe(true)
    expect(matchesFilter({ where: 'order=x' }, node('n', 'z', { order: 'x' }))).toBe(true)
  })

  it.each([
    ['', 1, 'syntax'],
    ['zone', 5, 'syntax'],
    ['zone=', 6, 'syntax'],
    ['zone=db and', 12, 'syntax'],
    ['zone=db or or name=x', 12, 'syntax'],
    ['(zone=db', 9, 'syntax'],
    ['zone=db)', 8, 'syntax'],
    ['zone=db name=x', 9, 'syntax'],
    ['os=/(/', 4, 'bad-regex'],
    ['os=/abc', 4, 'syntax'],
    ['os="abc', 4, 'syntax'],
    ['a=1 and $=2', 9, 'syntax'],
    ['a=1 or=2', 5, 'syntax'],
  ])('%j fails at column %i with %s', (where, column, code) => {
    try {
      parseWhere(where)
      expect.unreachable(`${where} parsed`)
    } catch (err) {
      expect(err).toBeInstanceOf(FilterParseError)
      expect((err as FilterParseError).code).toBe(code)
      expect((err as FilterParseError).column).toBe(column)
      expect((err as FilterParseError).message).toMatch(/^column \d+: /)
    }
  })

  it('bounds the regexes in one filter', () => {
    const where = Array.from({ length: 9 }, (_, i) => `k${i}=/x/`).join(' or ')
    expect(() => compileFilter({ where })).toThrow(expect.objectContaining({ code: 'too-complex' }))
    expect(() =>
      compileFilter({ where: 'a=/x/', node: '/y/', facts: [{ key: 'b', pattern: '/z/' }] }),
    ).not.toThrow()
  })

  it('bounds terms, depth and length', () => {
    const many = Array.from({ length: WHERE_TERMS_MAX + 1 }, (_, i) => `a=${i}`).join(' or ')
    expect(() => parseWhere(many)).toThrow(expect.objectContaining({ code: 'too-complex' }))
    const deep = `${'('.repeat(WHERE_DEPTH_MAX + 1)}a=1${')'.repeat(WHERE_DEPTH_MAX + 1)}`
    expect(() => parseWhere(deep)).toThrow(expect.objectContaining({ code: 'too-complex' }))
    expect(() => parseWhere('not '.repeat(200) + 'a=1')).toThrow(
      expect.objectContaining({ code: 'too-complex' }),
    )
    expect(() => parseWhere(`a=${'x'.repeat(2000)}`)).toThrow(expect.objectContaining({ code: 'too-long' }))
  })

  it('never throws anything but FilterParseError on random text', () => {
    fc.assert(
      fc.property(fc.string({ maxLength: 60 }), text => {
        try {
          parseWhere(text)
        } catch (err) {
          expect(err).toBeInstanceOf(FilterParseError)
        }
      }),
      { numRuns: 3000 },
    )
  })
})

// --- property test against a naive evaluator -------------------------------------------------

type Tree =
  | { t: 'term'; key: string; neg: boolean; value: string }
  | { t: 'not'; arg: Tree }
  | { t: 'and' | 'or'; l: Tree; r: Tree }

const KEYS = ['zone', 'name', 'os', 'tier']
const VALUES = ['a', 'b', 'ab', 'a*', '?b', '/^a/', '/b$/', '"a*"']

const treeArb: fc.Arbitrary<Tree> = fc.letrec<{ tree: Tree }>(tie => ({
  tree: fc.oneof(
    { depthSize: 'small', withCrossShrink: true },
    fc.record({
      t: fc.constant('term' as const),
      key: fc.constantFrom(...KEYS),
      neg: fc.boolean(),
      value: fc.constantFrom(...VALUES),
    }),
    fc.record({ t: fc.constant('not' as const), arg: tie('tree') }),
    fc.record({ t: fc.constantFrom('and' as const, 'or' as const), l: tie('tree'), r: tie('tree') }),
  ),
})).tree

/** Renders with the fewest parentheses precedence allows, plus optional redundant ones. */
function render(tree: Tree, extraParens: () => boolean): string {
  const prec = (t: Tree): number => (t.t === 'or' ? 1 : t.t === 'and' ? 2 : 3)
  const wrap = (child: Tree, min: number): string => {
    const text = render(child, extraParens)
    return prec(child) < min || extraParens() ? `(${text})` : text
  }
  switch (tree.t) {
    case 'term':
      return `${tree.key}${tree.neg ? '!=' : '='}${tree.value}`
    case 'not':
      return `not ${wrap(tree.arg, 3)}`
    case 'and':
      return `${wrap(tree.l, 2)} and ${wrap(tree.r, 2)}`
    case 'or':
      return `${wrap(tree.l, 1)} or ${wrap(tree.r, 1)}`
  }
}

/** Naive evaluation straight from the tree, with its own tiny matcher. */
function naive(tree: Tree, subject: FilterSubject): boolean {
  switch (tree.t) {
    case 'term': {
      const actual =
        tree.key === 'zone' ? subject.zone : tree.key === 'name' ? subject.name : subject.facts[tree.key]
      let eq: boolean
      if (actual === undefined) eq = false
      else if (tree.value.startsWith('"')) eq = actual === tree.value.slice(1, -1)
      else if (tree.value.startsWith('/')) eq = new RegExp(tree.value.slice(1, -1)).test(actual)
      else if (/[*?]/.test(tree.value)) {
        eq = new RegExp(`^${tree.value.replaceAll('*', '.*').replaceAll('?', '.')}$`).test(actual)
      } else eq = actual === tree.value
      return tree.neg ? !eq : eq
    }
    case 'not':
      return !naive(tree.arg, subject)
    case 'and':
      return naive(tree.l, subject) && naive(tree.r, subject)
    case 'or':
      return naive(tree.l, subject) || naive(tree.r, subject)
  }
}

function countTerms(tree: Tree): number {
  return tree.t === 'term'
    ? 1
    : tree.t === 'not'
      ? countTerms(tree.arg)
      : countTerms(tree.l) + countTerms(tree.r)
}

const valueArb = fc.constantFrom('a', 'b', 'ab', 'ba', 'aa', '')
const subjectArb: fc.Arbitrary<FilterSubject> = fc.record({
  name: valueArb,
  zone: valueArb,
  facts: fc.dictionary(fc.constantFrom('os', 'tier'), valueArb, { maxKeys: 2 }),
})

describe('--where property', () => {
  it('parse + evaluate agrees with the naive evaluator on random expressions', () => {
    fc.assert(
      fc.property(
        treeArb,
        fc.array(fc.boolean(), { minLength: 1, maxLength: 8 }),
        fc.array(subjectArb, { minLength: 1, maxLength: 6 }),
        (tree, coins, subjects) => {
          fc.pre(countTerms(tree) <= WHERE_TERMS_MAX)
          let i = 0
          const text = render(tree, () => coins[i++ % coins.length] === true && i % 3 === 0)
          let expr: ReturnType<typeof parseWhere>
          try {
            expr = parseWhere(text)
          } catch (err) {
            // Only the depth limit may refuse a generated expression.
            expect((err as FilterParseError).code).toBe('too-complex')
            return
          }
          for (const subject of subjects) {
            expect(matchesFilter({ where: text }, subject)).toBe(naive(tree, subject))
            expect(expr).toBeDefined()
          }
        },
      ),
      { numRuns: 1500 },
    )
  })
})
