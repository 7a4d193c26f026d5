/**
 * One swarm run: a random cluster and a random schedule of faults from one seed, safety checked after
 * every event by the simulator, then a heal and a liveness check: every zone must have an authority
 * within {@link livenessBoundMs} of the heal. A third of the seeds have a zone larger than VOTERS_MAX
 * (six to twelve members: five voters, the rest candidates without a seat); the bound stays the one for
 * five, as after a heal the campaigner is a voter and ranks at most fifth.
 */
import type { AuthorityConfig } from '../../src/authority/index.js'
import { authorityProfiles, majoritySize, VOTERS_MAX } from '../../src/authority/index.js'
import { simRandom } from './random.js'
import { type SimNodeSpec, Simulator } from './simulator.js'

/**
 * True-time bound on how long after a full heal (all links up, all nodes running) every zone has an
 * authority, for zones of at most `membersMax` members and clocks within the drift budget:
 * leftover grants and quiet periods drain (TTL + skew), a candidate's backoff may last up to one TTL,
 * a restarted voter syncs (one sync interval + round trip), lower-ranked candidates wait their stagger,
 * and two attempts may fail to races. Local durations are stretched by the slowest allowed clock.
 */
export function livenessBoundMs(config: AuthorityConfig, membersMax: number): number {
  const localMs =
    2 * (config.leaseTtlMs + config.leaseDriftBudgetMs) +
    config.syncIntervalMs +
    (membersMax - 1) * config.campaignStaggerMs +
    2 * config.attemptTimeoutMs
  const slowest = 1 - config.leaseDriftBudgetMs / config.leaseTtlMs
  return Math.ceil(localMs / slowest)
}

/** Outcome of one seed. */
export interface SwarmResult {
  readonly seed: number
  /** True ms from the heal until every zone had an authority. */
  readonly recoveryMs: number
  readonly delivered: number
  readonly faults: number
}

/** Options of a swarm run. */
export interface SwarmOptions {
  readonly transcript?: boolean
  readonly wire?: boolean
  /** Length of the fault phase in true ms. */
  readonly faultPhaseMs?: number
  /** Receives the simulator as soon as it exists (to print its transcript after a failure). */
  readonly onSimulator?: (sim: Simulator) => void
  /** How nodes are ticked (simulator option); default every 20 ms. */
  readonly timers?: 'interval' | 'deadline'
}

/** Largest zone the swarm builds or grows by joins. */
const MEMBERS_MAX = 12

/**
 * Runs seed `seed`. Throws SafetyViolation (from the simulator) on a safety failure and an Error naming
 * the zone on a liveness failure; both messages start with the seed.
 */
export function runSwarmSeed(
  seed: number,
  options: SwarmOptions = {},
): { result: SwarmResult; sim: Simulator } {
  const r = simRandom(seed)
  const members: { id: string; zone: string }[] = []
  const coreSize = r.chance(1 / 3) ? r.int(VOTERS_MAX + 1, MEMBERS_MAX) : r.int(3, VOTERS_MAX)
  for (let i = 1; i <= coreSize; i++) members.push({ id: `a${i}`, zone: 'a' })
  if (r.chance(0.6)) members.push({ id: 'b1', zone: 'b' }, { id: 'b2', zone: 'b' })
  if (r.chance(0.4)) members.push({ id: 'c1', zone: 'c' })
  // Half the clocks sit at the edge of the drift budget (fast or slow): that is where bugs live.
  const driftMax = authorityProfiles.test.leaseDriftBudgetMs / authorityProfiles.test.leaseTtlMs
  const nodes: SimNodeSpec[] = members.map(m => ({
    ...m,
    driftRate: r.chance(0.5) ? r.pick([-driftMax, driftMax]) : (r.next() * 2 - 1) * driftMax,
  }))
  // Half the seeds run as the agent does: CA-signed roster versions that change during the run (joins,
  // revocations, nodes that hear late or restart with an old version) and epochs saved before a grant.
  const versioned = r.chance(0.5)
  const durableEpochs = versioned || r.chance(0.3)
  const sim = new Simulator({
    seed: Math.floor(r.next() * 2 ** 32),
    nodes,
    transcript: options.transcript ?? false,
    wire: options.wire ?? false,
    failureDetectorMs: r.chance(0.5) ? r.int(100, 600) : undefined,
    versioned,
    durableEpochs,
    timers: options.timers ?? 'interval',
  })
  options.onSimulator?.(sim)
  sim.note(
    `** ${versioned ? 'versioned rosters' : 'unversioned rosters'}, ${durableEpochs ? 'durable' : 'memory-only'} epochs`,
  )
  let ids = sim.ids()
  /** Current roster (versioned seeds change it) and members revoked for good (they stay down). */
  let roster: SimNodeSpec[] = [...nodes]
  const revoked = new Set<string>()
  let added = 0
  let faults = 0
  const startMs = 1_500
  const endMs = startMs + (options.faultPhaseMs ?? 6_000)

  const downCount = (zone: string): number =>
    sim.voters(zone).filter(id => {
      if (sim.isCrashed(id)) return true
      return (
        sim
          .authority(id)
          ?.zones(sim.localMs(id))
          .find(z => z.zone === zone)?.recovering ?? false
      )
    }).length
  // Epochs live only in memory: keep a majority of every zone's voters remembering (see docs). Saved
  // epochs survive any crash, so durable seeds crash freely.
  const mayCrash = (id: string): boolean =>
    durableEpochs ||
    sim.zones().every(zone => {
      const voters = sim.voters(zone)
      if (!voters.includes(id)) return true
      return downCount(zone) + 1 <= voters.length - majoritySize(voters.length)
    })

  const faultAt = (atMs: number): void => {
    sim.at(atMs, null, () => {
      faults++
      const kind = r.int(0, versioned ? 11 : 9)
      const id = r.pick(ids)
      if (revoked.has(id)) return
      switch (kind) {
        case 0:
        case 1: {
          const direction = r.pick(['in', 'out', 'both'] as const)
          sim.note(`** isolate ${id} ${direction}`)
          sim.isolate(id, direction)
          break
        }
        case 2: {
          const left = ids.filter(() => r.chance(0.5))
          const right = ids.filter(x => !left.includes(x))
          sim.note(`** partition ${left.join(',')} | ${right.join(',')}`)
          sim.partition([left, right])
          break
        }
        case 3: {
          const other = r.pick(ids)
          sim.note(`** cut ${id} > ${other}`)
          if (other !== id) sim.cut(id, other)
          break
        }
        case 4: {
          const loss = r.next() * 0.4
          const dup = r.next() * 0.3
          sim.note(`** degrade loss=${loss.toFixed(2)} dup=${dup.toFixed(2)}`)
          sim.degrade(loss, dup)
          break
        }
        case 5: {
          const max = r.int(30, 400)
          sim.note(`** delay 1..${max}`)
          sim.setDelay(1, max)
          break
        }
        case 6:
        case 7:
          if (!sim.isCrashed(id) && mayCrash(id)) {
            sim.note(`** crash ${id}`)
            sim.crash(id)
          } else if (sim.isCrashed(id)) {
            sim.note(`** restart ${id}`)
            sim.restart(id)
          }
          break
        case 8:
          for (const x of ids) {
            if (sim.isCrashed(x) && !revoked.has(x)) {
              sim.note(`** restart ${x}`)
              sim.restart(x)
            }
          }
          break
        case 10: {
          // A roster change that only some running nodes hear of at first.
          const reach = ids.filter(x => !sim.isCrashed(x) && r.chance(0.5))
          const zones = [...new Set(roster.map(m => m.zone))]
          const zone = r.pick(zones)
          const inZone = roster.filter(m => m.zone === zone)
          if (r.chance(0.5) && inZone.length < MEMBERS_MAX) {
            const spec = { id: `x${++added}`, zone, driftRate: (r.next() * 2 - 1) * driftMax }
            roster = [...roster, spec]
            sim.note(`** join ${spec.id} to ${zone}, heard by ${reach.join(',') || 'nobody'}`)
            sim.changeRoster(roster, r.int(0, 300), { reach })
            ids = sim.ids()
          } else if (inZone.length > 1) {
            const gone = r.pick(inZone).id
            revoked.add(gone)
            roster = roster.filter(m => m.id !== gone)
            sim.note(`** revoke ${gone}, heard by ${reach.join(',') || 'nobody'}`)
            sim.crash(gone)
            sim.changeRoster(roster, r.int(0, 300), { gone: [gone], reach })
          }
          break
        }
        case 11:
          // A node comes back with an older roster version (a home restored from a backup).
          if (sim.isCrashed(id)) {
            const version = r.int(1, sim.versionOf(id))
            sim.note(`** restart ${id} with roster r${version}`)
            sim.restartWithVersion(id, version)
          }
          break
        default:
          sim.note('** heal network')
          sim.heal()
      }
    })
  }
  for (let t = startMs + r.int(0, 400); t < endMs; t += r.int(150, 900)) faultAt(t)

  sim.runUntil(endMs)
  sim.note('** heal all')
  sim.heal()
  for (const id of ids) if (sim.isCrashed(id) && !revoked.has(id)) sim.restart(id)
  // The CA (not simulated) still holds the newest roster and hands it to every node that connects.
  if (versioned) sim.spread()
  const healedAtMs = sim.nowMs
  const deadlineMs = healedAtMs + livenessBoundMs(sim.config, VOTERS_MAX)
  for (;;) {
    const missing = sim.zones().filter(zone => sim.authorityOf(zone) === null)
    if (missing.length === 0) break
    if (sim.nowMs >= deadlineMs) {
      throw new Error(
        `seed ${seed}: no authority for ${missing.join(',')} within ${deadlineMs - healedAtMs}ms of the heal`,
      )
    }
    sim.runUntil(sim.nowMs + 5)
  }
  const recoveryMs = sim.nowMs - healedAtMs
  // Keep running a little: a stable authority must not flap once everything is healthy.
  sim.runUntil(sim.nowMs + 1_000)
  return { result: { seed, recoveryMs, delivered: sim.delivered, faults }, sim }
}
