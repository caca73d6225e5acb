/**
 * The `InstanceRepository` port (spec "Repository Interfaces /
 * InstanceRepository"): saved agent state for recovery, passivation and
 * migration.
 *
 * An `InstanceSnapshot` holds everything needed to bring an agent back on a
 * fresh instance of the same module: the engine's `InstanceState` (linear
 * memory with zero pages skipped, mutable globals) plus the agent's metadata.
 *
 * Adapters: `layerMemory` here; file system and SQLite (Node), IndexedDB
 * (browser), NATS KV, and key-value stores (edge).
 *
 * @since 0.1.0
 */
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import type { InstanceState as LifecycleState } from "./AgentInstance.js"
import type { AgentId, ModuleHash, ModuleId } from "./Ids.js"
import type { RepositoryError } from "./RuntimeError.js"
import type { EngineState } from "./WasmEngine.js"

/** Format version of `InstanceSnapshot`. */
export const SNAPSHOT_VERSION = 1

/** A saved agent (spec `InstanceSnapshot`). Times in ms since the Unix epoch; memory in bytes. */
export interface InstanceSnapshot {
  readonly version: number
  readonly agentId: AgentId
  readonly moduleId: ModuleId
  readonly moduleHash: ModuleHash
  readonly lifecycle: LifecycleState
  readonly memoryLimit: number
  readonly memoryReservation: number
  /** The serialisable rest of the agent's config (host imports are not saved). */
  readonly timeoutMs?: number | undefined
  readonly fuel?: number | undefined
  readonly critical?: boolean | undefined
  readonly invocationCount: number
  readonly takenAt: number
  readonly state: EngineState
}

/**
 * A delta save (`InstanceRepositoryShape.savePages`): an agent's snapshot
 * given as what changed since the agent's state this repository last saved.
 * `snapshot` holds every field of the new snapshot, but its
 * `state.pages` hold only the pages that may have changed and are not zero
 * (64 KiB each, increasing index; a page may be listed unchanged); `zeroed`
 * the indexes of pages that may have changed and are zero now (increasing;
 * they may have been zero already). Every page in neither list is as the
 * last save left it. Page bytes may be views of the agent's live memory
 * (`EngineChanges.pages`): read them before the returned effect first
 * yields, or copy them; never keep or write them.
 */
export interface SnapshotChanges {
  readonly snapshot: InstanceSnapshot
  readonly zeroed: ReadonlyArray<number>
}

export interface InstanceRepositoryShape {
  /** Saves (replaces) an agent's state (spec `save_state`). */
  readonly saveState: (agentId: AgentId, snapshot: InstanceSnapshot) => Effect.Effect<void, RepositoryError>
  /**
   * Optional: saves an agent's state as a delta (`SnapshotChanges`) on top of
   * the state this repository last saved of it (by `saveState` or
   * `savePages`) — the state after it is the one `saveState` of the whole
   * snapshot would leave, with the same durability (a returned save is
   * stored; a failed or interrupted one leaves the previous state whole).
   * Succeeds with `false`, writing nothing, when it has no base it can vouch
   * for (nothing saved by this repository object, a failed save since,
   * another writer replaced the row): the caller then saves the whole
   * snapshot with `saveState`. Repositories without it get whole snapshots
   * (`Persistence.saveLocked` in the runtime). The runtime uses it for
   * saves after calls (`RuntimeSettings.persistence.snapshotAfterCalls`) on
   * engines that report changes (`WasmInstance.snapshotChanges`).
   */
  readonly savePages?:
    | ((agentId: AgentId, changes: SnapshotChanges) => Effect.Effect<boolean, RepositoryError>)
    | undefined
  /** Loads an agent's state (spec `load_state`). */
  readonly loadState: (agentId: AgentId) => Effect.Effect<Option.Option<InstanceSnapshot>, RepositoryError>
  /** Deletes an agent's state; deleting a missing one succeeds (spec `delete_state`). */
  readonly deleteState: (agentId: AgentId) => Effect.Effect<void, RepositoryError>
  /** Ids of every saved agent (spec `list_saved`). */
  readonly listSaved: Effect.Effect<ReadonlyArray<AgentId>, RepositoryError>
}

/** The `InstanceRepository` service key. */
export class InstanceRepository extends Context.Service<InstanceRepository, InstanceRepositoryShape>()(
  "@agent-runtime/domain/InstanceRepository"
) {}

/** An in-memory repository (a `Map`). */
export const makeMemory = (): InstanceRepositoryShape => {
  const states = new Map<AgentId, InstanceSnapshot>()
  return {
    saveState: (agentId, snapshot) => Effect.sync(() => void states.set(agentId, snapshot)),
    loadState: (agentId) => Effect.sync(() => Option.fromUndefinedOr(states.get(agentId))),
    deleteState: (agentId) => Effect.sync(() => void states.delete(agentId)),
    listSaved: Effect.sync(() => [...states.keys()])
  }
}

/** The in-memory `InstanceRepository` layer (the embedded default). */
export const layerMemory: Layer.Layer<InstanceRepository> = Layer.sync(InstanceRepository, makeMemory)
