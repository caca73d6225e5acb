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

export interface InstanceRepositoryShape {
  /** Saves (replaces) an agent's state (spec `save_state`). */
  readonly saveState: (agentId: AgentId, snapshot: InstanceSnapshot) => Effect.Effect<void, RepositoryError>
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
