// Proves that problems in a home's config.toml name their place: a TOML syntax error is reported as
// `PATH:LINE:COLUMN: invalid TOML: what` (not only "is not valid TOML"), and a bad multiaddr under
// listen/announce/bootstrap is found when the configuration is resolved, before the agent touches the
// network, reported together with every other problem and naming the file and the key.
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { HomeError, homePaths, loadHome, parseConfigFile } from '../../src/agent/home.js'
import { initHome } from '../../src/agent/init.js'
import { startAgent } from '../../src/agent/runtime.js'
import { ConfigError } from '../../src/node/config.js'
import { silentLogger } from '../../src/node/log.js'

const NOW_MS = Date.now()

let root: string
let home: string
beforeEach(async () => {
  root = await mkdtemp(join(tmpdir(), 'mesh-config-file-'))
  home = join(root, 'home')
  await initHome(home, { name: 'n1', zone: 'z' }, NOW_MS)
})
afterEach(async () => {
  await rm(root, { recursive: true, force: true })
})

const writeConfig = (text: string) => writeFile(homePaths(home).config, text, { mode: 0o600 })

describe('config.toml syntax errors', () => {
  it('name the file, line and column', async () => {
    await writeConfig('profile = "lan"\nmdns = false\nlisten = ["/ip4/0.0.0.0/tcp/7600",\n')
    const error = await loadHome(home).then(
      () => undefined,
      (err: unknown) => err,
    )
    expect(error).toBeInstanceOf(HomeError)
    expect((error as HomeError).code).toBe('corrupt')
    const { message } = error as HomeError
    expect(message).toMatch(
      new RegExp(`^${homePaths(home).config.replace(/[.]/g, '\\.')}:4:1: invalid TOML: \\S`),
    )
    expect(message).not.toMatch(/\n/)
  })

  it.each([
    ['x = 1\ny = @\n', 2, 5],
    ['[t]\nk = 1\n[t]\n', 3, 2],
    ['a = "\\q"\n', 1, 7],
  ])('%j fails at line %i column %i', (text, line, column) => {
    expect(() => parseConfigFile(new TextEncoder().encode(text), '/h/config.toml')).toThrow(
      new RegExp(`^/h/config\\.toml:${line}:${column}: invalid TOML: `),
    )
  })
})

describe('multiaddrs in config.toml', () => {
  it('are checked before the agent starts, with every other problem, naming file and key', async () => {
    await writeConfig(
      'listen = ["/ip4/127.0.0.1/tcp/0", "/ip4/999.1.1.1/tcp/1"]\nannounce = ["10.0.0.1:7600"]\nmdns = "yes"\n',
    )
    const error = await startAgent({
      home,
      env: { MESH_BOOTSTRAP: '/ip4/10.0.0.1/tcp/99999' },
      logger: silentLogger(),
    }).then(
      async agent => {
        await agent.stop()
        return undefined
      },
      (err: unknown) => err,
    )
    expect(error).toBeInstanceOf(ConfigError)
    const file = homePaths(home).config
    expect((error as ConfigError).problems).toEqual([
      `file ${file}: listen[1]: '/ip4/999.1.1.1/tcp/1' is not a multiaddr (Invalid IPv4 address "999.1.1.1")`,
      expect.stringMatching(
        new RegExp(`^file ${file}: announce\\[0\\]: '10\\.0\\.0\\.1:7600' is not a multiaddr \\(.+\\)$`),
      ),
      `environment MESH_BOOTSTRAP: bootstrap[0]: '/ip4/10.0.0.1/tcp/99999' is not a multiaddr (Value must be smaller than or equal to 65535)`,
      `file ${file}: mdns: 'yes' is not true or false`,
    ])
  })
})
