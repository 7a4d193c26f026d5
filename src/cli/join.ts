/**
 * `mesh join`: makes --home a member of a mesh (docs/cli.md). With a ticket the certificate comes at once;
 * without one (`--bootstrap --fingerprint --name --zone`) the request waits for `mesh ca sign` and
 * this command polls until it is signed, rejected or --timeout passes. The home is written only once
 * the certificate is in hand, node key last (its presence marks the home as initialised); before that
 * only `join.key`, the key of the join in progress, so a retry after an interruption uses the same key
 * and the CA hands it the certificate it signed instead of refusing the used ticket (home.ts).
 *
 * A join that reaches no bootstrap address at all gives up after 20 s (JOIN_REACH_TIMEOUT_MS_DEFAULT;
 * with a ticket --timeout sets it, without one --timeout is the approval wait and only shortens it).
 * On a TTY, or with --verbose, every attempt prints a progress line to stderr.
 */

import { existsSync } from 'node:fs'
import { join as joinPath } from 'node:path'
import {
  discardPendingJoin,
  isInitialised,
  NETWORK_KEY_FILE,
  pendingJoinKey,
  saveNodeIdentity,
  saveRevocations,
  writeConfigFile,
} from '../agent/home.js'
import { ensureHomeDir, readStateFile, writeFileAtomic } from '../agent/state-file.js'
import { FingerprintError, fingerprintOf, formatFingerprint, parseFingerprint } from '../ca/fingerprint.js'
import { systemClock } from '../node/clock.js'
import { DEFAULT_LISTEN } from '../node/config.js'
import { checkJoinInput, JoinError, type JoinProgress, requestCertificate } from '../node/enrolment/joiner.js'
import { generateSigningKey } from '../node/keys.js'
import { CliError, UsageError } from './errors.js'
import { checkControlSocketPath } from './init.js'
import { type CliIo, type GlobalOptions, printJson } from './io.js'

/** Flags of `mesh join` as src/cli.ts parses them. */
export interface JoinFlags {
  readonly ticket?: string
  readonly bootstrap?: readonly string[]
  readonly fingerprint?: string
  readonly name?: string
  readonly zone?: string
  readonly listen?: readonly string[]
  readonly announce?: readonly string[]
  /** --timeout in ms. */
  readonly timeout?: number
  /** --network-key: the mesh's pnet key file, copied into the home. */
  readonly networkKey?: string
  /** Pause between polls while pending, in ms (tests; not a CLI flag). */
  readonly pollIntervalMs?: number
  /** --verbose: progress lines on stderr even when it is not a TTY. */
  readonly verbose?: boolean
}

/** Seconds (or minutes, from 2 min) rounded up, for progress lines. */
function roughly(ms: number): string {
  const seconds = Math.ceil(ms / 1000)
  return seconds < 120 ? `${seconds} s` : `${Math.ceil(seconds / 60)} min`
}

/** One progress line: `trying ADDR … connection refused; retrying in 5 s (12 s left)`. */
export function formatJoinProgress(progress: JoinProgress): string {
  const next =
    progress.retryInMs === null
      ? 'giving up'
      : progress.retryInMs === 0
        ? 'trying the next address'
        : `${progress.state === 'pending' ? 'asking again' : 'retrying'} in ${roughly(progress.retryInMs)}`
  return `trying ${progress.address} … ${progress.detail}; ${next} (${roughly(progress.leftMs)} left)`
}

/**
 * Runs `mesh join`. Resolves to the exit code (0).
 * @throws UsageError for conflicting or missing flags, an unparsable ticket or address, or a --home too
 *   long for the control socket; CliError for a failed join or an occupied home
 */
export async function join(io: CliIo, globals: GlobalOptions, flags: JoinFlags): Promise<number> {
  const withTicket = flags.ticket !== undefined
  const manual = {
    '--bootstrap': flags.bootstrap !== undefined && flags.bootstrap.length > 0 ? flags.bootstrap : undefined,
    '--fingerprint': flags.fingerprint,
    '--name': flags.name,
    '--zone': flags.zone,
  }
  const given = Object.entries(manual).filter(([, value]) => value !== undefined)
  if (withTicket && given.length > 0) {
    throw new UsageError(`use either --ticket or --bootstrap/--fingerprint/--name/--zone, not both`)
  }
  if (!withTicket && given.length === 0) {
    throw new UsageError('pass --ticket TICKET, or --bootstrap, --fingerprint, --name and --zone')
  }
  let fingerprint: Uint8Array | undefined
  if (!withTicket) {
    const missing = Object.entries(manual)
      .filter(([, value]) => value === undefined)
      .map(([flag]) => flag)
    if (missing.length > 0)
      throw new UsageError(
        `without a ticket, ${missing.join(', ')} ${missing.length === 1 ? 'is' : 'are'} needed`,
      )
    try {
      fingerprint = parseFingerprint(flags.fingerprint ?? '')
    } catch (err) {
      if (err instanceof FingerprintError) throw new UsageError(`--fingerprint: ${err.message}`)
      throw err
    }
  }
  checkControlSocketPath(globals.home)
  if (await isInitialised(globals.home)) {
    throw new CliError(
      'already-initialised',
      `${globals.home} already holds a node; choose another --home or remove it first`,
    )
  }

  let pnetKey: Uint8Array | undefined
  if (flags.networkKey !== undefined) {
    const read = await readStateFile(flags.networkKey, 1024)
    if (!read.ok)
      throw new CliError(
        'network-key',
        `cannot read the network key ${flags.networkKey}: ${read.error.message}`,
      )
    pnetKey = read.bytes
  }
  const target = withTicket
    ? { ticket: flags.ticket }
    : { bootstrap: flags.bootstrap, fingerprint, name: flags.name, zone: flags.zone }
  try {
    // Refused before anything is written: an unusable ticket or address is a bad command line.
    checkJoinInput(target)
  } catch (err) {
    if (err instanceof JoinError) throw new UsageError(err.message)
    throw err
  }
  // Kept in the home until the join ends, so a join that was interrupted after the CA signed retries
  // with the same key and gets its certificate instead of "ticket was already used".
  const homeExisted = existsSync(globals.home)
  const { key, resumed } = await pendingJoinKey(globals.home, generateSigningKey)
  const startedAtMs = systemClock.nowMs()
  const showProgress = io.stderr.isTTY === true || flags.verbose === true
  if (resumed && showProgress) io.stderr.write(`resuming an earlier join of ${globals.home} with its key\n`)
  let result: Awaited<ReturnType<typeof requestCertificate>>
  try {
    result = await requestCertificate({
      key,
      ...target,
      ...(flags.timeout !== undefined ? { timeoutMs: flags.timeout } : {}),
      // With a ticket the certificate comes at once, so --timeout is how long to try to reach the mesh.
      ...(flags.timeout !== undefined && withTicket ? { reachTimeoutMs: flags.timeout } : {}),
      ...(flags.pollIntervalMs !== undefined ? { pollIntervalMs: flags.pollIntervalMs } : {}),
      ...(io.signal !== undefined ? { signal: io.signal } : {}),
      ...(pnetKey !== undefined ? { pnetKey } : {}),
      ...(showProgress
        ? { onProgress: (progress: JoinProgress) => io.stderr.write(`${formatJoinProgress(progress)}\n`) }
        : {}),
      onPending: (id, keyFingerprint) => {
        // Keep stdout a single JSON document under --json.
        const out = globals.json ? io.stderr : io.stdout
        out.write(
          `waiting for approval: on a CA node run 'mesh ca sign ${id}' (request ${id}, key fingerprint ${keyFingerprint})\n`,
        )
      },
    })
  } catch (err) {
    // The CA certainly did not sign this key: the join leaves nothing behind (a home it made is removed).
    if (err instanceof JoinError && err.settled) await discardPendingJoin(globals.home, homeExisted)
    // Unusable input (an unparsable ticket, a bad bootstrap address) is a bad value on the command
    // line: exit 2. A well-formed request the mesh refuses, or a network failure, is exit 1.
    if (err instanceof JoinError) {
      if (err.code === 'invalid-input') throw new UsageError(err.message)
      throw new CliError(err.code, err.message)
    }
    throw err
  }

  await ensureHomeDir(globals.home)
  await saveRevocations(globals.home, result.revocationList)
  if (pnetKey !== undefined) await writeFileAtomic(joinPath(globals.home, NETWORK_KEY_FILE), pnetKey)
  await writeConfigFile(globals.home, {
    listen: [...(flags.listen ?? DEFAULT_LISTEN)],
    announce: [...(flags.announce ?? [])],
    bootstrap: [...result.bootstrap],
    ...(pnetKey !== undefined ? { pnetKeyFile: NETWORK_KEY_FILE } : {}),
  })
  await saveNodeIdentity(globals.home, { key, certificate: result.certificate }, result.caPublicKey)
  const elapsedMs = systemClock.nowMs() - startedAtMs

  const certificate = result.certificate.certificate
  const meshFingerprint = formatFingerprint(fingerprintOf(result.caPublicKey))
  if (globals.json) {
    printJson(io, {
      name: certificate.name,
      zone: certificate.zone,
      roles: certificate.roles,
      peerId: certificate.peerId,
      serial: certificate.serial,
      notAfter: new Date(certificate.notAfterMs).toISOString(),
      fingerprint: meshFingerprint,
      bootstrap: result.bootstrap,
      home: globals.home,
      elapsedMs,
    })
  } else {
    io.stdout.write(
      `joined mesh ${meshFingerprint} as ${certificate.name} (zone ${certificate.zone}, roles ${certificate.roles.join(',')}); ` +
        `certificate valid until ${new Date(certificate.notAfterMs).toISOString()}. Start it with 'mesh agent'.\n`,
    )
  }
  return 0
}
