/**
 * `InstanceRepository` on SQLite (spec "Repository Interfaces /
 * InstanceRepository"): one `instance_snapshots` row per agent holding the
 * whole snapshot as one BLOB — exactly the bytes of the domain's
 * `SnapshotCodec` (versioned, CRC-32-checked; see its docs for the layout),
 * the payload (non-zero 64 KiB pages and mutable globals — bigints and the
 * exact bits of -0, NaN, ±Infinity kept) gzip-compressed through the
 * platform's `CompressionStream` unless `compressSnapshots` is `false`.
 * Either kind of BLOB is read back, whatever the option.
 *
 * One BLOB instead of a row per page (schema versions 1–2): a snapshot is
 * always saved and loaded whole, so per-page rows bought nothing but a
 * second format to keep in step with the codec, and compression works best
 * on the whole payload. Schema migration 3 converts the old rows (see
 * `SqliteDatabase`).
 *
 * The snapshot is encoded (and compressed) before the write transaction;
 * the write is one IMMEDIATE transaction replacing the row: a reader, a
 * crash, a full disk or a lock timeout leaves the previous snapshot or the
 * whole new one. A corrupt or truncated BLOB (the codec's `SnapshotCorrupt`)
 * fails the load with `RepositoryError` whose reason is the codec's; it is
 * never returned as a partial snapshot.
 *
 * Errors: `RepositoryError { operation: "instance.saveState" |
 * "instance.loadState" | "instance.deleteState" | "instance.listSaved",
 * reason }` with SQLite's code (`SQLITE_BUSY`, `SQLITE_CORRUPT`,
 * `SQLITE_FULL`, `SQLITE_READONLY`), a corrupt BLOB, or a snapshot the codec
 * could not give back unchanged (non-finite header numbers, pages that are
 * not 64 KiB in increasing order inside `memoryBytes`, globals outside i64).
 *
 * @since 0.1.0
 */
import {
  InstanceRepository,
  RepositoryError,
  type AgentId,
  type InstanceRepositories,
  type InstanceSnapshot
} from "@agent-runtime/domain"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Snapshots from "./internal/snapshots.js"
import { attempt, read, write } from "./internal/sql.js"
import * as SqliteDatabase from "./SqliteDatabase.js"

/** Options of the SQLite instance repository. */
export interface Options {
  /**
   * gzip the snapshot payload (pages and globals) through `CompressionStream`
   * (default `true`). BLOBs written either way are read back.
   */
  readonly compressSnapshots?: boolean | undefined
}

/** Builds the repository on an open database (statements are prepared once). */
export const make = (
  database: SqliteDatabase.SqliteDatabaseShape,
  options: Options = {}
): Effect.Effect<InstanceRepositories.InstanceRepositoryShape, RepositoryError> =>
  attempt("open", () => {
    const { db } = database
    const compress = options.compressSnapshots ?? true
    const upsert = db.prepare(
      "INSERT INTO instance_snapshots (agent_id, snapshot) VALUES (?, ?) ON CONFLICT (agent_id) DO UPDATE SET snapshot = excluded.snapshot"
    )
    const remove = db.prepare("DELETE FROM instance_snapshots WHERE agent_id = ?")
    const select = db.prepare<[string], { snapshot: Uint8Array }>("SELECT snapshot FROM instance_snapshots WHERE agent_id = ?")
    const selectIds = db.prepare<[], { agent_id: string }>("SELECT agent_id FROM instance_snapshots ORDER BY rowid")

    const saveState = (agentId: AgentId, snapshot: InstanceSnapshot): Effect.Effect<void, RepositoryError> =>
      Snapshots.encode(snapshot, compress).pipe(
        Effect.mapError(
          (reason) => new RepositoryError({ operation: "instance.saveState", reason: `snapshot cannot be stored: ${reason}` })
        ),
        Effect.flatMap((bytes) => write(db, "instance.saveState", () => void upsert.run(agentId, bytes)))
      )

    const loadState = (agentId: AgentId): Effect.Effect<Option.Option<InstanceSnapshot>, RepositoryError> =>
      Effect.gen(function*() {
        const row = yield* read(db, "instance.loadState", () => select.get(agentId))
        if (row === undefined) return Option.none()
        if (!(row.snapshot instanceof Uint8Array)) {
          return yield* new RepositoryError({
            operation: "instance.loadState",
            reason: `snapshot of agent ${JSON.stringify(agentId)} is corrupt: the column holds a ${typeof row.snapshot}, not a BLOB`
          })
        }
        const snapshot = yield* Effect.mapError(
          Snapshots.decode(row.snapshot),
          (reason) => new RepositoryError({ operation: "instance.loadState", reason: `snapshot of agent ${JSON.stringify(agentId)} is corrupt: ${reason}` })
        )
        return Option.some(snapshot)
      })

    const deleteState = (agentId: AgentId): Effect.Effect<void, RepositoryError> =>
      write(db, "instance.deleteState", () => void remove.run(agentId))

    const listSaved: InstanceRepositories.InstanceRepositoryShape["listSaved"] = attempt("instance.listSaved", () =>
      selectIds.all().map((r) => r.agent_id as AgentId)
    )

    return { saveState, loadState, deleteState, listSaved } satisfies InstanceRepositories.InstanceRepositoryShape
  })

/** `InstanceRepository` on the shared `SqliteDatabase`, snapshots compressed. */
export const layerFromDatabase: Layer.Layer<InstanceRepository, RepositoryError, SqliteDatabase.SqliteDatabase> = Layer.effect(
  InstanceRepository,
  SqliteDatabase.SqliteDatabase.use((database) => make(database))
)

/** `InstanceRepository` on the shared `SqliteDatabase`, with options. */
export const layerFromDatabaseWith = (
  options: Options
): Layer.Layer<InstanceRepository, RepositoryError, SqliteDatabase.SqliteDatabase> =>
  Layer.effect(InstanceRepository, SqliteDatabase.SqliteDatabase.use((database) => make(database, options)))

/** `InstanceRepository` on its own connection to the database at `options.path` (closed with the layer). */
export const layer = (options: SqliteDatabase.Options & Options): Layer.Layer<InstanceRepository, RepositoryError> =>
  Layer.provide(layerFromDatabaseWith(options), SqliteDatabase.layer(options))
