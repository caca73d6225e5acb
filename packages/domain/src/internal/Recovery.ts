/**
 * Recovery after a trap (issue 12 item 7): a trap can leave a guest's
 * internal state broken (a shadow-stack pointer half-moved, a lock held), so
 * by default the agent's instance is discarded after a `Trap` and replaced
 * before its next call — restored from its last snapshot in the
 * `InstanceRepository` when there is one for the same module, else
 * re-instantiated fresh (start function and `_initialize` again). This is
 * what the anchors do: Wasmtime and Extism discard an instance after a trap,
 * Orleans deactivates a faulted grain. `AgentConfig.onTrap` (default
 * `RuntimeSettings.onTrap`, `"restore"`) set to `"keep"` keeps the
 * WebAssembly default: the instance stays, its memory as the trap left it.
 *
 * An instance its engine ended on its own (`WasmInstance.isLive` false: a
 * worker engine terminates the worker of a call whose caller was
 * interrupted or whose deadline passed) is replaced the same way before the
 * agent's next call, whatever `onTrap` says — a terminated instance cannot
 * be kept, and without this the next call would fail with `Trap` "instance
 * terminated" (and, under `"keep"`, every call after it).
 *
 * The failed call still counts against the agent's health (`errorCount`, the
 * health check's error rate); the replacement publishes `AgentRecovered`. An
 * agent that cannot be brought back (its start function or `_initialize`
 * fails now) goes `Failed` and is evicted (`HealthFailure`).
 *
 * @since 0.3.0
 */
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import type { AgentInstance } from "../AgentInstance.js"
import type { EngineInvokeError } from "../RuntimeError.js"
import { AgentRecovered } from "../RuntimeEvent.js"
import { evictLater } from "./Eviction.js"
import { instantiate, resolveImports } from "./Instantiation.js"
import { callLifecycle } from "./Lifecycle.js"
import { getModule } from "./Modules.js"
import { withoutFuel } from "./Persistence.js"
import { applyTransition, emit, errorText, type RuntimeState } from "./RuntimeState.js"

/** The `AgentRecovered` cause of a replaced instance that was no longer live (`WasmInstance.isLive`). */
export const NOT_LIVE_CAUSE =
  "the instance was no longer live (its engine terminated it: an interrupted or timed-out call, or a lost worker)"

/** Whether the agent's engine instance was ended by its engine (`WasmInstance.isLive` false). */
const notLive = (i: AgentInstance): boolean => {
  const isLive = i.instance?.isLive
  return isLive !== undefined && !isLive()
}

/**
 * Whether the instance must be replaced before it runs another call: it
 * trapped (under `onTrap: "restore"`), or its engine ended it (`notLive`).
 */
export const awaitsRecovery = (i: AgentInstance): boolean => i.trapNote !== undefined || notLive(i)

/**
 * Whether a trap was noted for the instance (`noteFailure`) — not whether it
 * is live: a failed call replaces its instance right away only after a trap,
 * and leaves an instance its engine ended (a `Timeout`, which may evict the
 * agent next) to be replaced before the next call.
 */
export const trapNoted = (i: AgentInstance): boolean => i.trapNote !== undefined

/**
 * Records a failed call for recovery: a `Trap` of an agent whose policy is
 * `"restore"` marks its instance for replacement (`recoverLocked`). Other
 * errors (fuel, timeout, a refused call) leave it as it is.
 */
export const noteFailure = (state: RuntimeState, i: AgentInstance, error: EngineInvokeError): void => {
  if (error._tag === "Trap" && (i.config.onTrap ?? state.settings.onTrap) === "restore") i.trapNote = error.message
}

/**
 * Replaces the instance of an agent that trapped, or whose instance its
 * engine ended (`awaitsRecovery`); nothing otherwise.
 * The caller holds the agent's mailbox. Never fails: an agent that cannot be
 * brought back goes `Failed` and is evicted in the background.
 * Uninterruptible once started: an interruption of the caller (a timeout, a
 * cancelled request) takes effect after the replacement is attached, so no
 * agent is ever left between its old instance's detach and the new one's
 * attach (it would answer `AgentNotFound` for good).
 */
export const recoverLocked = (state: RuntimeState, i: AgentInstance): Effect.Effect<void> =>
  Effect.uninterruptible(
    Effect.suspend(() => {
      const cause = i.trapNote ?? (notLive(i) ? NOT_LIVE_CAUSE : undefined)
      if (cause === undefined) return Effect.void
      i.trapNote = undefined
      if (state.env.instances.get(i.agentId) !== i) return Effect.void // evicted or passivated meanwhile
      return Effect.flatMap(Effect.exit(replace(state, i)), (exit) => {
        // evicted while the replacement was made (a Timeout's eviction): nothing to announce or fail
        if (state.env.instances.get(i.agentId) !== i) return Effect.void
        // a replacement its engine ended already would be replaced again before every call: it failed
        if (exit._tag === "Success" && !notLive(i)) {
          return emit(
            state,
            (e) =>
              new AgentRecovered({
                ...e,
                agentId: i.agentId,
                from: exit.value.from,
                takenAt: exit.value.takenAt,
                cause
              })
          )
        }
        i.recordError(
          `recovery after a trap failed: ${exit._tag === "Success" ? "the replacement was not live" : errorText(exit.cause)}`
        )
        return Effect.andThen(
          Effect.ignore(applyTransition(state, i, (i) => i.fail())),
          evictLater(state, i.agentId, "HealthFailure")
        )
      })
    })
  )

/**
 * Terminates the instance and attaches a new one, restored from the last
 * snapshot or fresh. A replacement made while the agent was evicted (the
 * eviction does not wait for the agent's mailbox) is terminated, not attached.
 */
const replace = (state: RuntimeState, i: AgentInstance) =>
  Effect.gen(function* () {
    const old = i.detach()
    if (old !== undefined) yield* old.terminate
    const module = yield* getModule(state, i.moduleId)
    const imports = yield* resolveImports(state, i.agentId, module, i.config.imports)
    const instance = yield* instantiate(state, i.agentId, module, i.config, imports)
    if (state.env.instances.get(i.agentId) !== i) {
      yield* instance.terminate
      return { from: "Fresh" as const, takenAt: undefined }
    }
    i.attach(instance)
    const saved = Option.filter(
      yield* Effect.orElseSucceed(state.instanceRepo.loadState(i.agentId), Option.none),
      (s) => s.moduleHash === i.moduleHash
    )
    if (Option.isSome(saved)) {
      yield* instance.restore(withoutFuel(saved.value.state))
    } else {
      yield* callLifecycle(state, i, "_initialize")
    }
    state.env.recordMemory(i, yield* instance.memoryBytes)
    return Option.isSome(saved)
      ? { from: "Snapshot" as const, takenAt: saved.value.takenAt }
      : { from: "Fresh" as const, takenAt: undefined }
  })
