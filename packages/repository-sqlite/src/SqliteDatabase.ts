/**
 * One SQLite database file (better-sqlite3, Node) shared by the SQLite
 * repositories: opened in WAL mode with a busy timeout, its schema brought to
 * the current version by numbered migrations in one transaction, closed when
 * its scope closes.
 *
 * Schema versions: a `schema_version` table holds one row per applied
 * migration. Opening a database at an older version migrates it (all pending
 * migrations or none); a database written by a newer version of this package
 * is refused, never modified. Migration 3 replaced the snapshot tables of
 * versions 1–2 (`snapshots` + `snapshot_pages`, a JSON header and a row per
 * page) with `instance_snapshots` (one `SnapshotCodec` BLOB per agent),
 * converting every old row in the migration's transaction; migration 4
 * pages it again — a header row plus `instance_snapshot_pages`, one row per
 * non-zero page with its hash, so a save writes only the pages that changed
 * (old rows are read as they are and paged by their next save; see
 * `SqliteInstanceRepository`); migration 5 changes no table: page rows may
 * then be stored as fills and carry an 8-byte hash, which an older package
 * would take for corruption, so it refuses the database instead; migration 6
 * adds `instance_snapshot_patches` (one patch row over a run-form page row,
 * written by delta saves) and the header rows' `patch_count` (0 for every
 * row written before: such databases load as they did); migration 7 makes
 * every page and patch hash cover its page index (re-hashing the rows that
 * still match their old hash), moves the patches to a rowid table (a patch
 * fits in its leaf cell: no overflow pages), and lets header rows be the
 * binary header (`layout = 2`; rows of layout 1 are read as they are).
 *
 * Durability: WAL with `synchronous = NORMAL` (default) survives a crash or
 * kill of the process — every committed write is there after a restart; a
 * power loss may lose the last commits. `synchronous: "FULL"` also survives
 * power loss at the cost of an fsync per commit.
 *
 * One runtime per file: a writable open takes an exclusive lock on
 * `<real path>-lock` (`lockPath`) for as long as the connection is open, so a
 * second runtime (another process, or another connection in this one)
 * opening the same file fails at once instead of writing over the first
 * one's state; the lock ends with its process, however that ends.
 * Read-only opens take no lock. Raw SQLite connections are not stopped by
 * it, nor are older packages (they do not take it).
 *
 * Errors: `RepositoryError { operation: "open", reason }` — the database is
 * in use by another runtime (`"<path>: database is in use by another
 * runtime (<path>-lock is locked)…"`), the path cannot
 * be opened or created (missing directory, read-only location), the file is
 * not a database or is corrupt, another connection holds the write lock past
 * `busyTimeout`, the schema is newer than this package or older on a
 * read-only database.
 *
 * @since 0.1.0
 */
import { RepositoryError } from "@agent-runtime/domain"
import Database from "better-sqlite3"
import { realpathSync } from "node:fs"
import { basename, dirname, join } from "node:path"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import type * as Scope from "effect/Scope"
import { LATEST_VERSION, migrate, readVersion } from "./internal/migrations.js"
import { describe, Invalid } from "./internal/sql.js"

/** Options of a SQLite database. */
export interface Options {
  /** Path of the database file (created if missing, with its `-wal`/`-shm` files next to it). */
  readonly path: string
  /**
   * How long (ms) a write waits for another connection's write lock before
   * failing with `RepositoryError` (`SQLITE_BUSY`). Default 5000. The wait
   * blocks the calling thread (better-sqlite3 is synchronous).
   */
  readonly busyTimeout?: number | undefined
  /** Open read-only: reads work, every write fails with `RepositoryError` (`SQLITE_READONLY`). Default false. */
  readonly readonly?: boolean | undefined
  /** `synchronous` pragma in WAL mode: `"NORMAL"` (default, crash-safe) or `"FULL"` (also power-loss-safe). */
  readonly synchronous?: "NORMAL" | "FULL" | undefined
  /**
   * Caps the database size at this many pages (SQLite `max_page_count`; the
   * page size is 4096 bytes). A write that would grow past it fails with
   * `RepositoryError` (`SQLITE_FULL`) and changes nothing. Default: no cap.
   */
  readonly maxPages?: number | undefined
}

/** An open database. */
export interface SqliteDatabaseShape {
  /** The better-sqlite3 connection (synchronous). */
  readonly db: Database.Database
  /** The resolved file path. */
  readonly path: string
  /** The schema version after migrations. */
  readonly schemaVersion: number
}

/** The `SqliteDatabase` service key: the connection the SQLite repositories share. */
export class SqliteDatabase extends Context.Service<SqliteDatabase, SqliteDatabaseShape>()(
  "@agent-runtime/repository-sqlite/SqliteDatabase"
) {}

/** The schema version this package writes. */
export const SCHEMA_VERSION: number = LATEST_VERSION

const configure = (db: Database.Database, options: Options): number => {
  if (options.readonly === true) {
    const version = readVersion(db)
    if (version !== LATEST_VERSION) {
      throw new Invalid(
        version > LATEST_VERSION
          ? `database schema version ${version} is newer than version ${LATEST_VERSION} this adapter supports; upgrade @agent-runtime/repository-sqlite`
          : `database schema version ${version} is older than ${LATEST_VERSION} and the database is opened read-only, so it cannot be migrated`
      )
    }
    return version
  }
  const mode = db.pragma("journal_mode = WAL", { simple: true })
  if (mode !== "wal" && !db.memory)
    throw new Invalid(`cannot switch the database to WAL mode (journal_mode is ${String(mode)})`)
  db.pragma(`synchronous = ${options.synchronous ?? "NORMAL"}`)
  db.pragma("foreign_keys = ON")
  if (options.maxPages !== undefined) {
    if (!Number.isInteger(options.maxPages) || options.maxPages <= 0) {
      throw new Invalid(`maxPages must be a positive integer, got ${options.maxPages}`)
    }
    db.pragma(`max_page_count = ${options.maxPages}`)
  }
  return migrate(db)
}

/**
 * Opens (creating if needed) and migrates the database; it is closed when
 * the scope closes. Fails with `RepositoryError { operation: "open" }`.
 */
export const open = (options: Options): Effect.Effect<SqliteDatabaseShape, RepositoryError, Scope.Scope> =>
  Effect.map(
    Effect.acquireRelease(
      Effect.try({
        try: () => {
          const busyTimeout = options.busyTimeout ?? 5000
          if (!Number.isFinite(busyTimeout) || busyTimeout < 0)
            throw new Invalid(`busyTimeout must be ≥ 0 ms, got ${busyTimeout}`)
          const lock = options.readonly === true ? undefined : takeLock(options.path)
          try {
            const db = new Database(options.path, {
              readonly: options.readonly === true,
              fileMustExist: options.readonly === true,
              timeout: busyTimeout
            })
            try {
              const schemaVersion = configure(db, options)
              return { shape: { db, path: db.name, schemaVersion }, lock }
            } catch (e) {
              db.close()
              throw e
            }
          } catch (e) {
            if (lock !== undefined) {
              held.delete(lock)
              lock.close()
            }
            throw e
          }
        },
        catch: (e) => new RepositoryError({ operation: "open", reason: `${options.path}: ${describe(e)}` })
      }),
      ({ lock, shape }) =>
        Effect.sync(() => {
          shape.db.close()
          if (lock !== undefined) {
            held.delete(lock)
            lock.close()
          }
        })
    ),
    ({ shape }) => shape
  )

/**
 * The lock file of the database at `path`: `<real path>-lock`, next to its
 * `-wal` and `-shm` files — named from the file's real path (symbolic links
 * and `..` resolved: the file itself when it exists, else its directory), so
 * a second runtime that opens the file through a link takes the same lock.
 * A hard link (another name of the same file) or a deleted lock file is not
 * recognised: the lock protects against a second runtime started by
 * mistake, not against one set on getting around it.
 */
export const lockPath = (path: string): string => {
  try {
    return `${realpathSync(path)}-lock`
  } catch {
    try {
      return `${join(realpathSync(dirname(path)), basename(path))}-lock`
    } catch {
      return `${path}-lock` // no such directory: the open fails anyway
    }
  }
}

const inMemory = (path: string): boolean => path === "" || path === ":memory:" || path.startsWith("file::memory:")

/**
 * The locks held by open databases: a strong reference until the scope
 * closes, so a lock connection is never closed by garbage collection (which
 * would drop the lock) while its database is open, even when nothing else
 * refers to the scope any more.
 */
const held = new Set<Database.Database>()

/**
 * The runtime's hold on the database file: an exclusive SQLite lock (POSIX
 * advisory `fcntl` locks through SQLite's VFS, which also tells connections
 * of one process apart) on the empty database `<path>-lock`, taken without
 * waiting and held while the connection is open. The operating system drops
 * it when the process ends in any way (a killed holder leaves no stale lock;
 * the file itself stays, empty). `undefined` for an in-memory database.
 * Throws `Invalid` ("in use by another runtime") when another connection
 * holds it.
 */
const takeLock = (path: string): Database.Database | undefined => {
  if (inMemory(path)) return undefined
  const file = lockPath(path)
  const lock = new Database(file, { timeout: 0 })
  try {
    lock.exec("BEGIN EXCLUSIVE") // held until the connection closes (never committed: nothing is written)
  } catch (e) {
    lock.close()
    const code = (e as { code?: unknown }).code
    if (code === "SQLITE_BUSY" || code === "SQLITE_LOCKED")
      throw new Invalid(`database is in use by another runtime (${file} is locked); stop it first`)
    throw e
  }
  held.add(lock)
  return lock
}

/** The `SqliteDatabase` layer: opens the database, closes it when the layer's scope closes. */
export const layer = (options: Options): Layer.Layer<SqliteDatabase, RepositoryError> =>
  Layer.effect(SqliteDatabase, open(options))
