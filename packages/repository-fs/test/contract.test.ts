/**
 * The shared repository contract against the file-system adapters, each test
 * on a fresh directory.
 */
import { instanceRepositoryContract, moduleRepositoryContract, TestFiles } from "@agent-runtime/repository-contract"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as path from "node:path"
import { FsInstanceRepository, FsModuleRepository, FsRepositories } from "../src/index.js"

const inTemp = <A, E>(f: (directory: string) => Layer.Layer<A, E>) =>
  Layer.unwrap(Effect.map(TestFiles.tempDirectory(), f))

moduleRepositoryContract("fs", () => inTemp((directory) => FsModuleRepository.layer({ directory })))
instanceRepositoryContract("fs", () => inTemp((directory) => FsInstanceRepository.layer({ directory })))
// the combined layer, with nested directories created on open
moduleRepositoryContract("fs (FsRepositories.layer)", () =>
  inTemp((directory) => FsRepositories.layer({ directory: path.join(directory, "a", "b") }))
)
instanceRepositoryContract("fs (FsRepositories.layer)", () =>
  inTemp((directory) => FsRepositories.layer({ directory: path.join(directory, "a", "b") }))
)
// snapshots stored without compression
instanceRepositoryContract("fs (compressSnapshots: false)", () =>
  inTemp((directory) => FsInstanceRepository.layer({ directory, compressSnapshots: false }))
)
