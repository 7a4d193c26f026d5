/**
 * The deny list behind admission's connection gater: entries expire on the clock port (lazily, on
 * lookup), permanent entries never do, every hit is reported, and the list stays bounded by dropping
 * its oldest entry. Runs on a manual clock.
 */
import { describe, expect, it } from 'vitest'
import { createManualClock } from '../../src/node/clock.js'
import { createDenyList, DENIED_PEERS_MAX, DENY_TTL_MS } from '../../src/node/deny-list.js'

describe('deny list', () => {
  it('denies for the TTL, then forgets; denies for good without one; counts hits', () => {
    const clock = createManualClock()
    let hits = 0
    const list = createDenyList({ clock, onHit: () => hits++ })
    list.add('a', DENY_TTL_MS)
    list.add('b')
    expect(list.denies('a')).toBe(true)
    expect(list.denies('b')).toBe(true)
    expect(list.denies('c')).toBe(false)
    expect(hits).toBe(2)
    clock.advance(DENY_TTL_MS - 1)
    expect(list.denies('a')).toBe(true)
    clock.advance(1)
    expect(list.denies('a')).toBe(false)
    expect(list.denies('b')).toBe(true)
    expect(hits).toBe(4)
    expect(clock.pending()).toBe(0)
  })

  it('drops the oldest entry beyond DENIED_PEERS_MAX', () => {
    const list = createDenyList({ clock: createManualClock() })
    for (let i = 0; i <= DENIED_PEERS_MAX; i++) list.add(`p${i}`)
    expect(list.denies('p0')).toBe(false)
    expect(list.denies('p1')).toBe(true)
    expect(list.denies(`p${DENIED_PEERS_MAX}`)).toBe(true)
  })
})
