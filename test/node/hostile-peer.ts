/**
 * A hostile peer for attack tests: a raw libp2p node with the mesh's connection stack (transport.ts),
 * identify and a gossipsub configured like host.ts (StrictNoSign, the mesh topics, no validators), but
 * none of the mesh's logic. It can speak every mesh protocol with whatever bytes a test chooses: a
 * correct hello with its own certificate (a "certified insider" when `identity` is given), garbage or
 * nothing; raw gossip on any mesh topic; arbitrary length-prefixed (or raw) frames on
 * `/mesh/reply/1.0.0`, `/mesh/authority/1.0.0`, `/mesh/join/1.0.0` and `/mesh/ca/1.0.0`; streams held
 * open without a byte; many connections and streams. Messages are built with the project's own
 * encoders (encodeHello, encodeAuthorityMessage, encodeJoinRequest, createHeartbeat), signed with the
 * peer's own key, so the attacks stay in step with the protocol as it changes.
 *
 * Bounded: every wait takes a timeout (default {@link HOSTILE_WAIT_MS}); `stop()` aborts every stream
 * and connection it opened and stops every libp2p node it started. Never rejects from `stop()`.
 */
import { type GossipSub, gossipsub } from '@libp2p/gossipsub'
import { type Identify, identify } from '@libp2p/identify'
import type { Connection, Libp2p, Stream } from '@libp2p/interface'
import { peerIdFromString } from '@libp2p/peer-id'
import { lpStream } from '@libp2p/utils'
import { multiaddr } from '@multiformats/multiaddr'
import { createLibp2p } from 'libp2p'
import type { AuthorityMessage } from '../../src/authority/messages.js'
import { encodeAuthorityMessage } from '../../src/authority/messages.js'
import { CA_PROTOCOL, encodeJoinRequest, JOIN_PROTOCOL, type JoinRequest } from '../../src/ca/join-wire.js'
import { createRecord, openSuspicion, type RecordInit } from '../../src/membership/record.js'
import { decodeMemberMessage, encodeMemberMessage, type WireMessage } from '../../src/membership/wire.js'
import { AUTHORITY_PROTOCOL } from '../../src/node/authority-streams.js'
import {
  decodeHello,
  encodeHello,
  HELLO_BYTES_MAX,
  HELLO_PROTOCOL,
  type HelloFields,
} from '../../src/node/hello.js'
import { GOSSIP_MESSAGE_BYTES_MAX, TOPICS } from '../../src/node/host.js'
import { type Identity, libp2pKeyOf, secureRandomBytes } from '../../src/node/keys.js'
import { MEMBER_PROTOCOL } from '../../src/node/membership-driver.js'
import { REPLY_PROTOCOL } from '../../src/node/replies.js'
import { connectionStack } from '../../src/node/transport.js'
import { signingKeyFromSeed } from '../../src/wire/ed25519.js'
import type { TestCa } from './harness.js'

/** Default bound of every wait of the helper. */
export const HOSTILE_WAIT_MS = 5_000
/** Largest frame the helper reads back. */
const READ_BYTES_MAX = 2 << 20

/** Every mesh protocol the helper can open. */
export const MESH_PROTOCOLS = {
  hello: HELLO_PROTOCOL,
  reply: REPLY_PROTOCOL,
  authority: AUTHORITY_PROTOCOL,
  join: JOIN_PROTOCOL,
  ca: CA_PROTOCOL,
  member: MEMBER_PROTOCOL,
} as const

/** How the peer answers a hello the mesh dials to it (when a mesh node connects to us). */
export type HelloAnswer = 'cert' | 'garbage' | 'none'

/** What the peer sends on a hello it opens. */
export type HelloSend =
  | { readonly kind: 'cert'; readonly crl?: Uint8Array }
  | { readonly kind: 'garbage'; readonly bytes?: Uint8Array }
  /** Opens the hello stream and holds it, sending nothing. */
  | { readonly kind: 'hold' }
  /** Opens no hello stream at all. */
  | { readonly kind: 'none' }

export interface HostilePeerInit {
  /** The CA whose identity to mint when `identity` is absent and `certify` names one. */
  readonly ca?: TestCa
  /** The peer's key and certificate; absent = an uncertified random key (or one minted by `ca`). */
  readonly identity?: Identity
  /** With `ca` and no `identity`: mint a certificate `{name, zone, roles}` from it. */
  readonly certify?: { name: string; zone: string; roles?: ('agent' | 'operator' | 'ca')[] }
  readonly transport?: 'tcp' | 'memory'
  /** How to answer a hello the mesh opens to us; default `cert` when certified, else `garbage`. */
  readonly answerHello?: HelloAnswer
  /** Gossipsub heartbeat of the hostile node; default 1 s like host.ts. */
  readonly heartbeatIntervalMs?: number
  /** Answer membership pings with acks and push-pulls with our newest record (default: when certified). */
  readonly answerProbes?: boolean
}

/** One stream the peer opened, with raw and length-prefixed writes and bounded reads. */
export interface HostileStream {
  readonly stream: Stream
  readonly protocol: string
  /** Writes one varint-length-prefixed frame. */
  writeFrame(bytes: Uint8Array, timeoutMs?: number): Promise<void>
  /** Writes bytes as they are (e.g. a bogus length prefix). */
  writeRaw(bytes: Uint8Array): Promise<void>
  /** Reads one length-prefixed frame; undefined on timeout, EOF or reset. */
  readFrame(timeoutMs?: number): Promise<Uint8Array | undefined>
  /** Resolves true once the stream is closed or reset by either side (bounded), false on timeout. */
  closed(timeoutMs?: number): Promise<boolean>
  close(): Promise<void>
  abort(): void
}

export type HostileServices = { identify: Identify; pubsub: GossipSub }
export type HostileHost = Libp2p<HostileServices>

export interface HostilePeer {
  readonly host: HostileHost
  readonly peerId: string
  /** The certified identity, when there is one. */
  readonly identity: Identity | undefined
  addrs(): string[]
  /**
   * Dials `addr` (with /p2p/) and runs `hello` on the new connection (default: `cert` when certified,
   * `none` otherwise). `force` opens a new connection even when one exists. Returns the connection and,
   * for `cert`/`garbage`, the answer the mesh sent (undefined when none arrived in time).
   */
  connect(
    addr: string,
    options?: { hello?: HelloSend; force?: boolean; timeoutMs?: number },
  ): Promise<{ connection: Connection; answer: HelloFields | undefined }>
  /** Runs one hello exchange on `connection`; returns the answer, or undefined when none came. */
  hello(connection: Connection, send: HelloSend, timeoutMs?: number): Promise<HelloFields | undefined>
  /** Opens a stream of `protocol` on `connection` (or to the peer id); throws on timeout or refusal. */
  open(target: Connection | string, protocol: string, timeoutMs?: number): Promise<HostileStream>
  /** Opens `count` streams of `protocol` and holds them, sending nothing; settles all (failures skipped). */
  holdStreams(
    target: Connection | string,
    protocol: string,
    count: number,
    timeoutMs?: number,
  ): Promise<HostileStream[]>
  /** Sends `messages` (encoded with the project's encoder unless given as bytes) on one authority stream. */
  sendAuthority(
    target: Connection | string,
    messages: ReadonlyArray<AuthorityMessage | Record<string, unknown> | Uint8Array>,
    timeoutMs?: number,
  ): Promise<HostileStream>
  /** Sends one join-wire request (encoded with encodeJoinRequest unless bytes) on `protocol` and reads one answer. */
  sendJoin(
    target: Connection | string,
    protocol: typeof JOIN_PROTOCOL | typeof CA_PROTOCOL,
    request: JoinRequest | Uint8Array,
    timeoutMs?: number,
  ): Promise<Uint8Array | undefined>
  /** A membership record signed with our key and certificate, at a fresh incarnation (throws when uncertified). */
  record(init?: Partial<RecordInit>): Uint8Array
  /** Sends `messages` (encoded with encodeMemberMessage unless bytes) on one membership stream. */
  sendMember(
    target: Connection | string,
    messages: ReadonlyArray<WireMessage | Uint8Array>,
    timeoutMs?: number,
  ): Promise<HostileStream>
  /** Waits until each of `peerIds` is subscribed to `topic` as we see it and our gossip stream to it is open. */
  waitForTopicPeers(topic: string, peerIds: readonly string[], timeoutMs?: number): Promise<void>
  /** Publishes `bytes` raw on `topic`; returns the recipients libp2p reports. */
  publish(topic: string, bytes: Uint8Array): Promise<number>
  /** Gossip messages received per topic (the peer subscribes to every mesh topic). */
  received(): Readonly<Record<string, number>>
  /** Opens `count` further libp2p nodes (fresh uncertified keys) each connected to `addr`; returns how many connected. */
  flood(addr: string, count: number, timeoutMs?: number): Promise<number>
  /** Whether any connection to `peerId` is open. */
  connectedTo(peerId: string): boolean
  stop(): Promise<void>
}

const timeout = (ms: number | undefined): AbortSignal => AbortSignal.timeout(ms ?? HOSTILE_WAIT_MS)

/** Waits `ms` (for pacing in tests). */
export const delay = (ms: number): Promise<void> => new Promise(r => setTimeout(r, ms))

/** Polls `check` until true or `timeoutMs`; resolves whether it became true (never throws). */
async function poll(check: () => boolean, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs
  while (!check()) {
    if (Date.now() > deadline) return false
    await delay(25)
  }
  return true
}

/** Some garbage: not CBOR, not a hello. */
export function garbage(length = 64): Uint8Array {
  const bytes = secureRandomBytes(length)
  bytes[0] = 0xff // a CBOR "break" outside an indefinite item: never well-formed
  return bytes
}

async function createRawHost(
  privateKey: ReturnType<typeof libp2pKeyOf>,
  transport: 'tcp' | 'memory',
  heartbeatIntervalMs: number,
): Promise<HostileHost> {
  const listen =
    transport === 'memory' ? [`/memory/hostile-${process.pid}-${Math.random()}`] : ['/ip4/127.0.0.1/tcp/0']
  return createLibp2p<HostileServices>({
    privateKey,
    addresses: { listen },
    ...connectionStack({ transport }),
    connectionManager: {
      maxConnections: 1_000,
      inboundConnectionThreshold: 1_000,
      maxIncomingPendingConnections: 256,
    },
    services: {
      identify: identify(),
      pubsub: gossipsub({
        globalSignaturePolicy: 'StrictNoSign',
        fallbackToFloodsub: false,
        floodPublish: true,
        allowPublishToZeroTopicPeers: true,
        emitSelf: false,
        heartbeatInterval: heartbeatIntervalMs,
        scoreParams: { IPColocationFactorWeight: 0 },
        allowedTopics: Object.values(TOPICS),
        maxInboundDataLength: GOSSIP_MESSAGE_BYTES_MAX,
      }),
    },
  })
}

function wrap(stream: Stream, protocol: string): HostileStream {
  const lp = lpStream(stream, { maxDataLength: READ_BYTES_MAX })
  return {
    stream,
    protocol,
    async writeFrame(bytes, timeoutMs) {
      await lp.write(bytes, { signal: timeout(timeoutMs) })
    },
    async writeRaw(bytes) {
      if (!stream.send(bytes)) await stream.onDrain({ signal: timeout(undefined) })
    },
    async readFrame(timeoutMs) {
      try {
        return (await lp.read({ signal: timeout(timeoutMs) })).subarray()
      } catch {
        return undefined
      }
    },
    closed: timeoutMs => poll(() => stream.status !== 'open', timeoutMs ?? HOSTILE_WAIT_MS),
    async close() {
      await stream.close({ signal: timeout(1_000) }).catch(() => stream.abort(new Error('close failed')))
    },
    abort() {
      stream.abort(new Error('hostile peer abort'))
    },
  }
}

/** Creates and starts a hostile peer. */
export async function createHostilePeer(init: HostilePeerInit = {}): Promise<HostilePeer> {
  const transport = init.transport ?? 'tcp'
  const identity =
    init.identity ??
    (init.ca !== undefined && init.certify !== undefined
      ? init.ca.identity(init.certify.name, init.certify.zone, init.certify.roles ?? ['agent'])
      : undefined)
  const key = identity?.key ?? signingKeyFromSeed(secureRandomBytes(32))
  const host = await createRawHost(libp2pKeyOf(key), transport, init.heartbeatIntervalMs ?? 1_000)
  const streams = new Set<HostileStream>()
  const extraHosts: HostileHost[] = []
  const receivedCounts: Record<string, number> = {}
  let incarnation = Date.now()
  /** The newest record `record()` made: the answer to a push-pull. */
  let lastRecord: Uint8Array | undefined

  const answerMode: HelloAnswer = init.answerHello ?? (identity !== undefined ? 'cert' : 'garbage')
  const ownHello = (crl?: Uint8Array): Uint8Array => {
    if (identity === undefined) throw new Error('hostile peer: no certificate to send')
    return encodeHello(identity.certificate.bytes, crl)
  }

  if (answerMode !== 'none') {
    await host.handle(
      HELLO_PROTOCOL,
      async stream => {
        const lp = lpStream(stream, { maxDataLength: HELLO_BYTES_MAX })
        const signal = timeout(undefined)
        try {
          await lp.read({ signal })
          await lp.write(answerMode === 'cert' ? ownHello() : garbage(), { signal })
          await stream.close({ signal })
        } catch (err) {
          stream.abort(err as Error)
        }
      },
      { maxInboundStreams: 64 },
    )
  }

  /** One outbound membership stream per mesh node, shared by sendMember and the answers to its probes. */
  const memberStreams = new Map<string, Promise<HostileStream>>()
  const memberStream = (to: string): Promise<HostileStream> => {
    let out = memberStreams.get(to)
    if (out === undefined) {
      out = open(to, MEMBER_PROTOCOL)
      out.catch(() => memberStreams.delete(to))
      memberStreams.set(to, out)
    }
    return out
  }
  if (init.answerProbes ?? identity !== undefined) {
    // Acks go back on a stream of our own, as the mesh's membership driver sends them.
    await host.handle(
      MEMBER_PROTOCOL,
      async (stream, connection) => {
        const from = connection.remotePeer.toString()
        const lp = lpStream(stream, { maxDataLength: 1024 * 1024 })
        try {
          for (;;) {
            const message = decodeMemberMessage((await lp.read()).subarray())
            // Refute a suspicion of us, as a live member does: a record at a higher incarnation.
            const accused = message.updates.some(
              u => u.kind === 'suspicion' && openSuspicion(u.bytes).suspicion.subject === peer.peerId,
            )
            if (accused && lastRecord !== undefined) {
              const refutation = encodeMemberMessage({
                type: 'gossip',
                updates: [{ kind: 'record', bytes: peer.record() }],
              })
              for (const to of [...memberStreams.keys()])
                void memberStream(to)
                  .then(s => s.writeFrame(refutation))
                  .catch(() => {})
            }
            let answer: WireMessage | undefined
            if (message.type === 'ping') answer = { type: 'ack', seq: message.seq, updates: [] }
            else if (message.type === 'sync' && !message.reply && lastRecord !== undefined) {
              // Push-pull is how the mesh takes a newcomer in: answer with our latest record.
              answer = {
                type: 'sync',
                reply: true,
                digest: [{ id: peer.peerId, incarnation, state: 'alive' }],
                updates: [{ kind: 'record', bytes: lastRecord }],
              }
            }
            if (answer === undefined) continue
            await (await memberStream(from)).writeFrame(encodeMemberMessage(answer))
          }
        } catch {
          memberStreams.delete(from)
        }
      },
      { maxInboundStreams: 8 },
    )
  }

  host.services.pubsub.addEventListener('message', evt => {
    const topic = evt.detail.topic
    receivedCounts[topic] = (receivedCounts[topic] ?? 0) + 1
  })
  await host.start()
  for (const topic of Object.values(TOPICS)) host.services.pubsub.subscribe(topic)

  const connectionTo = async (target: Connection | string, timeoutMs?: number): Promise<Connection> => {
    if (typeof target !== 'string') return target
    const open = host.getConnections(peerIdFromString(target)).find(c => c.status === 'open')
    if (open !== undefined) return open
    return host.dial(peerIdFromString(target), { signal: timeout(timeoutMs) })
  }

  const open = async (
    target: Connection | string,
    protocol: string,
    timeoutMs?: number,
  ): Promise<HostileStream> => {
    const connection = await connectionTo(target, timeoutMs)
    const stream = await connection.newStream(protocol, { signal: timeout(timeoutMs) })
    const wrapped = wrap(stream, protocol)
    streams.add(wrapped)
    return wrapped
  }

  const hello = async (
    connection: Connection,
    send: HelloSend,
    timeoutMs?: number,
  ): Promise<HelloFields | undefined> => {
    if (send.kind === 'none') return undefined
    const s = await open(connection, HELLO_PROTOCOL, timeoutMs)
    if (send.kind === 'hold') return undefined
    await s.writeFrame(send.kind === 'cert' ? ownHello(send.crl) : (send.bytes ?? garbage()), timeoutMs)
    const answer = await s.readFrame(timeoutMs)
    if (answer === undefined) return undefined
    try {
      return decodeHello(answer)
    } catch {
      return {}
    }
  }

  const peer: HostilePeer = {
    host,
    peerId: host.peerId.toString(),
    identity,
    addrs: () => host.getMultiaddrs().map(a => a.toString()),

    async connect(addr, options = {}) {
      const connection = await host.dial(multiaddr(addr), {
        signal: timeout(options.timeoutMs),
        ...(options.force === true ? { force: true } : {}),
      })
      const send: HelloSend = options.hello ?? (identity !== undefined ? { kind: 'cert' } : { kind: 'none' })
      const answer = await hello(connection, send, options.timeoutMs)
      return { connection, answer }
    },

    hello,
    open,

    async holdStreams(target, protocol, count, timeoutMs) {
      const settled = await Promise.allSettled(
        Array.from({ length: count }, () => open(target, protocol, timeoutMs)),
      )
      return settled.flatMap(r => (r.status === 'fulfilled' ? [r.value] : []))
    },

    async sendAuthority(target, messages, timeoutMs) {
      const s = await open(target, AUTHORITY_PROTOCOL, timeoutMs)
      for (const m of messages) {
        const bytes = m instanceof Uint8Array ? m : encodeAuthorityMessage(m as AuthorityMessage)
        await s.writeFrame(bytes, timeoutMs)
      }
      return s
    },

    async sendJoin(target, protocol, request, timeoutMs) {
      const s = await open(target, protocol, timeoutMs)
      await s.writeFrame(request instanceof Uint8Array ? request : encodeJoinRequest(request), timeoutMs)
      const answer = await s.readFrame(timeoutMs)
      await s.close()
      return answer
    },

    record(overrides = {}) {
      if (identity === undefined) throw new Error('hostile peer: no certificate to sign a record')
      incarnation = Math.max(incarnation + 1, Date.now())
      lastRecord = createRecord(identity.key, identity.certificate, {
        addrs: peer.addrs(),
        facts: {},
        bootedAtS: 0,
        incarnation,
        left: false,
        ...overrides,
      })
      return lastRecord
    },

    async sendMember(target, messages, timeoutMs) {
      const s =
        typeof target === 'string'
          ? await memberStream(target)
          : await open(target, MEMBER_PROTOCOL, timeoutMs)
      for (const m of messages)
        await s.writeFrame(m instanceof Uint8Array ? m : encodeMemberMessage(m), timeoutMs)
      return s
    },

    async waitForTopicPeers(topic, peerIds, timeoutMs = HOSTILE_WAIT_MS) {
      const ok = await poll(() => {
        // Subscribed as we see it, and our own gossip stream to it open: gossipsub silently drops a
        // publish to a peer whose outbound stream is still held by the mesh's hello gate.
        const pubsub = host.services.pubsub
        // The router class's field, absent from the GossipSub interface type.
        const outbound = (pubsub as unknown as { streamsOutbound: ReadonlyMap<string, unknown> })
          .streamsOutbound
        const subscribers = pubsub.getSubscribers(topic).map(p => p.toString())
        return peerIds.every(id => subscribers.includes(id) && outbound.has(id))
      }, timeoutMs)
      if (!ok) throw new Error(`hostile peer: ${topic} peers not all subscribed within ${timeoutMs} ms`)
    },

    async publish(topic, bytes) {
      const result = await host.services.pubsub.publish(topic, bytes)
      return result.recipients.length
    },

    received: () => ({ ...receivedCounts }),

    async flood(addr, count, timeoutMs) {
      let connected = 0
      await Promise.all(
        Array.from({ length: count }, async () => {
          const extra = await createRawHost(
            libp2pKeyOf(signingKeyFromSeed(secureRandomBytes(32))),
            transport,
            1_000,
          )
          extraHosts.push(extra)
          await extra.start()
          try {
            await extra.dial(multiaddr(addr), { signal: timeout(timeoutMs) })
            connected += 1
          } catch {
            // refused or timed out: counted as not connected
          }
        }),
      )
      return connected
    },

    connectedTo: peerId => host.getConnections(peerIdFromString(peerId)).some(c => c.status === 'open'),

    async stop() {
      for (const s of streams) s.abort()
      streams.clear()
      const all = [host, ...extraHosts.splice(0)]
      await Promise.all(all.map(h => Promise.race([h.stop(), delay(HOSTILE_WAIT_MS)]).catch(() => {})))
    },
  }
  return peer
}
