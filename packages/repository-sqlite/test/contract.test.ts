/**
 * The shared repository contract against the SQLite adapters, each test on a
 * fresh database file: the combined layer (one connection for all three) and
 * the individual layers.
 */
import {
  instanceRepositoryContract,
  metricsRepositoryContract,
  moduleRepositoryContract,
  TestFiles
} from "@agent-runtime/repository-contract"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as path from "node:path"
import {
  SqliteInstanceRepository,
  SqliteMetricsRepository,
  SqliteModuleRepository,
  SqliteRepositories
} from "../src/index.js"

const inTemp = <A, E>(f: (file: string) => Layer.Layer<A, E>) =>
  Layer.unwrap(Effect.map(TestFiles.tempDirectory(), (dir) => f(path.join(dir, "runtime.sqlite"))))

moduleRepositoryContract("sqlite", () => inTemp((p) => SqliteRepositories.layer({ path: p })))
instanceRepositoryContract("sqlite", () => inTemp((p) => SqliteRepositories.layer({ path: p })))
metricsRepositoryContract("sqlite", () => inTemp((p) => SqliteRepositories.layer({ path: p })))

moduleRepositoryContract("sqlite (SqliteModuleRepository.layer)", () =>
  inTemp((p) => SqliteModuleRepository.layer({ path: p }))
)
instanceRepositoryContract("sqlite (SqliteInstanceRepository.layer)", () =>
  inTemp((p) => SqliteInstanceRepository.layer({ path: p }))
)
metricsRepositoryContract("sqlite (SqliteMetricsRepository.layer)", () =>
  inTemp((p) => SqliteMetricsRepository.layer({ path: p }))
)
// snapshots stored without compression
instanceRepositoryContract("sqlite (compressSnapshots: false)", () =>
  inTemp((p) => SqliteInstanceRepository.layer({ path: p, compressSnapshots: false }))
)
