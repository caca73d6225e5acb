/**
 * Persistence (crash recovery): the repository record of an agent's state
 * (`InstanceSnapshot`), saving one agent after a call, and saving every live
 * agent on a schedule (`RuntimeSettings.persistence`).
 *
 * @since 0.1.0
 */
import { FUEL_EXPORT } from "@agent-runtime/wasm-binary"
import * as Clock from "effect/Clock"
import * as Effect from "effect/Effect"
import * as AgentConfigs from "../AgentConfig.js"
import type { AgentInstance } from "../AgentInstance.js"
import { type InstanceSnapshot, SNAPSHOT_VERSION } from "../InstanceRepository.js"
import type { RepositoryError, Trap } from "../RuntimeError.js"
import type { EngineState, WasmInstance } from "../WasmEngine.js"
import { errorText, type RuntimeState } from "./RuntimeState.js"

/**
 * The state without the fuel counter (`FUEL_EXPORT`): fuel is set before every
 * call, it is not agent state, and a variant without metering has no counter.
 */
export const withoutFuel = (state: EngineState): EngineState => {
  if (!(FUEL_EXPORT in state.globals)) return state
  const { [FUEL_EXPORT]: _fuel, ...globals } = state.globals
  return { ...state, globals }
}

/** The repository record of an instance's state (`now` in ms since the epoch). */
export const toSnapshot = (i: AgentInstance, engineState: EngineState, now: number): InstanceSnapshot => ({
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
  state: withoutFuel(engineState)
})

/**
 * Instances whose last save after a call failed (or was never made through
 * `snapshotChanges`): their next save asks the engine to start its record
 * afresh (`restart`) and saves the whole snapshot. Weak: holds no instance.
 */
const unsynced = new WeakSet<WasmInstance>()

/** The whole snapshot of `instance`, saved with `saveState`. */
const saveWhole = (state: RuntimeState, i: AgentInstance, instance: WasmInstance, now: number) =>
  Effect.flatMap(instance.snapshot, (s) => state.instanceRepo.saveState(i.agentId, toSnapshot(i, s, now)))

/**
 * The save of `instance` after a call: a delta save (`InstanceRepository.savePages`)
 * of what the engine reports changed (`WasmInstance.snapshotChanges`) when
 * both sides offer it, else — or when either side cannot vouch for a base
 * (`undefined` from the engine, `false` from the repository) — the whole
 * snapshot (`saveState`). A failed save makes the next one whole.
 */
const saveAfterCall = (
  state: RuntimeState,
  i: AgentInstance,
  instance: WasmInstance,
  now: number
): Effect.Effect<void, Trap | RepositoryError> => {
  const repo = state.instanceRepo
  // called as methods, never detached: engines and repositories may implement them on a prototype
  if (instance.snapshotChanges === undefined || repo.savePages === undefined) return saveWhole(state, i, instance, now)
  const restart = unsynced.has(instance)
  const saved = Effect.flatMap(instance.snapshotChanges(restart), (changes) =>
    changes === undefined
      ? saveWhole(state, i, instance, now)
      : Effect.flatMap(
          repo.savePages!(i.agentId, {
            snapshot: toSnapshot(
              i,
              { memoryBytes: changes.memoryBytes, pages: changes.pages, globals: changes.globals },
              now
            ),
            zeroed: changes.zeroed
          }),
          (done) => (done ? Effect.void : saveWhole(state, i, instance, now))
        )
  )
  return Effect.onExit(saved, (exit) =>
    Effect.sync(() => {
      if (exit._tag === "Success") unsynced.delete(instance)
      else unsynced.add(instance)
    })
  )
}

/**
 * Saves an agent's state; the caller holds its mailbox (`saveAfterCall`:
 * a delta save where the engine and the repository offer one). A failed
 * save is recorded on the agent (`lastError`) and counted
 * (`snapshotFailures`) — never silently dropped — but does not fail the
 * call that already ran.
 */
export const saveLocked = (state: RuntimeState, i: AgentInstance, now: number): Effect.Effect<void> => {
  const instance = i.instance
  return instance === undefined
    ? Effect.void
    : Effect.flatMap(Effect.exit(saveAfterCall(state, i, instance, now)), (exit) =>
        Effect.sync(() => {
          if (exit._tag === "Failure") {
            i.recordError(`snapshot failed: ${errorText(exit.cause)}`)
            state.env.counters.snapshotFailures++
          }
        })
      )
}

/** Saves every live agent now (each under its mailbox). */
export const saveAll = (state: RuntimeState): Effect.Effect<void> =>
  Effect.gen(function* () {
    const now = yield* Clock.currentTimeMillis
    yield* Effect.forEach(
      [...state.env.instances.values()],
      (i) => i.exclusive(state.env.instances.get(i.agentId) === i ? saveLocked(state, i, now) : Effect.void),
      { concurrency: 8, discard: true }
    )
  })

/**
 * After a state change outside a call (`writeMemory`): with
 * `persistence.snapshotAfterCalls` the agent is saved before the change is
 * acknowledged, as after a call — an acknowledged write survives a crash or
 * a move to another host. Runs under the agent's mailbox; a failed save is
 * counted and recorded like one after a call (`saveLocked`).
 */
export const saveAfterWrite = (state: RuntimeState, i: AgentInstance): Effect.Effect<void> =>
  state.settings.persistence.snapshotAfterCalls === true
    ? saveLocked(state, i, state.clock.currentTimeMillisUnsafe())
    : Effect.void
