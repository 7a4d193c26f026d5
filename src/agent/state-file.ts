/**
 * Crash-safe files in the node's home directory (keys, certificates, the CA state).
 *
 * A write never leaves a half-written target: the bytes go to a temporary file in the same directory,
 * which is flushed to disk, renamed over the target (rename is atomic within one file system), and then
 * the directory itself is flushed so the rename survives a power cut. A reader therefore sees either the
 * complete old version or the complete new one. A crash between the two steps leaves a temporary file
 * behind; its name has a fixed shape ({@link isStateTempFileName}) so it is never taken for state, and
 * {@link cleanStaleTempFiles} removes it when the agent starts.
 *
 * This module imports only `node:` built-ins and uses only erasable TypeScript, so a test fixture can run
 * it directly in a child process.
 */
import { randomBytes } from 'node:crypto'
import { constants } from 'node:fs'
import { chmod, mkdir, open, readdir, rename, stat, unlink } from 'node:fs/promises'
import { basename, dirname, join, resolve } from 'node:path'

/** Mode of every file the agent writes in its home: readable and writable by the owner only. */
export const STATE_FILE_MODE = 0o600
/** Mode of the home directory: the owner only. */
export const HOME_DIRECTORY_MODE = 0o700
/** Largest state file {@link readStateFile} reads by default (bytes); state files are small. */
export const STATE_FILE_BYTES_MAX = 16 * 1024 * 1024

/** Suffix of temporary files; together with the leading dot and the random tag it makes the name shape. */
const TEMP_SUFFIX = '.mesh-tmp'
const TEMP_NAME = /^\..+\.[0-9a-f]{12}\.mesh-tmp$/
/**
 * Temporary files (absolute paths) of the writes this process has in progress. {@link cleanStaleTempFiles}
 * leaves them alone: the agent starts writing (its node adopts the home's documents) before it holds
 * the home and cleans, and removing such a file would make its rename fail.
 */
const writesInProgress = new Set<string>()

/** Why a state file could not be read or written. A closed set; callers switch on it. */
export type StateFileErrorCode = 'missing' | 'unreadable' | 'too-large' | 'unwritable' | 'not-a-directory'

/** An operating error on a state file: the path and a message that says what to do. */
export class StateFileError extends Error {
  override name = 'StateFileError'
  readonly code: StateFileErrorCode
  readonly path: string
  constructor(code: StateFileErrorCode, path: string, message: string) {
    super(message)
    this.code = code
    this.path = path
  }
}

/** Result of {@link readStateFile}: never throws. */
export type StateFileRead =
  | { readonly ok: true; readonly bytes: Uint8Array }
  | { readonly ok: false; readonly error: StateFileError }

/** Options of {@link writeFileAtomic}. */
export interface WriteFileAtomicOptions {
  /** Permission bits of the written file; default {@link STATE_FILE_MODE} (0600). */
  readonly mode?: number
}

/** True when `name` (a base name, not a path) is a temporary file left by {@link writeFileAtomic}. */
export function isStateTempFileName(name: string): boolean {
  return TEMP_NAME.test(name)
}

/**
 * Creates the home directory (and its parents) if needed and sets its mode to 0700, also when it already
 * existed with looser bits.
 *
 * The directories are created one at a time from the outermost missing one inwards, each with a single
 * non-recursive mkdir, so the work is bounded by the number of path components. Node's
 * `mkdir(…, { recursive: true })` is not used: on a path it cannot create under a pseudo file system
 * such as /proc (mkdir says ENOENT, the parent exists) it retries forever and never settles.
 * @throws StateFileError `not-a-directory` when the path or one of its parents exists and is not a
 *   directory, `unwritable` when it cannot be created or its mode cannot be set.
 */
export async function ensureHomeDir(path: string): Promise<void> {
  const target = resolve(path)
  const chain: string[] = []
  for (let at = target; ; at = dirname(at)) {
    chain.unshift(at)
    if (dirname(at) === at) break
  }
  for (const directory of chain) await ensureOneDirectory(path, directory)
  try {
    // mkdir's mode is filtered by the umask and ignored for existing directories; set it explicitly.
    await chmod(target, HOME_DIRECTORY_MODE)
  } catch (err) {
    throw new StateFileError('unwritable', path, `cannot set mode 0700 on ${path}: ${(err as Error).message}`)
  }
}

/** Makes sure `directory` (one component of the home `home`) is a directory, creating it if missing. */
async function ensureOneDirectory(home: string, directory: string): Promise<void> {
  const notADirectory = (): StateFileError =>
    new StateFileError(
      'not-a-directory',
      home,
      directory === resolve(home)
        ? `${home} exists and is not a directory`
        : `cannot create ${home}: ${directory} exists and is not a directory`,
    )
  const unwritable = (err: unknown): StateFileError =>
    new StateFileError('unwritable', home, `cannot create ${home}: ${(err as Error).message}`)
  const existing = await statOrUndefined(directory)
  if (existing === 'not-a-directory') throw notADirectory()
  if (existing instanceof Error) throw unwritable(existing)
  if (existing !== undefined) {
    if (!existing.isDirectory()) throw notADirectory()
    return
  }
  try {
    await mkdir(directory, { mode: HOME_DIRECTORY_MODE })
    // The new entry must reach the disk too, or a power cut could take the directory and every file
    // written (and synced) inside it since. Best effort: a parent we may not open for reading is left.
    await syncDirectory(dirname(directory)).catch(() => undefined)
    return
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code
    if (code === 'ENOTDIR') throw notADirectory()
    if (code !== 'EEXIST') throw unwritable(err)
  }
  // EEXIST: created by someone else since the stat; look once more, and do not retry.
  const raced = await statOrUndefined(directory)
  if (raced === undefined || raced instanceof Error)
    throw unwritable(raced ?? new Error(`${directory} vanished`))
  if (raced === 'not-a-directory' || !raced.isDirectory()) throw notADirectory()
}

/** stat that says `undefined` for a missing path and `'not-a-directory'` for ENOTDIR instead of throwing. */
async function statOrUndefined(
  path: string,
): Promise<Awaited<ReturnType<typeof stat>> | undefined | 'not-a-directory' | Error> {
  try {
    return await stat(path)
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code
    if (code === 'ENOENT') return undefined
    if (code === 'ENOTDIR') return 'not-a-directory'
    return err as Error
  }
}

/**
 * The last write this process started to each target (absolute path). Writes to one file land in the
 * order they were called: two in flight could otherwise finish out of order (a big one started first, a
 * small one after) and leave the older content on disk, which a restart would then load; the node's
 * savers fire and forget (a revocation list adopted while the last one is still being saved).
 */
const lastWrites = new Map<string, Promise<void>>()

/**
 * Replaces the file at `path` with `bytes` so that a crash at any moment leaves either the old or the new
 * content (see the module note). Writes to the same file from this process land in call order. The
 * caller keeps ownership of `bytes`; they are not retained (a write that waits for an earlier one to the
 * same file copies them).
 * @throws StateFileError `unwritable` (the target is then unchanged and no temporary file is left,
 *   unless the process dies first).
 */
export async function writeFileAtomic(
  path: string,
  bytes: Uint8Array | string,
  options: WriteFileAtomicOptions = {},
): Promise<void> {
  const key = resolve(path)
  const previous = lastWrites.get(key)
  const content = previous === undefined || typeof bytes === 'string' ? bytes : bytes.slice()
  const write = (previous ?? Promise.resolve())
    .catch(() => undefined)
    .then(() => writeOnce(path, content, options))
  lastWrites.set(key, write)
  try {
    await write
  } finally {
    if (lastWrites.get(key) === write) lastWrites.delete(key)
  }
}

async function writeOnce(
  path: string,
  bytes: Uint8Array | string,
  options: WriteFileAtomicOptions,
): Promise<void> {
  const mode = options.mode ?? STATE_FILE_MODE
  const directory = dirname(path)
  const temp = join(directory, `.${basename(path)}.${randomBytes(6).toString('hex')}${TEMP_SUFFIX}`)
  let created = false
  writesInProgress.add(resolve(temp))
  try {
    // 'wx' refuses to follow or reuse an existing name, so a planted symlink cannot redirect the write.
    const handle = await open(temp, 'wx', mode)
    created = true
    try {
      await handle.chmod(mode) // the open mode is filtered by the umask
      await handle.writeFile(bytes)
      await handle.sync()
    } finally {
      await handle.close()
    }
    await rename(temp, path)
    created = false
    await syncDirectory(directory)
  } catch (err) {
    if (created) await unlink(temp).catch(() => undefined)
    throw new StateFileError('unwritable', path, `cannot write ${path}: ${(err as Error).message}`)
  } finally {
    writesInProgress.delete(resolve(temp))
  }
}

/**
 * Reads a whole state file of at most `bytesMax` bytes (default {@link STATE_FILE_BYTES_MAX}).
 * Never throws: a missing file, a permission problem or an oversized file is a typed error.
 */
export async function readStateFile(path: string, bytesMax = STATE_FILE_BYTES_MAX): Promise<StateFileRead> {
  let handle: Awaited<ReturnType<typeof open>>
  try {
    // Non-blocking, so that a FIFO in place of the file is reported below instead of waiting forever for
    // a writer (regular files ignore the flag).
    handle = await open(path, constants.O_RDONLY | constants.O_NONBLOCK)
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code
    if (code === 'ENOENT') return failure('missing', path, `${path} does not exist`)
    return failure('unreadable', path, `cannot read ${path}: ${(err as Error).message}`)
  }
  try {
    const info = await handle.stat()
    if (!info.isFile()) return failure('unreadable', path, `${path} is not a regular file`)
    if (info.size > bytesMax) {
      return failure('too-large', path, `${path} has ${info.size} bytes, more than the limit of ${bytesMax}`)
    }
    // Read one byte past the limit so a file that grew after stat is still caught.
    const buffer = new Uint8Array(Math.min(info.size, bytesMax) + 1)
    let length = 0
    while (length < buffer.byteLength) {
      const { bytesRead } = await handle.read(buffer, length, buffer.byteLength - length, length)
      if (bytesRead === 0) break
      length += bytesRead
    }
    if (length > bytesMax) {
      return failure('too-large', path, `${path} has more than the limit of ${bytesMax} bytes`)
    }
    return { ok: true, bytes: buffer.subarray(0, length) }
  } catch (err) {
    return failure('unreadable', path, `cannot read ${path}: ${(err as Error).message}`)
  } finally {
    await handle.close().catch(() => undefined)
  }
}

/**
 * Removes temporary files left in `directory` by writes that a crash interrupted, and returns their names;
 * those of this process's writes in progress are kept. Call it at start-up, once this process holds the
 * home (the control socket is the lock): a write in progress in another process would lose its
 * temporary file.
 * @throws StateFileError `unreadable` when the directory cannot be listed.
 */
export async function cleanStaleTempFiles(directory: string): Promise<string[]> {
  let names: string[]
  try {
    names = await readdir(directory)
  } catch (err) {
    throw new StateFileError('unreadable', directory, `cannot list ${directory}: ${(err as Error).message}`)
  }
  const removed: string[] = []
  for (const name of names) {
    if (!isStateTempFileName(name) || writesInProgress.has(resolve(directory, name))) continue
    try {
      await unlink(join(directory, name))
      removed.push(name)
    } catch (err) {
      // Gone already (a concurrent clean) is fine; anything else is left for the next start.
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') continue
    }
  }
  return removed
}

function failure(code: StateFileErrorCode, path: string, message: string): StateFileRead {
  return { ok: false, error: new StateFileError(code, path, message) }
}

/** Flushes a directory's entries (a rename or a new file in it) to disk. */
export async function syncDirectory(directory: string): Promise<void> {
  const handle = await open(directory, 'r')
  try {
    await handle.sync()
  } finally {
    await handle.close()
  }
}
