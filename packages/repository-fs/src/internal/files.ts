/**
 * File helpers shared by the file-system repositories: atomic writes (temp
 * file in the same directory + fsync + rename + directory fsync), file keys
 * derived from ids, a per-key in-process lock, and the mapping of Node errors
 * to `RepositoryError`.
 *
 * @internal
 */
import { RepositoryError } from "@agent-runtime/domain"
import * as Effect from "effect/Effect"
import { createHash, randomUUID } from "node:crypto"
import * as fs from "node:fs/promises"
import * as path from "node:path"

/** Prefix of temporary files; listings skip them. */
export const TEMP_PREFIX = ".tmp-"

/** Lowercase hex SHA-256 of bytes or of a string's UTF-8. */
export const sha256Hex = (data: Uint8Array | string): string => createHash("sha256").update(data).digest("hex")

/**
 * The file key of an id: the hex SHA-256 of its UTF-8 (64 chars). Any id —
 * with separators, dot segments, reserved characters, of any length — maps
 * to a safe, case-insensitive-safe file name; the id itself is kept inside
 * the file.
 */
export const keyOf = (id: string): string => sha256Hex(id)

/** A failure carrying the text of a `RepositoryError` reason. */
export class Corrupt extends Error {}

/** Text of a thrown value: Node's error code and message. */
export const describe = (e: unknown): string => {
  if (e instanceof Corrupt) return e.message
  if (e instanceof Error) {
    const code = (e as NodeJS.ErrnoException).code
    return code === undefined ? e.message : `${code}: ${e.message}`
  }
  return String(e)
}

/** Runs a Promise-returning function; a rejection becomes `RepositoryError { operation }`. */
export const attempt = <A>(operation: string, f: () => Promise<A>): Effect.Effect<A, RepositoryError> =>
  Effect.tryPromise({ try: f, catch: (e) => new RepositoryError({ operation, reason: describe(e) }) })

/** Whether an error is "no such file". */
export const isNotFound = (e: unknown): boolean => (e as NodeJS.ErrnoException | undefined)?.code === "ENOENT"

/** Reads a file, or `undefined` if it does not exist. */
export const readIfExists = async (file: string): Promise<Buffer | undefined> => {
  try {
    return await fs.readFile(file)
  } catch (e) {
    if (isNotFound(e)) return undefined
    throw e
  }
}

/** Removes a file; a missing file is not an error. */
export const removeIfExists = async (file: string): Promise<boolean> => {
  try {
    await fs.unlink(file)
    return true
  } catch (e) {
    if (isNotFound(e)) return false
    throw e
  }
}

/** fsync of a directory so a rename in it is durable; platforms that cannot (Windows) are skipped. */
const syncDirectory = async (directory: string): Promise<void> => {
  let handle: fs.FileHandle | undefined
  try {
    handle = await fs.open(directory, "r")
    await handle.sync()
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code
    if (process.platform === "win32" && (code === "EPERM" || code === "EISDIR" || code === "EINVAL")) return
    throw e
  } finally {
    await handle?.close()
  }
}

/**
 * Writes `chunks` to `directory/name` atomically: a unique temp file in the
 * same directory is written fully, fsynced, then renamed over the target and
 * the directory fsynced. A reader sees the old file or the new one, never a
 * torn one; concurrent writers each use their own temp file and the last
 * rename wins. On failure the temp file is removed and the target untouched.
 */
export const writeAtomic = async (
  directory: string,
  name: string,
  chunks: ReadonlyArray<Uint8Array>
): Promise<void> => {
  const temp = path.join(directory, `${TEMP_PREFIX}${name}-${randomUUID()}`)
  let handle: fs.FileHandle | undefined
  try {
    handle = await fs.open(temp, "wx", 0o644)
    for (const chunk of chunks) {
      let offset = 0
      while (offset < chunk.byteLength) {
        const { bytesWritten } = await handle.write(chunk, offset, chunk.byteLength - offset)
        offset += bytesWritten
      }
    }
    await handle.sync()
    await handle.close()
    handle = undefined
    await fs.rename(temp, path.join(directory, name))
  } catch (e) {
    await handle?.close().catch(() => undefined)
    await fs.unlink(temp).catch(() => undefined)
    throw e
  }
  await syncDirectory(directory)
}

/**
 * An in-process lock per key: `run(key, f)` runs `f` after every earlier
 * `run` of the same key has settled. Different keys run concurrently.
 */
export const makeKeyedLock = () => {
  const tails = new Map<string, Promise<unknown>>()
  return <A>(key: string, f: () => Promise<A>): Promise<A> => {
    const previous = tails.get(key) ?? Promise.resolve()
    const result = previous.then(f, f)
    const tail = result.then(
      () => undefined,
      () => undefined
    )
    tails.set(key, tail)
    void tail.then(() => {
      if (tails.get(key) === tail) tails.delete(key)
    })
    return result
  }
}

/** Creates a directory (and parents); fails with `RepositoryError { operation: "open" }`. */
export const ensureDirectory = (directory: string): Effect.Effect<void, RepositoryError> =>
  attempt("open", async () => {
    await fs.mkdir(directory, { recursive: true })
    // a directory we cannot write to is reported now, not at the first save
    await fs.access(directory, fs.constants.W_OK | fs.constants.R_OK | fs.constants.X_OK)
  })
