/**
 * `ModuleRepository` on SQLite (spec "Repository Interfaces /
 * ModuleRepository"): table `modules (id, hash, bytes BLOB, metadata JSON)`,
 * indexed by hash. Metadata is stored with the `ModuleMetadata` JSON codec
 * (the signature as base64) and decoded with it on load.
 *
 * Each write is one IMMEDIATE transaction. `list` and `findByHash` follow
 * the order modules were first saved (a replaced module keeps its place),
 * like the in-memory adapter.
 *
 * Errors: `ModuleNotFound` (load/delete of a missing id); `RepositoryError {
 * operation: "module.load" | "module.save" | "module.findByHash" |
 * "module.list" | "module.delete", reason }` with SQLite's code in the reason
 * (`SQLITE_BUSY` locked past the busy timeout, `SQLITE_CORRUPT`,
 * `SQLITE_FULL`, `SQLITE_READONLY`) or a corrupt metadata record.
 *
 * @since 0.1.0
 */
import {
  ModuleMetadata,
  ModuleNotFound,
  ModuleRepository,
  type ModuleHash,
  type ModuleId,
  type ModuleRepositories,
  type RepositoryError,
  type StoredModule
} from "@agent-runtime/domain"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Schema from "effect/Schema"
import { attempt, Invalid, read, write } from "./internal/sql.js"
import * as SqliteDatabase from "./SqliteDatabase.js"

const MetadataJson = Schema.fromJsonString(Schema.toCodecJson(ModuleMetadata))
const decodeMetadata = Schema.decodeUnknownExit(MetadataJson)
const encodeMetadata = Schema.encodeExit(MetadataJson)

const metadataOf = (id: string, json: string): ModuleMetadata => {
  const decoded = decodeMetadata(json)
  if (decoded._tag === "Failure") throw new Invalid(`metadata of module ${JSON.stringify(id)} is corrupt`)
  return decoded.value
}

interface Row {
  readonly id: string
  readonly hash: string
  readonly bytes: Uint8Array
  readonly metadata: string
}

/** Builds the repository on an open database (statements are prepared once). */
export const make = (
  database: SqliteDatabase.SqliteDatabaseShape
): Effect.Effect<ModuleRepositories.ModuleRepositoryShape, RepositoryError> =>
  attempt("open", () => {
    const { db } = database
    const selectOne = db.prepare<[string], Row>("SELECT id, hash, bytes, metadata FROM modules WHERE id = ?")
    const upsert = db.prepare(
      `INSERT INTO modules (id, hash, bytes, metadata) VALUES (?, ?, ?, ?)
       ON CONFLICT (id) DO UPDATE SET hash = excluded.hash, bytes = excluded.bytes, metadata = excluded.metadata`
    )
    const selectByHash = db.prepare<[string], { id: string }>(
      "SELECT id FROM modules WHERE hash = ? ORDER BY rowid LIMIT 1"
    )
    const selectAll = db.prepare<[], { id: string; metadata: string }>(
      "SELECT id, metadata FROM modules ORDER BY rowid"
    )
    const deleteOne = db.prepare("DELETE FROM modules WHERE id = ?")

    const load = (id: ModuleId): Effect.Effect<StoredModule, ModuleNotFound | RepositoryError> =>
      read(db, "module.load", () => {
        const row = selectOne.get(id)
        if (row === undefined) return undefined
        const stored: StoredModule = {
          id: row.id as ModuleId,
          hash: row.hash as ModuleHash,
          bytes: new Uint8Array(row.bytes.buffer, row.bytes.byteOffset, row.bytes.byteLength),
          metadata: metadataOf(row.id, row.metadata)
        }
        return stored
      }).pipe(
        Effect.flatMap((m) => (m === undefined ? Effect.fail(new ModuleNotFound({ moduleId: id })) : Effect.succeed(m)))
      )

    const save = (module: StoredModule): Effect.Effect<void, RepositoryError> =>
      write(db, "module.save", () => {
        const metadata = encodeMetadata(module.metadata)
        if (metadata._tag === "Failure")
          throw new Invalid(`module metadata cannot be encoded: ${String(metadata.cause)}`)
        // better-sqlite3 copies the bytes into SQLite: the caller may reuse its buffer
        upsert.run(module.id, module.hash, module.bytes, metadata.value)
      })

    const findByHash = (hash: ModuleHash): Effect.Effect<Option.Option<ModuleId>, RepositoryError> =>
      attempt("module.findByHash", () =>
        Option.map(Option.fromUndefinedOr(selectByHash.get(hash)), (r) => r.id as ModuleId)
      )

    const list: ModuleRepositories.ModuleRepositoryShape["list"] = attempt("module.list", () =>
      selectAll.all().map((r) => ({ id: r.id as ModuleId, metadata: metadataOf(r.id, r.metadata) }))
    )

    const remove = (id: ModuleId): Effect.Effect<void, ModuleNotFound | RepositoryError> =>
      write(db, "module.delete", () => deleteOne.run(id).changes > 0).pipe(
        Effect.flatMap((found) => (found ? Effect.void : Effect.fail(new ModuleNotFound({ moduleId: id }))))
      )

    return { load, save, findByHash, list, delete: remove } satisfies ModuleRepositories.ModuleRepositoryShape
  })

/** `ModuleRepository` on the shared `SqliteDatabase`. */
export const layerFromDatabase: Layer.Layer<ModuleRepository, RepositoryError, SqliteDatabase.SqliteDatabase> =
  Layer.effect(ModuleRepository, SqliteDatabase.SqliteDatabase.use(make))

/** `ModuleRepository` on its own connection to the database at `options.path` (closed with the layer). */
export const layer = (options: SqliteDatabase.Options): Layer.Layer<ModuleRepository, RepositoryError> =>
  Layer.provide(layerFromDatabase, SqliteDatabase.layer(options))
