import { CliError } from './errors.js'

export async function exec(..._args: unknown[]): Promise<number> {
  throw new CliError('not-implemented', 'exec is not implemented yet')
}
