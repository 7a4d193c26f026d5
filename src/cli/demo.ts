import { CliError } from './errors.js'

export async function demo(..._args: unknown[]): Promise<number> {
  throw new CliError('not-implemented', 'demo is not implemented yet')
}
