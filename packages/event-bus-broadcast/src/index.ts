/**
 * `@agent-runtime/event-bus-broadcast` — the `EventBus` port on
 * `BroadcastChannel`: every tab (and worker) of an origin that opens the same
 * channel sees one runtime's events.
 *
 * @since 0.2.0
 */
export * as BroadcastEventBus from "./BroadcastEventBus.js"
