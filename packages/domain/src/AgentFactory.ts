/**
 * `AgentFactory` (spec "Domain Services / AgentFactory"): creates agents by
 * agent type — the module from `ModuleRegistry`, the default config from
 * `ConfigProvider` — or with a custom, validated config.
 *
 * @since 0.1.0
 */
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Random from "effect/Random"
import * as AgentConfigs from "./AgentConfig.js"
import type { AgentConfig } from "./AgentConfig.js"
import { AgentRuntime, type AgentInfo, type SpawnError } from "./AgentRuntime.js"
import { ConfigProvider } from "./ConfigProvider.js"
import type { AgentId, AgentType, ModuleId } from "./Ids.js"
import { ModuleRegistry } from "./ModuleRegistry.js"
import type { ModuleNotFound } from "./RuntimeError.js"

export interface AgentFactoryShape {
  /**
   * Spawns an agent of a type with its default config (spec `create_default`).
   * The agent id is `<type>-<random 8 hex>` unless one is given.
   * Errors: `ModuleNotFound` (unknown type) and every `SpawnError`.
   */
  readonly createDefault: (
    agentType: AgentType,
    agentId?: AgentId
  ) => Effect.Effect<AgentInfo, SpawnError | ModuleNotFound>
  /** Validates a config (1 MiB ≤ memoryLimit ≤ 512 MiB → else `InvalidConfig`) and spawns (spec `create_custom`). */
  readonly createCustom: (
    agentId: AgentId,
    moduleId: ModuleId,
    config: AgentConfig
  ) => Effect.Effect<AgentInfo, SpawnError>
}

/** The `AgentFactory` service key. */
export class AgentFactory extends Context.Service<AgentFactory, AgentFactoryShape>()(
  "@agent-runtime/domain/AgentFactory"
) {}

/** Builds the factory over `AgentRuntime`, `ModuleRegistry` and `ConfigProvider`. */
export const make: Effect.Effect<AgentFactoryShape, never, AgentRuntime | ModuleRegistry | ConfigProvider> = Effect.gen(
  function* () {
    const runtime = yield* AgentRuntime
    const registry = yield* ModuleRegistry
    const configs = yield* ConfigProvider
    const createCustom: AgentFactoryShape["createCustom"] = (agentId, moduleId, config) =>
      Effect.suspend(() => {
        const invalid = AgentConfigs.validate(config)
        return invalid === undefined ? runtime.spawnAgent(agentId, moduleId, config) : Effect.fail(invalid)
      })
    return {
      createCustom,
      createDefault: (agentType, agentId) =>
        Effect.gen(function* () {
          const moduleId = yield* registry.getModuleForType(agentType)
          const config = yield* configs.getDefaultConfig(agentType)
          const id =
            agentId ??
            (`${agentType}-${(yield* Random.nextIntBetween(0, 0x7fffffff)).toString(16).padStart(8, "0")}` as AgentId)
          return yield* createCustom(id, moduleId, config)
        })
    }
  }
)

/** The `AgentFactory` layer. */
export const layer: Layer.Layer<AgentFactory, never, AgentRuntime | ModuleRegistry | ConfigProvider> = Layer.effect(
  AgentFactory,
  make
)
