/**
 * Proves the issuer driver's ordering guarantees around the real CA issuer core, with hand-controlled
 * `save` and `publishRevocations` ports: inputs are stepped one at a time in arrival order (the next
 * is not even stepped while a save is pending), every `persist` is durable before the answer (a slow
 * save delays it; the zone roster and revocations are published after the save and before the answer;
 * a driver built without `publishRoster` still answers), and once a save
 * fails every later `run` rejects naming the cause while `tick` still never rejects.
 */
import { describe, expect, it } from 'vitest'
import { createIssuer, type IssuerEffect, type IssuerInput } from '../../src/ca/issuer.js'
import type { IssuerState } from '../../src/ca/issuer-state.js'
import { createManualClock } from '../../src/node/clock.js'
import { createIssuerDriver } from '../../src/node/issuer-driver.js'
import { silentLogger } from '../../src/node/log.js'
import { keyFor, secretFor, seededRandomBytes, T0 } from '../ca/fixtures.js'

/** Lets promise callbacks run. */
const flush = (): Promise<void> => new Promise(resolve => setImmediate(resolve))

interface Deferred {
  resolve(): void
  reject(err: Error): void
  readonly promise: Promise<void>
}
function deferred(): Deferred {
  let resolve!: () => void
  let reject!: (err: Error) => void
  const promise = new Promise<void>((res, rej) => {
    resolve = res
    reject = rej
  })
  return { resolve, reject, promise }
}

const issue = (requestId: string, name = requestId): IssuerInput => ({
  type: 'issue',
  requestId,
  publicKey: keyFor(name).publicKey,
  name,
  zone: 'web',
  roles: ['agent'],
})

/**
 * A driver around a real issuer. `save` waits for the test to settle each call (in `saves`) unless
 * `autoSave`; `log` records steps, saves, publishes and ticks in the order they happen.
 */
function setup(opts: { autoSave?: boolean; withoutRosterPort?: boolean } = {}) {
  const issuer = createIssuer({
    caKey: keyFor('ca'),
    ticketSecret: secretFor('ticket'),
    randomBytes: seededRandomBytes('issuer-driver'),
  })
  const log: string[] = []
  const step = issuer.step.bind(issuer)
  issuer.step = (input, nowMs) => {
    log.push(`step ${input.requestId}`)
    step(input, nowMs)
  }
  const tick = issuer.tick.bind(issuer)
  issuer.tick = nowMs => {
    log.push('tick')
    tick(nowMs)
  }
  const saves: Deferred[] = []
  const saved: IssuerState[] = []
  const rosters: Uint8Array[] = []
  let failWith: Error | undefined
  const driver = createIssuerDriver({
    issuer,
    save: async state => {
      log.push('save start')
      if (failWith !== undefined) throw failWith
      if (opts.autoSave !== true) {
        const d = deferred()
        saves.push(d)
        await d.promise
      }
      saved.push(state)
      log.push('save done')
    },
    publishRevocations: async () => {
      log.push('publish revocations')
    },
    ...(opts.withoutRosterPort === true
      ? {}
      : {
          publishRoster: async (roster: Uint8Array) => {
            rosters.push(roster)
            log.push('publish roster')
          },
        }),
    clock: createManualClock(T0),
    log: silentLogger(),
  })
  const failSaves = (err: Error | undefined) => {
    failWith = err
  }
  return { issuer, driver, log, saves, saved, rosters, failSaves }
}

const requestIds = (effects: IssuerEffect[]) =>
  effects.map(e => (e.type === 'command-reply' || e.type === 'reply' ? e.requestId : e.type))

describe('issuer driver', () => {
  it('steps inputs one at a time, in arrival order, answering each in turn', async () => {
    const { driver, log, saves } = setup()
    const answered: string[] = []
    const runs = ['a', 'b', 'c'].map(id =>
      driver.run(issue(id)).then(effects => {
        answered.push(...requestIds(effects))
        return effects
      }),
    )
    await flush()
    // Only the first input is in: the others wait behind its pending save.
    expect(log).toEqual(['step a', 'save start'])
    saves[0]?.resolve()
    await flush()
    expect(answered).toEqual(['a'])
    expect(log).toEqual(['step a', 'save start', 'save done', 'publish roster', 'step b', 'save start'])
    saves[1]?.resolve()
    await flush()
    saves[2]?.resolve()
    const results = await Promise.all(runs)
    expect(answered).toEqual(['a', 'b', 'c'])
    expect(log.filter(l => l.startsWith('step'))).toEqual(['step a', 'step b', 'step c'])
    for (const effects of results) {
      expect(effects).toHaveLength(1)
      expect(effects[0]).toMatchObject({ type: 'command-reply', result: { ok: true, command: 'issue' } })
    }
  })

  it('holds the answer until the slow save is durable, and returns only answers', async () => {
    const { driver, saves, saved, issuer } = setup()
    let answer: IssuerEffect[] | undefined
    const run = driver.run(issue('web1')).then(effects => {
      answer = effects
    })
    for (let i = 0; i < 5; i++) await flush()
    expect(saves).toHaveLength(1)
    expect(answer).toBeUndefined() // the save is still pending: nobody is told yet
    saves[0]?.resolve()
    await run
    expect(saved).toHaveLength(1)
    expect(saved[0]).toEqual(issuer.state())
    expect(answer?.map(e => e.type)).toEqual(['command-reply'])
  })

  it('publishes the zone roster after the save (that holds it) and before answering', async () => {
    const { driver, log, saves, saved, rosters, issuer } = setup()
    let answer: IssuerEffect[] | undefined
    const run = driver.run(issue('web1')).then(effects => {
      answer = effects
    })
    for (let i = 0; i < 5; i++) await flush()
    expect(log).toEqual(['step web1', 'save start']) // not published while the save is pending
    expect(rosters).toEqual([])
    saves[0]?.resolve()
    await run
    expect(log).toEqual(['step web1', 'save start', 'save done', 'publish roster'])
    expect(saved[0]?.roster?.rosterVersion).toBe(1)
    expect(rosters).toEqual([issuer.zoneRoster().bytes])
    expect(answer?.map(e => e.type)).toEqual(['command-reply']) // not an answer
  })

  it('without a publishRoster port the roster is only saved, and the answer still comes', async () => {
    const { driver, saved } = setup({ autoSave: true, withoutRosterPort: true })
    const effects = await driver.run(issue('web1'))
    expect(effects.map(e => e.type)).toEqual(['command-reply'])
    expect(saved[0]?.roster?.rosterVersion).toBe(1)
  })

  it('publishes the roster and revocations after the save and before answering', async () => {
    const { driver, log } = setup({ autoSave: true })
    await driver.run(issue('web1'))
    log.length = 0
    const effects = await driver.run({ type: 'revoke', requestId: 'rv', target: 'web1' })
    expect(log).toEqual(['step rv', 'save start', 'save done', 'publish roster', 'publish revocations'])
    expect(effects).toHaveLength(1)
    expect(effects[0]).toMatchObject({ type: 'command-reply', requestId: 'rv', result: { ok: true } })
  })

  it('runs the expiry tick through the same queue', async () => {
    const { driver, log, saves } = setup()
    const first = driver.run(issue('a'))
    const ticked = driver.tick()
    await flush()
    expect(log).toEqual(['step a', 'save start']) // the tick waits its turn
    saves[0]?.resolve()
    await first
    await ticked
    expect(log).toEqual(['step a', 'save start', 'save done', 'publish roster', 'tick'])
  })

  it('after a failed save refuses every later run, naming the cause; tick never rejects', async () => {
    const { driver, log, failSaves } = setup({ autoSave: true })
    await driver.run(issue('ok'))
    failSaves(new Error('ENOSPC: disk full'))
    const failing = driver.run(issue('a'))
    const queuedBehind = driver.run(issue('b')) // already queued when the save fails
    // The input whose state could not be saved gets no answer (it would promise what the disk lacks).
    await expect(failing).resolves.toEqual([])
    await expect(queuedBehind).rejects.toThrow(/ENOSPC: disk full/)
    log.length = 0
    await expect(driver.run(issue('c'))).rejects.toThrow(/ENOSPC: disk full/)
    await expect(driver.run(issue('d'))).rejects.toThrow(/could not be saved.*restart/)
    await expect(driver.tick()).resolves.toBeUndefined()
    expect(log).toEqual([]) // nothing reaches the issuer any more
  })

  it('stays stopped even when the disk recovers', async () => {
    const { driver, failSaves } = setup({ autoSave: true })
    failSaves(new Error('EIO'))
    await driver.run(issue('a'))
    failSaves(undefined) // saves would succeed again
    await expect(driver.run(issue('b'))).rejects.toThrow(/EIO/)
  })
})
