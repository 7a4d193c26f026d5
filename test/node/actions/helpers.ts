// Shared fixtures of the action tests: a registry factory that closes what it made, a temporary
// directory per test, the process-tree fixture and PID checks.
import { readFileSync } from 'node:fs'
import { mkdtemp, readFile, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { afterEach, beforeEach } from 'vitest'
import {
  type ActionRegistry,
  type ActionRegistryInit,
  type ActionSystem,
  createActionRegistry,
} from '../../../src/node/actions/index.js'

export const NODE = process.execPath
export const TREE = fileURLToPath(new URL('../fixtures/process-tree.mjs', import.meta.url))

/** A system with fixed readings, in UTC. */
export const fakeSystem: ActionSystem = {
  uptimeSeconds: () => 3 * 86_400 + 4 * 3_600 + 2 * 60 + 59.5,
  loadAverage: () => [0.15, 0.1, 0.05],
  countUsers: async () => 2,
  utcOffsetMinutes: () => 0,
}

/**
 * Registers the per-test hooks and returns a registry factory (fake system, short kill grace and exit
 * drain; everything made is closed after the test) and the test's temporary directory.
 */
export function useActionRegistries(): {
  registry(init?: Partial<ActionRegistryInit>): ActionRegistry
  dir(): string
} {
  let dir: string
  const registries: ActionRegistry[] = []
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'mesh-actions-'))
  })
  afterEach(async () => {
    await Promise.all(registries.splice(0).map(r => r.close()))
    await rm(dir, { recursive: true, force: true })
  })
  return {
    registry(init = {}) {
      const r = createActionRegistry({
        facts: () => ({ os: 'linux', hostname: 'web-1' }),
        system: fakeSystem,
        ...init,
        limits: { killGraceMs: 300, exitDrainMs: 200, ...init.limits },
      })
      registries.push(r)
      return r
    },
    dir: () => dir,
  }
}

/** True when `pid` no longer runs (absent, or a zombie waiting for a reaper that is not us). */
export function isGone(pid: number): boolean {
  try {
    process.kill(pid, 0)
  } catch {
    return true
  }
  try {
    return readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]?.startsWith('Z') === true
  } catch {
    return true
  }
}

export async function waitUntil(condition: () => boolean, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs
  while (Date.now() < deadline) {
    if (condition()) return true
    await new Promise(resolve => setTimeout(resolve, 25))
  }
  return condition()
}

export async function treePids(pidFile: string): Promise<[number, number]> {
  const [parent, grandchild] = (await readFile(pidFile, 'utf8')).split(' ').map(Number)
  return [parent!, grandchild!]
}
