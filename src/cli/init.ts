/** `mesh init`: start a new mesh in --home. */

import { HomeError } from '../agent/home.js'
import { initHome } from '../agent/init.js'
import { formatFingerprint, shortFingerprint } from '../ca/fingerprint.js'
import { systemClock } from '../node/clock.js'
import { CliError } from './errors.js'
import { type CliIo, type GlobalOptions, printJson } from './io.js'

export interface InitOptions {
  readonly name: string
  readonly zone: string
  readonly listen?: string[]
  readonly announce?: string[]
  readonly networkKey?: boolean
}

export async function init(io: CliIo, globals: GlobalOptions, opts: InitOptions): Promise<number> {
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
