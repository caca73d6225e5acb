/**
 * `@agent-runtime/swarm` — hundreds of real, signed WebAssembly agents
 * through the whole lifecycle of the Runtime context (`runSwarm`, in memory
 * or on durable repositories with crash recovery), with a report
 * (`formatText`, `toJson`), a progress renderer for stderr, the ack log's
 * format and comparison (`AckLog`), and the workload checkpoint a resumed
 * run continues from (`Checkpoints`; on SQLite: `src/SqliteCheckpoints.ts`).
 *
 * @since 0.1.0
 */
export * as AckLog from "./AckLog.js"
export { type Checkpoint, Checkpoints, type CheckpointsShape, makeMemoryCheckpoints } from "./Persistence.js"
export * as Progress from "./Progress.js"
export { formatText, type RefusedModule, type RestoreFailure, type SwarmReport, toJson } from "./Report.js"
export {
  type AgentType,
  agentTypes,
  DEFAULT_AGENTS,
  DEFAULT_ROUNDS,
  DEFAULT_SEED,
  MIN_AGENTS,
  planCounts,
  runSwarm,
  type SwarmOptions,
  type SwarmPersistence
} from "./Swarm.js"
export { flipOneByte } from "./Tamper.js"
