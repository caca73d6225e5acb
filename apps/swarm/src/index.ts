/**
 * `@agent-runtime/swarm` — hundreds of real, signed WebAssembly agents
 * through the whole lifecycle of the Runtime context (`runSwarm`, in memory
 * or on durable repositories with crash recovery), with a report
 * (`formatText`, `toJson`) and a progress renderer for stderr.
 *
 * @since 0.1.0
 */
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
