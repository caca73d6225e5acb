/**
 * `HttpServer`: the `ServerApi` implemented over `Host` and served by
 * `@effect/platform-node`'s `NodeHttpServer` (Node's `http` server; routing
 * by `effect/http`'s router from the API definition — no hand-written
 * routes). `layer` listens on `host:port` (port 0 = a free port; read the
 * bound one from `HttpServer.HttpServer`'s `address`). Closing the layer
 * stops accepting connections and waits for responses in flight (Node's
 * `server.close`).
 *
 * @since 0.1.0
 */
import { NodeHttpServer } from "@effect/platform-node"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Stream from "effect/Stream"
import * as HttpRouter from "effect/http/HttpRouter"
import type * as EffectHttpServer from "effect/http/HttpServer"
import type { ServeError } from "effect/http/HttpServerError"
import * as HttpServerResponse from "effect/http/HttpServerResponse"
import * as HttpApiBuilder from "effect/http-api/HttpApiBuilder"
import { HttpApiSchemaError } from "effect/http-api/HttpApiError"
import { createServer } from "node:http"
import { Host } from "./Host.js"
import { ServerApi } from "./ServerApi.js"
import { ServerMetrics } from "./ServerMetrics.js"
import * as Wire from "./Wire.js"

const AgentsHandlers = HttpApiBuilder.group(
  ServerApi,
  "agents",
  Effect.fnUntraced(function* (handlers) {
    const host = yield* Host
    return handlers
      .handle("spawn", ({ payload }) => host.spawn(payload))
      .handle("list", () => host.agents)
      .handle("get", ({ params }) => host.agent(params.agentId))
      .handle("evict", ({ params, query }) => host.evict(params.agentId, query.reason ?? "Manual"))
      .handle("evictPost", ({ params, payload }) => host.evict(params.agentId, payload.reason ?? "Manual"))
      .handle("invoke", ({ params, payload }) => host.invoke(params.agentId, payload.function, payload.args ?? []))
      .handle("health", ({ params }) => host.agentHealth(params.agentId))
  })
)

const ModulesHandlers = HttpApiBuilder.group(
  ServerApi,
  "modules",
  Effect.fnUntraced(function* (handlers) {
    const host = yield* Host
    return handlers.handle("load", ({ payload }) => host.loadModule(payload)).handle("list", () => host.modules)
  })
)

const RuntimeHandlers = HttpApiBuilder.group(
  ServerApi,
  "runtime",
  Effect.fnUntraced(function* (handlers) {
    const host = yield* Host
    const metrics = yield* ServerMetrics
    return handlers
      .handle("health", () => host.runtimeHealth)
      .handle("healthz", () => Effect.as(host.alive, { status: "ok" as const, hostId: host.hostId }))
      .handle("metrics", () => metrics.render(host.runtime))
      .handle("events", () => Effect.succeed(Stream.unwrap(host.events)))
  })
)

/**
 * A request whose parameters or body do not decode answers `400` with the
 * JSON body of `InvalidRequest { endpoint, reason }` (the API's default is an
 * empty 400), like every other error of the server.
 */
const InvalidRequestBodies = HttpRouter.middleware(
  (httpEffect) =>
    // the API turns a decoding failure into a defect that renders as an empty 400
    Effect.catchDefect(httpEffect, (defect) =>
      HttpApiSchemaError.is(defect) && defect.kind !== "Body" && defect.kind !== "ResponseHeaders"
        ? Effect.succeed(
            HttpServerResponse.jsonUnsafe(
              Wire.errorBody(new Wire.InvalidRequest({ endpoint: defect.kind, reason: defect.cause.message })),
              { status: 400 }
            )
          )
        : Effect.die(defect)
    ),
  { global: true }
)

/** The API's routes (with `/openapi.json`), over `Host` and `ServerMetrics`. */
export const routes = Layer.mergeAll(
  HttpApiBuilder.layer(ServerApi, { openapiPath: "/openapi.json" }).pipe(
    Layer.provide([AgentsHandlers, ModulesHandlers, RuntimeHandlers])
  ),
  InvalidRequestBodies
)

/** Serves the API on `host:port` with Node's HTTP server. */
export const layer = (options: {
  readonly port: number
  readonly host: string
}): Layer.Layer<EffectHttpServer.HttpServer, ServeError, Host | ServerMetrics> =>
  HttpRouter.serve(routes, { disableLogger: true, disableListenLog: true }).pipe(
    Layer.provideMerge(NodeHttpServer.layer(createServer, { port: options.port, host: options.host }))
  )
