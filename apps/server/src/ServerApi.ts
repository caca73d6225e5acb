/**
 * `ServerApi`: the server's HTTP API as an `effect/http-api` definition —
 * routing, payload decoding, error statuses and the OpenAPI document
 * (`GET /openapi.json`) all come from it (issue 14 item 4).
 *
 * | method | path | what |
 * |---|---|---|
 * | POST | `/agents` | spawn an agent (`SpawnRequest` → `AgentView`) |
 * | GET | `/agents` | every agent on this host |
 * | GET | `/agents/:agentId` | one agent |
 * | DELETE | `/agents/:agentId?reason=` | evict (default reason `Manual`) |
 * | POST | `/agents/:agentId/evict` | evict (`{ reason }`) |
 * | POST | `/agents/:agentId/invoke` | call an export (`{ function, args }` → `{ results }`) |
 * | GET | `/agents/:agentId/health` | the agent's last health check |
 * | POST | `/modules` | load signed module bytes (`{ name, version, wasm: base64 }`) |
 * | GET | `/modules` | modules in the module repository |
 * | GET | `/health` | the runtime's health and every agent's last check |
 * | GET | `/healthz` | liveness (503 `ServerDraining` while draining) |
 * | GET | `/metrics` | Prometheus text format (`ServerMetrics`) |
 * | GET | `/events` | the runtime's events as Server-Sent Events (`data:` one JSON event) |
 *
 * Errors answer with their status (`Wire.errorStatuses`) and a JSON body
 * `{ "_tag": …, …fields }`; a body, query or path parameter that does not
 * decode → 400 `InvalidRequest { endpoint: "Payload" | "Query" | "Params", reason }`.
 *
 * @since 0.1.0
 */
import { RuntimeEvent } from "@agent-runtime/domain"
import * as Schema from "effect/Schema"
import * as HttpApi from "effect/http-api/HttpApi"
import * as HttpApiEndpoint from "effect/http-api/HttpApiEndpoint"
import * as HttpApiGroup from "effect/http-api/HttpApiGroup"
import * as HttpApiSchema from "effect/http-api/HttpApiSchema"
import * as OpenApi from "effect/http-api/OpenApi"
import * as Wire from "./Wire.js"

type WithStatus<T> = { -readonly [K in keyof T]: T[K] extends readonly [infer C, number] ? C : never }

/** Every service error with its status annotation. */
export const Errors = Wire.errorStatuses.map(([error, status]) =>
  (error as unknown as Schema.Top).pipe(HttpApiSchema.status(status))
) as unknown as WithStatus<typeof Wire.errorStatuses>

const agentParams = { agentId: Schema.String }

/** Agents: spawn, list, get, evict, invoke, health. */
export class AgentsApi extends HttpApiGroup.make("agents")
  .add(
    HttpApiEndpoint.post("spawn", "/agents", {
      payload: Wire.SpawnRequest,
      success: Wire.AgentView.pipe(HttpApiSchema.status(201)),
      error: Errors
    }),
    HttpApiEndpoint.get("list", "/agents", { success: Schema.Array(Wire.AgentView) }),
    HttpApiEndpoint.get("get", "/agents/:agentId", { params: agentParams, success: Wire.AgentView, error: Errors }),
    HttpApiEndpoint.delete("evict", "/agents/:agentId", {
      params: agentParams,
      query: { reason: Schema.optional(Wire.EvictBody.fields.reason) },
      success: Wire.Evicted,
      error: Errors
    }),
    HttpApiEndpoint.post("evictPost", "/agents/:agentId/evict", {
      params: agentParams,
      payload: Wire.EvictBody,
      success: Wire.Evicted,
      error: Errors
    }),
    HttpApiEndpoint.post("invoke", "/agents/:agentId/invoke", {
      params: agentParams,
      payload: Wire.InvokeBody,
      success: Wire.InvokeResult,
      error: Errors
    }),
    HttpApiEndpoint.get("health", "/agents/:agentId/health", {
      params: agentParams,
      success: Wire.AgentHealth,
      error: Errors
    })
  )
  .annotateMerge(
    OpenApi.annotations({ title: "Agents", description: "Spawn, invoke, evict and check agents on this host" })
  ) {}

/** Modules: upload signed bytes, list. */
export class ModulesApi extends HttpApiGroup.make("modules")
  .add(
    HttpApiEndpoint.post("load", "/modules", {
      payload: Wire.ModuleUpload,
      success: Wire.ModuleView.pipe(HttpApiSchema.status(201)),
      error: Errors
    }),
    HttpApiEndpoint.get("list", "/modules", { success: Schema.Array(Wire.ModuleView), error: Errors })
  )
  .annotateMerge(OpenApi.annotations({ title: "Modules", description: "Signed WebAssembly modules" })) {}

/** The runtime: health, liveness, metrics, events. */
export class RuntimeApi extends HttpApiGroup.make("runtime")
  .add(
    HttpApiEndpoint.get("health", "/health", { success: Wire.RuntimeHealth }),
    HttpApiEndpoint.get("healthz", "/healthz", {
      success: Wire.Liveness,
      error: Wire.ServerDraining.pipe(HttpApiSchema.status(503))
    }),
    HttpApiEndpoint.get("metrics", "/metrics", {
      success: Schema.String.pipe(HttpApiSchema.asText({ contentType: "text/plain; version=0.0.4; charset=utf-8" }))
    }),
    HttpApiEndpoint.get("events", "/events", { success: HttpApiSchema.StreamSse({ data: RuntimeEvent }) })
  )
  .annotateMerge(OpenApi.annotations({ title: "Runtime", description: "Health, metrics and events of this host" })) {}

/** The whole API. */
export class ServerApi extends HttpApi.make("agent-runtime-server")
  .add(AgentsApi)
  .add(ModulesApi)
  .add(RuntimeApi)
  .annotateMerge(
    OpenApi.annotations({
      title: "agent-runtime server",
      description: "One agent-runtime host: WebAssembly agents behind HTTP and NATS"
    })
  ) {}
