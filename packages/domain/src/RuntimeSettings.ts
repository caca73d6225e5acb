/**
 * `RuntimeSettings`: the settings of one `AgentRuntime` — its resource pool,
 * compile cache and module bounds, health and GC rules, hard limits,
 * persistence and maintenance intervals — with the defaults every field
 * falls back to. Memory in bytes, durations in ms.
 *
 * @since 0.1.0
 */
import * as HealthChecker from "./HealthChecker.js"
import * as MemoryBudget from "./MemoryBudget.js"
import * as MemoryManager from "./MemoryManager.js"
import { defaultPoolConfig, type ResourcePoolConfig } from "./ResourcePool.js"

/** Runtime settings; every field has a default (`defaultSettings`). */
export interface RuntimeSettings {
  /** Human-readable runtime name (spec `RuntimeEnvironment.name`). */
  readonly name: string
  /** Fixed runtime id; a random one when omitted. */
  readonly id?: string | undefined
  readonly pool: ResourcePoolConfig
  /** Compile cache bound, bytes of module code (default 256 MiB). */
  readonly cacheMaxBytes: number
  /** Largest module accepted by `loadModule`, bytes (default 64 MiB). */
  readonly maxModuleBytes: number
  readonly health: HealthChecker.HealthSettings
  readonly gc: MemoryManager.GcSettings
  /** Handle memory pressure automatically when a call pushes the pool above its warning threshold (default true). */
  readonly autoPressure: boolean
  /** Evict an agent whose call timed out (its instance was killed), default true. */
  readonly evictOnTimeout: boolean
  /**
   * Deadline of an instantiation in ms (the start function; a worker's own
   * start-up is not charged to it), on engines that can preempt; default
   * 10 000. An agent with `timeoutMs` gets that deadline instead, bounded by
   * this one. A runaway start function fails the spawn with `Timeout`.
   */
  readonly startTimeoutMs: number
  /**
   * What happens to an agent's instance after a call traps, for agents
   * whose `AgentConfig.onTrap` is unset: `"restore"` (default) discards it
   * and restores the agent from its last snapshot (or re-instantiates it
   * fresh) before its next call, publishing `AgentRecovered`; `"keep"` keeps
   * it, its memory as the trap left it (the WebAssembly default).
   */
  readonly onTrap: "restore" | "keep"
  /**
   * Hard limits through module rewriting (`@agent-runtime/wasm-binary`):
   * - `memoryCap`: the memory maximum becomes the agent's budget in pages, so
   *   `memory.grow` past it returns -1 inside the guest (default true);
   * - `exportState`: internal mutable globals (and an unexported memory) get
   *   hidden exports so snapshots are complete (default true, on engines
   *   with `capabilities.snapshots`);
   * - `defaultFuel`: the fuel per call (fuel units, Wasmtime's costs: about
   *   one unit per instruction) of an agent spawned with neither `fuel` nor
   *   `timeoutMs` on an engine that cannot preempt a call
   *   (`capabilities.preemptiveTimeout = false`) but meters fuel and compiles
   *   at run time, so no call runs unbounded on the host's thread. Default
   *   1 000 000 000 (about a second of guest work on the native engine; every
   *   fixture and swarm workload needs far less). `false` disables it: such a
   *   config is then refused with `InvalidConfig`. Engines that compile
   *   nothing at run time (edge) run only the variants bundled for them, so
   *   give those agents `fuel` in the bundle's config.
   * Fuel metering is otherwise per agent (`AgentConfig.fuel`).
   */
  readonly limits: {
    readonly memoryCap: boolean
    readonly exportState: boolean
    readonly defaultFuel: number | false
  }
  /**
   * Durability through the `InstanceRepository` (crash recovery):
   * - `snapshotAfterCalls`: save an agent's state after every successful
   *   call, before the call returns — an acknowledged call survives a crash;
   * - `snapshotIntervalMs`: save every live agent's state on this schedule;
   * - `restoreOnStart`: when the runtime starts, bring back every saved agent
   *   (its module from the `ModuleRepository`, verified again).
   * Evicting an agent (any reason but `Shutdown`) deletes its saved state.
   * Default: all off.
   */
  readonly persistence: {
    readonly snapshotAfterCalls?: boolean | undefined
    readonly snapshotIntervalMs?: number | undefined
    readonly restoreOnStart?: boolean | undefined
  }
  /**
   * Background maintenance intervals in ms (health checks, GC check, metrics
   * samples); a missing interval disables that loop. Default: all disabled.
   */
  readonly maintenance: {
    readonly healthIntervalMs?: number | undefined
    readonly gcIntervalMs?: number | undefined
    readonly metricsIntervalMs?: number | undefined
  }
}

/** The default of `limits.defaultFuel`: 10^9 fuel units per call. */
export const DEFAULT_FUEL = 1_000_000_000

/** 1 GiB pool, spec thresholds, 256 MiB cache, 64 MiB modules, spec health rules, 1 h cache idle. */
export const defaultSettings: RuntimeSettings = {
  name: "agent-runtime",
  pool: defaultPoolConfig,
  cacheMaxBytes: 256 * MemoryBudget.MiB,
  maxModuleBytes: 64 * MemoryBudget.MiB,
  health: HealthChecker.defaultSettings,
  gc: MemoryManager.defaultSettings,
  autoPressure: true,
  evictOnTimeout: true,
  startTimeoutMs: 10_000,
  onTrap: "restore",
  limits: { memoryCap: true, exportState: true, defaultFuel: DEFAULT_FUEL },
  persistence: {},
  maintenance: {}
}

/** Settings with some fields (and nested pool/health/gc fields) overridden. */
export interface SettingsInput {
  readonly name?: string
  readonly id?: string
  readonly pool?: Partial<ResourcePoolConfig>
  readonly cacheMaxBytes?: number
  readonly maxModuleBytes?: number
  readonly health?: Partial<HealthChecker.HealthSettings>
  readonly gc?: Partial<MemoryManager.GcSettings>
  readonly autoPressure?: boolean
  readonly evictOnTimeout?: boolean
  readonly startTimeoutMs?: number
  readonly onTrap?: "restore" | "keep"
  readonly maintenance?: RuntimeSettings["maintenance"]
  readonly persistence?: RuntimeSettings["persistence"]
  readonly limits?: Partial<RuntimeSettings["limits"]>
}

/**
 * Merges overrides onto `defaultSettings`; the pool's onto `pool` (the
 * program's `ResourcePoolConfig`, when the runtime's layer passes it;
 * default `defaultSettings.pool`).
 */
export const resolveSettings = (
  input: SettingsInput = {},
  pool: ResourcePoolConfig = defaultSettings.pool
): RuntimeSettings => ({
  ...defaultSettings,
  ...input,
  pool: { ...pool, ...input.pool },
  health: { ...defaultSettings.health, ...input.health },
  gc: { ...defaultSettings.gc, ...input.gc },
  persistence: { ...defaultSettings.persistence, ...input.persistence },
  limits: { ...defaultSettings.limits, ...input.limits },
  maintenance: { ...defaultSettings.maintenance, ...input.maintenance }
})
