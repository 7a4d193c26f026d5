// Proves on a seven-node mesh over 127.0.0.1 (three zones, user tags as facts) that every kind of
// target filter selects exactly the right nodes: for each filter the requester's `expected` set, the
// set of nodes that replied, and the set of nodes whose validator chose to run the request (read from
// each node's counters once all seven have seen it) all equal a set computed by hand from the table.
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { TargetFilter } from '../../src/gossip/filter.js'
import type { MeshNode } from '../../src/node/node-types.js'
import { startTestMesh, type TestMesh, waitFor } from './harness.js'

/** The mesh: name, zone and the tags each node publishes as facts. */
const NODES: ReadonlyArray<{ name: string; zone: string; tags: Record<string, string> }> = [
  { name: 'c1', zone: 'core', tags: {} },
  { name: 'w1', zone: 'web', tags: { env: 'prod', rack: 'r1', kind: 'linux' } },
  { name: 'w2', zone: 'web', tags: { env: 'staging', rack: 'r2' } },
  { name: 'w3', zone: 'web', tags: { env: 'prod', rack: 'r12', kind: 'freebsd' } },
  { name: 'd1', zone: 'db', tags: { env: 'prod', rack: 'r1', kind: 'freebsd' } },
  { name: 'd2', zone: 'db', tags: { env: 'prod', rack: 'r2' } },
  { name: 'd3', zone: 'db', tags: { env: 'staging', rack: 'r3' } },
]

/** Filters and the nodes they select, worked out by hand from {@link NODES}. */
const CASES: ReadonlyArray<{ what: string; filter: TargetFilter; selects: string[] }> = [
  { what: '--zone db', filter: { zone: 'db' }, selects: ['d1', 'd2', 'd3'] },
  { what: '--node glob w*', filter: { node: 'w*' }, selects: ['w1', 'w2', 'w3'] },
  { what: '--node glob ?1', filter: { node: '?1' }, selects: ['c1', 'd1', 'w1'] },
  { what: '--node /^[cd]/', filter: { node: '/^[cd]/' }, selects: ['c1', 'd1', 'd2', 'd3'] },
  {
    what: '--fact env=prod (exact)',
    filter: { facts: [{ key: 'env', pattern: 'prod' }] },
    selects: ['d1', 'd2', 'w1', 'w3'],
  },
  {
    what: '--fact rack=r1* (glob)',
    filter: { facts: [{ key: 'rack', pattern: 'r1*' }] },
    selects: ['d1', 'w1', 'w3'],
  },
  {
    what: '--fact rack=/^r[23]$/ (regex)',
    filter: { facts: [{ key: 'rack', pattern: '/^r[23]$/' }] },
    selects: ['d2', 'd3', 'w2'],
  },
  {
    what: '--fact kind=/bsd/ (unanchored regex; nodes without the fact never match)',
    filter: { facts: [{ key: 'kind', pattern: '/bsd/' }] },
    selects: ['d1', 'w3'],
  },
  {
    what: 'two --fact entries (AND)',
    filter: {
      facts: [
        { key: 'env', pattern: 'prod' },
        { key: 'rack', pattern: '/^r[12]$/' },
      ],
    },
    selects: ['d1', 'd2', 'w1'],
  },
  {
    what: "CLI.md's --where example",
    filter: { where: 'zone=db and not (name=d2 or os=/bsd/)' },
    selects: ['d1', 'd3'],
  },
  {
    what: '--where with not over a parenthesised or of a name and a fact regex',
    filter: { where: 'zone=db and not (name=d2 or kind=/bsd/)' },
    selects: ['d3'],
  },
  {
    what: '--where with != (true for a node without the fact)',
    filter: { where: '(zone=web or zone=core) and env!=staging' },
    selects: ['c1', 'w1', 'w3'],
  },
  {
    what: '--where precedence: NOT > AND > OR',
    filter: { where: 'NOT zone=web AND rack=/^r[12]$/ OR name=w2' },
    selects: ['d1', 'd2', 'w2'],
  },
  {
    what: '--zone, --node, two --fact and --where combined (AND)',
    filter: {
      zone: 'web',
      node: 'w*',
      facts: [
        { key: 'env', pattern: 'prod' },
        { key: 'rack', pattern: 'r1*' },
      ],
      where: 'not kind=/bsd/',
    },
    selects: ['w1'],
  },
  { what: '--zone with --where', filter: { zone: 'db', where: 'env=prod' }, selects: ['d1', 'd2'] },
  { what: 'filters that exclude each other', filter: { zone: 'db', node: 'w*' }, selects: [] },
]

/** Members stay alive through event-loop stalls of a loaded machine, so `expected` is stable. */
const LENIENT_TIMINGS = { suspectAfterMs: 3_000, deadAfterMs: 6_000 }

const requestsSeen = (node: MeshNode): number =>
  Object.values(node.counters().requests).reduce((sum, n) => sum + n, 0)
const executed = (node: MeshNode): number => node.counters().requests['accept-execute'] ?? 0

describe('exec target filters on a seven-node mesh', () => {
  let mesh: TestMesh
  beforeAll(async () => {
    mesh = await startTestMesh(
      NODES.map(n => ({
        name: n.name,
        zone: n.zone,
        config: { tags: n.tags, ...LENIENT_TIMINGS },
        ...(n.name === 'c1' ? { ca: true, operator: true } : {}),
      })),
    )
    await mesh.converge()
    // Every node must have published its tags before the requester computes whom to expect.
    await waitFor(
      () =>
        mesh
          .node('c1')
          .members()
          .every(m => m.facts.env === NODES.find(n => n.name === m.name)?.tags.env),
      10_000,
      'every member to carry its tags',
    )
  })
  afterAll(async () => {
    await mesh?.stop()
  })

  it('runs on a platform whose os fact is not /bsd/ (premise of the CLI.md example)', () => {
    for (const member of mesh.node('c1').members()) expect(member.facts.os).not.toMatch(/bsd/)
  })

  it.each(CASES)('$what selects exactly $selects', async ({ filter, selects }) => {
    const seenBefore = mesh.nodes.map(requestsSeen)
    const executedBefore = mesh.nodes.map(executed)
    const result = await mesh.node('c1').exec({ action: 'ping', filter, timeoutMs: 10_000 })

    expect(result.expected).toEqual(selects)
    expect(result.missing).toEqual([])
    expect(result.unexpected).toEqual([])
    expect(result.replies.map(r => r.node).sort()).toEqual(selects)
    expect(result.replies.every(r => r.status === 'ok')).toBe(true)

    // Each node evaluates the filter once; then exactly the selected ones have run it.
    await waitFor(
      () => mesh.nodes.every((n, i) => requestsSeen(n) === seenBefore[i]! + 1),
      10_000,
      'every node to validate the request',
    )
    const ran = mesh.nodes.filter((n, i) => executed(n) === executedBefore[i]! + 1).map(n => n.name)
    expect(ran.sort()).toEqual(selects)
  })
})
