/**
 * The numbered schema migrations. Migration `n` takes a database at version
 * `n - 1` to version `n`; `schema_version` holds one row per applied
 * migration. Append new migrations; never edit an applied one.
 *
 * @internal
 */
import { SnapshotCodec } from "@agent-runtime/domain"
import type Database from "better-sqlite3"
import * as Effect from "effect/Effect"
import * as LegacySnapshotRows from "./legacySnapshotRows.js"
import * as Pages from "./pages.js"
import { Invalid } from "./sql.js"

export interface Migration {
  readonly version: number
  readonly description: string
  /** Schema changes, run first. */
  readonly sql: string
  /** Data conversion run after `sql`, inside the same transaction (synchronous: better-sqlite3 transactions cannot await). */
  readonly run?: (db: Database.Database) => void
}

/**
 * Migration 3's conversion: every `snapshots` row with its `snapshot_pages`
 * becomes one `instance_snapshots` BLOB of `SnapshotCodec` bytes, without
 * compression (the codec's encode is synchronous without it; the next save
 * of the agent compresses). A row the old format could not read either (a
 * corrupt header, a missing page) is kept as `UNCONVERTED` + the reason, so
 * it is still listed, loads as a `RepositoryError` naming that reason (as it
 * did before the migration), and can be deleted. Then the old tables are
 * dropped.
 */
/** Start of the BLOB migration 3 stores for a row it could not convert (followed by the reason, UTF-8). */
export const UNCONVERTED = "agent-runtime: snapshot row of schema version 2 not converted by migration 3: "

const snapshotsToCodecBlobs = (db: Database.Database): void => {
  const rows = db.prepare("SELECT agent_id, header FROM snapshots ORDER BY rowid").all() as Array<{
    agent_id: string
    header: string
  }>
  const pages = db.prepare("SELECT page_index, data FROM snapshot_pages WHERE agent_id = ? ORDER BY page_index")
  const insert = db.prepare("INSERT INTO instance_snapshots (agent_id, snapshot) VALUES (?, ?)")
  for (const row of rows) {
    let bytes: Uint8Array
    try {
      const snapshot = LegacySnapshotRows.decode(
        row.agent_id,
        row.header,
        pages.all(row.agent_id) as Array<{ page_index: number; data: Uint8Array }>
      )
      bytes = Effect.runSync(SnapshotCodec.encode(snapshot))
    } catch (e) {
      // anything but the old format's own refusal (an SQLite error) fails the migration, which rolls back
      if (!(e instanceof Invalid)) throw e
      bytes = Buffer.from(UNCONVERTED + e.message, "utf8")
    }
    insert.run(row.agent_id, bytes)
  }
  db.exec("DROP TABLE snapshot_pages; DROP TABLE snapshots;")
}

/**
 * Migration 7's conversion: every page row and patch row whose hash still
 * matches it by the rules of versions 4–6 (SHA-1 of the page; a byte-wise
 * FNV pair over the stored bytes — neither covers the page index) is given
 * the hash of version 7, which covers its `page_index` (`Pages.pageHash`,
 * `Pages.storedHash`). A row that does not match (damaged before the
 * migration, or not decodable) keeps its hash, so its load still fails as
 * corrupt.
 */
const hashesWithIndex = (db: Database.Database): void => {
  const rows = db
    .prepare("SELECT agent_id, page_index, hash, compressed, data FROM instance_snapshot_pages")
    .iterate() as IterableIterator<{
    agent_id: string
    page_index: number
    hash: Uint8Array
    compressed: number
    data: Uint8Array
  }>
  const setPage = db.prepare("UPDATE instance_snapshot_pages SET hash = ? WHERE agent_id = ? AND page_index = ?")
  const pages: Array<[Uint8Array, string, number]> = []
  for (const row of rows) {
    if (!(row.hash instanceof Uint8Array) || !(row.data instanceof Uint8Array)) continue
    const hash = Buffer.from(row.hash)
    if (hash.length === 8) {
      if (Pages.Legacy.storedHash(row.data).equals(hash))
        pages.push([Pages.storedHash(row.data, row.page_index), row.agent_id, row.page_index])
      continue
    }
    let page: Uint8Array
    try {
      page = Pages.decodeRow(row.page_index, row.compressed, row.data)
    } catch {
      continue
    }
    if (Pages.Legacy.pageHash(page).equals(hash))
      pages.push([Pages.pageHash(page, row.page_index), row.agent_id, row.page_index])
  }
  for (const args of pages) setPage.run(...args)
  const patches = db.prepare("SELECT agent_id, page_index, hash, data FROM instance_snapshot_patches").all() as Array<{
    agent_id: string
    page_index: number
    hash: Uint8Array
    data: Uint8Array
  }>
  const setPatch = db.prepare("UPDATE instance_snapshot_patches SET hash = ? WHERE agent_id = ? AND page_index = ?")
  for (const row of patches) {
    if (!(row.hash instanceof Uint8Array) || !(row.data instanceof Uint8Array)) continue
    if (Pages.Legacy.storedHash(row.data).equals(Buffer.from(row.hash)))
      setPatch.run(Pages.storedHash(row.data, row.page_index), row.agent_id, row.page_index)
  }
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
  },
  {
    version: 3,
    description: "instance snapshots as one SnapshotCodec BLOB per agent",
    sql: `
      CREATE TABLE instance_snapshots (
        agent_id TEXT PRIMARY KEY NOT NULL,
        snapshot BLOB NOT NULL
      );
    `,
    run: snapshotsToCodecBlobs
  },
  {
    version: 4,
    description:
      "paged instance snapshots: a header row plus a row per non-zero page, so a save writes only changed pages",
    // layout 0: `snapshot` is the whole SnapshotCodec BLOB (rows of version 3, read as they are; the next save pages them)
    // layout 1: `snapshot` is the SnapshotCodec BLOB of the snapshot without its pages (metadata, memoryBytes, globals),
    //           and `instance_snapshot_pages` holds its `page_count` pages; `generation` counts saves (a writer's cache check)
    sql: `
      ALTER TABLE instance_snapshots ADD COLUMN layout INTEGER NOT NULL DEFAULT 0;
      ALTER TABLE instance_snapshots ADD COLUMN page_count INTEGER NOT NULL DEFAULT 0;
      ALTER TABLE instance_snapshots ADD COLUMN generation INTEGER NOT NULL DEFAULT 0;
      CREATE TABLE instance_snapshot_pages (
        agent_id   TEXT NOT NULL,
        page_index INTEGER NOT NULL,
        hash       BLOB NOT NULL,
        compressed INTEGER NOT NULL,
        data       BLOB NOT NULL,
        PRIMARY KEY (agent_id, page_index)
      ) WITHOUT ROWID;
    `
  },
  {
    version: 5,
    description:
      "page rows may be stored as fills (compressed = 3) and carry an 8-byte word hash (run forms): no table changes",
    // an older package would refuse such rows as corrupt; the version tells it to refuse the database instead
    sql: ""
  },
  {
    version: 6,
    description:
      "page patches: a run-form page row may carry one patch row (the runs that differ from it), so a save that changes a few hundred bytes of a page writes those",
    // patch_count: how many instance_snapshot_patches rows the agent's snapshot has (a missing one is corruption)
    sql: `
      ALTER TABLE instance_snapshots ADD COLUMN patch_count INTEGER NOT NULL DEFAULT 0;
      CREATE TABLE instance_snapshot_patches (
        agent_id   TEXT NOT NULL,
        page_index INTEGER NOT NULL,
        hash       BLOB NOT NULL,
        data       BLOB NOT NULL,
        PRIMARY KEY (agent_id, page_index)
      ) WITHOUT ROWID;
    `
  },
  {
    version: 7,
    description:
      "page and patch hashes cover the page index (a row moved to another index is corrupt); header rows may be binary (layout 2)",
    // layout 2: `snapshot` is the binary header (`internal/header.ts`) instead of the SnapshotCodec bytes (layout 1);
    // rows of layout 1 are read as they are and written as layout 2 by their next save.
    // Patch rows move to a rowid table: its leaf cells hold up to 4,061 bytes on 4 KiB pages, so a patch
    // (≤ `Pages.PATCH_LIMIT`) is written in place in its leaf — no overflow page allocated, freed and listed
    // (a WITHOUT ROWID table spills a row past ≈ 1,000 bytes to overflow pages).
    sql: `
      CREATE TABLE instance_snapshot_patches_7 (
        agent_id   TEXT NOT NULL,
        page_index INTEGER NOT NULL,
        hash       BLOB NOT NULL,
        data       BLOB NOT NULL,
        PRIMARY KEY (agent_id, page_index)
      );
      INSERT INTO instance_snapshot_patches_7 (agent_id, page_index, hash, data)
        SELECT agent_id, page_index, hash, data FROM instance_snapshot_patches;
      DROP TABLE instance_snapshot_patches;
      ALTER TABLE instance_snapshot_patches_7 RENAME TO instance_snapshot_patches;
    `,
    run: hashesWithIndex
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
        m.run?.(db)
        record.run(m.version)
      }
      return Math.max(current, Math.min(target, LATEST_VERSION))
    })
    .immediate()
}
