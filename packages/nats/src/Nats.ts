/**
 * `Nats`: one connection to a NATS server with JetStream, shared by every
 * adapter of this package (event bus, repositories, leases). DESIGN.md
 * "Beyond one machine": NATS is the engine, these are adapters.
 *
 * The connection reconnects forever after it was established (every 250 ms
 * by default; the client buffers publishes meanwhile), logs each disconnect
 * and reconnect as a warning, and is drained when the layer's scope closes.
 *
 * Errors: `NatsUnavailable { url, reason }` when the server cannot be
 * reached at start (refused, timed out) or has no JetStream (start it with
 * `nats-server -js`); `NatsConfigInvalid` for options a NATS subject or
 * bucket name cannot hold.
 *
 * @since 0.1.0
 */
import { jetstream, jetstreamManager, type JetStreamClient, type JetStreamManager } from "@nats-io/jetstream"
import { connect, type NatsConnection } from "@nats-io/transport-node"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Schema from "effect/Schema"
import type * as Scope from "effect/Scope"
import * as Stream from "effect/Stream"
import { describe } from "./internal/errors.js"

/** The NATS server at `url` cannot be used: unreachable, refused, timed out, or without JetStream. */
export class NatsUnavailable extends Schema.TaggedError<NatsUnavailable>()("NatsUnavailable", {
  url: Schema.String,
  reason: Schema.String
}) {
  override get message() {
    return `NATS server at ${this.url} is unavailable: ${this.reason}`
  }
}

/** An option of this package that NATS cannot hold (a subject token, a bucket or stream name). */
export class NatsConfigInvalid extends Schema.TaggedError<NatsConfigInvalid>()("NatsConfigInvalid", {
  option: Schema.String,
  reason: Schema.String
}) {
  override get message() {
    return `invalid NATS option ${this.option}: ${this.reason}`
  }
}

/** Connection settings. */
export interface Options {
  /** Server URL(s), e.g. `"nats://127.0.0.1:4222"`. */
  readonly servers: string | ReadonlyArray<string>
  /** Client name shown by the server (`connz`); default `"agent-runtime"`. */
  readonly name?: string | undefined
  /** How long the first connection may take, ms (default 5000). */
  readonly connectTimeoutMs?: number | undefined
  /** Wait between reconnect attempts, ms (default 250). Reconnects never give up. */
  readonly reconnectWaitMs?: number | undefined
  /** How long a JetStream request (publish ack, KV/object store operation) may take, ms (default 5000). */
  readonly requestTimeoutMs?: number | undefined
}

/** The shared connection and its JetStream contexts. */
export interface NatsShape {
  readonly connection: NatsConnection
  /** The server URL(s) as configured, joined with `,` (for messages). */
  readonly url: string
  /** The largest message the server accepts, bytes (the server's `max_payload`, 1 MiB by default). */
  readonly maxPayload: number
  readonly jetstream: JetStreamClient
  readonly manager: JetStreamManager
}

/** The `Nats` service key. */
export class Nats extends Context.Service<Nats, NatsShape>()("@agent-runtime/nats/Nats") {}

/**
 * Connects (inside the caller's scope; drained when it closes). Fails with
 * `NatsUnavailable` naming the URL when the server cannot be reached or has
 * no JetStream.
 */
export const make = (options: Options): Effect.Effect<NatsShape, NatsUnavailable, Scope.Scope> =>
  Effect.gen(function* () {
    const servers = typeof options.servers === "string" ? [options.servers] : [...options.servers]
    const url = servers.join(",")
    const connection = yield* Effect.acquireRelease(
      Effect.tryPromise({
        try: () =>
          connect({
            servers,
            name: options.name ?? "agent-runtime",
            timeout: options.connectTimeoutMs ?? 5_000,
            reconnect: true,
            maxReconnectAttempts: -1,
            reconnectTimeWait: options.reconnectWaitMs ?? 250
          }),
        catch: (e) => new NatsUnavailable({ url, reason: describe(e) })
      }),
      (nc) =>
        Effect.promise(() =>
          nc
            .drain()
            .catch(() => nc.close())
            .catch(() => undefined)
        )
    )
    const timeout = options.requestTimeoutMs ?? 5_000
    const manager = yield* Effect.tryPromise({
      try: () => jetstreamManager(connection, { timeout }),
      catch: (e) =>
        new NatsUnavailable({
          url,
          reason: `JetStream is not available (start the server with \`nats-server -js\`): ${describe(e)}`
        })
    })
    const maxPayload = connection.info?.max_payload ?? 1024 * 1024
    yield* Effect.forkScoped(
      Stream.runForEach(
        Stream.fromAsyncIterable(connection.status(), () => undefined),
        (status) =>
          status.type === "disconnect" || status.type === "reconnect"
            ? Effect.logWarning(`NATS ${status.type} (${url})`)
            : Effect.void
      ).pipe(Effect.ignore)
    )
    return { connection, url, maxPayload, jetstream: jetstream(connection, { timeout }), manager }
  })

/** The `Nats` layer: one connection for the layer's lifetime. */
export const layer = (options: Options): Layer.Layer<Nats, NatsUnavailable> => Layer.effect(Nats, make(options))
