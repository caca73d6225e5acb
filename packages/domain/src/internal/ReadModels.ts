/**
 * Read models of the runtime: the read-only views of one agent
 * (`AgentInfo`), of the runtime (`RuntimeStats`), and the metrics sample
 * recorded into the `MetricsRepository` (spec `RuntimeMetrics`).
 *
 * @since 0.1.0
 */
import * as Clock from "effect/Clock"
import * as Effect from "effect/Effect"
import type { AgentInstance, InstanceState } from "../AgentInstance.js"
import type { HealthStatus } from "../Health.js"
import type { AgentId, InstanceId, ModuleId, RuntimeId } from "../Ids.js"
import type * as MemoryBudget from "../MemoryBudget.js"
import type { RuntimeMetrics } from "../MetricsRepository.js"
import type { CacheStats } from "../ModuleCache.js"
import type * as PressureLevel from "../PressureLevel.js"
import type { RepositoryError } from "../RuntimeError.js"
import type { RuntimePlatform } from "../RuntimePlatform.js"
import type { RuntimeStatus } from "../RuntimeStatus.js"
import type { RuntimeState } from "./RuntimeState.js"

/** A read-only view of one agent. Memory in bytes; times in ms since the epoch. */
export interface AgentInfo {
  readonly agentId: AgentId
  readonly instanceId: InstanceId
  readonly moduleId: ModuleId
  readonly state: InstanceState
  readonly health: HealthStatus
  readonly consecutiveFailures: number
  readonly budget: MemoryBudget.MemoryBudget
  readonly createdAt: number
  readonly lastActivity: number
  readonly invocationCount: number
  readonly errorCount: number
  readonly lastError: string | undefined
  /** Fuel left after the agent's last metered call (fuel units); `undefined` without `fuel`. */
  readonly fuelRemaining: number | undefined
}

/** A read-only view of the runtime. Memory in bytes. */
export interface RuntimeStats {
  readonly id: RuntimeId
  readonly platform: RuntimePlatform
  readonly status: RuntimeStatus
  readonly modules: number
  readonly agents: number
  /** Agents passivated (state in the `InstanceRepository`, no instance). */
  readonly passivated: number
  readonly agentsByState: Readonly<Record<InstanceState, number>>
  readonly memory: {
    readonly total: number
    readonly used: number
    readonly reserved: number
    readonly available: number
    readonly pressureLevel: PressureLevel.PressureLevel
  }
  /** Worker threads: the pool's limit (`ResourcePoolConfig.maxThreads`) and those the engine holds (`WasmEngineShape.threads`). */
  readonly threads: { readonly max: number; readonly inUse: number }
  readonly cache: CacheStats
  readonly invocations: number
  readonly invocationErrors: number
  readonly spawned: number
  readonly evicted: number
  readonly pressureEvents: number
  readonly healthChecks: number
  /** Snapshots that could not be saved (persistence). */
  readonly snapshotFailures: number
}

/** Agents brought back from the `InstanceRepository`, and the ones that could not be, with the reason. */
export interface RestoreResult {
  readonly restored: ReadonlyArray<AgentId>
  readonly failed: ReadonlyArray<{ readonly agentId: AgentId; readonly reason: string }>
}

/** The read-only view of an agent. */
export const toInfo = (i: AgentInstance): AgentInfo => ({
  agentId: i.agentId,
  instanceId: i.id,
  moduleId: i.moduleId,
  state: i.state,
  health: i.health,
  consecutiveFailures: i.consecutiveFailures,
  budget: i.budget,
  createdAt: i.createdAt,
  lastActivity: i.lastActivity,
  invocationCount: i.invocationCount,
  errorCount: i.errorCount,
  lastError: i.lastError,
  fuelRemaining: i.fuelRemaining
})

/** The read-only views of every live agent. */
export const agents = (state: RuntimeState): Effect.Effect<ReadonlyArray<AgentInfo>> =>
  Effect.sync(() => [...state.env.instances.values()].map(toInfo))

/** The runtime's status, recomputed from the pool and the instances. */
export const status = (state: RuntimeState): Effect.Effect<RuntimeStatus> =>
  Effect.sync(() => state.env.refreshStatus())

/** The read-only view of the runtime. */
export const stats = (state: RuntimeState): Effect.Effect<RuntimeStats> =>
  Effect.sync(() => {
    const { env } = state
    const agentsByState: Record<InstanceState, number> = {
      Starting: 0,
      Running: 0,
      Paused: 0,
      Stopping: 0,
      Stopped: 0,
      Failed: 0,
      Critical: 0
    }
    for (const i of env.instances.values()) agentsByState[i.state]++
    return {
      id: state.id,
      platform: env.platform,
      status: env.refreshStatus(),
      modules: env.modules.size,
      agents: env.instances.size,
      passivated: env.passivated.size,
      agentsByState,
      memory: {
        total: env.pool.totalMemory,
        used: env.pool.usedMemory(),
        reserved: env.pool.reservedMemory(),
        available: env.pool.availableMemory(),
        pressureLevel: env.pool.pressureLevel()
      },
      threads: { max: env.pool.maxThreads, inUse: env.pool.usageCounts().threads },
      cache: env.cache.stats(),
      ...env.counters
    }
  })

/** Samples the runtime into the `MetricsRepository` and returns the sample. */
export const recordMetrics = (state: RuntimeState): Effect.Effect<RuntimeMetrics, RepositoryError> =>
  Effect.gen(function* () {
    const { env } = state
    const now = yield* Clock.currentTimeMillis
    const cache = env.cache.stats()
    const sample: RuntimeMetrics = {
      timestamp: now,
      agents: env.instances.size,
      memoryUsed: env.pool.usedMemory(),
      memoryTotal: env.pool.totalMemory,
      pressureLevel: env.pool.pressureLevel(),
      invocations: env.counters.invocations,
      invocationErrors: env.counters.invocationErrors,
      evictions: env.counters.evicted,
      cacheHits: cache.hits,
      cacheMisses: cache.misses
    }
    yield* state.metricsRepo.record(sample)
    return sample
  })
