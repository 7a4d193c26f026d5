/**
 * The executable entry: wires the real process into the CLI factory. The only place that calls
 * process.exit (STYLE.md §5). Bundled to dist/mesh.cjs and into the single binary dist/mesh.
 *
 * The Node.js version is checked before the CLI is loaded: the CLI and its dependencies use Node 22
 * APIs (Promise.withResolvers, …) at load time and while running, and on an older Node they would fail
 * with an internal error instead of saying what is wrong. Static imports are hoisted and evaluated
 * before this module's body, so the CLI is loaded with a dynamic import() after the check; only
 * `node:` built-ins are imported statically.
 */
import { homedir } from 'node:os'

/** Oldest Node.js major version the CLI runs on (package.json `engines`). */
const NODE_MAJOR_MIN = 22

/** After the first signal, the command gets this long to stop gracefully before we force it. */
const FORCED_EXIT_AFTER_MS = 10_000

/** The line to print when this Node.js is too old, or undefined when it is new enough. */
function nodeVersionProblem(version: string): string | undefined {
  const major = Number.parseInt(version.split('.')[0] ?? '', 10)
  if (Number.isInteger(major) && major >= NODE_MAJOR_MIN) return undefined
  return `mesh: needs Node.js ${NODE_MAJOR_MIN} or newer (this is ${version}); use the single binary dist/mesh, which needs no Node`
}

async function main(): Promise<void> {
  const problem = nodeVersionProblem(process.versions.node)
  if (problem !== undefined) {
    process.stderr.write(`${problem}\n`, () => process.exit(1))
    return
  }
  const { createCli } = await import('../src/cli.js')
  const controller = new AbortController()
  let signals = 0
  const onSignal = (): void => {
    signals += 1
    if (signals > 1) process.exit(130)
    controller.abort()
    setTimeout(() => process.exit(130), FORCED_EXIT_AFTER_MS).unref()
  }
  process.on('SIGINT', onSignal)
  process.on('SIGTERM', onSignal)
  // A closed terminal (SIGHUP) stops the command gracefully like SIGTERM, so a foreground agent does not
  // die at once and leave its control socket behind. It does not reload the configuration.
  process.on('SIGHUP', onSignal)
  process.stdout.on('error', () => {}) // a closed pipe (`mesh members | head`) is not our failure
  const cli = createCli({
    stdout: process.stdout,
    stderr: process.stderr,
    env: process.env,
    userHome: homedir(),
    signal: controller.signal,
  })
  const code = await cli.run(process.argv.slice(2))
  // Exit explicitly: libp2p leaves ref'd timers behind (LIBP2P-NOTES §4), but let stdout drain first.
  process.stdout.write('', () => process.exit(code))
}

void main()
