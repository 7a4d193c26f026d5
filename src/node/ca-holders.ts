/**
 * `mesh ca add-holder NAME` on the issuing CA holder (docs/ca-ha.md): checks that NAME can be a holder,
 * hands it the CA key, ticket secret and current CA state, tells every other holder the new holder
 * set, and stores it here. The holders serve together from their next start (the holder set is read
 * at start, and the replication core's holder set is fixed per run).
 *
 * Refused, each with one line that says what to do: no CA key here; not the issuer; no live member
 * NAME; NAME without the `ca` role; NAME in another zone; members without the `ca` role in the holders'
 * zone (any of them could win the zone's lease, and then nobody would issue); more than
 * REPLICA_HOLDERS_MAX holders.
 *
 * A one-holder CA stops issuing once it handed its state over (every later input is refused until its
 * agent restarts): a change made after the copy would be missing from it, and on the first start of
 * two holders either copy may seed the replica. With holders already replicating, the issuer keeps
 * serving: a new holder starts without a replica record, and every recovery majority includes a holder
 * that stores the committed state.
 */
import { createHandover } from '../ca/handover.js'
import { encodeIssuerState } from '../ca/issuer-state.js'
import { REPLICA_HOLDERS_MAX } from '../ca/replication.js'
import type { MemberView } from '../membership/view.js'
import type { CaHandover } from './ca-handover.js'
import type { CaReplicationStatus } from './ca-replication-driver.js'
import type { Clock } from './clock.js'
import { type IssuerDriver, NotIssuerError } from './issuer-driver.js'
import type { CaMaterial } from './keys.js'
import type { Logger } from './log.js'

/** A refused `add-holder`, with the reason in one line. */
export class CaHolderError extends Error {
  override name = 'CaHolderError'
}

/** What `add-holder` did. */
export interface AddCaHolderResult {
  /** The new holder set, with names where known. */
  readonly holders: ReadonlyArray<{ readonly peerId: string; readonly name: string }>
  /** Holders told the new set (the new holder first). */
  readonly told: readonly string[]
  /** Holders that could not be told, with why: run the command again once they are back. */
  readonly notTold: ReadonlyArray<{ readonly name: string; readonly error: string }>
  /** True when this node stopped issuing until it restarts (it was the only holder). */
  readonly retired: boolean
}

/** What add-holder needs from the node. */
export interface CaHoldersComponents {
  readonly self: string
  readonly selfName: string
  readonly zone: string
  readonly ca: CaMaterial | undefined
  readonly issuer: IssuerDriver | undefined
  readonly replication: () => CaReplicationStatus | undefined
  /** The holder set this node handed out since it started (a later add-holder builds on it). */
  readonly handedOut: { get(): readonly string[] | undefined; set(holders: readonly string[]): void }
  readonly members: () => readonly MemberView[]
  readonly handover: CaHandover
  readonly saveHolders?: (holders: readonly string[]) => Promise<void>
  readonly clock: Clock
  readonly log: Logger
}

/** Runs `mesh ca add-holder NAME`. @throws CaHolderError, NotIssuerError */
export async function addCaHolder(c: CaHoldersComponents, name: string): Promise<AddCaHolderResult> {
  const { ca, issuer } = c
  if (ca === undefined || issuer === undefined)
    throw new CaHolderError('this node holds no CA key; run mesh ca add-holder on a CA holder')
  if (c.saveHolders === undefined) throw new CaHolderError('this node keeps no files (an embedded node)')
  const members = c.members()
  const nameOf = (peerId: string): string =>
    peerId === c.self ? c.selfName : (members.find(m => m.peerId === peerId)?.name ?? peerId)
  const target = members.find(m => m.name === name && m.peerId !== c.self)
  if (name === c.selfName) throw new CaHolderError(`${name} is this node, already a CA holder`)
  if (target === undefined || target.state !== 'alive')
    throw new CaHolderError(`no live member named ${name}; it must be joined and running (see mesh members)`)
  if (!target.roles.includes('ca'))
    throw new CaHolderError(
      `${name} has no ca role in its certificate; join a holder with a ticket from mesh ticket create ${name} --zone ${c.zone} --role ca --role agent`,
    )
  if (target.zone !== c.zone)
    throw new CaHolderError(
      `${name} is in zone ${target.zone}; CA holders share the zone ${c.zone}, whose lease elects the issuer`,
    )
  const replica = c.replication()
  const current = [...(c.handedOut.get() ?? replica?.holders.map(h => h.peerId) ?? [c.self])]
  const holders = current.includes(target.peerId) ? current : [...current, target.peerId]
  if (holders.length > REPLICA_HOLDERS_MAX)
    throw new CaHolderError(`a CA has at most ${REPLICA_HOLDERS_MAX} holders`)
  // The holders' zone elects the issuer: a member of it that is no holder could win the lease. Members
  // with the ca role are let be (holders still to add, one add-holder after the other); the replication
  // driver warns while any non-holder is in the zone.
  const strangers = members.filter(
    m =>
      m.zone === c.zone &&
      m.state !== 'left' &&
      m.state !== 'dead' &&
      !holders.includes(m.peerId) &&
      !m.roles.includes('ca'),
  )
  if (strangers.length > 0)
    throw new CaHolderError(
      `zone ${c.zone} also has ${strangers.map(m => m.name).join(', ')}, not CA holders: any of them could win the zone's lease and then no holder would issue; CA holders need a zone of their own`,
    )
  // A one-holder CA (no replica running) retires; one already retired stays so.
  const single = replica === undefined
  const told: string[] = []
  const notTold: { name: string; error: string }[] = []
  const retire = single
    ? new NotIssuerError(
        `this CA now has ${holders.length} holders (${holders.map(nameOf).join(', ')}); restart the agents of all of them so they elect one issuer`,
      )
    : undefined
  await issuer.handOver(
    async state => {
      const issuerState = encodeIssuerState(state)
      const handTo = async (peerId: string): Promise<void> => {
        const bytes = createHandover({
          caKey: ca.caKey,
          from: c.self,
          to: peerId,
          issuedAtMs: c.clock.nowMs(),
          holders,
          ticketSecret: ca.ticketSecret,
          issuerState,
        })
        const answer = await c.handover.send(peerId, bytes)
        if (!answer.ok)
          throw new CaHolderError(`${nameOf(peerId)} refused: ${answer.reason}: ${answer.detail}`)
      }
      // The new holder first: if it refuses or cannot be reached, nothing changed anywhere.
      try {
        await handTo(target.peerId)
      } catch (err) {
        if (err instanceof CaHolderError) throw err
        throw new CaHolderError(`cannot reach ${name}: ${(err as Error).message}`)
      }
      told.push(name)
      for (const peerId of holders) {
        if (peerId === c.self || peerId === target.peerId) continue
        try {
          await handTo(peerId)
          told.push(nameOf(peerId))
        } catch (err) {
          notTold.push({ name: nameOf(peerId), error: (err as Error).message })
        }
      }
      await c.saveHolders?.(holders)
      c.handedOut.set(holders)
    },
    retire === undefined ? {} : { retire },
  )
  c.log.warn(
    { holder: name, holders: holders.map(nameOf), notTold: notTold.map(n => n.name) },
    single
      ? 'CA holder added; this node stops issuing until the holders restart'
      : 'CA holder added; restart the holders to serve together',
  )
  return {
    holders: holders.map(peerId => ({ peerId, name: nameOf(peerId) })),
    told,
    notTold,
    retired: single,
  }
}
