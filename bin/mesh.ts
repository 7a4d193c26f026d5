/**
 * The executable entry: wires the real process into the CLI factory. The only place that calls
 * process.exit (STYLE.md §5). Bundled to dist/mesh.cjs and into the single binary dist/mesh.
 */
import { homedir } from 'node:os'
import { createCli } from '../src/cli.js'

/** After the first signal, the command gets this long to stop gracefully before we force it. */
const FORCED_EXIT_AFTER_MS = 10_000

async function main(): Promise<void> {
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
