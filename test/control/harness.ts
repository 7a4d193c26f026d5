/**
 * Shared set-up of the control-channel tests: a fresh temp home per test, servers and clients that are
 * cleaned up after it, and helpers to call, to read error codes and to talk raw bytes to the server.
 */
import { mkdtemp, rm } from 'node:fs/promises'
import { createConnection } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterEach, beforeEach, expect } from 'vitest'
import {
  type ConnectControlOptions,
  type ControlClient,
  ControlError,
  type ControlHandler,
  type ControlServer,
  connectControl,
  controlSocketPath,
  createControlServer,
} from '../../src/control/index.js'

/** The temp home of the running test, and its socket path. */
export let home: string
export let path: string
const servers: ControlServer[] = []
const clients: ControlClient[] = []

/** Gives each test of the calling file a fresh temp home; closes its clients and stops its servers after. */
export function useControlHome(): void {
  beforeEach(async () => {
    home = await mkdtemp(join(tmpdir(), 'mesh-ctl-'))
    path = controlSocketPath(home)
  })
  afterEach(async () => {
    for (const client of clients.splice(0)) client.close()
    await Promise.all(servers.splice(0).map(s => s.stop()))
    await rm(home, { recursive: true, force: true })
  })
}

/** Resolves when `signal` aborts. */
export function aborted(signal: AbortSignal): Promise<void> {
  return new Promise(resolve => {
    if (signal.aborted) resolve()
    else signal.addEventListener('abort', () => resolve(), { once: true })
  })
}

export async function serve(
  handlers: Record<string, ControlHandler>,
  limits?: Parameters<typeof createControlServer>[0]['limits'],
): Promise<ControlServer> {
  const server = createControlServer({ path, handlers, ...(limits === undefined ? {} : { limits }) })
  servers.push(server)
  await server.start()
  return server
}

export async function connect(options?: ConnectControlOptions): Promise<ControlClient> {
  const client = await connectControl(path, options)
  clients.push(client)
  return client
}

export async function codeOf(promise: Promise<unknown>): Promise<string | undefined> {
  try {
    await promise
    return undefined
  } catch (err) {
    expect(err).toBeInstanceOf(ControlError)
    return (err as ControlError).code
  }
}

/** Sends raw bytes and collects the lines the server sends until it closes or `lines` arrived. */
export function rawExchange(
  payload: string | Buffer,
  lines: number,
): Promise<{ frames: unknown[]; closed: boolean }> {
  return new Promise(resolve => {
    const socket = createConnection(path)
    let text = ''
    const frames: unknown[] = []
    const done = (closed: boolean) => {
      socket.destroy()
      resolve({ frames, closed })
    }
    socket.on('data', chunk => {
      text += chunk.toString('utf8')
      let newline = text.indexOf('\n')
      while (newline >= 0) {
        frames.push(JSON.parse(text.slice(0, newline)))
        text = text.slice(newline + 1)
        newline = text.indexOf('\n')
      }
      if (frames.length >= lines) done(false)
    })
    socket.on('error', () => undefined)
    socket.on('close', () => done(true))
    socket.write(payload)
  })
}
