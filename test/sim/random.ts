/** Seeded pseudo-random numbers for the simulator (sfc32 seeded through splitmix32): one seed, one run. */

/** A deterministic generator of numbers in [0, 1) plus helpers. */
export interface SimRandom {
  next(): number
  /** Integer in [min, max] inclusive. */
  int(min: number, max: number): number
  /** True with probability `p`. */
  chance(p: number): boolean
  /** One element of a non-empty list. */
  pick<T>(items: readonly T[]): T
  /** A new independent generator derived from this one. */
  fork(): SimRandom
}

function splitmix32(seed: number): () => number {
  let a = seed >>> 0
  return () => {
    a = (a + 0x9e3779b9) >>> 0
    let t = a ^ (a >>> 16)
    t = Math.imul(t, 0x21f0aaad)
    t ^= t >>> 15
    t = Math.imul(t, 0x735a2d97)
    t ^= t >>> 15
    return t >>> 0
  }
}

/** Generator for `seed` (any safe integer). */
export function simRandom(seed: number): SimRandom {
  const init = splitmix32(seed ^ Math.floor(seed / 2 ** 32))
  let a = init()
  let b = init()
  let c = init()
  let d = init()
  const next = (): number => {
    a >>>= 0
    b >>>= 0
    c >>>= 0
    d >>>= 0
    const t = (((a + b) >>> 0) + d) >>> 0
    d = (d + 1) >>> 0
    a = b ^ (b >>> 9)
    b = (c + (c << 3)) >>> 0
    c = (c << 21) | (c >>> 11)
    c = (c + t) >>> 0
    return t / 4294967296
  }
  const self: SimRandom = {
    next,
    int: (min, max) => min + Math.floor(next() * (max - min + 1)),
    chance: p => next() < p,
    pick: items => {
      const item = items[Math.floor(next() * items.length)]
      if (item === undefined) throw new Error('pick from an empty list')
      return item
    },
    fork: () => simRandom(Math.floor(next() * 2 ** 32)),
  }
  return self
}
