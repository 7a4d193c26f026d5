// Proves packaging/systemd/mesh.service is a unit systemd accepts and says what docs/install.md says:
// `systemd-analyze verify` finds nothing to report (where systemd-analyze exists; the test says when it
// was skipped), and, parsed statically, the unit runs `mesh agent` with its home in the state
// directory through the variable the CLI reads (checked against the CLI), restarts on failure but not
// on a usage error, sends SIGTERM to the agent alone (KillMode=mixed) and waits longer than the agent's
// own forced-exit bound (read from bin/mesh.ts), and has the hardening the issue asks for.
import { spawnSync } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'
import { createCli } from '../../src/cli.js'

const repo = resolve(import.meta.dirname, '../..')
const unitPath = join(repo, 'packaging/systemd/mesh.service')
const unitText = readFileSync(unitPath, 'utf8')
const dir = mkdtempSync(join(tmpdir(), 'mesh-systemd-'))
afterAll(() => rmSync(dir, { recursive: true, force: true }))

/** Section → key → every value given (systemd allows a key more than once). */
type Unit = Record<string, Record<string, string[]>>

function parseUnit(text: string): Unit {
  const unit: Unit = {}
  let section: Record<string, string[]> | undefined
  for (const raw of text.split('\n')) {
    const line = raw.trim()
    if (line === '' || line.startsWith('#') || line.startsWith(';')) continue
    const header = /^\[(.+)\]$/.exec(line)
    if (header !== null) {
      section = unit[header[1]!] ??= {}
      continue
    }
    const eq = line.indexOf('=')
    if (section === undefined || eq < 1) throw new Error(`not a unit line: ${line}`)
    const key = line.slice(0, eq).trim()
    section[key] = [...(section[key] ?? []), line.slice(eq + 1).trim()]
  }
  return unit
}

const unit = parseUnit(unitText)
const service = unit.Service ?? {}
/** The one value of a [Service] key. */
function one(key: string): string {
  const values = service[key]
  expect(values, `[Service] ${key}`).toHaveLength(1)
  return values![0]!
}

/** A systemd time span in seconds (`20s`, `5min`, `1min 30s`, bare seconds). */
function seconds(span: string): number {
  const units: Record<string, number> = { ms: 0.001, s: 1, sec: 1, m: 60, min: 60, h: 3600 }
  let total = 0
  for (const [, n, u] of span.matchAll(/(\d+)\s*([a-z]*)/g))
    total += Number(n) * (units[u || 's'] ?? Number.NaN)
  return total
}

const hasAnalyze = spawnSync('sh', ['-c', 'command -v systemd-analyze'], { encoding: 'utf8' }).status === 0
describe(`mesh.service: systemd-analyze verify${hasAnalyze ? '' : ' (skipped: systemd-analyze is not installed)'}`, () => {
  it.skipIf(!hasAnalyze)('verifies without a warning about the unit', () => {
    // verify checks that ExecStart's program is executable: point it at one that is (this node), keeping
    // the arguments.
    const copy = join(dir, 'mesh.service')
    writeFileSync(copy, unitText.replace(/^ExecStart=\S+/m, `ExecStart=${process.execPath}`))
    const r = spawnSync('systemd-analyze', ['verify', copy], { encoding: 'utf8', timeout: 15_000 })
    const aboutUs = (r.stderr ?? '').split('\n').filter(l => l.includes('mesh.service'))
    expect(aboutUs).toEqual([])
    expect(r.status).toBe(0)
  })
})

describe('mesh.service, read statically', () => {
  it('runs `mesh agent` from /usr/local/bin as a simple service of its own user', () => {
    expect(one('ExecStart')).toBe('/usr/local/bin/mesh agent')
    expect(['simple', 'exec']).toContain(one('Type'))
    expect(one('User')).toBe('mesh')
    expect(unit.Install?.WantedBy).toEqual(['multi-user.target'])
    expect(unit.Unit?.After).toContain('network-online.target')
  })

  it("keeps the agent's home in the state directory, through the variable the CLI reads", async () => {
    expect(one('StateDirectory')).toBe('mesh')
    expect(one('StateDirectoryMode')).toBe('0700') // the home's mode (docs/cli.md), checked by the agent
    expect(service.Environment).toContain('MESH_HOME=%S/mesh')
    // The CLI takes its home from MESH_HOME when --home is not given.
    const err: string[] = []
    const home = join(dir, 'state', 'mesh')
    const cli = createCli({
      stdout: { write: () => true },
      stderr: { write: (s: string) => err.push(s) },
      env: { MESH_HOME: home },
      userHome: '/nonexistent-home',
    })
    expect(await cli.run(['status'])).toBe(1)
    expect(err.join('')).toContain(`no agent running in ${home}`)
  })

  it('restarts on failure, after a pause, but not on a usage error', () => {
    expect(one('Restart')).toBe('on-failure')
    expect(seconds(one('RestartSec'))).toBeGreaterThanOrEqual(1)
    expect(one('RestartPreventExitStatus').split(/\s+/)).toContain('2')
    expect(Number(unit.Unit?.StartLimitBurst?.[0])).toBeGreaterThan(0)
  })

  it('sends SIGTERM to the agent alone and waits past its own forced-exit bound', () => {
    expect(one('KillMode')).toBe('mixed')
    expect(one('KillSignal')).toBe('SIGTERM')
    const forced = /const FORCED_EXIT_AFTER_MS = ([\d_]+)/.exec(
      readFileSync(join(repo, 'bin/mesh.ts'), 'utf8'),
    )
    expect(forced, 'FORCED_EXIT_AFTER_MS in bin/mesh.ts').not.toBeNull()
    const forcedS = Number(forced![1]!.replaceAll('_', '')) / 1000
    expect(seconds(one('TimeoutStopSec'))).toBeGreaterThan(forcedS)
  })

  it('is hardened: no new privileges, a read-only system but for the state directory, no home, own /tmp', () => {
    expect(one('NoNewPrivileges')).toBe('yes')
    expect(one('ProtectSystem')).toBe('strict')
    expect(one('ProtectHome')).toBe('yes')
    expect(one('PrivateTmp')).toBe('yes')
    expect(service.ReadWritePaths).toEqual(['%S/mesh'])
    expect(Number(one('LimitNOFILE'))).toBeGreaterThanOrEqual(4096)
    // V8 writes machine code at run time: this setting would crash the agent.
    expect(service.MemoryDenyWriteExecute ?? []).not.toContain('yes')
    const families = one('RestrictAddressFamilies').split(/\s+/)
    for (const family of ['AF_UNIX', 'AF_INET', 'AF_INET6']) expect(families).toContain(family)
  })
})
