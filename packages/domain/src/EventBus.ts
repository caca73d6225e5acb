/**
 * The `EventBus` port (DESIGN.md "Ports"): publishes the runtime's domain
 * events and delivers the events it consumes (`AgentJoined`, `AgentLeft`).
 *
 * `layerMemory` is an in-process bus (the default). Other adapters:
 * BroadcastChannel (browser tabs), NATS JetStream (several hosts).
 * A subscriber only sees events published after it subscribed, in the
 * order they were published.
 *
 * Two members are optional, so an adapter may leave them out: `publishAll`
 * (several events in one step) and `subscribeTo` (only the events of some
 * `_tag`s). Callers use the module functions `publishAll` and `subscribeTo`,
 * which fall back to `publish` of each event and to filtering `subscribe`.
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

/** The `_tag` of a domain event (`"AgentSpawned"`, `"AgentJoined"`, …). */
export type DomainEventTag = DomainEvent["_tag"]

/** The domain events of the given `_tag`s. */
export type DomainEventOf<T extends DomainEventTag> = Extract<DomainEvent, { readonly _tag: T }>

export interface EventBusShape {
  /** Publishes one event to every current subscriber. Never fails. */
  readonly publish: (event: DomainEvent) => Effect.Effect<void>
  /**
   * Publishes `events` in order, as `publish` of each one after the other
   * would (same events, same order, to the same subscribers), in one step.
   * Never fails. Optional: without it, `publishAll` (this module's function)
   * publishes them one by one.
   */
  readonly publishAll?: ((events: ReadonlyArray<DomainEvent>) => Effect.Effect<void>) | undefined
  /**
   * Subscribes now (inside the caller's scope) and returns the stream of every
   * event published from this moment on; the subscription ends with the scope.
   */
  readonly subscribe: Effect.Effect<Stream.Stream<DomainEvent>, never, Scope.Scope>
  /**
   * Like `subscribe`, but the stream has only the events whose `_tag` is one
   * of `tags` (same order), and the bus need not deliver — nor wake the
   * subscriber for — the others. Optional: without it, `subscribeTo` (this
   * module's function) filters `subscribe`.
   */
  readonly subscribeTo?:
    | ((tags: ReadonlyArray<DomainEventTag>) => Effect.Effect<Stream.Stream<DomainEvent>, never, Scope.Scope>)
    | undefined
}

/** The `EventBus` service key. */
export class EventBus extends Context.Service<EventBus, EventBusShape>()("@agent-runtime/domain/EventBus") {}

/**
 * Publishes `events` in order on `bus`: its `publishAll` when it has one,
 * else `publish` of each event, one after the other.
 */
export const publishAll = (bus: EventBusShape, events: ReadonlyArray<DomainEvent>): Effect.Effect<void> =>
  bus.publishAll !== undefined ? bus.publishAll(events) : Effect.forEach(events, bus.publish, { discard: true })

/**
 * Subscribes now (inside the caller's scope) to the events of `bus` whose
 * `_tag` is one of `tags`: its `subscribeTo` when it has one, else
 * `subscribe` filtered by `_tag`.
 */
export const subscribeTo = <const T extends DomainEventTag>(
  bus: EventBusShape,
  tags: ReadonlyArray<T>
): Effect.Effect<Stream.Stream<DomainEventOf<T>>, never, Scope.Scope> => {
  if (bus.subscribeTo !== undefined) {
    return bus.subscribeTo(tags) as Effect.Effect<Stream.Stream<DomainEventOf<T>>, never, Scope.Scope>
  }
  const wanted: ReadonlySet<DomainEventTag> = new Set(tags)
  return Effect.map(
    bus.subscribe,
    Stream.filter((e): e is DomainEventOf<T> => wanted.has(e._tag))
  )
}

/**
 * What is known of the buses whose `publish` finishes in its first step (the
 * in-memory bus), keyed by their `publish` function (a bus that wraps one
 * and replaces `publish` is not in it): its delivery as a plain function,
 * and whether any current subscriber would receive an event of a `_tag`.
 */
const synchronous = new WeakMap<
  EventBusShape["publish"],
  { readonly deliver: (event: DomainEvent) => void; readonly wants: (tag: DomainEventTag) => boolean }
>()

/**
 * `bus`'s synchronous publish when its `publish` is known to deliver in one
 * synchronous step (the in-memory bus of `makeMemory`): calling it delivers
 * the event now — the same subscribers, the same order — as running
 * `bus.publish(event)` would, without running an effect. `undefined` for
 * any other bus (another adapter, or a wrapper that replaced `publish`):
 * publish through `bus.publish` then.
 */
export const publishNow = (bus: EventBusShape): ((event: DomainEvent) => void) | undefined =>
  synchronous.get(bus.publish)?.deliver

/**
 * Whether an event with this `_tag` published on `bus` now would reach a
 * subscriber. `false` only for a bus known to deliver to its current
 * subscribers alone (the in-memory bus of `makeMemory`, its `publish` not
 * replaced) when none of them subscribed to every event or to that `_tag`
 * (`subscribeTo`): publishing such an event is then a no-op, so a publisher
 * may skip building it (the runtime's spawn does). `true` for any other bus
 * (one that forwards events to other processes — NATS, BroadcastChannel —
 * or a wrapper that replaced `publish`): publish then.
 */
export const wants = (bus: EventBusShape, tag: DomainEventTag): boolean => {
  const known = synchronous.get(bus.publish)
  return known === undefined || known.wants(tag)
}

/** One subscriber of the in-memory bus: its own `PubSub` and the `_tag`s it wants (`undefined`: every event). */
interface Subscriber {
  readonly pubsub: PubSub.PubSub<DomainEvent>
  readonly tags: ReadonlySet<DomainEventTag> | undefined
}

/**
 * An in-memory bus: each subscriber has its own unbounded `PubSub` (one
 * subscription); `publish` offers the event synchronously
 * (`PubSub.publishUnsafe`) to every subscriber that wants it (`subscribeTo`
 * declares which `_tag`s), so an event nobody wants costs a loop over the
 * subscribers and wakes no one. A subscriber's stream ends when its scope
 * closes. `publishNow(bus)` gives its delivery as a plain function.
 */
export const makeMemory: Effect.Effect<EventBusShape> = Effect.sync(() => {
  // replaced, never mutated, on (un)subscribe: a publish iterates a stable list
  let subscribers: ReadonlyArray<Subscriber> = []
  const deliver = (event: DomainEvent): void => {
    const current = subscribers
    for (let i = 0; i < current.length; i++) {
      const s = current[i]!
      if (s.tags === undefined || s.tags.has(event._tag)) PubSub.publishUnsafe(s.pubsub, event)
    }
  }
  const subscription = (
    tags: ReadonlySet<DomainEventTag> | undefined
  ): Effect.Effect<Stream.Stream<DomainEvent>, never, Scope.Scope> =>
    Effect.flatMap(PubSub.unbounded<DomainEvent>(), (pubsub) =>
      Effect.flatMap(PubSub.subscribe(pubsub), (taken) =>
        Effect.as(
          // listed once subscribed; unlisted first when the scope closes (finalizers run in reverse)
          Effect.acquireRelease(
            Effect.sync(() => {
              const s: Subscriber = { pubsub, tags }
              subscribers = [...subscribers, s]
              return s
            }),
            (s) =>
              Effect.sync(() => {
                subscribers = subscribers.filter((x) => x !== s)
              })
          ),
          Stream.fromSubscription(taken)
        )
      )
    )
  const publish = (event: DomainEvent) => Effect.sync(() => deliver(event))
  synchronous.set(publish, {
    deliver, // `publishNow`
    wants: (tag) => {
      // `wants`
      const current = subscribers
      for (let i = 0; i < current.length; i++) {
        const tags = current[i]!.tags
        if (tags === undefined || tags.has(tag)) return true
      }
      return false
    }
  })
  return {
    publish,
    publishAll: (events) =>
      Effect.sync(() => {
        for (const event of events) deliver(event)
      }),
    subscribe: subscription(undefined),
    subscribeTo: (tags) => subscription(new Set(tags))
  }
})

/** The in-memory `EventBus` layer (the embedded default). */
export const layerMemory: Layer.Layer<EventBus> = Layer.effect(EventBus, makeMemory)
