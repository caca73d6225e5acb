/**
 * `AgentRuntime`: the Effect service that owns one `RuntimeEnvironment`
 * aggregate and exposes the Runtime context's operations (spec "Services
 * Exposed"; DESIGN.md "Public API").
 *
 * Concurrency (DESIGN.md "The aggregate"): every change of the aggregate's
 * structure (load, spawn claim, evict, pressure handling, shutdown) runs under
 * one lock, so racing spawns of one id give exactly one instance. An
 * `invoke` does not take that lock: each agent is an actor with a mailbox
 * (a one-permit semaphore) — one invocation at a time per agent, many agents
 * in parallel. The lock is never held while waiting for a mailbox.
 *
 * Time comes from Effect's `Clock`, randomness from `Random`, so tests run
 * with `TestClock`. Memory in bytes, times in ms since the Unix epoch,
 * durations in ms.
 *
 * @since 0.1.0
 */
import { FUEL_EXPORT, type FuncType, type ImportDesc, readModule, rewriteModule } from "@agent-runtime/wasm-binary"
import * as Cause from "effect/Cause"
import * as Clock from "effect/Clock"
import * as Context from "effect/Context"
import * as Deferred from "effect/Deferred"
import * as Effect from "effect/Effect"
import * as FiberSet from "effect/FiberSet"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Random from "effect/Random"
import type * as Scope from "effect/Scope"
import * as Semaphore from "effect/Semaphore"
import * as Stream from "effect/Stream"
import * as AgentConfigs from "./AgentConfig.js"
import * as CompileVariant from "./CompileVariant.js"
import type { AgentConfig } from "./AgentConfig.js"
import { type AgentInstance, type InstanceState, isInvocable, type LifecycleAction, transition } from "./AgentInstance.js"
import type { EvictionReason } from "./EvictionReason.js"
import * as EventBuses from "./EventBus.js"
import { EventBus } from "./EventBus.js"
import * as ExecutionAuthorizers from "./ExecutionAuthorizer.js"
import { ExecutionAuthorizer } from "./ExecutionAuthorizer.js"
import type { HealthCheck, HealthStatus } from "./Health.js"
import * as HealthChecker from "./HealthChecker.js"
import type { AgentId, EventId, InstanceId, ModuleId, RuntimeId } from "./Ids.js"
import * as InstanceRepositories from "./InstanceRepository.js"
import { InstanceRepository, type InstanceSnapshot, SNAPSHOT_VERSION } from "./InstanceRepository.js"
import * as MemoryBudget from "./MemoryBudget.js"
import type { CacheStats } from "./ModuleCache.js"
import * as MemoryManager from "./MemoryManager.js"
import * as MetricsRepositories from "./MetricsRepository.js"
import { MetricsRepository, type RuntimeMetrics } from "./MetricsRepository.js"
import type { ModuleMetadata } from "./ModuleMetadata.js"
import * as ModuleRepositories from "./ModuleRepository.js"
import { ModuleRepository } from "./ModuleRepository.js"
import { ModuleVerifier } from "./ModuleVerifier.js"
import * as PressureLevel from "./PressureLevel.js"
import type { ResourcePoolConfig } from "./ResourcePool.js"
import {
  AgentNotFound,
  AgentNotRunning,
  CompileError,
  FunctionNotFound,
  InstantiationError,
  MemoryExceeded,
  ModuleNotFound,
  ModuleTooLarge,
  RuntimeUnavailable,
  SignatureMismatch,
  Trap,
  type AgentAlreadyExists,
  type EngineInvokeError,
  type FuelExhausted,
  type InsufficientMemory,
  InvalidConfig,
  type InvalidSignature,
  type InvalidStateTransition,
  type InvokeError,
  type RepositoryError,
  type Timeout,
  Unauthorized
} from "./RuntimeError.js"
import { type PassivatedAgent, RuntimeEnvironment } from "./RuntimeEnvironment.js"
import { SnapshotMismatch } from "./SnapshotCodec.js"
import {
  AgentActivated,
  AgentEvicted,
  AgentPassivated,
  AgentSpawned,
  AgentStateChanged,
  HealthCheckCompleted,
  type DomainEvent,
  isRuntimeEvent,
  MemoryPressure,
  ModuleLoaded,
  type RuntimeEvent
} from "./RuntimeEvent.js"
import type { RuntimePlatform } from "./RuntimePlatform.js"
import { acceptsWork, type RuntimeStatus } from "./RuntimeStatus.js"
import {
  type CompiledModule,
  type EngineState,
  type HostImports,
  type HostMemory,
  type InvokeOutcome,
  type PreparedInvoke,
  WasmEngine
} from "./WasmEngine.js"
import * as WasmModules from "./WasmModule.js"
import type { WasmModule } from "./WasmModule.js"
import { checkArguments, type WasmValue } from "./WasmValue.js"

// ---------------------------------------------------------------------------
// Settings
// ---------------------------------------------------------------------------

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
   * Deadline of an instantiation in ms (the start function, and a worker's
   * start-up), on engines that can preempt; default 10 000. A runaway start
   * function fails the spawn with `Timeout`.
   */
  readonly startTimeoutMs: number
  /**
   * Hard limits through module rewriting (`@agent-runtime/wasm-binary`):
   * - `memoryCap`: the memory maximum becomes the agent's budget in pages, so
   *   `memory.grow` past it returns -1 inside the guest (default true);
   * - `exportState`: internal mutable globals (and an unexported memory) get
   *   hidden exports so snapshots are complete (default true, on engines
   *   with `capabilities.snapshots`).
   * Fuel metering is per agent (`AgentConfig.fuel`).
   */
  readonly limits: {
    readonly memoryCap: boolean
    readonly exportState: boolean
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

/** 1 GiB pool, spec thresholds, 256 MiB cache, 64 MiB modules, spec health rules, 1 h cache idle. */
export const defaultSettings: RuntimeSettings = {
  name: "agent-runtime",
  pool: {
    totalMemory: 1024 * MemoryBudget.MiB,
    maxThreads: 4,
    maxHandles: 1024,
    thresholds: PressureLevel.defaultThresholds
  },
  cacheMaxBytes: 256 * MemoryBudget.MiB,
  maxModuleBytes: 64 * MemoryBudget.MiB,
  health: HealthChecker.defaultSettings,
  gc: MemoryManager.defaultSettings,
  autoPressure: true,
  evictOnTimeout: true,
  startTimeoutMs: 10_000,
  limits: { memoryCap: true, exportState: true },
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
  readonly maintenance?: RuntimeSettings["maintenance"]
  readonly persistence?: RuntimeSettings["persistence"]
  readonly limits?: Partial<RuntimeSettings["limits"]>
}

/** Merges overrides onto `defaultSettings`. */
export const resolveSettings = (input: SettingsInput = {}): RuntimeSettings => ({
  ...defaultSettings,
  ...input,
  pool: { ...defaultSettings.pool, ...input.pool },
  health: { ...defaultSettings.health, ...input.health },
  gc: { ...defaultSettings.gc, ...input.gc },
  persistence: { ...defaultSettings.persistence, ...input.persistence },
  limits: { ...defaultSettings.limits, ...input.limits },
  maintenance: { ...defaultSettings.maintenance, ...input.maintenance }
})

// ---------------------------------------------------------------------------
// Read models
// ---------------------------------------------------------------------------

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

/** A prepared call handle (`AgentRuntime.prepare`). */
export interface PreparedCall {
  readonly agentId: AgentId
  readonly function: string
  readonly signature: FuncType
  /** Same as `runtime.invoke(agentId, function, args)`. */
  readonly invoke: (args?: ReadonlyArray<WasmValue>) => Effect.Effect<ReadonlyArray<WasmValue>, InvokeError>
  /** The synchronous fast path, where the engine allows it; throws the typed `InvokeError`s. */
  readonly call: ((...args: Array<WasmValue>) => ReadonlyArray<WasmValue>) | undefined
}

/** Errors of `spawnAgent` (`AgentNotFound`: the agent was evicted while it was being spawned). */
export type SpawnError =
  | AgentNotFound
  | AgentAlreadyExists
  | ModuleNotFound
  | InsufficientMemory
  | InvalidConfig
  | InstantiationError
  | InvalidStateTransition
  | Unauthorized
  | RuntimeUnavailable
  | EngineInvokeError

/** Errors of lifecycle operations (`start`, `pause`, `resume`, `stop`). */
export type LifecycleError = AgentNotFound | InvalidStateTransition | EngineInvokeError

// ---------------------------------------------------------------------------
// Service
// ---------------------------------------------------------------------------

export interface AgentRuntimeShape {
  readonly id: RuntimeId
  readonly platform: RuntimePlatform
  readonly settings: RuntimeSettings
  /**
   * Verifies, reads, compiles (or finds in the compile cache) and registers a
   * module (spec `load_module`). Loading the same verified bytes again returns
   * the same id. Errors: `InvalidSignature`, `CompileError` (with the byte
   * offset for malformed binaries), `ModuleTooLarge`, `RuntimeUnavailable`.
   */
  readonly loadModule: (
    bytes: Uint8Array,
    metadata: ModuleMetadata
  ) => Effect.Effect<ModuleId, InvalidSignature | CompileError | ModuleTooLarge | RepositoryError | RuntimeUnavailable>
  /** A loaded module. */
  readonly getModule: (moduleId: ModuleId) => Effect.Effect<WasmModule, ModuleNotFound>
  /**
   * Creates an instance of a module for an agent (spec `spawn_agent`):
   * validates the config (1 MiB ≤ memoryLimit ≤ 512 MiB), claims the id and
   * reserves memory atomically, resolves imports (each one authorised),
   * instantiates, and — unless `autoStart: false` — starts it (`_initialize`).
   */
  readonly spawnAgent: (agentId: AgentId, moduleId: ModuleId, config: AgentConfig) => Effect.Effect<AgentInfo, SpawnError>
  /** Starting/Paused → Running; runs `_initialize` on the first start (spec `AgentInstance::start`). */
  readonly start: (agentId: AgentId) => Effect.Effect<void, LifecycleError>
  /** Running → Paused. */
  readonly pause: (agentId: AgentId) => Effect.Effect<void, LifecycleError>
  /** Paused → Running. */
  readonly resume: (agentId: AgentId) => Effect.Effect<void, LifecycleError>
  /** → Stopped, running `_cleanup` (errors of `_cleanup` are recorded, not raised). Idempotent. */
  readonly stop: (agentId: AgentId) => Effect.Effect<void, LifecycleError>
  /** Marks a Running agent `Critical` (never evicted under pressure), or back. */
  readonly setCritical: (agentId: AgentId, critical: boolean) => Effect.Effect<void, LifecycleError>
  /**
   * Calls an exported function (spec `invoke`). Arguments are checked against
   * the export's signature (i64 as bigint). Fails with `AgentNotFound`,
   * `AgentNotRunning`, `FunctionNotFound`, `SignatureMismatch`,
   * `MemoryExceeded`, `Trap`, `Timeout`, `FuelExhausted`.
   */
  readonly invoke: (
    agentId: AgentId,
    fn: string,
    args?: ReadonlyArray<WasmValue>
  ) => Effect.Effect<ReadonlyArray<WasmValue>, InvokeError>
  /**
   * Resolves an agent's export and checks it once, for callers that call it
   * many times (the prepared call handle). `invoke` has `invoke`'s semantics;
   * `call` is a synchronous fast path on in-process engines (undefined on
   * engines with workers, or when `persistence.snapshotAfterCalls` needs an
   * effect after each call): it checks the arguments, refuses an agent that
   * is busy, not running, passivated or evicted, records activity and memory
   * like `invoke`, and throws the same typed errors.
   */
  readonly prepare: (agentId: AgentId, fn: string) => Effect.Effect<PreparedCall, AgentNotFound | FunctionNotFound>
  /**
   * Revokes a host capability (`"module.name"` of an import) from an agent:
   * its next call of that import fails with `Unauthorized` and the agent is
   * evicted with `PolicyViolation`.
   */
  readonly revokeImport: (agentId: AgentId, capability: string) => Effect.Effect<void, AgentNotFound>
  /** Copies bytes out of an agent's linear memory (under its mailbox). */
  readonly readMemory: (agentId: AgentId, offset: number, length: number) => Effect.Effect<Uint8Array, AgentNotFound | AgentNotRunning | Trap>
  /** Copies bytes into an agent's linear memory (under its mailbox). */
  readonly writeMemory: (agentId: AgentId, offset: number, bytes: Uint8Array) => Effect.Effect<void, AgentNotFound | AgentNotRunning | Trap>
  /** Removes an agent and releases its memory (spec `evict_agent`). */
  readonly evictAgent: (agentId: AgentId, reason: EvictionReason) => Effect.Effect<void, AgentNotFound>
  /**
   * When the pool is above its warning threshold, evicts agents — unhealthy
   * first, then least recently active, then largest; never `Critical` — until
   * it is not, and publishes `MemoryPressure` with the real before/after
   * (spec `handle_memory_pressure`). Returns the evicted agents.
   */
  readonly handleMemoryPressure: Effect.Effect<ReadonlyArray<AgentId>>
  /**
   * Checks every live agent (spec `HealthChecker::check_all`): memory,
   * `_health_check`, error rate; tracks consecutive failures per agent; calls
   * `_recover` on unhealthy agents and evicts those past the failure threshold
   * with `HealthFailure`. Publishes `HealthCheckCompleted`.
   */
  readonly checkHealth: Effect.Effect<ReadonlyArray<HealthCheck>>
  /** The last health check of an agent (status `Unknown` before the first) (spec `get_health`). */
  readonly getHealth: (agentId: AgentId) => Effect.Effect<HealthCheck, AgentNotFound>
  /** Drops compile-cache entries idle past `gc.maxIdleMs` (spec `MemoryManager::run_gc`). */
  readonly runGc: Effect.Effect<MemoryManager.GcResult>
  /** Whether a GC is due (spec `MemoryManager::needs_gc`). */
  readonly needsGc: Effect.Effect<boolean>
  /** Saves an agent's complete state to the `InstanceRepository`. */
  readonly snapshot: (agentId: AgentId) => Effect.Effect<InstanceSnapshot, AgentNotFound | AgentNotRunning | Trap | RepositoryError>
  /**
   * Brings an agent back from its saved state: into its live instance, or —
   * when it is not live — into a new instance of the same module.
   */
  readonly restore: (
    agentId: AgentId
  ) => Effect.Effect<
    AgentInfo,
    AgentNotFound | AgentNotRunning | Trap | MemoryExceeded | RepositoryError | SnapshotMismatch | SpawnError
  >
  /**
   * Brings back every agent saved in the `InstanceRepository` that is not
   * live (crash recovery): loads its module from the `ModuleRepository`
   * (verified again), spawns it without `_initialize` and restores its state.
   * Runs at start when `persistence.restoreOnStart` is set.
   */
  readonly restoreAll: Effect.Effect<RestoreResult, RepositoryError>
  /** What `persistence.restoreOnStart` restored when the runtime started (`undefined` when it did not run). */
  readonly startRestore: Effect.Effect<RestoreResult | undefined>
  /** Saves every live agent's state to the `InstanceRepository` now. */
  readonly saveAll: Effect.Effect<void>
  /** A read-only view of one agent. */
  readonly agent: (agentId: AgentId) => Effect.Effect<AgentInfo, AgentNotFound>
  /** Read-only views of every agent. */
  readonly agents: Effect.Effect<ReadonlyArray<AgentInfo>>
  readonly status: Effect.Effect<RuntimeStatus>
  readonly stats: Effect.Effect<RuntimeStats>
  /** Samples the runtime into the `MetricsRepository` and returns the sample. */
  readonly recordMetrics: Effect.Effect<RuntimeMetrics, RepositoryError>
  /** Stops every agent (`_cleanup`), evicts it with `Shutdown`, and stops the runtime. Idempotent. */
  readonly shutdown: Effect.Effect<void>
  /** Subscribes now (in the caller's scope) to the runtime's published events. */
  readonly events: Effect.Effect<Stream.Stream<RuntimeEvent>, never, Scope.Scope>
}

/** The `AgentRuntime` service key. */
export class AgentRuntime extends Context.Service<AgentRuntime, AgentRuntimeShape>()(
  "@agent-runtime/domain/AgentRuntime"
) {}

const toInfo = (i: AgentInstance): AgentInfo => ({
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

/**
 * The state without the fuel counter (`FUEL_EXPORT`): fuel is set before every
 * call, it is not agent state, and a variant without metering has no counter.
 */
const withoutFuel = (state: EngineState): EngineState => {
  if (!(FUEL_EXPORT in state.globals)) return state
  const { [FUEL_EXPORT]: _fuel, ...globals } = state.globals
  return { ...state, globals }
}

/** The repository record of an instance's state (`now` in ms since the epoch). */
const toSnapshot = (i: AgentInstance, engineState: EngineState, now: number): InstanceSnapshot => {
  const state = withoutFuel(engineState)
  return {
  version: SNAPSHOT_VERSION,
  agentId: i.agentId,
  moduleId: i.moduleId,
  moduleHash: i.moduleHash,
  lifecycle: i.state,
  memoryLimit: i.config.memoryLimit,
  memoryReservation: AgentConfigs.reservation(i.config),
  timeoutMs: i.config.timeoutMs,
  fuel: i.config.fuel,
  critical: i.config.critical,
  invocationCount: i.invocationCount,
  takenAt: now,
  state
}
}

const errorText = (e: unknown): string =>
  e !== null && typeof e === "object" && "message" in e ? String((e as { message: unknown }).message) : String(e)

const describeImport = (i: ImportDesc): string => `"${i.module}"."${i.name}" (${i.type.kind})`

/**
 * Builds the runtime over the ports in context. Background work (automatic
 * pressure handling, maintenance loops, consumed events) lives in the
 * surrounding scope and stops with it.
 */
export const make = (
  input: SettingsInput = {}
): Effect.Effect<
  AgentRuntimeShape,
  never,
  RuntimePorts | Scope.Scope
> =>
  Effect.gen(function*() {
    const settings = resolveSettings(input)
    const engine = yield* WasmEngine
    const verifier = yield* ModuleVerifier
    const authorizer = yield* ExecutionAuthorizer
    const moduleRepo = yield* ModuleRepository
    const instanceRepo = yield* InstanceRepository
    const metricsRepo = yield* MetricsRepository
    const bus = yield* EventBus
    const fibers = yield* FiberSet.make<unknown, unknown>()
    const clock = yield* Clock.Clock

    const runtimeId = (settings.id ??
      `rt-${(yield* Random.nextIntBetween(0, 0x7fffffff)).toString(16).padStart(8, "0")}`) as RuntimeId
    const startedAt = yield* Clock.currentTimeMillis
    const env = new RuntimeEnvironment(runtimeId, settings.name, engine.platform, settings.pool, settings.cacheMaxBytes, startedAt)
    env.status = "Ready"

    const lock = Semaphore.makeUnsafe(1)
    const locked = lock.withPermits(1)
    let eventSeq = 0
    let instanceSeq = 0
    let pressureScheduled = false

    // -- events ---------------------------------------------------------------
    const envelope = (now: number) => ({
      eventId: `${runtimeId}:${++eventSeq}` as EventId,
      timestamp: now,
      runtimeId
    })
    const emit = (f: (e: ReturnType<typeof envelope>) => RuntimeEvent): Effect.Effect<void> =>
      Effect.flatMap(Clock.currentTimeMillis, (now) => bus.publish(f(envelope(now))))

    const emitState = (agentId: AgentId, from: InstanceState, to: InstanceState) =>
      from === to ? Effect.void : emit((e) => new AgentStateChanged({ ...e, agentId, from, to }))

    const ensureAccepting: Effect.Effect<void, RuntimeUnavailable> = Effect.suspend(() =>
      acceptsWork(env.status) ? Effect.void : Effect.fail(new RuntimeUnavailable({ status: env.status }))
    )

    // -- modules --------------------------------------------------------------
    /**
     * The compiled variant of a module an agent needs: the module as loaded,
     * or rewritten (`@agent-runtime/wasm-binary` `rewriteModule`) with its
     * memory maximum capped to the agent's budget, fuel metering, and hidden
     * exports of its mutable state. The compile cache key names the variant
     * (`<hash>|cap=<pages>|fuel=<initial>|state`), so agents with different
     * budgets never share a wrongly capped module.
     */
    const compiledFor = (module: WasmModule, config?: AgentConfig): Effect.Effect<CompiledModule, CompileError> =>
      Effect.suspend(() => {
        const variant = config === undefined ? undefined : rewriteFor(module, config)
        if (variant === undefined) return compileOnce(module.hash, module.hash, module.bytes)
        return compileOnce(variant.key, module.hash, () => {
          const rewritten = rewriteModule(module.bytes, variant.options)
          return rewritten.ok
            ? rewritten.value.bytes
            : new CompileError({ reason: `rewrite failed: ${rewritten.error.reason}`, offset: rewritten.error.offset })
        })
      })

    /** Compiles in flight, by cache key: concurrent misses of one key share one compile. */
    const inflight = new Map<string, Deferred.Deferred<CompiledModule, CompileError>>()

    /**
     * The cached compilation under `key`, or compiles `bytes` (made lazily)
     * once — callers that miss the same key meanwhile wait for that compile.
     */
    const compileOnce = (
      key: string,
      hash: WasmModule["hash"],
      bytes: Uint8Array | (() => Uint8Array | CompileError)
    ): Effect.Effect<CompiledModule, CompileError> =>
      Effect.flatMap(Clock.currentTimeMillis, (now) => {
        const hit = env.cache.get(key, now)
        if (hit !== undefined) return Effect.succeed(hit.compiled)
        const pending = inflight.get(key)
        if (pending !== undefined) return Deferred.await(pending)
        const deferred = Deferred.makeUnsafe<CompiledModule, CompileError>()
        inflight.set(key, deferred)
        const source = typeof bytes === "function" ? bytes() : bytes
        const compile = source instanceof CompileError
          ? Effect.fail(source)
          : Effect.map(engine.compile(source, hash), (compiled) => {
            env.cache.set(key, compiled, now)
            return compiled
          })
        return compile.pipe(
          Effect.onExit((exit) =>
            Effect.sync(() => {
              inflight.delete(key)
              Deferred.doneUnsafe(deferred, exit)
            })
          )
        )
      })

    /** The rewrite an agent's config asks for (`CompileVariant`), or `undefined` when the module is used as loaded. */
    const rewriteFor = (module: WasmModule, config: AgentConfig) => {
      const params = CompileVariant.variantParams({
        hasMemory: WasmModules.memoryType(module.info) !== undefined,
        memoryLimit: config.memoryLimit,
        fuel: config.fuel,
        memoryCap: settings.limits.memoryCap,
        exportState: settings.limits.exportState && engine.capabilities.snapshots
      })
      return params === null
        ? undefined
        : { key: CompileVariant.variantKey(module.hash, params), options: CompileVariant.rewriteOptions(params) }
    }

    const loadModule: AgentRuntimeShape["loadModule"] = (bytes, metadata) =>
      Effect.gen(function*() {
        yield* ensureAccepting
        if (bytes.byteLength > settings.maxModuleBytes) {
          return yield* new ModuleTooLarge({ size: bytes.byteLength, limit: settings.maxModuleBytes })
        }
        // The signature is checked first: changed bytes are `InvalidSignature` even when the
        // change also breaks the binary. Bytes that are not a module at all (the verifier cannot
        // even find its sections) and malformed contents of a verified module are `CompileError`
        // with the byte offset.
        const read = readModule(bytes)
        const verification = yield* Effect.mapError(verifier.verify(bytes, metadata), (e): InvalidSignature | CompileError =>
          !read.ok && e.reason.startsWith("malformed module")
            ? new CompileError({ reason: read.error.reason, offset: read.error.offset })
            : e)
        if (!read.ok) return yield* new CompileError({ reason: read.error.reason, offset: read.error.offset })
        const id = WasmModules.makeId(verification.hash, metadata)
        const existing = env.modules.get(id)
        if (existing !== undefined) {
          env.cache.touchModule(existing.hash, yield* Clock.currentTimeMillis)
          yield* emit((e) =>
            new ModuleLoaded({
              ...e,
              moduleId: id,
              moduleHash: existing.hash,
              size: bytes.byteLength,
              exports: existing.exports.map((x) => x.name),
              cacheHit: true
            })
          )
          return id
        }
        // Validate without code generation where the engine can (agents use rewritten
        // variants compiled at spawn); otherwise compile as loaded and cache it.
        let cacheHit = false
        if (engine.validate !== undefined) yield* engine.validate(bytes)
        else {
          cacheHit = env.cache.peek(verification.hash) !== undefined
          yield* compileOnce(verification.hash, verification.hash, bytes)
        }
        const now = yield* Clock.currentTimeMillis
        const module = WasmModules.make({
          id,
          hash: verification.hash,
          bytes,
          info: read.value,
          metadata,
          signedBy: verification.keyId,
          loadedAt: now
        })
        yield* moduleRepo.save({ id, hash: module.hash, bytes, metadata })
        yield* locked(Effect.sync(() => void env.modules.set(id, module)))
        yield* emit((e) =>
          new ModuleLoaded({
            ...e,
            moduleId: id,
            moduleHash: module.hash,
            size: bytes.byteLength,
            exports: module.exports.map((x) => x.name),
            cacheHit
          })
        )
        return id
      })

    const getModule = (moduleId: ModuleId): Effect.Effect<WasmModule, ModuleNotFound> =>
      Effect.suspend(() => {
        const m = env.modules.get(moduleId)
        return m === undefined ? Effect.fail(new ModuleNotFound({ moduleId })) : Effect.succeed(m)
      })

    // -- imports --------------------------------------------------------------
    const resolveImports = (
      agentId: AgentId,
      module: WasmModule,
      offered: HostImports | undefined
    ): Effect.Effect<HostImports, InstantiationError | Unauthorized> =>
      Effect.gen(function*() {
        const granted: Record<string, Record<string, unknown>> = {}
        for (const imp of module.imports) {
          if (imp.module === "wasi_snapshot_preview1" && engine.capabilities.wasi) continue
          const value = offered?.[imp.module]?.[imp.name]
          if (value === undefined && imp.type.kind === "memory") continue // created by the engine (hostMemory)
          if (value === undefined) {
            return yield* new InstantiationError({
              reason: `import ${describeImport(imp)} is not provided to agent ${agentId}`
            })
          }
          if (imp.type.kind === "function" && typeof value !== "function") {
            return yield* new InstantiationError({ reason: `import ${describeImport(imp)} must be a function` })
          }
          const subject = `${imp.module}.${imp.name}`
          yield* authorizer.authorize({ action: "import", agentId, moduleHash: module.hash, subject })
          ;(granted[imp.module] ??= {})[imp.name] = typeof value === "function"
            ? guardCapability(agentId, subject, value as (...args: Array<unknown>) => unknown)
            : value
        }
        return granted as HostImports
      })

    /**
     * Wraps a granted host function so each call checks the grant still holds
     * (`revokeImport`, or the authorizer's synchronous `isGranted`): a call to a
     * revoked capability traps the guest, fails the invocation with
     * `Unauthorized`, and evicts the agent with `PolicyViolation`.
     */
    const guardCapability = (agentId: AgentId, subject: string, f: (...args: Array<unknown>) => unknown) =>
    (...args: Array<unknown>): unknown => {
      const i = env.instances.get(agentId)
      if (i?.revoked.has(subject) === true || authorizer.isGranted?.(agentId, subject) === false) {
        if (i !== undefined) i.policyViolation = subject
        throw new Error(`capability ${subject} was revoked`)
      }
      return f(...args)
    }

    /**
     * The imported memory the engine must create for an agent (when the module
     * imports one and the config does not provide it): maximum = the agent's
     * budget in pages (or the declared maximum if lower).
     */
    const hostMemory = (module: WasmModule, config: AgentConfig): HostMemory | undefined => {
      for (const imp of module.imports) {
        if (imp.type.kind !== "memory" || config.imports?.[imp.module]?.[imp.name] !== undefined) continue
        const cap = Math.floor(config.memoryLimit / MemoryBudget.PAGE_BYTES)
        return {
          module: imp.module,
          name: imp.name,
          minPages: imp.type.minPages,
          maxPages: Math.min(imp.type.maxPages ?? cap, cap),
          shared: imp.type.shared
        }
      }
      return undefined
    }

    /**
     * The deadline of an instantiation (module start function, plus a worker's
     * start-up on worker engines): `settings.startTimeoutMs`, never shorter
     * than the agent's per-call `timeoutMs`.
     */
    const startDeadline = (config: AgentConfig): number | undefined =>
      engine.capabilities.preemptiveTimeout ? Math.max(settings.startTimeoutMs, config.timeoutMs ?? 0) : undefined

    // -- lifecycle helpers ----------------------------------------------------
    const live = (agentId: AgentId): Effect.Effect<AgentInstance, AgentNotFound> =>
      Effect.suspend(() => {
        const i = env.instances.get(agentId)
        if (i !== undefined) return Effect.succeed(i)
        if (env.passivated.has(agentId)) {
          return Effect.flatMap(
            Effect.mapError(activate(agentId), (e) =>
              e._tag === "AgentNotFound" ? e : new AgentNotFound({ agentId })
            ),
            () => live(agentId)
          )
        }
        return Effect.fail(new AgentNotFound({ agentId }))
      })

    /** Runs `f` under the agent's mailbox, failing if the agent was evicted meanwhile. */
    const inMailbox = <A, E>(
      agentId: AgentId,
      f: (i: AgentInstance) => Effect.Effect<A, E>
    ): Effect.Effect<A, E | AgentNotFound> =>
      Effect.flatMap(live(agentId), (i) =>
        i.exclusive(
          Effect.suspend((): Effect.Effect<A, E | AgentNotFound> =>
            env.instances.get(agentId) === i ? f(i) : Effect.fail(new AgentNotFound({ agentId }))
          )
        )
      )

    /** Calls a lifecycle export if the module has it; `undefined` when it does not. */
    const callLifecycle = (i: AgentInstance, fn: string, timeoutMs?: number) => {
      const module = env.modules.get(i.moduleId)
      if (module === undefined || !module.functions.has(fn) || i.instance === undefined) {
        return Effect.succeed(undefined)
      }
      return Effect.map(
        i.instance.invoke(fn, [], { timeoutMs: timeoutMs ?? i.config.timeoutMs, fuel: i.config.fuel }),
        (outcome) => {
          env.recordMemory(i, outcome.memoryBytes)
          return outcome
        }
      )
    }

    const setState = (i: AgentInstance, to: InstanceState) =>
      Effect.suspend(() => {
        const from = i.state
        i.state = to
        return emitState(i.agentId, from, to)
      })

    const applyTransition = (i: AgentInstance, action: LifecycleAction) =>
      Effect.suspend(() => {
        const to = transition(i.agentId, i.state, action)
        return typeof to === "string" ? Effect.as(setState(i, to), to) : Effect.fail(to)
      })

    const startLocked = (i: AgentInstance): Effect.Effect<void, InvalidStateTransition | EngineInvokeError> =>
      Effect.gen(function*() {
        const from = i.state
        const to = transition(i.agentId, from, "start")
        if (typeof to !== "string") return yield* to
        if (from === "Starting") {
          const init = yield* Effect.exit(callLifecycle(i, "_initialize"))
          if (init._tag === "Failure") {
            yield* setState(i, "Failed")
            return yield* Effect.failCause(init.cause)
          }
        }
        yield* setState(i, i.config.critical === true ? "Critical" : "Running")
      })

    const stopLocked = (i: AgentInstance): Effect.Effect<void> =>
      Effect.gen(function*() {
        if (i.state === "Stopped") return
        yield* setState(i, "Stopping")
        const cleanup = yield* Effect.exit(callLifecycle(i, "_cleanup"))
        if (cleanup._tag === "Failure") i.lastError = `_cleanup failed: ${errorText(cleanup.cause)}`
        yield* setState(i, "Stopped")
      })

    // -- eviction -------------------------------------------------------------
    /** Removes an agent; the caller holds the lock. */
    const evictLocked = (agentId: AgentId, reason: EvictionReason): Effect.Effect<boolean> =>
      Effect.gen(function*() {
        const now = yield* Clock.currentTimeMillis
        const passivated = env.passivated.get(agentId)
        if (passivated !== undefined && !env.instances.has(agentId)) {
          env.passivated.delete(agentId)
          env.counters.evicted++
          if (reason !== "Shutdown") yield* Effect.ignore(instanceRepo.deleteState(agentId))
          yield* emit((e) =>
            new AgentEvicted({ ...e, agentId, reason, memoryReleased: 0, uptime: now - passivated.createdAt })
          )
          return true
        }
        const removed = env.remove(agentId)
        if (removed === undefined) return false
        env.counters.evicted++
        if (persistent && reason !== "Shutdown") yield* Effect.ignore(instanceRepo.deleteState(agentId))
        const { instance, released } = removed
        if (instance.instance !== undefined) yield* instance.instance.terminate
        instance.instance = undefined
        yield* emit((e) =>
          new AgentEvicted({ ...e, agentId, reason, memoryReleased: released, uptime: instance.uptime(now) })
        )
        return true
      })

    const evictAgent: AgentRuntimeShape["evictAgent"] = (agentId, reason) =>
      locked(
        Effect.flatMap(evictLocked(agentId, reason), (ok) => (ok ? Effect.void : Effect.fail(new AgentNotFound({ agentId }))))
      )

    const handleMemoryPressure: Effect.Effect<ReadonlyArray<AgentId>> = locked(
      Effect.gen(function*() {
        const level = env.pool.pressureLevel()
        if (level === "Normal") return []
        const memoryBefore = env.pool.usedMemory()
        const evicted: Array<AgentId> = []
        const passivated: Array<AgentId> = []
        const now = yield* Clock.currentTimeMillis
        // idle agents first keep their state: passivate them (when enabled) …
        for (const candidate of idleAgents(now)) {
          if (!env.pool.isUnderPressure()) break
          if (candidate.health === "Unhealthy" || candidate.state === "Failed") continue
          if (yield* passivateLocked(candidate)) passivated.push(candidate.agentId)
        }
        // … then evict: unhealthy, least recently active, largest
        for (const candidate of env.pressureCandidates()) {
          if (!env.pool.isUnderPressure()) break
          if (yield* evictLocked(candidate.agentId, "MemoryPressure")) evicted.push(candidate.agentId)
        }
        env.counters.pressureEvents++
        const memoryAfter = env.pool.usedMemory()
        yield* emit((e) =>
          new MemoryPressure({
            ...e,
            evictedAgents: evicted,
            passivatedAgents: passivated,
            memoryBefore,
            memoryAfter,
            totalMemory: env.pool.totalMemory,
            pressureLevel: level
          })
        )
        return evicted
      })
    )

    const schedulePressure = Effect.suspend(() => {
      if (pressureScheduled || !settings.autoPressure || !env.pool.isUnderPressure()) return Effect.void
      pressureScheduled = true
      return Effect.asVoid(
        FiberSet.run(fibers, Effect.ensuring(handleMemoryPressure, Effect.sync(() => (pressureScheduled = false))))
      )
    })

    // -- persistence ----------------------------------------------------------
    const persistent = settings.persistence.snapshotAfterCalls === true ||
      settings.persistence.snapshotIntervalMs !== undefined || settings.persistence.restoreOnStart === true

    /**
     * Saves an agent's state; the caller holds its mailbox. A failed save is
     * recorded on the agent (`lastError`) and as an invocation error count —
     * never silently dropped — but does not fail the call that already ran.
     */
    const saveLocked = (i: AgentInstance, now: number): Effect.Effect<void> =>
      i.instance === undefined
        ? Effect.void
        : Effect.flatMap(
          Effect.exit(Effect.flatMap(i.instance.snapshot, (state) => instanceRepo.saveState(i.agentId, toSnapshot(i, state, now)))),
          (exit) =>
            Effect.sync(() => {
              if (exit._tag === "Failure") {
                i.lastError = `snapshot failed: ${errorText(exit.cause)}`
                env.counters.snapshotFailures++
              }
            })
        )

    /** Saves every live agent (each under its mailbox). */
    const saveAll: Effect.Effect<void> = Effect.gen(function*() {
      const now = yield* Clock.currentTimeMillis
      yield* Effect.forEach(
        [...env.instances.values()],
        (i) => i.exclusive(env.instances.get(i.agentId) === i ? saveLocked(i, now) : Effect.void),
        { concurrency: 8, discard: true }
      )
    })

    // -- passivation ----------------------------------------------------------
    /**
     * Snapshots an idle agent to the `InstanceRepository` and releases its
     * instance and memory. Only when its mailbox is free right now (it is
     * idle) and it is `Running` or `Paused`; never `Critical`. The caller
     * holds the lock. `false` when the agent was not passivated.
     */
    const passivateLocked = (i: AgentInstance): Effect.Effect<boolean> =>
      Effect.map(
        i.exclusiveIfAvailable(
          Effect.gen(function*() {
            if (env.instances.get(i.agentId) !== i || i.instance === undefined) return false
            if (i.state !== "Running" && i.state !== "Paused") return false
            const state = yield* Effect.option(i.instance.snapshot)
            if (Option.isNone(state)) return false
            const now = yield* Clock.currentTimeMillis
            const saved = yield* Effect.exit(instanceRepo.saveState(i.agentId, toSnapshot(i, state.value, now)))
            if (saved._tag === "Failure") {
              i.lastError = `passivation failed: ${errorText(saved.cause)}`
              return false
            }
            const record: PassivatedAgent = {
              agentId: i.agentId,
              moduleId: i.moduleId,
              moduleHash: i.moduleHash,
              config: i.config,
              state: i.state,
              health: i.health,
              consecutiveFailures: i.consecutiveFailures,
              invocationCount: i.invocationCount,
              errorCount: i.errorCount,
              createdAt: i.createdAt,
              lastActivity: i.lastActivity,
              passivatedAt: now
            }
            const removed = env.remove(i.agentId)
            env.passivated.set(i.agentId, record)
            yield* i.instance.terminate
            i.instance = undefined
            yield* emit((e) => new AgentPassivated({ ...e, agentId: i.agentId, memoryReleased: removed?.released ?? 0 }))
            return true
          })
        ),
        (r) => Option.getOrElse(r, () => false)
      )

    /**
     * Rehydrates a passivated agent: claims its id and memory, instantiates
     * its module, restores the saved state, and returns it to the state it
     * had (without `_initialize`). Concurrent callers: the first activates,
     * the others find the new instance and queue on its mailbox.
     */
    const activate = (agentId: AgentId): Effect.Effect<void, SpawnError | RepositoryError | AgentNotFound> =>
      Effect.gen(function*() {
        const p = env.passivated.get(agentId)
        if (p === undefined) return
        const module = yield* getModule(p.moduleId)
        const saved = yield* instanceRepo.loadState(agentId)
        if (Option.isNone(saved)) {
          yield* locked(evictLocked(agentId, "Manual"))
          return yield* new AgentNotFound({ agentId })
        }
        const imports = yield* resolveImports(agentId, module, p.config.imports)
        const now = yield* Clock.currentTimeMillis
        const instanceId = `${agentId}#${++instanceSeq}` as InstanceId
        const claimed = yield* locked(
          Effect.suspend(() => {
            if (env.passivated.get(agentId) !== p) return Effect.succeed(undefined)
            const r = env.claim({
              agentId,
              moduleId: p.moduleId,
              instanceId,
              config: p.config,
              now,
              createdAt: p.createdAt,
              mailbox: Semaphore.makeUnsafe(1),
              activating: true
            })
            return r instanceof Error ? Effect.fail(r) : Effect.succeed(r)
          })
        )
        if (claimed === undefined) return
        const done = yield* Effect.exit(
          claimed.exclusive(
            Effect.gen(function*() {
              const compiled = yield* Effect.mapError(compiledFor(module, p.config), (e) => new InstantiationError({ reason: e.message }))
              const instance = yield* engine.instantiate(compiled, {
                agentId,
                memoryLimit: p.config.memoryLimit,
                imports,
                timeoutMs: startDeadline(p.config),
                memory: hostMemory(module, p.config)
              })
              claimed.instance = instance
              yield* instance.restore(saved.value.state)
              env.recordMemory(claimed, yield* instance.memoryBytes)
              claimed.invocationCount = p.invocationCount
              claimed.errorCount = p.errorCount
              claimed.health = p.health
              claimed.consecutiveFailures = p.consecutiveFailures
              claimed.lastActivity = p.lastActivity
              claimed.state = p.state
              yield* emit((e) =>
                new AgentActivated({ ...e, agentId, instanceId, passivatedFor: now - p.passivatedAt })
              )
            })
          )
        )
        if (done._tag === "Failure") {
          if (claimed.instance !== undefined) yield* claimed.instance.terminate
          yield* locked(
            Effect.sync(() => {
              if (env.instances.get(agentId) === claimed) env.remove(agentId)
              env.passivated.set(agentId, p)
            })
          )
          return yield* Effect.failCause(done.cause)
        }
      })

    /** Agents idle longer than `passivateIdleMs` at `now`, oldest activity first; the caller holds the lock. */
    const idleAgents = (now: number): ReadonlyArray<AgentInstance> => {
      const idleMs = settings.gc.passivateIdleMs
      if (idleMs === undefined) return []
      return [...env.instances.values()]
        .filter((i) => i.state !== "Critical" && now - i.lastActivity > idleMs)
        .sort((a, b) => a.lastActivity - b.lastActivity)
    }

    // -- spawn ----------------------------------------------------------------
    const spawnAgent: AgentRuntimeShape["spawnAgent"] = (agentId, moduleId, config) =>
      Effect.gen(function*() {
        const invalid = AgentConfigs.validate(config)
        if (invalid !== undefined) return yield* invalid
        yield* ensureAccepting
        if (config.fuel !== undefined && !engine.capabilities.fuel) {
          return yield* new InvalidConfig({ reason: `engine ${engine.platform} has no fuel metering (capabilities.fuel = false)` })
        }
        if (config.timeoutMs !== undefined && !engine.capabilities.preemptiveTimeout) {
          // without preemption a deadline cannot stop a running call: only fuel can bound it
          if (!engine.capabilities.fuel) {
            return yield* new InvalidConfig({
              reason: `engine ${engine.platform} cannot enforce timeoutMs: it can neither preempt a call nor meter fuel (capabilities)`
            })
          }
          if (config.fuel === undefined) {
            return yield* new InvalidConfig({
              reason: `engine ${engine.platform} cannot preempt a call (capabilities.preemptiveTimeout = false): timeoutMs alone would not stop a runaway call — set fuel to bound it`
            })
          }
        }
        const module = yield* getModule(moduleId)
        const initialBytes = module.memoryPages * MemoryBudget.PAGE_BYTES
        if (initialBytes > config.memoryLimit) {
          return yield* new MemoryExceeded({ agentId, used: initialBytes, limit: config.memoryLimit })
        }
        yield* authorizer.authorize({ action: "spawn", agentId, moduleHash: module.hash, subject: module.metadata.name })
        const imports = yield* resolveImports(agentId, module, config.imports)
        const now = yield* Clock.currentTimeMillis
        const instanceId = `${agentId}#${++instanceSeq}` as InstanceId
        const claimed = yield* locked(
          Effect.suspend(() => {
            const r = env.claim({ agentId, moduleId, instanceId, config, now, mailbox: Semaphore.makeUnsafe(1) })
            return r instanceof Error ? Effect.fail(r) : Effect.succeed(r)
          })
        )
        const rollback = locked(Effect.sync(() => void (env.instances.get(agentId) === claimed && env.remove(agentId))))
        const instantiated = yield* Effect.exit(
          claimed.exclusive(
            Effect.gen(function*() {
              const compiled = yield* Effect.mapError(compiledFor(module, config), (e) => new InstantiationError({ reason: e.message }))
              const instance = yield* engine.instantiate(compiled, {
                agentId,
                memoryLimit: config.memoryLimit,
                imports,
                timeoutMs: startDeadline(config),
                memory: hostMemory(module, config)
              })
              if (env.instances.get(agentId) !== claimed) {
                yield* instance.terminate
                // evicted (or the runtime shut down) while instantiating
                return yield* (acceptsWork(env.status)
                  ? new AgentNotFound({ agentId })
                  : new RuntimeUnavailable({ status: env.status }))
              }
              claimed.instance = instance
              env.recordMemory(claimed, yield* instance.memoryBytes)
              env.counters.spawned++
              yield* emit((e) =>
                new AgentSpawned({ ...e, agentId, moduleId, instanceId, memoryAllocated: config.memoryLimit })
              )
              if (config.autoStart !== false) yield* startLocked(claimed)
            })
          )
        )
        if (instantiated._tag === "Failure") {
          if (claimed.instance !== undefined) yield* claimed.instance.terminate
          yield* rollback
          return yield* Effect.failCause(instantiated.cause)
        }
        yield* schedulePressure
        return toInfo(claimed)
      })

    // -- lifecycle ------------------------------------------------------------
    const start: AgentRuntimeShape["start"] = (agentId) => inMailbox(agentId, startLocked)
    const pause: AgentRuntimeShape["pause"] = (agentId) =>
      inMailbox(agentId, (i) => Effect.asVoid(applyTransition(i, "pause")))
    const resume: AgentRuntimeShape["resume"] = (agentId) =>
      inMailbox(agentId, (i) => Effect.asVoid(applyTransition(i, "resume")))
    const stop: AgentRuntimeShape["stop"] = (agentId) => inMailbox(agentId, stopLocked)
    const setCritical: AgentRuntimeShape["setCritical"] = (agentId, critical) =>
      inMailbox(agentId, (i) =>
        (critical && i.state === "Critical") || (!critical && i.state === "Running")
          ? Effect.void
          : Effect.asVoid(applyTransition(i, critical ? "protect" : "unprotect"))
      )

    // -- invoke ---------------------------------------------------------------
    const recordFailure = (i: AgentInstance, error: EngineInvokeError) =>
      Effect.suspend((): Effect.Effect<void, Unauthorized> => {
        i.errorCount++
        i.windowErrors++
        env.counters.invocationErrors++
        i.lastError = error.message
        if (i.policyViolation !== undefined) {
          const subject = i.policyViolation
          return Effect.andThen(
            FiberSet.run(fibers, locked(evictLocked(i.agentId, "PolicyViolation"))),
            Effect.fail(new Unauthorized({ action: "import", subject, reason: "the capability was revoked" }))
          )
        }
        if (error._tag === "Timeout" && settings.evictOnTimeout) {
          return Effect.asVoid(FiberSet.run(fibers, locked(evictLocked(i.agentId, "Timeout"))))
        }
        return Effect.void
      })

    /** Maps a failed rehydration to an invocation error (the cause is kept in the message). */
    const activationError = (agentId: AgentId, e: SpawnError | RepositoryError | AgentNotFound): InvokeError => {
      switch (e._tag) {
        case "AgentNotFound":
        case "Trap":
        case "Timeout":
        case "FuelExhausted":
        case "MemoryExceeded":
        case "Unauthorized":
        case "RuntimeUnavailable":
        case "FunctionNotFound":
        case "SignatureMismatch":
          return e
        default:
          return new AgentNotRunning({ agentId, state: `Passivated (rehydration failed: ${e.message})` })
      }
    }

    const invoke: AgentRuntimeShape["invoke"] = (agentId, fn, args = []) =>
      Effect.suspend(() => {
        const i = env.instances.get(agentId)
        if (i === undefined) {
          return env.passivated.has(agentId)
            ? Effect.flatMap(Effect.mapError(activate(agentId), (e) => activationError(agentId, e)), () => invoke(agentId, fn, args))
            : Effect.fail(new AgentNotFound({ agentId }))
        }
        const module = env.modules.get(i.moduleId)
        const signature = module?.functions.get(fn)
        if (signature === undefined) return Effect.fail(new FunctionNotFound({ function: fn }))
        const mismatch = checkArguments(signature, args)
        if (mismatch !== undefined) {
          return Effect.fail(new SignatureMismatch({ function: fn, index: mismatch.index, reason: mismatch.message }))
        }
        const body = (): Effect.Effect<ReadonlyArray<WasmValue>, InvokeError> => {
            const instance = i.instance
            if (env.instances.get(agentId) !== i || instance === undefined) {
              return Effect.fail(new AgentNotFound({ agentId }))
            }
            if (!isInvocable(i.state)) return Effect.fail(new AgentNotRunning({ agentId, state: i.state }))
            if (MemoryBudget.isExceeded(i.budget)) {
              return Effect.fail(new MemoryExceeded({ agentId, used: i.budget.used, limit: i.budget.limit }))
            }
            i.invocationCount++
            i.windowInvocations++
            env.counters.invocations++
            // in-process engines: the synchronous caller, no per-call effects beyond this one
            const sync = instance.prepare === undefined ? undefined : preparedFor(i, instance, fn)
            if (sync !== undefined) {
              const outcome = sync(args, i.config.fuel)
              return outcome instanceof Error
                ? Effect.andThen(recordFailure(i, outcome), Effect.fail(outcome))
                : afterCall(i, outcome)
            }
            return instance.invoke(fn, args, { timeoutMs: i.config.timeoutMs, fuel: i.config.fuel }).pipe(
              Effect.tapError((error) => recordFailure(i, error)),
              Effect.flatMap((outcome) => afterCall(i, outcome))
            )
          }
        // An idle agent on an in-process engine runs the whole call in this one synchronous
        // step: no other fiber can interleave, so the mailbox is not needed (one call at a
        // time still holds). Otherwise the call queues on the agent's mailbox.
        const call = Effect.suspend(() =>
          i.busy === 0 && i.instance?.prepare !== undefined && settings.persistence.snapshotAfterCalls !== true
            ? body()
            : i.exclusive(Effect.suspend(body))
        )
        return authorizer.checksInvocations
          ? Effect.andThen(authorizer.authorize({ action: "invoke", agentId, subject: fn }), call)
          : call
      })

    /** The instance's synchronous caller of `fn`, resolved once per instance. */
    const preparedFor = (i: AgentInstance, instance: NonNullable<AgentInstance["instance"]>, fn: string) => {
      let caller = i.prepared.get(fn)
      if (caller === undefined) {
        caller = instance.prepare?.(fn)
        if (caller !== undefined) i.prepared.set(fn, caller)
      }
      return caller
    }

    /** Records a completed call: activity, memory, persistence, pressure. */
    const afterCall = (i: AgentInstance, outcome: InvokeOutcome): Effect.Effect<ReadonlyArray<WasmValue>> => {
      const now = clock.currentTimeMillisUnsafe()
      i.lastActivity = now
      i.fuelRemaining = outcome.fuelRemaining
      env.recordMemory(i, outcome.memoryBytes)
      const pressure = settings.autoPressure && !pressureScheduled && env.pool.isUnderPressure()
      if (settings.persistence.snapshotAfterCalls !== true && !pressure) return Effect.succeed(outcome.results)
      const saved = settings.persistence.snapshotAfterCalls === true ? saveLocked(i, now) : Effect.void
      return Effect.as(pressure ? Effect.andThen(saved, schedulePressure) : saved, outcome.results)
    }

    const prepare: AgentRuntimeShape["prepare"] = (agentId, fn) =>
      Effect.gen(function*() {
        const first = yield* live(agentId)
        const signature = env.modules.get(first.moduleId)?.functions.get(fn)
        if (signature === undefined) return yield* new FunctionNotFound({ function: fn })
        const context = yield* Effect.context<never>()
        const fork = Effect.runForkWith(context)
        let cachedFor: AgentInstance["instance"] = undefined
        let cached: PreparedInvoke | undefined
        const fastPath = !engine.capabilities.workers && settings.persistence.snapshotAfterCalls !== true &&
          first.instance?.prepare !== undefined
        const call = (...args: Array<WasmValue>): ReadonlyArray<WasmValue> => {
          const i = env.instances.get(agentId)
          if (i === undefined) {
            throw env.passivated.has(agentId)
              ? new AgentNotRunning({ agentId, state: "Passivated (use invoke to rehydrate)" })
              : new AgentNotFound({ agentId })
          }
          if (i.instance === undefined || !isInvocable(i.state)) throw new AgentNotRunning({ agentId, state: i.state })
          if (i.busy > 0) throw new AgentNotRunning({ agentId, state: `${i.state} (busy: use invoke to queue)` })
          if (MemoryBudget.isExceeded(i.budget)) {
            throw new MemoryExceeded({ agentId, used: i.budget.used, limit: i.budget.limit })
          }
          const mismatch = checkArguments(signature, args)
          if (mismatch !== undefined) throw new SignatureMismatch({ function: fn, index: mismatch.index, reason: mismatch.message })
          if (cachedFor !== i.instance) {
            cachedFor = i.instance
            cached = i.instance.prepare?.(fn)
          }
          if (cached === undefined) throw new FunctionNotFound({ function: fn })
          i.invocationCount++
          i.windowInvocations++
          env.counters.invocations++
          const outcome = cached(args, i.config.fuel)
          if (outcome instanceof Error) {
            fork(recordFailure(i, outcome))
            if (i.policyViolation !== undefined) {
              throw new Unauthorized({ action: "import", subject: i.policyViolation, reason: "the capability was revoked" })
            }
            throw outcome
          }
          i.lastActivity = clock.currentTimeMillisUnsafe()
          i.fuelRemaining = outcome.fuelRemaining
          env.recordMemory(i, outcome.memoryBytes)
          if (settings.autoPressure && !pressureScheduled && env.pool.isUnderPressure()) fork(schedulePressure)
          return outcome.results
        }
        const handle: PreparedCall = {
          agentId,
          function: fn,
          signature,
          invoke: (args = []) => invoke(agentId, fn, args),
          call: fastPath ? call : undefined
        }
        return handle
      })

    const whileRunning = <A, E>(agentId: AgentId, f: (i: AgentInstance) => Effect.Effect<A, E>) =>
      inMailbox(agentId, (i): Effect.Effect<A, E | AgentNotRunning> =>
        i.instance === undefined || !(isInvocable(i.state) || i.state === "Paused")
          ? Effect.fail(new AgentNotRunning({ agentId, state: i.state }))
          : f(i)
      )

    const readMemory: AgentRuntimeShape["readMemory"] = (agentId, offset, length) =>
      whileRunning(agentId, (i) => i.instance!.readMemory(offset, length))
    const writeMemory: AgentRuntimeShape["writeMemory"] = (agentId, offset, bytes) =>
      whileRunning(agentId, (i) => i.instance!.writeMemory(offset, bytes))

    // -- health ---------------------------------------------------------------
    const checkOne = (i: AgentInstance): Effect.Effect<HealthCheck | undefined> =>
      i.exclusive(
        Effect.gen(function*() {
          if (env.instances.get(i.agentId) !== i || i.instance === undefined) return undefined
          if (!(isInvocable(i.state) || i.state === "Paused")) return undefined
          const module = env.modules.get(i.moduleId)
          let probe: HealthChecker.ProbeOutcome
          if (i.state === "Paused") probe = { _tag: "Skipped", reason: "paused" }
          else if (module === undefined || !module.functions.has("_health_check")) probe = { _tag: "NoProbe" }
          else {
            const t0 = yield* Clock.currentTimeMillis
            const exit = yield* Effect.exit(callLifecycle(i, "_health_check", settings.health.timeoutMs))
            const elapsedMs = (yield* Clock.currentTimeMillis) - t0
            probe =
              exit._tag === "Success"
                ? { _tag: "Returned", results: exit.value?.results ?? [], elapsedMs }
                : { _tag: "Failed", error: errorText(exit.cause), elapsedMs }
          }
          const memoryUtilization = MemoryBudget.utilization(i.budget)
          const result = HealthChecker.evaluate(
            {
              memoryUtilization,
              windowInvocations: i.windowInvocations,
              windowErrors: i.windowErrors,
              previousFailures: i.consecutiveFailures,
              probe
            },
            settings.health
          )
          const now = yield* Clock.currentTimeMillis
          const check: HealthCheck = { agentId: i.agentId, status: result.status, checkedAt: now, details: result.details }
          i.consecutiveFailures = result.details.consecutiveFailures
          i.health = result.status
          i.lastCheck = check
          i.windowInvocations = 0
          i.windowErrors = 0
          if (result.details.lastError !== undefined) i.lastError = result.details.lastError
          if (result.action === "recover") {
            const recovered = yield* Effect.exit(callLifecycle(i, "_recover", settings.health.timeoutMs))
            if (recovered._tag === "Failure") i.lastError = `_recover failed: ${errorText(recovered.cause)}`
          } else if (result.action === "fail") {
            yield* Effect.ignore(applyTransition(i, "fail"))
          }
          return check
        })
      )

    const checkHealth: Effect.Effect<ReadonlyArray<HealthCheck>> = Effect.gen(function*() {
      const t0 = yield* Clock.currentTimeMillis
      const targets = [...env.instances.values()]
      const checks = (yield* Effect.forEach(targets, checkOne, { concurrency: settings.health.concurrency })).filter(
        (c): c is HealthCheck => c !== undefined
      )
      const failed = targets.filter((i) => i.state === "Failed").map((i) => i.agentId)
      yield* locked(Effect.forEach(failed, (id) => evictLocked(id, "HealthFailure"), { discard: true }))
      env.counters.healthChecks++
      const duration = (yield* Clock.currentTimeMillis) - t0
      const count = (s: HealthStatus) => checks.filter((c) => c.status === s).length
      yield* emit((e) =>
        new HealthCheckCompleted({
          ...e,
          totalChecked: checks.length,
          healthyCount: count("Healthy"),
          degradedCount: count("Degraded"),
          unhealthyCount: count("Unhealthy"),
          failedAgents: failed,
          duration
        })
      )
      return checks
    })

    const getHealth: AgentRuntimeShape["getHealth"] = (agentId) =>
      Effect.map(live(agentId), (i) =>
        i.lastCheck ?? {
          agentId,
          status: "Unknown" as const,
          checkedAt: i.createdAt,
          details: { memoryOk: true, responseOk: true, errorRateOk: true, lastError: undefined, consecutiveFailures: 0 }
        }
      )

    // -- GC -------------------------------------------------------------------
    const needsGc = Effect.map(Clock.currentTimeMillis, (now) =>
      MemoryManager.needsGc({ underPressure: env.pool.isUnderPressure(), lastGc: env.lastGc, now, settings: settings.gc })
    )

    const runGc: Effect.Effect<MemoryManager.GcResult> = locked(
      Effect.gen(function*() {
        const t0 = yield* Clock.currentTimeMillis
        const memoryBefore = env.pool.usedMemory()
        const dropped = env.cache.dropIdle(t0, settings.gc.maxIdleMs)
        let compacted = 0
        for (const idle of idleAgents(t0)) if (yield* passivateLocked(idle)) compacted++
        const t1 = yield* Clock.currentTimeMillis
        env.lastGc = t1
        return {
          duration: t1 - t0,
          memoryBefore,
          memoryAfter: env.pool.usedMemory(),
          evictedModules: dropped.length,
          compactedInstances: compacted
        }
      })
    )

    // -- snapshots ------------------------------------------------------------
    const snapshot: AgentRuntimeShape["snapshot"] = (agentId) =>
      Effect.gen(function*() {
        const [i, state] = yield* whileRunning(agentId, (i) =>
          Effect.map(i.instance!.snapshot, (state) => [i, state] as const)
        )
        const snap = toSnapshot(i, state, yield* Clock.currentTimeMillis)
        yield* instanceRepo.saveState(agentId, snap)
        return snap
      })

    const restoreInto = (agentId: AgentId, state: EngineState) =>
      whileRunning(agentId, (i) =>
        Effect.tap(i.instance!.restore(withoutFuel(state)), () => Effect.sync(() => env.recordMemory(i, state.memoryBytes)))
      )

    const restore: AgentRuntimeShape["restore"] = (agentId) =>
      Effect.gen(function*() {
        const saved = yield* instanceRepo.loadState(agentId)
        if (Option.isNone(saved)) return yield* new AgentNotFound({ agentId })
        const snap = saved.value
        if (env.passivated.has(agentId)) {
          yield* activate(agentId) // restores the saved state
          return toInfo(yield* live(agentId))
        }
        const spawnedHere = !env.instances.has(agentId)
        if (spawnedHere) {
          yield* spawnAgent(agentId, snap.moduleId, {
            memoryLimit: snap.memoryLimit,
            memoryReservation: snap.memoryReservation,
            timeoutMs: snap.timeoutMs,
            fuel: snap.fuel,
            critical: snap.critical,
            autoStart: false
          })
          // the saved state already went through `_initialize`: start without it
          yield* inMailbox(agentId, (i) => {
            i.invocationCount = snap.invocationCount
            return setState(i, snap.critical === true ? "Critical" : "Running")
          })
        }
        const target = yield* live(agentId)
        if (target.moduleHash !== snap.moduleHash) {
          return yield* new SnapshotMismatch({ expected: target.moduleHash, actual: snap.moduleHash })
        }
        // an agent spawned here for the restore must not stay live with fresh state if the restore fails
        yield* Effect.tapError(restoreInto(agentId, snap.state), () =>
          spawnedHere ? Effect.ignore(evictAgent(agentId, "Manual")) : Effect.void)
        const i = yield* live(agentId)
        if (snap.lifecycle === "Paused" && i.state === "Running") yield* pause(agentId)
        return toInfo(i)
      })

    /** What `restoreOnStart` brought back (and what it could not, with reasons). */
    let startRestore: RestoreResult | undefined
    const restoreAll: AgentRuntimeShape["restoreAll"] = Effect.gen(function*() {
      const restored: Array<AgentId> = []
      const failed: Array<{ agentId: AgentId; reason: string }> = []
      for (const agentId of yield* instanceRepo.listSaved) {
        if (env.instances.has(agentId) || env.passivated.has(agentId)) continue
        const exit = yield* Effect.exit(
          Effect.gen(function*() {
            const saved = yield* instanceRepo.loadState(agentId)
            if (Option.isNone(saved)) return yield* new AgentNotFound({ agentId })
            if (!env.modules.has(saved.value.moduleId)) {
              const stored = yield* moduleRepo.load(saved.value.moduleId)
              yield* loadModule(stored.bytes, stored.metadata)
            }
            yield* restore(agentId)
          })
        )
        if (exit._tag === "Success") restored.push(agentId)
        else failed.push({ agentId, reason: errorText(Cause.squash(exit.cause)) })
      }
      return { restored, failed }
    })

    // -- read models ----------------------------------------------------------
    const stats: Effect.Effect<RuntimeStats> = Effect.sync(() => {
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
        id: runtimeId,
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
        cache: env.cache.stats(),
        ...env.counters
      }
    })

    const recordMetrics: AgentRuntimeShape["recordMetrics"] = Effect.gen(function*() {
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
      yield* metricsRepo.record(sample)
      return sample
    })

    // -- shutdown -------------------------------------------------------------
    const shutdown: Effect.Effect<void> = Effect.gen(function*() {
      if (env.status === "ShuttingDown" || env.status === "Stopped") return
      env.status = "ShuttingDown"
      const all = [...env.instances.values()]
      yield* Effect.forEach(all, (i) => i.exclusive(stopLocked(i)), { concurrency: 16, discard: true })
      yield* locked(
        Effect.gen(function*() {
          for (const i of all) yield* evictLocked(i.agentId, "Shutdown")
          for (const id of [...env.passivated.keys()]) yield* evictLocked(id, "Shutdown")
          for (const id of [...env.prepared.keys()]) env.unprepare(id)
        })
      )
      env.status = "Stopped"
    })

    // -- consumed events ------------------------------------------------------
    const onCoordination = (event: DomainEvent): Effect.Effect<void> => {
      switch (event._tag) {
        case "AgentJoined":
          return Effect.gen(function*() {
            if (event.moduleId === undefined) return
            const module = env.modules.get(event.moduleId)
            if (module === undefined) return
            const bytes = event.memoryLimit ?? defaultReservation(module)
            yield* Effect.ignore(compiledFor(module, { memoryLimit: bytes }))
            const now = yield* Clock.currentTimeMillis
            yield* locked(Effect.sync(() => env.prepare(event.agentId, module.id, bytes, now)))
          })
        case "AgentLeft":
          return locked(
            Effect.gen(function*() {
              if (env.prepared.has(event.agentId)) env.unprepare(event.agentId)
              else yield* evictLocked(event.agentId, "Manual")
            })
          )
        default:
          return Effect.void
      }
    }
    const defaultReservation = (module: WasmModule) =>
      Math.max(AgentConfigs.MIN_MEMORY_LIMIT, module.memoryPages * MemoryBudget.PAGE_BYTES)

    const coordination = yield* bus.subscribe
    yield* FiberSet.run(
      fibers,
      Stream.runForEach(coordination, (e) => (e._tag === "AgentJoined" || e._tag === "AgentLeft" ? onCoordination(e) : Effect.void))
    )

    // -- maintenance ----------------------------------------------------------
    const every = (ms: number | undefined, task: Effect.Effect<unknown, unknown>) =>
      ms === undefined || !(ms > 0)
        ? Effect.void
        : Effect.asVoid(FiberSet.run(fibers, Effect.forever(Effect.andThen(Effect.sleep(ms), Effect.ignore(task)))))
    yield* every(settings.maintenance.healthIntervalMs, checkHealth)
    yield* every(
      settings.maintenance.gcIntervalMs,
      Effect.flatMap(needsGc, (due) => (due ? Effect.andThen(handleMemoryPressure, runGc) : Effect.void))
    )
    yield* every(settings.maintenance.metricsIntervalMs, recordMetrics)
    yield* every(settings.persistence.snapshotIntervalMs, saveAll)
    if (settings.persistence.restoreOnStart === true) {
      const result = yield* Effect.result(restoreAll)
      startRestore = result._tag === "Success"
        ? result.success
        : { restored: [], failed: [{ agentId: "*" as AgentId, reason: `listing saved agents failed: ${result.failure.message}` }] }
    }

    return {
      id: runtimeId,
      platform: engine.platform,
      settings,
      loadModule,
      getModule,
      spawnAgent,
      start,
      pause,
      resume,
      stop,
      setCritical,
      invoke,
      prepare,
      revokeImport: (agentId, capability) => Effect.map(live(agentId), (i) => void i.revoked.add(capability)),
      readMemory,
      writeMemory,
      evictAgent,
      handleMemoryPressure,
      checkHealth,
      getHealth,
      runGc,
      needsGc,
      snapshot,
      restore,
      restoreAll,
      startRestore: Effect.sync(() => startRestore),
      saveAll,
      agent: (agentId) => Effect.map(live(agentId), toInfo),
      agents: Effect.sync(() => [...env.instances.values()].map(toInfo)),
      status: Effect.sync(() => env.refreshStatus()),
      stats,
      recordMetrics,
      shutdown,
      events: Effect.map(bus.subscribe, Stream.filter(isRuntimeEvent))
    } satisfies AgentRuntimeShape
  })

/**
 * The `AgentRuntime` layer over the ports in context. The runtime shuts down
 * (agents stopped and evicted with `Shutdown`) when the layer's scope closes.
 */
export const layer = (
  settings: SettingsInput = {}
): Layer.Layer<AgentRuntime, never, RuntimePorts> =>
  Layer.effect(
    AgentRuntime,
    Effect.gen(function*() {
      const runtime = yield* make(settings)
      yield* Effect.addFinalizer(() => runtime.shutdown)
      return runtime
    })
  )

/** The ports the runtime needs. */
export type RuntimePorts =
  | WasmEngine
  | ModuleVerifier
  | ExecutionAuthorizer
  | ModuleRepository
  | InstanceRepository
  | MetricsRepository
  | EventBus

/**
 * The embedded defaults for every port but the engine and the verifier:
 * in-memory module, instance and metrics repositories, the in-memory event
 * bus, and the allow-all authorizer.
 */
export const layerMemoryPorts: Layer.Layer<
  ModuleRepository | InstanceRepository | MetricsRepository | EventBus | ExecutionAuthorizer
> = Layer.mergeAll(
  ModuleRepositories.layerMemory,
  InstanceRepositories.layerMemory,
  MetricsRepositories.layerMemory,
  EventBuses.layerMemory,
  ExecutionAuthorizers.layerAllowAll
)

/**
 * `AgentRuntime` on the embedded defaults (`layerMemoryPorts`); provide a
 * `WasmEngine` and a `ModuleVerifier`. The event bus is exposed too, so
 * callers can publish consumed events (`AgentJoined`, `AgentLeft`).
 */
export const layerMemory = (
  settings: SettingsInput = {}
): Layer.Layer<
  AgentRuntime | ModuleRepository | InstanceRepository | MetricsRepository | EventBus | ExecutionAuthorizer,
  never,
  WasmEngine | ModuleVerifier
> => Layer.provideMerge(layer(settings), layerMemoryPorts)

/** Re-exported for callers that pattern-match on lifecycle errors. */
export type { FuelExhausted, Timeout, Trap }
