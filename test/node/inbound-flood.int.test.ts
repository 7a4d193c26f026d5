// Proves on real libp2p over loopback TCP that anyone who can reach the port can no longer starve new
// connections (security item 5). An attacker on 127.0.0.2 holds 300 raw TCP sockets (no Noise, not a
// byte sent) to the CA node and reopens each one as it closes, for a few seconds; the honest mesh is on
// 127.0.0.1. Before the fix libp2p's 256 pending slots filled with sockets held for its 10 s upgrade
// timeout and every new inbound connection was reset. Now the attacker's source holds at most
// INBOUND_PENDING_PER_SOURCE_MAX slots, each for at most INBOUND_UPGRADE_TIMEOUT_MS: meanwhile a new
// certified node on 127.0.0.1 dials the CA and is admitted, an exec gets every reply, most attacker
// sockets are refused or closed at once, none outlives the upgrade timeout, and every slot comes back.
import net from 'node:net'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { inboundLimitsOf } from '../../src/node/host.js'
import { INBOUND_PENDING_PER_SOURCE_MAX, INBOUND_UPGRADE_TIMEOUT_MS } from '../../src/node/inbound-limits.js'
import { startTestMesh, type TestMesh, waitFor } from './harness.js'

const ATTACKER = '127.0.0.2'
const SOCKETS = 300
const STORM_MS = 5_500
/** A refused socket is reset within this (an accepted one waits for the upgrade timeout). */
const QUICK_MS = 500

/** Sockets from {@link ATTACKER} that send nothing and are reopened as they close, until stopped. */
function startFlood(port: number) {
  const stats = { opened: 0, closed: 0, quick: 0, lifetimeMaxMs: 0 }
  const open = new Map<net.Socket, number>()
  let running = true
  const openOne = (): void => {
    if (!running) return
    const socket = net.connect({ host: '127.0.0.1', port, localAddress: ATTACKER })
    const openedAt = Date.now()
    stats.opened += 1
    open.set(socket, openedAt)
    socket.on('error', () => {})
    socket.on('close', () => {
      open.delete(socket)
      const lifetime = Date.now() - openedAt
      stats.closed += 1
      if (lifetime < QUICK_MS) stats.quick += 1
      if (running) {
        stats.lifetimeMaxMs = Math.max(stats.lifetimeMaxMs, lifetime)
        // Reopen at once, as the attack did (a tiny pause only keeps the test process responsive).
        setTimeout(openOne, 2)
      }
    })
  }
  for (let i = 0; i < SOCKETS; i += 1) openOne()
  return {
    stats,
    /** Longest any still-open socket has been open. */
    oldestOpenMs: () => Math.max(0, ...[...open.values()].map(t => Date.now() - t)),
    stop(): void {
      running = false
      for (const socket of open.keys()) socket.destroy()
    },
  }
}

const rssMiB = (): number => Math.round(process.memoryUsage().rss / 2 ** 20)

let mesh: TestMesh

beforeAll(async () => {
  mesh = await startTestMesh([
    { name: 'ca1', zone: 'core', ca: true, operator: true },
    { name: 'w1', zone: 'web' },
    { name: 'w2', zone: 'web' },
  ])
  await mesh.converge(20_000)
}, 40_000)

afterAll(async () => {
  await mesh?.stop()
})

describe('a flood of idle TCP sockets from one address', () => {
  it('does not starve honest dials, and every attacker socket is refused or cut', async () => {
    const ca1 = mesh.node('ca1')
    const limits = inboundLimitsOf(ca1.host)
    if (limits === undefined) throw new Error('ca1 has no inbound limits')
    const port = Number(ca1.addrs()[0]!.split('/tcp/')[1]!.split('/')[0])
    const rssBefore = rssMiB()
    const startedAt = Date.now()
    const flood = startFlood(port)
    try {
      // Let the storm fill whatever it can before the honest node arrives.
      await new Promise(r => setTimeout(r, 1_000))
      expect(limits.pending(ATTACKER)).toBeLessThanOrEqual(INBOUND_PENDING_PER_SOURCE_MAX)

      // A new certified node on 127.0.0.1 dials the CA during the storm and is admitted.
      const w3 = await mesh.add({ name: 'w3', zone: 'web' })
      const [fromCa, fromW3] = await Promise.all([
        ca1.admission.waitFor(w3.peerId, 5_000),
        w3.admission.waitFor(ca1.peerId, 5_000),
      ])
      expect(fromCa?.certificate.name).toBe('w3')
      expect(fromW3?.certificate.name).toBe('ca1')
      await mesh.converge(10_000)

      // An exec still gets every reply.
      const result = await ca1.exec({ action: 'ping', filter: {}, timeoutMs: 10_000 })
      expect(result.missing).toEqual([])
      expect(result.replies.map(r => r.node).sort()).toEqual(['ca1', 'w1', 'w2', 'w3'])

      // Keep the storm up past the upgrade timeout: no attacker socket outlives it.
      const left = STORM_MS - (Date.now() - startedAt)
      if (left > 0) await new Promise(r => setTimeout(r, left))
      const oldest = flood.oldestOpenMs()
      const rssDuring = rssMiB()
      flood.stop()
      const { stats } = flood
      console.log(
        `flood: ${stats.opened} attacker sockets in ${Date.now() - startedAt} ms, ${stats.quick} of ` +
          `${stats.closed} closed within ${QUICK_MS} ms, longest ${Math.max(stats.lifetimeMaxMs, oldest)} ms; ` +
          `limits ${JSON.stringify(limits.counters)}; RSS ${rssBefore} → ${rssDuring} MiB`,
      )
      expect(oldest).toBeLessThan(INBOUND_UPGRADE_TIMEOUT_MS + 1_500)
      expect(stats.lifetimeMaxMs).toBeLessThan(INBOUND_UPGRADE_TIMEOUT_MS + 1_500)
      expect(stats.opened).toBeGreaterThan(SOCKETS)
      expect(stats.quick).toBeGreaterThan(0.8 * stats.closed)
      expect(limits.counters.refusedPerSource).toBeGreaterThan(SOCKETS - INBOUND_PENDING_PER_SOURCE_MAX)
      expect(limits.counters.perSourcePeak).toBeLessThanOrEqual(INBOUND_PENDING_PER_SOURCE_MAX)

      // Every slot comes back once the attacker's sockets are gone.
      await waitFor(() => limits.pending(ATTACKER) === 0, 5_000, 'the attacker slots to be given back')
      expect(limits.sources()).toBe(0)
    } finally {
      flood.stop()
    }
  }, 40_000)
})
