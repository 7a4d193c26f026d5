/**
 * The real control server and handlers over nodes of an in-process test mesh, one home each, and the
 * real CLI against them: what `mesh …` on those nodes would do, with no agent process.
 */
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { controlHandlers } from '../../src/agent/control-methods.js'
import { createCli } from '../../src/cli.js'
import { type ControlServer, controlSocketPath, createControlServer } from '../../src/control/index.js'
import type { TestMesh } from '../node/harness.js'

/** Agents for `names` of `mesh`. */
export interface InProcessAgents {
  /** Runs `mesh --home <node's home> …argv`; exit code and what it printed. */
  cli(node: string, argv: string[]): Promise<{ code: number; out: string; err: string }>
  stop(): Promise<void>
}

/** Serves the control socket of each named node in a fresh temporary home. */
export async function serveAgents(mesh: TestMesh, names: readonly string[]): Promise<InProcessAgents> {
  const homes = new Map<string, string>()
  const servers: ControlServer[] = []
  for (const name of names) {
    const home = await mkdtemp(join(tmpdir(), `mesh-cli-${name}-`))
    homes.set(name, home)
    const server = createControlServer({
      path: controlSocketPath(home),
      handlers: controlHandlers(mesh.node(name), mesh.ca.key.publicKey, { actionNames: async () => [] }),
    })
    await server.start()
    servers.push(server)
  }
  return {
    async cli(node, argv) {
      const home = homes.get(node)
      if (home === undefined) throw new Error(`no agent for ${node}`)
      const out: string[] = []
      const err: string[] = []
      const code = await createCli({
        stdout: { write: (s: string) => out.push(s), isTTY: false },
        stderr: { write: (s: string) => err.push(s), isTTY: false },
        env: { NO_COLOR: '1' },
        userHome: '/nonexistent-home',
      }).run(['--home', home, ...argv])
      return { code, out: out.join(''), err: err.join('') }
    },
    async stop() {
      for (const s of servers) await s.stop()
      for (const home of homes.values()) await rm(home, { recursive: true, force: true })
    },
  }
}
