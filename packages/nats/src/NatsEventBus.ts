/**
 * `EventBus` on NATS JetStream (DESIGN.md "Ports", "Beyond one machine"):
 * the runtime's domain events reach a Coordination service in another
 * process, and the events Coordination addresses to a runtime
 * (`AgentJoined`, `AgentLeft`) reach it the way the in-memory bus delivers
 * them (the runtime's `subscribe`; `internal/ConsumedEvents.ts` prepares /
 * releases).
 *
 * Subjects (`<p>` = `subjectPrefix`, default `"agent-runtime"`; `<id>` = an
 * event's `runtimeId` as a subject token — kept as is when it is only
 * `A-Z a-z 0-9 _ -`, else `~` + base64url of it):
 * - `<p>.<id>.events.<EventTag>` — events the runtime publishes
 *   (`AgentSpawned`, `AgentEvicted`, `MemoryPressure`, …), under the
 *   publishing runtime's id;
 * - `<p>.<id>.coordination.<EventTag>` — `AgentJoined` / `AgentLeft`,
 *   under the id of the runtime they are for: `sendTo(runtimeId, event)`
 *   (Coordination's side), or `publish` of such an event on this bus, which
 *   addresses it to this bus's own runtime (as the in-memory bus delivers
 *   it to its runtime). Their envelope `runtimeId` is the sender's.
 *
 * All of them are kept in one stream (`stream`, default `"AGENT_RUNTIME"`,
 * subjects `<p>.>`), created or updated idempotently when the bus opens
 * (several hosts may open it at once). Each message carries the event's
 * `eventId` as its `Nats-Msg-Id`, so the server drops a duplicate published
 * within the stream's duplicate window (`duplicateWindowMs`, default 2 min)
 * and a consumer can de-duplicate by `eventId` beyond it. Payload: the
 * event as UTF-8 JSON (the `DomainEvent` Schema's JSON encoding).
 *
 * `publish` never fails and never blocks the runtime: the event goes to an
 * in-process outbox drained in order by one fiber, which publishes each
 * event until the server acknowledges it (retrying every 250 ms while NATS is
 * away, logging each failure). Nothing is dropped silently: events
 * still unacknowledged when the bus closes (after `closeTimeoutMs`, default
 * 5 s, of trying) are reported with `Effect.logError` and counted in
 * `unpublished()`. `flush` waits until every event published so far is
 * acknowledged.
 *
 * `subscribe` (the port) follows `<p>.<busRuntimeId>.>` from the stream's
 * current end with an ordered consumer — every event published after it
 * returns, the runtime's own and Coordination's for it — resuming after
 * reconnects. `consume` is the durable API for Coordination: a named,
 * explicitly acknowledged consumer (by default on every runtime's events,
 * `<p>.*.events.>`) whose deliveries must be `ack`ed; an unacknowledged one
 * is redelivered (after `ackWaitMs`).
 *
 * Errors: opening fails with `NatsConfigInvalid` (a bad prefix or stream
 * name) or `NatsUnavailable` (the stream cannot be created); `consume`'s
 * stream fails with `NatsUnavailable`.
 *
 * @since 0.1.0
 */
import { DomainEvent, EventBus, type CoordinationEvent, type EventBuses } from "@agent-runtime/domain"
import { AckPolicy, DeliverPolicy, type JsMsg, type StreamConfig } from "@nats-io/jetstream"
import type * as Cause from "effect/Cause"
import * as Context from "effect/Context"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Layer from "effect/Layer"
import * as Queue from "effect/Queue"
import * as Result from "effect/Result"
import * as Schedule from "effect/Schedule"
import * as Schema from "effect/Schema"
import type * as Scope from "effect/Scope"
import * as Stream from "effect/Stream"
import { describe } from "./internal/errors.js"
import { Nats, NatsConfigInvalid, NatsUnavailable } from "./Nats.js"

/** Settings of the JetStream bus. */
export interface Options {
  /** The runtime this bus serves: `subscribe` follows `<p>.<runtimeId>.>`. Use the runtime's own id (`RuntimeSettings.id`). */
  readonly runtimeId: string
  /** First subject token (default `"agent-runtime"`). */
  readonly subjectPrefix?: string | undefined
  /** Stream name (default `"AGENT_RUNTIME"`). */
  readonly stream?: string | undefined
  /** Server-side de-duplication window, ms (default 120 000). */
  readonly duplicateWindowMs?: number | undefined
  /** How long the stream keeps events, ms (default 24 h; 0 = until limits). */
  readonly maxAgeMs?: number | undefined
  /** How long `close` keeps trying to publish the outbox, ms (default 5000). */
  readonly closeTimeoutMs?: number | undefined
}

/** One event delivered to a durable consumer; `ack` it once handled. */
export interface Delivery {
  readonly event: DomainEvent
  readonly subject: string
  /** The stream sequence of the message. */
  readonly seq: number
  /** True if the server delivered it before and it was not acknowledged. */
  readonly redelivered: boolean
  /** Acknowledges it (waits for the server's confirmation). */
  readonly ack: Effect.Effect<void, NatsUnavailable>
  /** Asks for redelivery (after `delayMs`, default at once). */
  readonly nak: (delayMs?: number) => Effect.Effect<void>
}

/** Options of a durable consumer. */
export interface ConsumeOptions {
  /** Durable name (`A-Z a-z 0-9 _ -`): consumers of one name share progress. */
  readonly durable: string
  /** Subject filter (default `<p>.*.events.>`: every runtime's published events). */
  readonly filterSubject?: string | undefined
  /** Where a new durable starts: `"all"` (default) or `"new"`. */
  readonly deliver?: "all" | "new" | undefined
  /** Redelivery delay of an unacknowledged message, ms (default 30 000). */
  readonly ackWaitMs?: number | undefined
}

/** The bus, plus what Coordination and operators need. */
export interface NatsEventBusShape extends EventBuses.EventBusShape {
  /** Waits until every event published so far is acknowledged by the server. */
  readonly flush: Effect.Effect<void>
  /** Events in the outbox, not yet acknowledged. */
  readonly pending: () => number
  /** Events given up on when the bus closed (each reported with `logError`). */
  readonly unpublished: () => number
  /** Messages on the subscription that did not decode as a `DomainEvent` (skipped, logged). */
  readonly rejected: () => number
  /** A durable, acknowledged consumer (Coordination's side); it stops with the scope. */
  readonly consume: (
    options: ConsumeOptions
  ) => Effect.Effect<Stream.Stream<Delivery, NatsUnavailable>, NatsUnavailable, Scope.Scope>
  /**
   * Publishes `AgentJoined` / `AgentLeft` to the runtime `runtimeId`
   * (Coordination's side) and waits for the server's acknowledgement;
   * `duplicate` is true when the server had this `eventId` already.
   */
  readonly sendTo: (
    runtimeId: string,
    event: CoordinationEvent
  ) => Effect.Effect<{ readonly seq: number; readonly duplicate: boolean }, NatsUnavailable>
  /** The subject `publish` sends an event to. */
  readonly subjectOf: (event: DomainEvent) => string
}

/** The `NatsEventBus` service key (the same bus as `EventBus`, with the extra API). */
export class NatsEventBus extends Context.Service<NatsEventBus, NatsEventBusShape>()(
  "@agent-runtime/nats/NatsEventBus"
) {}

const Json = Schema.toCodecJson(DomainEvent)
const encodeEvent = Schema.encodeSync(Json)
const decodeEvent = Schema.decodeUnknownExit(Json)
const NAME = /^[A-Za-z0-9_-]+$/
/** ms → the nanoseconds JetStream configs take. */
const nanos = (ms: number) => ms * 1_000_000
const isCoordination = (e: DomainEvent) => e._tag === "AgentJoined" || e._tag === "AgentLeft"

/** A runtime id as one subject token. */
export const subjectToken = (id: string): string =>
  NAME.test(id) ? id : "~" + Buffer.from(id, "utf8").toString("base64url")

const decodeMessage = (data: Uint8Array): DomainEvent | undefined => {
  try {
    const decoded = decodeEvent(JSON.parse(new TextDecoder().decode(data)))
    return Exit.isSuccess(decoded) ? decoded.value : undefined
  } catch {
    return undefined
  }
}

/**
 * Reads `messages` (iterable once) into a queue in the background (inside
 * the caller's scope) and returns a stream of what `select` keeps: one
 * stream, read once, that each run continues where the last stopped.
 */
const pump = <A, E>(
  messages: AsyncIterable<JsMsg>,
  onError: (e: unknown) => E,
  select: (m: JsMsg) => Result.Result<A, undefined>
): Effect.Effect<Stream.Stream<A, E>, never, Scope.Scope> =>
  Effect.gen(function* () {
    const queue = yield* Queue.unbounded<A, E | Cause.Done>()
    yield* Stream.fromAsyncIterable(messages, onError).pipe(
      Stream.runForEach((m) => {
        const selected = select(m)
        return Result.isSuccess(selected) ? Queue.offer(queue, selected.success) : Effect.void
      }),
      Effect.matchEffect({ onFailure: (e) => Queue.fail(queue, e), onSuccess: () => Queue.end(queue) }),
      Effect.forkScoped
    )
    return Stream.fromQueue(queue)
  })

/** Opens the bus (inside the caller's scope): ensures the stream, starts the outbox. */
export const make = (
  options: Options
): Effect.Effect<NatsEventBusShape, NatsUnavailable | NatsConfigInvalid, Nats | Scope.Scope> =>
  Effect.gen(function* () {
    const nats = yield* Nats
    const prefix = options.subjectPrefix ?? "agent-runtime"
    const streamName = options.stream ?? "AGENT_RUNTIME"
    if (!NAME.test(prefix))
      return yield* new NatsConfigInvalid({
        option: "subjectPrefix",
        reason: `${JSON.stringify(prefix)} is not [A-Za-z0-9_-]+`
      })
    if (!NAME.test(streamName))
      return yield* new NatsConfigInvalid({
        option: "stream",
        reason: `${JSON.stringify(streamName)} is not [A-Za-z0-9_-]+`
      })
    const unavailable = (what: string) => (e: unknown) =>
      new NatsUnavailable({ url: nats.url, reason: `${what}: ${describe(e)}` })

    // --- the stream, created or updated idempotently ---
    const config: Partial<StreamConfig> & { name: string } = {
      name: streamName,
      subjects: [`${prefix}.>`],
      duplicate_window: nanos(options.duplicateWindowMs ?? 120_000),
      max_age: nanos(options.maxAgeMs ?? 24 * 3_600_000)
    }
    yield* Effect.tryPromise({
      try: async () => {
        const existing = await nats.manager.streams.info(streamName).catch(() => undefined)
        if (existing === undefined) {
          await nats.manager.streams.add(config).catch(async (e: unknown) => {
            // another host created it meanwhile
            if (await nats.manager.streams.info(streamName).catch(() => undefined)) return
            throw e
          })
        } else if (!existing.config.subjects.includes(`${prefix}.>`)) {
          await nats.manager.streams.update(streamName, {
            ...existing.config,
            subjects: [...existing.config.subjects, `${prefix}.>`]
          })
        }
      },
      catch: unavailable(`stream ${streamName} cannot be created`)
    })

    const subjectOf = (event: DomainEvent) =>
      isCoordination(event)
        ? `${prefix}.${subjectToken(options.runtimeId)}.coordination.${event._tag}`
        : `${prefix}.${subjectToken(event.runtimeId)}.events.${event._tag}`
    const send = (subject: string, event: DomainEvent) =>
      Effect.tryPromise({
        try: () => nats.jetstream.publish(subject, JSON.stringify(encodeEvent(event)), { msgID: event.eventId }),
        catch: unavailable(`publish of ${event._tag} ${event.eventId}`)
      })
    const sendTo = (runtimeId: string, event: CoordinationEvent) =>
      Effect.map(send(`${prefix}.${subjectToken(runtimeId)}.coordination.${event._tag}`, event), (ack) => ({
        seq: ack.seq,
        duplicate: ack.duplicate
      }))

    // --- the outbox: publish in order, retry until acknowledged ---
    const outbox = yield* Queue.unbounded<DomainEvent>()
    let inFlight = 0
    let unpublished = 0
    let rejected = 0
    const publishOne = (event: DomainEvent) =>
      send(subjectOf(event), event).pipe(
        Effect.tapError((e) => Effect.logWarning(`${e.message} (retrying)`)),
        Effect.retry(Schedule.spaced("250 millis"))
      )
    const publisher = Effect.forever(
      Effect.gen(function* () {
        const event = yield* Queue.take(outbox)
        yield* publishOne(event)
        inFlight--
      })
    )
    yield* Effect.forkScoped(publisher)
    const flush = Effect.gen(function* () {
      while (inFlight > 0) yield* Effect.sleep("5 millis")
    })
    yield* Effect.addFinalizer(() =>
      Effect.gen(function* () {
        const done = yield* Effect.timeoutOption(flush, Duration.millis(options.closeTimeoutMs ?? 5_000))
        if (done._tag === "None" && inFlight > 0) {
          unpublished += inFlight
          yield* Effect.logError(
            `${inFlight} event(s) were not acknowledged by NATS (${nats.url}) before the bus closed; they were not published`
          )
        }
      })
    )

    const publish = (event: DomainEvent) =>
      Effect.suspend(() => {
        inFlight++
        return Effect.asVoid(Queue.offer(outbox, event))
      })

    // --- subscribe: an ordered consumer from the stream's current end ---
    const ownSubjects = `${prefix}.${subjectToken(options.runtimeId)}.>`
    const subscribe: NatsEventBusShape["subscribe"] = Effect.gen(function* () {
      const info = yield* Effect.orDie(Effect.tryPromise(() => nats.manager.streams.info(streamName)))
      const consumer = yield* Effect.orDie(
        Effect.tryPromise(() =>
          nats.jetstream.consumers.get(streamName, {
            filter_subjects: ownSubjects,
            deliver_policy: DeliverPolicy.StartSequence,
            opt_start_seq: info.state.last_seq + 1
          })
        )
      )
      const messages = yield* Effect.acquireRelease(Effect.orDie(Effect.tryPromise(() => consumer.consume())), (m) =>
        Effect.promise(() => m.close().catch(() => undefined))
      )
      // a subscription that ends (the bus closed) ends the stream
      return yield* pump(
        messages,
        () => undefined,
        (m) => {
          const event = decodeMessage(m.data)
          if (event === undefined) rejected++
          return event === undefined ? Result.fail(undefined) : Result.succeed(event)
        }
      ).pipe(Effect.map(Stream.catchCause(() => Stream.empty)))
    })

    // --- consume: a durable, acknowledged consumer (Coordination) ---
    const consume = (o: ConsumeOptions) =>
      Effect.gen(function* () {
        if (!NAME.test(o.durable)) {
          return yield* new NatsUnavailable({
            url: nats.url,
            reason: `durable name ${JSON.stringify(o.durable)} is not [A-Za-z0-9_-]+`
          })
        }
        const fail = unavailable(`durable consumer ${o.durable}`)
        yield* Effect.tryPromise({
          try: async () => {
            const existing = await nats.manager.consumers.info(streamName, o.durable).catch(() => undefined)
            if (existing !== undefined) return
            await nats.manager.consumers.add(streamName, {
              durable_name: o.durable,
              ack_policy: AckPolicy.Explicit,
              deliver_policy: o.deliver === "new" ? DeliverPolicy.New : DeliverPolicy.All,
              filter_subject: o.filterSubject ?? `${prefix}.*.events.>`,
              ack_wait: nanos(o.ackWaitMs ?? 30_000)
            })
          },
          catch: fail
        })
        const consumer = yield* Effect.tryPromise({
          try: () => nats.jetstream.consumers.get(streamName, o.durable),
          catch: fail
        })
        const messages = yield* Effect.acquireRelease(
          Effect.tryPromise({ try: () => consumer.consume(), catch: fail }),
          (m) => Effect.promise(() => m.close().catch(() => undefined))
        )
        return yield* pump(messages, fail, (m): Result.Result<Delivery, undefined> => {
          const event = decodeMessage(m.data)
          if (event === undefined) {
            // not ours to handle: never redelivered, but counted
            m.term("not a DomainEvent")
            rejected++
            return Result.fail(undefined)
          }
          return Result.succeed({
            event,
            subject: m.subject,
            seq: m.seq,
            redelivered: m.redelivered,
            ack: Effect.asVoid(Effect.tryPromise({ try: () => m.ackAck(), catch: fail })),
            nak: (delayMs) => Effect.sync(() => m.nak(delayMs))
          })
        })
      })

    return {
      publish,
      subscribe,
      flush,
      pending: () => inFlight,
      unpublished: () => unpublished,
      rejected: () => rejected,
      consume,
      sendTo,
      subjectOf
    } satisfies NatsEventBusShape
  })

/** `EventBus` and `NatsEventBus` (the same bus) on JetStream (needs `Nats`). */
export const layer = (
  options: Options
): Layer.Layer<EventBus | NatsEventBus, NatsUnavailable | NatsConfigInvalid, Nats> =>
  Layer.effectContext(
    Effect.map(make(options), (bus) => Context.make(NatsEventBus, bus).pipe(Context.add(EventBus, bus)))
  )
