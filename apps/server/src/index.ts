/**
 * `@agent-runtime/server`: one runtime host as a long-running service — the
 * HTTP API (`ServerApi`, served by `HttpServer`), the NATS request/reply
 * endpoints (`NatsEndpoints`), metrics (`ServerMetrics`), the shared
 * services and their drain (`Host`), configuration (`ServerConfig`) and the
 * process's life (`Server.serve`). Run it with `agent-runtime-server`
 * (`src/main.ts`).
 *
 * @since 0.1.0
 */
export * as Host from "./Host.js"
export * as HttpServer from "./HttpServer.js"
export * as NatsEndpoints from "./NatsEndpoints.js"
export * as Server from "./Server.js"
export * as ServerApi from "./ServerApi.js"
export * as ServerConfig from "./ServerConfig.js"
export * as ServerMetrics from "./ServerMetrics.js"
export * as Wire from "./Wire.js"
