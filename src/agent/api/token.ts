/**
 * The HTTP API's bearer token: `api.token` in the home, mode 0600, 32 random bytes written as
 * base64url (43 characters). `mesh api token` and the agent both call {@link ensureApiToken}; whichever
 * comes first creates the file and the other reads it. Creation never replaces a file: the bytes go to
 * a temporary file (the home's temp-file name shape, so a crash leftover is cleaned at the next start),
 * are flushed, and are then hard-linked to the final name, which fails if the name exists. Two creators
 * racing thus agree on one token, and a token an agent has loaded is never silently swapped.
 *
 * To rotate the token, delete the file and restart the agent. Depends on `node:` built-ins and
 * state-file.ts only, so the CLI's small first bundle can carry it.
 */
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto'
import { link, lstat, open, unlink } from 'node:fs/promises'
import { dirname, join } from 'node:path'
import { readStateFile, STATE_FILE_MODE, StateFileError } from '../state-file.js'

/** File name of the token inside the home. */
export const API_TOKEN_FILE = 'api.token'
/** Random bytes in a token. */
export const API_TOKEN_BYTES = 32
/** The token's text form: base64url without padding. */
export const API_TOKEN_PATTERN = /^[A-Za-z0-9_-]{43}$/
/** Longest token file read (a token line and a newline, with room for stray whitespace). */
const TOKEN_FILE_BYTES_MAX = 256

/** The token file's path for a home. */
export function apiTokenPath(home: string): string {
  return join(home, API_TOKEN_FILE)
}

/**
 * The home's token, created if the file does not exist yet.
 * @throws StateFileError `missing` when the home directory does not exist, `unreadable` when the file
 *   is unreadable, not a token, or readable by others than its owner; `unwritable` when it cannot be
 *   created.
 */
export async function ensureApiToken(home: string): Promise<string> {
  const path = apiTokenPath(home)
  const existing = await readApiToken(path)
  if (existing !== undefined) return existing
  await checkDirectory(home)
  const token = randomBytes(API_TOKEN_BYTES).toString('base64url')
  const created = await createExclusive(path, `${token}\n`)
  // Another process created it between our read and our link: theirs wins.
  if (!created) {
    const theirs = await readApiToken(path)
    if (theirs === undefined) throw new StateFileError('unreadable', path, `${path} vanished while read`)
    return theirs
  }
  return token
}

/** The token in `path`, or undefined when there is no such file. */
async function readApiToken(path: string): Promise<string | undefined> {
  const read = await readStateFile(path, TOKEN_FILE_BYTES_MAX)
  if (!read.ok) {
    if (read.error.code === 'missing') return undefined
    throw read.error
  }
  const info = await lstat(path)
  if ((info.mode & 0o077) !== 0) {
    throw new StateFileError(
      'unreadable',
      path,
      `${path} is readable by others (mode ${(info.mode & 0o777).toString(8)}); run 'chmod 600 ${path}' or delete it to get a new token`,
    )
  }
  const text = new TextDecoder().decode(read.bytes).trim()
  if (!API_TOKEN_PATTERN.test(text)) {
    throw new StateFileError(
      'unreadable',
      path,
      `${path} does not hold an API token; delete it to get a new one`,
    )
  }
  return text
}

async function checkDirectory(home: string): Promise<void> {
  try {
    if ((await lstat(home)).isDirectory()) return
  } catch {
    // Reported below.
  }
  throw new StateFileError(
    'missing',
    home,
    `${home} is not a mesh home; run 'mesh init' or 'mesh join' first, or pass --home`,
  )
}

/** Writes `text` to `path` only if nothing is there; false when something is. Durable when true. */
async function createExclusive(path: string, text: string): Promise<boolean> {
  const directory = dirname(path)
  const temp = join(directory, `.${API_TOKEN_FILE}.${randomBytes(6).toString('hex')}.mesh-tmp`)
  try {
    const handle = await open(temp, 'wx', STATE_FILE_MODE)
    try {
      await handle.chmod(STATE_FILE_MODE) // the open mode is filtered by the umask
      await handle.writeFile(text)
      await handle.sync()
    } finally {
      await handle.close()
    }
    try {
      await link(temp, path)
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'EEXIST') return false
      throw err
    }
    const dir = await open(directory, 'r')
    try {
      await dir.sync()
    } finally {
      await dir.close()
    }
    return true
  } catch (err) {
    throw new StateFileError('unwritable', path, `cannot write ${path}: ${(err as Error).message}`)
  } finally {
    await unlink(temp).catch(() => undefined)
  }
}

/**
 * A constant-time check of a presented token against the expected one (both hashed first, so their
 * lengths do not leak either).
 */
export function tokenMatches(presented: string, expected: string): boolean {
  const a = createHash('sha256').update(presented).digest()
  const b = createHash('sha256').update(expected).digest()
  return timingSafeEqual(a, b)
}
