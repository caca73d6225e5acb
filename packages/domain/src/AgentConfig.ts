/**
 * `AgentConfig`: how one agent is spawned (spec `spawn_agent(agent_id, module_id, config)`).
 *
 * @since 0.1.0
 */
import type { HostImports } from "./WasmEngine.js"
import { InvalidConfig } from "./RuntimeError.js"
import { MiB } from "./MemoryBudget.js"

/** Smallest memory limit an agent may ask for: 1 MiB (spec `AgentFactory.validate_config`). */
export const MIN_MEMORY_LIMIT = 1 * MiB
/** Largest memory limit an agent may ask for: 512 MiB (spec `AgentFactory.validate_config`). */
export const MAX_MEMORY_LIMIT = 512 * MiB

export interface AgentConfig {
  /** Hard memory limit in bytes, 1 MiB ≤ limit ≤ 512 MiB (the agent's `MemoryBudget.limit`). */
  readonly memoryLimit: number
  /**
   * Bytes to reserve in the resource pool at spawn when the pool over-commits
   * (`ResourcePoolConfig.overcommit: true`), 0 ≤ reservation ≤ `memoryLimit`.
   * Defaults to `memoryLimit`. A smaller reservation over-commits the pool
   * like a Kubernetes memory *request*: the pool then counts max(reservation,
   * actual memory) per agent, so agents that grow push the pool into memory
   * pressure. Without `overcommit` (the default) it is ignored: the agent is
   * admitted against its `memoryLimit` (spec invariant 1 holds strictly).
   */
  readonly memoryReservation?: number | undefined
  /** Deadline per invocation in ms, enforced by engines that can preempt (`capabilities.preemptiveTimeout`). */
  readonly timeoutMs?: number | undefined
  /**
   * Fuel per invocation (units of metered work), for engines with
   * `capabilities.fuel`. Omitted (and no `timeoutMs`) on an engine that
   * cannot preempt a call: the runtime's `limits.defaultFuel`.
   */
  readonly fuel?: number | undefined
  /** Spawn the agent as `Critical`: protected from eviction under memory pressure. */
  readonly critical?: boolean | undefined
  /** Start the agent (run `_initialize`) as part of the spawn. Default `true`. */
  readonly autoStart?: boolean | undefined
  /** Host imports offered to the agent (subject to the `ExecutionAuthorizer`). */
  readonly imports?: HostImports | undefined
  /**
   * After a call traps: `"restore"` discards the instance and restores the
   * agent from its last snapshot (or re-instantiates it fresh) before its
   * next call (`AgentRecovered`); `"keep"` keeps the instance, its memory as
   * the trap left it (the WebAssembly default). Default:
   * `RuntimeSettings.onTrap` (`"restore"`). Issue 12 item 7.
   */
  readonly onTrap?: "restore" | "keep" | undefined
}

/** Checks the limits of the spec (1 MiB ≤ memoryLimit ≤ 512 MiB) and the reservation. */
export const validate = (config: AgentConfig): InvalidConfig | undefined => {
  const { memoryLimit, memoryReservation } = config
  if (!Number.isFinite(memoryLimit) || !Number.isInteger(memoryLimit)) {
    return new InvalidConfig({ reason: `memoryLimit must be an integer number of bytes, got ${memoryLimit}` })
  }
  if (memoryLimit < MIN_MEMORY_LIMIT) {
    return new InvalidConfig({ reason: `memory limit too low: ${memoryLimit} bytes < ${MIN_MEMORY_LIMIT} (1 MiB)` })
  }
  if (memoryLimit > MAX_MEMORY_LIMIT) {
    return new InvalidConfig({ reason: `memory limit too high: ${memoryLimit} bytes > ${MAX_MEMORY_LIMIT} (512 MiB)` })
  }
  if (memoryReservation !== undefined) {
    if (!Number.isInteger(memoryReservation) || memoryReservation < 0 || memoryReservation > memoryLimit) {
      return new InvalidConfig({
        reason: `memoryReservation must be an integer in [0, memoryLimit], got ${memoryReservation}`
      })
    }
  }
  if (config.onTrap !== undefined && config.onTrap !== "restore" && config.onTrap !== "keep") {
    return new InvalidConfig({ reason: `onTrap must be "restore" or "keep", got ${String(config.onTrap)}` })
  }
  if (config.timeoutMs !== undefined && !(config.timeoutMs > 0)) {
    return new InvalidConfig({ reason: `timeoutMs must be > 0, got ${config.timeoutMs}` })
  }
  if (config.fuel !== undefined && !(Number.isSafeInteger(config.fuel) && config.fuel > 0)) {
    return new InvalidConfig({
      reason: `fuel must be a positive integer ≤ ${Number.MAX_SAFE_INTEGER} (2^53 − 1) fuel units, got ${config.fuel}`
    })
  }
  return undefined
}

/** The reservation this config asks for, bytes: `memoryReservation`, else `memoryLimit`. */
export const reservation = (config: AgentConfig): number => config.memoryReservation ?? config.memoryLimit

/**
 * The bytes the pool admits this agent against: its `reservation` when the
 * pool over-commits (`overcommit`), else its `memoryLimit` — the most it can
 * hold with memory caps on — so the pool's usage never exceeds its total
 * (spec invariant 1; issue 12 item 9).
 */
export const admission = (config: AgentConfig, overcommit: boolean): number =>
  overcommit ? reservation(config) : config.memoryLimit
