/**
 * `InstanceRepository` on SQLite (spec "Repository Interfaces /
 * InstanceRepository"): a `snapshots` row per agent with a JSON header (the
 * snapshot's fields; globals keep bigints and the exact bits of -0, NaN,
 * ±Infinity) and a `snapshot_pages` row per non-zero 64 KiB page (BLOB).
 *
 * A save is one IMMEDIATE transaction that replaces the header and every
 * page: a reader, a crash, a full disk or a lock timeout leaves the previous
 * snapshot or the whole new one, never a mix. A load reads header and pages
 * in one read transaction (one consistent view). Pages come back in
 * ascending index order.
 *
 * Errors: `RepositoryError { operation: "instance.saveState" |
 * "instance.loadState" | "instance.deleteState" | "instance.listSaved",
 * reason }` with SQLite's code (`SQLITE_BUSY`, `SQLITE_CORRUPT`,
 * `SQLITE_FULL`, `SQLITE_READONLY`, `SQLITE_CONSTRAINT` for two pages with one
 * index), a corrupt header, or a snapshot that cannot be stored (non-finite
 * header numbers).
 *
 * @since 0.1.0
 */
import {
  InstanceRepository,
  type AgentId,
  type InstanceRepositories,
  type InstanceSnapshot,
  type RepositoryError
} from "@agent-runtime/domain"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as SnapshotRows from "./internal/snapshotRows.js"
import { attempt, read, write } from "./internal/sql.js"
import * as SqliteDatabase from "./SqliteDatabase.js"

/** Builds the repository on an open database (statements are prepared once). */
export const make = (
  database: SqliteDatabase.SqliteDatabaseShape
): Effect.Effect<InstanceRepositories.InstanceRepositoryShape, RepositoryError> =>
  attempt("open", () => {
    const { db } = database
    const deletePages = db.prepare("DELETE FROM snapshot_pages WHERE agent_id = ?")
    const deleteHeader = db.prepare("DELETE FROM snapshots WHERE agent_id = ?")
    const insertHeader = db.prepare("INSERT INTO snapshots (agent_id, header) VALUES (?, ?)")
    const insertPage = db.prepare("INSERT INTO snapshot_pages (agent_id, page_index, data) VALUES (?, ?, ?)")
    const selectHeader = db.prepare<[string], { header: string }>("SELECT header FROM snapshots WHERE agent_id = ?")
    const selectPages = db.prepare<[string], { page_index: number; data: Uint8Array }>(
      "SELECT page_index, data FROM snapshot_pages WHERE agent_id = ? ORDER BY page_index"
    )
    const selectIds = db.prepare<[], { agent_id: string }>("SELECT agent_id FROM snapshots ORDER BY rowid")

    const saveState = (agentId: AgentId, snapshot: InstanceSnapshot): Effect.Effect<void, RepositoryError> =>
      write(db, "instance.saveState", () => {
        SnapshotRows.validate(snapshot)
        deletePages.run(agentId)
        deleteHeader.run(agentId)
        insertHeader.run(agentId, SnapshotRows.encodeHeader(snapshot))
        for (const page of snapshot.state.pages) insertPage.run(agentId, page.index, page.data)
      })

    const loadState = (agentId: AgentId): Effect.Effect<Option.Option<InstanceSnapshot>, RepositoryError> =>
      read(db, "instance.loadState", () => {
        const row = selectHeader.get(agentId)
        if (row === undefined) return Option.none()
        return Option.some(SnapshotRows.decode(agentId, row.header, selectPages.all(agentId)))
      })

    const deleteState = (agentId: AgentId): Effect.Effect<void, RepositoryError> =>
      write(db, "instance.deleteState", () => {
        deletePages.run(agentId)
        deleteHeader.run(agentId)
      })

    const listSaved: InstanceRepositories.InstanceRepositoryShape["listSaved"] = attempt("instance.listSaved", () =>
      selectIds.all().map((r) => r.agent_id as AgentId)
    )

    return { saveState, loadState, deleteState, listSaved } satisfies InstanceRepositories.InstanceRepositoryShape
  })

/** `InstanceRepository` on the shared `SqliteDatabase`. */
export const layerFromDatabase: Layer.Layer<InstanceRepository, RepositoryError, SqliteDatabase.SqliteDatabase> = Layer.effect(
  InstanceRepository,
  SqliteDatabase.SqliteDatabase.use(make)
)

/** `InstanceRepository` on its own connection to the database at `options.path` (closed with the layer). */
export const layer = (options: SqliteDatabase.Options): Layer.Layer<InstanceRepository, RepositoryError> =>
  Layer.provide(layerFromDatabase, SqliteDatabase.layer(options))
