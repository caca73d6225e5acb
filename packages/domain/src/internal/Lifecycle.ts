/**
 * The agent lifecycle as the runtime drives it (spec `AgentInstance::start`,
 * `pause`, `resume`, `stop`): finding a live agent (rehydrating a passivated
 * one), running work under its mailbox, the lifecycle exports
 * (`_initialize`, `_cleanup`, `_health_check`, `_recover`), and the
 * transitions of `AgentInstance` with their `AgentStateChanged` events.
 *
 * @since 0.1.0
 */
import * as Effect from "effect/Effect"
import { type AgentInstance, isInvocable } from "../AgentInstance.js"
import type { AgentId } from "../Ids.js"
import { AgentNotFound, AgentNotRunning, type EngineInvokeError, type InvalidStateTransition } from "../RuntimeError.js"
import type { InvokeOutcome } from "../WasmEngine.js"
import { activate } from "./Passivation.js"
import { applyTransition, emitChange, errorText, type RuntimeState } from "./RuntimeState.js"

/** Errors of lifecycle operations (`start`, `pause`, `resume`, `stop`). */
export type LifecycleError = AgentNotFound | InvalidStateTransition | EngineInvokeError

/** The live instance of an agent, rehydrating it first when it is passivated; `AgentNotFound` otherwise. */
export const live = (state: RuntimeState, agentId: AgentId): Effect.Effect<AgentInstance, AgentNotFound> =>
  Effect.suspend(() => {
    const i = state.env.instances.get(agentId)
    if (i !== undefined) return Effect.succeed(i)
    if (state.env.passivated.has(agentId)) {
      return Effect.flatMap(
        Effect.mapError(activate(state, agentId), (e) =>
          e._tag === "AgentNotFound" ? e : new AgentNotFound({ agentId })
        ),
        () => live(state, agentId)
      )
    }
    return Effect.fail(new AgentNotFound({ agentId }))
  })

/** Runs `f` under the agent's mailbox, failing if the agent was evicted meanwhile. */
export const inMailbox = <A, E>(
  state: RuntimeState,
  agentId: AgentId,
  f: (i: AgentInstance) => Effect.Effect<A, E>
): Effect.Effect<A, E | AgentNotFound> =>
  Effect.flatMap(live(state, agentId), (i) =>
    i.exclusive(
      Effect.suspend(
        (): Effect.Effect<A, E | AgentNotFound> =>
          state.env.instances.get(agentId) === i ? f(i) : Effect.fail(new AgentNotFound({ agentId }))
      )
    )
  )

/** Runs `f` under the mailbox of an agent that has an instance and is Running, Critical or Paused. */
export const whileRunning = <A, E>(
  state: RuntimeState,
  agentId: AgentId,
  f: (i: AgentInstance, instance: NonNullable<AgentInstance["instance"]>) => Effect.Effect<A, E>
): Effect.Effect<A, E | AgentNotRunning | AgentNotFound> =>
  inMailbox(state, agentId, (i): Effect.Effect<A, E | AgentNotRunning> => {
    const instance = i.instance
    return instance === undefined || !(isInvocable(i.state) || i.state === "Paused")
      ? Effect.fail(new AgentNotRunning({ agentId, state: i.state }))
      : f(i, instance)
  })

/** Calls a lifecycle export if the module has it; `undefined` when it does not. */
export const callLifecycle = (
  state: RuntimeState,
  i: AgentInstance,
  fn: string,
  timeoutMs?: number
): Effect.Effect<InvokeOutcome | undefined, EngineInvokeError> => {
  const module = state.env.modules.get(i.moduleId)
  const instance = i.instance
  if (module === undefined || !module.functions.has(fn) || instance === undefined) return Effect.succeed(undefined)
  return Effect.map(
    instance.invoke(fn, [], { timeoutMs: timeoutMs ?? i.config.timeoutMs, fuel: i.config.fuel }),
    (outcome) => {
      state.env.recordMemory(i, outcome.memoryBytes)
      return outcome
    }
  )
}

/** Starting/Paused → Running (or Critical); runs `_initialize` on the first start. The caller holds the mailbox. */
export const startLocked = (
  state: RuntimeState,
  i: AgentInstance
): Effect.Effect<void, InvalidStateTransition | EngineInvokeError> =>
  Effect.gen(function* () {
    if (i.state === "Starting") {
      const init = yield* Effect.exit(callLifecycle(state, i, "_initialize"))
      if (init._tag === "Failure") {
        yield* applyTransition(state, i, (i) => i.fail())
        return yield* Effect.failCause(init.cause)
      }
    }
    yield* applyTransition(state, i, (i) => i.start())
  })

/** → Stopping → Stopped, running `_cleanup` (its errors are recorded, not raised). The caller holds the mailbox. */
export const stopLocked = (state: RuntimeState, i: AgentInstance): Effect.Effect<void> =>
  Effect.gen(function* () {
    if (i.state === "Stopped") return
    yield* Effect.ignore(applyTransition(state, i, (i) => i.stopping()))
    const cleanup = yield* Effect.exit(callLifecycle(state, i, "_cleanup"))
    if (cleanup._tag === "Failure") i.recordError(`_cleanup failed: ${errorText(cleanup.cause)}`)
    yield* Effect.ignore(applyTransition(state, i, (i) => i.stopped()))
  })

/** Starting/Paused → Running; runs `_initialize` on the first start. */
export const start = (state: RuntimeState, agentId: AgentId): Effect.Effect<void, LifecycleError> =>
  inMailbox(state, agentId, (i) => startLocked(state, i))

/** Running → Paused. */
export const pause = (state: RuntimeState, agentId: AgentId): Effect.Effect<void, LifecycleError> =>
  inMailbox(state, agentId, (i) => Effect.asVoid(applyTransition(state, i, (i) => i.pause())))

/** Paused → Running. */
export const resume = (state: RuntimeState, agentId: AgentId): Effect.Effect<void, LifecycleError> =>
  inMailbox(state, agentId, (i) => Effect.asVoid(applyTransition(state, i, (i) => i.resume())))

/** → Stopped, running `_cleanup`. Idempotent. */
export const stop = (state: RuntimeState, agentId: AgentId): Effect.Effect<void, LifecycleError> =>
  inMailbox(state, agentId, (i) => stopLocked(state, i))

/** Running → Critical (never evicted under pressure), or back; nothing when it is already there. */
export const setCritical = (
  state: RuntimeState,
  agentId: AgentId,
  critical: boolean
): Effect.Effect<void, LifecycleError> =>
  inMailbox(state, agentId, (i) =>
    (critical && i.state === "Critical") || (!critical && i.state === "Running")
      ? Effect.void
      : Effect.asVoid(applyTransition(state, i, (i) => (critical ? i.protect() : i.unprotect())))
  )

/** Starts a restored agent without `_initialize` (its saved state already went through it). */
export const startRestored = (state: RuntimeState, i: AgentInstance, invocationCount: number): Effect.Effect<void> =>
  Effect.suspend(() => {
    i.carry({ invocationCount })
    const change = i.start()
    return "_tag" in change ? Effect.void : emitChange(state, i.agentId, change)
  })
