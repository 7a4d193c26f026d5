import { CliError } from './errors.js'

export async function agent(..._args: unknown[]): Promise<number> {
  throw new CliError('not-implemented', 'agent is not implemented yet')
}
