import { CliError } from './errors.js'

export async function ticketCreate(..._args: unknown[]): Promise<number> {
  throw new CliError('not-implemented', 'ticket is not implemented yet')
}
