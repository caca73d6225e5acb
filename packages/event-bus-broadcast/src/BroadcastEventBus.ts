/**
 * The `EventBus` port on `BroadcastChannel` (DESIGN.md "Ports": EventBus —
 * BroadcastChannel adapter), so every tab (and worker) of an origin that
 * opens the same channel sees one runtime's events. The in-memory bus of the
 * domain stays the default; this one is opt-in.
 *
 * `publish` delivers to this bus's own subscribers (a `BroadcastChannel`
 * never echoes to its sender) and posts the event to the channel encoded
 * with the `DomainEvent` schema (`Schema.encodeSync(DomainEvent)`: plain,
 * structured-cloneable data). Events arriving from other tabs are decoded
 * with the same schema back into the Schema classes (`AgentSpawned`, …) and
 * delivered to the subscribers; a message that does not decode (another
 * app's traffic on the channel, another version) is dropped and counted in
 * `rejected`, never thrown. Delivery follows HTML §"Broadcasting to other
 * browsing contexts": same origin, same channel name, no delivery guarantee
 * to contexts that have not opened the channel yet.
 *
 * @since 0.1.0
 */
import { DomainEvent, EventBus, EventBuses } from "@agent-runtime/domain"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Layer from "effect/Layer"
import * as PubSub from "effect/PubSub"
import * as Schema from "effect/Schema"
import type * as Scope from "effect/Scope"
import * as Stream from "effect/Stream"

/** Default channel name. */
export const DEFAULT_CHANNEL = "agent-runtime:events"

/** Settings of a BroadcastChannel bus. */
export interface BroadcastEventBusOptions {
  /** Channel name (default `"agent-runtime:events"`); buses with the same name share events. */
  readonly channel?: string | undefined
}

/** The bus plus what it saw. */
export interface BroadcastEventBusShape extends EventBuses.EventBusShape {
  /** Messages from the channel that did not decode as a `DomainEvent`. */
  readonly rejected: () => number
}

/** The structural part of a `BroadcastChannel` this bus uses. */
interface ChannelLike {
  postMessage(message: unknown): void
  close(): void
  onmessage: ((event: { readonly data: unknown }) => void) | null
  onmessageerror: ((event: unknown) => void) | null
}

const encode = Schema.encodeSync(DomainEvent)
const decode = Schema.decodeUnknownExit(DomainEvent)

/** Opens a bus on a `BroadcastChannel`; the channel closes with the scope. Dies when `BroadcastChannel` is missing. */
export const make = (
  options: BroadcastEventBusOptions = {}
): Effect.Effect<BroadcastEventBusShape, never, Scope.Scope> =>
  Effect.gen(function* () {
    const Channel = (globalThis as { BroadcastChannel?: new (name: string) => ChannelLike }).BroadcastChannel
    if (Channel === undefined) return yield* Effect.die(new Error("BroadcastChannel is not available in this context"))
    const pubsub = yield* PubSub.unbounded<DomainEvent>()
    let rejected = 0
    const channel = yield* Effect.acquireRelease(
      Effect.sync(() => new Channel(options.channel ?? DEFAULT_CHANNEL)),
      (ch) => Effect.sync(() => ch.close())
    )
    channel.onmessage = (event) => {
      const decoded = decode(event.data)
      if (Exit.isSuccess(decoded)) PubSub.publishUnsafe(pubsub, decoded.value)
      else rejected++
    }
    channel.onmessageerror = () => {
      rejected++
    }
    return {
      publish: (event) =>
        Effect.andThen(
          PubSub.publish(pubsub, event),
          Effect.sync(() => {
            try {
              channel.postMessage(encode(event))
            } catch {
              // a closed channel (scope ended) or an event that cannot be encoded: local subscribers already have it
            }
          })
        ),
      subscribe: Effect.map(PubSub.subscribe(pubsub), Stream.fromSubscription),
      rejected: () => rejected
    }
  })

/** The `EventBus` layer on a `BroadcastChannel` (scoped). */
export const layer = (options: BroadcastEventBusOptions = {}): Layer.Layer<EventBus> =>
  Layer.effect(EventBus, make(options))
