// Proves the write-ordering rules the crash campaign (crash-consistency.int.test.ts) relies on, each
// deterministically: a node identity lands node.key last (a crash before it leaves a home that is not
// initialised, which `mesh init` or `mesh join` simply writes again, instead of a key without its
// certificate that both would refuse); writes to one file land in the order they were made (two saves
// of a revocation list in flight could land out of order and leave the older list on disk); and
// the start-up clean of temporary files never removes one of this process's own writes in progress.
import { watch } from 'node:fs'
import { mkdir, mkdtemp, readFile, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { homePaths, isInitialised, loadHome, saveNodeIdentity } from '../../src/agent/home.js'
import { initHome } from '../../src/agent/init.js'
import { cleanStaleTempFiles, writeFileAtomic } from '../../src/agent/state-file.js'

let dir: string
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'mesh-writes-'))
})
afterEach(async () => {
  await rm(dir, { recursive: true, force: true })
})

describe('saveNodeIdentity', () => {
  it('writes node.key last, so a crash before it leaves a home that is not initialised', async () => {
    const made = join(dir, 'made')
    await initHome(made, { name: 'n1', zone: 'z', listen: ['/ip4/127.0.0.1/tcp/0'] }, Date.now())
    const { node, caPublicKey } = await loadHome(made)
    const home = join(dir, 'home')
    const landed: string[] = []
    await mkdir(home, { mode: 0o700 })
    const watcher = watch(home, (_event, name) => {
      const file = name === null ? '' : name
      if (['mesh.ca', 'node.cert', 'node.key'].includes(file) && !landed.includes(file)) landed.push(file)
    })
    try {
      await saveNodeIdentity(home, node, caPublicKey)
      const deadline = Date.now() + 2_000
      while (landed.length < 3 && Date.now() < deadline) await new Promise(r => setTimeout(r, 10))
    } finally {
      watcher.close()
    }
    expect(landed).toEqual(['mesh.ca', 'node.cert', 'node.key'])
    // Everything but the key: not initialised, so init or join may write the home again.
    await rm(homePaths(home).nodeKey)
    expect(await isInitialised(home)).toBe(false)
  })
})

describe('writeFileAtomic to one file', () => {
  it('lands concurrent writes in call order, so the newest content stays on disk', async () => {
    // The node saves adopted documents without waiting for the previous save: a big write started first
    // and a small one after must not finish the other way round.
    const target = join(dir, 'revocations')
    const older = new Uint8Array(8 * 1024 * 1024).fill(1)
    const newer = Uint8Array.of(2)
    const landed: number[] = []
    await Promise.all([
      writeFileAtomic(target, older).then(() => landed.push(1)),
      writeFileAtomic(target, newer).then(() => landed.push(2)),
    ])
    expect(landed).toEqual([1, 2])
    expect(new Uint8Array(await readFile(target))).toEqual(newer)
  })

  it('copies bytes that wait for an earlier write, and a failed write does not stop the next', async () => {
    const target = join(dir, 'state')
    const first = writeFileAtomic(target, new Uint8Array(4 * 1024 * 1024))
    const bytes = Uint8Array.of(1, 2, 3)
    const second = writeFileAtomic(target, bytes)
    bytes[0] = 9 // the caller reuses its buffer at once
    await Promise.all([first, second])
    expect([...(await readFile(target))]).toEqual([1, 2, 3])
    const missing = join(dir, 'absent', 'file')
    await expect(writeFileAtomic(missing, 'x')).rejects.toThrow(/cannot write/)
    await mkdir(join(dir, 'absent'))
    await writeFileAtomic(missing, 'y')
    expect(await readFile(missing, 'utf8')).toBe('y')
  })
})

describe('cleanStaleTempFiles', () => {
  it('never removes the temporary file of a write this process has in progress', async () => {
    const target = join(dir, 'big')
    const bytes = new Uint8Array(8 * 1024 * 1024).fill(7)
    let cleaning = true
    let cleans = 0
    const cleaner = (async () => {
      while (cleaning) {
        await cleanStaleTempFiles(dir)
        cleans += 1
        await new Promise(r => setImmediate(r))
      }
    })()
    try {
      for (let n = 0; n < 3; n++) await writeFileAtomic(target, bytes)
    } finally {
      cleaning = false
      await cleaner
    }
    expect(cleans).toBeGreaterThan(0)
    expect((await readFile(target)).byteLength).toBe(bytes.byteLength)
  })
})
