/**
 * Rendezvous (highest-random-weight) ranking: every node computes the same preference order of
 * candidates for a zone from nothing but the zone name and the node ids, so the top-ranked live
 * candidate can campaign without any coordination, and removing one candidate never reorders the
 * others.
 */
import { encodeCbor } from '../wire/cbor.js'
import { hash, toHex } from '../wire/hash.js'

/**
 * HRW score of `nodeId` for `zone`: SHA-256 of the canonical CBOR pair [zone, nodeId], as lower-case
 * hex (so string order equals byte order). The pair encoding keeps ("ab","c") and ("a","bc") apart.
 */
export function rendezvousScore(zone: string, nodeId: string): string {
  return toHex(hash(encodeCbor([zone, nodeId])))
}

/**
 * `candidates` ordered from most to least preferred for `zone`: highest score first, ties (only
 * possible for equal scores, i.e. never in practice) broken by ascending node id. Duplicates are
 * dropped. Returns a new array; the input is not modified.
 */
export function rankCandidates(zone: string, candidates: Iterable<string>): string[] {
  const scored = [...new Set(candidates)].map(id => ({ id, score: rendezvousScore(zone, id) }))
  scored.sort((a, b) => {
    if (a.score !== b.score) return a.score > b.score ? -1 : 1
    return a.id < b.id ? -1 : a.id > b.id ? 1 : 0
  })
  return scored.map(entry => entry.id)
}
