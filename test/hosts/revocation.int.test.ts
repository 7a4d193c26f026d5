/**
 * Proves, on real agents in their own network namespaces, that revoking a member while it is
 * partitioned away takes effect mesh-wide within 5 s of the heal: x (to be revoked) and y sit on one
 * side of a partition, the CA and two members on the other; `mesh ca revoke x` reaches the CA's side
 * only (y still lists x alive, x still holds a valid certificate: the partition holds), and the
 * partition lasts until each side has declared the other dead. Within 5 s of the heal every other
 * node holds the revocation (its log says when it adopted the list) and none lists x; x itself then
 * reports its certificate revoked (told by the first peer that refuses it), and an exec from the CA
 * expects and hears every member but x.
 */
import { afterAll, describe, expect, it, onTestFailed } from 'vitest'
import { buildMesh, describeStalled, exec, members, stalledAcross, startAll, waitConverged } from './mesh.js'
import { createRig, note, type Rig, rigSupport, until, warnIfUnsupported } from './rig.js'

warnIfUnsupported('test/hosts/revocation.int.test.ts')

/** The bound: a revocation is effective mesh-wide this soon after the heal. */
const EFFECTIVE_AFTER_HEAL_MS = 5_000
const NAMES = ['ca', 'w1', 'w2', 'y', 'x']

describe.skipIf(!rigSupport().ok)('hosts: revocation of a member while partitioned away', () => {
  let rig: Rig | undefined
  afterAll(async () => {
    await rig?.teardown()
  })

  it('is effective mesh-wide within 5 s of the heal', async () => {
    rig = await createRig()
    const r = rig
    onTestFailed(() => {
      r.keep()
      console.warn(`hosts revocation: logs and homes kept in ${r.root}`)
    })
    const t0 = Date.now()
    await buildMesh(r, [
      { name: 'ca', zone: 'core' },
      { name: 'w1', zone: 'web' },
      { name: 'w2', zone: 'web' },
      { name: 'y', zone: 'web' },
      { name: 'x', zone: 'web' },
    ])
    await startAll(r, NAMES.slice(1))
    await waitConverged(r, NAMES, NAMES, 30_000)
    // A member learnt less than one longest suspicion timeout ago (4.5 s in `lan`) is not yet a trusted
    // accuser (src/membership/swim.ts, applySuspect): cut off right after forming, y ignored x's
    // suspicions of the CA side and waited for a push-pull to hear of the deaths (a full-suite run
    // timed out so). Partition a mesh that has formed, as the scenario means.
    await new Promise(resolve => setTimeout(resolve, 5_000))
    const certificateState = async (name: string) =>
      (await r.meshJson<{ certificateState: string }>(name, ['status'])).certificateState
    const lists = async (viewer: string, name: string) =>
      (await members(r, viewer)).some(m => m.name === name)

    await r.partition(['x', 'y'])
    const partitionedAt = Date.now()
    const revoked = await r.mesh('ca', ['ca', 'revoke', 'x'])
    expect(revoked.status, revoked.stderr).toBe(0)
    // The CA's side drops x at once (gossip); the other side cannot hear of it.
    await until(
      'the CA side to drop x',
      async () =>
        (await Promise.all(['ca', 'w1', 'w2'].map(v => lists(v, 'x')))).some(Boolean) ? undefined : true,
      10_000,
    )
    // Partitioned away for real: each side has declared the other dead (not merely slow).
    await until(
      'each side to see the other dead',
      async () => {
        const [fromY, fromCa] = await Promise.all([members(r, 'y'), members(r, 'ca')])
        const dead = (view: typeof fromY, names: string[]) =>
          names.every(n => view.find(m => m.name === n)?.state === 'dead')
        return dead(fromY, ['ca', 'w1', 'w2']) && dead(fromCa, ['y']) ? true : undefined
      },
      30_000,
    )
    expect(await lists('y', 'x')).toBe(true)
    expect(await certificateState('x')).toBe('valid')
    note(`revocation: partitioned for ${Date.now() - partitionedAt} ms before the heal`)

    const stalled = stalledAcross(r, ['y'], ['ca', 'w1', 'w2'])
    await r.heal()
    const healAt = Date.now()
    // Effective mesh-wide: every other node holds the list that revokes x (its log says when it
    // adopted it) and lists x no more. The time counted is the later of the adoptions and the end of
    // the round of `mesh members` calls that first showed no x anywhere.
    const others = ['ca', 'w1', 'w2', 'y']
    const listedNoMoreAt = await until(
      'no node to list x',
      async () =>
        (await Promise.all(others.map(v => lists(v, 'x')))).some(Boolean) ? undefined : Date.now(),
      EFFECTIVE_AFTER_HEAL_MS + 20_000,
      100,
    )
    const adoptedAt = (name: string) =>
      r.logLines(name).find(l => l.msg === 'revocation list adopted' && (l.entries as number) > 0)?.time
    const adoptions = others.map(n => adoptedAt(n))
    expect(
      adoptions.every(t => t !== undefined),
      `every node adopted the list: ${adoptions}`,
    ).toBe(true)
    const effectiveAt = Math.max(listedNoMoreAt, ...(adoptions as number[]))
    note(
      `revocation: y adopted the list ${adoptedAt('y')! - healAt} ms after the heal; ` +
        `effective mesh-wide after ${effectiveAt - healAt} ms`,
    )
    if (effectiveAt - healAt > EFFECTIVE_AFTER_HEAL_MS) {
      // Known defect (docs/hosts.md, "stalled connections"): y hears the CA's side again only when TCP
      // retransmits on a connection the partition stalled. Only that excuses the bound, and then it
      // counts from the last such retransmission.
      const resumedAfterMs = Math.max(0, ...stalled.map(c => c.retransmitInMs))
      console.warn(
        `hosts revocation: KNOWN DEFECT (stalled connections): effective ${effectiveAt - healAt} ms after the heal, ` +
          `over ${EFFECTIVE_AFTER_HEAL_MS} ms; TCP resumed the stalled connections within ${resumedAfterMs} ms: ` +
          describeStalled(stalled),
      )
      expect(
        stalled,
        `${effectiveAt - healAt} ms after the heal, no stalled connection of y to blame`,
      ).not.toEqual([])
      expect(effectiveAt - healAt, 'over 5 s after TCP resumed the stalled connections').toBeLessThanOrEqual(
        resumedAfterMs + EFFECTIVE_AFTER_HEAL_MS,
      )
    }
    // x itself learns it when a peer refuses its hello with the list (it then stops dialling).
    const xKnows = await until(
      'x to report its certificate revoked',
      async () => ((await certificateState('x')) === 'revoked' ? true : undefined),
      30_000,
    )
    expect(xKnows).toBe(true)
    const xLearntAt = r.logLines('x').find(l => l.msg.startsWith("this node's certificate was revoked"))?.time
    note(`revocation: x learnt of its own revocation ${xLearntAt! - healAt} ms after the heal`)

    // x is gone for good: an exec from the CA expects and hears the other four, and never x.
    const rest = ['ca', 'w1', 'w2', 'y']
    await waitConverged(r, ['ca'], rest, 20_000)
    const after = await exec(r, 'ca', ['uptime', '--timeout', '5s'])
    expect(after.status, after.stderr).toBe(0)
    expect(after.report?.expected).toEqual([...rest].sort())
    expect(after.report?.replies.map(x => x.node).sort()).toEqual([...rest].sort())
    note(`revocation: total ${Date.now() - t0} ms`)
  }, 180_000)
})
