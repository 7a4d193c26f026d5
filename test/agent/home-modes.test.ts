// Proves that a home whose secrets others could read or replace is refused, like ssh refuses a private
// key readable by others: each secret file with any group/other bit, and a home (or ca/) directory that
// group/others may write, stops loadHome with a one-line HomeError naming the file, its octal mode and
// the chmod that fixes it; a merely readable 0755 home is accepted. Also that `mesh init` (initHome) and
// the savers `mesh join` uses create every file 0600 and every directory 0700, whatever the umask.
// Checked by mode bits (fs.stat), not by reading as another user: CI runs as root, which reads anything.
import { chmod, mkdtemp, readdir, rm, stat } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import {
  checkSecretFileMode,
  HomeError,
  homePaths,
  loadHome,
  NETWORK_KEY_FILE,
  saveNodeIdentity,
  saveRevocations,
  writeConfigFile,
} from '../../src/agent/home.js'
import { initHome } from '../../src/agent/init.js'

const NOW_MS = Date.UTC(2030, 0, 1)

let root: string
let home: string
beforeEach(async () => {
  root = await mkdtemp(join(tmpdir(), 'mesh-home-modes-'))
  home = join(root, 'home')
})
afterEach(async () => {
  await rm(root, { recursive: true, force: true })
})

const modeOf = async (path: string) => (await stat(path)).mode & 0o777

/** Runs `fn` with the given umask (restored after), so creation modes cannot come from a tight umask. */
async function withUmask<T>(mask: number, fn: () => Promise<T>): Promise<T> {
  const previous = process.umask(mask)
  try {
    return await fn()
  } finally {
    process.umask(previous)
  }
}

async function newHome(): Promise<void> {
  await withUmask(0o022, () => initHome(home, { name: 'n1', zone: 'z', networkKey: true }, NOW_MS))
}

/** Every entry below `dir` (recursively), with its mode and kind. */
async function walk(dir: string): Promise<{ path: string; mode: number; isDir: boolean }[]> {
  const out: { path: string; mode: number; isDir: boolean }[] = []
  for (const entry of await readdir(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name)
    out.push({ path, mode: await modeOf(path), isDir: entry.isDirectory() })
    if (entry.isDirectory()) out.push(...(await walk(path)))
  }
  return out
}

async function refusal(): Promise<HomeError> {
  const err = await loadHome(home).then(
    () => undefined,
    (e: unknown) => e,
  )
  expect(err).toBeInstanceOf(HomeError)
  return err as HomeError
}

describe.skipIf(process.platform === 'win32')('home file modes', () => {
  it('mesh init creates every file 0600 and every directory 0700 even under umask 022, and loads', async () => {
    await newHome()
    expect(await modeOf(home)).toBe(0o700)
    const entries = await walk(home)
    expect(entries.map(e => e.path)).toContain(join(home, NETWORK_KEY_FILE))
    expect(entries.map(e => e.path)).toContain(homePaths(home).caKey)
    for (const entry of entries) {
      expect({ path: entry.path, mode: entry.mode.toString(8) }).toEqual({
        path: entry.path,
        mode: entry.isDir ? '700' : '600',
      })
    }
    await expect(loadHome(home)).resolves.toMatchObject({ home })
  })

  it('the savers mesh join uses create a new home 0700 with files 0600 even under umask 000', async () => {
    await newHome()
    const { node, caPublicKey } = await loadHome(home)
    const joined = join(root, 'joined', 'home')
    await withUmask(0o000, async () => {
      await saveNodeIdentity(joined, node, caPublicKey)
      await saveRevocations(joined, new Uint8Array([1, 2, 3]))
      await writeConfigFile(joined, { listen: [] })
    })
    expect(await modeOf(joined)).toBe(0o700)
    for (const entry of await walk(joined)) expect([entry.path, entry.mode]).toEqual([entry.path, 0o600])
  })

  const secrets: [string, (home: string) => string, number][] = [
    ['node key', h => homePaths(h).nodeKey, 0o644],
    ['node key (group-readable only)', h => homePaths(h).nodeKey, 0o640],
    ['operator key', h => homePaths(h).operatorKey, 0o604],
    ['CA key', h => homePaths(h).caKey, 0o666],
    ['ticket secret', h => homePaths(h).ticketSecret, 0o620],
    ['network key', h => join(h, NETWORK_KEY_FILE), 0o644],
  ]
  for (const [what, pathOf, mode] of secrets) {
    it(`refuses a ${what} with mode ${mode.toString(8)}, naming the file, its mode and the fix`, async () => {
      await newHome()
      const path = pathOf(home)
      await chmod(path, mode)
      const err = await refusal()
      expect(err.code).toBe('insecure-permissions')
      expect(err.message).not.toContain('\n')
      expect(err.message).toContain(path)
      expect(err.message).toContain(`0${mode.toString(8)}`)
      expect(err.message).toContain(`chmod 600 ${path}`)
      await chmod(path, 0o600)
      await expect(loadHome(home)).resolves.toMatchObject({ home })
    })
  }

  it('accepts a secret file that is owner-only but stricter than 0600 (0400)', async () => {
    await newHome()
    await chmod(homePaths(home).nodeKey, 0o400)
    await expect(loadHome(home)).resolves.toMatchObject({ home })
  })

  for (const mode of [0o775, 0o757, 0o777]) {
    it(`refuses a home directory writable by group/others (${mode.toString(8)})`, async () => {
      await newHome()
      await chmod(home, mode)
      const err = await refusal()
      expect(err.code).toBe('insecure-permissions')
      expect(err.message).not.toContain('\n')
      expect(err.message).toContain(`0${mode.toString(8)}`)
      expect(err.message).toContain(`chmod 700 ${home}`)
    })
  }

  it('refuses a ca/ directory writable by group/others', async () => {
    await newHome()
    const { caDir } = homePaths(home)
    await chmod(caDir, 0o777)
    const err = await refusal()
    expect(err.code).toBe('insecure-permissions')
    expect(err.message).toContain(`chmod 700 ${caDir}`)
  })

  it('accepts a home directory that is only readable by others (0755): the files inside are checked', async () => {
    await newHome()
    await chmod(home, 0o755)
    await chmod(homePaths(home).caDir, 0o755)
    await expect(loadHome(home)).resolves.toMatchObject({ home })
  })

  it('the defect as reported: home 0755, node.key 0644, ca/ca.key 0666 is refused', async () => {
    await newHome()
    const p = homePaths(home)
    await chmod(home, 0o755)
    await chmod(p.nodeKey, 0o644)
    await chmod(p.caKey, 0o666)
    const err = await refusal()
    expect(err.code).toBe('insecure-permissions')
    expect(err.message).toMatch(/chmod 600 /)
  })

  it('a missing home is still "not initialised", not a permission error', async () => {
    const err = await refusal()
    expect(err.code).toBe('not-initialised')
  })

  it('checkSecretFileMode checks a secret kept outside the home', async () => {
    await newHome()
    const path = join(home, NETWORK_KEY_FILE)
    await expect(checkSecretFileMode(path)).resolves.toBeUndefined()
    await expect(checkSecretFileMode(join(root, 'absent'))).resolves.toBeUndefined()
    await chmod(path, 0o644)
    await expect(checkSecretFileMode(path)).rejects.toMatchObject({ code: 'insecure-permissions' })
  })
})
