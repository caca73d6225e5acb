/**
 * `@agent-runtime/repository-sqlite` — `ModuleRepository`,
 * `InstanceRepository` and `MetricsRepository` on SQLite through
 * better-sqlite3 (Node): WAL mode, a versioned schema with migrations, one
 * transaction per write, metrics aggregated in SQL, typed `RepositoryError`s.
 *
 * @since 0.1.0
 */
export * as SqliteDatabase from "./SqliteDatabase.js"
export * as SqliteInstanceRepository from "./SqliteInstanceRepository.js"
export * as SqliteMetricsRepository from "./SqliteMetricsRepository.js"
export * as SqliteModuleRepository from "./SqliteModuleRepository.js"
export * as SqliteRepositories from "./SqliteRepositories.js"
export { layer } from "./SqliteRepositories.js"
