/**
 * `NatsEndpoints`: the host's services as NATS request/reply endpoints,
 * following the NATS services convention ("micro" protocol, ADR-32) on the
 * core client — `@nats-io/services` has no 3.4 release to match the
 * `@nats-io/*` 3.4 clients, and the protocol is a few subjects:
 *
 * - Endpoints `spawn`, `evict`, `invoke`, `health` on
 *   `<subjectPrefix>.<endpoint>` (default prefix `agent-runtime-svc.<hostId>`,
 *   outside the event stream's `agent-runtime.>`; queue group `q`). Bodies are the JSON of `Wire` (`SpawnRequest`,
 *   `EvictRequest`, `InvokeRequest`, `HealthRequest`); replies are the same
 *   JSON as the HTTP API's. A failure replies with the error body
 *   (`{ "_tag", …fields }`) and the headers `Nats-Service-Error` (message)
 *   and `Nats-Service-Error-Code` (the HTTP status of `Wire.statusOf`).
 * - Discovery on `$SRV.PING|INFO|STATS`, `$SRV.<verb>.<name>` and
 *   `$SRV.<verb>.<name>.<id>` (name `agent-runtime`, id the host id):
 *   `io.nats.micro.v1.ping_response`, `…info_response` (endpoints with
 *   subjects) and `…stats_response` (per endpoint `num_requests`,
 *   `num_errors`, `last_error`, `processing_time` and
 *   `average_processing_time` in ns).
 *
 * Closing the layer's scope drains the endpoint subscriptions first (no new
 * requests; those received are answered), so a host stops taking NATS
 * calls before the runtime goes.
 *
 * @since 0.1.0
 */
import * as D from "@agent-runtime/domain"
import { Nats } from "@agent-runtime/nats"
import { headers, type Msg, type Subscription } from "@nats-io/transport-node"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as FiberSet from "effect/FiberSet"
import * as Layer from "effect/Layer"
import * as Schema from "effect/Schema"
import { Host, type HostShape } from "./Host.js"
import * as Wire from "./Wire.js"

/** The service name in `$SRV` discovery. */
export const SERVICE_NAME = "agent-runtime"
/** The service version in `$SRV` discovery. */
export const SERVICE_VERSION = "0.1.0"

/**
 * The endpoints' default subject prefix, `agent-runtime-svc.<hostId>`: not
 * under `agent-runtime.>`, which the JetStream event stream captures (a
 * request there would be answered by the stream's publish ack).
 */
export const defaultSubjectPrefix = (hostId: string): string => `agent-runtime-svc.${hostId}`

/** Options of the endpoints. */
export interface Options {
  /** Subject prefix of the endpoints (default `defaultSubjectPrefix(hostId)`). */
  readonly subjectPrefix?: string | undefined
}

/** One endpoint's statistics (the convention's `stats_response` fields, times in ns). */
interface EndpointStats {
  num_requests: number
  num_errors: number
  last_error: string
  processing_time: number
  average_processing_time: number
}

const decoder = <S extends Schema.Top & { readonly DecodingServices: never }>(schema: S) => {
  const decode = Schema.decodeUnknownEffect(Schema.fromJsonString(schema))
  return (endpoint: string, msg: Msg): Effect.Effect<S["Type"], Wire.InvalidRequest> =>
    Effect.mapError(
      decode(msg.data.length === 0 ? "{}" : new TextDecoder().decode(msg.data)) as Effect.Effect<
        S["Type"],
        Schema.SchemaError
      >,
      (e) => new Wire.InvalidRequest({ endpoint, reason: e.message })
    )
}

const handlers = (host: HostShape) => {
  const spawn = decoder(Wire.SpawnRequest)
  const evict = decoder(Wire.EvictRequest)
  const invoke = decoder(Wire.InvokeRequest)
  const health = decoder(Wire.HealthRequest)
  return {
    spawn: (msg: Msg) => Effect.flatMap(spawn("spawn", msg), host.spawn),
    evict: (msg: Msg) => Effect.flatMap(evict("evict", msg), (r) => host.evict(r.agentId, r.reason ?? "Manual")),
    invoke: (msg: Msg) =>
      Effect.flatMap(invoke("invoke", msg), (r) => host.invoke(r.agentId, r.function, r.args ?? [])),
    health: (msg: Msg) =>
      Effect.flatMap(
        health("health", msg),
        (r): Effect.Effect<unknown, Wire.ServiceError> =>
          r.agentId === undefined ? host.runtimeHealth : host.agentHealth(r.agentId)
      )
  } satisfies Record<string, (msg: Msg) => Effect.Effect<unknown, Wire.ServiceError>>
}

/** Subscribes the endpoints and the `$SRV` discovery subjects (inside the caller's scope). */
export const make = (options: Options = {}) =>
  Effect.gen(function* () {
    const host = yield* Host
    const { connection } = yield* Nats.Nats
    const run = yield* FiberSet.makeRuntime<never>()
    const prefix = options.subjectPrefix ?? defaultSubjectPrefix(host.hostId)
    const started = new Date(yield* Effect.clockWith((c) => c.currentTimeMillis)).toISOString()
    const endpoints = handlers(host)
    const names = Object.keys(endpoints) as Array<keyof typeof endpoints>
    const stats = new Map<string, EndpointStats>(
      names.map((n) => [
        n,
        {
          num_requests: 0,
          num_errors: 0,
          last_error: "",
          processing_time: 0,
          average_processing_time: 0
        }
      ])
    )
    const identity = {
      name: SERVICE_NAME,
      id: host.hostId,
      version: SERVICE_VERSION,
      metadata: { hostId: host.hostId }
    }
    const endpointInfo = () =>
      names.map((name) => ({ name, subject: `${prefix}.${name}`, queue_group: "q", metadata: null }))

    const subscriptions: Array<Subscription> = []
    /** Replies; a reply the client refuses (closed connection) is logged, never thrown into the client's reader. */
    const respond = (msg: Msg, data: Uint8Array, h?: ReturnType<typeof headers>) => {
      try {
        msg.respond(data, h === undefined ? undefined : { headers: h })
      } catch (e) {
        run(Effect.logWarning(`NATS reply on ${msg.subject} failed: ${e instanceof Error ? e.message : String(e)}`))
      }
    }
    const encoder = new TextEncoder()

    for (const name of names) {
      const handler = endpoints[name]
      const stat = stats.get(name)!
      subscriptions.push(
        connection.subscribe(`${prefix}.${name}`, {
          queue: "q",
          callback: (error, msg) => {
            if (error !== null) return
            const started = process.hrtime.bigint()
            run(Effect.exit(handler(msg))).addObserver((exit) => {
              const result = Exit.isSuccess(exit)
                ? exit.value
                : Exit.fail(new D.RuntimeUnavailable({ status: "interrupted" }))
              const elapsed = Number(process.hrtime.bigint() - started)
              stat.num_requests++
              stat.processing_time += elapsed
              stat.average_processing_time = Math.round(stat.processing_time / stat.num_requests)
              if (Exit.isSuccess(result)) {
                respond(msg, encoder.encode(JSON.stringify(result.value)))
                return
              }
              const failure = result.cause.reasons.find((r) => r._tag === "Fail")
              const e = (
                failure?._tag === "Fail" ? failure.error : new D.RuntimeUnavailable({ status: "defect" })
              ) as Wire.ServiceError
              stat.num_errors++
              stat.last_error = `${e._tag}: ${e.message}`
              const h = headers()
              // a header value is one line
              h.set("Nats-Service-Error", e.message.replace(/[\r\n]+/g, " ").slice(0, 1024))
              h.set("Nats-Service-Error-Code", String(Wire.statusOf(e._tag)))
              respond(msg, encoder.encode(JSON.stringify(Wire.errorBody(e))), h)
            })
          }
        })
      )
    }

    const discovery = {
      PING: () => ({ type: "io.nats.micro.v1.ping_response", ...identity }),
      INFO: () => ({
        type: "io.nats.micro.v1.info_response",
        ...identity,
        description: `agent-runtime host ${host.hostId}: spawn, evict, invoke, health`,
        endpoints: endpointInfo()
      }),
      STATS: () => ({
        type: "io.nats.micro.v1.stats_response",
        ...identity,
        started,
        endpoints: endpointInfo().map((e) => ({ ...e, ...stats.get(e.name)!, data: null }))
      })
    }
    for (const [verb, reply] of Object.entries(discovery)) {
      for (const subject of [
        `$SRV.${verb}`,
        `$SRV.${verb}.${SERVICE_NAME}`,
        `$SRV.${verb}.${SERVICE_NAME}.${host.hostId}`
      ]) {
        subscriptions.push(
          connection.subscribe(subject, {
            callback: (error, msg) => {
              if (error === null) respond(msg, encoder.encode(JSON.stringify(reply())))
            }
          })
        )
      }
    }

    // the server has the subscriptions before the host reports it is serving
    yield* Effect.promise(() => connection.flush().catch(() => undefined))
    yield* Effect.addFinalizer(() =>
      Effect.promise(() => Promise.all(subscriptions.map((s) => s.drain().catch(() => undefined))))
    )
    return { subjectPrefix: prefix, endpoints: names }
  })

/** The endpoints, for the layer's lifetime. */
export const layer = (options: Options = {}): Layer.Layer<never, never, Host | Nats.Nats> =>
  Layer.effectDiscard(make(options))
