/**
 * Proves `exec --once` says why nothing would run when no zone authority is known: with members that
 * match the filter but no authority among them, `exec` throws ExecNoAuthorityError naming the zone
 * ("zone web has no authority right now") and neither runs the request locally nor publishes it; with
 * an authority known it publishes to exactly that node; a filter nobody matches is still "no member"
 * (an empty expected set). Runs createExec over fake components (fabricated certificates, a manual clock).
 */
import { describe, expect, it, vi } from 'vitest'
import type { TargetFilter } from '../../src/gossip/filter.js'
import type { MemberView } from '../../src/membership/view.js'
import { createManualClock, systemRandom } from '../../src/node/clock.js'
import { createExec, ExecNoAuthorityError, zonesWithoutAuthority } from '../../src/node/exec.js'
import { silentLogger } from '../../src/node/log.js'
import { FakeCa } from '../gossip/fixtures.js'

const NOW = 1_800_000_000_000

const member = (name: string, zone: string): MemberView => ({
  name,
  peerId: `peer-${name}`,
  zone,
  roles: ['agent'],
  addrs: [],
  state: 'alive',
  lastSeenMs: NOW,
  facts: {},
})
const MEMBERS = [member('w1', 'web'), member('w2', 'web'), member('d1', 'db')]

function setup(authorities: string[]) {
  const asked: string[][] = []
  const ca = new FakeCa()
  const operator = ca.issue('alice', { roles: ['operator'] })
  const handle = vi.fn(() => ({ kind: 'accept-not-for-us' }) as never)
  const publish = vi.fn(async () => undefined)
  const clock = createManualClock(NOW)
  const exec = createExec(
    {
      operator: () => operator,
      isRunning: () => true,
      peerId: 'peer-c1',
      addrs: () => [],
      members: () => MEMBERS,
      authorities: async zones => {
        asked.push([...zones])
        // Only holders of the zones asked about count, as a lookup of those zones' voters returns.
        return new Set(
          authorities.filter(name => zones.includes(MEMBERS.find(m => m.name === name)?.zone ?? '')),
        )
      },
      handle,
      publish,
      router: { consume: () => () => {}, remember: () => {} },
      verifier: ca.verifier,
      clock,
      random: systemRandom,
      log: silentLogger(),
    },
    { requestLifetimeMsMax: 60_000 },
  )
  const run = (filter: TargetFilter) => {
    // An expected node never answers here: the abort ends the wait (the manual clock never does).
    return exec.exec({ action: 'uptime', filter, timeoutMs: 1_000, signal: AbortSignal.timeout(50) })
  }
  return { run, handle, publish, asked }
}

describe('exec --once without a known authority', () => {
  it('names the zone that has no authority and publishes nothing', async () => {
    const { run, handle, publish } = setup([])
    const error = await run({ zone: 'web', once: true }).catch((e: unknown) => e)
    expect(error).toBeInstanceOf(ExecNoAuthorityError)
    expect((error as Error).message).toBe('zone web has no authority right now')
    expect(handle).not.toHaveBeenCalled()
    expect(publish).not.toHaveBeenCalled()
  })

  it('names every matching zone when the filter names none', async () => {
    const { run } = setup(['d1'])
    // d1 holds db's authority; web's members match but none holds web's.
    const web = await run({ where: 'zone=web', once: true }).catch((e: unknown) => e)
    expect((web as Error).message).toBe('zone web has no authority right now')
    const none = setup([])
    const all = await none.run({ once: true }).catch((e: unknown) => e)
    expect((all as Error).message).toBe('zones db, web have no authority right now')
  })

  it('publishes to the authority when one is known, and keeps "no member" for a filter nobody matches', async () => {
    const known = setup(['w2'])
    const result0 = await known.run({ zone: 'web', once: true })
    expect(known.publish).toHaveBeenCalledTimes(1)
    // Only web's voters are asked, and the expected node is the one they prove.
    expect(known.asked).toEqual([['web']])
    expect(result0.expected).toEqual(['w2'])
    const nobody = setup([])
    const result = await nobody.run({ zone: 'nosuch', once: true })
    expect(result.expected).toEqual([])
    expect(nobody.publish).toHaveBeenCalledTimes(1)
  })

  it('zonesWithoutAuthority lists the zones of members matching all but the authority term', () => {
    expect(zonesWithoutAuthority(MEMBERS, { zone: 'db', once: true })).toEqual(['db'])
    expect(zonesWithoutAuthority(MEMBERS, { node: 'w*', once: true })).toEqual(['web'])
    expect(zonesWithoutAuthority(MEMBERS, { zone: 'nosuch', once: true })).toEqual([])
  })
})
