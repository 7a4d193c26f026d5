// Proves that state writes are atomic and private: a child process rewriting a file in a loop is killed
// with SIGKILL at seeded random moments, and after every kill the target holds one complete version while
// leftover temporary files are recognised as such and cleaned; plus modes and typed read errors.
import { spawn } from 'node:child_process'
import { existsSync } from 'node:fs'
import { mkdir, mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import {
  cleanStaleTempFiles,
  ensureHomeDir,
  isStateTempFileName,
  readStateFile,
  StateFileError,
  writeFileAtomic,
} from '../../src/agent/state-file.js'

const FIXTURE = fileURLToPath(new URL('./fixtures/atomic-writer.mjs', import.meta.url))
// The fixture imports a .ts module: run it with the pinned Node (22.18+ strips types natively).
const PINNED_NODE = fileURLToPath(new URL('../../node_modules/.bin/node', import.meta.url))
const NODE = existsSync(PINNED_NODE) ? PINNED_NODE : process.execPath

let dir: string
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'mesh-state-'))
})
afterEach(async () => {
  await rm(dir, { recursive: true, force: true })
})

/** Parses a version written by the fixture; undefined when the bytes are not one complete version. */
function versionOf(bytes: Uint8Array): number | undefined {
  if (bytes.byteLength < 8) return undefined
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength)
  const n = view.getUint32(0)
  if (view.getUint32(4) !== bytes.byteLength) return undefined
  for (let i = 8; i < bytes.byteLength; i++) if (bytes[i] !== ((n + i) & 0xff)) return undefined
  return n
}

/** A small seeded generator (mulberry32) so a failing run can be replayed with MESH_SEED. */
function seededRandom(seed: number): () => number {
  let a = seed >>> 0
  return () => {
    a = (a + 0x6d2b79f5) >>> 0
    let t = a
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}

describe('writeFileAtomic under SIGKILL', () => {
  it('always leaves one complete version and only recognisable temp files', async () => {
    const seed = Number(process.env.MESH_SEED ?? Date.now() % 1_000_000)
    const random = seededRandom(seed)
    const target = join(dir, 'state.bin')
    const kills = 12
    let lastVersion = -1
    for (let round = 0; round < kills; round++) {
      const child = spawn(NODE, [FIXTURE, target], { stdio: ['ignore', 'pipe', 'inherit'] })
      const exited = new Promise<void>(resolve => child.once('exit', () => resolve()))
      // Wait until at least one write of this round completed, then kill at a random moment.
      await new Promise<void>((resolve, reject) => {
        child.stdout.once('data', () => resolve())
        child.once('exit', code => reject(new Error(`fixture exited early with ${code} (seed ${seed})`)))
      })
      await new Promise(resolve => setTimeout(resolve, Math.floor(random() * 40)))
      process.kill(child.pid!, 'SIGKILL')
      await exited

      const version = versionOf(await readFile(target))
      expect(version, `torn file after round ${round} (seed ${seed})`).toBeDefined()
      expect(version!, `version went backwards (seed ${seed})`).toBeGreaterThan(lastVersion)
      lastVersion = version!

      const names = await readdir(dir)
      const temps = names.filter(isStateTempFileName)
      expect(names.filter(n => !isStateTempFileName(n))).toEqual(['state.bin'])
      expect((await cleanStaleTempFiles(dir)).sort()).toEqual(temps.sort())
      expect(await readdir(dir)).toEqual(['state.bin'])
    }
    // Each round wrote at least its first version after the previous round's.
    expect(lastVersion).toBeGreaterThanOrEqual(kills - 1)
  })
})

describe('writeFileAtomic', () => {
  it('writes private files and replaces the previous content', async () => {
    const path = join(dir, 'node.key')
    await writeFileAtomic(path, 'first')
    await writeFileAtomic(path, new Uint8Array([1, 2, 3]))
    expect(new Uint8Array(await readFile(path))).toEqual(new Uint8Array([1, 2, 3]))
    expect((await stat(path)).mode & 0o777).toBe(0o600)
    expect(await readdir(dir)).toEqual(['node.key'])
  })

  it('honours an explicit mode', async () => {
    const path = join(dir, 'public.txt')
    await writeFileAtomic(path, 'x', { mode: 0o644 })
    expect((await stat(path)).mode & 0o777).toBe(0o644)
  })

  it('fails with a typed error and leaves no temp file when the directory is missing', async () => {
    const error = await writeFileAtomic(join(dir, 'nope', 'file'), 'x').catch(e => e)
    expect(error).toBeInstanceOf(StateFileError)
    expect((error as StateFileError).code).toBe('unwritable')
    expect(await readdir(dir)).toEqual([])
  })
})

describe('readStateFile', () => {
  it('returns the bytes of a file', async () => {
    await writeFileAtomic(join(dir, 'a'), 'hello')
    const read = await readStateFile(join(dir, 'a'))
    expect(read.ok && new TextDecoder().decode(read.bytes)).toBe('hello')
  })

  it('reports a missing file', async () => {
    const read = await readStateFile(join(dir, 'absent'))
    expect(read.ok ? undefined : read.error.code).toBe('missing')
  })

  it('reports a directory as unreadable', async () => {
    const read = await readStateFile(dir)
    expect(read.ok ? undefined : read.error.code).toBe('unreadable')
  })

  it('refuses a file over the limit', async () => {
    await writeFile(join(dir, 'big'), new Uint8Array(101))
    const read = await readStateFile(join(dir, 'big'), 100)
    expect(read.ok ? undefined : read.error.code).toBe('too-large')
    const exact = await readStateFile(join(dir, 'big'), 101)
    expect(exact.ok && exact.bytes.byteLength).toBe(101)
  })
})

describe('ensureHomeDir', () => {
  it('creates nested directories with mode 0700 and tightens an existing one', async () => {
    const home = join(dir, 'a', 'home')
    await ensureHomeDir(home)
    expect((await stat(home)).mode & 0o777).toBe(0o700)
    const loose = join(dir, 'loose')
    await mkdir(loose, { mode: 0o755 })
    await ensureHomeDir(loose)
    expect((await stat(loose)).mode & 0o777).toBe(0o700)
  })

  it('refuses a path that is a file', async () => {
    await writeFile(join(dir, 'file'), 'x')
    const error = await ensureHomeDir(join(dir, 'file')).catch(e => e)
    expect((error as StateFileError).code).toBe('not-a-directory')
  })
})

describe('isStateTempFileName', () => {
  it('matches only the temp name shape', () => {
    expect(isStateTempFileName('.node.key.0123456789ab.mesh-tmp')).toBe(true)
    expect(isStateTempFileName('node.key')).toBe(false)
    expect(isStateTempFileName('node.key.mesh-tmp')).toBe(false)
    expect(isStateTempFileName('.node.key.xyz.mesh-tmp')).toBe(false)
  })
})
