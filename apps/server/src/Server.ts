/**
 * `Server`: one runtime host as a long-running service — the layers picked
 * from a `ServerConfig` and the process's life: start, serve, drain on
 * SIGINT/SIGTERM, stop.
 *
 * Modes:
 * - **Embedded** (no `natsUrl`): the in-memory ports (`AgentRuntimes.layerMemoryPorts`),
 *   or SQLite repositories with `db`; the in-memory event bus; HTTP only.
 * - **NATS** (`natsUrl`): the JetStream event bus, modules in the Object
 *   Store, snapshots in KV, one owner per agent through leases
 *   (`LeasedRuntime`), and the NATS request/reply endpoints
 *   (`NatsEndpoints`) next to HTTP. NATS unreachable at start →
 *   `NatsUnavailable { url }`.
 *
 * Shutdown (`serve`): on the stop signal the host drains (`Host.drain`:
 * refuses new calls with `ServerDraining`, ends SSE streams, waits for calls
 * in flight, saves every agent), then the layers close in reverse order:
 * NATS endpoints drained, HTTP server closed (it waits for responses in
 * flight), leases released, the runtime shut down (agents stopped, worker
 * threads terminated), the NATS connection drained.
 *
 * @since 0.1.0
 */
import {
  AgentRuntimes,
  EventBuses,
  ExecutionAuthorizers,
  layerPoolConfig,
  MetricsRepositories,
  type ModuleVerifier,
  type WasmEngine
} from "@agent-runtime/domain"
import { NativeEngine } from "@agent-runtime/engine-native"
import { NodeEngine } from "@agent-runtime/engine-node"
import { LeasedRuntime, type Leases, type Nats, NatsHost } from "@agent-runtime/nats"
import { SqliteRepositories } from "@agent-runtime/repository-sqlite"
import * as Signing from "@agent-runtime/signing"
import { testOnlyTrustStore } from "@agent-runtime/signing/test-keys"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as EffectHttpServer from "effect/http/HttpServer"
import { readFileSync } from "node:fs"
import { availableParallelism } from "node:os"
import * as Host from "./Host.js"
import * as HttpServer from "./HttpServer.js"
import * as NatsEndpoints from "./NatsEndpoints.js"
import type { ServerConfig } from "./ServerConfig.js"
import { ServerConfigInvalid } from "./ServerConfig.js"
import * as ServerMetrics from "./ServerMetrics.js"

/** What a started server tells its caller. */
export interface Started {
  /** `http://host:port` of the HTTP API (the bound port when `port` was 0). */
  readonly url: string
  readonly hostId: string
  /** NATS subject prefix of the endpoints (NATS mode). */
  readonly natsSubjectPrefix: string | undefined
}

const verifier = (trust: string) =>
  Effect.gen(function* () {
    if (trust === "test-only") {
      yield* Effect.logWarning("trusting the committed TEST-ONLY key (--trust test-only): never in production")
      return Signing.layer({ trustStore: testOnlyTrustStore() })
    }
    const json = yield* Effect.try({
      try: () => JSON.parse(readFileSync(trust, "utf8")) as unknown,
      catch: (e) =>
        new ServerConfigInvalid({
          option: "--trust",
          reason: `${trust}: ${e instanceof Error ? e.message : String(e)}`
        })
    })
    const store = yield* Effect.mapError(
      Signing.TrustStore.fromJson(json),
      (e) => new ServerConfigInvalid({ option: "--trust", reason: `${trust}: ${e.reason}` })
    )
    return Signing.layer({ trustStore: store })
  })

/**
 * The runtime, the host, its metrics and its transports for `config`: HTTP,
 * and the NATS endpoints in NATS mode.
 */
export const layer = (config: ServerConfig, verifierLayer: Layer.Layer<ModuleVerifier>) => {
  const http = HttpServer.layer({ port: config.port, host: config.host })
  const pool = layerPoolConfig({ totalMemory: config.memoryBytes, maxThreads: Math.min(4, availableParallelism()) })
  // the native engine on Node gets Node's platform services (`node:crypto` SHA-256); the node engine's layer has them
  const engine: Layer.Layer<WasmEngine> = (
    config.engine === "node" ? NodeEngine.layer : Layer.merge(NativeEngine.layer, NodeEngine.layerPlatform)
  ).pipe(Layer.provide(pool))
  const settings = { name: "server", id: config.hostId, pool: { totalMemory: config.memoryBytes } }
  const platform = Layer.mergeAll(engine, verifierLayer, pool)
  const hostAndMetrics = Host.layer({ hostId: config.hostId }).pipe(Layer.provideMerge(ServerMetrics.layer))

  if (config.natsUrl === undefined) {
    const ports =
      config.db === undefined
        ? AgentRuntimes.layerMemoryPorts
        : Layer.mergeAll(
            SqliteRepositories.layer({ path: config.db }),
            EventBuses.layerMemory,
            ExecutionAuthorizers.layerAllowAll
          )
    return http.pipe(
      Layer.provideMerge(hostAndMetrics),
      Layer.provideMerge(AgentRuntimes.layer(settings)),
      Layer.provideMerge(ports),
      Layer.provide(platform)
    )
  }
  const ports = Layer.mergeAll(MetricsRepositories.layerMemory, ExecutionAuthorizers.layerAllowAll).pipe(
    Layer.provideMerge(NatsHost.layer({ servers: config.natsUrl, hostId: config.hostId }))
  )
  return Layer.mergeAll(http, NatsEndpoints.layer()).pipe(
    Layer.provideMerge(hostAndMetrics),
    Layer.provideMerge(LeasedRuntime.layer),
    Layer.provideMerge(AgentRuntimes.layer(settings)),
    Layer.provideMerge(ports),
    Layer.provide(platform)
  )
}

/**
 * Starts the server for `config`, calls `onStarted`, waits for `stop`, then
 * drains and closes everything (see the module doc). Resolves with the
 * calls still in flight when the drain stopped waiting (0 normally).
 */
export const serve = (
  config: ServerConfig,
  stop: Effect.Effect<void>,
  onStarted: (started: Started) => Effect.Effect<void> = () => Effect.void
) =>
  Effect.scoped(
    Effect.gen(function* () {
      const verifierLayer = yield* verifier(config.trust)
      const context = yield* Layer.build(layer(config, verifierLayer))
      const host = Context.get(context, Host.Host)
      const server = Context.get(context, EffectHttpServer.HttpServer)
      const address = server.address
      const url =
        address._tag === "UnixPathAddress"
          ? `unix:${address.path}`
          : `http://${config.host.includes(":") ? `[${config.host}]` : config.host}:${address.port}`
      yield* onStarted({
        url,
        hostId: config.hostId,
        natsSubjectPrefix: config.natsUrl === undefined ? undefined : NatsEndpoints.defaultSubjectPrefix(config.hostId)
      })
      yield* stop
      return yield* host.drain(config.drainTimeoutMs)
    })
  )
