// Proves the control server's contract over real Unix sockets in a temp home: calls round-trip with
// streamed events and typed errors, limits refuse oversized lines and floods, a stale socket left by a
// SIGKILLed process is replaced, a live one is not, and mode is 0600.
import { spawn } from 'node:child_process'
import { readFile, stat, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { ControlError, connectControl, createControlServer } from '../../src/control/index.js'
import { aborted, codeOf, connect, home, path, rawExchange, serve, useControlHome } from './harness.js'

useControlHome()

describe('calls', () => {
  it('round-trip params and results', async () => {
    await serve({ echo: async params => ({ got: params }), nothing: async () => undefined })
    const client = await connect()
    expect(await client.call('echo', { a: [1, 'two'] })).toEqual({ got: { a: [1, 'two'] } })
    expect(await client.call('echo')).toEqual({ got: null })
    expect(await client.call('nothing')).toBeNull()
  })

  it('overlap on one connection', async () => {
    await serve({
      wait: async params => {
        const { ms } = params as { ms: number }
        await new Promise(resolve => setTimeout(resolve, ms))
        return ms
      },
    })
    const client = await connect()
    const order: number[] = []
    await Promise.all([80, 10, 40].map(ms => client.call('wait', { ms }).then(v => order.push(v as number))))
    expect(order).toEqual([10, 40, 80])
  })

  it('stream events in order before the result', async () => {
    await serve({
      count: async (_params, { emit }) => {
        for (let i = 0; i < 3; i++) emit('tick', { i })
        emit('bare')
        return 'done'
      },
    })
    const client = await connect()
    const events: unknown[] = []
    const result = await client.call('count', null, { onEvent: (event, data) => events.push([event, data]) })
    expect(result).toBe('done')
    expect(events).toEqual([
      ['tick', { i: 0 }],
      ['tick', { i: 1 }],
      ['tick', { i: 2 }],
      ['bare', null],
    ])
  })

  it('carry typed handler errors, and other exceptions as internal', async () => {
    await serve({
      picky: async () => {
        throw new ControlError('invalid-params', 'zone is required')
      },
      broken: async () => {
        throw new Error('bug')
      },
    })
    const client = await connect()
    const error = await client.call('picky').catch(e => e)
    expect(error).toMatchObject({ code: 'invalid-params', message: 'zone is required' })
    expect(await codeOf(client.call('broken'))).toBe('internal')
  })

  it('refuse unknown methods, inherited names included', async () => {
    await serve({ known: async () => 1 })
    const client = await connect()
    for (const method of ['nope', 'constructor', '__proto__', 'toString']) {
      expect(await codeOf(client.call(method))).toBe('unknown-method')
    }
    expect(await client.call('known')).toBe(1)
  })

  it('time out and cancel the handler', async () => {
    let handlerSignal: AbortSignal | undefined
    await serve({
      hang: async (_params, { signal }) => {
        handlerSignal = signal
        await aborted(signal)
        throw new ControlError('cancelled', 'stopped')
      },
    })
    const client = await connect()
    expect(await codeOf(client.call('hang', null, { timeoutMs: 50 }))).toBe('timeout')
    await expect.poll(() => handlerSignal?.aborted).toBe(true)
  })
})

describe('limits', () => {
  it('an oversized line is refused and the connection closed', async () => {
    const server = await serve({ echo: async p => p }, { lineBytesMax: 1_000 })
    const { frames, closed } = await rawExchange(
      `${JSON.stringify({ id: 1, method: 'echo', params: 'x'.repeat(2_000) })}\n`,
      2,
    )
    expect(frames).toEqual([{ id: null, error: { code: 'line-too-large', message: expect.any(String) } }])
    expect(closed).toBe(true)
    expect(server.counters().linesTooLarge).toBe(1)
  })

  it('an oversized line without a newline is refused too', async () => {
    await serve({ echo: async p => p }, { lineBytesMax: 1_000 })
    const { frames, closed } = await rawExchange('y'.repeat(5_000), 2)
    expect(frames).toMatchObject([{ error: { code: 'line-too-large' } }])
    expect(closed).toBe(true)
  })

  it('the client sees an oversized call refused', async () => {
    await serve({ echo: async p => p }, { lineBytesMax: 1_000 })
    const client = await connect()
    expect(await codeOf(client.call('echo', 'x'.repeat(2_000)))).toBe('line-too-large')
  })

  it('a line of exactly the limit is accepted', async () => {
    await serve({ echo: async () => 'ok' }, { lineBytesMax: 100 })
    const prefix = JSON.stringify({ id: 1, method: 'echo', params: '' })
    const line = JSON.stringify({ id: 1, method: 'echo', params: 'p'.repeat(100 - prefix.length) })
    expect(Buffer.byteLength(line)).toBe(100)
    const { frames } = await rawExchange(`${line}\n`, 1)
    expect(frames).toEqual([{ id: 1, result: 'ok' }])
  })

  it('malformed frames get bad-request and the connection goes on', async () => {
    await serve({ echo: async p => p })
    const payload = [
      'not json',
      '[1]',
      '{"method":"echo"}',
      '{"id":{},"method":"echo"}',
      '{"id":5,"method":"echo","params":7}',
    ]
    const { frames } = await rawExchange(`${payload.join('\n')}\n`, 5)
    expect(frames.slice(0, 4)).toMatchObject(Array(4).fill({ id: null, error: { code: 'bad-request' } }))
    expect(frames[4]).toEqual({ id: 5, result: 7 })
  })

  it('requests beyond the per-client limit are refused', async () => {
    const gates: (() => void)[] = []
    await serve(
      { gate: () => new Promise(resolve => gates.push(() => resolve('open'))) },
      { requestsPerClientMax: 2 },
    )
    const client = await connect()
    const first = client.call('gate')
    const second = client.call('gate')
    expect(await codeOf(client.call('gate'))).toBe('too-many-requests')
    await expect.poll(() => gates.length).toBe(2)
    for (const open of gates) open()
    expect(await Promise.all([first, second])).toEqual(['open', 'open'])
  })

  it('clients beyond the limit are refused', async () => {
    await serve({ ping: async () => 'pong' }, { clientsMax: 1 })
    const first = await connect()
    expect(await first.call('ping')).toBe('pong')
    const second = await connect()
    expect(await codeOf(second.call('ping'))).toBe('too-many-clients')
  })
})

describe('the socket file', () => {
  it('has mode 0600 and is removed by stop, which is idempotent', async () => {
    const server = await serve({})
    const info = await stat(path)
    expect(info.isSocket()).toBe(true)
    expect(info.mode & 0o777).toBe(0o600)
    await server.start() // idempotent
    await Promise.all([server.stop(), server.stop()])
    await server.stop()
    expect(await stat(path).catch(e => e.code)).toBe('ENOENT')
  })

  it('stop disconnects clients and aborts their handlers', async () => {
    let signal: AbortSignal | undefined
    const server = await serve({
      hang: async (_p, context) => {
        signal = context.signal
        await aborted(context.signal)
      },
    })
    const client = await connect()
    const outcome = codeOf(client.call('hang'))
    await expect.poll(() => signal !== undefined).toBe(true)
    await server.stop()
    expect(await outcome).toBe('connection-closed')
    expect(signal?.aborted).toBe(true)
  })

  it('a stale socket left by a killed process is replaced', async () => {
    const script = `require('net').createServer().listen(${JSON.stringify(path)}, () => console.log('up'))`
    const child = spawn(process.execPath, ['-e', script], { stdio: ['ignore', 'pipe', 'inherit'] })
    await new Promise(resolve => child.stdout.once('data', resolve))
    const exited = new Promise(resolve => child.once('exit', resolve))
    child.kill('SIGKILL')
    await exited
    expect((await stat(path)).isSocket()).toBe(true)
    expect(await codeOf(connectControl(path))).toBe('agent-not-running')
    await serve({ ping: async () => 'pong' })
    expect(await (await connect()).call('ping')).toBe('pong')
  })

  it('a second agent on the same home is refused and the first keeps working', async () => {
    await serve({ ping: async () => 'first' })
    const second = createControlServer({ path, handlers: {} })
    expect(await codeOf(second.start())).toBe('agent-already-running')
    await second.stop()
    expect(await (await connect()).call('ping')).toBe('first')
  })

  it('a path that is not a socket is left alone', async () => {
    await writeFile(path, 'precious')
    const server = createControlServer({ path, handlers: {} })
    expect(await codeOf(server.start())).toBe('path-in-use')
    expect(await readFile(path, 'utf8')).toBe('precious')
  })

  it('a path too long to bind is refused up front', async () => {
    const server = createControlServer({ path: join(home, 'x'.repeat(120), 'agent.sock'), handlers: {} })
    expect(await codeOf(server.start())).toBe('path-too-long')
  })
})
