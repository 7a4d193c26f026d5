/** `mesh agent`: run the node in the foreground until SIGINT, SIGTERM or SIGHUP (bin/mesh.ts). */
import { CliError } from './errors.js'
import type { CliIo, GlobalOptions } from './io.js'

export async function agent(io: CliIo, globals: GlobalOptions): Promise<number> {
  const { startAgent } = await import('../agent/runtime.js')
  let running: Awaited<ReturnType<typeof startAgent>>
  try {
    running = await startAgent({ home: globals.home, env: io.env })
  } catch (err) {
    const e = err as Error & { code?: unknown; problems?: string[] }
    if (e.name === 'ConfigError' && e.problems !== undefined) {
      // Each problem names its layer (the config.toml path, the MESH_ variable or the flag) and key.
      throw new CliError('invalid-config', `invalid configuration: ${e.problems.join('; ')}`)
    }
    if (['HomeError', 'ControlError', 'StateFileError'].includes(e.name))
      throw new CliError(String(e.code), e.message)
    throw new CliError('agent-failed', `the agent could not start: ${e.message}`)
  }
  const { node } = running
  if (globals.json) {
    io.stdout.write(
      `${JSON.stringify({ event: 'started', name: node.name, zone: node.zone, peerId: node.peerId, addrs: node.addrs(), fingerprint: running.fingerprint })}\n`,
    )
  } else {
    io.stdout.write(`mesh agent ${node.name} (zone ${node.zone}) running; mesh ${running.fingerprint}\n`)
    for (const addr of node.addrs()) io.stdout.write(`  listening on ${addr}\n`)
    if (running.http.api) io.stdout.write(`  HTTP API and web view on ${running.http.api.url}/\n`)
    if (running.http.metrics) io.stdout.write(`  metrics on ${running.http.metrics.url}/metrics\n`)
  }
  await new Promise<void>(resolve => {
    if (io.signal === undefined) return
    if (io.signal.aborted) resolve()
    io.signal.addEventListener('abort', () => resolve(), { once: true })
  })
  await running.stop()
  if (!globals.json) io.stdout.write(`mesh agent ${node.name} stopped\n`)
  return 0
}
