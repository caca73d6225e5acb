/**
 * Consumed events (spec "Events Consumed"): `AgentJoined` prepares an agent
 * that is about to arrive (compiles its module, reserves its memory);
 * `AgentLeft` releases it (drops the reservation, or evicts the agent).
 *
 * @since 0.1.0
 */
import * as Clock from "effect/Clock"
import * as Effect from "effect/Effect"
import * as FiberSet from "effect/FiberSet"
import type * as Scope from "effect/Scope"
import * as Stream from "effect/Stream"
import * as AgentConfigs from "../AgentConfig.js"
import { subscribeTo } from "../EventBus.js"
import * as MemoryBudget from "../MemoryBudget.js"
import type { DomainEvent } from "../RuntimeEvent.js"
import type { WasmModule } from "../WasmModule.js"
import { evictLocked } from "./Eviction.js"
import { compiledFor } from "./Modules.js"
import type { RuntimeState } from "./RuntimeState.js"
import { withDefaultFuel } from "./Spawning.js"

/** The reservation for an agent announced without a memory limit: its module's initial memory, at least the minimum. */
const defaultReservation = (module: WasmModule) =>
  Math.max(AgentConfigs.MIN_MEMORY_LIMIT, module.memoryPages * MemoryBudget.PAGE_BYTES)

/** Handles one consumed event (others are ignored). */
export const onCoordination = (state: RuntimeState, event: DomainEvent): Effect.Effect<void> => {
  const { env } = state
  switch (event._tag) {
    case "AgentJoined":
      return Effect.gen(function* () {
        if (event.moduleId === undefined) return
        const module = env.modules.get(event.moduleId)
        if (module === undefined) return
        const bytes = event.memoryLimit ?? defaultReservation(module)
        // the variant the spawn will ask for (with `limits.defaultFuel` where it applies)
        const config = withDefaultFuel(state, { memoryLimit: bytes })
        yield* Effect.ignore(compiledFor(state, module, config instanceof Error ? { memoryLimit: bytes } : config))
        const now = yield* Clock.currentTimeMillis
        yield* state.locked(Effect.sync(() => env.prepare(event.agentId, module.id, bytes, now)))
      })
    case "AgentLeft":
      return state.locked(
        Effect.gen(function* () {
          if (env.prepared.has(event.agentId)) env.unprepare(event.agentId)
          else yield* evictLocked(state, event.agentId, "Manual")
        })
      )
    default:
      return Effect.void
  }
}

/**
 * Subscribes now to the event bus's `AgentJoined` / `AgentLeft` only
 * (`EventBus.subscribeTo`: the runtime's own events neither reach nor wake
 * this subscriber on a bus that filters) and handles them in the background.
 */
export const consumeEvents = (state: RuntimeState): Effect.Effect<void, never, Scope.Scope> =>
  Effect.gen(function* () {
    const coordination = yield* subscribeTo(state.bus, ["AgentJoined", "AgentLeft"])
    yield* FiberSet.run(
      state.fibers,
      Stream.runForEach(coordination, (e) => onCoordination(state, e))
    )
  })
