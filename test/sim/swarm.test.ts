/**
 * Proves the zone-authority protocol safe and live under random faults: for each seed the simulator
 * builds a random cluster (a zone of 3–5 or, one seed in three, of 6–12 with five voters; often a zone
 * of two with a witness, sometimes a zone of one),
 * injects random partitions, isolations, loss, duplication, delay/reordering and crash-restarts, checks
 * after every event that no zone ever has two authorities and that epochs never go backwards, then heals
 * everything and requires every zone to have an authority within the stated bound.
 * The same seeds run again (a quarter of them) with every node ticked only at its core's next deadline
 * (`nextDeadlineMs`), as the agent's driver does: safety and the same liveness bound hold there too.
 * MESH_SWARM_SEEDS=N runs N seeds (default 1000) starting at MESH_SWARM_FROM (default 1); MESH_SEED=S
 * runs only seed S, printing its transcript (MESH_TIMERS=deadline: with deadline timers).
 */
import { describe, expect, test } from 'vitest'
import { runSwarmSeed } from './swarm.js'

const single = process.env.MESH_SEED
const count = Number(process.env.MESH_SWARM_SEEDS ?? 1_000)
const first = Number(process.env.MESH_SWARM_FROM ?? 1)

function rerunHint(seed: number): string {
  return `rerun with: MESH_SEED=${seed} node_modules/.bin/vitest run test/sim/swarm.test.ts`
}

describe('swarm', () => {
  if (single !== undefined) {
    test(`seed ${single}`, () => {
      const seed = Number(single)
      let lines: string[] = []
      try {
        const { result } = runSwarmSeed(seed, {
          transcript: true,
          wire: true,
          onSimulator: sim => (lines = sim.lines),
          timers: process.env.MESH_TIMERS === 'deadline' ? 'deadline' : 'interval',
        })
        console.log(lines.join('\n'))
        console.log(result)
      } catch (err) {
        console.log(lines.join('\n'))
        throw new Error(`${(err as Error).message}\n${rerunHint(seed)}`)
      }
    })
    return
  }
  test(
    `${count} random seeds stay safe and recover after heal`,
    () => {
      let worstMs = 0
      const startedMs = performance.now()
      for (let seed = first; seed < first + count; seed++) {
        try {
          const { result } = runSwarmSeed(seed)
          worstMs = Math.max(worstMs, result.recoveryMs)
        } catch (err) {
          throw new Error(`swarm failed at seed ${seed}: ${(err as Error).message}\n${rerunHint(seed)}`)
        }
      }
      const seconds = (performance.now() - startedMs) / 1000
      if (count > 1_000) {
        console.log(
          `swarm: ${count} seeds in ${seconds.toFixed(1)} s (${(count / seconds).toFixed(0)} seeds/s), worst recovery ${worstMs} ms`,
        )
      }
      expect(worstMs).toBeGreaterThan(0)
    },
    60_000 + count * 100,
  )
  test(
    `${Math.ceil(count / 4)} random seeds with deadline timers stay safe and recover after heal`,
    () => {
      let worstMs = 0
      for (let seed = first; seed < first + Math.ceil(count / 4); seed++) {
        try {
          const { result, sim } = runSwarmSeed(seed, { timers: 'deadline' })
          worstMs = Math.max(worstMs, result.recoveryMs)
          expect(sim.wakeups.size).toBeGreaterThan(0)
        } catch (err) {
          throw new Error(
            `deadline-timer swarm failed at seed ${seed}: ${(err as Error).message}\nrerun with: MESH_TIMERS=deadline MESH_SEED=${seed} node_modules/.bin/vitest run test/sim/swarm.test.ts`,
          )
        }
      }
      expect(worstMs).toBeGreaterThan(0)
    },
    60_000 + count * 100,
  )
})
