/** `mesh init`: start a new mesh in --home. */

import { join } from 'node:path'
import { HomeError } from '../agent/home.js'
import { initHome } from '../agent/init.js'
import { formatFingerprint, shortFingerprint } from '../ca/fingerprint.js'
import { CONTROL_SOCKET_NAME, CONTROL_SOCKET_PATH_BYTES_MAX } from '../control/protocol.js'
import { systemClock } from '../node/clock.js'
import { CliError, UsageError } from './errors.js'
import { type CliIo, type GlobalOptions, printJson } from './io.js'

export interface InitOptions {
  readonly name: string
  readonly zone: string
  readonly listen?: string[]
  readonly announce?: string[]
  readonly networkKey?: boolean
}

/**
 * Refuses a home whose control socket path (`<home>/agent.sock`, as the agent will pass it to listen)
 * is longer than a Unix socket path may be, so `mesh init` and `mesh join` fail at once instead of
 * creating a home in which `mesh agent` can never start. Used by init and join before they create anything.
 * @throws UsageError naming the path and the limit
 */
export function checkControlSocketPath(home: string): void {
  const socket = join(home, CONTROL_SOCKET_NAME)
  const bytes = Buffer.byteLength(socket)
  if (bytes > CONTROL_SOCKET_PATH_BYTES_MAX) {
    throw new UsageError(
      `--home ${home} is too long: its control socket ${socket} would be ${bytes} bytes, ` +
        `more than the limit of ${CONTROL_SOCKET_PATH_BYTES_MAX} bytes for a Unix socket path; choose a shorter --home`,
    )
  }
}

export async function init(io: CliIo, globals: GlobalOptions, opts: InitOptions): Promise<number> {
  checkControlSocketPath(globals.home)
  let result: Awaited<ReturnType<typeof initHome>>
  try {
    result = await initHome(
      globals.home,
      {
        name: opts.name,
        zone: opts.zone,
        listen: opts.listen,
        announce: opts.announce,
        networkKey: opts.networkKey,
      },
      systemClock.nowMs(),
    )
  } catch (err) {
    if (err instanceof HomeError) throw new CliError(err.code, err.message)
    const e = err as Error & { code?: string }
    throw new CliError(e.code ?? 'init-failed', `cannot create the mesh in ${globals.home}: ${e.message}`)
  }
  const fingerprint = formatFingerprint(result.fingerprint)
  if (globals.json) {
    printJson(io, {
      home: globals.home,
      name: opts.name,
      zone: opts.zone,
      fingerprint,
      operator: result.operator.certificate.certificate.name,
    })
    return 0
  }
  io.stdout.write(
    [
      `created mesh ${shortFingerprint(result.fingerprint)} in ${globals.home}`,
      `fingerprint: ${fingerprint}`,
      `this node: ${opts.name} (zone ${opts.zone}, roles ca, agent); operator: ${result.operator.certificate.certificate.name}`,
      `next: 'mesh agent --home ${globals.home}', then 'mesh ticket create NAME --zone ZONE' for each new machine`,
      ...(opts.networkKey === true
        ? [
            `network key: ${globals.home}/network.key; copy it to each new machine and join with --network-key FILE`,
          ]
        : []),
      '',
    ].join('\n'),
  )
  return 0
}
