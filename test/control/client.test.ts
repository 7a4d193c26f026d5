// Proves the control client's contract over real Unix sockets in a temp home: cancel and disconnect
// abort the server handler, a missing agent is reported in one clear line, one-shot calls work, timeouts
// run on the injected clock, and the channel loads node built-ins only (no libp2p on the CLI path).
import { readFile } from 'node:fs/promises'
import { describe, expect, it } from 'vitest'
import { ControlError, callControl, connectControl } from '../../src/control/index.js'
import { createManualClock } from '../../src/node/clock.js'
import { aborted, codeOf, connect, home, path, serve, useControlHome } from './harness.js'

useControlHome()

describe('cancellation', () => {
  it('a client abort aborts the server handler', async () => {
    let started: () => void = () => undefined
    const running = new Promise<void>(resolve => (started = resolve))
    let handlerStopped = false
    await serve({
      hang: async (_params, { signal }) => {
        started()
        await aborted(signal)
        handlerStopped = true
        return 'late'
      },
    })
    const client = await connect()
    const controller = new AbortController()
    const call = client.call('hang', null, { signal: controller.signal })
    await running
    controller.abort()
    expect(await codeOf(call)).toBe('aborted')
    await expect.poll(() => handlerStopped).toBe(true)
    // The connection stays usable after a cancel.
    expect(await codeOf(client.call('nope'))).toBe('unknown-method')
  })

  it('a client disconnect aborts its handlers', async () => {
    let signal: AbortSignal | undefined
    const server = await serve({
      hang: async (_params, context) => {
        signal = context.signal
        await aborted(context.signal)
      },
    })
    const client = await connect()
    const outcome = codeOf(client.call('hang'))
    await expect.poll(() => signal !== undefined).toBe(true)
    client.close()
    expect(await outcome).toBe('connection-closed')
    await expect.poll(() => signal?.aborted).toBe(true)
    await expect.poll(() => server.clientCount()).toBe(0)
  })

  it('an already aborted signal never sends the call', async () => {
    let calls = 0
    await serve({ count: async () => ++calls })
    const client = await connect()
    expect(await codeOf(client.call('count', null, { signal: AbortSignal.abort() }))).toBe('aborted')
    expect(await client.call('count')).toBe(1)
  })
})

describe('the client', () => {
  it('says clearly when no agent runs', async () => {
    const error = await connectControl(path).catch(e => e)
    expect(error).toBeInstanceOf(ControlError)
    expect(error).toMatchObject({
      code: 'agent-not-running',
      message: `no agent running in ${home}; start it with 'mesh agent'`,
    })
    expect(await codeOf(callControl(path, 'ping'))).toBe('agent-not-running')
  })

  it('makes one-shot calls', async () => {
    await serve({ ping: async () => 'pong' })
    expect(await callControl(path, 'ping')).toBe('pong')
  })

  it('fails later calls after close', async () => {
    await serve({ ping: async () => 'pong' })
    const client = await connect()
    client.close()
    client.close()
    expect(await codeOf(client.call('ping'))).toBe('connection-closed')
  })

  it('times out on the injected clock', async () => {
    const clock = createManualClock()
    let handlerSignal: AbortSignal | undefined
    await serve({
      hang: async (_params, { signal }) => {
        handlerSignal = signal
        await aborted(signal)
      },
    })
    const client = await connect({ clock })
    let settled = false
    const outcome = codeOf(client.call('hang', null, { timeoutMs: 1_000 })).finally(() => {
      settled = true
    })
    await expect.poll(() => handlerSignal !== undefined).toBe(true)
    clock.advance(999)
    await new Promise(resolve => setImmediate(resolve))
    expect(settled).toBe(false)
    clock.advance(1)
    expect(await outcome).toBe('timeout')
    expect(clock.pending()).toBe(0)
    await expect.poll(() => handlerSignal?.aborted).toBe(true)
  })
})

/** The source of every module the control channel loads, following relative imports from its index. */
async function channelSources(): Promise<{ files: Map<string, string>; external: string[] }> {
  const files = new Map<string, string>()
  const external: string[] = []
  const queue = [new URL('../../src/control/index.ts', import.meta.url)]
  for (let url = queue.pop(); url !== undefined; url = queue.pop()) {
    if (files.has(url.pathname)) continue
    const source = await readFile(url, 'utf8')
    files.set(url.pathname, source)
    for (const m of source.matchAll(/^(?:import|export)\b[^;'"`=()]*?from '([^']+)'|^import '([^']+)'/gm)) {
      const specifier = (m[1] ?? m[2]) as string
      if (specifier.startsWith('.')) queue.push(new URL(specifier.replace(/\.js$/, '.ts'), url))
      else external.push(specifier)
    }
  }
  return { files, external }
}

describe('the channel as a whole', () => {
  it('imports node built-ins only (no libp2p on the CLI path)', async () => {
    const { files, external } = await channelSources()
    const names = [...files.keys()].map(file => file.split('/src/')[1])
    expect(names).toEqual(
      expect.arrayContaining([
        'control/index.ts',
        'control/protocol.ts',
        'control/line-reader.ts',
        'control/server.ts',
        'control/client.ts',
        'node/clock.ts',
      ]),
    )
    expect(external.length).toBeGreaterThan(0)
    for (const specifier of external) expect(specifier).toMatch(/^node:/)
  })

  it('takes time from the Clock port only', async () => {
    const { files } = await channelSources()
    for (const [file, source] of files) {
      if (file.endsWith('/node/clock.ts')) continue
      expect(source, file).not.toMatch(/\b(?:Date\.now|setTimeout|setInterval|performance\.now)\b/)
    }
  })
})
