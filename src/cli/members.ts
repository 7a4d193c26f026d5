import { CliError } from './errors.js'

export async function members(..._args: unknown[]): Promise<number> {
  throw new CliError('not-implemented', 'members is not implemented yet')
}

export async function zones(..._args: unknown[]): Promise<number> {
  throw new CliError('not-implemented', 'members is not implemented yet')
}
