/**
 * `@agent-runtime/repository-fs` — `ModuleRepository` and `InstanceRepository`
 * on a plain directory, for Node hosts without SQLite: atomic writes (temp
 * file + fsync + rename), checksummed (and compressed) snapshot files in the domain's `SnapshotCodec` format, typed `RepositoryError`s.
 *
 * @since 0.1.0
 */
export * as FsInstanceRepository from "./FsInstanceRepository.js"
export * as FsModuleRepository from "./FsModuleRepository.js"
export * as FsRepositories from "./FsRepositories.js"
export { layer } from "./FsRepositories.js"
