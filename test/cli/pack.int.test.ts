// Proves the npm route of docs/install.md: `npm pack` in the repository (its prepack rebuilds dist/ only
// when it is older than the sources) makes a tarball that carries the bundles, the library, its types,
// the docs and the systemd unit, and no sources, tests or single binary; whose package.json names no
// runtime dependency and no install-time script; that `npm install --offline` puts into an empty
// project with an empty npm cache (so nothing can come from a registry); and whose `npx mesh` then
// prints its version and build, runs `mesh demo --nodes 3 --exit` on 127.0.0.1 to a full answer and
// exits 0, and whose library imports. Every command runs with a time limit.
import { execFileSync, spawnSync } from 'node:child_process'
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { delimiter, dirname, join, resolve } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { MESH_VERSION } from '../../src/version.js'

const repo = resolve(import.meta.dirname, '../..')
const root = mkdtempSync(join(tmpdir(), 'mesh-pack-'))
const packDir = join(root, 'pack')
const app = join(root, 'app')

/** Node 22 first on PATH (npm, npx and the `#!/usr/bin/env node` of the bin all use it); no npm_* or MESH_* settings of an outer npm or agent. */
const env: Record<string, string> = {
  ...Object.fromEntries(
    Object.entries(process.env).filter(
      (e): e is [string, string] => !/^(npm_|MESH_)/i.test(e[0]) && e[1] !== undefined,
    ),
  ),
  PATH: `${dirname(process.execPath)}${delimiter}${process.env.PATH ?? ''}`,
  npm_config_cache: join(root, 'npm-cache'), // empty: an install that needs a registry fails offline
  npm_config_update_notifier: 'false',
  npm_config_fund: 'false',
  npm_config_audit: 'false',
  TMPDIR: join(root, 'tmp'),
  NO_COLOR: '1',
}

function run(command: string, args: string[], cwd: string, timeoutMs: number) {
  const r = spawnSync(command, args, {
    cwd,
    env,
    encoding: 'utf8',
    timeout: timeoutMs,
    killSignal: 'SIGKILL',
  })
  return { status: r.status, stdout: r.stdout ?? '', stderr: r.stderr ?? '', error: r.error }
}

let tarball: string
let files: string[]

beforeAll(() => {
  mkdirSync(packDir)
  mkdirSync(app)
  mkdirSync(env.TMPDIR!)
  // Two minutes: prepack rebuilds dist/ when the sources are newer (not after `npm test`'s build).
  const packed = run('npm', ['pack', '--pack-destination', packDir], repo, 120_000)
  expect(packed.status, packed.stderr).toBe(0)
  const made = readdirSync(packDir).filter(f => f.endsWith('.tgz'))
  expect(made).toHaveLength(1)
  tarball = join(packDir, made[0]!)
  files = execFileSync('tar', ['-tzf', tarball], { encoding: 'utf8' })
    .split('\n')
    .filter(f => f !== '' && !f.endsWith('/'))
    .map(f => f.replace(/^package\//, ''))
}, 150_000)

afterAll(() => {
  rmSync(root, { recursive: true, force: true })
})

describe('npm pack', () => {
  it('carries the bundles, the library and its types, the docs and the unit; no sources or binary', () => {
    for (const file of [
      'package.json',
      'README.md',
      'dist/mesh.cjs',
      'dist/mesh-main.cjs',
      'dist/mesh-node.cjs',
      'dist/lib.js',
      'dist/types/src/index.d.ts',
      'docs/install.md',
      'docs/cli.md',
      'packaging/systemd/mesh.service',
    ])
      expect(files).toContain(file)
    const unexpected = files.filter(
      f =>
        /^(src|test|bin|scripts|bench|examples|patches|node_modules)\//.test(f) ||
        f === 'dist/mesh' ||
        f.startsWith('dist/sea'),
    )
    expect(unexpected).toEqual([])
    expect(statSync(tarball).size).toBeLessThan(10_000_000)
  })

  it('has no runtime dependencies and no install-time scripts', () => {
    const pkg = JSON.parse(
      execFileSync('tar', ['-xzOf', tarball, 'package/package.json'], { encoding: 'utf8' }),
    ) as Record<string, Record<string, string> | undefined>
    // The CLI and the library are bundled (scripts/bundle.mjs): what they use belongs in devDependencies.
    expect(pkg.dependencies ?? {}).toEqual({})
    expect(pkg.optionalDependencies ?? {}).toEqual({})
    expect(pkg.peerDependencies ?? {}).toEqual({})
    // An installer runs these in the user's project, where patch-package and the patches are not.
    const scripts = pkg.scripts ?? {}
    expect(['preinstall', 'install', 'postinstall'].filter(s => s in scripts)).toEqual([])
    expect(pkg.bin).toEqual({ mesh: 'dist/mesh.cjs' })
  })
})

describe('the packed package, installed offline into an empty project', () => {
  beforeAll(() => {
    writeFileSync(join(app, 'package.json'), JSON.stringify({ name: 'mesh-pack-test', private: true }))
    const installed = run('npm', ['install', '--offline', '--no-audit', '--no-fund', tarball], app, 60_000)
    expect(installed.status, `${installed.stdout}\n${installed.stderr}`).toBe(0)
    expect(existsSync(join(app, 'node_modules', '.bin', 'mesh'))).toBe(true)
  }, 90_000)

  it('npx mesh --version prints the version and the build baked into the bundle', () => {
    const r = run('npx', ['--offline', 'mesh', '--version'], app, 20_000)
    expect(r.status, r.stderr).toBe(0)
    const version = MESH_VERSION.replaceAll('.', '\\.')
    // A git checkout (as CI's clean clone is) gives the commit; elsewhere it is unknown.
    const commit = existsSync(join(repo, '.git')) ? '[0-9a-f]{7,}(-dirty)?' : 'unknown'
    expect(r.stdout.trim()).toMatch(
      new RegExp(`^${version} \\(commit ${commit}, built \\d{4}-\\d\\d-\\d\\dT\\d\\d:\\d\\d:\\d\\dZ\\)$`),
    )
  })

  it('npx mesh demo --nodes 3 --exit forms a mesh on 127.0.0.1, gets every answer and exits 0', () => {
    const r = run('npx', ['--offline', 'mesh', 'demo', '--nodes', '3', '--exit'], app, 60_000)
    expect(r.error).toBeUndefined()
    expect(r.status, `${r.stdout}\n${r.stderr}`).toBe(0)
    expect(r.stdout).toContain('3 nodes on 127.0.0.1')
    expect(r.stdout).toContain('all 3 nodes see each other')
    const replied = /(\d+)\/(\d+) replied/.exec(r.stdout)
    expect(replied, r.stdout).not.toBeNull()
    expect(replied![1]).toBe(replied![2])
  })

  it('imports as a library without node_modules of its own', () => {
    const script = `
      const m = await import('mesh')
      const key = m.generateSigningKey()
      console.log(JSON.stringify({ version: m.MESH_VERSION, createMeshNode: typeof m.createMeshNode, key: key.publicKey.length }))
    `
    const r = run(process.execPath, ['--input-type=module', '-e', script], app, 20_000)
    expect(r.status, r.stderr).toBe(0)
    expect(JSON.parse(r.stdout)).toEqual({ version: MESH_VERSION, createMeshNode: 'function', key: 32 })
    expect(readdirSync(join(app, 'node_modules')).filter(n => !n.startsWith('.'))).toEqual(['mesh'])
  })
})
