/**
 * The node's zone-roster state (src/node/zone-rosters.ts), driven directly with rosters signed by a test
 * key and a manual clock: it adopts only valid rosters of its CA with a higher version, refuses foreign,
 * forged, malformed and oversized ones with their reason (counted, logged at most once per window) and
 * never throws; a corrupt roster from the home is left out; republication is limited to one per
 * interval; the gossip wrapper round-trips and the size limits leave room for the largest roster.
 */
import { pino } from 'pino'
import { describe, expect, it } from 'vitest'
import { CERTIFICATE_BYTES_MAX } from '../../src/ca/certificate.js'
import { REVOCATION_LIST_BYTES_MAX } from '../../src/ca/revocation.js'
import { signZoneRoster, ZONE_ROSTER_BYTES_MAX, type ZoneRosterMember } from '../../src/ca/zone-roster.js'
import { createManualClock } from '../../src/node/clock.js'
import { decodeHello, encodeHello, HELLO_BYTES_MAX } from '../../src/node/hello.js'
import { GOSSIP_MESSAGE_BYTES_MAX } from '../../src/node/host.js'
import {
  createZoneRosters,
  decodeZoneRosterMessage,
  encodeZoneRosterMessage,
  ZONE_ROSTER_MESSAGE_BYTES_MAX,
  ZONE_ROSTER_REPUBLISH_INTERVAL_MS,
} from '../../src/node/zone-rosters.js'
import { encodeCbor } from '../../src/wire/cbor.js'
import { signingKeyFromSeed } from '../../src/wire/ed25519.js'

const caKey = signingKeyFromSeed(new Uint8Array(32).fill(7))
const otherKey = signingKeyFromSeed(new Uint8Array(32).fill(8))

function roster(version: number, key = caKey) {
  const members: ZoneRosterMember[] = version === 0 ? [] : [{ peerId: '12D3KooWalpha', zone: 'db', since: 1 }]
  return signZoneRoster(key, { version, issuedAtMs: 1_000 + version, members, priors: [] })
}

function setup(init: { initial?: Uint8Array; save?: (bytes: Uint8Array) => Promise<void> } = {}) {
  const lines: Record<string, unknown>[] = []
  const log = pino({ level: 'info' }, { write: (line: string) => void lines.push(JSON.parse(line)) })
  const clock = createManualClock()
  const rosters = createZoneRosters({ caPublicKey: caKey.publicKey, log, clock, ...init })
  return { rosters, lines, clock }
}

describe('zone rosters: adoption', () => {
  it('adopts a higher version, ignores an equal or older one, and tells the listeners', () => {
    const saved: number[] = []
    const { rosters, lines } = setup({ save: async bytes => void saved.push(bytes.byteLength) })
    const adopted: number[] = []
    rosters.onAdopted(signed => adopted.push(signed.roster.version))
    expect(rosters.current()).toBeUndefined()
    expect(rosters.offer(roster(2).bytes, 'hello')).toBe(true)
    expect(rosters.offer(roster(2).bytes, 'hello')).toBe(false)
    expect(rosters.offer(roster(1).bytes, 'gossip')).toBe(false)
    expect(rosters.verdict(roster(1).bytes, 'peer')).toEqual({
      kind: 'refused',
      code: 'not-newer',
      action: 'ignore',
    })
    expect(rosters.verdict(roster(3).bytes, 'peer')).toEqual({ kind: 'accept' })
    expect(rosters.current()?.roster.version).toBe(3)
    expect(adopted).toEqual([2, 3])
    expect(saved).toHaveLength(2)
    expect(rosters.counters()).toMatchObject({ version: 3, adopted: 2, refused: {} })
    const adoptedLines = lines.filter(l => l.msg === 'zone roster adopted')
    expect(adoptedLines.map(l => [l.version, l.members, l.origin])).toEqual([
      [2, 1, 'hello'],
      [3, 1, 'peer'],
    ])
  })

  it('refuses foreign, forged, malformed and oversized rosters with their reason, and never throws', () => {
    const { rosters, lines } = setup()
    const forged = roster(5).bytes.slice()
    forged[forged.byteLength - 1] = (forged[forged.byteLength - 1] ?? 0) ^ 1 // inside the signature
    const cases: Array<[Uint8Array, string]> = [
      [roster(5, otherKey).bytes, 'wrong-issuer'],
      [forged, 'bad-signature'],
      [Uint8Array.of(0xff, 1, 2), 'malformed'],
      [encodeCbor({ body: 'x', sig: 2 }), 'malformed'],
      [new Uint8Array(ZONE_ROSTER_BYTES_MAX + 1), 'too-large'],
    ]
    for (const [bytes, reason] of cases) {
      expect(rosters.offer(bytes, 'hello')).toBe(false)
      expect(rosters.verdict(bytes, 'peer')).toEqual({ kind: 'refused', code: reason, action: 'reject' })
    }
    expect(rosters.current()).toBeUndefined()
    expect(rosters.counters().refused).toEqual({
      'wrong-issuer': 2,
      'bad-signature': 2,
      malformed: 4,
      'too-large': 2,
    })
    // Rate-limited: one line per reason in the window, however many refusals.
    expect(lines.filter(l => l.msg === 'zone roster refused').map(l => l.reason)).toEqual([
      'wrong-issuer',
      'bad-signature',
      'malformed',
      'too-large',
    ])
  })

  it('adopts a valid roster from the home without saving it again', () => {
    const saved: Uint8Array[] = []
    const { rosters } = setup({ initial: roster(4).bytes, save: async bytes => void saved.push(bytes) })
    expect(rosters.current()?.roster.version).toBe(4)
    expect(saved).toEqual([])
  })

  it('leaves a corrupt roster from the home out, logs it, and adopts the next valid one', () => {
    const corrupt = roster(4).bytes.subarray(0, 20)
    const { rosters, lines } = setup({ initial: corrupt })
    expect(rosters.current()).toBeUndefined()
    expect(rosters.counters().refused).toEqual({ malformed: 1 })
    expect(lines.some(l => l.msg === 'zone roster refused' && l.origin === 'home')).toBe(true)
    expect(rosters.offer(roster(1).bytes, 'hello')).toBe(true)
  })

  it('survives a store that rejects or throws', async () => {
    const rejecting = setup({ save: async () => Promise.reject(new Error('disk full')) })
    expect(rejecting.rosters.offer(roster(1).bytes, 'hello')).toBe(true)
    const throwing = setup({
      save: () => {
        throw new Error('no store')
      },
    })
    expect(throwing.rosters.offer(roster(1).bytes, 'hello')).toBe(true)
    await new Promise(r => setTimeout(r, 0))
    for (const { lines } of [rejecting, throwing]) {
      expect(lines.some(l => l.msg === 'cannot save the zone roster')).toBe(true)
    }
  })
})

describe('zone rosters: republication', () => {
  it('is a no-op without a roster and lets one through per interval', () => {
    const { rosters, clock } = setup()
    const published: number[] = []
    rosters.onRepublish(signed => published.push(signed.roster.version))
    rosters.republish()
    expect(published).toEqual([])
    expect(rosters.counters()).toMatchObject({ republished: 0, republishLimited: 0 })
    rosters.offer(roster(1).bytes, 'hello')
    rosters.republish()
    rosters.republish()
    clock.advance(ZONE_ROSTER_REPUBLISH_INTERVAL_MS - 1)
    rosters.republish()
    expect(published).toEqual([1])
    rosters.offer(roster(2).bytes, 'hello')
    clock.advance(1)
    rosters.republish()
    expect(published).toEqual([1, 2])
    expect(rosters.counters()).toMatchObject({ republished: 2, republishLimited: 2 })
  })
})

describe('zone rosters: gossip messages and limits', () => {
  it('round-trips the wrapper, refuses others, and judges the roster inside', () => {
    const bytes = roster(1).bytes
    const message = encodeZoneRosterMessage(bytes, new Uint8Array(8).fill(1))
    expect(new Uint8Array(decodeZoneRosterMessage(message) ?? [])).toEqual(new Uint8Array(bytes))
    for (const junk of [
      bytes,
      Uint8Array.of(0xff),
      new Uint8Array(0),
      encodeCbor({ v: 2, roster: bytes, nonce: new Uint8Array(8) }),
      encodeCbor({ v: 1, roster: 'x', nonce: new Uint8Array(8) }),
      encodeCbor({ v: 1, roster: bytes }),
    ]) {
      expect(decodeZoneRosterMessage(junk)).toBeUndefined()
    }
    const { rosters } = setup()
    expect(rosters.messageVerdict(Uint8Array.of(0xff), 'peer')).toEqual({
      kind: 'refused',
      code: 'malformed',
      action: 'reject',
    })
    expect(rosters.messageVerdict(message, 'peer')).toEqual({ kind: 'accept' })
    expect(rosters.messageVerdict(encodeZoneRosterMessage(bytes, new Uint8Array(8)), 'peer').kind).toBe(
      'refused',
    )
  })

  it('leaves room for the largest roster in a gossip frame and in a hello', () => {
    const wrapped = encodeZoneRosterMessage(new Uint8Array(ZONE_ROSTER_BYTES_MAX), new Uint8Array(8))
    expect(wrapped.byteLength).toBeLessThanOrEqual(ZONE_ROSTER_MESSAGE_BYTES_MAX)
    expect(decodeZoneRosterMessage(wrapped)?.byteLength).toBe(ZONE_ROSTER_BYTES_MAX)
    // Gossipsub's framing of one message (topic, data, protobuf tags) is far below 64 KiB.
    expect(GOSSIP_MESSAGE_BYTES_MAX).toBeGreaterThanOrEqual(ZONE_ROSTER_MESSAGE_BYTES_MAX + 64 * 1024)
    // A hello carries a certificate, a revocation list and a roster, each of the largest allowed size.
    const hello = encodeHello(
      new Uint8Array(CERTIFICATE_BYTES_MAX),
      new Uint8Array(REVOCATION_LIST_BYTES_MAX),
      new Uint8Array(ZONE_ROSTER_BYTES_MAX),
    )
    expect(hello.byteLength).toBeLessThanOrEqual(HELLO_BYTES_MAX)
    expect(decodeHello(hello).roster?.byteLength).toBe(ZONE_ROSTER_BYTES_MAX)
  })
})
