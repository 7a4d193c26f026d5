// Proves ensureHomeDir settles on paths it cannot create: under /proc (where Node's recursive mkdir
// used to retry forever: mkdir says ENOENT while the parent exists) it fails at once with one error
// naming the path, and under a regular file it says not-a-directory; a normal nested home is still
// created with mode 0700. Every wait is bounded.
import { existsSync } from 'node:fs'
import { mkdtemp, rm, stat, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { ensureHomeDir, StateFileError } from '../../src/agent/state-file.js'

/** Settles `promise`, or fails after `ms` instead of hanging the suite. */
async function within<T>(ms: number, promise: Promise<T>): Promise<T> {
  let timer: NodeJS.Timeout | undefined
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`did not settle within ${ms} ms`)), ms)
  })
  try {
    return await Promise.race([promise, timeout])
  } finally {
    clearTimeout(timer)
  }
}

async function failure(path: string): Promise<StateFileError> {
  const error = await within(
    5_000,
    ensureHomeDir(path).then(
      () => undefined,
      (err: unknown) => err,
    ),
  )
  expect(error).toBeInstanceOf(StateFileError)
  return error as StateFileError
}

let dir: string
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'mesh-home-dir-'))
})
afterEach(async () => {
  await rm(dir, { recursive: true, force: true })
})

describe('ensureHomeDir', () => {
  it.skipIf(!existsSync('/proc/self'))('fails at once with one error under /proc', async () => {
    for (const path of ['/proc/nope', '/proc/nope/deeper/still']) {
      const error = await failure(path)
      expect(error.code).toBe('unwritable')
      expect(error.path).toBe(path)
      expect(error.message).toContain(`cannot create ${path}`)
    }
    expect(existsSync('/proc/nope')).toBe(false)
  })

  it('says not-a-directory when the path or a parent is a file', async () => {
    const file = join(dir, 'file')
    await writeFile(file, 'x')
    expect((await failure(file)).code).toBe('not-a-directory')
    const below = await failure(join(file, 'home'))
    expect(below.code).toBe('not-a-directory')
    expect(below.message).toContain(file)
  })

  it('creates a nested home with mode 0700 and accepts it again', async () => {
    const home = join(dir, 'a', 'b', 'home')
    await within(5_000, ensureHomeDir(home))
    await within(5_000, ensureHomeDir(home))
    expect((await stat(home)).mode & 0o777).toBe(0o700)
  })
})
