/**
 * `InstanceRepository` on SQLite (spec "Repository Interfaces /
 * InstanceRepository"), paged so that a save after a call writes only what
 * the call changed (issue 13 item 7):
 *
 * - `instance_snapshots`: one header row per agent — the domain's
 *   `SnapshotCodec` bytes of the snapshot *without its pages* (metadata,
 *   `memoryBytes`, mutable globals with bigints and the exact bits of -0,
 *   NaN, ±Infinity; versioned, CRC-32-checked, a few hundred bytes), its
 *   page count, and a generation counted up by every save;
 * - `instance_snapshot_pages`: one row per non-zero 64 KiB page — index,
 *   SHA-1 of the raw page (20 bytes), and the page — unless
 *   `compressSnapshots` is `false` — as its non-zero runs when they take at
 *   most a quarter of it (a word scan, far cheaper than DEFLATE: an agent's
 *   pages are mostly zero), else raw DEFLATE (RFC 1951, `node:zlib`, level 1)
 *   when that is smaller, else raw.
 *
 * A save hashes the snapshot's pages and compares them with the hashes of
 * the last save this repository made of the agent (kept in memory, with the
 * generation it wrote; when another connection saved since, or after a
 * restart, the hashes are read back from the page rows): only new or changed
 * pages are compressed and written, pages that became zero are deleted, and
 * the header row is replaced. A save identical to the last one (same header
 * bytes, same pages) writes nothing. Loads check every page against its
 * hash. Rows of schema version 3 (the whole snapshot as one codec BLOB,
 * gzip-compressed or not) are read as they are and paged by their next save.
 *
 * The public snapshot format stays `SnapshotCodec`'s: the paging is this
 * store's layout, and what `loadState` returns is the whole snapshot.
 *
 * Each save is one IMMEDIATE transaction (the changed pages, the deleted
 * ones and the header row together): a reader, a crash, a full disk or a
 * lock timeout leaves the previous snapshot or the whole new one. Hashing and
 * compressing happen before it. A corrupt row (a header the codec refuses, a
 * missing page, a page that does not inflate or match its hash) fails the
 * load with `RepositoryError`; it is never returned as a partial snapshot.
 *
 * Errors: `RepositoryError { operation: "instance.saveState" |
 * "instance.loadState" | "instance.deleteState" | "instance.listSaved",
 * reason }` with SQLite's code (`SQLITE_BUSY`, `SQLITE_CORRUPT`,
 * `SQLITE_FULL`, `SQLITE_READONLY`), a corrupt row, or a snapshot the codec
 * could not give back unchanged (non-finite header numbers, pages that are
 * not 64 KiB in increasing order inside `memoryBytes`, globals outside i64).
 *
 * @since 0.1.0
 */
import {
  InstanceRepository,
  RepositoryError,
  SnapshotCodec,
  type AgentId,
  type InstanceRepositories,
  type InstanceSnapshot
} from "@agent-runtime/domain"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Pages from "./internal/pages.js"
import * as Snapshots from "./internal/snapshots.js"
import { attempt, read, write } from "./internal/sql.js"
import * as SqliteDatabase from "./SqliteDatabase.js"

/** Options of the SQLite instance repository. */
export interface Options {
  /**
   * Store each written page compactly — its non-zero runs, or DEFLATE —
   * when that makes it smaller (default `true`). Rows written either way are
   * read back.
   */
  readonly compressSnapshots?: boolean | undefined
}

interface HeaderRow {
  readonly snapshot: Uint8Array
  readonly layout: number
  readonly page_count: number
  readonly generation: number
}

/** What this repository last wrote (or read) for an agent: its generation, header bytes and page hashes. */
interface Saved {
  readonly generation: number
  readonly header: Uint8Array
  readonly hashes: ReadonlyMap<number, Buffer>
}

const PAGED = 1

const sameBytes = (a: Uint8Array, b: Uint8Array): boolean => Buffer.from(a.buffer, a.byteOffset, a.byteLength).equals(b)

/** Builds the repository on an open database (statements are prepared once). */
export const make = (
  database: SqliteDatabase.SqliteDatabaseShape,
  options: Options = {}
): Effect.Effect<InstanceRepositories.InstanceRepositoryShape, RepositoryError> =>
  attempt("open", () => {
    const { db } = database
    const compress = options.compressSnapshots ?? true
    const upsertHeader = db.prepare<[string, Uint8Array, number, number]>(
      `INSERT INTO instance_snapshots (agent_id, snapshot, layout, page_count, generation) VALUES (?, ?, ${PAGED}, ?, ?)
       ON CONFLICT (agent_id) DO UPDATE SET snapshot = excluded.snapshot, layout = excluded.layout,
         page_count = excluded.page_count, generation = excluded.generation`
    )
    const upsertPage = db.prepare<[string, number, Uint8Array, number, Uint8Array]>(
      `INSERT INTO instance_snapshot_pages (agent_id, page_index, hash, compressed, data) VALUES (?, ?, ?, ?, ?)
       ON CONFLICT (agent_id, page_index) DO UPDATE SET hash = excluded.hash, compressed = excluded.compressed, data = excluded.data`
    )
    const deletePage = db.prepare<[string, number]>(
      "DELETE FROM instance_snapshot_pages WHERE agent_id = ? AND page_index = ?"
    )
    const deletePages = db.prepare<[string]>("DELETE FROM instance_snapshot_pages WHERE agent_id = ?")
    const remove = db.prepare<[string]>("DELETE FROM instance_snapshots WHERE agent_id = ?")
    const selectGeneration = db.prepare<[string], { layout: number; generation: number }>(
      "SELECT layout, generation FROM instance_snapshots WHERE agent_id = ?"
    )
    const selectHeader = db.prepare<[string], HeaderRow>(
      "SELECT snapshot, layout, page_count, generation FROM instance_snapshots WHERE agent_id = ?"
    )
    const selectHashes = db.prepare<[string], { page_index: number; hash: Uint8Array }>(
      "SELECT page_index, hash FROM instance_snapshot_pages WHERE agent_id = ?"
    )
    const selectPages = db.prepare<[string], Pages.PageRow>(
      "SELECT page_index, hash, compressed, data FROM instance_snapshot_pages WHERE agent_id = ? ORDER BY page_index"
    )
    const selectIds = db.prepare<[], { agent_id: string }>("SELECT agent_id FROM instance_snapshots ORDER BY rowid")

    /** The write of a save: changed pages, deleted pages and the header row, in one transaction (prepared once). */
    const saveTransaction = db.transaction(
      (
        agentId: AgentId,
        pages: InstanceSnapshot["state"]["pages"],
        hashes: ReadonlyArray<Buffer>,
        prepared: ReadonlyMap<number, Pages.PageWrite>,
        known: Saved | undefined,
        header: Uint8Array
      ): Saved => {
        const row = selectGeneration.get(agentId)
        let previous: ReadonlyMap<number, Buffer>
        if (row !== undefined && row.layout === PAGED) {
          previous =
            known !== undefined && known.generation === row.generation
              ? known.hashes
              : new Map(selectHashes.all(agentId).map((r) => [r.page_index, Buffer.from(r.hash)]))
        } else {
          previous = new Map()
          deletePages.run(agentId) // no paged row: no page row may survive from an earlier one
        }
        const hashesNow = new Map<number, Buffer>()
        for (const [i, p] of pages.entries()) {
          const hash = hashes[i]!
          hashesNow.set(p.index, hash)
          const old = previous.get(p.index)
          if (old !== undefined && old.equals(hash)) continue
          const page = prepared.get(p.index) ?? Pages.storedPage(p.index, hash, p.data, compress)
          upsertPage.run(agentId, page.index, page.hash, page.compressed, page.data)
        }
        for (const index of previous.keys()) if (!hashesNow.has(index)) deletePage.run(agentId, index)
        const generation = (row?.generation ?? 0) + 1
        upsertHeader.run(agentId, header, pages.length, generation)
        return { generation, header, hashes: hashesNow }
      }
    )

    /** Per agent: what this repository last saved or loaded (dropped on any failed save and on delete). */
    const saved = new Map<AgentId, Saved>()

    const refused = (reason: string) =>
      new RepositoryError({ operation: "instance.saveState", reason: `snapshot cannot be stored: ${reason}` })

    const saveState = (agentId: AgentId, snapshot: InstanceSnapshot): Effect.Effect<void, RepositoryError> =>
      Effect.gen(function* () {
        yield* Effect.mapError(SnapshotCodec.validatePages(snapshot.state), (e) => refused(e.reason))
        const header = yield* Effect.mapError(SnapshotCodec.encode(Pages.withoutPages(snapshot)), (e) =>
          refused(e.reason)
        )
        const pages = snapshot.state.pages
        const hashes = pages.map((p) => Pages.pageHash(p.data))
        const known = saved.get(agentId)
        // compress, outside the write lock, what changed since the last save this repository knows of
        const prepared = new Map<number, Pages.PageWrite>()
        for (const [i, p] of pages.entries()) {
          const old = known?.hashes.get(p.index)
          if (old === undefined || !old.equals(hashes[i]!))
            prepared.set(p.index, Pages.storedPage(p.index, hashes[i]!, p.data, compress))
        }
        if (
          known !== undefined &&
          prepared.size === 0 &&
          known.hashes.size === pages.length &&
          sameBytes(header, known.header)
        ) {
          const row = yield* attempt("instance.saveState", () => selectGeneration.get(agentId))
          if (row !== undefined && row.layout === PAGED && row.generation === known.generation) return // nothing changed
        }
        const next = yield* attempt("instance.saveState", () =>
          saveTransaction.immediate(agentId, pages, hashes, prepared, known, header)
        )
        saved.set(agentId, next)
      }).pipe(Effect.onError(() => Effect.sync(() => void saved.delete(agentId))))

    const corrupt = (agentId: AgentId, reason: string) =>
      new RepositoryError({
        operation: "instance.loadState",
        reason: `snapshot of agent ${JSON.stringify(agentId)} is corrupt: ${reason}`
      })

    const loadState = (agentId: AgentId): Effect.Effect<Option.Option<InstanceSnapshot>, RepositoryError> =>
      Effect.gen(function* () {
        const found = yield* read(db, "instance.loadState", () => {
          const row = selectHeader.get(agentId)
          return row === undefined ? undefined : { row, pages: row.layout === PAGED ? selectPages.all(agentId) : [] }
        })
        if (found === undefined) return Option.none()
        const { row } = found
        if (!(row.snapshot instanceof Uint8Array)) {
          return yield* corrupt(agentId, `the column holds a ${typeof row.snapshot}, not a BLOB`)
        }
        const decoded = yield* Effect.mapError(Snapshots.decode(row.snapshot), (reason) => corrupt(agentId, reason))
        if (row.layout !== PAGED) return Option.some(decoded) // a whole-snapshot row of schema version 3
        if (decoded.state.pages.length !== 0)
          return yield* corrupt(agentId, "the header row of a paged snapshot holds pages")
        const pages = yield* Effect.try({
          try: () => Pages.readPages(found.pages, row.page_count, decoded.state.memoryBytes),
          catch: (reason) => corrupt(agentId, String(reason))
        })
        saved.set(agentId, {
          generation: row.generation,
          header: row.snapshot,
          hashes: new Map(found.pages.map((p) => [p.page_index, Buffer.from(p.hash)]))
        })
        const snapshot: InstanceSnapshot = { ...decoded, state: { ...decoded.state, pages } }
        return Option.some(snapshot)
      })

    const deleteState = (agentId: AgentId): Effect.Effect<void, RepositoryError> =>
      Effect.ensuring(
        write(db, "instance.deleteState", () => {
          deletePages.run(agentId)
          remove.run(agentId)
        }),
        Effect.sync(() => void saved.delete(agentId))
      )

    const listSaved: InstanceRepositories.InstanceRepositoryShape["listSaved"] = attempt("instance.listSaved", () =>
      selectIds.all().map((r) => r.agent_id as AgentId)
    )

    return { saveState, loadState, deleteState, listSaved } satisfies InstanceRepositories.InstanceRepositoryShape
  })

/** `InstanceRepository` on the shared `SqliteDatabase`, snapshots compressed. */
export const layerFromDatabase: Layer.Layer<InstanceRepository, RepositoryError, SqliteDatabase.SqliteDatabase> =
  Layer.effect(
    InstanceRepository,
    SqliteDatabase.SqliteDatabase.use((database) => make(database))
  )

/** `InstanceRepository` on the shared `SqliteDatabase`, with options. */
export const layerFromDatabaseWith = (
  options: Options
): Layer.Layer<InstanceRepository, RepositoryError, SqliteDatabase.SqliteDatabase> =>
  Layer.effect(
    InstanceRepository,
    SqliteDatabase.SqliteDatabase.use((database) => make(database, options))
  )

/** `InstanceRepository` on its own connection to the database at `options.path` (closed with the layer). */
export const layer = (options: SqliteDatabase.Options & Options): Layer.Layer<InstanceRepository, RepositoryError> =>
  Layer.provide(layerFromDatabaseWith(options), SqliteDatabase.layer(options))
