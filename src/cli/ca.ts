import { CliError } from './errors.js'

export async function caList(..._args: unknown[]): Promise<number> {
  throw new CliError('not-implemented', 'ca is not implemented yet')
}

export async function caDecide(..._args: unknown[]): Promise<number> {
  throw new CliError('not-implemented', 'ca is not implemented yet')
}

export async function caRevoke(..._args: unknown[]): Promise<number> {
  throw new CliError('not-implemented', 'ca is not implemented yet')
}
