/**
 * `mesh demo`: a small local mesh on 127.0.0.1 in a temporary directory. The first node is made with
 * `mesh init`; every other node joins with a ticket exactly as `mesh join --ticket` does; then a request
 * runs across one zone and the replies are printed. It stays up (printing commands to try against it)
 * until Ctrl-C, or stops at once with --exit.
 */
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join as joinPath } from 'node:path'
import type { RunningAgent } from '../agent/runtime.js'
import { sleep, systemClock } from '../node/clock.js'
import { silentLogger } from '../node/log.js'
import { CliError, UsageError } from './errors.js'
import { init } from './init.js'
import type { CliIo, GlobalOptions, Output } from './io.js'
import { join } from './join.js'

export interface DemoOptions {
  readonly nodes: number
  readonly exit?: boolean
}

/** Smallest and largest `--nodes`. */
export const DEMO_NODES_MIN = 2
export const DEMO_NODES_MAX = 20

/** How long the demo waits for every node to see every other. */
const CONVERGE_TIMEOUT_MS = 20_000
const LOOPBACK = '/ip4/127.0.0.1/tcp/0'

/** How a user re-runs this program: the binary itself, or `node path/to/mesh.cjs`. */
function selfCommand(): string {
  const script = process.argv[1]
  const sea = script === undefined || script === process.execPath || !/\.(c?js|mjs|ts)$/.test(script)
  return sea ? process.execPath : `node ${script}`
}

const quiet: Output = { write: () => true }

export async function demo(io: CliIo, globals: GlobalOptions, options: DemoOptions): Promise<number> {
  if (
    !Number.isSafeInteger(options.nodes) ||
    options.nodes < DEMO_NODES_MIN ||
    options.nodes > DEMO_NODES_MAX
  )
    throw new UsageError(
      `'--nodes ${options.nodes}' is out of range: the demo runs ${DEMO_NODES_MIN} to ${DEMO_NODES_MAX} nodes`,
    )
  if (globals.json || globals.jsonl)
    throw new UsageError(`'mesh demo' prints no JSON; drop '${globals.json ? '--json' : '--jsonl'}'`)
  const { startAgent } = await import('../agent/runtime.js')
  const root = await mkdtemp(joinPath(tmpdir(), 'mesh-demo-'))
  const say = (line: string) => io.stdout.write(`${line}\n`)
  const agents: RunningAgent[] = []
  const silentIo: CliIo = { ...io, stdout: quiet, stderr: quiet }
  const env = Object.fromEntries(Object.entries(io.env).filter(([k]) => !k.startsWith('MESH_')))
  const names: Array<{ name: string; zone: string }> = []
  for (let i = 0; i < options.nodes; i++) {
    const zone = i % 2 === 0 ? 'web' : 'db'
    names.push({ name: `${zone}${names.filter(n => n.zone === zone).length + 1}`, zone })
  }
  const homeOf = (name: string) => joinPath(root, name)
  const start = async (name: string) => {
    const agent = await startAgent({ home: homeOf(name), env, logger: silentLogger() })
    agents.push(agent)
    return agent
  }

  try {
    say(`mesh demo: ${options.nodes} nodes on 127.0.0.1, homes under ${root}`)
    const first = names[0]!
    await init(
      silentIo,
      { ...globals, home: homeOf(first.name), json: false, jsonl: false },
      { name: first.name, zone: first.zone, listen: [LOOPBACK] },
    )
    const ca = await start(first.name)
    say(`  ${first.name}: created the mesh (CA) ${ca.fingerprint}`)
    for (const { name, zone } of names.slice(1)) {
      const effects = await ca.node.issuer!.run({
        type: 'create-ticket',
        requestId: name,
        name,
        zone,
        roles: ['agent'],
        ttlMs: 10 * 60_000,
        bootstrap: ca.node.addrs().slice(0, 4),
      })
      const reply = effects.find(e => e.type === 'command-reply')
      if (reply?.type !== 'command-reply' || !reply.result.ok || reply.result.command !== 'create-ticket') {
        throw new CliError('demo-failed', `could not create a ticket for ${name}`)
      }
      const t0 = systemClock.nowMs()
      await join(
        silentIo,
        { home: homeOf(name), json: false, jsonl: false },
        { ticket: reply.result.ticket, listen: [LOOPBACK] },
      )
      await start(name)
      say(`  ${name}: joined zone ${zone} with a ticket in ${systemClock.nowMs() - t0} ms`)
    }

    const deadline = systemClock.nowMs() + CONVERGE_TIMEOUT_MS
    const everyone = names.map(n => n.name)
    while (
      !agents.every(a => everyone.every(n => a.node.members().some(m => m.name === n && m.state === 'alive')))
    ) {
      if (systemClock.nowMs() > deadline || io.signal?.aborted === true)
        throw new CliError('demo-failed', 'the demo nodes did not all see each other in time')
      await sleep(systemClock, 50)
    }
    say(`  all ${options.nodes} nodes see each other`)

    say('')
    say(`$ mesh exec uptime --zone web        (from ${first.name})`)
    const t0 = systemClock.nowMs()
    const result = await ca.node.exec({ action: 'uptime', filter: { zone: 'web' }, timeoutMs: 10_000 })
    for (const reply of result.replies)
      say(`${reply.node} [${reply.zone}] ${reply.status} ${reply.durationMs}ms: ${reply.output.trim()}`)
    say(
      `${result.replies.length}/${result.expected.length} replied in ${systemClock.nowMs() - t0} ms${result.missing.length > 0 ? `; missing ${result.missing.join(', ')}` : ''}`,
    )

    const code = result.missing.length === 0 ? 0 : 1
    // With --exit the homes are deleted on return, so there is nothing to try from another terminal.
    if (options.exit === true) return code

    const mesh = selfCommand()
    say('')
    say('Try, from another terminal:')
    say(`  ${mesh} --home ${homeOf(first.name)} members`)
    say(`  ${mesh} --home ${homeOf(first.name)} zones`)
    say(`  ${mesh} --home ${homeOf(first.name)} exec uptime --zone db`)
    say(`  ${mesh} --home ${homeOf(first.name)} exec facts --where 'zone=web and not name=web1' --json`)
    say(`  ${mesh} --home ${homeOf(first.name)} exec ping --zone web --once`)
    say(`  ${mesh} --home ${homeOf(first.name)} ticket create web9 --zone web`)
    for (const agent of agents.slice(1)) say(`  node ${agent.node.name}: ${agent.node.addrs()[0]}`)

    say('')
    say('The demo mesh is up; press Ctrl-C to stop it.')
    await new Promise<void>(resolve => {
      if (io.signal === undefined || io.signal.aborted) return resolve()
      io.signal.addEventListener('abort', () => resolve(), { once: true })
    })
    return code
  } finally {
    await Promise.all(agents.map(a => a.stop().catch(() => {})))
    await rm(root, { recursive: true, force: true })
    say('mesh demo stopped')
  }
}
