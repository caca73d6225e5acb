/**
 * The `ModuleRegistry` port (spec "Domain Services / AgentFactory"): which
 * module implements an agent type (`get_module_for_type`).
 *
 * @since 0.1.0
 */
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import type { AgentType, ModuleId } from "./Ids.js"
import { ModuleNotFound } from "./RuntimeError.js"

export interface ModuleRegistryShape {
  /** The module for an agent type; unknown type → `ModuleNotFound` naming the type. */
  readonly getModuleForType: (agentType: AgentType) => Effect.Effect<ModuleId, ModuleNotFound>
  /** Registers (or replaces) the module of an agent type. */
  readonly register: (agentType: AgentType, moduleId: ModuleId) => Effect.Effect<void>
  /** Every registered type. */
  readonly types: Effect.Effect<ReadonlyArray<AgentType>>
}

/** The `ModuleRegistry` service key. */
export class ModuleRegistry extends Context.Service<ModuleRegistry, ModuleRegistryShape>()(
  "@agent-runtime/domain/ModuleRegistry"
) {}

/** An in-memory registry. */
export const makeMemory = (): ModuleRegistryShape => {
  const byType = new Map<AgentType, ModuleId>()
  return {
    getModuleForType: (agentType) =>
      Effect.suspend(() => {
        const id = byType.get(agentType)
        return id === undefined
          ? Effect.fail(new ModuleNotFound({ moduleId: `agent type ${agentType}` }))
          : Effect.succeed(id)
      }),
    register: (agentType, moduleId) => Effect.sync(() => void byType.set(agentType, moduleId)),
    types: Effect.sync(() => [...byType.keys()])
  }
}

/** The in-memory `ModuleRegistry` layer. */
export const layerMemory: Layer.Layer<ModuleRegistry> = Layer.sync(ModuleRegistry, makeMemory)
