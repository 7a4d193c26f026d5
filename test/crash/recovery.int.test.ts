// Proves, deterministically and in this process, the recoveries the SIGKILL campaign
// (crash-consistency.int.test.ts) found missing, each from the home a kill at the wrong moment leaves:
// a CA whose revocation list file is one version behind its issuer state (killed between saving the
// state and saving the list) adopts its own newer list again, saves it and treats the member as
// revoked, while a list file newer than the state is kept; the agent removes the temporary files of
// interrupted writes once it holds the home, but never one of its own writes in progress (its node
// saves documents before that clean); and a second `mesh agent` started on a running home by mistake
// leaves the running agent's temporary files alone, so none of its writes fails.

import { existsSync } from 'node:fs'
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { homePaths, loadHome, saveIssuerState, saveRevocations } from '../../src/agent/home.js'
import { initHome } from '../../src/agent/init.js'
import { type RunningAgent, startAgent } from '../../src/agent/runtime.js'
import { createIssuer } from '../../src/ca/issuer.js'
import { verifyRevocationList } from '../../src/ca/revocation.js'
import { generateSigningKey, secureRandomBytes } from '../../src/node/keys.js'
import { silentLogger } from '../../src/node/log.js'
import { poll } from './harness.js'

const LOCAL = '/ip4/127.0.0.1/tcp/0'
let root: string
const running: RunningAgent[] = []

beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), 'mesh-recovery-'))
})

afterAll(async () => {
  for (const agent of running) await agent.stop().catch(() => undefined)
  await rm(root, { recursive: true, force: true })
})

async function start(home: string): Promise<RunningAgent> {
  const agent = await startAgent({ home, env: {}, logger: silentLogger() })
  running.push(agent)
  return agent
}

/**
 * A CA home with member `m1` issued and then revoked in the issuer state, as the agent would have
 * done it; returns the revoked serial and the list the home held before the revocation.
 */
async function caHomeWithRevocation(
  home: string,
): Promise<{ serial: string; before: Uint8Array; stateBefore: Uint8Array }> {
  await initHome(home, { name: 'hub', zone: 'core', listen: [LOCAL] }, Date.now())
  const before = new Uint8Array(await readFile(homePaths(home).revocations))
  const stateBefore = new Uint8Array(await readFile(homePaths(home).issuerState))
  const ca = (await loadHome(home)).ca!
  const issuer = createIssuer({
    caKey: ca.caKey,
    ticketSecret: ca.ticketSecret,
    state: ca.issuerState,
    randomBytes: secureRandomBytes,
  })
  const nowMs = Date.now()
  const publicKey = generateSigningKey().publicKey
  issuer.step({ type: 'issue', requestId: 'i', publicKey, name: 'm1', zone: 'edge', roles: ['agent'] }, nowMs)
  issuer.step({ type: 'revoke', requestId: 'r', target: 'm1' }, nowMs)
  const serial = issuer.revocationList().list.entries[0]!.serial
  issuer.drainEffects()
  await saveIssuerState(home, issuer.state())
  return { serial, before, stateBefore }
}

async function listVersionOf(home: string, caPublicKey: Uint8Array): Promise<number | undefined> {
  const verdict = verifyRevocationList(await readFile(homePaths(home).revocations), caPublicKey)
  return verdict.ok ? verdict.signed.list.version : undefined
}

describe('recovery from the homes a kill leaves', () => {
  it('a CA whose revocations file lags its issuer state adopts and saves its own newer list', async () => {
    const home = join(root, 'lagging')
    const { serial, before } = await caHomeWithRevocation(home)
    // The kill came after the issuer state was saved and before the list file was: it holds version 0.
    await saveRevocations(home, before)
    const { caPublicKey } = await loadHome(home)
    expect(await listVersionOf(home, caPublicKey)).toBe(0)
    const agent = await start(home)
    expect(agent.node.isRevoked(serial)).toBe(true)
    const saved = await poll(
      async () => ((await listVersionOf(home, caPublicKey)) === 1 ? true : undefined),
      5_000,
    )
    expect(saved, 'the newer list is saved again').toBe(true)
    await agent.stop()
  })

  it('a list file newer than the issuer state (state restored from an older backup) is kept', async () => {
    const home = join(root, 'newer-file')
    const { serial, stateBefore } = await caHomeWithRevocation(home)
    const { caPublicKey } = await loadHome(home)
    await (await start(home)).stop() // saves the list of version 1
    expect(await listVersionOf(home, caPublicKey)).toBe(1)
    await writeFile(homePaths(home).issuerState, stateBefore) // the state of before the revocation
    const agent = await start(home)
    expect(agent.node.isRevoked(serial)).toBe(true)
    expect(await listVersionOf(home, caPublicKey)).toBe(1)
    await agent.stop()
  })

  it('a second agent on a running home leaves the running agent’s temporary files alone', async () => {
    const home = join(root, 'two-agents')
    await initHome(home, { name: 'hub', zone: 'core', listen: [LOCAL] }, Date.now())
    const first = await start(home)
    // As if the running agent were inside a write (its temp file exists until the rename).
    const inFlight = join(home, '.roster.0123456789ab.mesh-tmp')
    await writeFile(inFlight, 'in flight', { mode: 0o600 })
    const second = await startAgent({ home, env: {}, logger: silentLogger() }).then(
      agent => {
        running.push(agent)
        return undefined
      },
      (err: Error & { code?: string }) => err,
    )
    expect(second?.code).toBe('agent-already-running')
    expect(existsSync(inFlight), 'the second agent removed a temporary file of the running one').toBe(true)
    await first.stop()
    // The next agent that holds the home removes it.
    const next = await start(home)
    expect(existsSync(inFlight)).toBe(false)
    await next.stop()
  })
})
