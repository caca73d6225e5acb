/**
 * The numbered schema migrations. Migration `n` takes a database at version
 * `n - 1` to version `n`; `schema_version` holds one row per applied
 * migration. Append new migrations; never edit an applied one.
 *
 * @internal
 */
import type Database from "better-sqlite3"

export interface Migration {
  readonly version: number
  readonly description: string
  readonly sql: string
}

export const migrations: ReadonlyArray<Migration> = [
  {
    version: 1,
    description: "modules and instance snapshots",
    sql: `
      CREATE TABLE modules (
        id       TEXT PRIMARY KEY NOT NULL,
        hash     TEXT NOT NULL,
        bytes    BLOB NOT NULL,
        metadata TEXT NOT NULL
      );
      CREATE INDEX modules_by_hash ON modules (hash);

      CREATE TABLE snapshots (
        agent_id           TEXT PRIMARY KEY NOT NULL,
        header             TEXT NOT NULL
      );
      CREATE TABLE snapshot_pages (
        agent_id   TEXT NOT NULL REFERENCES snapshots (agent_id) ON DELETE CASCADE,
        page_index INTEGER NOT NULL,
        data       BLOB NOT NULL,
        PRIMARY KEY (agent_id, page_index)
      );
    `
  },
  {
    version: 2,
    description: "runtime metrics samples",
    sql: `
      CREATE TABLE metrics (
        seq               INTEGER PRIMARY KEY AUTOINCREMENT,
        timestamp         REAL NOT NULL,
        agents            INTEGER NOT NULL,
        memory_used       INTEGER NOT NULL,
        memory_total      INTEGER NOT NULL,
        pressure_level    TEXT NOT NULL,
        invocations       INTEGER NOT NULL,
        invocation_errors INTEGER NOT NULL,
        evictions         INTEGER NOT NULL,
        cache_hits        INTEGER NOT NULL,
        cache_misses      INTEGER NOT NULL
      );
      CREATE INDEX metrics_by_time ON metrics (timestamp, seq);
    `
  }
]

/** The schema version this package writes (the last migration). */
export const LATEST_VERSION = migrations[migrations.length - 1]!.version

/** A database whose schema is newer than this package knows. */
export class NewerSchema extends Error {}

/** The current schema version (0 for a new database; `schema_version` is created if missing). */
export const currentVersion = (db: Database.Database): number => {
  db.exec("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER PRIMARY KEY NOT NULL)")
  const row = db.prepare("SELECT MAX(version) AS v FROM schema_version").get() as { v: number | null }
  return row.v ?? 0
}

/** The current schema version of a read-only database (0 if it has no `schema_version`). */
export const readVersion = (db: Database.Database): number => {
  const exists = db.prepare("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'schema_version'").get()
  if (exists === undefined) return 0
  const row = db.prepare("SELECT MAX(version) AS v FROM schema_version").get() as { v: number | null }
  return row.v ?? 0
}

const newer = (version: number) =>
  new NewerSchema(
    `database schema version ${version} is newer than version ${LATEST_VERSION} this adapter supports; upgrade @agent-runtime/repository-sqlite`
  )

/**
 * Brings the database to `target` (default: the latest version) in one
 * IMMEDIATE transaction: all pending migrations apply, or none. A database
 * already newer than this package throws `NewerSchema`. A database already at
 * `target` is only read (opening it needs no write lock).
 */
export const migrate = (db: Database.Database, target: number = LATEST_VERSION): number => {
  const seen = readVersion(db)
  if (seen > LATEST_VERSION) throw newer(seen)
  if (seen >= target) return seen
  return db
    .transaction(() => {
      const current = currentVersion(db)
      if (current > LATEST_VERSION) throw newer(current)
      const record = db.prepare("INSERT INTO schema_version (version) VALUES (?)")
      for (const m of migrations) {
        if (m.version <= current || m.version > target) continue
        db.exec(m.sql)
        record.run(m.version)
      }
      return Math.max(current, Math.min(target, LATEST_VERSION))
    })
    .immediate()
}
