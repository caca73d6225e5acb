/**
 * `@agent-runtime/edge-worker` — the edge Worker's HTTP API and runtime
 * builder (the Worker entry is `worker.ts`, bundled by `scripts/build.ts`).
 *
 * @since 0.1.0
 */
export {
  type ApiContext,
  errorResponse,
  handle,
  handler,
  layer,
  MAX_BODY_BYTES,
  routes,
  statusOf,
  toJson
} from "./HttpApi.js"
export { start, type StartOptions } from "./EdgeRuntime.js"
