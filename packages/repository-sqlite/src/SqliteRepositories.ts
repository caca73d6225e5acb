/**
 * All three SQLite repositories — `ModuleRepository`, `InstanceRepository`,
 * `MetricsRepository` — on one database file and one connection, opened
 * (WAL, migrations) when the layer is built and closed when its scope closes.
 *
 * @example
 * const Persistence = SqliteRepositories.layer({ path: "/var/lib/agent-runtime/runtime.sqlite" })
 * // Effect.provide(program, Persistence)
 *
 * @since 0.1.0
 */
import type { InstanceRepository, MetricsRepository, ModuleRepository, RepositoryError } from "@agent-runtime/domain"
import * as Layer from "effect/Layer"
import * as SqliteDatabase from "./SqliteDatabase.js"
import * as SqliteInstanceRepository from "./SqliteInstanceRepository.js"
import * as SqliteMetricsRepository from "./SqliteMetricsRepository.js"
import * as SqliteModuleRepository from "./SqliteModuleRepository.js"

/** The three repositories on the shared `SqliteDatabase` (for callers that provide the database themselves). */
export const layerFromDatabase: Layer.Layer<
  ModuleRepository | InstanceRepository | MetricsRepository,
  RepositoryError,
  SqliteDatabase.SqliteDatabase
> = Layer.mergeAll(
  SqliteModuleRepository.layerFromDatabase,
  SqliteInstanceRepository.layerFromDatabase,
  SqliteMetricsRepository.layerFromDatabase
)

/**
 * The three repositories on the database at `options.path` (snapshots
 * gzip-compressed unless `compressSnapshots: false`). Building fails with
 * `RepositoryError { operation: "open" }` (see `SqliteDatabase`).
 */
export const layer = (
  options: SqliteDatabase.Options & SqliteInstanceRepository.Options
): Layer.Layer<ModuleRepository | InstanceRepository | MetricsRepository, RepositoryError> =>
  Layer.provide(
    Layer.mergeAll(
      SqliteModuleRepository.layerFromDatabase,
      SqliteInstanceRepository.layerFromDatabaseWith(options),
      SqliteMetricsRepository.layerFromDatabase
    ),
    SqliteDatabase.layer(options)
  )
