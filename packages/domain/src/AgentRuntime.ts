/**
 * `AgentRuntime`: the Effect service that owns one `RuntimeEnvironment`
 * aggregate and exposes the Runtime context's operations (spec "Services
 * Exposed"; DESIGN.md "Public API"): its key, its shape and the layer that
 * wires the parts. The behaviour lives in one file per concept under
 * `internal/`, each a set of functions over one `RuntimeState` record.
 *
 * Concurrency (DESIGN.md "The aggregate"): structural changes (load, spawn
 * claim, evict, pressure handling, shutdown) run under one lock, so racing
 * spawns of one id give exactly one instance; an `invoke` does not take it:
 * each agent is an actor with a mailbox — one invocation at a time per
 * agent, many agents in parallel. Every public operation is a span
 * `AgentRuntime.<op>` when a tracing backend is installed. Time comes from
 * `Clock`, so tests run with `TestClock`. Memory in bytes, times in ms.
 *
 * Inputs: every operation checks what untyped JavaScript may pass and fails
 * with a typed error, never echoing a long input whole (`internal/Inputs.ts`).
 *
 * @since 0.1.0
 */
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import type * as Scope from "effect/Scope"
import * as Stream from "effect/Stream"
import type { AgentConfig } from "./AgentConfig.js"
import type { EvictionReason } from "./EvictionReason.js"
import * as EventBuses from "./EventBus.js"
import * as ExecutionAuthorizers from "./ExecutionAuthorizer.js"
import type { HealthCheck } from "./Health.js"
import type { AgentId, ModuleId, RuntimeId } from "./Ids.js"
import * as InstanceRepositories from "./InstanceRepository.js"
import type * as MemoryManager from "./MemoryManager.js"
import * as MetricsRepositories from "./MetricsRepository.js"
import { ModuleMetadata } from "./ModuleMetadata.js"
import * as ModuleRepositories from "./ModuleRepository.js"
import type { ModuleVerifier } from "./ModuleVerifier.js"
import type * as E from "./RuntimeError.js"
import { isRuntimeEvent, type RuntimeEvent } from "./RuntimeEvent.js"
import type { RuntimePlatform } from "./RuntimePlatform.js"
import type { RuntimeSettings, SettingsInput } from "./RuntimeSettings.js"
import type { RuntimeStatus } from "./RuntimeStatus.js"
import type { WasmEngine } from "./WasmEngine.js"
import type { WasmModule } from "./WasmModule.js"
import type { WasmValue } from "./WasmValue.js"
import { consumeEvents } from "./internal/ConsumedEvents.js"
import { evictAgent } from "./internal/Eviction.js"
import { checkHealth, getHealth } from "./internal/HealthChecks.js"
import { badEvictionReason, badModuleInput, badSpawnInput, checked, withAgentId } from "./internal/Inputs.js"
import { invokeNow } from "./internal/Invocation.js"
import * as Lifecycle from "./internal/Lifecycle.js"
import type { LifecycleError } from "./internal/Lifecycle.js"
import { needsGc, runGc, startMaintenance } from "./internal/Maintenance.js"
import { getModule, loadModule, loadNow, synchronousLoads } from "./internal/Modules.js"
import { saveAfterWrite, saveAll } from "./internal/Persistence.js"
import { type PreparedCall, prepare } from "./internal/PreparedCalls.js"
import { handleMemoryPressure } from "./internal/Pressure.js"
import {
  type AgentInfo,
  agents,
  type RestoreResult,
  recordMetrics,
  type RuntimeStats,
  stats,
  status,
  toInfo
} from "./internal/ReadModels.js"
import { makeState, type RuntimePorts, type StartError } from "./internal/RuntimeState.js"
import { invokeSpan, op, tracing } from "./internal/Spans.js"
import { shutdown } from "./internal/Shutdown.js"
import { type RestoreError, restore, restoreAll, snapshot } from "./internal/Snapshots.js"
import { type SpawnError, spawnAgent } from "./internal/Spawning.js"

export { defaultSettings, resolveSettings, type RuntimeSettings, type SettingsInput } from "./RuntimeSettings.js"
export type {
  AgentInfo,
  LifecycleError,
  PreparedCall,
  RestoreResult,
  RuntimePorts,
  RuntimeStats,
  SpawnError,
  StartError
}

/** The operations of one runtime (spec "Services Exposed"). */
export interface AgentRuntimeShape {
  readonly id: RuntimeId
  readonly platform: RuntimePlatform
  readonly settings: RuntimeSettings
  /**
   * Verifies, reads, compiles (or finds in the compile cache) and registers a
   * module (spec `load_module`). Loading the same verified bytes again returns
   * the same id. Errors: `InvalidSignature`, `CompileError` (with the byte
   * offset for malformed binaries), `ModuleTooLarge`, `RuntimeUnavailable`.
   * A cache hit the runtime can answer synchronously (the bytes hashed on the
   * calling thread — `PlatformServices.sha256Hex`, or JavaScript below 8 KiB —
   * the module registered, the in-memory bus) is done in the effect's first
   * step, its `ModuleLoaded` published before the effect completes; with a
   * tracer installed every call is the span `AgentRuntime.loadModule`.
   */
  readonly loadModule: (
    bytes: Uint8Array,
    metadata: ModuleMetadata
  ) => Effect.Effect<
    ModuleId,
    | E.InvalidSignature
    | E.CompileError
    | E.ModuleTooLarge
    | E.RepositoryError
    | E.RuntimeUnavailable
    | E.InvalidArgument
  >
  /** A loaded module. */
  readonly getModule: (moduleId: ModuleId) => Effect.Effect<WasmModule, E.ModuleNotFound>
  /**
   * Creates an instance of a module for an agent (spec `spawn_agent`):
   * validates the config (1 MiB ≤ memoryLimit ≤ 512 MiB), claims the id and
   * reserves memory atomically, resolves imports (each one authorised),
   * instantiates, and — unless `autoStart: false` — starts it (`_initialize`).
   */
  readonly spawnAgent: (
    agentId: AgentId,
    moduleId: ModuleId,
    config: AgentConfig
  ) => Effect.Effect<AgentInfo, SpawnError>
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
  ) => Effect.Effect<ReadonlyArray<WasmValue>, E.InvokeError>
  /**
   * Resolves an agent's export and checks it once, for callers that call it
   * many times (the prepared call handle). `invoke` has `invoke`'s semantics;
   * `call` is a synchronous fast path on in-process engines (undefined on
   * engines with workers, or when `persistence.snapshotAfterCalls` needs an
   * effect after each call): it checks the arguments, refuses an agent that
   * is busy, not running, passivated or evicted, records activity and memory
   * like `invoke`, and throws the same typed errors.
   */
  readonly prepare: (agentId: AgentId, fn: string) => Effect.Effect<PreparedCall, E.AgentNotFound | E.FunctionNotFound>
  /**
   * Revokes a host capability (`"module.name"` of an import) from an agent:
   * its next call of that import fails with `Unauthorized` and the agent is
   * evicted with `PolicyViolation`.
   */
  readonly revokeImport: (agentId: AgentId, capability: string) => Effect.Effect<void, E.AgentNotFound>
  /** Copies bytes out of an agent's linear memory (under its mailbox). */
  readonly readMemory: (
    agentId: AgentId,
    offset: number,
    length: number
  ) => Effect.Effect<Uint8Array, E.AgentNotFound | E.AgentNotRunning | E.Trap>
  /**
   * Copies bytes into an agent's linear memory (under its mailbox); with
   * `persistence.snapshotAfterCalls` the agent is saved before it returns, as after a call.
   */
  readonly writeMemory: (
    agentId: AgentId,
    offset: number,
    bytes: Uint8Array
  ) => Effect.Effect<void, E.AgentNotFound | E.AgentNotRunning | E.Trap>
  /** Removes an agent and releases its memory (spec `evict_agent`); a reason not in `EvictionReason` → `InvalidArgument`. */
  readonly evictAgent: (
    agentId: AgentId,
    reason: EvictionReason
  ) => Effect.Effect<void, E.AgentNotFound | E.InvalidArgument>
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
  readonly getHealth: (agentId: AgentId) => Effect.Effect<HealthCheck, E.AgentNotFound>
  /** Drops compile-cache entries idle past `gc.maxIdleMs` (spec `MemoryManager::run_gc`). */
  readonly runGc: Effect.Effect<MemoryManager.GcResult>
  /** Whether a GC is due (spec `MemoryManager::needs_gc`). */
  readonly needsGc: Effect.Effect<boolean>
  /** Saves an agent's complete state to the `InstanceRepository`. */
  readonly snapshot: (
    agentId: AgentId
  ) => Effect.Effect<
    InstanceRepositories.InstanceSnapshot,
    E.AgentNotFound | E.AgentNotRunning | E.Trap | E.RepositoryError
  >
  /**
   * Brings an agent back from its saved state: into its live instance, or —
   * when it is not live — into a new instance of the same module.
   */
  readonly restore: (agentId: AgentId) => Effect.Effect<AgentInfo, RestoreError>
  /**
   * Brings back every agent saved in the `InstanceRepository` that is not
   * live (crash recovery): loads its module from the `ModuleRepository`
   * (verified again), spawns it without `_initialize` and restores its state.
   * Runs at start when `persistence.restoreOnStart` is set.
   */
  readonly restoreAll: Effect.Effect<RestoreResult, E.RepositoryError>
  /** What `persistence.restoreOnStart` restored when the runtime started (`undefined` when it did not run). */
  readonly startRestore: Effect.Effect<RestoreResult | undefined>
  /** Saves every live agent's state to the `InstanceRepository` now. */
  readonly saveAll: Effect.Effect<void>
  /** A read-only view of one agent. */
  readonly agent: (agentId: AgentId) => Effect.Effect<AgentInfo, E.AgentNotFound>
  /** Read-only views of every agent. */
  readonly agents: Effect.Effect<ReadonlyArray<AgentInfo>>
  readonly status: Effect.Effect<RuntimeStatus>
  readonly stats: Effect.Effect<RuntimeStats>
  /** Samples the runtime into the `MetricsRepository` and returns the sample. */
  readonly recordMetrics: Effect.Effect<MetricsRepositories.RuntimeMetrics, E.RepositoryError>
  /** Stops every agent (`_cleanup`), evicts it with `Shutdown`, and stops the runtime. Idempotent. */
  readonly shutdown: Effect.Effect<void>
  /** Subscribes now (in the caller's scope) to the runtime's published events. */
  readonly events: Effect.Effect<Stream.Stream<RuntimeEvent>, never, Scope.Scope>
}

/** The `AgentRuntime` service key. */
export class AgentRuntime extends Context.Service<AgentRuntime, AgentRuntimeShape>()(
  "@agent-runtime/domain/AgentRuntime"
) {}

/**
 * Builds the runtime over the ports in context; its pool is `input.pool`
 * over the program's `ResourcePoolConfig`. Background work (automatic
 * pressure handling, maintenance loops, consumed events) lives in the
 * surrounding scope and stops with it. Fails with `StartError`.
 */
export const make = (
  input: SettingsInput = {}
): Effect.Effect<AgentRuntimeShape, StartError, RuntimePorts | Scope.Scope> =>
  Effect.gen(function* () {
    const state = yield* makeState(input)
    yield* consumeEvents(state)
    yield* startMaintenance(state)
    const loadModuleNow = (bytes: Uint8Array, metadata: ModuleMetadata) => {
      // `badModuleInput` accepts every such pair (`Schema.is` of a class accepts its instances) without the parser's cost
      const bad =
        bytes instanceof Uint8Array && metadata instanceof ModuleMetadata ? undefined : badModuleInput(bytes, metadata)
      return bad !== undefined ? Effect.fail(bad) : loadNow(state, bytes, metadata)
    }
    const shape: AgentRuntimeShape = {
      id: state.id,
      platform: state.engine.platform,
      settings: state.settings,
      loadModule: (bytes, metadata) =>
        Effect.withFiber((fiber) => {
          if (tracing(fiber))
            return op.loadModule(
              checked(
                () => badModuleInput(bytes, metadata),
                () => loadModule(state, bytes, metadata)
              )
            )
          // untraced: the input checked and a synchronous cache hit answered in this step (`loadNow`)
          const now = loadModuleNow(bytes, metadata)
          return typeof now === "string" ? Effect.succeed(now) : now
        }),
      getModule: (moduleId) => getModule(state, moduleId),
      spawnAgent: (agentId, moduleId, config) =>
        op.spawnAgent(
          checked(
            () => badSpawnInput(agentId, moduleId, config),
            () => spawnAgent(state, agentId, moduleId, config)
          )
        ),
      start: (agentId) => op.start(withAgentId(agentId, () => Lifecycle.start(state, agentId))),
      pause: (agentId) => op.pause(withAgentId(agentId, () => Lifecycle.pause(state, agentId))),
      resume: (agentId) => op.resume(withAgentId(agentId, () => Lifecycle.resume(state, agentId))),
      stop: (agentId) => op.stop(withAgentId(agentId, () => Lifecycle.stop(state, agentId))),
      setCritical: (agentId, critical) =>
        op.setCritical(withAgentId(agentId, () => Lifecycle.setCritical(state, agentId, critical === true))),
      invoke: (agentId, fn, args = []) =>
        Effect.withFiber((fiber) => {
          // the checks run now, in the fiber's step: no extra effect per call
          const call = invokeNow(state, agentId, fn, args)
          return tracing(fiber) ? invokeSpan(agentId, fn)(call) : call
        }),
      prepare: (agentId, fn) => op.prepare(withAgentId(agentId, () => prepare(state, agentId, fn))),
      revokeImport: (agentId, capability) =>
        op.revokeImport(
          withAgentId(agentId, () => Effect.map(Lifecycle.live(state, agentId), (i) => i.revoke(String(capability))))
        ),
      readMemory: (agentId, offset, length) =>
        op.readMemory(
          withAgentId(agentId, () =>
            Lifecycle.whileRunning(state, agentId, (_, instance) => instance.readMemory(offset, length))
          )
        ),
      writeMemory: (agentId, offset, bytes) =>
        op.writeMemory(
          withAgentId(agentId, () =>
            Lifecycle.whileRunning(state, agentId, (i, instance) =>
              Effect.andThen(instance.writeMemory(offset, bytes), saveAfterWrite(state, i))
            )
          )
        ),
      evictAgent: (agentId, reason) =>
        op.evictAgent(
          withAgentId(agentId, () =>
            checked(
              () => badEvictionReason(reason),
              () => evictAgent(state, agentId, reason)
            )
          )
        ),
      handleMemoryPressure: op.handleMemoryPressure(handleMemoryPressure(state)),
      checkHealth: op.checkHealth(checkHealth(state)),
      getHealth: (agentId) => withAgentId(agentId, () => getHealth(state, agentId)),
      runGc: op.runGc(runGc(state)),
      needsGc: needsGc(state),
      snapshot: (agentId) => op.snapshot(withAgentId(agentId, () => snapshot(state, agentId))),
      restore: (agentId) => op.restore(withAgentId(agentId, () => restore(state, agentId))),
      restoreAll: op.restoreAll(restoreAll(state)),
      startRestore: Effect.sync(() => state.startRestore),
      saveAll: op.saveAll(saveAll(state)),
      agent: (agentId) => withAgentId(agentId, () => Effect.map(Lifecycle.live(state, agentId), toInfo)),
      agents: agents(state),
      status: status(state),
      stats: stats(state),
      recordMetrics: op.recordMetrics(recordMetrics(state)),
      shutdown: op.shutdown(shutdown(state)),
      events: Effect.map(state.bus.subscribe, Stream.filter(isRuntimeEvent))
    }
    synchronousLoads.set(shape, loadModuleNow) // the Promise facade's `loadModule`
    return shape
  })

/**
 * The `AgentRuntime` layer over the ports in context. The runtime shuts down
 * (agents stopped and evicted with `Shutdown`) when the layer's scope closes.
 */
export const layer = (settings: SettingsInput = {}): Layer.Layer<AgentRuntime, StartError, RuntimePorts> =>
  Layer.effect(
    AgentRuntime,
    Effect.gen(function* () {
      const runtime = yield* make(settings)
      yield* Effect.addFinalizer(() => runtime.shutdown)
      return runtime
    })
  )

type MemoryPorts = Exclude<RuntimePorts, WasmEngine | ModuleVerifier>

/**
 * The embedded defaults for every port but the engine and the verifier:
 * in-memory module, instance and metrics repositories, the in-memory event
 * bus, and the allow-all authorizer.
 */
export const layerMemoryPorts: Layer.Layer<MemoryPorts> = Layer.mergeAll(
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
): Layer.Layer<AgentRuntime | MemoryPorts, StartError, WasmEngine | ModuleVerifier> =>
  Layer.provideMerge(layer(settings), layerMemoryPorts)

/** Re-exported for callers that pattern-match on lifecycle errors. */
export type { FuelExhausted, Timeout, Trap } from "./RuntimeError.js"
