// Proves the issuer keeps the zone roster in step with its records, by scenarios on a virtual clock:
// an agent certificate adds a member and publishes version + 1 right after the persist that holds it;
// operator-only certificates, renewals and the expiry of a renewed certificate change nothing; revoking
// and expiry remove the member; the roster survives encode/decode and restart byte for byte; a state
// from before rosters decodes and gets its roster at creation (persisted and published on the first
// tick); a change replacing a full roster is one version within the size bound, and a full roster
// refuses new members.
import { describe, expect, it } from 'vitest'
import { peerIdOfPublicKey } from '../../src/ca/identity.js'
import { createIssuer, type Issuer, type IssuerEffect, type IssuerInit } from '../../src/ca/issuer.js'
import {
  decodeIssuerState,
  emptyIssuerState,
  encodeIssuerState,
  type IssuedRecord,
  type IssuerState,
  IssuerStateError,
} from '../../src/ca/issuer-state.js'
import { createSigningRequest } from '../../src/ca/signing-request.js'
import type { Role } from '../../src/ca/types.js'
import {
  verifyZoneRoster,
  ZONE_ROSTER_BYTES_MAX,
  ZONE_ROSTER_MEMBERS_MAX,
  type ZoneRoster,
} from '../../src/ca/zone-roster.js'
import { encodeCbor } from '../../src/wire/cbor.js'
import { hash } from '../../src/wire/hash.js'
import { DAY_MS, keyFor, secretFor, seededRandomBytes, T0 } from './fixtures.js'

const caKey = keyFor('ca')
const ticketSecret = secretFor('ticket')

function newIssuer(overrides: Partial<IssuerInit> = {}): Issuer {
  return createIssuer({ caKey, ticketSecret, randomBytes: seededRandomBytes('roster'), ...overrides })
}

const peerOf = (label: string): string => peerIdOfPublicKey(keyFor(label).publicKey) ?? ''

const types = (effects: IssuerEffect[]) => effects.map(effect => effect.type)

function issue(issuer: Issuer, label: string, zone = 'z1', roles: Role[] = ['agent'], nowMs = T0) {
  issuer.step(
    { type: 'issue', requestId: label, publicKey: keyFor(label).publicKey, name: label, zone, roles },
    nowMs,
  )
  const effects = issuer.drainEffects()
  const reply = effects.at(-1)
  if (reply?.type !== 'command-reply') throw new Error(`no command reply: ${types(effects).join()}`)
  return { effects, result: reply.result }
}

function command(issuer: Issuer, input: Parameters<Issuer['step']>[0], nowMs = T0) {
  issuer.step(input, nowMs)
  return issuer.drainEffects()
}

/** The rosters the effects publish, verified, in order. */
function published(effects: IssuerEffect[]): ZoneRoster[] {
  return effects.flatMap(effect => {
    if (effect.type !== 'publish-roster') return []
    const verdict = verifyZoneRoster(effect.roster, caKey.publicKey)
    if (!verdict.ok) throw new Error(verdict.detail)
    expect(verdict.signed.roster.version).toBe(effect.rosterVersion)
    return [verdict.signed.roster]
  })
}

/** The roster in the last `persist` of `effects`. */
function persistedRoster(effects: IssuerEffect[]) {
  const persists = effects.filter(effect => effect.type === 'persist')
  const last = persists.at(-1)
  return last?.type === 'persist' ? last.state.roster : undefined
}

const members = (roster: ZoneRoster) => roster.members.map(m => `${m.peerId}@${m.zone}#${m.since}`)

describe('issuer: zone roster', () => {
  it('starts at version 0, empty, signed by the CA', () => {
    const issuer = newIssuer()
    const verdict = verifyZoneRoster(issuer.zoneRoster().bytes, caKey.publicKey)
    expect(verdict.ok && verdict.signed.roster).toMatchObject({ version: 0, members: [] })
    issuer.tick(T0)
    expect(issuer.drainEffects()).toEqual([]) // nothing to persist or publish
  })

  it('an agent certificate adds the member: persist (holding it), publish version + 1, then the reply', () => {
    const issuer = newIssuer()
    const { effects } = issue(issuer, 'a', 'z1', ['agent', 'operator'], T0 + 5)
    expect(types(effects)).toEqual(['persist', 'publish-roster', 'command-reply'])
    const [roster] = published(effects)
    expect(roster).toMatchObject({ version: 1, issuedAtMs: T0 + 5 })
    expect(roster && members(roster)).toEqual([`${peerOf('a')}@z1#1`])
    expect(persistedRoster(effects)).toEqual({
      rosterVersion: 1,
      issuedAtMs: T0 + 5,
      members: roster?.members,
      priors: [],
    })
    const publish = effects[1]
    expect(publish?.type === 'publish-roster' && publish.roster).toEqual(issuer.zoneRoster().bytes)

    const second = issue(issuer, 'b', 'z2')
    const [v2] = published(second.effects)
    expect(v2 && members(v2)).toEqual(
      [`${peerOf('a')}@z1#1`, `${peerOf('b')}@z2#2`].sort(), // sorted by peer id, since kept
    )
  })

  it('an operator-only certificate does not change the roster', () => {
    const issuer = newIssuer()
    const { effects } = issue(issuer, 'op', 'z1', ['operator'])
    expect(types(effects)).toEqual(['persist', 'command-reply'])
    expect(issuer.zoneRoster().roster.version).toBe(0)
  })

  it('signing a pending request with the agent role adds the member; with operator only it does not', () => {
    const issuer = newIssuer()
    const ask = (label: string) => {
      const bytes = createSigningRequest(keyFor(label), {
        createdAtMs: T0,
        nonce: hash(new TextEncoder().encode(label)).subarray(0, 16),
        name: label,
        zone: 'z9',
      }).bytes
      issuer.step({ type: 'signing-request', requestId: label, bytes }, T0)
      const reply = issuer.drainEffects().at(-1)
      return reply?.type === 'reply' && reply.result.status === 'pending' ? reply.result.id : ''
    }
    const operator = command(issuer, {
      type: 'sign-pending',
      requestId: 's1',
      id: ask('o'),
      roles: ['operator'],
    })
    expect(types(operator)).toEqual(['persist', 'command-reply'])
    const agent = command(issuer, { type: 'sign-pending', requestId: 's2', id: ask('g') })
    expect(types(agent)).toEqual(['persist', 'publish-roster', 'command-reply'])
    expect(members(issuer.zoneRoster().roster)).toEqual([`${peerOf('g')}@z9#1`])
  })

  it('revoking removes the member', () => {
    const issuer = newIssuer()
    issue(issuer, 'a')
    issue(issuer, 'b')
    const effects = command(issuer, { type: 'revoke', requestId: 'v', target: 'a' }, T0 + 10)
    expect(types(effects)).toEqual(['persist', 'publish-roster', 'publish-revocations', 'command-reply'])
    const [roster] = published(effects)
    expect(roster).toMatchObject({ version: 3, issuedAtMs: T0 + 10 })
    expect(roster && members(roster)).toEqual([`${peerOf('b')}@z1#2`])
  })

  it('a revoked serial excludes its peer even while another live certificate of that key exists', () => {
    const issuer = newIssuer()
    const first = issue(issuer, 'a')
    issue(issuer, 'a') // a second live record of the same key and zone: no change
    expect(issuer.zoneRoster().roster.version).toBe(1)
    const serial = first.result.ok && first.result.command === 'issue' ? first.result.serial : ''
    command(issuer, { type: 'revoke', requestId: 'v', target: serial })
    expect(issuer.zoneRoster().roster).toMatchObject({ version: 2, members: [] })
  })

  it('of two live records of one key in different zones, the one that ends last counts', () => {
    const issuer = newIssuer()
    issue(issuer, 'a', 'z1', ['agent'], T0)
    const effects = issue(issuer, 'a', 'z2', ['agent'], T0 + 1).effects
    const [roster] = published(effects)
    expect(roster).toMatchObject({ version: 2 })
    expect(roster && members(roster)).toEqual([`${peerOf('a')}@z2#2`])
    // Once the later one is the only one left, nothing changes again.
    issuer.tick(T0 + 30 * DAY_MS + 60_001)
    expect(types(issuer.drainEffects())).toEqual(['persist'])
    expect(issuer.zoneRoster().roster.version).toBe(2)
  })

  it('expiry (tick past notAfter) removes the member', () => {
    const issuer = newIssuer()
    issue(issuer, 'a')
    issuer.tick(T0 + 30 * DAY_MS + 60_000) // within the skew budget: still live
    expect(issuer.drainEffects()).toEqual([])
    const at = T0 + 30 * DAY_MS + 60_001
    issuer.tick(at)
    const effects = issuer.drainEffects()
    expect(types(effects)).toEqual(['persist', 'publish-roster'])
    expect(published(effects)[0]).toMatchObject({
      version: 2,
      issuedAtMs: at,
      members: [],
    })
    expect(persistedRoster(effects)?.rosterVersion).toBe(2)
  })

  it('renewal keeps the version, also once the renewed certificate expires', () => {
    const issuer = newIssuer()
    const { result } = issue(issuer, 'a')
    if (!result.ok || result.command !== 'issue') throw new Error('not issued')
    const at = T0 + 20 * DAY_MS
    const bytes = createSigningRequest(keyFor('a'), {
      createdAtMs: at,
      nonce: new Uint8Array(16).fill(7),
      certificate: result.certificate,
    }).bytes
    const renewal = command(issuer, { type: 'signing-request', requestId: 'r', bytes }, at)
    expect(types(renewal)).toEqual(['persist', 'reply'])
    const reply = renewal.at(-1)
    expect(reply?.type === 'reply' && reply.result.status).toBe('issued')
    issuer.tick(T0 + 30 * DAY_MS + 60_001) // the old certificate expires; the renewal lives on
    expect(types(issuer.drainEffects())).toEqual(['persist'])
    expect(issuer.zoneRoster().roster.version).toBe(1)
    expect(issuer.state().issued).toHaveLength(1)
  })

  it('round-trips through encode/decode: the restarted issuer has the same signed roster and publishes nothing', () => {
    const first = newIssuer()
    issue(first, 'a')
    issue(first, 'b', 'z2')
    command(first, { type: 'revoke', requestId: 'v', target: 'a' }, T0 + 3)
    const state = decodeIssuerState(encodeIssuerState(first.state()))
    expect(state).toEqual(first.state())
    expect(state.roster?.rosterVersion).toBe(3)
    const second = newIssuer({ state, randomBytes: seededRandomBytes('after-restart') })
    expect(second.zoneRoster().bytes).toEqual(first.zoneRoster().bytes)
    second.tick(T0 + 4)
    expect(second.drainEffects()).toEqual([])
    // The next change continues from the restored version.
    expect(published(issue(second, 'c').effects)[0]?.version).toBe(4)
  })

  it('a state from before rosters decodes; the roster is derived at creation and persisted on the first tick', () => {
    const first = newIssuer()
    issue(first, 'a', 'z1', ['agent'], T0 + 7)
    issue(first, 'op', 'z1', ['operator'], T0 + 8)
    const { roster: _, ...older } = first.state()
    const bytes = encodeIssuerState(older)
    const decoded = decodeIssuerState(bytes)
    expect(decoded.roster).toBeUndefined()

    const restored = newIssuer({ state: decoded })
    const roster = restored.zoneRoster().roster
    // Derived right away, with the latest time the state records as its issue time.
    expect(roster).toMatchObject({ version: 1, issuedAtMs: T0 + 8 })
    expect(members(roster)).toEqual([`${peerOf('a')}@z1#1`])
    restored.tick(T0 + 100)
    const effects = restored.drainEffects()
    expect(types(effects)).toEqual(['persist', 'publish-roster'])
    expect(published(effects)[0]).toEqual(roster) // the same roster, not a newer one
    expect(persistedRoster(effects)?.rosterVersion).toBe(1)
    restored.tick(T0 + 200)
    expect(restored.drainEffects()).toEqual([])
  })

  it('a restored state without roster publishes after the first step’s own effects when that step persists nothing', () => {
    const first = newIssuer()
    issue(first, 'a')
    const { roster: _, ...older } = first.state()
    const restored = newIssuer({ state: older })
    const effects = command(restored, { type: 'revoke', requestId: 'v', target: 'nobody' })
    expect(types(effects)).toEqual(['command-reply', 'persist', 'publish-roster'])
  })

  it('a restored state without roster publishes right after the first persist, before the step’s own version', () => {
    const first = newIssuer()
    issue(first, 'a')
    const { roster: _, ...older } = first.state()
    const restored = newIssuer({ state: older, randomBytes: seededRandomBytes('after-restart') })
    const effects = issue(restored, 'b').effects
    // The roster derived at creation (version 1) and this step's (version 2), both behind one persist.
    expect(types(effects)).toEqual(['persist', 'publish-roster', 'publish-roster', 'command-reply'])
    expect(published(effects).map(r => r.version)).toEqual([1, 2])
    expect(persistedRoster(effects)?.rosterVersion).toBe(2)
    expect(restored.zoneRoster().roster.members).toHaveLength(2)
  })

  it('decodeIssuerState refuses an inconsistent or unknown roster field', () => {
    const base = encodeIssuerState(emptyIssuerState())
    expect(decodeIssuerState(base).roster).toBeUndefined()
    const withRoster = (roster: unknown) =>
      encodeCbor({
        version: 1,
        revocation: { listVersion: 0, issuedAtMs: 0, entries: [] },
        issued: [],
        usedNonces: [],
        requests: [],
        roster: roster as never,
      })
    const ok = {
      rosterVersion: 1,
      issuedAtMs: T0,
      members: [{ peerId: 'a', zone: 'z', since: 1 }],
      priors: [],
    }
    expect(decodeIssuerState(withRoster(ok)).roster).toEqual(ok)
    const withPrior = { ...ok, rosterVersion: 2, priors: [{ zone: 'z', voters: ['a', 'b'], since: 2 }] }
    expect(decodeIssuerState(withRoster(withPrior)).roster).toEqual(withPrior)
    for (const bad of [
      { ...ok, members: [{ peerId: 'a', zone: 'z', since: 2 }] }, // since above the version
      {
        ...ok,
        members: [
          { peerId: 'b', zone: 'z', since: 1 },
          { peerId: 'a', zone: 'z', since: 1 },
        ],
      }, // unsorted
      { ...ok, rosterVersion: 0 }, // version 0 with members
      { ...ok, extra: 1 },
      { ...ok, left: [] }, // departures are no longer a field
      { rosterVersion: 1, issuedAtMs: T0, members: [] }, // no priors
      { ...ok, priors: [{ zone: 'z', voters: ['a'], since: 2 }] }, // prior since above the version
      { ...ok, rosterVersion: 2, priors: [{ zone: 'z', voters: [], since: 2 }] }, // prior without voters
    ]) {
      expect(() => decodeIssuerState(withRoster(bad))).toThrow(IssuerStateError)
    }
  })
})

describe('issuer: zone roster limits', () => {
  /** A live agent record of a synthetic key (never signed here, so any 32 bytes do). */
  function record(i: number, nowMs: number): IssuedRecord {
    return {
      serial: i.toString(16).padStart(32, '0'),
      name: `n${i}`,
      zone: 'z1',
      roles: ['agent'],
      publicKey: hash(new TextEncoder().encode(`synthetic/${i}`)),
      notBeforeMs: nowMs,
      notAfterMs: nowMs + 30 * DAY_MS,
    }
  }

  it('a change replacing a full roster is one version within the size bound; a full roster refuses new agents', () => {
    // A state whose roster lists a full set of members no record backs, and as many new agent records.
    const old = Array.from({ length: ZONE_ROSTER_MEMBERS_MAX }, (_, i) => ({
      peerId: `old-${String(i).padStart(5, '0')}`,
      zone: 'z1',
      since: 1,
    }))
    const state: IssuerState = {
      ...emptyIssuerState(),
      issued: Array.from({ length: ZONE_ROSTER_MEMBERS_MAX + 1 }, (_, i) => record(i + 1, T0)),
      roster: { rosterVersion: 1, issuedAtMs: T0, members: old, priors: [] },
    }
    const issuer = newIssuer({ state })
    expect(issuer.zoneRoster().roster.version).toBe(2)
    expect(issuer.zoneRoster().roster.members).toHaveLength(ZONE_ROSTER_MEMBERS_MAX) // one left out
    issuer.tick(T0 + 1)
    const effects = issuer.drainEffects()
    expect(types(effects)).toEqual(['persist', 'publish-roster'])
    const [next] = published(effects)
    expect(next?.members.some(m => m.peerId.startsWith('old-'))).toBe(false) // every old member is gone
    for (const effect of effects) {
      if (effect.type === 'publish-roster')
        expect(effect.roster.byteLength).toBeLessThan(ZONE_ROSTER_BYTES_MAX)
    }
    // Full: a new agent is refused as a limit; an operator is still issued.
    const refused = issue(issuer, 'new-agent', 'z1', ['agent'], T0 + 2)
    expect(refused.result).toMatchObject({ ok: false, code: 'limit' })
    expect(types(refused.effects)).toEqual(['command-reply'])
    expect(issue(issuer, 'new-operator', 'z1', ['operator'], T0 + 2).result).toMatchObject({ ok: true })
  })
})
