/**
 * Spawning (spec `spawn_agent`): validates the config against the engine's
 * capabilities, claims the id and reserves memory atomically (aggregate
 * invariants 1 and 4), resolves and authorises imports, instantiates, and
 * — unless `autoStart: false` — starts the agent (`_initialize`).
 *
 * @since 0.1.0
 */
import { TABLE_ENTRY_BYTES } from "@agent-runtime/wasm-binary"
import * as Clock from "effect/Clock"
import * as Effect from "effect/Effect"
import * as Semaphore from "effect/Semaphore"
import * as AgentConfigs from "../AgentConfig.js"
import type { AgentConfig } from "../AgentConfig.js"
import type { AgentId, ModuleId } from "../Ids.js"
import * as MemoryBudget from "../MemoryBudget.js"
import {
  type AgentAlreadyExists,
  AgentNotFound,
  type EngineInvokeError,
  type InstantiationError,
  type InsufficientMemory,
  InvalidConfig,
  type InvalidStateTransition,
  MemoryExceeded,
  type ModuleNotFound,
  type ResourceExhausted,
  RuntimeUnavailable,
  type Unauthorized
} from "../RuntimeError.js"
import { AgentSpawned } from "../RuntimeEvent.js"
import type { WasmModule } from "../WasmModule.js"
import { acceptsWork } from "../RuntimeStatus.js"
import { instantiate, resolveImports } from "./Instantiation.js"
import { startLocked } from "./Lifecycle.js"
import { getModule } from "./Modules.js"
import { schedulePressure } from "./Pressure.js"
import { type AgentInfo, toInfo } from "./ReadModels.js"
import { emit, ensureAccepting, nextInstanceId, type RuntimeState } from "./RuntimeState.js"

/**
 * Errors of `spawnAgent` (`AgentNotFound`: the agent was evicted while it was being spawned;
 * `ResourceExhausted { resource: "instances" }`: the pool's `maxInstances` live instances).
 */
export type SpawnError =
  | AgentNotFound
  | AgentAlreadyExists
  | ModuleNotFound
  | InsufficientMemory
  | InvalidConfig
  | InstantiationError
  | InvalidStateTransition
  | ResourceExhausted
  | Unauthorized
  | RuntimeUnavailable
  | EngineInvokeError

/** `InvalidConfig` when the engine cannot give what the config asks for (fuel, a deadline it can enforce). */
const unsupported = (state: RuntimeState, config: AgentConfig): InvalidConfig | undefined => {
  const { platform, capabilities } = state.engine
  if (config.fuel !== undefined && !capabilities.fuel) {
    return new InvalidConfig({ reason: `engine ${platform} has no fuel metering (capabilities.fuel = false)` })
  }
  if (config.timeoutMs !== undefined && !capabilities.preemptiveTimeout) {
    // without preemption a deadline cannot stop a running call: only fuel can bound it
    if (!capabilities.fuel) {
      return new InvalidConfig({
        reason: `engine ${platform} cannot enforce timeoutMs: it can neither preempt a call nor meter fuel (capabilities)`
      })
    }
    if (config.fuel === undefined) {
      return new InvalidConfig({
        reason:
          `engine ${platform} cannot preempt a call (capabilities.preemptiveTimeout = false): timeoutMs alone would not stop a runaway call — set fuel to bound it`
      })
    }
  }
  return undefined
}

/**
 * The config an agent runs with: on an engine that cannot preempt a call but
 * meters fuel and compiles at run time, a config with neither `fuel` nor
 * `timeoutMs` gets `settings.limits.defaultFuel` (fuel units per call), so
 * no call runs unbounded on the host's thread; with the default disabled it
 * is refused (`InvalidConfig`). Elsewhere the config is used as given.
 */
export const withDefaultFuel = (state: RuntimeState, config: AgentConfig): AgentConfig | InvalidConfig => {
  const { platform, capabilities } = state.engine
  if (capabilities.preemptiveTimeout || !capabilities.fuel || !capabilities.runtimeCompile) return config
  if (config.fuel !== undefined || config.timeoutMs !== undefined) return config
  const fuel = state.settings.limits.defaultFuel
  if (fuel === false) {
    return new InvalidConfig({
      reason:
        `engine ${platform} cannot preempt a call (capabilities.preemptiveTimeout = false) and limits.defaultFuel is disabled: set fuel to bound the agent's calls`
    })
  }
  return { ...config, fuel }
}

/**
 * What an instance of `module` holds from the start, bytes: its initial
 * linear memory (pages × 64 KiB) plus its tables' initial entries ×
 * `TABLE_ENTRY_BYTES` (the table cap's unit, issue 12 item 1). An agent whose
 * `memoryLimit` is below it is refused (`MemoryExceeded`): the caps could not
 * keep it within its budget, so the pool could not count it strictly.
 */
export const initialFootprint = (module: WasmModule): number => {
  let entries = 0
  for (const t of module.info.tables) entries += t.min
  for (const i of module.info.imports) if (i.type.kind === "table") entries += i.type.min
  return module.memoryPages * MemoryBudget.PAGE_BYTES + entries * TABLE_ENTRY_BYTES
}

/** Creates, instantiates and (unless `autoStart: false`) starts an agent of a loaded module. */
export const spawnAgent = (
  state: RuntimeState,
  agentId: AgentId,
  moduleId: ModuleId,
  input: AgentConfig
): Effect.Effect<AgentInfo, SpawnError> =>
  Effect.gen(function*() {
    const { env } = state
    const invalid = AgentConfigs.validate(input)
    if (invalid !== undefined) return yield* invalid
    yield* ensureAccepting(state)
    const refused = unsupported(state, input)
    if (refused !== undefined) return yield* refused
    const config = withDefaultFuel(state, input)
    if (config instanceof InvalidConfig) return yield* config
    const module = yield* getModule(state, moduleId)
    const initialBytes = initialFootprint(module)
    if (initialBytes > config.memoryLimit) {
      return yield* new MemoryExceeded({ agentId, used: initialBytes, limit: config.memoryLimit })
    }
    yield* state.authorizer.authorize({ action: "spawn", agentId, moduleHash: module.hash, subject: module.metadata.name })
    const imports = yield* resolveImports(state, agentId, module, config.imports)
    const now = yield* Clock.currentTimeMillis
    const instanceId = nextInstanceId(state, agentId)
    const claimed = yield* state.locked(
      Effect.suspend(() => {
        const r = env.claim({ agentId, moduleId, instanceId, config, now, mailbox: Semaphore.makeUnsafe(1) })
        return r instanceof Error ? Effect.fail(r) : Effect.succeed(r)
      })
    )
    const instantiated = yield* Effect.exit(
      claimed.exclusive(
        Effect.gen(function*() {
          const instance = yield* instantiate(state, agentId, module, config, imports)
          if (env.instances.get(agentId) !== claimed) {
            yield* instance.terminate
            // evicted (or the runtime shut down) while instantiating
            return yield* (acceptsWork(env.status)
              ? new AgentNotFound({ agentId })
              : new RuntimeUnavailable({ status: env.status }))
          }
          claimed.attach(instance)
          env.recordMemory(claimed, yield* instance.memoryBytes)
          env.counters.spawned++
          yield* emit(state, (e) =>
            new AgentSpawned({ ...e, agentId, moduleId, instanceId, memoryAllocated: config.memoryLimit })
          )
          if (config.autoStart !== false) yield* startLocked(state, claimed)
        })
      )
    )
    if (instantiated._tag === "Failure") {
      const instance = claimed.detach()
      if (instance !== undefined) yield* instance.terminate
      yield* state.locked(Effect.sync(() => void (env.instances.get(agentId) === claimed && env.remove(agentId))))
      return yield* Effect.failCause(instantiated.cause)
    }
    yield* schedulePressure(state)
    return toInfo(claimed)
  })
