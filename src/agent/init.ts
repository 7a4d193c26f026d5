/**
 * `mesh init` as a function: creates a new mesh in a home directory (CA key, ticket secret, this node
 * with roles ca and agent, a local operator identity, optionally a pnet network key, and config.toml).
 * The file layout and the savers are home.ts's.
 */
import { join } from 'node:path'
import { generateKey } from '@libp2p/pnet'
import { decodeCertificate } from '../ca/certificate.js'
import { fingerprintOf } from '../ca/fingerprint.js'
import { createIssuer, type IssuerEffect, type IssuerInput } from '../ca/issuer.js'
import { encodeKeyFile, encodeTicketSecretFile } from '../ca/key-file.js'
import type { Role } from '../ca/types.js'
import { systemClock } from '../node/clock.js'
import { DEFAULT_LISTEN } from '../node/config.js'
import { createIssuerDriver, type IssuerDriver } from '../node/issuer-driver.js'
import { generateSigningKey, type Identity, secureRandomBytes } from '../node/keys.js'
import { silentLogger } from '../node/log.js'
import type { SigningKey } from '../wire/ed25519.js'
import {
  HomeError,
  homePaths,
  isInitialised,
  NETWORK_KEY_FILE,
  saveIssuerState,
  saveNodeIdentity,
  saveRevocations,
  saveZoneRoster,
  writeConfigFile,
} from './home.js'
import { ensureHomeDir, writeFileAtomic } from './state-file.js'

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

/** Runs one `issue` input through the issuer driver (persist first) and returns the command reply. */
async function issueNow(driver: IssuerDriver, input: Extract<IssuerInput, { type: 'issue' }>) {
  const answers = await driver.run(input)
  const reply = answers.find(
    (e): e is Extract<IssuerEffect, { type: 'command-reply' }> => e.type === 'command-reply',
  )
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
  // The same driver a running CA uses: state and revocation list reach the disk before anything is issued.
  const driver = createIssuerDriver({
    issuer,
    save: state => saveIssuerState(home, state),
    publishRevocations: list => saveRevocations(home, list),
    publishRoster: roster => saveZoneRoster(home, roster),
    clock: { ...systemClock, nowMs: () => nowMs },
    log: silentLogger(),
  })
  const issue = async (key: SigningKey, name: string, zone: string, roles: Role[]) => {
    const result = await issueNow(driver, {
      type: 'issue',
      requestId: name,
      publicKey: key.publicKey,
      name,
      zone,
      roles,
    })
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
  await saveZoneRoster(home, issuer.zoneRoster().bytes)
  await writeFileAtomic(p.operatorKey, encodeKeyFile(operatorKey))
  await writeFileAtomic(p.operatorCert, operator.certificate.bytes)
  if (options.networkKey === true) {
    const psk = new Uint8Array(95)
    generateKey(psk)
    await writeFileAtomic(join(home, NETWORK_KEY_FILE), psk)
  }
  await writeConfigFile(home, {
    listen: [...(options.listen ?? DEFAULT_LISTEN)],
    announce: [...(options.announce ?? [])],
    ...(options.networkKey === true ? { pnetKeyFile: NETWORK_KEY_FILE } : {}),
  })
  // The node key last: its presence is what marks the home as initialised.
  await saveNodeIdentity(home, node, caKey.publicKey)
  return { fingerprint: fingerprintOf(caKey.publicKey), node, operator }
}
