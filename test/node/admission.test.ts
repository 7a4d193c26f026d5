// Regression test for the libp2p ≤ 3.3.11 stream-middleware bug (LIBP2P-NOTES §2): libp2p pushes a
// handler wrapper onto the stored middleware array for every inbound stream, so handlers ran 1+2+3…
// times and outbound streams ran the accumulated wrappers. With GatedChain installed, two real libp2p
// nodes (in-process, @libp2p/memory) exchanging several streams must see exactly one handler call per
// inbound stream and none for outbound ones, and the gate must see every stream once.
import { noise } from '@chainsafe/libp2p-noise'
import { yamux } from '@chainsafe/libp2p-yamux'
import type { Libp2p } from '@libp2p/interface'
import { memory } from '@libp2p/memory'
import { createLibp2p } from 'libp2p'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { GatedChain } from '../../src/node/admission.js'

const PROTOCOL = '/mesh/test-gated/1.0.0'
const STREAMS = 5

async function node(addr: string): Promise<Libp2p> {
  return createLibp2p({
    addresses: { listen: [addr] },
    transports: [memory()],
    connectionEncrypters: [noise()],
    streamMuxers: [yamux()],
  })
}

describe('GatedChain works around the middleware-chain mutation bug', () => {
  let a: Libp2p
  let b: Libp2p
  const calls = { handlerOnA: 0, handlerOnB: 0, gateInbound: 0, gateOutbound: 0 }

  beforeAll(async () => {
    const tag = `${process.pid}-${Date.now()}`
    a = await node(`/memory/gated-a-${tag}`)
    b = await node(`/memory/gated-b-${tag}`)
    for (const [n, key] of [
      [a, 'handlerOnA'],
      [b, 'handlerOnB'],
    ] as const) {
      await n.handle(
        PROTOCOL,
        async stream => {
          calls[key] += 1
          await stream.close()
        },
        { maxInboundStreams: 64, maxOutboundStreams: 64 },
      )
      n.use(
        PROTOCOL,
        new GatedChain((stream, connection, next) => {
          if (stream.direction === 'inbound') calls.gateInbound += 1
          else calls.gateOutbound += 1
          next(stream, connection)
        }),
      )
    }
    await a.dial(b.getMultiaddrs()[0]!)
  })

  afterAll(async () => {
    await Promise.all([a?.stop(), b?.stop()])
  })

  it('runs the handler once per inbound stream and never for outbound streams', async () => {
    for (let i = 0; i < STREAMS; i++) {
      const s = await a.dialProtocol(b.peerId, PROTOCOL)
      await s.close()
    }
    for (let i = 0; i < STREAMS; i++) {
      const s = await b.dialProtocol(a.peerId, PROTOCOL)
      await s.close()
    }
    const deadline = Date.now() + 5_000
    while (calls.handlerOnA + calls.handlerOnB < 2 * STREAMS && Date.now() < deadline) {
      await new Promise(r => setTimeout(r, 20))
    }
    // Without the workaround these were 15 and 15 (1+2+3+4+5), plus wrappers run on outbound streams.
    expect(calls.handlerOnB).toBe(STREAMS)
    expect(calls.handlerOnA).toBe(STREAMS)
    expect(calls.gateInbound).toBe(2 * STREAMS)
    expect(calls.gateOutbound).toBe(2 * STREAMS)
  })

  it('keeps the stored chain at its original length', () => {
    const chain = new GatedChain(() => {})
    chain.push(() => {})
    chain.push(() => {})
    expect(chain).toHaveLength(2)
    expect(chain.map(x => x)).not.toBeInstanceOf(GatedChain)
  })
})
