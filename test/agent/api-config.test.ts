// Proves the two listen keys of the configuration: off by default, set from the file, MESH_API_LISTEN
// / MESH_METRICS_LISTEN and flags in the usual order, HOST:PORT with an IPv4, bracketed IPv6 or
// localhost host (no name resolved), every bad value reported with its layer, and the two keys may
// not name the same address.
import { describe, expect, it } from 'vitest'
import { ConfigError, defaultConfig, parseListenAddress, resolveConfig } from '../../src/node/config.js'

function problems(sources: Parameters<typeof resolveConfig>[0]): string[] {
  try {
    resolveConfig(sources)
    return []
  } catch (err) {
    if (err instanceof ConfigError) return [...err.problems]
    throw err
  }
}

describe('apiListen and metricsListen', () => {
  it('are off by default', () => {
    const c = defaultConfig()
    expect(c.apiListen).toBe('')
    expect(c.metricsListen).toBe('')
  })

  it('come from the file, the environment and flags, each later one winning', () => {
    const c = resolveConfig({
      file: { apiListen: '127.0.0.1:8080', metricsListen: '127.0.0.1:9464' },
      env: { MESH_METRICS_LISTEN: '[::1]:9465' },
      flags: { apiListen: 'localhost:8081' },
    })
    expect(c.apiListen).toBe('localhost:8081')
    expect(c.metricsListen).toBe('[::1]:9465')
    // An empty variable turns a key from the file off again.
    expect(
      resolveConfig({ file: { apiListen: '127.0.0.1:8080' }, env: { MESH_API_LISTEN: '' } }).apiListen,
    ).toBe('')
  })

  it('parse HOST:PORT without resolving names', () => {
    expect(parseListenAddress('127.0.0.1:9464')).toEqual({
      ok: true,
      value: { host: '127.0.0.1', port: 9464 },
    })
    expect(parseListenAddress('[::1]:0')).toEqual({ ok: true, value: { host: '::1', port: 0 } })
    expect(parseListenAddress('localhost:80')).toEqual({ ok: true, value: { host: 'localhost', port: 80 } })
    expect(parseListenAddress('')).toEqual({ ok: true, value: undefined })
    for (const bad of [
      '9464',
      ':9464',
      'example.com:80',
      '127.0.0.1',
      '999.1.1.1:80',
      '127.0.0.1:70000',
      '::1:80',
      '[1.2.3.4]:80',
      '127.0.0.1:80 ',
    ])
      expect(parseListenAddress(bad).ok, bad).toBe(false)
  })

  it('report every bad value at once, naming its layer', () => {
    expect(
      problems({
        file: { apiListen: 'example.com:80' },
        env: { MESH_METRICS_LISTEN: '127.0.0.1:http' },
      }).sort(),
    ).toEqual([
      "environment MESH_METRICS_LISTEN: '127.0.0.1:http' is not HOST:PORT (an IP address or localhost, a colon, a port), e.g. 127.0.0.1:9464 or [::1]:9464",
      "file: apiListen: 'example.com:80' is not HOST:PORT (an IP address or localhost, a colon, a port), e.g. 127.0.0.1:9464 or [::1]:9464",
    ])
    expect(problems({ file: { metricsListen: 9464 } })).toEqual([
      'file: metricsListen: must be a string like 127.0.0.1:9464',
    ])
  })

  it('may not both name one address (port 0 picks two free ports, so it may)', () => {
    expect(
      problems({ env: { MESH_API_LISTEN: '127.0.0.1:9464', MESH_METRICS_LISTEN: '127.0.0.1:9464' } }),
    ).toEqual(['metricsListen and apiListen must differ (both are 127.0.0.1:9464)'])
    expect(problems({ env: { MESH_API_LISTEN: '127.0.0.1:0', MESH_METRICS_LISTEN: '127.0.0.1:0' } })).toEqual(
      [],
    )
  })
})
