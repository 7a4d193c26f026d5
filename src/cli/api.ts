/**
 * `mesh api token`: print the HTTP API's bearer token (docs/api.md), creating `api.token` in --home if
 * it does not exist yet. Works without a running agent; an agent reads the same file when it starts.
 */
import { apiTokenPath, ensureApiToken } from '../agent/api/token.js'
import { CliError } from './errors.js'
import { type CliIo, type GlobalOptions, printJson } from './io.js'

export async function apiToken(io: CliIo, globals: GlobalOptions): Promise<number> {
  let token: string
  try {
    token = await ensureApiToken(globals.home)
  } catch (err) {
    const e = err as Error & { code?: string }
    if (e.name === 'StateFileError') throw new CliError(e.code ?? 'failed', e.message)
    throw err
  }
  if (globals.json) printJson(io, { token, path: apiTokenPath(globals.home) })
  else io.stdout.write(`${token}\n`)
  return 0
}
