/**
 * The contract against the in-memory adapters of `@agent-runtime/domain`:
 * the reference every other adapter is compared with.
 */
import { InstanceRepositories, MetricsRepositories, ModuleRepositories } from "@agent-runtime/domain"
import { instanceRepositoryContract, metricsRepositoryContract, moduleRepositoryContract } from "../src/index.js"

moduleRepositoryContract("memory", () => ModuleRepositories.layerMemory)
instanceRepositoryContract("memory", () => InstanceRepositories.layerMemory)
metricsRepositoryContract("memory", () => MetricsRepositories.layerMemory)
