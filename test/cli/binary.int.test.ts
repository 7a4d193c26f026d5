// Proves the single executable runs where there is no Node.js and no node_modules: copies dist/mesh
// (built by `npm test` before vitest runs; built here if missing) into an empty temporary directory
// outside the repository and runs `--version` and `--help` there with an empty PATH, then `init` and
// `agent`, which load the CLI's second file from the binary's own assets (src/cli/node-bundle.ts):
// nothing is read from dist/, V8 accepts the embedded code caches without a warning, and an error
// from the second file is still reported as one `mesh:` line.
import { execFileSync, spawnSync } from 'node:child_process'
import { copyFileSync, existsSync, mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { MESH_VERSION } from '../../src/version.js'

const repo = resolve(import.meta.dirname, '../..')
const binary = join(repo, 'dist/mesh')
let dir: string

beforeAll(() => {
  if (!existsSync(binary)) {
    execFileSync(process.execPath, ['scripts/bundle.mjs'], { cwd: repo, timeout: 120_000 })
    execFileSync(process.execPath, ['scripts/binary.mjs'], { cwd: repo, timeout: 120_000, stdio: 'ignore' })
  }
  dir = mkdtempSync(join(tmpdir(), 'mesh-binary-'))
  copyFileSync(binary, join(dir, 'mesh'))
}, 240_000)

afterAll(() => {
  rmSync(dir, { recursive: true, force: true })
})

function runBinary(args: string[]) {
  return spawnSync(join(dir, 'mesh'), args, {
    cwd: dir,
    env: { PATH: '/nonexistent', HOME: dir },
    encoding: 'utf8',
    timeout: 20_000,
  })
}

describe('dist/mesh, the single executable', () => {
  it('prints its version with no node on PATH and no node_modules', () => {
    expect(existsSync(join(dir, 'node_modules'))).toBe(false)
    const r = runBinary(['--version'])
    expect(r.status).toBe(0)
    // The build is baked in by scripts/bundle.mjs: a commit (unknown outside a git checkout) and a date.
    const build = String.raw` \(commit ([0-9a-f]{7,}(-dirty)?|unknown), built \d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ\)$`
    expect(r.stdout.trim()).toMatch(new RegExp(`^${MESH_VERSION.replaceAll('.', '\\.')}${build}`))
    expect(r.stderr).toBe('')
  })

  it('prints help', () => {
    const r = runBinary(['--help'])
    expect(r.status).toBe(0)
    expect(r.stdout).toContain('Usage: mesh')
    expect(r.stdout).toContain('exec')
  })

  it('runs init from its embedded second file, silently', () => {
    const r = runBinary([
      '--home',
      join(dir, 'home'),
      'init',
      '--name',
      'n0',
      '--listen',
      '/ip4/127.0.0.1/tcp/0',
    ])
    expect(r.stderr).toBe('')
    expect(r.status).toBe(0)
    expect(r.stdout).toMatch(/^created mesh /)
  })

  it("reports the second file's errors as one line with exit 1", () => {
    const r = runBinary(['--home', join(dir, 'no-such-home'), 'agent'])
    expect(r.status).toBe(1)
    expect(r.stderr).toMatch(/^mesh: .*no node key/)
    expect(r.stderr).not.toContain('internal error')
  })

  it('reports a usage error with exit 2', () => {
    const r = runBinary(['exec'])
    expect(r.status).toBe(2)
    expect(r.stderr).toMatch(/^mesh: .*action/)
  })
})
