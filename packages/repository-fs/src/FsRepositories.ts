/**
 * Both file-system repositories over one directory: modules in
 * `<directory>/modules`, snapshots in `<directory>/snapshots` (see
 * `FsModuleRepository` and `FsInstanceRepository` for the file layouts).
 *
 * @example
 * const Persistence = FsRepositories.layer({ directory: "/var/lib/agent-runtime" })
 *
 * @since 0.1.0
 */
import type { InstanceRepository, ModuleRepository, RepositoryError } from "@agent-runtime/domain"
import * as Layer from "effect/Layer"
import * as path from "node:path"
import * as FsInstanceRepository from "./FsInstanceRepository.js"
import * as FsModuleRepository from "./FsModuleRepository.js"

/** Options of the file-system repositories. */
export interface Options {
  /** Root directory; `modules/` and `snapshots/` are created in it if missing. */
  readonly directory: string
  /** gzip snapshot payloads (default `true`; see `FsInstanceRepository.Options`). */
  readonly compressSnapshots?: boolean | undefined
}

/**
 * `ModuleRepository` + `InstanceRepository` on one directory. Building fails
 * with `RepositoryError { operation: "open" }` if a directory cannot be
 * created or is not readable and writable.
 */
export const layer = (options: Options): Layer.Layer<ModuleRepository | InstanceRepository, RepositoryError> =>
  Layer.merge(
    FsModuleRepository.layer({ directory: path.join(options.directory, "modules") }),
    FsInstanceRepository.layer({
      directory: path.join(options.directory, "snapshots"),
      compressSnapshots: options.compressSnapshots
    })
  )
