/**
 * The one driver around the pure CA issuer (src/ca/issuer.ts), used by a running CA node and by
 * `mesh init` alike: it serialises inputs (network signing requests, operator commands, the expiry
 * tick) through one queue and carries out each input's effects in order — persist first, then publish
 * the zone roster and revocations, then answer — so nobody is told a result the disk does not yet hold. When a persist
 * fails, memory is ahead of disk: the driver refuses every later input until it is created anew.
 */
import type { Issuer, IssuerEffect, IssuerInput, PendingSummary } from '../ca/issuer.js'
import type { IssuerState } from '../ca/issuer-state.js'
import type { Clock } from './clock.js'
import type { EventBus } from './events.js'
import type { Logger } from './log.js'

/** The driver around the issuer core. */
export interface IssuerDriver {
  /** Feeds one input and returns the answers (replies and command replies), after persisting. */
  run(input: IssuerInput): Promise<IssuerEffect[]>
  listPending(): PendingSummary[]
  /** Feeds the expiry tick through the same queue. Never rejects. */
  tick(): Promise<void>
  /**
   * `mesh ca add-holder`: runs `work` with the issuer's current state, between inputs (nothing changes
   * the state meanwhile). With `retire`, a `work` that resolved leaves this issuer refusing every later
   * input with `retired` (a one-holder CA that handed its state to a second holder: until the holders
   * restart together, a change here would be missing from the copy, and the copy could win). Rejects
   * as `run` does while this holder is not the issuer. A retired one-holder issuer still hands over
   * (its state no longer changes), so the holders can be added one after the other before they restart.
   */
  handOver<T>(work: (state: IssuerState) => Promise<T>, options: { retire?: NotIssuerError }): Promise<T>
}

/** What the driver needs. */
export interface IssuerDriverComponents {
  readonly issuer: Issuer
  /** Persists the issuer's state; must be durable when it resolves. */
  readonly save: (state: IssuerState) => Promise<void>
  /** Carries out a `publish-revocations` effect (adopt, spread, save). */
  readonly publishRevocations: (list: Uint8Array) => Promise<void>
  /**
   * Carries out a `publish-roster` effect (adopt, spread, save the signed zone roster). Optional so a
   * driver built without it (e.g. `mesh init`) still works: the roster is then only in the saved state.
   */
  readonly publishRoster?: (roster: Uint8Array) => Promise<void>
  readonly clock: Clock
  readonly log: Logger
  /** Where each input's outcome is reported (the audit log); optional. */
  readonly events?: Pick<EventBus, 'emit'>
  /**
   * Several CA holders (src/node/ca-replication-driver.ts): the issuer core to use is the replica's
   * while it serves (`issuer` above is then unused), and every `persist` is committed on a majority
   * of holders, after `save`, before any later effect (revocations, roster, answers) leaves. Absent
   * with one holder: today's behaviour.
   */
  readonly replication?: IssuerReplication
}

/** The replication hook of {@link IssuerDriverComponents}. */
export interface IssuerReplication {
  /** The serving issuer core; undefined while this holder is not the issuer. */
  current(): Issuer | undefined
  /** Resolves once `state` is on a majority of holders. @throws NotIssuerError when deposed */
  commit(state: IssuerState): Promise<void>
  /** The error to give while this holder is not the issuer. */
  notIssuer(): NotIssuerError
}

/** A CA holder that is not the current issuer refuses to sign or change state; `hint` names the issuer. */
export class NotIssuerError extends Error {
  override name = 'NotIssuerError'
  readonly code = 'not-issuer'
  constructor(
    message: string,
    readonly hint?: string,
  ) {
    super(message)
  }
}

/** Creates the driver. */
export function createIssuerDriver(components: IssuerDriverComponents): IssuerDriver {
  const { clock, log, replication } = components
  /** The core to feed: the replica's while it serves, else the one issuer. */
  /** Set once this issuer handed its state over and must not change it any more ({@link IssuerDriver.handOver}). */
  let retired: NotIssuerError | undefined
  const coreNow = (): Issuer => {
    if (retired !== undefined) throw retired
    if (replication === undefined) return components.issuer
    const core = replication.current()
    if (core === undefined) throw replication.notIssuer()
    return core
  }
  let chain: Promise<unknown> = Promise.resolve()
  /** Set when a persist failed: memory is then ahead of disk, so the CA stops. */
  let broken: Error | undefined

  const carryOut = async (effects: IssuerEffect[]): Promise<IssuerEffect[]> => {
    const answers: IssuerEffect[] = []
    // Order matters: persist (e.g. a used ticket nonce) before anyone is told the result.
    for (const effect of effects) {
      if (effect.type === 'persist') {
        try {
          await components.save(effect.state)
        } catch (err) {
          broken = err as Error
          log.error(
            { err: broken.message },
            'cannot save the CA state; the CA stops until the agent restarts',
          )
          return []
        }
        // Rejects when deposed: nothing of this input leaves (the next issuer may not hold it).
        if (replication !== undefined) await replication.commit(effect.state)
      } else if (effect.type === 'publish-revocations') {
        await components.publishRevocations(effect.list)
      } else if (effect.type === 'publish-roster') {
        await components.publishRoster?.(effect.roster)
      } else answers.push(effect)
    }
    return answers
  }

  const serialised = <T>(work: () => Promise<T>): Promise<T> => {
    const next = chain.then(() => {
      if (broken !== undefined) {
        throw new Error(
          `the CA state could not be saved (${broken.message}); fix the disk and restart the agent`,
        )
      }
      return work()
    })
    chain = next.catch(() => {})
    return next
  }

  return {
    run: input =>
      serialised(async () => {
        const issuer = coreNow()
        issuer.step(input, clock.nowMs())
        const answers = await carryOut(issuer.drainEffects())
        const saved = broken === undefined
        components.events?.emit({ type: 'issuer-decision', input, answers, saved, atMs: clock.nowMs() })
        return answers
      }),
    handOver: (work, options) =>
      serialised(async () => {
        // Retired, the one-holder issuer's state is frozen: handing it to one more holder is as safe.
        const state =
          retired !== undefined && replication === undefined ? components.issuer.state() : coreNow().state()
        const result = await work(state)
        if (options.retire !== undefined) retired = options.retire
        return result
      }),
    listPending: () =>
      replication === undefined
        ? components.issuer.listPending()
        : (replication.current()?.listPending() ?? []),
    async tick() {
      await serialised(() => {
        if (retired !== undefined) return Promise.resolve([])
        if (replication !== undefined && replication.current() === undefined) return Promise.resolve([])
        const issuer = coreNow()
        issuer.tick(clock.nowMs())
        return carryOut(issuer.drainEffects())
      }).catch(() => {})
    },
  }
}
