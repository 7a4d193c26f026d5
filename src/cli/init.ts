import { CliError } from './errors.js'

export async function init(..._args: unknown[]): Promise<number> {
  throw new CliError('not-implemented', 'init is not implemented yet')
}
