/**
 * The hello exchange's codec and its inbound watchdog: a hello round-trips its certificate and
 * revocation list, a refusal its reason, fields of the wrong type are dropped; an inbound connection
 * whose peer has not passed within the hello timeout is closed and counted, one that passed is kept.
 * The exchange over real streams is covered by test/node/refusal.int.test.ts.
 */
import type { Connection } from '@libp2p/interface'
import { pino } from 'pino'
import { describe, expect, it } from 'vitest'
import { createManualClock } from '../../src/node/clock.js'
import { createHello, decodeHello, encodeHello, encodeHelloRefusal } from '../../src/node/hello.js'
import { encodeCbor } from '../../src/wire/cbor.js'

describe('hello codec', () => {
  it('round-trips hellos and refusals and drops mistyped fields', () => {
    const cert = new Uint8Array([1, 2, 3])
    const crl = new Uint8Array([4, 5])
    expect(decodeHello(encodeHello(cert, crl))).toEqual({ cert, crl })
    expect(decodeHello(encodeHello(cert, undefined))).toEqual({ cert })
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
