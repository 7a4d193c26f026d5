/** `mesh ticket create`: a one-line, single-use join ticket, made by the local agent's CA. */
import { isoTime, withAgent } from './agent-client.js'
import { type CliIo, type GlobalOptions, printJson } from './io.js'

export interface TicketOptions {
  readonly zone: string
  readonly role?: string[]
  readonly ttl: number
}

export async function ticketCreate(
  io: CliIo,
  globals: GlobalOptions,
  name: string,
  opts: TicketOptions,
): Promise<number> {
  const result = (await withAgent(globals, client =>
    client.call(
      'ticket.create',
      { name, zone: opts.zone, roles: opts.role ?? ['agent'], ttlMs: opts.ttl },
      { timeoutMs: 10_000 },
    ),
  )) as { ticket: string; expiresAtMs: number }
  if (globals.json) {
    printJson(io, { ticket: result.ticket, name, zone: opts.zone, expiresAt: isoTime(result.expiresAtMs) })
    return 0
  }
  // The ticket alone on stdout, so `mesh join --ticket "$(mesh ticket create …)"` works.
  io.stdout.write(`${result.ticket}\n`)
  io.stderr.write(
    `ticket for ${name} (zone ${opts.zone}) expires at ${isoTime(result.expiresAtMs)}; run on the new machine: mesh join --ticket TICKET\n`,
  )
  return 0
}
