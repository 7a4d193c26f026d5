/** Errors the CLI turns into one line on stderr and an exit code (docs/cli.md: 1 failed, 2 usage). */

/** The operation failed: exit 1. `message` is the whole line the user sees, after `mesh: `. */
export class CliError extends Error {
  override name = 'CliError'
  readonly code: string
  readonly exitCode: number = 1
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
