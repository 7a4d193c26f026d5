/** Talking to the local agent over its control socket (no libp2p is loaded on this path). */
import { type ControlClient, ControlError, connectControl, controlSocketPath } from '../control/index.js'
import { CliError } from './errors.js'
import type { GlobalOptions } from './io.js'

/** Connects to the agent of `globals.home`, runs `fn`, closes; control errors become one-line CLI errors. */
export async function withAgent<T>(
  globals: GlobalOptions,
  fn: (client: ControlClient) => Promise<T>,
): Promise<T> {
  let client: ControlClient | undefined
  try {
    client = await connectControl(controlSocketPath(globals.home))
    return await fn(client)
  } catch (err) {
    if (err instanceof ControlError) throw new CliError(err.code, err.message)
    throw err
  } finally {
    client?.close()
  }
}

/** Formats ms since the epoch as ISO-8601 UTC without milliseconds. */
export function isoTime(ms: number): string {
  return new Date(ms).toISOString().replace(/\.\d{3}Z$/, 'Z')
}

/** Left-aligned text table with two spaces between columns. */
export function table(rows: readonly (readonly string[])[]): string {
  const widths: number[] = []
  for (const row of rows) {
    row.forEach((cell, i) => {
      widths[i] = Math.max(widths[i] ?? 0, cell.length)
    })
  }
  // An empty last column would leave the padding of the one before it at the end of the line.
  return rows
    .map(row =>
      row
        .map((cell, i) => (i === row.length - 1 ? cell : cell.padEnd(widths[i] ?? 0)))
        .join('  ')
        .trimEnd(),
    )
    .join('\n')
}
