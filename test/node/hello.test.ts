/**
 * The hello exchange's codec and its inbound watchdog: a hello round-trips its certificate, revocation
 * list and zone roster, a refusal its reason, fields of the wrong type are dropped; an inbound
 * connection whose peer has not passed within the hello timeout is closed and counted, one that passed
 * is kept. Over a mock stream pair (@libp2p/utils streamPair) with a stub verifier: both hellos carry
 * the sender's zone roster to the other side, and a garbage roster, or a roster port that throws, does
 * not keep a peer with a good certificate out. The exchange over real connections is covered by
 * test/node/refusal.int.test.ts and test/node/zone-rosters.int.test.ts.
 */
import type { Connection, Stream } from '@libp2p/interface'
import { lpStream, streamPair } from '@libp2p/utils'
import { pino } from 'pino'
import { describe, expect, it } from 'vitest'
import type { CertificateVerifier, SignedCertificate } from '../../src/ca/types.js'
import { createManualClock } from '../../src/node/clock.js'
import {
  createHello,
  decodeHello,
  encodeHello,
  encodeHelloRefusal,
  HELLO_BYTES_MAX,
  type ZoneRosterPort,
} from '../../src/node/hello.js'
import { createTraffic } from '../../src/node/traffic.js'
import { createZoneRosters } from '../../src/node/zone-rosters.js'
import { encodeCbor } from '../../src/wire/cbor.js'
import { signingKeyFromSeed } from '../../src/wire/ed25519.js'

describe('hello codec', () => {
  it('round-trips hellos and refusals and drops mistyped fields', () => {
    const cert = new Uint8Array([1, 2, 3])
    const crl = new Uint8Array([4, 5])
    expect(decodeHello(encodeHello(cert, crl))).toEqual({ cert, crl })
    expect(decodeHello(encodeHello(cert, undefined))).toEqual({ cert })
    const roster = new Uint8Array([6])
    expect(decodeHello(encodeHello(cert, crl, roster))).toEqual({ cert, crl, roster })
    expect(decodeHello(encodeHello(cert, undefined, roster))).toEqual({ cert, roster })
    expect(decodeHello(encodeCbor({ v: 1, cert, roster: 'junk' }))).toEqual({ cert })
    expect(decodeHello(encodeHelloRefusal('no'))).toEqual({ error: 'no' })
    expect(decodeHello(encodeCbor({ v: 1, cert: 'x', crl: 7, error: 1 }))).toEqual({})
    expect(decodeHello(encodeCbor([1, 2]))).toEqual({})
  })
})

describe('hello watchdog', () => {
  it('closes an inbound connection whose peer has not passed in time', () => {
    const clock = createManualClock()
    const verified = new Set<string>()
    let timedOut = 0
    const hello = createHello(
      {
        ownCertificate: () => new Uint8Array(),
        verify: () => {
          throw new Error('not called')
        },
        clock,
        helloTimeoutMs: 1_000,
        revocations: { current: () => undefined, offer: () => {} },
        log: pino({ level: 'silent' }),
        traffic: createTraffic({ clock }),
      },
      {
        isVerified: peer => verified.has(peer),
        admit: () => {},
        refuse: () => {},
        fail: () => {},
        timedOut: () => timedOut++,
      },
    )
    const closed: string[] = []
    const inbound = (peer: string): Connection =>
      ({
        direction: 'inbound',
        status: 'open',
        remotePeer: { toString: () => peer },
        close: async () => {
          closed.push(peer)
        },
      }) as unknown as Connection
    hello.onConnectionOpen(inbound('slow'))
    hello.onConnectionOpen(inbound('good'))
    verified.add('good')
    clock.advance(999)
    expect(closed).toEqual([])
    clock.advance(1)
    expect(closed).toEqual(['slow'])
    expect(timedOut).toBe(1)
  })
})

/** A certificate stub: the "certificate" bytes are the peer id, and every one verifies. */
const verifyStub: CertificateVerifier = bytes => ({
  ok: true,
  signed: { certificate: { peerId: new TextDecoder().decode(bytes) }, bytes } as unknown as SignedCertificate,
})

/** A fake connection to `peer` whose one stream is `stream`. */
function connectionTo(peer: string, direction: 'inbound' | 'outbound', stream?: Stream): Connection {
  return {
    direction,
    status: 'open',
    remotePeer: { toString: () => peer },
    newStream: async () => stream,
    close: async () => {},
  } as unknown as Connection
}

/** One side of the exchange: its hello, what it admitted, and the rosters offered to it. */
function side(self: string, zoneRosters?: ZoneRosterPort) {
  const admitted: string[] = []
  const refused: string[] = []
  const hello = createHello(
    {
      ownCertificate: () => new TextEncoder().encode(self),
      verify: verifyStub,
      clock: createManualClock(),
      helloTimeoutMs: 2_000,
      revocations: { current: () => undefined, offer: () => {} },
      zoneRosters,
      log: pino({ level: 'silent' }),
      traffic: createTraffic({ clock: createManualClock() }),
    },
    {
      isVerified: () => false,
      admit: (_connection, certificate) => admitted.push(certificate.certificate.peerId),
      refuse: (_connection, reason) => refused.push(reason),
      fail: () => {},
      timedOut: () => {},
    },
  )
  return { hello, admitted, refused }
}

/** A roster port holding `held` that records what it is offered. */
function recordingPort(held: Uint8Array | undefined) {
  const offered: Uint8Array[] = []
  return { port: { current: () => held, offer: (bytes: Uint8Array) => void offered.push(bytes) }, offered }
}

describe('hello zone roster', () => {
  it("carries each side's roster to the other, both ways", async () => {
    const rosterA = new Uint8Array([0xa1, 0xa2])
    const rosterB = new Uint8Array([0xb1])
    const a = recordingPort(rosterA)
    const b = recordingPort(rosterB)
    const dialer = side('peer-a', a.port)
    const listener = side('peer-b', b.port)
    const [outbound, inbound] = await streamPair()
    await Promise.all([
      dialer.hello.dial(connectionTo('peer-b', 'outbound', outbound)),
      listener.hello.answer(inbound, connectionTo('peer-a', 'inbound')),
    ])
    expect(dialer.admitted).toEqual(['peer-b'])
    expect(listener.admitted).toEqual(['peer-a'])
    expect(b.offered.map(r => [...r])).toEqual([[...rosterA]])
    expect(a.offered.map(r => [...r])).toEqual([[...rosterB]])
  })

  it('sends no roster without one, and a side without a roster port still admits', async () => {
    const a = recordingPort(undefined)
    const dialer = side('peer-a', a.port)
    const listener = side('peer-b')
    const [outbound, inbound] = await streamPair()
    await Promise.all([
      dialer.hello.dial(connectionTo('peer-b', 'outbound', outbound)),
      listener.hello.answer(inbound, connectionTo('peer-a', 'inbound')),
    ])
    expect(dialer.admitted).toEqual(['peer-b'])
    expect(listener.admitted).toEqual(['peer-a'])
    expect(a.offered).toEqual([])
  })

  it('admits a peer whose roster is garbage, of the wrong type, or whose offer throws', async () => {
    const caKey = signingKeyFromSeed(new Uint8Array(32).fill(3))
    const rosters = createZoneRosters({
      caPublicKey: caKey.publicKey,
      log: pino({ level: 'silent' }),
      clock: createManualClock(),
    })
    const real: ZoneRosterPort = {
      current: () => undefined,
      offer: bytes => void rosters.offer(bytes, 'hello'),
    }
    const throwing: ZoneRosterPort = {
      current: () => undefined,
      offer: () => {
        throw new Error('bug in the roster port')
      },
    }
    const cert = new TextEncoder().encode('peer-a')
    const hellos: Array<[Uint8Array, ZoneRosterPort]> = [
      [encodeHello(cert, undefined, Uint8Array.of(0xff, 0, 1)), real],
      [encodeCbor({ v: 1, cert, roster: 'not bytes' }), real],
      [encodeCbor({ v: 1, cert, roster: { nested: 1 } }), real],
      [encodeHello(cert, undefined, Uint8Array.of(1, 2, 3)), throwing],
    ]
    for (const [message, port] of hellos) {
      const listener = side('peer-b', port)
      const [outbound, inbound] = await streamPair()
      const answered = listener.hello.answer(inbound, connectionTo('peer-a', 'inbound'))
      const lp = lpStream(outbound, { maxDataLength: HELLO_BYTES_MAX })
      await lp.write(message)
      const reply = decodeHello((await lp.read()).subarray())
      await answered
      expect(reply.error).toBeUndefined()
      expect(reply.cert).toBeDefined()
      expect(listener.admitted).toEqual(['peer-a'])
      expect(listener.refused).toEqual([])
    }
    expect(rosters.current()).toBeUndefined()
    expect(rosters.counters().refused).toEqual({ malformed: 1 })
  })
})
