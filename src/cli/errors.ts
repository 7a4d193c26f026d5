/** Errors the CLI turns into one line on stderr and an exit code (docs/cli.md: 1 failed, 2 usage). */

/**
 * Marks every CliError. The bundled CLI is two files (src/cli/node-commands.ts), each with its own copy
 * of these classes, so an error thrown by `mesh agent` is not an `instanceof` the copy that reports it;
 * the mark is shared (a registered symbol) and {@link isCliError} checks it.
 */
const CLI_ERROR: unique symbol = Symbol.for('mesh.cli-error')

/** The operation failed: exit 1. `message` is the whole line the user sees, after `mesh: `. */
export class CliError extends Error {
  override name = 'CliError'
  readonly code: string
  readonly exitCode: number = 1
  readonly [CLI_ERROR] = true
  constructor(code: string, message: string) {
    super(message)
    this.code = code
  }
}

/** The command line itself was wrong: exit 2. */
export class UsageError extends CliError {
  override name = 'UsageError'
  override readonly exitCode = 2
  constructor(message: string) {
    super('usage', message)
  }
}

/** True for a CliError (or UsageError) made by either half of the bundled CLI. */
export function isCliError(err: unknown): err is CliError {
  return err instanceof CliError || (err instanceof Error && CLI_ERROR in err && err[CLI_ERROR] === true)
}
