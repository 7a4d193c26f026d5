/**
 * The agent's home directory (--home): what lives there, and loading and saving it. Creating a new
 * mesh in a home (`mesh init`) is in init.ts; the key types and key generation are the library's
 * (src/node/keys.ts).
 *
 *   config.toml          listen/announce/bootstrap and user settings (see src/node/config.ts)
 *   node.key, node.cert  this node's ed25519 key and its certificate
 *   mesh.ca              the CA public key (its hash is the mesh fingerprint)
 *   operator.key/.cert   the local admin's operator identity (on nodes made by `mesh init`)
 *   revocations          the newest revocation list seen
 *   roster               every certified member seen (zone-authority voters survive restarts)
 *   zone-roster          the newest CA-signed zone roster seen (the voters' roster; see src/ca/zone-roster.ts)
 *   authority-epochs     the highest zone-lease epoch this node granted per zone (saved before each grant)
 *   run-record           the requests this node started recently (at most once across restarts)
 *   jobs.log             the job store: requests run or issued here and their signed replies
 *                        (append-only, checksummed records; a torn tail is cut off at start)
 *   audit/               the audit log: signed, hash-chained records in rotated segments (docs/audit.md)
 *   ca/                  only on CA nodes: ca.key, ticket.secret, issuer.state
 *   agent.sock           the control socket while `mesh agent` runs
 *
 * Every file is written atomically with mode 0600 inside a 0700 directory. A missing or corrupt file is
 * a clear one-line error naming the file and what to do; nothing is ever silently regenerated. The
 * exceptions are the files the mesh gives back by itself: `revocations` and `zone-roster` (CA-signed;
 * the CA's own state and any peer's hello hold the current ones), `roster` (learnt again from the
 * members) and `authority-epochs` (recovered as if none were saved, docs/authority.md). A damaged copy
 * of one of them is reported ({@link HomeState.problems}: the agent logs each, naming the file) and the
 * agent starts without it. Loading refuses secret files that group or others may access, and a home
 * they may write to (see {@link checkHomeModes}).
 */
import { readdir, rm, rmdir, stat } from 'node:fs/promises'
import { join } from 'node:path'
import { parse as parseToml, stringify as stringifyToml, TomlError } from 'smol-toml'
import { decodeCertificate, verifyCertificate } from '../ca/certificate.js'
import { type Handover, holderSetProblem } from '../ca/handover.js'
import { decodeIssuerState, encodeIssuerState, type IssuerState } from '../ca/issuer-state.js'
import {
  decodeKeyFile,
  decodeTicketSecretFile,
  encodeKeyFile,
  encodeTicketSecretFile,
} from '../ca/key-file.js'
import { replicaMessageBytesMax } from '../ca/replication.js'
import { verifyRevocationList } from '../ca/revocation.js'
import type { SignedCertificate } from '../ca/types.js'
import { verifyZoneRoster, ZONE_ROSTER_BYTES_MAX } from '../ca/zone-roster.js'
import { decodeRunLedger } from '../gossip/run-ledger.js'
import { decodeEpochs, EPOCHS_BYTES_MAX } from '../node/authority-epochs.js'
import { decodeReplicaRecord } from '../node/ca-replication-driver.js'
import type { CaMaterial, Identity } from '../node/keys.js'
import { readRosterFile } from '../node/roster.js'
import { decodeCbor, encodeCbor } from '../wire/cbor.js'
import type { SigningKey } from '../wire/ed25519.js'
import { ensureHomeDir, readStateFile, type StateFileError, writeFileAtomic } from './state-file.js'

/** File name of the optional pnet network key inside a home. */
export const NETWORK_KEY_FILE = 'network.key'

/** A home-directory problem, with a message that says which file and what to do. */
export class HomeError extends Error {
  override name = 'HomeError'
  readonly code:
    | 'not-initialised'
    | 'already-initialised'
    | 'corrupt'
    | 'unreadable'
    | 'not-a-ca'
    | 'insecure-permissions'
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
    joinKey: join(home, 'join.key'),
    nodeCert: join(home, 'node.cert'),
    caPublicKey: join(home, 'mesh.ca'),
    operatorKey: join(home, 'operator.key'),
    operatorCert: join(home, 'operator.cert'),
    revocations: join(home, 'revocations'),
    roster: join(home, 'roster'),
    zoneRoster: join(home, 'zone-roster'),
    authorityEpochs: join(home, 'authority-epochs'),
    runRecord: join(home, 'run-record'),
    jobsLog: join(home, 'jobs.log'),
    auditDir: join(home, 'audit'),
    caDir: join(home, 'ca'),
    caKey: join(home, 'ca', 'ca.key'),
    ticketSecret: join(home, 'ca', 'ticket.secret'),
    issuerState: join(home, 'ca', 'issuer.state'),
    caHolders: join(home, 'ca', 'holders'),
    caReplica: join(home, 'ca', 'replica'),
    socket: join(home, 'agent.sock'),
  }
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
  /** The CA-signed zone roster saved by an earlier run, unverified (the node checks it against the CA key). */
  readonly zoneRoster?: Uint8Array
  /**
   * One line per file the mesh gives back (revocations, roster, zone-roster, authority-epochs) that
   * exists but is unusable: the file, what is wrong, and how it comes back. The agent logs each.
   */
  readonly problems: readonly string[]
  /** The epochs file (`authority-epochs`); empty bytes when it exists but cannot be read. */
  readonly authorityEpochs?: Uint8Array
  /** The run record saved by an earlier run, already checked to decode (see {@link loadRunRecord}). */
  readonly runRecord?: Uint8Array
  /** The parsed config.toml (validated later by resolveConfig). */
  readonly configFile: Record<string, unknown>
  /** The CA holders' peer ids (`ca/holders`, written by `mesh ca add-holder`); absent: a one-holder CA. */
  readonly caHolders?: readonly string[]
  /** The CA replica record (`ca/replica`) of a several-holder CA, already checked to decode. */
  readonly caReplica?: Uint8Array
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
  throw unreadable(read.error)
}

async function readOptional(path: string): Promise<Uint8Array | undefined> {
  const read = await readStateFile(path)
  if (read.ok) return read.bytes
  if (read.error.code === 'missing') return undefined
  throw unreadable(read.error)
}

/** A file that exists but cannot be read (not a regular file, no permission, too large), and the fix. */
function unreadable(error: StateFileError): HomeError {
  return new HomeError(
    'unreadable',
    `${error.message}; make it a regular file the agent's user can read, or restore it from a backup`,
  )
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

function decodeCert(
  bytes: Uint8Array,
  path: string,
  key: SigningKey,
  ca: { readonly publicKey: Uint8Array; readonly path: string },
): SignedCertificate {
  const decoded = decodeCertificate(bytes)
  if (!decoded.ok)
    throw new HomeError(
      'corrupt',
      `${path} is not a certificate (${decoded.detail}); restore it from a backup`,
    )
  const publicKey = decoded.signed.certificate.publicKey
  if (Buffer.compare(Buffer.from(publicKey), Buffer.from(key.publicKey)) !== 0) {
    throw new HomeError(
      'corrupt',
      `${path} does not belong to the key beside it; restore the key and certificate from a backup`,
    )
  }
  // Only the issuer and signature: the dates are the node's to act on (renewal), not a loading error.
  const signed = verifyCertificate(bytes, {
    caPublicKey: ca.publicKey,
    nowMs: decoded.signed.certificate.notBeforeMs,
  })
  if (!signed.ok) {
    throw new HomeError(
      'corrupt',
      `${path} was not issued by the mesh CA key in ${ca.path} (${signed.detail}); one of the two is damaged: ` +
        `restore it from a backup (${ca.path} is the same in every member's home)`,
    )
  }
  return decoded.signed
}

/**
 * Permission bits of `path` (following symlinks, as the readers do), or undefined when it cannot be
 * stat'ed (or, with `filesOnly`, is not a regular file).
 */
async function modeOf(path: string, options: { filesOnly?: boolean } = {}): Promise<number | undefined> {
  try {
    const info = await stat(path)
    if (options.filesOnly === true && !info.isFile()) return undefined
    return info.mode & 0o777
  } catch {
    // Missing or unreachable: the reader that follows reports it with the right message.
    return undefined
  }
}

function insecure(path: string, mode: number, why: string, fix: number): HomeError {
  return new HomeError(
    'insecure-permissions',
    `${path} has mode ${mode.toString(8).padStart(4, '0')}, ${why}; run 'chmod ${fix.toString(8)} ${path}'`,
  )
}

/**
 * Refuses a home whose secrets others could read or replace, as ssh refuses a private key readable by
 * others. Reasons:
 * - A secret file (node key, operator key, CA key, ticket secret, network key) that grants group or
 *   others any bit (mode & 0o077) is refused: read access leaks the key (another local user could
 *   impersonate the node, mint certificates or forge tickets), and write access lets them swap it. A
 *   warning would scroll by in a service log while the key stays exposed, so loading stops instead and
 *   says how to fix it; once leaked, the key should also be rotated, which only the operator can judge.
 * - A directory (the home, and ca/ when present) that group or others may write (mode & 0o022) is
 *   refused: whoever can write a directory can rename or replace any file in it, whatever that file's
 *   own mode, so the checks on the files would mean nothing.
 * - A directory that is merely readable or searchable by others (0755) is accepted: it only lets them
 *   list names and read files whose own modes allow it, and every secret is checked above. Refusing it
 *   would reject homes kept under a shared parent or made by hand with the default umask, for no gain.
 * Non-secret files (certificates, mesh.ca, revocations, roster, config.toml) are public or
 *   integrity-only data inside a directory others cannot write, so their modes are not checked.
 * Checked with the mode bits (stat) rather than by trying to read as someone else: root can read
 * anything, so a read test would prove nothing where the agent runs as root. Skipped on Windows, whose
 * mode bits do not describe its ACLs.
 * @throws HomeError `insecure-permissions`
 */
export async function checkHomeModes(home: string): Promise<void> {
  if (process.platform === 'win32') return
  const p = homePaths(home)
  for (const directory of [p.home, p.caDir]) {
    const mode = await modeOf(directory)
    if (mode !== undefined && (mode & 0o022) !== 0) {
      throw insecure(directory, mode, 'so group or others can replace the files in it', 0o700)
    }
  }
  for (const file of [p.nodeKey, p.operatorKey, p.caKey, p.ticketSecret, join(home, NETWORK_KEY_FILE)]) {
    await checkSecretFileMode(file)
  }
}

/**
 * Refuses a secret file that grants group or others any access (see {@link checkHomeModes}); a missing
 * file, or something that is not a regular file, passes (its reader reports it: chmod would not help).
 * For secrets kept outside the home, such as a `pnetKeyFile` that the configuration points elsewhere.
 * @throws HomeError `insecure-permissions`
 */
export async function checkSecretFileMode(path: string): Promise<void> {
  if (process.platform === 'win32') return
  const mode = await modeOf(path, { filesOnly: true })
  if (mode !== undefined && (mode & 0o077) !== 0) {
    throw insecure(path, mode, 'so group or others can access this secret', 0o600)
  }
}

/** Loads a home. @throws HomeError (`insecure-permissions`: see {@link checkHomeModes}) */
export async function loadHome(home: string): Promise<HomeState> {
  const p = homePaths(home)
  // Before anything is read: a secret that others can reach is not used at all. Temporary files are left
  // alone here: only the agent that holds the home removes them (see startAgent).
  await checkHomeModes(home)
  const nodeKey = decodeKey(await readRequired(p.nodeKey, 'node key', home), p.nodeKey)
  const caPublicKey = await readRequired(p.caPublicKey, 'mesh CA key', home)
  if (caPublicKey.byteLength !== 32) {
    throw new HomeError(
      'corrupt',
      `${p.caPublicKey} is not a 32-byte public key; restore it from a backup or copy it from another member's home (it is the same everywhere)`,
    )
  }
  const ca = { publicKey: caPublicKey, path: p.caPublicKey }
  const node = {
    key: nodeKey,
    certificate: decodeCert(await readRequired(p.nodeCert, 'certificate', home), p.nodeCert, nodeKey, ca),
  }

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
        ca,
      ),
    }
  }

  let caMaterial: CaMaterial | undefined
  let caHolders: string[] | undefined
  let caReplica: Uint8Array | undefined
  const caKeyBytes = await readOptional(p.caKey)
  if (caKeyBytes !== undefined) {
    const caKey = decodeKey(caKeyBytes, p.caKey)
    if (Buffer.compare(Buffer.from(caKey.publicKey), Buffer.from(caPublicKey)) !== 0) {
      throw new HomeError(
        'corrupt',
        `${p.caKey} is not the key of the mesh CA in ${p.caPublicKey}; restore both from a backup`,
      )
    }
    let ticketSecret: Uint8Array
    try {
      ticketSecret = decodeTicketSecretFile(await readRequired(p.ticketSecret, 'ticket secret', home))
    } catch (err) {
      if (err instanceof HomeError) throw err
      throw new HomeError(
        'corrupt',
        `${p.ticketSecret} is unusable (${(err as Error).message}); restore it from a backup (without it the CA cannot check the tickets it gave out)`,
      )
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
    caMaterial = { caKey, ticketSecret, issuerState }
    const holdersBytes = await readOptional(p.caHolders)
    if (holdersBytes !== undefined) {
      caHolders = decodeCaHolders(holdersBytes)
      if (caHolders === undefined)
        throw new HomeError(
          'corrupt',
          `${p.caHolders} is not a CA holder list; restore it from a backup or copy it from another CA holder's home (it is the same on every holder)`,
        )
    }
    const replicaRead = await readStateFile(p.caReplica, replicaMessageBytesMax() + 1024)
    if (replicaRead.ok) {
      if (decodeReplicaRecord(replicaRead.bytes) === undefined)
        throw new HomeError(
          'corrupt',
          `${p.caReplica} is unusable; restore it from a backup (it holds this CA holder's promises: started without it, a deposed issuer could commit through this holder)`,
        )
      caReplica = replicaRead.bytes
    } else if (replicaRead.error.code !== 'missing') throw unreadable(replicaRead.error)
  }

  // The files the mesh gives back: a damaged copy is named in `problems` and handed to the node as
  // before (it refuses what does not verify, counts it, and saves the good copy it gets instead).
  const problems: string[] = []
  const check = (path: string, problem: string | undefined, recovery: string): void => {
    if (problem !== undefined)
      problems.push(`${path} is unusable (${problem}); the agent starts without it: ${recovery}`)
  }
  const fromCa =
    "the CA's own state or the first peer's hello gives the current one back, and it is saved again"
  const revocations = await readOptional(p.revocations)
  if (revocations !== undefined)
    check(p.revocations, verdictProblem(verifyRevocationList(revocations, caPublicKey)), fromCa)
  // Used even when partly damaged: the node keeps the entries that decode.
  const roster = await readOptional(p.roster)
  if (roster !== undefined)
    check(p.roster, readRosterFile(roster).problem, 'the node learns the members again and saves it again')
  // Never fails the load: a peer's hello brings the roster anyway.
  const zoneRosterRead = await readStateFile(p.zoneRoster, ZONE_ROSTER_BYTES_MAX)
  const zoneRoster = zoneRosterRead.ok ? zoneRosterRead.bytes : undefined
  if (zoneRoster !== undefined)
    check(p.zoneRoster, verdictProblem(verifyZoneRoster(zoneRoster, caPublicKey)), fromCa)
  else if (!zoneRosterRead.ok && zoneRosterRead.error.code !== 'missing')
    check(p.zoneRoster, zoneRosterRead.error.message, fromCa)
  // Never fails the load either. Unreadable is passed on as empty bytes: the node then recovers its zones
  // as if it had saved none.
  const epochsRead = await readStateFile(p.authorityEpochs, EPOCHS_BYTES_MAX)
  const authorityEpochs = epochsRead.ok
    ? epochsRead.bytes
    : epochsRead.error.code === 'missing'
      ? undefined
      : new Uint8Array(0)
  const epochsProblem = epochsRead.ok
    ? decodeEpochs(epochsRead.bytes) === undefined
      ? 'not an epochs file'
      : undefined
    : epochsRead.error.code === 'missing'
      ? undefined
      : epochsRead.error.message
  check(
    p.authorityEpochs,
    epochsProblem,
    "this run recovers the zones' epochs as if it had saved none (docs/authority.md)",
  )
  const runRecord = await loadRunRecord(home)
  const configBytes = await readOptional(p.config)
  const configFile = configBytes === undefined ? {} : parseConfigFile(configBytes, p.config)
  return {
    home,
    node,
    caPublicKey,
    operator,
    ca: caMaterial,
    revocations,
    roster,
    zoneRoster,
    problems,
    authorityEpochs,
    runRecord,
    configFile,
    ...(caHolders === undefined ? {} : { caHolders }),
    ...(caReplica === undefined ? {} : { caReplica }),
  }
}

/** The detail of a refused CA-signed document, undefined when it verified. */
function verdictProblem(
  verdict: { ok: true } | { ok: false; reason: string; detail: string },
): string | undefined {
  return verdict.ok ? undefined : `${verdict.reason}: ${verdict.detail}`
}

/**
 * Reads the run record (`run-record`), undefined when there is none (a new home), and checks that it
 * decodes, so a damaged one stops the agent before it touches the network rather than later. Refused
 * rather than started empty: the record is what keeps a request whose `issuedAtMs` was ahead of our
 * clock from running a second time after a restart, and starting without it would silently drop that
 * guarantee for the next few minutes. Atomic writes mean only disk damage or a hand edit gets here.
 * @throws HomeError `corrupt` (saying how to start anyway), `unreadable`
 */
export async function loadRunRecord(home: string): Promise<Uint8Array | undefined> {
  const path = homePaths(home).runRecord
  const bytes = await readOptional(path)
  if (bytes === undefined) return undefined
  try {
    decodeRunLedger(bytes)
  } catch (err) {
    throw new HomeError(
      'corrupt',
      `${path} is unusable (${(err as Error).message}); it lists the requests this node ran recently so that none runs twice; ` +
        `to start anyway, move it aside (then a request it listed could run again if its bytes are replayed before the request expires, at most 5.5 minutes with the default requestLifetimeMsMax)`,
    )
  }
  return bytes
}

/** Saves the run record (the node calls it before an action starts; resolves once it is on disk). */
export async function saveRunRecord(home: string, bytes: Uint8Array): Promise<void> {
  await writeFileAtomic(homePaths(home).runRecord, bytes)
}

/**
 * Parses the bytes of `config.toml` (read from `path`). A syntax error names the place, as compilers do:
 * `PATH:LINE:COLUMN: invalid TOML: what` (smol-toml's TomlError carries the line and column; its message
 * adds a code excerpt over several lines, which the one-line CLI error leaves out).
 * @throws HomeError `corrupt`
 */
export function parseConfigFile(bytes: Uint8Array, path: string): Record<string, unknown> {
  const text = Buffer.from(bytes).toString('utf8')
  try {
    return parseToml(text) as Record<string, unknown>
  } catch (err) {
    if (err instanceof TomlError) {
      const what = (err.message.split('\n')[0] ?? '').replace(/^Invalid TOML document: /, '')
      throw new HomeError('corrupt', `${path}:${err.line}:${err.column}: invalid TOML: ${what}`)
    }
    throw new HomeError('corrupt', `${path} is not valid TOML: ${(err as Error).message.split('\n')[0]}`)
  }
}

/** Writes `config.toml` with the given top-level values (used by init and join). */
export async function writeConfigFile(home: string, values: Record<string, unknown>): Promise<void> {
  const text = `# mesh node configuration; see 'mesh --help' and docs/cli.md of the mesh repository.\n${stringifyToml(values)}\n`
  await writeFileAtomic(homePaths(home).config, new TextEncoder().encode(text))
}

/**
 * Saves a node identity and the CA public key, the node key last: its presence marks the home as
 * initialised ({@link isInitialised}), so a crash before it leaves a home that `mesh init` or `mesh join`
 * simply writes again, never a key without its certificate (which `mesh agent` and a new join would
 * both refuse).
 */
export async function saveNodeIdentity(
  home: string,
  identity: Identity,
  caPublicKey: Uint8Array,
): Promise<void> {
  const p = homePaths(home)
  await ensureHomeDir(home)
  await writeFileAtomic(p.caPublicKey, caPublicKey)
  await writeFileAtomic(p.nodeCert, identity.certificate.bytes)
  await writeFileAtomic(p.nodeKey, encodeKeyFile(identity.key))
  // The join that made this identity is over (see pendingJoinKey).
  await rm(p.joinKey, { force: true })
}

/**
 * The key of a join in progress. A join's key is written to `join.key` (mode 0600, atomically) before the
 * first request leaves, and `mesh join` uses that file's key when it finds one: the CA marks a ticket used
 * the moment it signs, so a join interrupted after that (Ctrl-C, a lost answer, a crash) that retried
 * with a fresh key would be told "ticket was already used"; retried with the same key, the CA hands the
 * same certificate out again. `saveNodeIdentity` removes the file once the node key is in place.
 * A corrupt file is an error naming it (the join cannot know whether the CA already signed its key).
 */
export async function pendingJoinKey(
  home: string,
  generate: () => SigningKey,
): Promise<{ readonly key: SigningKey; readonly resumed: boolean }> {
  const path = homePaths(home).joinKey
  const bytes = await readOptional(path)
  if (bytes !== undefined) return { key: decodeKey(bytes, path), resumed: true }
  const key = generate()
  await ensureHomeDir(home)
  await writeFileAtomic(path, encodeKeyFile(key))
  return { key, resumed: false }
}

/**
 * Ends a join the CA certainly did not sign (see pendingJoinKey): removes `join.key`, and the home
 * itself when the join created it and nothing else is in it, so a failed join leaves nothing behind.
 */
export async function discardPendingJoin(home: string, homeExisted: boolean): Promise<void> {
  await rm(homePaths(home).joinKey, { force: true })
  if (homeExisted) return
  const entries = await readdir(home).catch(() => undefined)
  if (entries?.length === 0) await rmdir(home).catch(() => {})
}

/** Replaces the node certificate (renewal). */
export async function saveNodeCertificate(home: string, certificate: SignedCertificate): Promise<void> {
  await writeFileAtomic(homePaths(home).nodeCert, certificate.bytes)
}

/** Saves the newest revocation list. */
export async function saveRevocations(home: string, bytes: Uint8Array): Promise<void> {
  await writeFileAtomic(homePaths(home).revocations, bytes)
}

/** Saves the newest CA-signed zone roster. */
export async function saveZoneRoster(home: string, bytes: Uint8Array): Promise<void> {
  await writeFileAtomic(homePaths(home).zoneRoster, bytes)
}

/** Saves the zone-lease epochs this node granted (durable when it resolves). */
export async function saveAuthorityEpochs(home: string, bytes: Uint8Array): Promise<void> {
  await writeFileAtomic(homePaths(home).authorityEpochs, bytes)
}

/** Saves the zone-authority roster. */
export async function saveRoster(home: string, bytes: Uint8Array): Promise<void> {
  await writeFileAtomic(homePaths(home).roster, bytes)
}

/** Encodes the CA holder list (`ca/holders`): `{ v: 1, holders: [peer id…] }`. */
export function encodeCaHolders(holders: readonly string[]): Uint8Array {
  return encodeCbor({ v: 1, holders: [...holders] })
}

/** Decodes a CA holder list; undefined when it is not one (2..7 distinct peer ids). */
export function decodeCaHolders(bytes: Uint8Array): string[] | undefined {
  try {
    const value = decodeCbor(bytes, 64 * 1024) as { v?: unknown; holders?: unknown }
    const holders = value?.holders
    if (value?.v !== 1 || !Array.isArray(holders)) return undefined
    return holderSetProblem(holders) === undefined ? (holders as string[]) : undefined
  } catch {
    return undefined
  }
}

/** Saves the CA holder list (`mesh ca add-holder`). */
export async function saveCaHolders(home: string, holders: readonly string[]): Promise<void> {
  await writeFileAtomic(homePaths(home).caHolders, encodeCaHolders(holders))
}

/** Saves the CA replica record of a several-holder CA (durable when it resolves). */
export async function saveCaReplica(home: string, bytes: Uint8Array): Promise<void> {
  await writeFileAtomic(homePaths(home).caReplica, bytes)
}

/**
 * Stores a CA handover (this node became a CA holder, or was told a new holder set): ticket secret,
 * state and holder list first, the CA key last, since its presence is what makes the home a CA's
 * (loadHome then requires the others). Every file is written atomically with mode 0600.
 */
export async function saveCaHandover(home: string, handover: Handover): Promise<void> {
  const p = homePaths(home)
  await ensureHomeDir(p.caDir)
  await writeFileAtomic(p.ticketSecret, encodeTicketSecretFile(handover.ticketSecret))
  await writeFileAtomic(p.issuerState, handover.issuerStateBytes)
  await writeFileAtomic(p.caHolders, encodeCaHolders(handover.holders))
  await writeFileAtomic(p.caKey, encodeKeyFile(handover.caKey))
}

/** Saves the CA's issuer state. */
export async function saveIssuerState(home: string, state: IssuerState): Promise<void> {
  await writeFileAtomic(homePaths(home).issuerState, encodeIssuerState(state))
}
