/**
 * The `ConfigProvider` port (spec "Domain Services / AgentFactory"): the
 * default `AgentConfig` of an agent type (`get_default_config`).
 *
 * Not Effect's `ConfigProvider` (which reads settings); this one answers
 * "how is an agent of this type configured".
 *
 * @since 0.1.0
 */
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import type { AgentConfig } from "./AgentConfig.js"
import type { AgentType } from "./Ids.js"
import { MiB } from "./MemoryBudget.js"

export interface ConfigProviderShape {
  /** The default config of an agent type (falls back to the provider's default). */
  readonly getDefaultConfig: (agentType: AgentType) => Effect.Effect<AgentConfig>
}

/** The `ConfigProvider` service key. */
export class ConfigProvider extends Context.Service<ConfigProvider, ConfigProviderShape>()(
  "@agent-runtime/domain/ConfigProvider"
) {}

/** The fallback config: a 16 MiB limit. */
export const defaultConfig: AgentConfig = { memoryLimit: 16 * MiB }

/** A provider from a table of per-type configs and a fallback. */
export const make = (
  byType: Readonly<Record<string, AgentConfig>> = {},
  fallback: AgentConfig = defaultConfig
): ConfigProviderShape => ({
  getDefaultConfig: (agentType) => Effect.succeed(byType[agentType] ?? fallback)
})

/** A `ConfigProvider` layer from a table. */
export const layer = (
  byType: Readonly<Record<string, AgentConfig>> = {},
  fallback: AgentConfig = defaultConfig
): Layer.Layer<ConfigProvider> => Layer.succeed(ConfigProvider, make(byType, fallback))
