/**
 * The fuzzer's mesh: one CA (and a foreign one), the identities it certified (valid, expired, not yet
 * valid, revoked, foreign), uncertified keys, the ticket secrets, and the ground truth the oracles
 * judge by: which key each public key belongs to. Valid messages are made with src's own creators
 * (createRequest, createReply, createRecord, issueCertificate, signRevocationList, …) and the test
 * fixtures of test/ca/fixtures.ts (labelled keys, seeded randomness, T0), never with copies of them.
 *
 * Everything is derived from the campaign seed, so a case replays exactly from (seed, case index).
 */
import { encodeAuthorityMessage } from '../../src/authority/messages.js'
import {
  type CachingCertificateVerifier,
  createCertificateVerifier,
  issueCertificate,
  newSerial,
} from '../../src/ca/certificate.js'
import { fingerprintOf } from '../../src/ca/fingerprint.js'
import { emptyIssuerState, encodeIssuerState, type IssuerState } from '../../src/ca/issuer-state.js'
import { encodeJoinAnswer, encodeJoinRequest } from '../../src/ca/join-wire.js'
import { encodeKeyFile, encodeTicketSecretFile } from '../../src/ca/key-file.js'
import {
  createRevocationLookup,
  type RevocationEntry,
  type SignedRevocationList,
  signRevocationList,
} from '../../src/ca/revocation.js'
import { createSigningRequest } from '../../src/ca/signing-request.js'
import { createTicket } from '../../src/ca/ticket.js'
import type { Role, SignedCertificate } from '../../src/ca/types.js'
import { type SignedZoneRoster, signZoneRoster } from '../../src/ca/zone-roster.js'
import { type AuthorizationPolicy, parsePolicy } from '../../src/gossip/authorize.js'
import type { FilterSubject, TargetFilter } from '../../src/gossip/filter.js'
import { createReply, encodeReplyBatch, type ReplyStatus } from '../../src/gossip/reply.js'
import { createRequest } from '../../src/gossip/request.js'
import { encodeRunLedger } from '../../src/gossip/run-ledger.js'
import { createRecord, createSuspicion } from '../../src/membership/record.js'
import { encodeMemberMessage } from '../../src/membership/wire.js'
import { encodeEpochs } from '../../src/node/authority-epochs.js'
import { encodeHello, encodeHelloRefusal } from '../../src/node/hello.js'
import { encodeRoster } from '../../src/node/roster.js'
import { encodeZoneRosterMessage } from '../../src/node/zone-rosters.js'
import { encodeCbor } from '../../src/wire/cbor.js'
import { MAC_DOMAINS, SIGNATURE_DOMAINS } from '../../src/wire/domains.js'
import type { SigningKey } from '../../src/wire/ed25519.js'
import { verifyEnvelope, verifyMacEnvelope } from '../../src/wire/envelope.js'
import { toHex } from '../../src/wire/hash.js'
import { DAY_MS, HOUR_MS, keyFor, secretFor, seededRandomBytes, T0 } from '../ca/fixtures.js'
import { type SimRandom, simRandom } from '../sim/random.js'
import { type EnvelopeNode, markTemplate, type Node, parse, type Signer, serialize } from './cbor-tree.js'

/** The moment every check runs at: one hour after T0. */
export const NOW = T0 + HOUR_MS
/** The clock-skew budget the checks use. */
export const SKEW_MS = 30_000
/** The request id most replies answer (the reply check asks for it). */
export const ANSWERED_REQUEST_ID = Uint8Array.from({ length: 16 }, (_, i) => 0xa0 + i)

/** A certified identity of the fuzzer's mesh. */
export interface Identity {
  readonly label: string
  readonly key: SigningKey
  readonly certificate: SignedCertificate
  readonly peerId: string
}

/** A kind of input: what it is called in the report and whether it is bytes or text. */
export type InputFormat = 'bytes' | 'text'

/** A valid message of one type, parsed for mutation. */
export interface Seed {
  readonly type: string
  readonly format: InputFormat
  /** The exact valid input. */
  readonly input: Uint8Array | string
  /** Its tree (bytes inputs that are CBOR; tickets: the envelope behind the prefix). */
  readonly tree?: Node
  /** For text inputs built over bytes (tickets): the prefix before the base64url. */
  readonly prefix?: string
}

/** The fuzzer's mesh and its corpus. */
export interface World {
  readonly seed: number
  readonly ca: SigningKey
  readonly otherCa: SigningKey
  readonly ticketSecret: Uint8Array
  readonly otherTicketSecret: Uint8Array
  readonly identities: readonly Identity[]
  /** By label: hub1, web1, web2, db1, op1, op2, old1, early1, gone1, alien1. */
  readonly byLabel: ReadonlyMap<string, Identity>
  /** Uncertified keys (a joiner, a stranger). */
  readonly joiner: SigningKey
  readonly stranger: SigningKey
  /** Every key the fuzzer holds, by hex of its public key (the ground truth of "the right key"). */
  readonly keyring: ReadonlyMap<string, SigningKey>
  /** Every secret, by hex. */
  readonly secrets: ReadonlyMap<string, Uint8Array>
  readonly revocationList: SignedRevocationList
  readonly zoneRoster: SignedZoneRoster
  /** The hot-path certificate verifier of the mesh (CA key, revocation list, skew). */
  readonly verifier: CachingCertificateVerifier
  readonly isRevoked: (serial: string) => boolean
  readonly policy: AuthorizationPolicy
  /** The node the request pipeline runs on. */
  readonly self: FilterSubject
  readonly issuerState: IssuerState
  /** Valid messages per type. */
  readonly corpus: ReadonlyMap<string, readonly Seed[]>
  /** Hex of every valid input per type (an accepted input equal to one needs no oracle). */
  readonly valid: ReadonlyMap<string, ReadonlySet<string>>
  /** Signer of each corpus envelope, by hex of its authenticator. */
  readonly signers: ReadonlyMap<string, Signer>
}

/** Hex of bytes or the text itself: the key of {@link World.valid}. */
export function inputKey(input: Uint8Array | string): string {
  return typeof input === 'string' ? `t:${input}` : toHex(input)
}

interface Builder {
  readonly type: string
  readonly format?: InputFormat
  /** Text inputs: the prefix and base64url body (tickets); else the text itself. */
  build(w: WorldParts, r: SimRandom): (Uint8Array | string)[]
}

type WorldParts = Omit<World, 'corpus' | 'valid' | 'signers'> & {
  readonly random: (count: number) => Uint8Array
}

const NAMES = ['web1', 'web-2', 'db1', 'a', 'x.y_z', 'n0123456789']

function certify(
  ca: SigningKey,
  random: (count: number) => Uint8Array,
  label: string,
  zone: string,
  roles: Role[],
  window: { notBeforeMs: number; notAfterMs: number },
): Identity {
  const key = keyFor(`fuzz/${label}`)
  const certificate = issueCertificate(ca, {
    serial: newSerial(random),
    name: label,
    publicKey: key.publicKey,
    zone,
    roles,
    ...window,
  })
  return { label, key, certificate, peerId: certificate.certificate.peerId }
}

/** Builds the mesh and its corpus for `seed`. */
export function createWorld(seed: number): World {
  const random = seededRandomBytes(`fuzz/${seed}`)
  const ca = keyFor('fuzz/ca')
  const otherCa = keyFor('fuzz/other-ca')
  const current = { notBeforeMs: T0 - 20 * DAY_MS, notAfterMs: T0 + 10 * DAY_MS }
  const identities = [
    certify(ca, random, 'hub1', 'core', ['agent', 'ca'], current),
    certify(ca, random, 'web1', 'web', ['agent'], current),
    certify(ca, random, 'web2', 'web', ['agent'], current),
    certify(ca, random, 'db1', 'db', ['agent'], current),
    certify(ca, random, 'op1', 'core', ['operator'], current),
    certify(ca, random, 'op2', 'core', ['agent', 'operator'], current),
    certify(ca, random, 'old1', 'web', ['agent', 'operator'], {
      notBeforeMs: T0 - 40 * DAY_MS,
      notAfterMs: T0 - DAY_MS,
    }),
    certify(ca, random, 'early1', 'web', ['agent', 'operator'], {
      notBeforeMs: T0 + DAY_MS,
      notAfterMs: T0 + 30 * DAY_MS,
    }),
    certify(ca, random, 'gone1', 'web', ['agent', 'operator'], current),
    certify(otherCa, random, 'alien1', 'web', ['agent', 'operator'], current),
  ]
  const byLabel = new Map(identities.map(identity => [identity.label, identity]))
  const gone = byLabel.get('gone1')!
  const revocationEntries: RevocationEntry[] = [
    {
      serial: gone.certificate.certificate.serial,
      name: 'gone1',
      peerId: gone.peerId,
      revokedAtMs: T0 - HOUR_MS,
      notAfterMs: current.notAfterMs,
    },
  ]
  const revocationList = signRevocationList(ca, { version: 3, issuedAtMs: T0, entries: revocationEntries })
  const lookup = createRevocationLookup(revocationList.list)
  const isRevoked = (serial: string): boolean => lookup.isRevoked(serial)
  const agents = identities.filter(
    i => i.label !== 'alien1' && i.certificate.certificate.roles.includes('agent'),
  )
  const zoneRoster = signZoneRoster(ca, {
    version: 4,
    issuedAtMs: T0,
    members: agents.map((i, n) => ({
      peerId: i.peerId,
      zone: i.certificate.certificate.zone,
      since: 1 + (n % 4),
    })),
    priors: [{ zone: 'web', voters: [byLabel.get('web1')!.peerId], since: 3 }],
  })
  const joiner = keyFor('fuzz/joiner')
  const stranger = keyFor('fuzz/stranger')
  const keyring = new Map<string, SigningKey>()
  for (const key of [ca, otherCa, joiner, stranger, ...identities.map(i => i.key)]) {
    keyring.set(toHex(key.publicKey), key)
  }
  const ticketSecret = secretFor('fuzz/tickets')
  const otherTicketSecret = secretFor('fuzz/other-tickets')
  const secrets = new Map([ticketSecret, otherTicketSecret].map(s => [toHex(s), s]))
  const verifier = createCertificateVerifier({
    caPublicKey: ca.publicKey,
    isRevoked,
    clockSkewToleranceMs: SKEW_MS,
  })
  const policy = parsePolicy({
    rules: [
      { actions: ['uptime', 'ping', 'facts'], roles: ['operator'] },
      { actions: ['restart-*', 'shell'], operators: ['op1'], zones: ['web'] },
    ],
  })
  const self: FilterSubject = {
    name: 'web1',
    zone: 'web',
    facts: { os: 'linux', arch: 'x64', hostname: 'web1.example', rack: 'r12' },
    authority: true,
  }
  const issuerState: IssuerState = {
    ...emptyIssuerState(),
    revocation: { listVersion: 3, issuedAtMs: T0, entries: revocationEntries },
    issued: identities
      .filter(i => i.label !== 'alien1')
      .map(i => {
        const c = i.certificate.certificate
        return {
          serial: c.serial,
          name: c.name,
          zone: c.zone,
          roles: c.roles,
          publicKey: c.publicKey,
          notBeforeMs: c.notBeforeMs,
          notAfterMs: c.notAfterMs,
        }
      }),
  }
  const parts: WorldParts = {
    seed,
    ca,
    otherCa,
    ticketSecret,
    otherTicketSecret,
    identities,
    byLabel,
    joiner,
    stranger,
    keyring,
    secrets,
    revocationList,
    zoneRoster,
    verifier,
    isRevoked,
    policy,
    self,
    issuerState,
    random,
  }
  const r = simRandom(seed)
  const corpus = new Map<string, Seed[]>()
  const valid = new Map<string, Set<string>>()
  const signers = new Map<string, Signer>()
  for (const builder of BUILDERS) {
    const format = builder.format ?? 'bytes'
    const seeds: Seed[] = []
    for (const input of builder.build(parts, r)) {
      seeds.push(seedOf(builder.type, format, input, parts, signers))
    }
    corpus.set(builder.type, seeds)
    valid.set(builder.type, new Set(seeds.map(s => inputKey(s.input))))
  }
  const { random: _random, ...rest } = parts
  return { ...rest, corpus, valid, signers }
}

/** Parses a valid input and records who signed each envelope in it. */
function seedOf(
  type: string,
  format: InputFormat,
  input: Uint8Array | string,
  w: WorldParts,
  signers: Map<string, Signer>,
): Seed {
  let bytes: Uint8Array | undefined
  let prefix: string | undefined
  if (typeof input === 'string') {
    const dot = input.indexOf('.')
    if (input.startsWith('mesh') && dot > 0) {
      prefix = input.slice(0, dot + 1)
      bytes = new Uint8Array(Buffer.from(input.slice(dot + 1), 'base64url'))
    }
  } else bytes = input
  let tree: Node | undefined
  if (bytes !== undefined) {
    try {
      tree = parse(bytes)
    } catch {
      tree = undefined
    }
  }
  if (tree !== undefined) {
    tree = withSigners(tree, w, signers)
    // The tree must write back to the very bytes: our encoder agrees with cborg's canonical one.
    const again = serialize(tree, env => env.tag)
    if (bytes === undefined || toHex(again) !== toHex(bytes)) {
      throw new Error(`fuzz corpus: ${type} does not round-trip through the fuzzer's CBOR`)
    }
    markTemplate(tree)
  }
  return {
    type,
    format,
    input,
    ...(tree !== undefined ? { tree } : {}),
    ...(prefix !== undefined ? { prefix } : {}),
  }
}

/** Annotates every envelope of a tree with its signer (tried over the likely keys and every domain). */
function withSigners(node: Node, w: WorldParts, signers: Map<string, Signer>): Node {
  switch (node.k) {
    case 'env': {
      const body = withSigners(node.body, w, signers)
      const bodyBytes = serialize(node.body, env => env.tag)
      const id = toHex(node.tag)
      let signer = signers.get(id)
      if (signer === undefined) {
        signer = findSigner(node, bodyBytes, w)
        if (signer !== undefined) signers.set(id, signer)
      }
      return { ...node, body, ...(signer !== undefined ? { signer } : {}) } as EnvelopeNode
    }
    case 'wrapped': {
      const env = withSigners(node.env, w, signers)
      return env.k === 'env' ? { ...node, env } : node
    }
    case 'map':
      return { ...node, entries: node.entries.map(([k, v]) => [k, withSigners(v, w, signers)] as const) }
    case 'array':
      return { ...node, items: node.items.map(item => withSigners(item, w, signers)) }
    default:
      return node
  }
}

function findSigner(env: EnvelopeNode, bodyBytes: Uint8Array, w: WorldParts): Signer | undefined {
  if (env.tagKey === 'mac') {
    for (const [id, secret] of w.secrets) {
      for (const domain of MAC_DOMAINS) {
        if (verifyMacEnvelope(domain, secret, { bodyBytes, mac: env.tag })) return { domain, keyId: id }
      }
    }
    return undefined
  }
  // The signer's public key, or the peer id of its identity, appears in the body (or its certificate).
  const bodyHex = toHex(bodyBytes)
  const bodyText = Buffer.from(bodyBytes).toString('latin1')
  const candidates = [w.ca, w.otherCa]
  for (const key of w.keyring.values()) {
    if (bodyHex.includes(toHex(key.publicKey))) candidates.push(key)
  }
  for (const identity of w.identities) if (bodyText.includes(identity.peerId)) candidates.push(identity.key)
  for (const key of candidates) {
    for (const domain of SIGNATURE_DOMAINS) {
      if (verifyEnvelope(domain, key.publicKey, { bodyBytes, sig: env.tag })) {
        return { domain, keyId: toHex(key.publicKey) }
      }
    }
  }
  return undefined
}

// ---------------------------------------------------------------------------------------------------
// The valid messages of every type.

const FILTERS: TargetFilter[] = [
  {},
  { zone: 'web' },
  { node: 'web*' },
  { node: '/^web[0-9]+$/' },
  { facts: [{ key: 'os', pattern: 'linux' }] },
  {
    facts: [
      { key: 'arch', pattern: 'x6?' },
      { key: 'rack', pattern: '/^r1/' },
    ],
  },
  { where: "zone=web and not (name=d2 or os=/bsd/) and rack!='r9'" },
  { zone: 'core', once: true },
  { zone: 'db', node: 'db1' },
]
const ACTIONS = ['uptime', 'ping', 'facts', 'restart-web', 'shell', 'rotate-logs']

function requestOf(
  w: WorldParts,
  r: SimRandom,
  label: string,
  window: { issuedAtMs: number; expiresAtMs: number } = {
    issuedAtMs: NOW - 1_000,
    expiresAtMs: NOW + 10_000,
  },
): Uint8Array {
  const op = w.byLabel.get(label)!
  return createRequest({
    id: w.random(16),
    issuer: op.certificate.bytes,
    key: op.key,
    ...window,
    filter: r.pick(FILTERS),
    action: r.pick(ACTIONS),
    args: r.pick([[], ['-v'], ['a', 'b c', ''], ['x'.repeat(40)]]),
    replyTo: {
      peerId: op.peerId,
      addrs: r.pick([[], ['/ip4/10.0.0.1/tcp/7600'], ['/ip4/10.0.0.1/tcp/7600', '/dns4/a.example/tcp/1']]),
    },
  }).bytes
}

function replyOf(w: WorldParts, r: SimRandom, label: string, requestId = ANSWERED_REQUEST_ID): Uint8Array {
  const identity = w.byLabel.get(label)!
  const signer = { key: identity.key, certificate: identity.certificate }
  if (r.chance(0.3)) return createReply(signer, { kind: 'ack', requestId, sentAtMs: NOW - 500 })
  const status = r.pick<ReplyStatus>(['ok', 'failed', 'denied', 'error', 'cancelled'])
  return createReply(signer, {
    kind: 'done',
    requestId,
    sentAtMs: NOW - 400,
    status,
    exitCode: status === 'ok' ? 0 : status === 'failed' ? r.pick([1, 2, -9, 255]) : null,
    output: r.pick(['', ' 10:04:05 up 3 days\n', 'é€😀\n'.repeat(20), 'x'.repeat(2000)]),
    durationMs: r.int(0, 90_000),
    ...(r.chance(0.3) ? { epoch: r.int(1, 40) } : {}),
    ...(status === 'denied' || status === 'error'
      ? { reason: r.pick(['unknown-action: nope', 'no policy rule']) }
      : {}),
  })
}

function recordOf(w: WorldParts, r: SimRandom, label: string): Uint8Array {
  const identity = w.byLabel.get(label)!
  const facts = r.pick<Record<string, string>>([
    {},
    { os: 'linux', arch: 'x64' },
    { os: 'linux', arch: 'arm64', hostname: `${label}.example`, 'mesh.authority': 'web', rack: 'r12' },
  ])
  return createRecord(identity.key, identity.certificate, {
    addrs: r.pick([[], ['/ip4/10.0.0.2/tcp/7600'], ['/ip4/10.0.0.2/tcp/7600', '/ip6/::1/tcp/7600']]),
    facts,
    bootedAtS: r.pick([0, 1_760_000_000]),
    incarnation: NOW + r.int(0, 50),
    left: r.chance(0.2),
  })
}

function suspicionOf(w: WorldParts, r: SimRandom): Uint8Array {
  const [from, subject] = r.pick([
    ['web1', 'db1'],
    ['db1', 'web2'],
    ['hub1', 'web1'],
    ['op2', 'hub1'],
  ] as const)
  return createSuspicion(w.byLabel.get(from)!.key, {
    subject: w.byLabel.get(subject)!.peerId,
    incarnation: NOW + r.int(0, 50),
    from: w.byLabel.get(from)!.peerId,
  })
}

function ticketOf(w: WorldParts, r: SimRandom, secret: Uint8Array, meshFingerprint: Uint8Array): string {
  return createTicket(secret, {
    meshFingerprint,
    bootstrap: r.pick([
      [],
      ['/ip4/10.0.0.1/tcp/7600/p2p/12D3KooWAHoEkEqnKzM5PXFygh2movVBCSX3k8tDsT2cneU68Gyt'],
      ['/ip4/10.0.0.1/tcp/7600', '/dns4/hub1.example/tcp/7600'],
    ]),
    name: r.pick(NAMES),
    zone: r.pick(['web', 'db', 'edge']),
    roles: r.pick<Role[]>([['agent'], ['agent', 'operator'], ['operator']]),
    expiresAtMs: NOW + r.pick([HOUR_MS, DAY_MS]),
    nonce: w.random(16),
  })
}

const AGENTS = ['hub1', 'web1', 'web2', 'db1', 'op2']

const BUILDERS: readonly Builder[] = [
  {
    type: 'request',
    build: (w, r) => [
      ...Array.from({ length: 10 }, () => requestOf(w, r, r.pick(['op1', 'op2']))),
      requestOf(w, r, 'web1'),
      requestOf(w, r, 'old1'),
      requestOf(w, r, 'early1'),
      requestOf(w, r, 'gone1'),
      requestOf(w, r, 'alien1'),
      requestOf(w, r, 'op1', { issuedAtMs: NOW - 20 * 60_000, expiresAtMs: NOW - 10 * 60_000 }),
      requestOf(w, r, 'op1', { issuedAtMs: NOW + 60 * 60_000, expiresAtMs: NOW + 61 * 60_000 }),
      requestOf(w, r, 'op2', { issuedAtMs: NOW - 1_000, expiresAtMs: NOW + 60 * 60_000 }),
    ],
  },
  {
    type: 'reply',
    build: (w, r) => [
      ...Array.from({ length: 10 }, () => replyOf(w, r, r.pick(AGENTS))),
      replyOf(
        w,
        r,
        'web1',
        Uint8Array.from({ length: 16 }, () => 7),
      ),
      replyOf(w, r, 'op1'),
      replyOf(w, r, 'old1'),
      replyOf(w, r, 'gone1'),
      replyOf(w, r, 'alien1'),
    ],
  },
  {
    type: 'reply-batch',
    build: (w, r) =>
      Array.from({ length: 4 }, (_, n) =>
        encodeReplyBatch(Array.from({ length: n }, () => replyOf(w, r, r.pick(AGENTS)))),
      ),
  },
  {
    type: 'member-record',
    build: (w, r) => [
      ...Array.from({ length: 8 }, () => recordOf(w, r, r.pick(AGENTS))),
      recordOf(w, r, 'gone1'),
      recordOf(w, r, 'alien1'),
      recordOf(w, r, 'old1'),
    ],
  },
  { type: 'suspicion', build: (w, r) => Array.from({ length: 6 }, () => suspicionOf(w, r)) },
  {
    type: 'member-message',
    build: (w, r) => {
      const updates = () =>
        Array.from({ length: r.int(0, 3) }, () =>
          r.chance(0.6)
            ? { kind: 'record' as const, bytes: recordOf(w, r, r.pick(AGENTS)) }
            : { kind: 'suspicion' as const, bytes: suspicionOf(w, r) },
        )
      const digest = () =>
        AGENTS.slice(0, r.int(0, AGENTS.length)).map(label => ({
          id: w.byLabel.get(label)!.peerId,
          incarnation: NOW + r.int(0, 9),
          state: r.pick(['alive', 'suspect', 'dead', 'left'] as const),
        }))
      return [
        encodeMemberMessage({ type: 'ping', seq: 1, updates: updates() }),
        encodeMemberMessage({ type: 'ack', seq: 2 ** 31, updates: updates() }),
        encodeMemberMessage({
          type: 'ping-req',
          seq: 7,
          target: w.byLabel.get('db1')!.peerId,
          updates: updates(),
        }),
        encodeMemberMessage({ type: 'gossip', updates: updates() }),
        encodeMemberMessage({ type: 'sync', reply: false, digest: digest(), updates: updates() }),
        encodeMemberMessage({ type: 'sync', reply: true, digest: digest(), updates: updates() }),
      ]
    },
  },
  {
    type: 'hello',
    build: w => [
      encodeHello(w.byLabel.get('web1')!.certificate.bytes, w.revocationList.bytes, w.zoneRoster.bytes),
      encodeHello(w.byLabel.get('hub1')!.certificate.bytes, undefined),
      encodeHello(w.byLabel.get('db1')!.certificate.bytes, w.revocationList.bytes),
      encodeHello(w.byLabel.get('gone1')!.certificate.bytes, undefined, w.zoneRoster.bytes),
      encodeHello(w.byLabel.get('alien1')!.certificate.bytes, undefined),
      encodeHelloRefusal('certificate revoked: serial is revoked', w.revocationList.bytes),
      encodeHelloRefusal('certificate belongs to another peer'),
    ],
  },
  {
    type: 'certificate',
    build: w => w.identities.map(i => i.certificate.bytes),
  },
  {
    type: 'revocation-list',
    build: w => [
      w.revocationList.bytes,
      signRevocationList(w.ca, { version: 0, issuedAtMs: T0 - DAY_MS, entries: [] }).bytes,
      signRevocationList(w.ca, {
        version: 9,
        issuedAtMs: T0,
        entries: Array.from({ length: 12 }, (_, n) => ({
          serial: newSerial(w.random),
          name: `n${n}`,
          peerId: w.identities[n % w.identities.length]!.peerId,
          revokedAtMs: T0 - n,
          notAfterMs: T0 + n * DAY_MS,
        })),
      }).bytes,
      signRevocationList(w.otherCa, { version: 5, issuedAtMs: T0, entries: [] }).bytes,
    ],
  },
  {
    type: 'zone-roster',
    build: w => [
      w.zoneRoster.bytes,
      signZoneRoster(w.ca, { version: 0, issuedAtMs: T0, members: [], priors: [] }).bytes,
      signZoneRoster(w.ca, {
        version: 12,
        issuedAtMs: T0,
        members: Array.from({ length: 12 }, (_, n) => ({
          peerId: `12D3KooWfuzz${String(n).padStart(3, '0')}`,
          zone: `zone${n % 5}`,
          since: 1 + (n % 12),
        })),
        priors: [
          { zone: 'zone1', voters: ['12D3KooWfuzz001', '12D3KooWfuzz006'], since: 11 },
          { zone: 'zone3', voters: ['12D3KooWfuzz003'], since: 2 },
        ],
      }).bytes,
      signZoneRoster(w.otherCa, { version: 1, issuedAtMs: T0, members: [], priors: [] }).bytes,
    ],
  },
  {
    type: 'zone-roster-message',
    build: w => [encodeZoneRosterMessage(w.zoneRoster.bytes, w.random(16))],
  },
  {
    type: 'ticket',
    format: 'text',
    build: (w, r) => [
      ...Array.from({ length: 5 }, () => ticketOf(w, r, w.ticketSecret, fingerprintOf(w.ca.publicKey))),
      ticketOf(w, r, w.otherTicketSecret, fingerprintOf(w.otherCa.publicKey)),
      createTicket(w.ticketSecret, {
        meshFingerprint: fingerprintOf(w.ca.publicKey),
        bootstrap: [],
        name: 'late1',
        zone: 'web',
        roles: ['agent'],
        expiresAtMs: NOW - HOUR_MS,
        nonce: w.random(16),
      }),
    ],
  },
  {
    type: 'signing-request',
    build: (w, r) => signingRequests(w, r),
  },
  {
    type: 'join-request',
    build: (w, r) => [
      encodeJoinRequest({ type: 'hello' }),
      ...signingRequests(w, r)
        .slice(0, 3)
        .map(bytes => encodeJoinRequest({ type: 'csr', bytes })),
    ],
  },
  {
    type: 'join-answer',
    build: w => {
      const issued = issueCertificate(w.ca, {
        serial: newSerial(w.random),
        name: 'joiner1',
        publicKey: w.joiner.publicKey,
        zone: 'edge',
        roles: ['agent'],
        notBeforeMs: T0 - DAY_MS,
        notAfterMs: T0 + 10 * DAY_MS,
      })
      return [
        encodeJoinAnswer({
          type: 'hello',
          caPublicKey: w.ca.publicKey,
          cert: w.byLabel.get('hub1')!.certificate.bytes,
        }),
        encodeJoinAnswer({
          type: 'result',
          result: {
            status: 'issued',
            certificate: issued.bytes,
            caPublicKey: w.ca.publicKey,
            revocationList: w.revocationList.bytes,
          },
        }),
        encodeJoinAnswer({ type: 'result', result: { status: 'pending', id: 'k3xq7mzap2vdwb4e' } }),
        encodeJoinAnswer({
          type: 'result',
          result: { status: 'refused', reason: 'expired', message: 'the ticket expired' },
        }),
        encodeJoinAnswer({ type: 'error', code: 'rate-limited', message: 'try again in 10 s' }),
      ]
    },
  },
  {
    type: 'authority-message',
    build: (w, r) => {
      const from = w.byLabel.get(r.pick(AGENTS))!.peerId
      const ids = { incarnation: r.int(0, 2 ** 31), attempt: r.int(0, 9) }
      return [
        encodeAuthorityMessage({ type: 'request', zone: 'web', from, epoch: 3, rosterVersion: 4, ...ids }),
        encodeAuthorityMessage({ type: 'grant', zone: 'web', from, epoch: 3, ...ids }),
        encodeAuthorityMessage({
          type: 'refuse',
          zone: 'web',
          from,
          reason: 'held',
          maxEpoch: 9,
          holder: w.byLabel.get('web2')!.peerId,
          rosterVersion: 4,
          ...ids,
        }),
        encodeAuthorityMessage({
          type: 'refuse',
          zone: 'db',
          from,
          reason: 'roster',
          maxEpoch: 0,
          holder: null,
          rosterVersion: 0,
          ...ids,
        }),
        encodeAuthorityMessage({ type: 'release', zone: 'web', from, epoch: 2 ** 40, ...ids }),
        encodeAuthorityMessage({ type: 'sync', zone: 'core', from }),
        encodeAuthorityMessage({ type: 'state', zone: 'core', from, maxEpoch: 12, recovering: true }),
        encodeAuthorityMessage({ type: 'who', zone: 'web', from, query: 77 }),
        encodeAuthorityMessage({
          type: 'holder',
          zone: 'web',
          from,
          query: 77,
          holder: w.byLabel.get('web1')!.peerId,
          epoch: 3,
          rosterVersion: 4,
        }),
      ]
    },
  },
  {
    type: 'where',
    format: 'text',
    build: () => [
      'zone=web',
      "zone=web and not (name=d2 or os=/bsd/) and rack!='r9'",
      'NOT arch=arm* OR (hostname=/^web[0-9]+\\./ AND rack="r12")',
      'os=linux and (zone=web or zone=db) and not name=web?',
      '(((zone=web)))',
      'order=x or or=y',
    ],
  },
  {
    type: 'pattern',
    format: 'text',
    build: () => [
      'web*',
      '/^web[0-9]+$/',
      '/a*b/',
      '/^(?:ab|cd){2,4}$/',
      '/[a-z]+-[0-9]{1,3}/',
      'db?',
      'exact',
    ],
  },
  {
    type: 'policy',
    build: () => [
      encodeCbor({
        rules: [
          { actions: ['uptime', 'ping', 'facts'], roles: ['operator'] },
          { actions: ['restart-*', 'shell'], operators: ['op1', 'ops-*'], zones: ['web', 'db?'] },
        ],
      }),
      encodeCbor({ rules: [] }),
    ],
  },
  {
    type: 'key-file',
    build: w => [encodeKeyFile(w.byLabel.get('web1')!.key), encodeKeyFile(w.ca)],
  },
  {
    type: 'ticket-secret-file',
    build: w => [encodeTicketSecretFile(w.ticketSecret)],
  },
  {
    type: 'issuer-state',
    build: w => [
      encodeIssuerState(w.issuerState),
      encodeIssuerState({
        ...emptyIssuerState(),
        usedNonces: [
          {
            nonce: toHex(w.random(16)),
            expiresAtMs: NOW + DAY_MS,
            publicKey: w.joiner.publicKey,
            serial: w.byLabel.get('web2')!.certificate.certificate.serial,
          },
        ],
        requests: [
          {
            id: 'k3xq7mzap2vdwb4e',
            status: 'pending',
            publicKey: w.stranger.publicKey,
            peerId: w.byLabel.get('web2')!.peerId,
            name: 'new1',
            zone: 'edge',
            requestedAtMs: NOW - HOUR_MS,
            expiresAtMs: NOW + DAY_MS,
            origin: 'ip:10.0.0.9',
          },
        ],
        roster: {
          rosterVersion: 4,
          issuedAtMs: T0,
          members: w.zoneRoster.roster.members,
          priors: w.zoneRoster.roster.priors,
        },
      }),
    ],
  },
  {
    type: 'run-ledger',
    build: w => [
      encodeRunLedger([]),
      encodeRunLedger(
        Array.from({ length: 5 }, (_, n) => ({
          key: `${toHex(w.random(16))}:${w.identities[n]!.certificate.certificate.serial}`,
          keepUntilMs: NOW + n * 1000,
        })),
      ),
    ],
  },
  {
    type: 'authority-epochs',
    build: () => [
      encodeEpochs(
        new Map([
          ['core', 3],
          ['db', 2 ** 40],
          ['web', 17],
        ]),
      ),
      encodeEpochs(new Map()),
    ],
  },
  {
    type: 'roster-file',
    build: w => [
      encodeRoster(
        w.identities.slice(0, 5).map((i, n) => ({
          peerId: i.peerId,
          zone: i.certificate.certificate.zone,
          notAfterMs: i.certificate.certificate.notAfterMs,
          addrs: n % 2 === 0 ? ['/ip4/10.0.0.2/tcp/7600'] : [],
        })),
      ),
    ],
  },
]

function signingRequests(w: WorldParts, r: SimRandom): Uint8Array[] {
  const ticket = ticketOf(w, r, w.ticketSecret, fingerprintOf(w.ca.publicKey))
  const web1 = w.byLabel.get('web1')!
  const old1 = w.byLabel.get('old1')!
  return [
    createSigningRequest(w.joiner, { ticket, createdAtMs: NOW - 1_000, nonce: w.random(16) }).bytes,
    createSigningRequest(w.joiner, {
      ticket: ticketOf(w, r, w.otherTicketSecret, fingerprintOf(w.ca.publicKey)),
      createdAtMs: NOW,
      nonce: w.random(16),
    }).bytes,
    createSigningRequest(web1.key, {
      certificate: web1.certificate.bytes,
      createdAtMs: NOW,
      nonce: w.random(16),
    }).bytes,
    createSigningRequest(old1.key, {
      certificate: old1.certificate.bytes,
      createdAtMs: NOW,
      nonce: w.random(16),
    }).bytes,
    createSigningRequest(w.stranger, {
      name: 'new1',
      zone: 'edge',
      createdAtMs: NOW - HOUR_MS,
      nonce: w.random(16),
    }).bytes,
    createSigningRequest(w.stranger, { createdAtMs: NOW - 30 * DAY_MS, nonce: w.random(16) }).bytes,
  ]
}

/** Every message type, in report order. */
export const MESSAGE_TYPES: readonly string[] = BUILDERS.map(b => b.type)
