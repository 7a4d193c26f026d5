import { CliError } from './errors.js'

export async function join(..._args: unknown[]): Promise<number> {
  throw new CliError('not-implemented', 'join is not implemented yet')
}
