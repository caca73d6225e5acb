/**
 * `BrowserScheduler`: Effect's scheduler for a web page, yielding through a
 * `MessageChannel` instead of `setTimeout(0)`.
 *
 * Every Effect fiber yields to the event loop after a budget of operations
 * (`Scheduler.MaxOpsBeforeYield`, 2048 by default) so a long computation
 * cannot starve the page. Effect's default scheduler yields with
 * `setImmediate` where the host has it (Node) and `setTimeout(f, 0)`
 * elsewhere — and browsers clamp a `setTimeout` nested more than five deep
 * to at least 4 ms (HTML §"Timers": the timer initialisation steps). A fiber
 * that keeps working (a loop of `runtime.invoke` calls, a stream) therefore
 * idles 4 ms every 2048 operations, ≈ 2 µs per operation: on the in-page
 * engine that is several times the call itself (≈ 0.4 µs). A posted message
 * is a task too — input, rendering and timers still run between two of them,
 * so the fiber still yields the page — but it is not clamped.
 * React's scheduler yields the same way for the same reason.
 *
 * Provide `layer` beside the engine (or `Effect.provideService(Scheduler.Scheduler, make())`
 * around a program): fibers created with it in their context use it. Where
 * `MessageChannel` is missing, `make` falls back to Effect's default
 * scheduler. The channel's port is `unref`ed where the host has that
 * (Node), so it never keeps a process alive.
 *
 * @example
 * ```ts
 * const live = AgentRuntimes.layerMemory().pipe(
 *   Layer.provideMerge(Layer.mergeAll(BrowserEngine.layer, BrowserScheduler.layer)),
 *   Layer.provide(verifier)
 * )
 * ```
 *
 * @since 0.2.0
 */
import * as Layer from "effect/Layer"
import * as Scheduler from "effect/Scheduler"

/** The structural part of a `MessageChannel` this module uses. */
interface ChannelLike {
  readonly port1: { onmessage: ((event: unknown) => void) | null; unref?: () => void }
  readonly port2: { postMessage: (message: unknown) => void; unref?: () => void }
}

/**
 * A `setImmediate` over one `MessageChannel`: `f` runs in a later task
 * (FIFO), unless the returned function cancelled it first. `undefined` when
 * the realm has no `MessageChannel`.
 */
export const messageChannelImmediate = (): ((f: () => void) => () => void) | undefined => {
  const Channel = (globalThis as { MessageChannel?: new () => ChannelLike }).MessageChannel
  if (typeof Channel !== "function") return undefined
  const channel = new Channel()
  channel.port1.unref?.()
  channel.port2.unref?.()
  const queue: Array<{ readonly f: () => void; cancelled: boolean }> = []
  channel.port1.onmessage = () => {
    const task = queue.shift()
    if (task !== undefined && !task.cancelled) task.f()
  }
  return (f) => {
    const task = { f, cancelled: false }
    queue.push(task)
    channel.port2.postMessage(null)
    return () => {
      task.cancelled = true
    }
  }
}

/**
 * Effect's `MixedScheduler` (asynchronous mode) yielding through a
 * `MessageChannel` (`messageChannelImmediate`); Effect's default scheduler
 * where the realm has no `MessageChannel`.
 */
export const make = (): Scheduler.Scheduler => {
  const immediate = messageChannelImmediate()
  return immediate === undefined ? new Scheduler.MixedScheduler() : new Scheduler.MixedScheduler("async", immediate)
}

/**
 * Provides `Scheduler.Scheduler` as `make()` (one channel per build): fibers
 * run with it in their context yield without timer clamping.
 */
export const layer: Layer.Layer<never> = Layer.sync(Scheduler.Scheduler, make)
