/**
 * Deterministic simulator for the CA's replicated issuer (src/ca/replication.ts driving the real
 * issuer core, src/ca/issuer.ts). One seed drives everything: a virtual true clock; per-node clocks
 * with drift (local = true × (1 + rate) + offset); a queued network with loss, delay, reordering and
 * cuts; crashes that lose memory (the replica and the issuer) but keep each holder's durable record.
 *
 * Each node plays the issuer driver: while its replica serves, it feeds one joiner request or operator
 * command at a time to its issuer, proposes the resulting state (the `persist` effect) and releases the
 * answers and published revocations only on `committed`. On `deposed` it drops the issuer and answers
 * "not the issuer". Every message goes through the wire codec (CBOR encode, decode, parse).
 *
 * The lease is an oracle (`grant`): epochs grow by one per grant; a scenario may grant a new holder
 * while the old one still believes it holds (overlapping believed leases) — safety must not depend on
 * the lease. The authority core's own guarantees are proven in scenarios.test.ts; here only its
 * output matters: an epoch per grant, and after the holder dies a new grant within the authority
 * bound.
 *
 * Invariants, checked at every release and every `ready`:
 * - a ticket nonce is released with one key and one serial only (never accepted twice);
 * - a serial is released for one key only (never issued twice), across every epoch;
 * - every released nonce, serial and revocation is in the state every later issuer recovers;
 * - a released revocation is in every later released revocation list's entries.
 */
import { decodeCertificate } from '../../src/ca/certificate.js'
import { fingerprintOf } from '../../src/ca/fingerprint.js'
import { createIssuer, type Issuer, type IssuerEffect, type IssuerInput } from '../../src/ca/issuer.js'
import { decodeIssuerState, emptyIssuerState, encodeIssuerState } from '../../src/ca/issuer-state.js'
import {
  createReplica,
  parseReplicaMessage,
  type Replica,
  type ReplicaMessage,
  type ReplicaRecord,
  replicaMessageContent,
} from '../../src/ca/replication.js'
import { verifyRevocationList } from '../../src/ca/revocation.js'
import { createSigningRequest } from '../../src/ca/signing-request.js'
import { createTicket, parseTicket } from '../../src/ca/ticket.js'
import { type CborValue, decodeCbor, encodeCbor } from '../../src/wire/cbor.js'
import { hash, toHex } from '../../src/wire/hash.js'
import { keyFor, secretFor, seededRandomBytes, T0 } from '../ca/fixtures.js'
import { type SimRandom, simRandom } from './random.js'

/** Raised when an invariant breaks. */
export class CaSafetyViolation extends Error {
  override name = 'CaSafetyViolation'
}

const caKey = keyFor('ca-ha')
const ticketSecret = secretFor('ca-ha-ticket')
const meshFingerprint = fingerprintOf(caKey.publicKey)

/** Options of one run. */
export interface CaSimOptions {
  readonly seed: number
  readonly holders: number
  /** Message loss probability. */
  readonly loss?: number
  readonly delayMs?: { readonly min: number; readonly max: number }
  /** Largest clock rate error (e.g. 0.1 = ±10 %). */
  readonly driftMax?: number
  readonly retryMs?: number
}

interface SimHolder {
  readonly id: string
  readonly rate: number
  readonly offsetMs: number
  alive: boolean
  record: ReplicaRecord
  replica: Replica | null
  issuer: Issuer | null
  /** Inputs waiting for the issuer, in order; bounded. */
  queue: { input: IssuerInput; client?: number }[]
  /** The input whose state is being replicated, with its answers held back. */
  held: { client?: number; answers: IssuerEffect[]; revocations: Uint8Array[] } | null
  servingSinceMs: number | null
}

/** One joiner: a key, a ticket, and what it got. */
interface SimClient {
  readonly index: number
  readonly key: ReturnType<typeof keyFor>
  readonly ticket: string
  readonly nonceHex: string
  done: boolean
  attempts: number
  /** True ms of the last attempt's send, for the client's timeout. */
  sentAtMs: number
  waiting: boolean
}

const QUEUE_MAX = 64
const CLIENT_TIMEOUT_MS = 1_500

/** The simulator. */
export function createCaSim(options: CaSimOptions) {
  const random: SimRandom = simRandom(options.seed)
  const loss = options.loss ?? 0
  const delay = options.delayMs ?? { min: 1, max: 30 }
  const driftMax = options.driftMax ?? 0.1
  const retryMs = options.retryMs ?? 250
  const ids = Array.from({ length: options.holders }, (_, i) => `h${i}`)
  let nowMs = 0
  let seq = 0
  const events: { atMs: number; seq: number; run: () => void }[] = []
  const cuts = new Set<string>()
  const transcript: string[] = []
  let epoch = 0
  const stats = { delivered: 0, dropped: 0, commits: 0, readies: 0, released: 0, deposed: 0 }

  // Released facts (what left an issuer): the invariants' ground truth.
  const nonceReleased = new Map<string, { key: string; serial: string }>()
  const serialReleased = new Map<string, string>()
  const revokedReleased = new Set<string>()
  const readyLog: { id: string; atMs: number; epoch: number }[] = []

  const log = (line: string) => {
    transcript.push(`${String(nowMs).padStart(6)} ${line}`)
    if (transcript.length > 400) transcript.splice(0, 100)
  }
  const fail = (message: string): never => {
    throw new CaSafetyViolation(
      `seed ${options.seed} at ${nowMs} ms: ${message}\n${transcript.slice(-40).join('\n')}`,
    )
  }

  const schedule = (atMs: number, run: () => void) => {
    events.push({ atMs, seq: seq++, run })
  }

  // Genesis: the first CA node's state, already on every holder (add-holder seeds each new one).
  const genesisState = encodeIssuerState(emptyIssuerState())
  const genesis: ReplicaRecord = {
    promised: null,
    accepted: {
      ballot: { epoch: 0, round: 0, issuer: 'h0' },
      version: 1,
      hash: hash(genesisState),
      state: genesisState,
    },
  }
  const holders: SimHolder[] = ids.map(id => ({
    id,
    rate: (random.next() * 2 - 1) * driftMax,
    offsetMs: random.int(0, 20_000),
    alive: true,
    record: genesis,
    replica: null,
    issuer: null,
    queue: [],
    held: null,
    servingSinceMs: null,
  }))
  const byId = new Map(holders.map(h => [h.id, h]))
  const local = (h: SimHolder) => Math.floor(nowMs * (1 + h.rate) + h.offsetMs)
  const newReplica = (h: SimHolder) =>
    createReplica({ self: h.id, holders: ids, record: h.record, config: { retryMs } })
  for (const h of holders) h.replica = newReplica(h)

  const clients: SimClient[] = []
  const clientRandom = seededRandomBytes(`csr/${options.seed}`)
  const ticketRandom = seededRandomBytes(`ticket/${options.seed}`)

  // ── network ──
  const send = (from: string, to: string, message: ReplicaMessage) => {
    if (cuts.has(`${from}>${to}`) || random.chance(loss)) {
      stats.dropped++
      return
    }
    const bytes = encodeCbor(replicaMessageContent(message) as CborValue)
    schedule(nowMs + random.int(delay.min, delay.max), () => {
      const target = byId.get(to)
      if (target === undefined || !target.alive || target.replica === null) return
      if (cuts.has(`${from}>${to}`)) return
      stats.delivered++
      const parsed = parseReplicaMessage(decodeCbor(bytes, 1 << 24))
      target.replica.step({ type: 'message', from, message: parsed }, local(target))
      pump(target)
    })
  }

  // ── the issuer driver, per node ──
  const pump = (h: SimHolder): void => {
    const replica = h.replica
    if (replica === null) return
    for (const effect of replica.drainEffects()) {
      if (effect.type === 'persist') h.record = effect.record
      else if (effect.type === 'send') send(h.id, effect.to, effect.message)
      else if (effect.type === 'ready') onReady(h, effect.ballot.epoch, effect.state)
      else if (effect.type === 'committed') onCommitted(h)
      else if (effect.type === 'deposed') onDeposed(h, effect.reason)
    }
    serveNext(h)
  }

  const onReady = (h: SimHolder, readyEpoch: number, bytes: Uint8Array) => {
    stats.readies++
    const state = decodeIssuerState(bytes)
    checkRecovered(h, state)
    h.issuer = createIssuer({
      caKey,
      ticketSecret,
      state,
      randomBytes: seededRandomBytes(`issuer/${options.seed}/${h.id}/${readyEpoch}/${random.int(0, 1e9)}`),
    })
    h.servingSinceMs = nowMs
    readyLog.push({ id: h.id, atMs: nowMs, epoch: readyEpoch })
    log(
      `${h.id} ready epoch ${readyEpoch}: ${state.usedNonces.length} nonces, ${state.revocation.entries.length} revoked`,
    )
  }

  const checkRecovered = (h: SimHolder, state: ReturnType<typeof decodeIssuerState>) => {
    const nonces = new Set(state.usedNonces.map(r => r.nonce))
    for (const nonce of nonceReleased.keys())
      if (!nonces.has(nonce)) fail(`${h.id} recovered without released nonce ${nonce}`)
    const serials = new Set([
      ...state.issued.map(r => r.serial),
      ...state.revocation.entries.map(e => e.serial),
    ])
    for (const serial of serialReleased.keys())
      if (!serials.has(serial)) fail(`${h.id} recovered without released serial ${serial}`)
    const revoked = new Set(state.revocation.entries.map(e => e.serial))
    for (const serial of revokedReleased)
      if (!revoked.has(serial)) fail(`${h.id} recovered without released revocation ${serial}`)
  }

  const onCommitted = (h: SimHolder) => {
    stats.commits++
    const held = h.held
    h.held = null
    if (held === null) return
    for (const list of held.revocations) releaseRevocations(h, list)
    for (const answer of held.answers) release(h, answer, held.client)
  }

  const onDeposed = (h: SimHolder, reason: string) => {
    stats.deposed++
    log(`${h.id} deposed (${reason})`)
    h.issuer = null
    h.servingSinceMs = null
    const dropped = [...(h.held !== null ? [h.held.client] : []), ...h.queue.map(q => q.client)]
    h.held = null
    h.queue = []
    for (const client of dropped) if (client !== undefined) notIssuer(client)
  }

  const notIssuer = (index: number) => {
    const client = clients[index]
    if (client !== undefined) client.waiting = false
  }

  const releaseRevocations = (h: SimHolder, list: Uint8Array) => {
    const verdict = verifyRevocationList(list, caKey.publicKey)
    if (!verdict.ok) return fail(`${h.id} published an invalid revocation list`)
    const entries = new Set(verdict.signed.list.entries.map(e => e.serial))
    for (const serial of revokedReleased)
      if (!entries.has(serial)) fail(`${h.id} published a list without released revocation ${serial}`)
    for (const serial of entries) revokedReleased.add(serial)
  }

  const release = (h: SimHolder, answer: IssuerEffect, index?: number) => {
    stats.released++
    if (answer.type === 'command-reply' && answer.result.ok && answer.result.command === 'revoke') {
      for (const serial of answer.result.serials) revokedReleased.add(serial)
      return
    }
    if (answer.type !== 'reply' || index === undefined) return
    const client = clients[index]
    if (client === undefined) return
    client.waiting = false
    if (answer.result.status !== 'issued') {
      log(
        `${h.id} → c${index}: ${answer.result.status} ${'reason' in answer.result ? answer.result.reason : ''}`,
      )
      if (answer.result.status === 'refused' && answer.result.reason === 'reused')
        fail(`c${index} refused as reused`)
      return
    }
    const decoded = decodeCertificate(answer.result.certificate)
    if (!decoded.ok) return fail('released a malformed certificate')
    const serial = decoded.signed.certificate.serial
    const key = toHex(client.key.publicKey)
    const prior = nonceReleased.get(client.nonceHex)
    if (prior !== undefined && (prior.key !== key || prior.serial !== serial))
      fail(`ticket nonce ${client.nonceHex} accepted twice: ${prior.serial} and ${serial}`)
    const owner = serialReleased.get(serial)
    if (owner !== undefined && owner !== key) fail(`serial ${serial} issued twice`)
    nonceReleased.set(client.nonceHex, { key, serial })
    serialReleased.set(serial, key)
    client.done = true
    log(`${h.id} → c${index}: issued ${serial.slice(0, 8)}`)
  }

  const serveNext = (h: SimHolder): void => {
    const replica = h.replica
    while (h.issuer !== null && replica !== null && h.held === null && replica.role() === 'serving') {
      const next = h.queue.shift()
      if (next === undefined) return
      h.issuer.step(next.input, Date.UTC(2026, 0, 1) + local(h))
      const effects = h.issuer.drainEffects()
      let state: IssuerEffect | undefined
      const answers: IssuerEffect[] = []
      const revocations: Uint8Array[] = []
      for (const effect of effects) {
        if (effect.type === 'persist') state = effect
        else if (effect.type === 'publish-revocations') revocations.push(effect.list)
        else if (effect.type === 'reply' || effect.type === 'command-reply') answers.push(effect)
      }
      if (state?.type === 'persist') {
        h.held = { ...(next.client !== undefined ? { client: next.client } : {}), answers, revocations }
        replica.step({ type: 'propose', state: encodeIssuerState(state.state) }, local(h))
        pump(h)
        return
      }
      // Nothing changed (e.g. a refusal): the answer depends only on committed state.
      for (const answer of answers) release(h, answer, next.client)
    }
  }

  const submit = (h: SimHolder, input: IssuerInput, client?: number) => {
    if (!h.alive || h.issuer === null || h.queue.length >= QUEUE_MAX) {
      if (client !== undefined) notIssuer(client)
      return
    }
    h.queue.push({ input, ...(client !== undefined ? { client } : {}) })
    serveNext(h)
  }

  // ── scenario API ──
  const api = {
    holders,
    stats,
    readyLog,
    transcript,
    get nowMs() {
      return nowMs
    },
    /** Runs the event queue (and ticks every 50 ms) until true time `untilMs`. */
    runUntil(untilMs: number) {
      while (nowMs < untilMs) {
        events.sort((a, b) => a.atMs - b.atMs || a.seq - b.seq)
        const nextTick = Math.floor(nowMs / 50) * 50 + 50
        const first = events[0]
        if (first !== undefined && first.atMs <= Math.min(nextTick, untilMs)) {
          events.shift()
          nowMs = Math.max(nowMs, first.atMs)
          first.run()
          continue
        }
        nowMs = Math.min(nextTick, untilMs)
        if (nowMs === nextTick) api.tickAll()
      }
    },
    tickAll() {
      for (const h of holders) {
        if (!h.alive || h.replica === null) continue
        h.replica.tick(local(h))
        pump(h)
      }
      for (const client of clients) {
        if (client.done || !client.waiting || nowMs - client.sentAtMs < CLIENT_TIMEOUT_MS) continue
        client.waiting = false // timed out: try again
      }
    },
    /** Grants the lease to `id` at a new epoch (the old holder is NOT told: overlap allowed). */
    grant(id: string) {
      const h = byId.get(id)
      if (h === undefined || !h.alive || h.replica === null) return
      epoch++
      log(`${id} granted epoch ${epoch}`)
      h.replica.step({ type: 'become-issuer', epoch }, local(h))
      pump(h)
    },
    stepDown(id: string) {
      const h = byId.get(id)
      if (h === undefined || !h.alive || h.replica === null) return
      h.replica.step({ type: 'step-down' }, local(h))
      pump(h)
    },
    crash(id: string) {
      const h = byId.get(id)
      if (h === undefined || !h.alive) return
      log(`${id} crashes`)
      h.alive = false
      h.replica = null
      h.issuer = null
      h.servingSinceMs = null
      for (const item of [...(h.held !== null ? [h.held] : []), ...h.queue])
        if (item.client !== undefined) notIssuer(item.client)
      h.held = null
      h.queue = []
    },
    restart(id: string) {
      const h = byId.get(id)
      if (h === undefined || h.alive) return
      log(`${id} restarts`)
      h.alive = true
      h.replica = newReplica(h)
    },
    cut(a: string, b: string) {
      cuts.add(`${a}>${b}`)
      cuts.add(`${b}>${a}`)
    },
    /** Drops messages from `from` to `to` only. */
    cutOneWay(from: string, to: string) {
      cuts.add(`${from}>${to}`)
    },
    isolate(id: string) {
      for (const other of ids) if (other !== id) api.cut(id, other)
    },
    heal() {
      cuts.clear()
    },
    /** Adds joiners, each with its own single-use ticket. */
    addClients(count: number) {
      for (let i = 0; i < count; i++) {
        const index = clients.length
        const ticket = createTicket(ticketSecret, {
          meshFingerprint,
          bootstrap: [],
          name: `node${index}`,
          zone: 'web',
          roles: ['agent'],
          expiresAtMs: T0 + 86_400_000,
          nonce: ticketRandom(16),
        })
        clients.push({
          index,
          key: keyFor(`sim/${options.seed}/client${index}`),
          ticket,
          nonceHex: parseTicket(ticket).nonceHex,
          done: false,
          attempts: 0,
          sentAtMs: 0,
          waiting: false,
        })
      }
    },
    /**
     * Every idle client not yet admitted sends its request to `target` (or a random live holder): a
     * joiner that does not know the issuer tries one, and is told "not the issuer" if wrong.
     */
    sendJoins(target?: string) {
      for (const client of clients) {
        if (client.done || client.waiting) continue
        const h = byId.get(target ?? random.pick(ids))
        if (h === undefined) continue
        client.waiting = true
        client.attempts++
        client.sentAtMs = nowMs
        const bytes = createSigningRequest(client.key, {
          ticket: client.ticket,
          createdAtMs: Date.UTC(2026, 0, 1) + nowMs,
          nonce: clientRandom(16),
        }).bytes
        const index = client.index
        schedule(nowMs + random.int(delay.min, delay.max), () =>
          submit(h, { type: 'signing-request', requestId: `c${index}/${client.attempts}`, bytes }, index),
        )
      }
    },
    /** The operator revokes a random admitted name on `target`. */
    revokeOne(target: string) {
      const h = byId.get(target)
      const admitted = clients.filter(c => c.done)
      if (h === undefined || admitted.length === 0) return
      const victim = random.pick(admitted)
      submit(h, { type: 'revoke', requestId: `revoke/${nowMs}`, target: `node${victim.index}` })
    },
    serving(): SimHolder[] {
      return holders.filter(h => h.alive && h.replica?.role() === 'serving' && h.issuer !== null)
    },
    admitted: () => clients.filter(c => c.done).length,
    clients,
    random,
    ids,
  }
  return api
}

/** The simulator's type. */
export type CaSim = ReturnType<typeof createCaSim>
