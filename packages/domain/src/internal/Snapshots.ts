/**
 * Snapshots (DESIGN.md "Snapshots"): saving an agent's complete state to the
 * `InstanceRepository`, bringing one agent back from it (into its live
 * instance, or a new instance of the same module), and bringing back every
 * saved agent (crash recovery, `persistence.restoreOnStart`).
 *
 * @since 0.1.0
 */
import * as Cause from "effect/Cause"
import * as Clock from "effect/Clock"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import { type AgentInstance, isInvocable } from "../AgentInstance.js"
import type { AgentId } from "../Ids.js"
import type { InstanceSnapshot } from "../InstanceRepository.js"
import {
  AgentNotFound,
  AgentNotRunning,
  type MemoryExceeded,
  type RepositoryError,
  type Trap
} from "../RuntimeError.js"
import { SnapshotMismatch } from "../SnapshotCodec.js"
import type { EngineState, WasmInstance } from "../WasmEngine.js"
import { evictAgent } from "./Eviction.js"
import { inMailbox, live, pause, startRestored } from "./Lifecycle.js"
import { loadModule } from "./Modules.js"
import { activate } from "./Passivation.js"
import { toSnapshot, withoutFuel } from "./Persistence.js"
import { type AgentInfo, type RestoreResult, toInfo } from "./ReadModels.js"
import { recoverLocked } from "./Recovery.js"
import { errorText, type RuntimeState } from "./RuntimeState.js"
import { type SpawnError, spawnAgent } from "./Spawning.js"

/** Errors of `restore`. */
export type RestoreError =
  | AgentNotFound
  | AgentNotRunning
  | Trap
  | MemoryExceeded
  | RepositoryError
  | SnapshotMismatch
  | SpawnError

/**
 * Runs `f` under the agent's mailbox on its live instance once any pending
 * trap recovery is done (`Recovery.recoverLocked`): a trapped instance is
 * replaced (from the last snapshot, or fresh) first, so `f` never sees the
 * state a trapped call left. Fails with `AgentNotRunning` when the agent has
 * no instance or is not Running, Critical or Paused (e.g. `Failed` because its
 * replacement failed).
 */
const whileRecovered = <A, E>(
  state: RuntimeState,
  agentId: AgentId,
  f: (i: AgentInstance, instance: WasmInstance) => Effect.Effect<A, E>
): Effect.Effect<A, E | AgentNotRunning | AgentNotFound> =>
  inMailbox(state, agentId, (i) =>
    Effect.andThen(
      recoverLocked(state, i),
      Effect.suspend((): Effect.Effect<A, E | AgentNotRunning | AgentNotFound> => {
        if (state.env.instances.get(agentId) !== i) return Effect.fail(new AgentNotFound({ agentId }))
        const instance = i.instance
        return instance === undefined || !(isInvocable(i.state) || i.state === "Paused")
          ? Effect.fail(new AgentNotRunning({ agentId, state: i.state }))
          : f(i, instance)
      })
    )
  )

/**
 * Saves an agent's complete state to the `InstanceRepository` and returns it.
 * A snapshot racing a call that trapped waits for the agent's recovery
 * (`onTrap: "restore"`) and saves the replacement's state, never the trapped
 * call's partial writes; `AgentNotRunning` when the agent could not be
 * brought back (it went `Failed`).
 */
export const snapshot = (
  state: RuntimeState,
  agentId: AgentId
): Effect.Effect<InstanceSnapshot, AgentNotFound | AgentNotRunning | Trap | RepositoryError> =>
  Effect.gen(function* () {
    const [i, engineState] = yield* whileRecovered(state, agentId, (i, instance) =>
      Effect.map(instance.snapshot, (s) => [i, s] as const)
    )
    const snap = toSnapshot(i, engineState, yield* Clock.currentTimeMillis)
    yield* state.instanceRepo.saveState(agentId, snap)
    return snap
  })

/** Restores a saved engine state into the agent's live instance (replaced first when it trapped). */
const restoreInto = (state: RuntimeState, agentId: AgentId, engineState: EngineState) =>
  whileRecovered(state, agentId, (i, instance) =>
    Effect.tap(instance.restore(withoutFuel(engineState)), () =>
      Effect.sync(() => state.env.recordMemory(i, engineState.memoryBytes))
    )
  )

/** Brings an agent back from its saved state (a new instance of its module when it is not live). */
export const restore = (state: RuntimeState, agentId: AgentId): Effect.Effect<AgentInfo, RestoreError> =>
  Effect.gen(function* () {
    const { env } = state
    const saved = yield* state.instanceRepo.loadState(agentId)
    if (Option.isNone(saved)) return yield* new AgentNotFound({ agentId })
    const snap = saved.value
    if (env.passivated.has(agentId)) {
      yield* activate(state, agentId) // restores the saved state
      return toInfo(yield* live(state, agentId))
    }
    const spawnedHere = !env.instances.has(agentId)
    if (spawnedHere) {
      yield* spawnAgent(state, agentId, snap.moduleId, {
        memoryLimit: snap.memoryLimit,
        memoryReservation: snap.memoryReservation,
        timeoutMs: snap.timeoutMs,
        fuel: snap.fuel,
        critical: snap.critical,
        autoStart: false
      })
      // the saved state already went through `_initialize`: start without it
      yield* inMailbox(state, agentId, (i) => startRestored(state, i, snap.invocationCount))
    }
    const target = yield* live(state, agentId)
    if (target.moduleHash !== snap.moduleHash) {
      return yield* new SnapshotMismatch({ expected: target.moduleHash, actual: snap.moduleHash })
    }
    // an agent spawned here for the restore must not stay live with fresh state if the restore fails
    yield* Effect.tapError(restoreInto(state, agentId, snap.state), () =>
      spawnedHere ? Effect.ignore(evictAgent(state, agentId, "Manual")) : Effect.void
    )
    const i = yield* live(state, agentId)
    if (snap.lifecycle === "Paused" && i.state === "Running") yield* pause(state, agentId)
    return toInfo(i)
  })

/**
 * Brings back every saved agent that is not live: loads its module from the
 * `ModuleRepository` (verified again), then `restore`.
 */
export const restoreAll = (state: RuntimeState): Effect.Effect<RestoreResult, RepositoryError> =>
  Effect.gen(function* () {
    const { env } = state
    const restored: Array<AgentId> = []
    const failed: Array<{ agentId: AgentId; reason: string }> = []
    for (const agentId of yield* state.instanceRepo.listSaved) {
      if (env.instances.has(agentId) || env.passivated.has(agentId)) continue
      const exit = yield* Effect.exit(
        Effect.gen(function* () {
          const saved = yield* state.instanceRepo.loadState(agentId)
          if (Option.isNone(saved)) return yield* new AgentNotFound({ agentId })
          if (!env.modules.has(saved.value.moduleId)) {
            const stored = yield* state.moduleRepo.load(saved.value.moduleId)
            yield* loadModule(state, stored.bytes, stored.metadata)
          }
          yield* restore(state, agentId)
        })
      )
      if (exit._tag === "Success") restored.push(agentId)
      else failed.push({ agentId, reason: errorText(Cause.squash(exit.cause)) })
    }
    return { restored, failed }
  })
