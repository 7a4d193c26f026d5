// Proves the pieces of the CA replication core (src/ca/replication.ts) by tables and small exchanges
// stepped by hand: ballot order, the holder's promise and store rules (fencing), that a change is
// committed only on a majority, that recovery adopts the highest state of a majority (fetching it,
// checking its hash), that one holder alone serves at once, and that the wire codec round-trips and
// refuses malformed or oversized messages.
import { describe, expect, it } from 'vitest'
import {
  type Ballot,
  compareBallots,
  createReplica,
  parseReplicaMessage,
  type Replica,
  type ReplicaEffect,
  type ReplicaMessage,
  ReplicaMessageError,
  type ReplicaRecord,
  replicaMajority,
  replicaMessageContent,
} from '../../src/ca/replication.js'
import { type CborValue, decodeCbor, encodeCbor } from '../../src/wire/cbor.js'
import { hash } from '../../src/wire/hash.js'

const ids = ['a', 'b', 'c']
const genesisState = new Uint8Array([1])
const genesis: ReplicaRecord = {
  promised: null,
  accepted: {
    ballot: { epoch: 0, round: 0, issuer: 'a' },
    version: 1,
    hash: hash(genesisState),
    state: genesisState,
  },
}

function replicas(record: ReplicaRecord = genesis): Map<string, Replica> {
  return new Map(ids.map(id => [id, createReplica({ self: id, holders: ids, record })]))
}

/** Delivers every send among `nodes` until quiet (or only to `reachable`), returns non-send effects. */
function settle(nodes: Map<string, Replica>, reachable: (from: string, to: string) => boolean = () => true) {
  const out: { id: string; effect: ReplicaEffect }[] = []
  let moved = true
  while (moved) {
    moved = false
    for (const [id, node] of nodes) {
      for (const effect of node.drainEffects()) {
        if (effect.type !== 'send') {
          out.push({ id, effect })
          continue
        }
        moved = true
        if (!reachable(id, effect.to)) continue
        nodes.get(effect.to)?.step({ type: 'message', from: id, message: effect.message }, 0)
      }
    }
  }
  return out
}

describe('ballots', () => {
  it.each([
    [{ epoch: 1, round: 0, issuer: 'z' }, { epoch: 2, round: 0, issuer: 'a' }, -1],
    [{ epoch: 2, round: 1, issuer: 'a' }, { epoch: 2, round: 0, issuer: 'z' }, 1],
    [{ epoch: 2, round: 0, issuer: 'a' }, { epoch: 2, round: 0, issuer: 'b' }, -1],
    [{ epoch: 2, round: 0, issuer: 'a' }, { epoch: 2, round: 0, issuer: 'a' }, 0],
  ])('%o vs %o', (a: Ballot, b: Ballot, sign: number) => {
    expect(Math.sign(compareBallots(a, b))).toBe(sign)
  })
  it('majorities', () => {
    expect([1, 2, 3, 4, 5, 7].map(replicaMajority)).toEqual([1, 2, 2, 3, 3, 4])
  })
})

describe('replica', () => {
  it('recovers from a majority, then commits a change only once a majority stored it', () => {
    const nodes = replicas()
    const a = nodes.get('a') as Replica
    a.step({ type: 'become-issuer', epoch: 1 }, 0)
    const onlyB = (from: string, to: string) => to !== 'c' && from !== 'c'
    const ready = settle(nodes, onlyB).filter(e => e.effect.type === 'ready')
    expect(ready).toHaveLength(1)
    expect(a.role()).toBe('serving')
    a.step({ type: 'propose', state: new Uint8Array([2]) }, 0)
    // b unreachable too: a's own store is one of three, not a majority.
    const lonely = settle(nodes, () => false)
    expect(lonely.some(e => e.effect.type === 'committed')).toBe(false)
    expect(a.inFlight()).toBe(true)
    a.tick(1_000) // retry reaches b now
    expect(settle(nodes, onlyB).some(e => e.effect.type === 'committed')).toBe(true)
  })

  it('a higher ballot fences the old issuer: its store is refused and it is deposed', () => {
    const nodes = replicas()
    const [a, b] = [nodes.get('a') as Replica, nodes.get('b') as Replica]
    a.step({ type: 'become-issuer', epoch: 1 }, 0)
    settle(nodes)
    b.step({ type: 'become-issuer', epoch: 2 }, 0)
    settle(nodes, (from, to) => from !== 'a' && to !== 'a')
    expect(b.role()).toBe('serving')
    a.step({ type: 'propose', state: new Uint8Array([9]) }, 0)
    const effects = settle(nodes)
    expect(effects.filter(e => e.effect.type === 'committed')).toEqual([])
    expect(effects.find(e => e.id === 'a' && e.effect.type === 'deposed')?.effect).toMatchObject({
      reason: 'fenced',
      by: { epoch: 2, issuer: 'b' },
    })
    expect(a.role()).toBe('holder')
    expect(a.issuerHint()).toBe('b')
  })

  it('recovery adopts the highest state of its majority, fetched and hash-checked', () => {
    const nodes = replicas()
    const [a, c] = [nodes.get('a') as Replica, nodes.get('c') as Replica]
    a.step({ type: 'become-issuer', epoch: 1 }, 0)
    settle(nodes)
    a.step({ type: 'propose', state: new Uint8Array([7, 7]) }, 0)
    settle(nodes, (from, to) => to !== 'c' && from !== 'c') // committed on a and b
    c.step({ type: 'become-issuer', epoch: 2 }, 0)
    const effects = settle(nodes, (from, to) => from !== 'a' && to !== 'a') // c with b only
    const ready = effects.find(e => e.effect.type === 'ready')?.effect
    expect(ready).toMatchObject({ type: 'ready', state: new Uint8Array([7, 7]) })
  })

  it('an issuer re-granted the same epoch after a restart uses a higher round', () => {
    const nodes = replicas()
    nodes.get('a')?.step({ type: 'become-issuer', epoch: 3 }, 0)
    settle(nodes)
    const restarted = createReplica({
      self: 'a',
      holders: ids,
      record: nodes.get('a')?.record() as ReplicaRecord,
    })
    restarted.step({ type: 'become-issuer', epoch: 3 }, 0)
    expect(restarted.ballot()).toEqual({ epoch: 3, round: 1, issuer: 'a' })
  })

  it('with no state on a majority it refuses to invent an empty CA', () => {
    const nodes = new Map(ids.map(id => [id, createReplica({ self: id, holders: ids })]))
    nodes.get('a')?.step({ type: 'become-issuer', epoch: 1 }, 0)
    expect(settle(nodes).find(e => e.effect.type === 'deposed')?.effect).toMatchObject({ reason: 'no-state' })
  })

  it('messages from outside the holder set, or claiming another issuer, are ignored', () => {
    const b = createReplica({ self: 'b', holders: ids, record: genesis })
    b.step(
      {
        type: 'message',
        from: 'x',
        message: { type: 'prepare', ballot: { epoch: 9, round: 0, issuer: 'x' } },
      },
      0,
    )
    b.step(
      {
        type: 'message',
        from: 'a',
        message: { type: 'prepare', ballot: { epoch: 9, round: 0, issuer: 'c' } },
      },
      0,
    )
    expect(b.drainEffects()).toEqual([])
    expect(b.counters().ignored).toBe(2)
  })

  it('rejects a bad holder set', () => {
    expect(() => createReplica({ self: 'a', holders: [] })).toThrow(TypeError)
    expect(() => createReplica({ self: 'a', holders: ['b'] })).toThrow(TypeError)
    expect(() => createReplica({ self: 'a', holders: ['a', 'a'] })).toThrow(TypeError)
  })
})

describe('wire codec', () => {
  const ballot = { epoch: 4, round: 1, issuer: 'a' }
  const accepted = { ballot, version: 3, hash: hash(new Uint8Array([1])) }
  const messages: ReplicaMessage[] = [
    { type: 'prepare', ballot },
    { type: 'promise', ballot, accepted: null },
    { type: 'promise', ballot, accepted },
    { type: 'refuse', ballot, promised: { ...ballot, epoch: 5 } },
    { type: 'fetch', ballot },
    { type: 'state', ballot, accepted, state: new Uint8Array([1]) },
    { type: 'store', ballot, version: 3, state: new Uint8Array([1, 2]) },
    { type: 'stored', ballot, version: 3 },
  ]
  it.each(messages)('round-trips %o', message => {
    const bytes = encodeCbor(replicaMessageContent(message) as CborValue)
    expect(parseReplicaMessage(decodeCbor(bytes, 1024))).toEqual(message)
  })
  it.each([
    [{ type: 'prepare' }],
    [{ type: 'nope', ballot }],
    [{ type: 'prepare', ballot, state: new Uint8Array() }],
    [{ type: 'store', ballot: { ...ballot, epoch: -1 }, version: 1, state: new Uint8Array() }],
    [{ type: 'store', ballot, version: 1, state: new Uint8Array(11) }],
    [{ type: 'prepare', ballot: { ...ballot, issuer: 'x'.repeat(129) } }],
  ])('refuses %o', content => {
    expect(() => parseReplicaMessage(content, 10)).toThrow(ReplicaMessageError)
  })
})
