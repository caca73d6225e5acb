/**
 * The `EventBus` port (DESIGN.md "Ports"): publishes the runtime's domain
 * events and delivers the events it consumes (`AgentJoined`, `AgentLeft`).
 *
 * `layerMemory` is an in-process `PubSub` (the default). Other adapters:
 * BroadcastChannel (browser tabs), NATS JetStream (several hosts).
 * A subscriber only sees events published after it subscribed.
 *
 * @since 0.1.0
 */
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as PubSub from "effect/PubSub"
import type * as Scope from "effect/Scope"
import * as Stream from "effect/Stream"
import type { DomainEvent } from "./RuntimeEvent.js"

export interface EventBusShape {
  /** Publishes one event to every current subscriber. Never fails. */
  readonly publish: (event: DomainEvent) => Effect.Effect<void>
  /**
   * Subscribes now (inside the caller's scope) and returns the stream of every
   * event published from this moment on; the subscription ends with the scope.
   */
  readonly subscribe: Effect.Effect<Stream.Stream<DomainEvent>, never, Scope.Scope>
}

/** The `EventBus` service key. */
export class EventBus extends Context.Service<EventBus, EventBusShape>()("@agent-runtime/domain/EventBus") {}

/** An in-memory bus on an unbounded `PubSub`. */
export const makeMemory: Effect.Effect<EventBusShape> = Effect.map(PubSub.unbounded<DomainEvent>(), (pubsub) => ({
  publish: (event) => Effect.asVoid(PubSub.publish(pubsub, event)),
  subscribe: Effect.map(PubSub.subscribe(pubsub), Stream.fromSubscription)
}))

/** The in-memory `EventBus` layer (the embedded default). */
export const layerMemory: Layer.Layer<EventBus> = Layer.effect(EventBus, makeMemory)
