/**
 * The edge Worker's HTTP API over an `AgentRuntime` whose engine is
 * `@agent-runtime/engine-edge` (issue 6 "apps/edge-worker").
 *
 * Routes (JSON bodies; i64 values as decimal strings, non-finite floats as
 * `"NaN"`, `"Infinity"`, `"-Infinity"`):
 *
 * | route | body | success |
 * |---|---|---|
 * | `POST /agents/:id` | `{ "type": string, "memoryLimit"?: bytes, "fuel"?: units }` | 201 the agent |
 * | `POST /agents/:id/invoke/:fn` | `[arg, …]` | 200 `{ "results": [...] }` |
 * | `DELETE /agents/:id` | — | 204 |
 * | `GET /agents/:id/health` | — | 200 `{ "health": HealthCheck, "agent": AgentInfo }` |
 * | `GET /events[?limit=N]` | — | 200 `text/event-stream`: one `data:` line of JSON per runtime event |
 * | `GET /` | — | 200 runtime stats and the bundle's agent types |
 *
 * `memoryLimit` and `fuel` default to the bundle's config for the agent type
 * (`agent-runtime bundle`): other values only work when the bundle holds a
 * variant for them (runtime compilation is forbidden on the edge).
 *
 * Errors are `{ "error": { "_tag", "message", …fields } }` with these
 * status codes (`statusOf`):
 *
 * | status | errors |
 * |---|---|
 * | 400 | malformed JSON or body shape, `InvalidConfig`, `SignatureMismatch` (arguments that do not fit the export) |
 * | 403 | `Unauthorized` |
 * | 404 | unknown route, `UnknownAgentType`, `AgentNotFound`, `FunctionNotFound`, `ModuleNotFound` |
 * | 405 | a known route with another method |
 * | 409 | `AgentAlreadyExists`, `AgentNotRunning`, `AgentEvictedDuringCall`, `InvalidStateTransition` |
 * | 413 | body above 1 MiB, `MemoryExceeded`, `ModuleTooLarge` |
 * | 422 | `InvalidSignature`, `CompileError`/`InstantiationError` (a config the bundle has no variant for: `[edge:no-variant]`), `FuelExhausted`, `Trap`, `Timeout` |
 * | 503 | `RuntimeUnavailable`, `InsufficientMemory`, `ResourceExhausted`, `RepositoryError`, a bundle that failed its checks at start |
 * | 500 | a defect (reported, never thrown out of the Worker) |
 *
 * The routes are an Effect `HttpRouter` (`effect/http`): one table
 * (`routes`) gives each path its handlers by method; the other methods of a
 * known path answer 405 and any other path 404. `handler(ctx)` turns it into
 * a Fetch handler (`HttpRouter.toWebHandler`) that runs in workerd.
 *
 * @since 0.1.0
 */
import {
  agentId as toAgentId,
  type AgentInfo,
  type AgentRuntimeShape,
  makeMetadata,
  type ModuleId,
  type RuntimeEvent,
  type WasmValue
} from "@agent-runtime/domain"
import type { BundleRegistry } from "@agent-runtime/engine-edge/bundle"
import * as Cause from "effect/Cause"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as HttpRouter from "effect/http/HttpRouter"
import * as HttpServerRequest from "effect/http/HttpServerRequest"
import * as HttpServerResponse from "effect/http/HttpServerResponse"
import type * as Layer from "effect/Layer"
import * as Scope from "effect/Scope"
import * as Stream from "effect/Stream"

/** Largest request body accepted, in bytes (1 MiB). */
export const MAX_BODY_BYTES = 1_048_576

/** An error of the HTTP layer itself (not of the runtime). */
interface HttpError {
  readonly _tag: string
  readonly message: string
  readonly [field: string]: unknown
}

/** The status code of an error, by `_tag` (see the module doc). */
export const statusOf = (error: { readonly _tag: string }): number => {
  switch (error._tag) {
    case "BadRequest":
    case "InvalidConfig":
    case "SignatureMismatch":
      return 400
    case "Unauthorized":
      return 403
    case "NotFound":
    case "UnknownAgentType":
    case "AgentNotFound":
    case "FunctionNotFound":
    case "ModuleNotFound":
      return 404
    case "MethodNotAllowed":
      return 405
    case "AgentAlreadyExists":
    case "AgentNotRunning":
    case "AgentEvictedDuringCall":
    case "InvalidStateTransition":
      return 409
    case "PayloadTooLarge":
    case "MemoryExceeded":
    case "ModuleTooLarge":
      return 413
    case "InvalidSignature":
    case "CompileError":
    case "InstantiationError":
    case "FuelExhausted":
    case "Trap":
    case "Timeout":
      return 422
    case "RuntimeUnavailable":
    case "InsufficientMemory":
    case "ResourceExhausted":
    case "RepositoryError":
    case "ManifestInvalid":
    case "BundleFileMissing":
    case "BundleMismatch":
      return 503
    default:
      return 500
  }
}

/** JSON with bigints as decimal strings and non-finite numbers as strings. */
export const toJson = (value: unknown): string =>
  JSON.stringify(value, (_key, v: unknown) => {
    if (typeof v === "bigint") return v.toString()
    if (typeof v === "number" && !Number.isFinite(v)) return String(v)
    if (v instanceof Uint8Array) return { bytes: v.byteLength }
    return v
  })

const jsonType = "application/json; charset=utf-8"

const json = (status: number, body: unknown): HttpServerResponse.HttpServerResponse =>
  HttpServerResponse.text(toJson(body), { status, contentType: jsonType })

/** The error body of a typed error (its `_tag`, `message` and own fields). */
const errorBody = (error: { readonly _tag: string; readonly message?: string }) => {
  const fields: Record<string, unknown> = {}
  for (const [k, v] of Object.entries(error)) if (k !== "stack" && k !== "cause") fields[k] = v
  return { error: { ...fields, _tag: error._tag, message: error.message ?? error._tag } }
}

/** The Fetch `Response` of a typed error: status by `statusOf`, body `{ "error": { _tag, message, …fields } }`. */
export const errorResponse = (error: { readonly _tag: string; readonly message?: string }): Response =>
  new Response(toJson(errorBody(error)), { status: statusOf(error), headers: { "content-type": jsonType } })

const httpError = (tag: string, message: string, fields: Record<string, unknown> = {}): HttpError => ({
  _tag: tag,
  message,
  ...fields
})

/** Reads a JSON body (≤ `MAX_BODY_BYTES`). */
const readJson = Effect.gen(function* () {
  const request = yield* HttpServerRequest.HttpServerRequest
  const declared = Number(request.headers["content-length"] ?? "0")
  if (declared > MAX_BODY_BYTES) {
    return yield* Effect.fail(
      httpError("PayloadTooLarge", `request body of ${declared} bytes exceeds ${MAX_BODY_BYTES} bytes`, {
        limit: MAX_BODY_BYTES
      })
    )
  }
  const text = yield* Effect.mapError(request.text, (e) =>
    httpError("BadRequest", `cannot read the request body: ${e.message}`)
  )
  if (text.length > MAX_BODY_BYTES) {
    return yield* Effect.fail(
      httpError("PayloadTooLarge", `request body exceeds ${MAX_BODY_BYTES} bytes`, { limit: MAX_BODY_BYTES })
    )
  }
  if (text.trim() === "") return yield* Effect.fail(httpError("BadRequest", "the request body is empty; JSON expected"))
  return yield* Effect.try({
    try: () => JSON.parse(text) as unknown,
    catch: () => httpError("BadRequest", "the request body is not valid JSON")
  })
})

/** Converts a JSON argument to the export's parameter type (i64 from a decimal string or a safe integer). */
const toWasmValue = (value: unknown, type: string, index: number): WasmValue | HttpError => {
  const bad = (expected: string) =>
    httpError("BadRequest", `argument ${index}: expected ${expected}, got ${toJson(value)}`, { index })
  switch (type) {
    case "i64":
      if (typeof value === "string" && /^-?\d+$/.test(value)) return BigInt(value)
      if (typeof value === "number" && Number.isSafeInteger(value)) return BigInt(value)
      return bad("an i64 as a decimal string")
    case "i32":
      return typeof value === "number" ? value : bad("an i32 number")
    case "f32":
    case "f64":
      if (typeof value === "number") return value
      if (value === "NaN" || value === "Infinity" || value === "-Infinity") return Number(value)
      return bad(`an ${type} number`)
    default:
      return bad(`a value of a type JSON can carry (the parameter is ${type})`)
  }
}

/** What the API needs: the runtime and the bundle. */
export interface ApiContext {
  readonly runtime: AgentRuntimeShape
  readonly registry: BundleRegistry.BundleRegistry
}

/** Per-isolate module ids by agent type (loading is verified once per type). */
const loaded = new WeakMap<AgentRuntimeShape, Map<string, ModuleId>>()

/** The route's `:id` parameter as an agent id. */
const pathAgentId = Effect.map(HttpRouter.params, (p) => toAgentId(p.id ?? ""))

type Handler = Effect.Effect<
  HttpServerResponse.HttpServerResponse,
  unknown,
  HttpServerRequest.HttpServerRequest | HttpRouter.RouteContext
>

const spawn = (ctx: ApiContext): Handler =>
  Effect.gen(function* () {
    const id = yield* pathAgentId
    const body = yield* readJson
    if (typeof body !== "object" || body === null || Array.isArray(body)) {
      return yield* Effect.fail(httpError("BadRequest", "body must be an object { type, memoryLimit?, fuel? }"))
    }
    const { type, memoryLimit, fuel } = body as Record<string, unknown>
    if (typeof type !== "string") return yield* Effect.fail(httpError("BadRequest", '"type" must be a string'))
    if (memoryLimit !== undefined && typeof memoryLimit !== "number")
      return yield* Effect.fail(httpError("BadRequest", '"memoryLimit" must be a number of bytes'))
    if (fuel !== undefined && fuel !== null && typeof fuel !== "number")
      return yield* Effect.fail(httpError("BadRequest", '"fuel" must be a number of fuel units or null'))
    const agentType = ctx.registry.agent(type)
    if (agentType === undefined) {
      return yield* Effect.fail(
        httpError(
          "UnknownAgentType",
          `no agent type ${JSON.stringify(type)} in the bundle (types: ${ctx.registry.manifest.agents.map((a) => a.type).join(", ")})`,
          { type }
        )
      )
    }
    const ids = loaded.get(ctx.runtime) ?? new Map<string, ModuleId>()
    loaded.set(ctx.runtime, ids)
    let moduleId = ids.get(type)
    if (moduleId === undefined) {
      const bytes = ctx.registry.originalBytes(agentType.moduleHash)
      if (bytes === undefined)
        return yield* Effect.fail(
          httpError("ModuleNotFound", `the bundle carries no bytes for module ${agentType.moduleHash}`, {
            moduleId: agentType.moduleHash
          })
        )
      moduleId = yield* ctx.runtime.loadModule(
        bytes,
        makeMetadata({ name: agentType.name, version: agentType.version })
      )
      ids.set(type, moduleId)
    }
    const chosenFuel = fuel === undefined ? agentType.fuel : fuel
    const info = yield* ctx.runtime.spawnAgent(id, moduleId, {
      memoryLimit: memoryLimit ?? agentType.memoryLimit,
      ...(chosenFuel === null ? {} : { fuel: chosenFuel })
    })
    return json(201, { agent: info })
  })

const invoke = (ctx: ApiContext): Handler =>
  Effect.gen(function* () {
    const id = yield* pathAgentId
    const fn = (yield* HttpRouter.params).fn ?? ""
    const body = yield* readJson
    if (!Array.isArray(body))
      return yield* Effect.fail(httpError("BadRequest", "body must be a JSON array of arguments"))
    const info: AgentInfo = yield* ctx.runtime.agent(id)
    const module = yield* ctx.runtime.getModule(info.moduleId)
    const signature = module.functions.get(fn)
    const args: Array<WasmValue> = []
    if (signature === undefined) {
      // let the runtime report FunctionNotFound (it also knows hidden and non-function exports)
      for (const v of body) if (typeof v === "number") args.push(v)
    } else {
      if (body.length !== signature.params.length) {
        return yield* Effect.fail(
          httpError("SignatureMismatch", `${fn} takes ${signature.params.length} arguments, got ${body.length}`, {
            function: fn,
            index: -1
          })
        )
      }
      for (const [i, v] of body.entries()) {
        const converted = toWasmValue(v, signature.params[i]!, i)
        if (typeof converted === "object" && converted !== null && "_tag" in converted)
          return yield* Effect.fail(converted)
        args.push(converted as WasmValue)
      }
    }
    const results = yield* ctx.runtime.invoke(id, fn, args)
    return json(200, { results })
  })

const evict = (ctx: ApiContext): Handler =>
  Effect.flatMap(pathAgentId, (id) =>
    Effect.as(ctx.runtime.evictAgent(id, "Manual"), HttpServerResponse.empty({ status: 204 }))
  )

const health = (ctx: ApiContext): Handler =>
  Effect.gen(function* () {
    const id = yield* pathAgentId
    const agent = yield* ctx.runtime.agent(id)
    const check = yield* ctx.runtime.getHealth(id)
    return json(200, { health: check, agent })
  })

/**
 * Server-sent events: subscribes to the runtime's events and writes each as
 * `data: <json>\n\n`. A Worker may not do I/O for one request from another
 * request's context, so events (published by other requests) go into a
 * buffer, and this request's own timer flushes it every 25 ms. `?limit=N`
 * closes the stream after N events.
 */
const events = (ctx: ApiContext): Handler =>
  Effect.gen(function* () {
    const request = yield* HttpServerRequest.HttpServerRequest
    const limitParam = new URL(request.url, "http://worker").searchParams.get("limit")
    const limit = limitParam === null ? Infinity : Number(limitParam)
    if (!(limit > 0)) return yield* Effect.fail(httpError("BadRequest", "limit must be a positive number"))
    const scope = yield* Scope.make()
    const stream = yield* Effect.provideService(ctx.runtime.events, Scope.Scope, scope)
    const buffer: Array<RuntimeEvent> = []
    yield* Effect.forkIn(
      Stream.runForEach(stream, (e) => Effect.sync(() => void buffer.push(e))),
      scope
    )
    const encoder = new TextEncoder()
    let sent = 0
    let timer: ReturnType<typeof setTimeout> | undefined
    const close = () => {
      if (timer !== undefined) clearTimeout(timer)
      void Effect.runPromise(Scope.close(scope, Exit.void))
    }
    const body = new ReadableStream<Uint8Array>({
      start(controller) {
        controller.enqueue(encoder.encode(": agent-runtime events\n\n"))
        const flush = () => {
          while (buffer.length > 0 && sent < limit) {
            const e = buffer.shift()!
            controller.enqueue(encoder.encode(`event: ${e._tag}\ndata: ${toJson(e)}\n\n`))
            sent++
          }
          if (sent >= limit) {
            close()
            controller.close()
            return
          }
          timer = setTimeout(flush, 25)
        }
        flush()
      },
      cancel() {
        close()
      }
    })
    return HttpServerResponse.raw(body, {
      status: 200,
      contentType: "text/event-stream",
      headers: { "cache-control": "no-cache" }
    })
  })

const index = (ctx: ApiContext): Handler =>
  Effect.map(ctx.runtime.stats, (stats) =>
    json(200, {
      runtime: stats,
      agentTypes: ctx.registry.manifest.agents.map((a) => ({
        type: a.type,
        module: `${a.name}@${a.version}`,
        memoryLimit: a.memoryLimit,
        fuel: a.fuel
      }))
    })
  )

/** Every error becomes a response: a typed failure by `statusOf`, anything else a 500 `Defect`. */
const answered = (route: Handler) =>
  route.pipe(
    Effect.catchCause((cause) => {
      const failure = cause.reasons.find((r) => r._tag === "Fail")
      if (failure !== undefined && failure._tag === "Fail") {
        const e = failure.error as { _tag?: unknown; message?: unknown }
        if (typeof e === "object" && e !== null && typeof e._tag === "string") {
          const error = e as { _tag: string; message?: string }
          return Effect.succeed(json(statusOf(error), errorBody(error)))
        }
      }
      return Effect.succeed(json(500, { error: { _tag: "Defect", message: Cause.pretty(cause) } }))
    })
  )

type Method = "GET" | "POST" | "PUT" | "PATCH" | "DELETE" | "OPTIONS"
const methods: ReadonlyArray<Method> = ["GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]

/** The routes: each path with its handlers by method (see the module doc). */
export const routes = (
  ctx: ApiContext
): ReadonlyArray<{ readonly path: HttpRouter.PathInput; readonly handlers: Partial<Record<Method, Handler>> }> => [
  { path: "/", handlers: { GET: index(ctx) } },
  { path: "/events", handlers: { GET: events(ctx) } },
  { path: "/agents/:id", handlers: { POST: spawn(ctx), DELETE: evict(ctx) } },
  { path: "/agents/:id/health", handlers: { GET: health(ctx) } },
  { path: "/agents/:id/invoke/:fn", handlers: { POST: invoke(ctx) } }
]

/** The router: `routes`, 405 for the other methods of a known path, 404 for any other path. */
export const layer = (ctx: ApiContext): Layer.Layer<never, never, HttpRouter.HttpRouter> =>
  HttpRouter.use((router) =>
    Effect.gen(function* () {
      for (const { path, handlers } of routes(ctx)) {
        const allowed = methods.filter((m) => handlers[m] !== undefined).join(", ")
        for (const method of methods) {
          const handler =
            handlers[method] ??
            Effect.flatMap(HttpServerRequest.HttpServerRequest, (request) =>
              Effect.fail(
                httpError(
                  "MethodNotAllowed",
                  `${request.method} is not allowed on ${new URL(request.url, "http://worker").pathname} (allowed: ${allowed})`
                )
              )
            )
          yield* router.add(method, path, answered(handler))
        }
      }
      yield* router.add(
        "*",
        "*",
        answered(
          Effect.flatMap(HttpServerRequest.HttpServerRequest, (request) =>
            Effect.fail(httpError("NotFound", `no route ${new URL(request.url, "http://worker").pathname}`))
          )
        )
      )
    })
  )

/** Fetch handlers by context (one router per runtime, built on first use). */
const handlers = new WeakMap<ApiContext, (request: Request) => Promise<Response>>()

/** The Fetch handler of the API over `ctx` (`HttpRouter.toWebHandler`), made once per context. */
export const handler = (ctx: ApiContext): ((request: Request) => Promise<Response>) => {
  let web = handlers.get(ctx)
  if (web === undefined) {
    // empty path segments are ignored, as they always were here (`/agents//c1/` is `/agents/c1`)
    const app = HttpRouter.toWebHandler(layer(ctx), {
      disableLogger: true,
      routerConfig: { ignoreTrailingSlash: true, ignoreDuplicateSlashes: true }
    })
    web = (request) => app.handler(request)
    handlers.set(ctx, web)
  }
  return web
}

/** Routes a request (see the module doc). Never fails: every error becomes a response. */
export const handle = (ctx: ApiContext, request: Request): Effect.Effect<Response> =>
  Effect.promise(() => handler(ctx)(request))
