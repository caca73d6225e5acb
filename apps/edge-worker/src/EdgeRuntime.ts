/**
 * Builds the edge Worker's `AgentRuntime` from its bundle: the registry is
 * checked against the manifest first (`BundleRegistry.make`), then the
 * runtime runs on the edge engine and the bundle verifier, with the
 * bundle's `limits` (so the domain's rewrites match the bundled variants),
 * in-memory module/metrics repositories and event bus, and an
 * `InstanceRepository` that is in-memory unless a key-value store (Workers
 * KV / Durable Object storage shape) is given.
 *
 * @since 0.1.0
 */
import {
  AgentRuntime,
  AgentRuntimes,
  EventBuses,
  ExecutionAuthorizers,
  InstanceRepositories,
  MetricsRepositories,
  ModuleRepositories,
  type SettingsInput
} from "@agent-runtime/domain"
import { EdgeEngine } from "@agent-runtime/engine-edge"
import {
  type BundleContents,
  type BundleError,
  BundleRegistry,
  BundleVerifier
} from "@agent-runtime/engine-edge/bundle"
import { type KeyValueStore, KvInstanceRepository } from "@agent-runtime/repository-kv"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Scope from "effect/Scope"
import type { ApiContext } from "./HttpApi.js"

/** Options of `start`. */
export interface StartOptions {
  /** Runtime settings (the bundle's `limits` always win). */
  readonly settings?: SettingsInput | undefined
  /** Where agent snapshots go; in memory when omitted. */
  readonly store?: KeyValueStore | undefined
}

/** Checks the bundle and starts a runtime over it; the runtime lives as long as the isolate. */
export const start = (bundle: BundleContents, options: StartOptions = {}): Effect.Effect<ApiContext, BundleError> =>
  Effect.gen(function* () {
    const registry = yield* BundleRegistry.make(bundle)
    const ports = Layer.mergeAll(
      EdgeEngine.layer(registry),
      BundleVerifier.layer(registry),
      ModuleRepositories.layerMemory,
      options.store === undefined ? InstanceRepositories.layerMemory : KvInstanceRepository.layer(options.store),
      MetricsRepositories.layerMemory,
      EventBuses.layerMemory,
      ExecutionAuthorizers.layerAllowAll
    )
    const layer = AgentRuntimes.layer({
      name: "edge-worker",
      ...options.settings,
      limits: registry.manifest.limits
    }).pipe(
      Layer.provide(ports),
      Layer.orDie // the edge engine has no threads: only a malformed pool.maxThreads in the settings can refuse the start
    )
    const scope = yield* Scope.make()
    const context = yield* Layer.buildWithScope(layer, scope)
    return { runtime: Context.get(context, AgentRuntime), registry }
  })
