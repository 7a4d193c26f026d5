// Proves the runner's live-output hook (`onOutput` of a run): a declared action's stdout and stderr
// reach it piece by piece while the process still runs, in order and labelled by stream, and in total
// exactly the bytes the run keeps (its output limit); a callback that throws does not break the run;
// an in-process handler's `write` streams what it writes, which then leads its result's output, and
// what it writes after its run ended is neither streamed nor kept.
import { describe, expect, it } from 'vitest'
import type { OutputStream } from '../../../src/gossip/reply.js'
import { NODE, useActionRegistries } from './helpers.js'

const { registry } = useActionRegistries()

/** Collects the pieces a run streams, with whether the run had ended when each came. */
function recorder() {
  const pieces: { stream: OutputStream; text: string; afterEnd: boolean }[] = []
  let ended = false
  return {
    pieces,
    end: () => {
      ended = true
    },
    onOutput: (stream: OutputStream, data: Uint8Array) =>
      pieces.push({ stream, text: Buffer.from(data).toString('utf8'), afterEnd: ended }),
  }
}

describe('live output of a run', () => {
  it('streams a declared action while it runs, in order, by stream', async () => {
    const script =
      "process.stdout.write('one\\n'); setTimeout(() => { process.stderr.write('two\\n'); process.stdout.write('three\\n') }, 400)"
    const r = registry({ actions: { slow: { argv: [NODE, '-e', script] } } })
    const rec = recorder()
    const running = r.run('slow', [], { onOutput: rec.onOutput })
    // The first line arrives while the process still sleeps.
    const deadline = Date.now() + 5_000
    while (rec.pieces.length === 0 && Date.now() < deadline) await new Promise(res => setTimeout(res, 10))
    expect(rec.pieces[0]).toEqual({ stream: 'stdout', text: 'one\n', afterEnd: false })
    const result = await running
    rec.end()
    expect(result.status).toBe('ok')
    expect(rec.pieces.map(p => [p.stream, p.text])).toEqual([
      ['stdout', 'one\n'],
      ['stderr', 'two\n'],
      ['stdout', 'three\n'],
    ])
    expect(rec.pieces.map(p => p.text).join('')).toBe(result.output)
  })

  it('hands over exactly the bytes the run keeps, at most its output limit', async () => {
    const script = "process.stdout.write('x'.repeat(100000))"
    const r = registry({ actions: { loud: { argv: [NODE, '-e', script], outputBytesMax: 1000 } } })
    const rec = recorder()
    const result = await r.run('loud', [], { onOutput: rec.onOutput })
    expect(result).toMatchObject({ status: 'ok', truncated: true, outputBytes: 100_000 })
    expect(rec.pieces.map(p => p.text).join('')).toBe('x'.repeat(1000))
    expect(result.output).toBe('x'.repeat(1000))
  })

  it('is not broken by a callback that throws', async () => {
    const r = registry({ actions: { greet: { argv: ['echo', 'hello'] } } })
    const result = await r.run('greet', [], {
      onOutput: () => {
        throw new Error('a broken sink')
      },
    })
    expect(result).toMatchObject({ status: 'ok', output: 'hello\n' })
  })

  it("streams a handler's writes, which lead its output; late writes go nowhere", async () => {
    const r = registry()
    let late: (() => void) | undefined
    r.register('chatty', async context => {
      context.write('stdout', 'working\n')
      context.write('stderr', new TextEncoder().encode('warning\n'))
      late = () => context.write('stdout', 'too late\n')
      return { exitCode: 0, output: 'result\n' }
    })
    const rec = recorder()
    const result = await r.run('chatty', [], { onOutput: rec.onOutput })
    late?.()
    expect(rec.pieces.map(p => [p.stream, p.text])).toEqual([
      ['stdout', 'working\n'],
      ['stderr', 'warning\n'],
    ])
    expect(result.output).toBe('working\nwarning\nresult\n')
  })

  it('keeps what a handler wrote before its time limit stopped it', async () => {
    const r = registry()
    r.register(
      'stuck',
      async context => {
        context.write('stdout', 'started\n')
        return new Promise(() => {})
      },
      { timeoutMs: 100 },
    )
    const rec = recorder()
    const result = await r.run('stuck', [], { onOutput: rec.onOutput })
    expect(result).toMatchObject({ status: 'failed', timedOut: true, output: 'started\n' })
    expect(rec.pieces.map(p => p.text)).toEqual(['started\n'])
  })
})
