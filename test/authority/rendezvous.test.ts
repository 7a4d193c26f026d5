/**
 * Proves the HRW ranking: it is deterministic and input-order independent, removing a candidate never
 * reorders the rest, zones rank differently, and it agrees with a naive implementation that sorts by
 * the SHA-256 of the CBOR pair compared byte by byte.
 */
import fc from 'fast-check'
import { describe, expect, test } from 'vitest'
import { rankCandidates, rendezvousScore } from '../../src/authority/rendezvous.js'
import { encodeCbor } from '../../src/wire/cbor.js'
import { hash } from '../../src/wire/hash.js'

function naiveRank(zone: string, candidates: string[]): string[] {
  const unique = [...new Set(candidates)]
  const score = (id: string): number[] => [...hash(encodeCbor([zone, id]))]
  return unique.sort((a, b) => {
    const sa = score(a)
    const sb = score(b)
    for (let i = 0; i < sa.length; i++) if (sa[i] !== sb[i]) return (sb[i] ?? 0) - (sa[i] ?? 0)
    return a < b ? -1 : 1
  })
}

const names = fc.uniqueArray(fc.string({ minLength: 1, maxLength: 8 }), { maxLength: 12 })

describe('rendezvous ranking', () => {
  test('known scores are stable (hex SHA-256 of the CBOR pair)', () => {
    expect(rendezvousScore('core', 'n1')).toMatch(/^[0-9a-f]{64}$/)
    expect(rendezvousScore('core', 'n1')).toBe(rendezvousScore('core', 'n1'))
    expect(rendezvousScore('ab', 'c')).not.toBe(rendezvousScore('a', 'bc'))
  })

  test('table: fixed ranking for a known zone', () => {
    expect(rankCandidates('core', ['n1', 'n2', 'n3', 'n4', 'n5'])).toEqual(
      naiveRank('core', ['n1', 'n2', 'n3', 'n4', 'n5']),
    )
    expect(rankCandidates('core', [])).toEqual([])
    expect(rankCandidates('core', ['x', 'x'])).toEqual(['x'])
  })

  test('agrees with the naive implementation', () => {
    fc.assert(
      fc.property(fc.string(), names, (zone, c) => {
        expect(rankCandidates(zone, c)).toEqual(naiveRank(zone, c))
      }),
    )
  })

  test('is independent of input order and does not mutate its input', () => {
    fc.assert(
      fc.property(fc.string(), names, (zone, c) => {
        const copy = [...c]
        const ranked = rankCandidates(zone, c)
        expect(c).toEqual(copy)
        expect(rankCandidates(zone, [...c].reverse())).toEqual(ranked)
      }),
    )
  })

  test('removing a candidate keeps the relative order of the others', () => {
    fc.assert(
      fc.property(fc.string(), names, fc.nat(), (zone, c, i) => {
        fc.pre(c.length > 0)
        const removed = c[i % c.length]
        const without = rankCandidates(zone, c).filter(id => id !== removed)
        expect(
          rankCandidates(
            zone,
            c.filter(id => id !== removed),
          ),
        ).toEqual(without)
      }),
    )
  })

  test('different zones prefer different nodes (spread)', () => {
    const nodes = Array.from({ length: 10 }, (_, i) => `node-${i}`)
    const tops = new Set(Array.from({ length: 50 }, (_, z) => rankCandidates(`zone-${z}`, nodes)[0]))
    expect(tops.size).toBeGreaterThan(5)
  })
})
