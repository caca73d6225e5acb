/**
 * `RuntimeEnvironment` (spec "Aggregate Root: RuntimeEnvironment"): the
 * state of one runtime — its modules, compile cache, agent instances and
 * resource pool — and the synchronous transitions that keep its invariants:
 *
 * 1. Resource limits: reservations never exceed the pool (atomic reserve).
 * 2. Module isolation: every instance has its own linear memory (engines).
 * 3. Health thresholds: unhealthy instances are recovered or evicted.
 * 4. Unique instances: one instance per agent id — a spawn claims the id
 *    before it instantiates, so a racing spawn sees `AgentAlreadyExists`.
 * 5. Module verification: only verified modules are registered.
 *
 * The aggregate is a mutable object with synchronous methods: a JavaScript
 * synchronous step cannot interleave with another fiber, and `AgentRuntime`
 * serialises every multi-step change with its lock. It does no I/O and reads
 * no clock: callers pass `now` (ms since the Unix epoch) from Effect's `Clock`.
 *
 * @since 0.1.0
 */
import * as AgentConfigs from "./AgentConfig.js"
import type { AgentConfig } from "./AgentConfig.js"
import { AgentInstance, type Mailbox } from "./AgentInstance.js"
import type { AgentId, InstanceId, ModuleHash, ModuleId, RuntimeId } from "./Ids.js"
import * as MemoryBudget from "./MemoryBudget.js"
import { ModuleCache } from "./ModuleCache.js"
import type { PressureLevel } from "./PressureLevel.js"
import { ResourcePool, type ResourcePoolConfig } from "./ResourcePool.js"
import { AgentAlreadyExists, InsufficientMemory, ModuleNotFound, ResourceExhausted } from "./RuntimeError.js"
import type { RuntimePlatform } from "./RuntimePlatform.js"
import type { RuntimeStatus } from "./RuntimeStatus.js"
import type { WasmModule } from "./WasmModule.js"

/** Cumulative counters (spec `RuntimeMetrics`). */
export interface RuntimeCounters {
  invocations: number
  invocationErrors: number
  spawned: number
  evicted: number
  pressureEvents: number
  healthChecks: number
  /** Snapshots that could not be saved (persistence). */
  snapshotFailures: number
}

/**
 * An agent whose instance was released after its state was saved to the
 * `InstanceRepository` (passivation, DESIGN.md "GC / compaction"). It keeps
 * its identity, config and counters; the next call rehydrates it.
 */
export interface PassivatedAgent {
  readonly agentId: AgentId
  readonly moduleId: ModuleId
  readonly moduleHash: ModuleHash
  readonly config: AgentConfig
  /** Lifecycle state before passivation (`Running` or `Paused`). */
  readonly state: "Running" | "Paused"
  readonly health: AgentInstance["health"]
  readonly consecutiveFailures: number
  readonly invocationCount: number
  readonly errorCount: number
  readonly createdAt: number
  readonly lastActivity: number
  readonly passivatedAt: number
}

/** A reservation made for an agent before it is spawned (consumed `AgentJoined`). */
export interface PreparedAgent {
  readonly agentId: AgentId
  readonly moduleId: ModuleId
  readonly reserved: number
  readonly preparedAt: number
}

export class RuntimeEnvironment {
  status: RuntimeStatus = "Initializing"
  readonly modules = new Map<ModuleId, WasmModule>()
  readonly instances = new Map<AgentId, AgentInstance>()
  readonly prepared = new Map<AgentId, PreparedAgent>()
  readonly passivated = new Map<AgentId, PassivatedAgent>()
  readonly pool: ResourcePool
  readonly cache: ModuleCache
  readonly counters: RuntimeCounters = {
    invocations: 0,
    invocationErrors: 0,
    spawned: 0,
    evicted: 0,
    pressureEvents: 0,
    healthChecks: 0,
    snapshotFailures: 0
  }
  lastGc: number

  constructor(
    readonly id: RuntimeId,
    readonly name: string,
    readonly platform: RuntimePlatform,
    poolConfig: ResourcePoolConfig,
    cacheMaxBytes: number,
    readonly startedAt: number
  ) {
    this.pool = new ResourcePool(poolConfig)
    this.cache = new ModuleCache(cacheMaxBytes)
    this.lastGc = startedAt
  }

  /** The module with this hash, if loaded. */
  moduleByHash(hash: ModuleHash): WasmModule | undefined {
    for (const m of this.modules.values()) if (m.hash === hash) return m
    return undefined
  }

  /**
   * Claims `agentId` for a new instance of `moduleId` and reserves its memory
   * in one step (Invariants 1 and 4). A reservation prepared by `AgentJoined`
   * for this agent is taken over. The instance starts in `Starting` with no
   * engine instance yet. A new agent (not a rehydration, admitted before)
   * beyond the pool's `maxInstances` live instances → `ResourceExhausted`.
   */
  claim(input: {
    readonly agentId: AgentId
    readonly moduleId: ModuleId
    readonly instanceId: InstanceId
    readonly config: AgentConfig
    readonly now: number
    /** The agent's mailbox; omitted → made on its first use (`AgentInstance.mailbox`). */
    readonly mailbox?: Mailbox | undefined
    /** Claiming the id of a passivated agent to rehydrate it. */
    readonly activating?: boolean
    /** Creation time to keep (rehydration keeps the agent's original creation time). */
    readonly createdAt?: number
  }): AgentInstance | AgentAlreadyExists | ModuleNotFound | InsufficientMemory | ResourceExhausted {
    if (this.instances.has(input.agentId) || (this.passivated.has(input.agentId) && input.activating !== true)) {
      return new AgentAlreadyExists({ agentId: input.agentId })
    }
    if (input.activating !== true) {
      const refused = this.pool.admitInstance(this.instances.size)
      if (refused instanceof ResourceExhausted) return refused
    }
    const module = this.modules.get(input.moduleId)
    if (module === undefined) return new ModuleNotFound({ moduleId: input.moduleId })
    const requested = AgentConfigs.admission(input.config, this.pool.overcommit)
    const allocation = this.pool.allocateMemory(input.agentId, requested, input.now)
    if (allocation instanceof InsufficientMemory) return allocation
    this.prepared.delete(input.agentId)
    this.passivated.delete(input.agentId)
    const instance = new AgentInstance(
      input.instanceId,
      input.agentId,
      module.id,
      module.hash,
      input.config,
      input.createdAt ?? input.now,
      MemoryBudget.make(input.config.memoryLimit),
      input.mailbox
    )
    this.instances.set(input.agentId, instance)
    return instance
  }

  /** Removes an agent and releases its memory; returns it and the bytes released. */
  remove(agentId: AgentId): { readonly instance: AgentInstance; readonly released: number } | undefined {
    const instance = this.instances.get(agentId)
    if (instance === undefined) return undefined
    this.instances.delete(agentId)
    instance.markRemoved()
    const released = this.pool.releaseMemory(agentId)
    return { instance, released }
  }

  /** Reserves memory for an agent that is about to join (consumed `AgentJoined`). */
  prepare(
    agentId: AgentId,
    moduleId: ModuleId,
    bytes: number,
    now: number
  ): PreparedAgent | InsufficientMemory | AgentAlreadyExists {
    if (this.instances.has(agentId)) return new AgentAlreadyExists({ agentId })
    const allocation = this.pool.allocateMemory(agentId, bytes, now)
    if (allocation instanceof InsufficientMemory) return allocation
    const prepared: PreparedAgent = { agentId, moduleId, reserved: bytes, preparedAt: now }
    this.prepared.set(agentId, prepared)
    return prepared
  }

  /** Drops a prepared reservation; returns the bytes released. */
  unprepare(agentId: AgentId): number {
    if (!this.prepared.delete(agentId)) return 0
    return this.pool.releaseMemory(agentId)
  }

  /** Records an instance's linear memory after a call, in its budget and in the pool. */
  recordMemory(instance: AgentInstance, bytes: number): void {
    instance.recordMemory(bytes)
    this.pool.recordResident(instance.agentId, bytes)
  }

  /**
   * Eviction candidates under memory pressure, in eviction order: unhealthy
   * (or failed) first, then least recently active, then largest (DESIGN.md
   * "Memory pressure"). `Critical` instances and instances still starting are
   * never candidates.
   */
  pressureCandidates(): ReadonlyArray<AgentInstance> {
    const rank = (i: AgentInstance) => (i.state === "Failed" || i.health === "Unhealthy" ? 0 : 1)
    const charge = (i: AgentInstance) => {
      const a = this.pool.allocation(i.agentId)
      return a === undefined ? i.budget.used : Math.max(a.reserved, a.resident)
    }
    return [...this.instances.values()]
      .filter((i) => i.state !== "Critical" && i.instance !== undefined)
      .sort((a, b) => rank(a) - rank(b) || a.lastActivity - b.lastActivity || charge(b) - charge(a))
  }

  /**
   * Recomputes the status from the pool and the instances (Ready / Running ↔
   * Degraded). O(agents): called when the status is read, never on a hot path.
   */
  refreshStatus(): RuntimeStatus {
    if (this.status === "ShuttingDown" || this.status === "Stopped" || this.status === "Initializing")
      return this.status
    if (this.instances.size === 0) {
      this.status = "Ready"
      return this.status
    }
    const level: PressureLevel = this.pool.pressureLevel()
    let unhealthy = false
    for (const i of this.instances.values()) {
      if (i.health === "Unhealthy" || i.state === "Failed") {
        unhealthy = true
        break
      }
    }
    this.status = level === "High" || level === "Critical" || unhealthy ? "Degraded" : "Running"
    return this.status
  }
}
