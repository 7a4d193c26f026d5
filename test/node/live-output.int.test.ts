// Proves live output end to end on real libp2p over @libp2p/memory, in a hand-built topology
// a1–b1–c1 plus a1–d1 (every other pair denied by admission, so c1's replies travel two hops through
// b1): a declared action that prints a line, sleeps, writes to stderr, sleeps and prints again streams
// to the requester a1 as signed `output` events, the first one long before the action ends, in the
// exact event shape the CLI renders, with seq 0, 1, 2… and the streams labelled; their data put
// together is the done's output. On d1 every chunk is lost before it leaves (its runs' live output is
// swallowed), and d1 still delivers its complete, signed done. A last test measures the time from the
// action writing its first line to the requester's event (printed with MESH_FIGURES=1).
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { CollectEvent } from '../../src/gossip/reply-collector.js'
import type { ActionRunOptions } from '../../src/node/actions/types.js'
import { startTopology, type TestNode, type TestTopology } from './harness.js'

/** Members stay alive through event-loop stalls of a loaded machine, so `expected` is stable. */
const LENIENT_TIMINGS = { suspectAfterMs: 3_000, deadAfterMs: 6_000 }

/** Prints its first line with the wall clock it was written at, then two more lines 0.6 s and 1.2 s later. */
const TICK = [
  process.execPath,
  '-e',
  "console.log('first ' + Date.now()); setTimeout(() => console.error('second'), 600); setTimeout(() => console.log('third'), 1200)",
]
/** One line with its wall clock, then 300 ms of nothing: for the latency figure. */
const QUICK = [process.execPath, '-e', "console.log('first ' + Date.now()); setTimeout(() => {}, 300)"]

const config = {
  ...LENIENT_TIMINGS,
  actions: { tick: { argv: TICK }, quick: { argv: QUICK } },
  policy: [{ actions: ['tick', 'quick'] }],
}

type OutputEvent = Extract<CollectEvent, { kind: 'output' }>

describe('live output over a1–b1–c1 (+ a1–d1, whose chunks are lost)', () => {
  let mesh: TestTopology
  let a1: TestNode
  let d1: TestNode

  beforeAll(async () => {
    mesh = await startTopology(
      [
        { name: 'a1', zone: 'core', ca: true, operator: true, config: LENIENT_TIMINGS },
        { name: 'b1', zone: 'relay', config: LENIENT_TIMINGS },
        { name: 'c1', zone: 'edge', config },
        { name: 'd1', zone: 'side', config },
      ],
      [
        ['a1', 'b1'],
        ['b1', 'c1'],
        ['a1', 'd1'],
      ],
      { transport: 'memory' },
    )
    a1 = mesh.node('a1')
    d1 = mesh.node('d1')
    // Every chunk d1 would send is lost: its runs' live output goes nowhere.
    const run = d1.actions.run.bind(d1.actions)
    d1.actions.run = (name: string, args: readonly string[], options?: ActionRunOptions) =>
      run(name, args, { ...options, onOutput: () => {} })
    await mesh.converge()
  })
  afterAll(async () => {
    await mesh?.stop()
  })

  it('streams the first line long before the action ends, then the done with all of it', async () => {
    const events: { atMs: number; event: CollectEvent }[] = []
    const result = await a1.exec({
      action: 'tick',
      filter: { where: 'zone=edge or zone=side' },
      timeoutMs: 15_000,
      onEvent: event => {
        if (event.kind !== 'published') events.push({ atMs: Date.now(), event })
      },
    })
    expect(result.expected).toEqual(['c1', 'd1'])
    expect(result.missing).toEqual([])
    const outputs = events.filter(e => e.event.kind === 'output') as { atMs: number; event: OutputEvent }[]
    const doneAt = (node: string) =>
      events.find(e => e.event.kind === 'done' && e.event.reply.node === node)?.atMs ?? Number.NaN

    // c1: every chunk in order, the first one arriving while the action still slept.
    const c1Outputs = outputs.filter(e => e.event.node === 'c1')
    expect(c1Outputs.length).toBeGreaterThanOrEqual(3)
    expect(c1Outputs[0]!.event.data).toMatch(/^first \d+\n/)
    expect(c1Outputs[0]!.atMs).toBeLessThan(doneAt('c1') - 500)
    expect(c1Outputs.map(e => e.event.seq)).toEqual(c1Outputs.map((_, i) => i))
    for (const { event } of c1Outputs) {
      expect(Object.keys(event).sort()).toEqual(['data', 'kind', 'node', 'seq', 'stream'])
    }
    expect(c1Outputs.find(e => e.event.data === 'second\n')?.event.stream).toBe('stderr')
    expect(c1Outputs.every(e => e.atMs <= doneAt('c1'))).toBe(true)
    const c1Done = result.replies.find(r => r.node === 'c1')
    expect(c1Done).toMatchObject({ status: 'ok', exitCode: 0, outputTruncated: false })
    expect(c1Done?.output).toMatch(/^first \d+\nsecond\nthird\n$/)
    expect(c1Outputs.map(e => e.event.data).join('')).toBe(c1Done?.output)

    // d1: nothing streamed, and its done is complete all the same.
    expect(outputs.filter(e => e.event.node === 'd1')).toEqual([])
    const d1Done = result.replies.find(r => r.node === 'd1')
    expect(d1Done).toMatchObject({ status: 'ok', exitCode: 0, outputTruncated: false })
    expect(d1Done?.output).toMatch(/^first \d+\nsecond\nthird\n$/)
  })

  it('measures the time from the first line written to the requester seeing it', async () => {
    const lineToEventMs: number[] = []
    const execToEventMs: number[] = []
    for (let i = 0; i < 5; i++) {
      const startedAt = Date.now()
      let first: { atMs: number; data: string } | undefined
      const result = await a1.exec({
        action: 'quick',
        filter: { zone: 'edge' },
        timeoutMs: 10_000,
        onEvent: event => {
          if (event.kind === 'output' && first === undefined) first = { atMs: Date.now(), data: event.data }
        },
      })
      expect(result.missing).toEqual([])
      expect(first).toBeDefined()
      const writtenAtMs = Number(/^first (\d+)/.exec(first!.data)?.[1])
      lineToEventMs.push(first!.atMs - writtenAtMs)
      execToEventMs.push(first!.atMs - startedAt)
    }
    const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!
    if (process.env.MESH_FIGURES === '1') {
      process.stdout.write(
        `live output, 2 hops over memory: line written → event median ${median(lineToEventMs)} ms (${lineToEventMs.join(', ')}); exec call → first line median ${median(execToEventMs)} ms (${execToEventMs.join(', ')})\n`,
      )
    }
    // The coalescing delay (100 ms) plus two hops: well under the action's own run time on any machine.
    expect(median(lineToEventMs)).toBeGreaterThanOrEqual(0)
    expect(median(lineToEventMs)).toBeLessThan(1_000)
  })
})
