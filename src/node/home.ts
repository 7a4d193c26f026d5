/**
 * The node's home directory (--home): what lives there, and loading and saving it.
 *
 *   config.toml          listen/announce/bootstrap and user settings (see config.ts)
 *   node.key, node.cert  this node's ed25519 key and its certificate
 *   mesh.ca              the CA public key (its hash is the mesh fingerprint)
 *   operator.key/.cert   the local admin's operator identity (on nodes made by `mesh init`)
 *   revocations          the newest revocation list seen
 *   roster               every certified member seen (zone-authority voters survive restarts)
 *   ca/                  only on CA nodes: ca.key, ticket.secret, issuer.state
 *   agent.sock           the control socket while `mesh agent` runs
 *
 * Every file is written atomically with mode 0600 inside a 0700 directory. A missing or corrupt file is
 * a clear error naming the file; nothing is ever silently regenerated.
 */
import { randomBytes } from 'node:crypto'
import { readdir } from 'node:fs/promises'
import { join } from 'node:path'
import { privateKeyFromRaw } from '@libp2p/crypto/keys'
import type { PrivateKey } from '@libp2p/interface'
import { generateKey } from '@libp2p/pnet'
import { parse as parseToml, stringify as stringifyToml } from 'smol-toml'
import { decodeCertificate } from '../ca/certificate.js'
import { type SigningKey, signingKeyFromSeed } from '../ca/ed25519.js'
import { fingerprintOf } from '../ca/fingerprint.js'
import { createIssuer, type Issuer, type IssuerEffect } from '../ca/issuer.js'
import { decodeIssuerState, encodeIssuerState, type IssuerState } from '../ca/issuer-state.js'
import {
  decodeKeyFile,
  decodeTicketSecretFile,
  encodeKeyFile,
  encodeTicketSecretFile,
} from '../ca/key-file.js'
import type { Role, SignedCertificate } from '../ca/types.js'
import { cleanStaleTempFiles, ensureHomeDir, readStateFile, writeFileAtomic } from './state-file.js'

/** File name of the optional pnet network key inside a home. */
export const NETWORK_KEY_FILE = 'network.key'

/** A home-directory problem, with a message that says which file and what to do. */
export class HomeError extends Error {
  override name = 'HomeError'
  readonly code: 'not-initialised' | 'already-initialised' | 'corrupt' | 'unreadable' | 'not-a-ca'
  constructor(code: HomeError['code'], message: string) {
    super(message)
    this.code = code
  }
}

/** File names inside a home. */
export function homePaths(home: string) {
  return {
    home,
    config: join(home, 'config.toml'),
    nodeKey: join(home, 'node.key'),
    nodeCert: join(home, 'node.cert'),
    caPublicKey: join(home, 'mesh.ca'),
    operatorKey: join(home, 'operator.key'),
    operatorCert: join(home, 'operator.cert'),
    revocations: join(home, 'revocations'),
    roster: join(home, 'roster'),
    caDir: join(home, 'ca'),
    caKey: join(home, 'ca', 'ca.key'),
    ticketSecret: join(home, 'ca', 'ticket.secret'),
    issuerState: join(home, 'ca', 'issuer.state'),
    socket: join(home, 'agent.sock'),
  }
}

/** An identity: a key and the certificate issued for it. */
export interface Identity {
  readonly key: SigningKey
  readonly certificate: SignedCertificate
}

/** CA material, present only on CA nodes. */
export interface CaMaterial {
  readonly caKey: SigningKey
  readonly ticketSecret: Uint8Array
  readonly issuerState: IssuerState
}

/** Everything a node keeps in its home. */
export interface HomeState {
  readonly home: string
  readonly node: Identity
  readonly caPublicKey: Uint8Array
  readonly operator?: Identity
  readonly ca?: CaMaterial
  readonly revocations?: Uint8Array
  readonly roster?: Uint8Array
  /** The parsed config.toml (validated later by resolveConfig). */
  readonly configFile: Record<string, unknown>
}

/** The libp2p private key of a signing key (the PeerId is the same key, LIBP2P-NOTES §2). */
export function libp2pKeyOf(key: SigningKey): PrivateKey {
  const raw = new Uint8Array(64)
  raw.set(key.secretKey, 0)
  raw.set(key.publicKey, 32)
  return privateKeyFromRaw(raw)
}

/** A fresh signing key from the OS random source. */
export function generateSigningKey(): SigningKey {
  return signingKeyFromSeed(new Uint8Array(randomBytes(32)))
}

/** Cryptographically secure random bytes (the `randomBytes` port of the pure cores). */
export function secureRandomBytes(count: number): Uint8Array {
  return new Uint8Array(randomBytes(count))
}

/** True when `home` already holds a node key. */
export async function isInitialised(home: string): Promise<boolean> {
  const entries = await readdir(home).catch(() => [] as string[])
  return entries.includes('node.key')
}

async function readRequired(path: string, what: string, home: string): Promise<Uint8Array> {
  const read = await readStateFile(path)
  if (read.ok) return read.bytes
  if (read.error.code === 'missing') {
    throw new HomeError(
      'not-initialised',
      `${home} holds no ${what} (${path} is missing); create a mesh with 'mesh init' or join one with 'mesh join'`,
    )
  }
  throw new HomeError('unreadable', `cannot read ${path}: ${read.error.message}`)
}

async function readOptional(path: string): Promise<Uint8Array | undefined> {
  const read = await readStateFile(path)
  if (read.ok) return read.bytes
  if (read.error.code === 'missing') return undefined
  throw new HomeError('unreadable', `cannot read ${path}: ${read.error.message}`)
}

function decodeKey(bytes: Uint8Array, path: string): SigningKey {
  try {
    return decodeKeyFile(bytes)
  } catch (err) {
    throw new HomeError(
      'corrupt',
      `${path} is not a usable key (${(err as Error).message}); restore it from a backup`,
    )
  }
}

function decodeCert(bytes: Uint8Array, path: string, key: SigningKey): SignedCertificate {
  const decoded = decodeCertificate(bytes)
  if (!decoded.ok) throw new HomeError('corrupt', `${path} is not a certificate (${decoded.detail})`)
  const publicKey = decoded.signed.certificate.publicKey
  if (Buffer.compare(Buffer.from(publicKey), Buffer.from(key.publicKey)) !== 0) {
    throw new HomeError('corrupt', `${path} does not belong to the key beside it`)
  }
  return decoded.signed
}

/** Loads a home. @throws HomeError */
export async function loadHome(home: string): Promise<HomeState> {
  const p = homePaths(home)
  await cleanStaleTempFiles(home).catch(() => [])
  const nodeKey = decodeKey(await readRequired(p.nodeKey, 'node key', home), p.nodeKey)
  const node = {
    key: nodeKey,
    certificate: decodeCert(await readRequired(p.nodeCert, 'certificate', home), p.nodeCert, nodeKey),
  }
  const caPublicKey = await readRequired(p.caPublicKey, 'mesh CA key', home)
  if (caPublicKey.byteLength !== 32)
    throw new HomeError('corrupt', `${p.caPublicKey} is not a 32-byte public key`)

  let operator: Identity | undefined
  const operatorKeyBytes = await readOptional(p.operatorKey)
  if (operatorKeyBytes !== undefined) {
    const key = decodeKey(operatorKeyBytes, p.operatorKey)
    operator = {
      key,
      certificate: decodeCert(
        await readRequired(p.operatorCert, 'operator certificate', home),
        p.operatorCert,
        key,
      ),
    }
  }

  let ca: CaMaterial | undefined
  const caKeyBytes = await readOptional(p.caKey)
  if (caKeyBytes !== undefined) {
    await cleanStaleTempFiles(p.caDir).catch(() => [])
    const caKey = decodeKey(caKeyBytes, p.caKey)
    let ticketSecret: Uint8Array
    try {
      ticketSecret = decodeTicketSecretFile(await readRequired(p.ticketSecret, 'ticket secret', home))
    } catch (err) {
      if (err instanceof HomeError) throw err
      throw new HomeError('corrupt', `${p.ticketSecret} is unusable (${(err as Error).message})`)
    }
    let issuerState: IssuerState
    try {
      issuerState = decodeIssuerState(await readRequired(p.issuerState, 'CA state', home))
    } catch (err) {
      if (err instanceof HomeError) throw err
      throw new HomeError(
        'corrupt',
        `${p.issuerState} is unusable (${(err as Error).message}); restore it from a backup`,
      )
    }
    ca = { caKey, ticketSecret, issuerState }
  }

  const revocations = await readOptional(p.revocations)
  const roster = await readOptional(p.roster)
  const configBytes = await readOptional(p.config)
  let configFile: Record<string, unknown> = {}
  if (configBytes !== undefined) {
    try {
      configFile = parseToml(Buffer.from(configBytes).toString('utf8')) as Record<string, unknown>
    } catch (err) {
      throw new HomeError(
        'corrupt',
        `${p.config} is not valid TOML: ${(err as Error).message.split('\n')[0]}`,
      )
    }
  }
  return { home, node, caPublicKey, operator, ca, revocations, roster, configFile }
}

/** Writes `config.toml` with the given top-level values (used by init and join). */
export async function writeConfigFile(home: string, values: Record<string, unknown>): Promise<void> {
  const text = `# mesh node configuration; see 'mesh --help' and CLI.md.\n${stringifyToml(values)}\n`
  await writeFileAtomic(homePaths(home).config, new TextEncoder().encode(text))
}

/** Saves a node identity (key then certificate) and the CA public key. */
export async function saveNodeIdentity(
  home: string,
  identity: Identity,
  caPublicKey: Uint8Array,
): Promise<void> {
  const p = homePaths(home)
  await ensureHomeDir(home)
  await writeFileAtomic(p.nodeKey, encodeKeyFile(identity.key))
  await writeFileAtomic(p.caPublicKey, caPublicKey)
  await writeFileAtomic(p.nodeCert, identity.certificate.bytes)
}

/** Replaces the node certificate (renewal). */
export async function saveNodeCertificate(home: string, certificate: SignedCertificate): Promise<void> {
  await writeFileAtomic(homePaths(home).nodeCert, certificate.bytes)
}

/** Saves the newest revocation list. */
export async function saveRevocations(home: string, bytes: Uint8Array): Promise<void> {
  await writeFileAtomic(homePaths(home).revocations, bytes)
}

/** Saves the zone-authority roster. */
export async function saveRoster(home: string, bytes: Uint8Array): Promise<void> {
  await writeFileAtomic(homePaths(home).roster, bytes)
}

/** Saves the CA's issuer state. */
export async function saveIssuerState(home: string, state: IssuerState): Promise<void> {
  await writeFileAtomic(homePaths(home).issuerState, encodeIssuerState(state))
}

/** Options of {@link initHome}. */
export interface InitOptions {
  readonly name: string
  readonly zone: string
  readonly listen?: readonly string[]
  readonly announce?: readonly string[]
  readonly certificateTtlMs?: number
  /** Also create a pnet pre-shared network key (an outer fence; joiners need a copy). */
  readonly networkKey?: boolean
}

/** What `mesh init` created. */
export interface InitResult {
  readonly fingerprint: Uint8Array
  readonly node: Identity
  readonly operator: Identity
}

/** Runs one issuer input and returns its command reply, carrying out persistence first. */
async function issueNow(home: string, issuer: Issuer, input: Parameters<Issuer['step']>[0], nowMs: number) {
  issuer.step(input, nowMs)
  let reply: Extract<IssuerEffect, { type: 'command-reply' }> | undefined
  for (const effect of issuer.drainEffects()) {
    if (effect.type === 'persist') await saveIssuerState(home, effect.state)
    else if (effect.type === 'publish-revocations') await saveRevocations(home, effect.list)
    else if (effect.type === 'command-reply') reply = effect
  }
  if (reply === undefined || !reply.result.ok) {
    throw new HomeError(
      'corrupt',
      `the CA refused to issue: ${reply && !reply.result.ok ? reply.result.message : 'no answer'}`,
    )
  }
  return reply.result
}

/**
 * Creates a new mesh in `home`: CA key, ticket secret, this node (roles ca and agent) and a local
 * operator identity. Refuses to touch a home that already holds a node.
 * @throws HomeError `already-initialised`
 */
export async function initHome(home: string, options: InitOptions, nowMs: number): Promise<InitResult> {
  if (await isInitialised(home)) {
    throw new HomeError(
      'already-initialised',
      `${home} already holds a node; choose another --home or remove it first`,
    )
  }
  const p = homePaths(home)
  await ensureHomeDir(home)
  await ensureHomeDir(p.caDir)
  const caKey = generateSigningKey()
  const ticketSecret = secureRandomBytes(32)
  await writeFileAtomic(p.caKey, encodeKeyFile(caKey))
  await writeFileAtomic(p.ticketSecret, encodeTicketSecretFile(ticketSecret))
  const issuer = createIssuer({
    caKey,
    ticketSecret,
    randomBytes: secureRandomBytes,
    config: options.certificateTtlMs !== undefined ? { certificateTtlMs: options.certificateTtlMs } : {},
  })
  const issue = async (key: SigningKey, name: string, zone: string, roles: Role[]) => {
    const result = await issueNow(
      home,
      issuer,
      { type: 'issue', requestId: name, publicKey: key.publicKey, name, zone, roles },
      nowMs,
    )
    if (result.command !== 'issue') throw new HomeError('corrupt', 'unexpected CA answer')
    const decoded = decodeCertificate(result.certificate)
    if (!decoded.ok)
      throw new HomeError('corrupt', `the CA issued an unreadable certificate: ${decoded.detail}`)
    return { key, certificate: decoded.signed }
  }
  const nodeKey = generateSigningKey()
  const node = await issue(nodeKey, options.name, options.zone, ['ca', 'agent'])
  const operatorKey = generateSigningKey()
  const operator = await issue(operatorKey, `${options.name}-operator`, options.zone, ['operator'])
  await saveIssuerState(home, issuer.state())
  await saveRevocations(home, issuer.revocationList().bytes)
  await writeFileAtomic(p.operatorKey, encodeKeyFile(operatorKey))
  await writeFileAtomic(p.operatorCert, operator.certificate.bytes)
  if (options.networkKey === true) {
    const psk = new Uint8Array(95)
    generateKey(psk)
    await writeFileAtomic(join(home, NETWORK_KEY_FILE), psk)
  }
  await writeConfigFile(home, {
    listen: [...(options.listen ?? ['/ip4/0.0.0.0/tcp/7600'])],
    announce: [...(options.announce ?? [])],
    ...(options.networkKey === true ? { pnetKeyFile: NETWORK_KEY_FILE } : {}),
  })
  // The node key last: its presence is what marks the home as initialised.
  await saveNodeIdentity(home, node, caKey.publicKey)
  return { fingerprint: fingerprintOf(caKey.publicKey), node, operator }
}
