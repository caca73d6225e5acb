/**
 * `Wire`: the shapes the server's services take and give on the wire — the
 * same JSON over HTTP and over NATS request/reply — and the typed errors a
 * caller can get, each with its HTTP status code.
 *
 * - WebAssembly values: `i32`/`f32`/`f64` as JSON numbers; `i64` as a
 *   decimal string (`"9007199254740993"`) because JSON numbers cannot hold
 *   every i64. Results come back the same way.
 * - Memory in bytes, times in ms (Unix epoch for instants).
 * - Errors are the domain's tagged errors (`RuntimeError.ts`) encoded as
 *   `{ "_tag": …, …fields }`; `AgentAlreadyExists` carries the `owner` host
 *   (this host's id when the agent lives here). Statuses: see `statusOf`.
 *
 * @since 0.1.0
 */
import * as D from "@agent-runtime/domain"
import * as Schema from "effect/Schema"

/** A WebAssembly value on the wire: a number, or an i64 as a decimal string. */
export const WireValue = Schema.Union([Schema.Number, Schema.String])
export type WireValue = typeof WireValue.Type

/** Wire values → runtime values (decimal strings → bigint); `undefined` names the first bad index. */
export const toWasmValues = (args: ReadonlyArray<WireValue>): ReadonlyArray<D.WasmValue> | number => {
  const out: Array<D.WasmValue> = []
  for (let i = 0; i < args.length; i++) {
    const a = args[i]!
    if (typeof a === "number") out.push(a)
    else if (/^-?\d{1,20}$/.test(a)) out.push(BigInt(a))
    else return i
  }
  return out
}

/** Runtime values → wire values (bigint → decimal string; anything not a number → its string form). */
export const fromWasmValues = (values: ReadonlyArray<D.WasmValue>): Array<WireValue> =>
  values.map((v) => (typeof v === "number" ? v : typeof v === "bigint" ? v.toString() : String(v)))

/** `POST /agents` (NATS `spawn`): create an agent of a loaded module. */
export const SpawnRequest = Schema.Struct({
  agentId: Schema.String,
  moduleId: Schema.String,
  /** Hard memory limit, bytes (1 MiB … 512 MiB). */
  memoryLimit: Schema.Number,
  /** Per-call timeout, ms. */
  timeoutMs: Schema.optional(Schema.Number),
  /** Fuel per call (native engine), fuel units. */
  fuel: Schema.optional(Schema.Number),
  /** Never evicted under memory pressure. */
  critical: Schema.optional(Schema.Boolean)
})
export type SpawnRequest = typeof SpawnRequest.Type

/** `POST /agents/:agentId/invoke` body. */
export const InvokeBody = Schema.Struct({
  function: Schema.String,
  args: Schema.optional(Schema.Array(WireValue))
})

/** NATS `invoke`: the agent id in the body. */
export const InvokeRequest = Schema.Struct({
  agentId: Schema.String,
  function: Schema.String,
  args: Schema.optional(Schema.Array(WireValue))
})
export type InvokeRequest = typeof InvokeRequest.Type

/** An invoke's results. */
export const InvokeResult = Schema.Struct({ results: Schema.Array(WireValue) })

/** `POST /agents/:agentId/evict` body (and the `reason` query of `DELETE /agents/:agentId`). */
export const EvictBody = Schema.Struct({ reason: Schema.optional(D.EvictionReason) })

/** NATS `evict`. */
export const EvictRequest = Schema.Struct({ agentId: Schema.String, reason: Schema.optional(D.EvictionReason) })

/** NATS `health`: one agent's last check, or the runtime's health without `agentId`. */
export const HealthRequest = Schema.Struct({ agentId: Schema.optional(Schema.String) })

/** The acknowledgement of an eviction. */
export const Evicted = Schema.Struct({ agentId: Schema.String, reason: D.EvictionReason })

/** A read-only view of one agent. */
export const AgentView = Schema.Struct({
  agentId: Schema.String,
  instanceId: Schema.String,
  moduleId: Schema.String,
  state: Schema.String,
  health: Schema.String,
  /** Bytes. */
  memoryLimit: Schema.Number,
  /** Bytes (last report). */
  memoryUsed: Schema.Number,
  invocationCount: Schema.Number,
  errorCount: Schema.Number,
  createdAt: Schema.Number,
  lastActivity: Schema.Number
})
export type AgentView = typeof AgentView.Type

/** `AgentInfo` → `AgentView`. */
export const agentView = (info: D.AgentInfo): AgentView => ({
  agentId: info.agentId,
  instanceId: info.instanceId,
  moduleId: info.moduleId,
  state: info.state,
  health: info.health,
  memoryLimit: info.budget.limit,
  memoryUsed: info.budget.used,
  invocationCount: info.invocationCount,
  errorCount: info.errorCount,
  createdAt: info.createdAt,
  lastActivity: info.lastActivity
})

/** One agent's last health check (status `Unknown` before the first). */
export const AgentHealth = Schema.Struct({
  agentId: Schema.String,
  status: Schema.String,
  checkedAt: Schema.Number,
  details: Schema.Struct({
    memoryOk: Schema.Boolean,
    responseOk: Schema.Boolean,
    errorRateOk: Schema.Boolean,
    lastError: Schema.optional(Schema.String),
    consecutiveFailures: Schema.Number
  })
})
export type AgentHealth = typeof AgentHealth.Type

/** `HealthCheck` → `AgentHealth`. */
export const agentHealth = (h: D.Health.HealthCheck): AgentHealth => ({
  agentId: h.agentId,
  status: h.status,
  checkedAt: h.checkedAt,
  details: {
    memoryOk: h.details.memoryOk,
    responseOk: h.details.responseOk,
    errorRateOk: h.details.errorRateOk,
    ...(h.details.lastError === undefined ? {} : { lastError: h.details.lastError }),
    consecutiveFailures: h.details.consecutiveFailures
  }
})

/** The runtime's health: its status, memory and every agent's last check. */
export const RuntimeHealth = Schema.Struct({
  hostId: Schema.String,
  runtimeId: Schema.String,
  status: Schema.String,
  draining: Schema.Boolean,
  /** Service calls running now. */
  inFlight: Schema.Number,
  agents: Schema.Number,
  memory: Schema.Struct({
    total: Schema.Number,
    reserved: Schema.Number,
    used: Schema.Number,
    pressureLevel: Schema.String
  }),
  checks: Schema.Array(AgentHealth)
})
export type RuntimeHealth = typeof RuntimeHealth.Type

/** `GET /healthz`: liveness (503 with `ServerDraining` once a drain began). */
export const Liveness = Schema.Struct({ status: Schema.Literal("ok"), hostId: Schema.String })

/** `POST /modules`: signed module bytes (base64) with the name and version their signature covers. */
export const ModuleUpload = Schema.Struct({
  name: Schema.String,
  version: Schema.String,
  /** The signed `.wasm` bytes, base64. */
  wasm: Schema.String
})
export type ModuleUpload = typeof ModuleUpload.Type

/** A loaded module. */
export const ModuleView = Schema.Struct({
  moduleId: Schema.String,
  name: Schema.String,
  version: Schema.String,
  /** Bytes. */
  size: Schema.optional(Schema.Number),
  exports: Schema.optional(Schema.Array(Schema.String))
})
export type ModuleView = typeof ModuleView.Type

/** The server is draining (SIGINT/SIGTERM): it takes no new work. */
export class ServerDraining extends Schema.TaggedError<ServerDraining>()("ServerDraining", { hostId: Schema.String }) {
  override get message() {
    return `host ${this.hostId} is draining and takes no new work`
  }
}

/** A request body the service cannot read (NATS endpoints; HTTP answers 400 with the schema error). */
export class InvalidRequest extends Schema.TaggedError<InvalidRequest>()("InvalidRequest", {
  endpoint: Schema.String,
  reason: Schema.String
}) {
  override get message() {
    return `invalid ${this.endpoint} request: ${this.reason}`
  }
}

/** The agent exists — here or on the `owner` host (NATS leases). */
export class AgentAlreadyExists extends Schema.TaggedError<AgentAlreadyExists>()("AgentAlreadyExists", {
  agentId: Schema.String,
  owner: Schema.String
}) {
  override get message() {
    return `agent already exists: ${this.agentId} (held by host ${this.owner})`
  }
}

/** The lease table (NATS KV) could not be used. */
export class LeaseUnavailable extends Schema.TaggedError<LeaseUnavailable>()("LeaseUnavailable", {
  operation: Schema.String,
  agentId: Schema.String,
  reason: Schema.String
}) {
  override get message() {
    return `lease ${this.operation} of agent ${this.agentId} failed: ${this.reason}`
  }
}

/** Every error a service of the server can answer with, and its HTTP status. */
export const errorStatuses = [
  [InvalidRequest, 400],
  [D.InvalidArgument, 400],
  [D.InvalidConfig, 400],
  [D.SignatureMismatch, 400],
  [D.Unauthorized, 403],
  [D.AgentNotFound, 404],
  [D.ModuleNotFound, 404],
  [D.FunctionNotFound, 404],
  [AgentAlreadyExists, 409],
  [D.AgentNotRunning, 409],
  [D.InvalidStateTransition, 409],
  [D.AgentEvictedDuringCall, 409],
  [D.ModuleTooLarge, 413],
  [D.InvalidSignature, 422],
  [D.CompileError, 422],
  [D.InstantiationError, 422],
  [D.Trap, 422],
  [D.MemoryExceeded, 422],
  [D.FuelExhausted, 422],
  [D.ResourceExhausted, 429],
  [D.RepositoryError, 500],
  [D.InsufficientMemory, 503],
  [D.RuntimeUnavailable, 503],
  [ServerDraining, 503],
  [LeaseUnavailable, 503],
  [D.Timeout, 504]
] as const

/** Any error a service answers with. */
export type ServiceError = InstanceType<(typeof errorStatuses)[number][0]>

// every class's name is its tag
const statuses = new Map<string, number>(errorStatuses.map(([cls, status]) => [cls.name, status]))

/** The HTTP status of an error tag (500 for a tag this table does not know). */
export const statusOf = (tag: string): number => statuses.get(tag) ?? 500

/** An error as its wire body: `{ _tag, ...fields, message }`. */
export const errorBody = (error: { readonly _tag: string; readonly message: string }): Record<string, unknown> => {
  const body: Record<string, unknown> = {}
  for (const [k, v] of Object.entries(error)) if (k !== "stack" && typeof v !== "function") body[k] = v
  body["_tag"] = error._tag
  body["message"] = error.message
  return body
}
