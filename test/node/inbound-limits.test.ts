// The per-source pre-authentication limit (security item 5): the pure counter refuses a source's
// connection beyond its limit and counts it, frees a slot on close, keeps its table bounded; sourceOf
// groups addresses (IPv4 host, IPv6 /64) and leaves non-IP transports alone; limitInbound takes a slot in
// denyInboundConnection and gives it back exactly once, on upgrade or on close, whichever comes first.
import type { ConnectionGater, MultiaddrConnection, PeerId } from '@libp2p/interface'
import { multiaddr } from '@multiformats/multiaddr'
import { describe, expect, it } from 'vitest'
import {
  createInboundLimits,
  INBOUND_PENDING_MAX,
  INBOUND_PENDING_PER_SOURCE_MAX,
  INBOUND_UPGRADE_TIMEOUT_MS,
  limitInbound,
  sourceOf,
} from '../../src/node/inbound-limits.js'

describe('createInboundLimits', () => {
  it('refuses a source beyond its limit, counts it, and frees a slot on close', () => {
    const limits = createInboundLimits({ perSourceMax: 3 })
    expect([1, 2, 3].map(() => limits.tryOpen('10.0.0.9'))).toEqual([true, true, true])
    expect(limits.tryOpen('10.0.0.9')).toBe(false)
    expect(limits.tryOpen('10.0.0.9')).toBe(false)
    expect(limits.counters.refusedPerSource).toBe(2)
    // Another source is not affected.
    expect(limits.tryOpen('10.0.0.10')).toBe(true)
    limits.closed('10.0.0.9')
    expect(limits.pending('10.0.0.9')).toBe(2)
    expect(limits.tryOpen('10.0.0.9')).toBe(true)
    expect(limits.counters).toMatchObject({ opened: 5, released: 1, perSourcePeak: 3 })
  })

  it('forgets a source at zero and ignores a close it never opened', () => {
    const limits = createInboundLimits({ perSourceMax: 2 })
    limits.tryOpen('a')
    limits.closed('a')
    limits.closed('a')
    limits.closed('never')
    expect(limits.pending('a')).toBe(0)
    expect(limits.sources()).toBe(0)
    expect(limits.counters.released).toBe(1)
  })

  it('keeps its table bounded: a new source is refused (counted) while it is full', () => {
    const limits = createInboundLimits({ perSourceMax: 2, sourcesMax: 3 })
    for (const s of ['a', 'b', 'c']) expect(limits.tryOpen(s)).toBe(true)
    expect(limits.tryOpen('d')).toBe(false)
    expect(limits.counters.refusedTableFull).toBe(1)
    // A tracked source still gets its second slot; once one leaves, a new one fits.
    expect(limits.tryOpen('a')).toBe(true)
    limits.closed('b')
    expect(limits.tryOpen('d')).toBe(true)
    expect(limits.sources()).toBe(3)
  })

  it('leaves the global pending limit a wide margin over one source, and a short upgrade timeout', () => {
    expect(INBOUND_PENDING_MAX).toBeGreaterThanOrEqual(4 * INBOUND_PENDING_PER_SOURCE_MAX)
    // 50 honest nodes behind one address dialling at once must not hit the per-source limit.
    expect(INBOUND_PENDING_PER_SOURCE_MAX).toBeGreaterThanOrEqual(50)
    expect(INBOUND_UPGRADE_TIMEOUT_MS).toBeLessThanOrEqual(3_000)
  })
})

describe('sourceOf', () => {
  it('is the IPv4 host, the IPv6 /64, the IPv4 of a mapped address, nothing for memory', () => {
    expect(sourceOf(multiaddr('/ip4/127.0.0.2/tcp/4001'))).toBe('127.0.0.2')
    expect(sourceOf(multiaddr('/ip6/2001:db8:0:1:aaaa::1/tcp/1'))).toBe('2001:db8:0:1::/64')
    expect(sourceOf(multiaddr('/ip6/2001:0db8:0000:0001:ffff::2/tcp/1'))).toBe('2001:db8:0:1::/64')
    expect(sourceOf(multiaddr('/ip6/2001:db8::7/tcp/1'))).toBe('2001:db8:0:0::/64')
    expect(sourceOf(multiaddr('/ip6/::1/tcp/1'))).toBe('0:0:0:0::/64')
    expect(sourceOf(multiaddr('/ip6/::ffff:10.1.2.3/tcp/1'))).toBe('10.1.2.3')
    expect(sourceOf(multiaddr('/ip6/fe80::1/tcp/1'))).toBe('fe80:0:0:0::/64')
    expect(sourceOf(multiaddr('/memory/abc'))).toBeUndefined()
  })
})

/** A stand-in for a libp2p MultiaddrConnection: an address, a status, and a `close` event. */
function fakeConn(addr: string): MultiaddrConnection & { fireClose(): void } {
  const target = new EventTarget() as EventTarget & { remoteAddr: unknown; status: string; fireClose(): void }
  target.remoteAddr = multiaddr(addr)
  target.status = 'open'
  target.fireClose = () => {
    target.status = 'closed'
    target.dispatchEvent(new Event('close'))
  }
  return target as unknown as MultiaddrConnection & { fireClose(): void }
}

const peer = {} as PeerId

describe('limitInbound', () => {
  it('denies a source beyond its limit in denyInboundConnection', async () => {
    const limits = createInboundLimits({ perSourceMax: 2 })
    const gater = limitInbound({}, limits)
    const verdicts = []
    for (let i = 0; i < 4; i += 1)
      verdicts.push(await gater.denyInboundConnection?.(fakeConn('/ip4/10.0.0.1/tcp/1')))
    expect(verdicts).toEqual([false, false, true, true])
    expect(await gater.denyInboundConnection?.(fakeConn('/ip4/10.0.0.2/tcp/1'))).toBe(false)
    expect(await gater.denyInboundConnection?.(fakeConn('/memory/x'))).toBe(false)
    expect(limits.counters.refusedPerSource).toBe(2)
  })

  it('gives a slot back on close, and once only when the upgrade finished first', async () => {
    const limits = createInboundLimits({ perSourceMax: 2 })
    const gater = limitInbound({}, limits)
    const a = fakeConn('/ip4/10.0.0.1/tcp/1')
    const b = fakeConn('/ip4/10.0.0.1/tcp/2')
    await gater.denyInboundConnection?.(a)
    await gater.denyInboundConnection?.(b)
    expect(limits.pending('10.0.0.1')).toBe(2)
    // a times out (libp2p aborts it): its close gives the slot back.
    a.fireClose()
    expect(limits.pending('10.0.0.1')).toBe(1)
    // b upgrades: the slot comes back then, and its later close gives back nothing more.
    expect(await gater.denyInboundUpgradedConnection?.(peer, b)).toBe(false)
    expect(limits.pending('10.0.0.1')).toBe(0)
    b.fireClose()
    expect(limits.counters.released).toBe(2)
    expect(limits.sources()).toBe(0)
  })

  it('refuses a connection already closed (no close event would give its slot back)', async () => {
    const limits = createInboundLimits({ perSourceMax: 2 })
    const gater = limitInbound({}, limits)
    const gone = fakeConn('/ip4/10.0.0.1/tcp/1')
    gone.fireClose()
    expect(await gater.denyInboundConnection?.(gone)).toBe(true)
    expect(limits.pending('10.0.0.1')).toBe(0)
  })

  it("keeps the inner gater's hooks and verdicts, and frees the slot when the inner gater denies", async () => {
    const limits = createInboundLimits({ perSourceMax: 2 })
    let denyNext = true
    const inner: ConnectionGater = {
      denyInboundConnection: () => denyNext,
      denyInboundEncryptedConnection: () => true,
      denyInboundUpgradedConnection: () => true,
    }
    const gater = limitInbound(inner, limits)
    expect(await gater.denyInboundConnection?.(fakeConn('/ip4/10.0.0.1/tcp/1'))).toBe(true)
    expect(limits.pending('10.0.0.1')).toBe(0)
    denyNext = false
    const c = fakeConn('/ip4/10.0.0.1/tcp/2')
    expect(await gater.denyInboundConnection?.(c)).toBe(false)
    expect(await gater.denyInboundEncryptedConnection?.(peer, c)).toBe(true)
    expect(await gater.denyInboundUpgradedConnection?.(peer, c)).toBe(true)
    expect(limits.pending('10.0.0.1')).toBe(0)
  })
})
