// Proves the config merge order (defaults < profile < file < environment < flags), unit parsing, and
// that every problem is reported at once, including relationships between timing values and
// listen/announce/bootstrap values that are not multiaddrs (each naming its layer and key).
import { describe, expect, it } from 'vitest'
import { CONFIG_SCHEMA, ConfigError, defaultConfig, resolveConfig } from '../../src/node/config.js'

describe('resolveConfig', () => {
  it('uses the lan profile by default and its timing values', () => {
    const c = defaultConfig()
    expect(c.profile).toBe('lan')
    expect(c.leaseTtlMs).toBe(3_000)
    expect(c.listen).toEqual(['/ip4/0.0.0.0/tcp/7600'])
  })

  it('takes timing defaults from the chosen profile', () => {
    expect(defaultConfig('test').heartbeatIntervalMs).toBe(200)
    expect(defaultConfig('wan').heartbeatIntervalMs).toBe(5_000)
  })

  it('merges file < environment < flags', () => {
    const c = resolveConfig({
      file: {
        leaseTtlMs: '4s',
        renewIntervalMs: '1s',
        heartbeatIntervalMs: '2s',
        suspectAfterMs: '5s',
        deadAfterMs: '15s',
      },
      env: { MESH_LEASE_TTL: '5s', MESH_HEARTBEAT_INTERVAL: '3s', HOME: '/root' },
      flags: { leaseTtlMs: 6_000 },
    })
    expect(c.leaseTtlMs).toBe(6_000) // flag wins
    expect(c.heartbeatIntervalMs).toBe(3_000) // environment beats file
    expect(c.renewIntervalMs).toBe(1_000) // file beats default
    expect(c.suspectAfterMs).toBe(5_000)
  })

  it('picks the profile from the environment before applying its defaults', () => {
    const c = resolveConfig({ env: { MESH_PROFILE: 'test' } })
    expect(c.profile).toBe('test')
    expect(c.leaseTtlMs).toBe(1_000)
  })

  it('parses environment lists and booleans', () => {
    const c = resolveConfig({
      env: { MESH_LISTEN: '/ip4/127.0.0.1/tcp/1, /ip4/127.0.0.1/tcp/2', MESH_MDNS: 'yes' },
    })
    expect(c.listen).toEqual(['/ip4/127.0.0.1/tcp/1', '/ip4/127.0.0.1/tcp/2'])
    expect(c.mdns).toBe(true)
  })

  it('reads tags, declared actions and policy from the file', () => {
    const c = resolveConfig({
      file: {
        tags: { rack: 'r12' },
        actions: { restart_web: { argv: ['systemctl', 'restart', 'nginx'], timeout: '30s' } },
        policy: [{ actions: ['restart_web'], roles: ['operator'], zones: ['web'] }],
      },
    })
    expect(c.tags).toEqual({ rack: 'r12' })
    expect(c.actions.restart_web).toEqual({ argv: ['systemctl', 'restart', 'nginx'], timeoutMs: 30_000 })
    expect(c.policy).toHaveLength(1)
  })

  it('reports every problem at once', () => {
    let error: unknown
    try {
      resolveConfig({
        file: { nonsense: 1, leaseTtlMs: 'soon', actions: { x: { argv: [] } } },
        env: { MESH_MDNS: 'maybe', MESH_FROB: '1' },
        flags: { actionConcurrencyMax: -3 },
      })
    } catch (err) {
      error = err
    }
    expect(error).toBeInstanceOf(ConfigError)
    const problems = (error as ConfigError).problems.join('\n')
    expect(problems).toMatch(/unknown key 'nonsense'/)
    expect(problems).toMatch(/leaseTtlMs: 'soon' is not a duration/)
    expect(problems).toMatch(/MESH_MDNS: 'maybe' is not true or false/)
    expect(problems).toMatch(/unknown variable MESH_FROB/)
    expect(problems).toMatch(/actionConcurrencyMax: '-3' is not a positive integer/)
    expect(problems).toMatch(/actions\.x\.argv/)
  })

  it('refuses listen, announce and bootstrap entries that are not multiaddrs, naming layer and key', () => {
    let error: unknown
    try {
      resolveConfig({
        file: { listen: ['/ip4/127.0.0.1/tcp/1', '/ip4/999.1.1.1/tcp/1'], bootstrap: ['', 'peer:7600'] },
        filePath: '/home/x/config.toml',
        env: { MESH_ANNOUNCE: '/ip4/10.0.0.1/tcp/7600, /ip6/zz/tcp/1' },
        flags: { leaseTtlMs: 'soon' },
      })
    } catch (err) {
      error = err
    }
    expect(error).toBeInstanceOf(ConfigError)
    expect((error as ConfigError).problems).toEqual([
      `file /home/x/config.toml: listen[1]: '/ip4/999.1.1.1/tcp/1' is not a multiaddr (Invalid IPv4 address "999.1.1.1")`,
      expect.stringMatching(
        /^environment MESH_ANNOUNCE: announce\[1\]: '\/ip6\/zz\/tcp\/1' is not a multiaddr \(.+\)$/,
      ),
      "file /home/x/config.toml: bootstrap[0]: '' is not a multiaddr (empty)",
      expect.stringMatching(
        /^file \/home\/x\/config\.toml: bootstrap\[1\]: 'peer:7600' is not a multiaddr \(.+\)$/,
      ),
      "flags: leaseTtlMs: 'soon' is not a duration like 500ms, 10s, 5m or 24h",
    ])
  })

  it('accepts multiaddrs with peer ids, DNS names and the in-memory transport', () => {
    const bootstrap = [
      '/ip4/10.0.0.1/tcp/7600/p2p/12D3KooWGzRTyqR3bEbnvXDuzVDFCVDoEBCaJJQLX9wbE4aZVJDm',
      '/dns4/hub.example/tcp/7600',
    ]
    const c = resolveConfig({ file: { bootstrap, listen: ['/memory/a'] } })
    expect(c.bootstrap).toEqual(bootstrap)
    expect(c.listen).toEqual(['/memory/a'])
  })

  it('names the file layer by its path when given, and reads logFormat', () => {
    expect(() => resolveConfig({ file: { nonsense: 1 }, filePath: '/h/config.toml' })).toThrow(
      "file /h/config.toml: unknown key 'nonsense'",
    )
    expect(defaultConfig().logFormat).toBe('auto')
    expect(resolveConfig({ env: { MESH_LOG_FORMAT: 'json' } }).logFormat).toBe('json')
    expect(() => resolveConfig({ env: { MESH_LOG_FORMAT: 'xml' } })).toThrow(
      "environment MESH_LOG_FORMAT: 'xml' is not one of auto, json, pretty",
    )
  })

  it.each([
    [
      { renewIntervalMs: 2_800 },
      /renewIntervalMs \(2800\) \+ leaseDriftBudgetMs \(300\) must be below leaseTtlMs/,
    ],
    [{ leaseDriftBudgetMs: 1_500 }, /must exceed twice leaseDriftBudgetMs/],
    [{ suspectAfterMs: 500 }, /suspectAfterMs \(500\) must exceed heartbeatIntervalMs/],
    [{ deadAfterMs: 1_000 }, /deadAfterMs \(1000\) must exceed suspectAfterMs/],
  ])('checks timing relationships %j', (flags, pattern) => {
    expect(() => resolveConfig({ flags })).toThrow(pattern)
  })

  it('documents every key with a MESH_ variable', () => {
    for (const entry of CONFIG_SCHEMA) {
      expect(entry.env).toMatch(/^MESH_[A-Z_]+$/)
      expect(entry.doc.length).toBeGreaterThan(3)
    }
    expect(new Set(CONFIG_SCHEMA.map(e => e.env)).size).toBe(CONFIG_SCHEMA.length)
  })
})
