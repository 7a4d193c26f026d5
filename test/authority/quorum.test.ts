/**
 * Proves the quorum arithmetic: tables of known answers, and fast-check properties against naive
 * brute-force definitions (count the distinct granting voters; enumerate subsets to check that every
 * two majorities intersect and that the recovery quorum meets every majority that excludes the
 * recovering voter).
 */
import fc from 'fast-check'
import { describe, expect, test } from 'vitest'
import {
  isJointQuorum,
  isQuorum,
  isQuorumPossible,
  majoritySize,
  recoveryQuorumSize,
} from '../../src/authority/quorum.js'

const ids = fc.uniqueArray(fc.constantFrom('a', 'b', 'c', 'd', 'e', 'f', 'g'), { maxLength: 7 })

function naiveQuorum(grants: string[], voters: string[]): boolean {
  const distinctVoters = [...new Set(voters)]
  const granted = distinctVoters.filter(v => grants.includes(v)).length
  return granted * 2 > distinctVoters.length && distinctVoters.length > 0
}

describe('majoritySize', () => {
  test.each([
    [0, 1],
    [1, 1],
    [2, 2],
    [3, 2],
    [4, 3],
    [5, 3],
    [7, 4],
  ])('%i voters need %i', (n, m) => expect(majoritySize(n)).toBe(m))

  test('refuses non-counts', () => {
    expect(() => majoritySize(-1)).toThrow(RangeError)
    expect(() => majoritySize(1.5)).toThrow(RangeError)
  })
})

describe('isQuorum', () => {
  test.each([
    [['a', 'b'], ['a', 'b', 'c'], true],
    [['a'], ['a', 'b', 'c'], false],
    [['a', 'a'], ['a', 'b', 'c'], false],
    [['a', 'x', 'y'], ['a', 'b', 'c'], false],
    [['a', 'b'], ['a', 'b', 'c', 'd'], false],
    [[], [], false],
    [['a'], ['a'], true],
  ])('%j of %j → %s', (grants, voters, expected) => expect(isQuorum(grants, voters)).toBe(expected))

  test('matches the naive count', () => {
    fc.assert(
      fc.property(ids, ids, (grants, voters) => isQuorum(grants, voters) === naiveQuorum(grants, voters)),
    )
  })

  test('any two quorums of one voter set intersect', () => {
    fc.assert(
      fc.property(ids, ids, ids, (voters, g1, g2) => {
        fc.pre(isQuorum(g1, voters) && isQuorum(g2, voters))
        return g1.some(id => g2.includes(id) && voters.includes(id))
      }),
    )
  })
})

describe('isJointQuorum', () => {
  test('requires a majority of every set', () => {
    expect(
      isJointQuorum(
        ['a', 'b'],
        [
          ['a', 'b', 'c'],
          ['a', 'b', 'd'],
        ],
      ),
    ).toBe(true)
    expect(
      isJointQuorum(
        ['a', 'c'],
        [
          ['a', 'b', 'c'],
          ['a', 'b', 'd'],
        ],
      ),
    ).toBe(false)
    expect(isJointQuorum(['a'], [])).toBe(false)
  })

  test('a joint quorum of old and new intersects any quorum of either (the membership-change rule)', () => {
    fc.assert(
      fc.property(ids, ids, ids, ids, (oldSet, newSet, joint, other) => {
        fc.pre(isJointQuorum(joint, [oldSet, newSet]))
        fc.pre(isQuorum(other, oldSet) || isQuorum(other, newSet))
        return joint.some(id => other.includes(id) && (oldSet.includes(id) || newSet.includes(id)))
      }),
    )
  })

  test('matches the naive definition', () => {
    fc.assert(
      fc.property(ids, fc.array(ids, { minLength: 1, maxLength: 3 }), (grants, sets) => {
        return isJointQuorum(grants, sets) === sets.every(s => naiveQuorum(grants, s))
      }),
    )
  })
})

describe('isQuorumPossible', () => {
  test.each([
    [[], [['a', 'b', 'c']], true],
    [['a'], [['a', 'b', 'c']], true],
    [['a', 'b'], [['a', 'b', 'c']], false],
    [['a'], [['a', 'b']], false],
    [
      ['d'],
      [
        ['a', 'b', 'c'],
        ['a', 'b', 'd'],
      ],
      true,
    ],
  ])('refused %j of %j → %s', (refused, sets, expected) =>
    expect(isQuorumPossible(refused, sets)).toBe(expected),
  )

  test('is exactly "the voters that did not refuse form a joint quorum"', () => {
    fc.assert(
      fc.property(ids, fc.array(ids, { minLength: 1, maxLength: 3 }), (refused, sets) => {
        const open = [...new Set(sets.flat())].filter(id => !refused.includes(id))
        return isQuorumPossible(refused, sets) === isJointQuorum(open, sets)
      }),
    )
  })
})

describe('recoveryQuorumSize', () => {
  test.each([
    [1, 0],
    [2, 1],
    [3, 2],
    [4, 2],
    [5, 3],
  ])('%i voters → hear from %i others', (n, k) => expect(recoveryQuorumSize(n)).toBe(k))

  test('any k others intersect every majority that excludes the recovering voter (brute force)', () => {
    for (let n = 2; n <= 7; n++) {
      const k = recoveryQuorumSize(n)
      const others = Array.from({ length: n - 1 }, (_, i) => i)
      const subsets = (size: number): number[][] => {
        const out: number[][] = []
        const walk = (start: number, acc: number[]): void => {
          if (acc.length === size) out.push([...acc])
          else for (let i = start; i < others.length; i++) walk(i + 1, [...acc, i])
        }
        walk(0, [])
        return out
      }
      // Majorities that exclude the recovering voter have majority(n) - 1 other members at least.
      for (const heard of subsets(k)) {
        for (const majorityRest of subsets(majoritySize(n) - 1)) {
          expect(
            heard.some(i => majorityRest.includes(i)),
            `n=${n}`,
          ).toBe(true)
        }
      }
    }
  })
})
