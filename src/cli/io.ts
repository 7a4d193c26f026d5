/** What a CLI command may touch: injected so tests run commands in process (STYLE.md §6). */

/** A text sink such as process.stdout. */
export interface Output {
  write(chunk: string): unknown
  readonly isTTY?: boolean
}

/** The process surroundings of one CLI run. */
export interface CliIo {
  readonly stdout: Output
  readonly stderr: Output
  readonly env: Readonly<Record<string, string | undefined>>
  /** The user's home directory, for the `~/.mesh` default. */
  readonly userHome: string
  /** Aborted on SIGINT/SIGTERM by bin/; long-running commands stop gracefully when it fires. */
  readonly signal?: AbortSignal
}

/** Options every command accepts. */
export interface GlobalOptions {
  readonly home: string
  readonly json: boolean
  readonly jsonl: boolean
}

/** Writes `value` as one JSON document on stdout (the `--json` contract). */
export function printJson(io: CliIo, value: unknown): void {
  io.stdout.write(`${JSON.stringify(value, null, 2)}\n`)
}

/** True when colour is allowed (a TTY and no NO_COLOR). */
export function useColour(io: CliIo, output: Output): boolean {
  return output.isTTY === true && (io.env.NO_COLOR === undefined || io.env.NO_COLOR === '')
}
