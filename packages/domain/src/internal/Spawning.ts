/**
 * Spawning (spec `spawn_agent`): validates the config against the engine's
 * capabilities, claims the id and reserves memory atomically (aggregate
 * invariants 1 and 4), resolves and authorises imports, instantiates, and
 * — unless `autoStart: false` — starts the agent (`_initialize`).
 *
 * @since 0.1.0
 */
import { TABLE_ENTRY_BYTES } from "@agent-runtime/wasm-binary"
import * as Effect from "effect/Effect"
import * as AgentConfigs from "../AgentConfig.js"
import type { AgentConfig } from "../AgentConfig.js"
import type { AgentInstance } from "../AgentInstance.js"
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
  ModuleNotFound,
  type ResourceExhausted,
  RuntimeUnavailable,
  type Unauthorized
} from "../RuntimeError.js"
import { AgentSpawned, AgentStateChanged, type RuntimeEvent } from "../RuntimeEvent.js"
import { publishAll, publishNow, wants } from "../EventBus.js"
import type { CompiledModule, HostImports, WasmEngineShape, WasmInstance } from "../WasmEngine.js"
import type { WasmModule } from "../WasmModule.js"
import { acceptsWork } from "../RuntimeStatus.js"
import { instantiate, instantiateOptions, resolveImports } from "./Instantiation.js"
import { startLocked } from "./Lifecycle.js"
import { cachedVariant } from "./Modules.js"
import { pressureDue, schedulePressure } from "./Pressure.js"
import { type AgentInfo, toInfo } from "./ReadModels.js"
import { nextInstanceId, type RuntimeState, stampedEvent } from "./RuntimeState.js"

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

/** The imports granted to an agent of a module without imports: none (one frozen object for every such spawn). */
const NO_IMPORTS: HostImports = Object.freeze({})

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
        reason: `engine ${platform} cannot preempt a call (capabilities.preemptiveTimeout = false): timeoutMs alone would not stop a runaway call — set fuel to bound it`
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
      reason: `engine ${platform} cannot preempt a call (capabilities.preemptiveTimeout = false) and limits.defaultFuel is disabled: set fuel to bound the agent's calls`
    })
  }
  // copied field by field: an object spread costs µs per spawn on Node 20 (see `stampedEvent`)
  const withFuel: Record<string, unknown> = {}
  const source = config as unknown as Record<string, unknown>
  for (const key in source) if (Object.hasOwn(source, key)) withFuel[key] = source[key]
  withFuel.fuel = fuel
  return withFuel as unknown as AgentConfig
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

/**
 * Creates, instantiates and (unless `autoStart: false`) starts an agent of a loaded module.
 *
 * The common case runs in few Effect steps: the checks in one synchronous
 * step; the claim (id + memory reservation) taken synchronously when the
 * aggregate lock is free (`RuntimeState.lockFree`: no structural change is in
 * flight, and a synchronous step cannot be interleaved — invariants 1 and 4
 * hold as under the lock), else under the lock; the agent's compiled variant
 * read from the compile cache without an effect when it is there; and, after
 * the engine's instantiate, one synchronous step that attaches the instance,
 * records its memory and — when the module has no `_initialize` — starts it,
 * with both events (`AgentSpawned`, `AgentStateChanged`) built without
 * re-parsing their typed fields and without object spreads (`stampedEvent`)
 * and published in one step (`EventBus.publishAll`). On an engine with
 * `instantiateSync` (in-process engines), when the variant is cached and no
 * `_initialize` runs, the claim, the instantiation, the attach, the start and
 * the events are one synchronous step (`spawnNow`): no mailbox, no engine
 * effect — and, on a bus that delivers synchronously (the in-memory bus),
 * no effect at all after the checks, the events delivered in that step and
 * built only when a subscriber would receive them (`EventBus.wants`).
 */
export const spawnAgent = (
  state: RuntimeState,
  agentId: AgentId,
  moduleId: ModuleId,
  input: AgentConfig
): Effect.Effect<AgentInfo, SpawnError> =>
  Effect.suspend((): Effect.Effect<AgentInfo, SpawnError> => {
    const { env } = state
    const invalid = AgentConfigs.validate(input)
    if (invalid !== undefined) return Effect.fail(invalid)
    if (!acceptsWork(env.status)) return Effect.fail(new RuntimeUnavailable({ status: env.status }))
    const refused = unsupported(state, input)
    if (refused !== undefined) return Effect.fail(refused)
    const config = withDefaultFuel(state, input)
    if (config instanceof InvalidConfig) return Effect.fail(config)
    const module = env.modules.get(moduleId)
    if (module === undefined) return Effect.fail(new ModuleNotFound({ moduleId }))
    const initialBytes = initialFootprint(module)
    if (initialBytes > config.memoryLimit) {
      return Effect.fail(new MemoryExceeded({ agentId, used: initialBytes, limit: config.memoryLimit }))
    }
    const authorized = state.authorizer.authorize({
      action: "spawn",
      agentId,
      moduleHash: module.hash,
      subject: module.metadata.name
    })
    // an authorizer that allows without an effect (`allowAll`: `Effect.void` itself) costs no step
    return authorized === Effect.void
      ? claimWithImports(state, agentId, moduleId, module, config)
      : Effect.flatMap(authorized, () => claimWithImports(state, agentId, moduleId, module, config))
  })

/** Resolves the imports granted to the agent, then claims and instantiates (a module without imports — the common agent — grants nothing: no import round). */
const claimWithImports = (
  state: RuntimeState,
  agentId: AgentId,
  moduleId: ModuleId,
  module: WasmModule,
  config: AgentConfig
): Effect.Effect<AgentInfo, SpawnError> =>
  module.imports.length === 0
    ? claimAndInstantiate(state, agentId, moduleId, module, config, NO_IMPORTS)
    : Effect.flatMap(resolveImports(state, agentId, module, config.imports), (imports) =>
        claimAndInstantiate(state, agentId, moduleId, module, config, imports)
      )

/**
 * Claims the id and the memory — synchronously when the aggregate lock is
 * free (no structural change in flight: a synchronous claim is as atomic as
 * one under the lock), else under the lock — then instantiates.
 */
const claimAndInstantiate = (
  state: RuntimeState,
  agentId: AgentId,
  moduleId: ModuleId,
  module: WasmModule,
  config: AgentConfig,
  imports: HostImports
): Effect.Effect<AgentInfo, SpawnError> => {
  const claimInput = {
    agentId,
    moduleId,
    instanceId: nextInstanceId(state, agentId),
    config,
    now: state.clock.currentTimeMillisUnsafe()
    // no mailbox: the agent makes it on first use (a spawn in one step and synchronous calls never need one)
  }
  if (state.lockFree()) {
    const claimed = state.env.claim(claimInput)
    if (claimed instanceof Error) return Effect.fail(claimed)
    const cached = cachedVariant(state, module, config)
    const instantiateSync = state.engine.instantiateSync
    // nothing of the guest runs after instantiation (no `_initialize`, or not started): one synchronous step
    return cached !== undefined &&
      instantiateSync !== undefined &&
      (config.autoStart === false || !module.functions.has("_initialize"))
      ? spawnNow(state, claimed, module, config, imports, cached, instantiateSync)
      : instantiateClaimed(state, claimed, module, config, imports, cached)
  }
  return Effect.flatMap(
    state.locked(
      Effect.suspend(() => {
        const claimed = state.env.claim(claimInput)
        return claimed instanceof Error ? Effect.fail(claimed) : Effect.succeed(claimed)
      })
    ),
    (claimed) => instantiateClaimed(state, claimed, module, config, imports, cachedVariant(state, module, config))
  )
}

/**
 * Releases a claim whose spawn failed: the instance (if attached) is
 * terminated and the agent removed under the aggregate lock (its memory back to the pool).
 */
const releaseClaim = (state: RuntimeState, claimed: AgentInstance): Effect.Effect<void> =>
  Effect.suspend(() => {
    const instance = claimed.detach()
    return Effect.andThen(
      instance === undefined ? Effect.void : instance.terminate,
      state.locked(
        Effect.sync(
          () => void (state.env.instances.get(claimed.agentId) === claimed && state.env.remove(claimed.agentId))
        )
      )
    )
  })

/** The agent's info once spawned, with a pressure check scheduled when one is due. */
const spawned = (state: RuntimeState, claimed: AgentInstance): Effect.Effect<AgentInfo> => {
  const info = toInfo(claimed)
  return pressureDue(state) ? Effect.as(schedulePressure(state), info) : Effect.succeed(info)
}

/**
 * The spawn of a claimed agent in one synchronous step, on an engine with
 * `instantiateSync`, when its compiled variant is cached and nothing of the
 * guest runs after instantiation: runs right after the claim, in the same
 * step (no other fiber can see the agent in between, so no mailbox is taken),
 * instantiates, attaches, records memory, starts, and publishes the events —
 * the same events, errors and pool accounting as `instantiateClaimed`. An
 * instantiation error releases the claim right away (the aggregate lock is
 * still free in this step).
 */
const spawnNow = (
  state: RuntimeState,
  claimed: AgentInstance,
  module: WasmModule,
  config: AgentConfig,
  imports: HostImports,
  compiled: CompiledModule,
  instantiateSync: NonNullable<WasmEngineShape["instantiateSync"]>
): Effect.Effect<AgentInfo, SpawnError> => {
  const { env } = state
  const { agentId } = claimed
  const made = instantiateSync(compiled, instantiateOptions(state, agentId, module, config, imports))
  if (made instanceof Error) {
    if (env.instances.get(agentId) === claimed) env.remove(agentId)
    return Effect.fail(made)
  }
  const deliver = publishNow(state.bus)
  if (deliver !== undefined) {
    // the bus delivers synchronously (the in-memory bus): the whole spawn is this step, no effect after the claim
    const failed = attachAndStartNow(state, claimed, config, made.instance, made.memoryBytes, deliver)
    return failed === undefined
      ? spawned(state, claimed)
      : Effect.andThen(releaseClaim(state, claimed), Effect.fail(failed))
  }
  return attachAndStart(state, claimed, module, config, made.instance, made.memoryBytes).pipe(
    Effect.onError(() => releaseClaim(state, claimed)),
    Effect.flatMap(() => spawned(state, claimed))
  )
}

/**
 * `attachAndStart` for a module without `_initialize` (or `autoStart:
 * false`) on a bus that delivers synchronously (`EventBus.publishNow`), as
 * one synchronous step: attaches, records memory, counts the spawn, starts,
 * and delivers `AgentSpawned` and `AgentStateChanged` now — each built only
 * when a subscriber of the bus would receive it (`EventBus.wants`: in the
 * same step as the delivery, so no subscriber can appear in between; an
 * event nobody receives costs nothing, not even its id). Returns the start's
 * error (after `AgentSpawned`, as `attachAndStart`), else `undefined`.
 */
const attachAndStartNow = (
  state: RuntimeState,
  claimed: AgentInstance,
  config: AgentConfig,
  instance: WasmInstance,
  memoryBytes: number,
  deliver: (event: RuntimeEvent) => void
): InvalidStateTransition | undefined => {
  attachCounted(state, claimed, instance, memoryBytes)
  const { bus } = state
  const now = state.clock.currentTimeMillisUnsafe()
  if (wants(bus, "AgentSpawned")) deliver(spawnedEvent(state, claimed, config, now))
  if (config.autoStart === false) return undefined
  const change = claimed.start()
  if ("_tag" in change) return change
  if (wants(bus, "AgentStateChanged")) {
    deliver(stampedEvent(state, AgentStateChanged, now, { agentId: claimed.agentId, from: change.from, to: change.to }))
  }
  return undefined
}

/**
 * The step after a successful instantiation, shared by both spawn paths:
 * attaches the instance, records its memory, counts the spawn and publishes
 * `AgentSpawned`; then, unless `autoStart` is `false`, starts the agent —
 * synchronously with its `AgentStateChanged` in the same publish when the
 * module has no `_initialize`, else through `startLocked` (the guest runs).
 */
const attachAndStart = (
  state: RuntimeState,
  claimed: AgentInstance,
  module: WasmModule,
  config: AgentConfig,
  instance: WasmInstance,
  memoryBytes: number
): Effect.Effect<void, SpawnError> => {
  attachCounted(state, claimed, instance, memoryBytes)
  const now = state.clock.currentTimeMillisUnsafe()
  const event = spawnedEvent(state, claimed, config, now)
  if (config.autoStart === false) return state.bus.publish(event)
  if (module.functions.has("_initialize")) return Effect.andThen(state.bus.publish(event), startLocked(state, claimed))
  // nothing of the guest runs at start: the transition is synchronous
  const change = claimed.start()
  if ("_tag" in change) return Effect.andThen(state.bus.publish(event), Effect.fail(change))
  const started = stampedEvent(state, AgentStateChanged, now, {
    agentId: claimed.agentId,
    from: change.from,
    to: change.to
  })
  return publishAll(state.bus, [event, started])
}

/** Attaches a spawned agent's instance, records its memory (bytes) and counts the spawn: both spawn paths' first step. */
const attachCounted = (state: RuntimeState, claimed: AgentInstance, instance: WasmInstance, memoryBytes: number) => {
  claimed.attach(instance)
  state.env.recordMemory(claimed, memoryBytes)
  state.env.counters.spawned++
}

/** `AgentSpawned` for a claimed agent at `now` (`stampedEvent`: no re-parse, no spread). */
const spawnedEvent = (state: RuntimeState, claimed: AgentInstance, config: AgentConfig, now: number): AgentSpawned =>
  stampedEvent(state, AgentSpawned, now, {
    agentId: claimed.agentId,
    moduleId: claimed.moduleId,
    instanceId: claimed.id,
    memoryAllocated: config.memoryLimit
  })

/**
 * Instantiates a claimed agent under its mailbox and starts it; on failure
 * the instance is terminated and the claim released (memory back to the pool).
 */
const instantiateClaimed = (
  state: RuntimeState,
  claimed: AgentInstance,
  module: WasmModule,
  config: AgentConfig,
  imports: HostImports,
  cached: CompiledModule | undefined
): Effect.Effect<AgentInfo, SpawnError> => {
  const { env } = state
  const { agentId } = claimed
  const made =
    cached === undefined
      ? instantiate(state, agentId, module, config, imports)
      : state.engine.instantiate(cached, instantiateOptions(state, agentId, module, config, imports))
  const body = Effect.flatMap(made, (instance) =>
    Effect.flatMap(instance.memoryBytes, (bytes): Effect.Effect<void, SpawnError> => {
      if (env.instances.get(agentId) !== claimed) {
        // evicted (or the runtime shut down) while instantiating
        return Effect.andThen(
          instance.terminate,
          Effect.fail(
            acceptsWork(env.status) ? new AgentNotFound({ agentId }) : new RuntimeUnavailable({ status: env.status })
          )
        )
      }
      return attachAndStart(state, claimed, module, config, instance, bytes)
    })
  )
  return claimed.exclusive(body).pipe(
    Effect.onError(() => releaseClaim(state, claimed)),
    Effect.flatMap(() => spawned(state, claimed))
  )
}
