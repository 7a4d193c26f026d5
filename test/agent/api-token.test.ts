// Proves the API token file: created once with mode 0600 and then only read (also when many callers
// race to create it: they all get the same token), refused when others may read it or it holds no
// token, and `mesh api token` prints it (plain and --json) or says in one line why it cannot.
import { chmodSync, mkdtempSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'
import { API_TOKEN_PATTERN, apiTokenPath, ensureApiToken, tokenMatches } from '../../src/agent/api/token.js'
import { createCli } from '../../src/cli.js'

const root = mkdtempSync(join(tmpdir(), 'mesh-api-token-'))
const newHome = () => mkdtempSync(join(root, 'home-'))
afterAll(() => rmSync(root, { recursive: true, force: true }))

describe('API token file', () => {
  it('creates a 43-character token with mode 0600 and returns the same one afterwards', async () => {
    const home = newHome()
    const token = await ensureApiToken(home)
    expect(token).toMatch(API_TOKEN_PATTERN)
    expect(statSync(apiTokenPath(home)).mode & 0o777).toBe(0o600)
    expect(await ensureApiToken(home)).toBe(token)
    // No temporary file is left next to it.
    expect(readdirSync(home)).toEqual(['api.token'])
  })

  it('gives every racing creator the same token', async () => {
    const home = newHome()
    const tokens = await Promise.all(Array.from({ length: 12 }, () => ensureApiToken(home)))
    expect(new Set(tokens).size).toBe(1)
    expect(readdirSync(home)).toEqual(['api.token'])
  })

  it('refuses a token file others may read, and one that holds no token', async () => {
    const home = newHome()
    await ensureApiToken(home)
    chmodSync(apiTokenPath(home), 0o644)
    await expect(ensureApiToken(home)).rejects.toThrow(/readable by others \(mode 644\)/)
    const other = newHome()
    writeFileSync(apiTokenPath(other), 'not a token\n', { mode: 0o600 })
    await expect(ensureApiToken(other)).rejects.toThrow(/does not hold an API token/)
  })

  it('refuses a home that does not exist', async () => {
    await expect(ensureApiToken(join(root, 'nowhere'))).rejects.toThrow(/is not a mesh home/)
  })

  it('compares tokens in constant time, by value', () => {
    expect(tokenMatches('a'.repeat(43), 'a'.repeat(43))).toBe(true)
    expect(tokenMatches('a'.repeat(43), `${'a'.repeat(42)}b`)).toBe(false)
    expect(tokenMatches('', 'a'.repeat(43))).toBe(false)
  })
})

describe('mesh api token', () => {
  const run = async (argv: string[]) => {
    let stdout = ''
    let stderr = ''
    const cli = createCli({
      stdout: { write: s => (stdout += s) },
      stderr: { write: s => (stderr += s) },
      env: {},
      userHome: root,
    })
    const code = await cli.run(argv)
    return { code, stdout, stderr }
  }

  it('prints the token, the same one the agent reads', async () => {
    const home = newHome()
    const first = await run(['--home', home, 'api', 'token'])
    expect(first.code).toBe(0)
    expect(first.stdout.trim()).toMatch(API_TOKEN_PATTERN)
    expect(await ensureApiToken(home)).toBe(first.stdout.trim())
    const json = await run(['--home', home, '--json', 'api', 'token'])
    expect(JSON.parse(json.stdout)).toEqual({ token: first.stdout.trim(), path: apiTokenPath(home) })
  })

  it('says in one line why it cannot, and exits 1', async () => {
    const result = await run(['--home', join(root, 'missing-home'), 'api', 'token'])
    expect(result.code).toBe(1)
    expect(result.stdout).toBe('')
    expect(result.stderr).toMatch(/^mesh: .*is not a mesh home; run 'mesh init' or 'mesh join' first/)
    expect(result.stderr.trim().split('\n')).toHaveLength(1)
  })
})
