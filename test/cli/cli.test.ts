// Proves the CLI contract of CLI.md that needs no agent: version, help, usage errors as one line with
// exit 2, JSON/JSONL exclusivity, and that npm scripts run on the pinned Node 22. Runs the CLI factory
// in process with captured stdout/stderr.
import { describe, expect, it } from 'vitest'
import { createCli } from '../../src/cli.js'
import { MESH_VERSION } from '../../src/version.js'

function capture(env: Record<string, string> = {}) {
  const out: string[] = []
  const err: string[] = []
  const cli = createCli({
    stdout: { write: (s: string) => out.push(s) },
    stderr: { write: (s: string) => err.push(s) },
    env,
    userHome: '/nonexistent-home',
  })
  return { cli, out: () => out.join(''), err: () => err.join('') }
}

describe('mesh CLI conventions', () => {
  it('runs on the pinned Node 22', () => {
    expect(process.version).toMatch(/^v22\./)
  })

  it('prints the version from package.json (and no build, run unbundled)', async () => {
    const c = capture()
    expect(await c.cli.run(['--version'])).toBe(0)
    expect(c.out().trim()).toBe(`${MESH_VERSION} (commit unknown, built unknown)`)
    expect(MESH_VERSION).toMatch(/^\d+\.\d+\.\d+/)
  })

  it('prints help listing every command of CLI.md', async () => {
    const c = capture()
    expect(await c.cli.run(['--help'])).toBe(0)
    for (const command of ['init', 'agent', 'ticket', 'join', 'ca', 'members', 'zones', 'exec', 'demo']) {
      expect(c.out()).toContain(command)
    }
    expect(c.err()).toBe('')
  })

  it.each([
    [
      ['exec', '--help'],
      [
        '--zone',
        '--node',
        '--fact',
        '--where',
        '--once',
        '--timeout',
        '(default: 10s)',
        '--json',
        '--jsonl',
        'KEY=VALUE',
        'KEY!=VALUE',
        'glob',
        '/regex/',
        'and, or, not, parentheses',
      ],
    ],
    [
      ['ticket', 'create', '--help'],
      ['--zone', '--role', '--ttl', '(default: 24h)'],
    ],
    [
      ['join', '--help'],
      ['--ticket', '--bootstrap', '--fingerprint'],
    ],
    [
      ['ca', '--help'],
      ['list', 'sign', 'reject', 'revoke'],
    ],
  ])('per-command help: mesh %j', async (argv, words) => {
    const c = capture()
    expect(await c.cli.run(argv)).toBe(0)
    for (const w of words) expect(c.out()).toContain(w)
  })

  it.each([
    [['exec', 'uptime', '--bogus'], /unknown option '--bogus'/],
    [['exec', 'uptime', '--timeout', '10x'], /'10x' is not a duration/],
    [['ticket', 'create', 'n1', '--zone', 'web', '--role', 'king'], /king/],
    [['ticket', 'create', 'n1'], /--zone/],
    [['frobnicate'], /unknown command 'frobnicate'/],
    [['members', '--json', '--jsonl'], /choose one of '--json' and '--jsonl'/],
    [['exec', 'uptime', '--timeout', '99999999h'], /--timeout 99999999h is too long: at most 1h/],
    [['exec', 'uptime', '--timeout', '25d'], /--timeout 25d is too long: at most 1h/],
    [
      ['exec', 'uptime', '--timeout', `${'9'.repeat(400)}d`],
      /too long a duration: at most 9007199254740991 ms/,
    ],
    [['ticket', 'create', 'n1', '--zone', 'web', '--ttl', '9999999999999d'], /too long a duration/],
    [['demo', '--nodes', '0'], /the demo runs 2 to 20 nodes/],
    [['demo', '--nodes', '1'], /the demo runs 2 to 20 nodes/],
    [['demo', '--nodes', '21'], /the demo runs 2 to 20 nodes/],
    [['demo', '--nodes', 'two'], /'two' is not an integer/],
    [['--json', 'demo'], /'mesh demo' prints no JSON/],
  ])('usage error %j: one line on stderr, exit 2', async (argv, pattern) => {
    const c = capture()
    expect(await c.cli.run(argv)).toBe(2)
    expect(c.out()).toBe('')
    const lines = c.err().trimEnd().split('\n')
    expect(lines).toHaveLength(1)
    expect(lines[0]).toMatch(/^mesh: /)
    expect(lines[0]).toMatch(pattern)
  })
})
