// Proves that facts describe the running system (compared with node:os), that the static part is read
// once and uptime on every refresh (counted on a fake probe), and that tags are merged but never
// override built-in facts or exceed their limits.
import * as os from 'node:os'
import { describe, expect, it } from 'vitest'
import {
  BUILTIN_FACT_KEYS,
  collectFacts,
  createFactsProvider,
  distroFromOsRelease,
  FACT_TAGS_MAX,
  type FactsProbe,
  factTagProblems,
} from '../../src/node/facts.js'

function fakeProbe(): FactsProbe & { calls: Record<string, number>; uptime: number } {
  const calls: Record<string, number> = {}
  const count = (name: string) => {
    calls[name] = (calls[name] ?? 0) + 1
  }
  const probe = {
    calls,
    uptime: 100.7,
    hostname: () => {
      count('hostname')
      return 'web-1'
    },
    platform: () => 'linux',
    arch: () => 'x64',
    release: () => '6.1.0-test',
    cpuCount: () => 4,
    totalMemoryBytes: () => 8_000_000_000,
    uptimeSeconds: () => {
      count('uptime')
      return probe.uptime
    },
    readOsRelease: async () => {
      count('osRelease')
      return 'NAME="Debian"\nPRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\n'
    },
  }
  return probe
}

describe('facts of the running system', () => {
  it('match node:os', async () => {
    const facts = await collectFacts({ meshVersion: '9.9.9' })
    expect(facts.hostname).toBe(os.hostname())
    expect(facts.os).toBe(os.platform())
    expect(facts.arch).toBe(os.arch())
    expect(facts.kernel).toBe(os.release())
    expect(Number(facts.cpus)).toBeGreaterThan(0)
    expect(facts.memoryTotalBytes).toBe(String(os.totalmem()))
    expect(facts.meshVersion).toBe('9.9.9')
    expect(Math.abs(Number(facts.uptimeSeconds) - os.uptime())).toBeLessThanOrEqual(2)
    for (const value of Object.values(facts)) expect(typeof value).toBe('string')
  })
})

describe('createFactsProvider', () => {
  it('reads static facts once and uptime on every refresh', async () => {
    const probe = fakeProbe()
    const provider = createFactsProvider({ meshVersion: '1.0.0', probe, tags: { rack: 'r7' } })
    expect(provider.current()).toEqual({ rack: 'r7', meshVersion: '1.0.0' })
    const first = await provider.refresh()
    expect(first).toEqual({
      rack: 'r7',
      hostname: 'web-1',
      os: 'linux',
      distro: 'Debian GNU/Linux 12 (bookworm)',
      arch: 'x64',
      kernel: '6.1.0-test',
      cpus: '4',
      memoryTotalBytes: '8000000000',
      meshVersion: '1.0.0',
      uptimeSeconds: '100',
    })
    probe.uptime = 160.2
    const second = await provider.refresh()
    expect(second.uptimeSeconds).toBe('160')
    expect(provider.current()).toBe(second)
    expect(probe.calls).toEqual({ hostname: 1, osRelease: 1, uptime: 2 })
    expect(Object.isFrozen(second)).toBe(true)
  })

  it('never lets a tag override a built-in fact, and drops invalid tags', async () => {
    const tags = { os: 'openbsd', 'bad key': 'x', long: 'y'.repeat(300), role: 'db' }
    const facts = await createFactsProvider({ meshVersion: '1', probe: fakeProbe(), tags }).refresh()
    expect(facts.os).toBe('linux')
    expect(facts.role).toBe('db')
    expect(facts['bad key']).toBeUndefined()
    expect(facts.long).toBeUndefined()
  })

  it('keeps at most FACT_TAGS_MAX tags', async () => {
    const tags = Object.fromEntries(Array.from({ length: FACT_TAGS_MAX + 5 }, (_, i) => [`t${i}`, 'v']))
    const facts = await createFactsProvider({ meshVersion: '1', probe: fakeProbe(), tags }).refresh()
    expect(Object.keys(facts).filter(k => k.startsWith('t') && /^t\d+$/.test(k))).toHaveLength(FACT_TAGS_MAX)
  })

  it('survives a failing probe with empty values', async () => {
    const probe = {
      ...fakeProbe(),
      hostname: () => {
        throw new Error('no uname')
      },
      readOsRelease: async () => undefined,
    }
    const facts = await createFactsProvider({ meshVersion: '1', probe }).refresh()
    expect(facts.hostname).toBe('')
    expect(facts.distro).toBeUndefined()
    expect(facts.os).toBe('linux')
  })
})

describe('factTagProblems', () => {
  it.each([
    [{ rack: 'r1' }, 0],
    [{ '1rack': 'r1' }, 1],
    [{ kernel: 'x' }, 1],
    [{ note: 'z'.repeat(257) }, 1],
    [{ note: 'z'.repeat(256) }, 0],
  ])('%o has %i problems', (tags, count) => {
    expect(factTagProblems(tags)).toHaveLength(count)
  })

  it('reports too many tags and every built-in name', () => {
    const tags = Object.fromEntries(Array.from({ length: FACT_TAGS_MAX + 1 }, (_, i) => [`t${i}`, 'v']))
    expect(factTagProblems(tags)).toHaveLength(1)
    for (const key of BUILTIN_FACT_KEYS) expect(factTagProblems({ [key]: 'x' })).toHaveLength(1)
  })
})

describe('distroFromOsRelease', () => {
  it.each([
    ['PRETTY_NAME="Ubuntu 24.04 LTS"\nNAME="Ubuntu"', 'Ubuntu 24.04 LTS'],
    ["NAME='Alpine Linux'\n", 'Alpine Linux'],
    ['NAME=Fedora\n# comment\n', 'Fedora'],
    ['ID=x\n', undefined],
    ['', undefined],
  ])('%j → %s', (text, distro) => {
    expect(distroFromOsRelease(text)).toBe(distro)
  })
})
