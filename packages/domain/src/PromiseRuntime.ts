/**
 * A Promise facade over `AgentRuntime` for callers who don't use Effect
 * (DESIGN.md "Public API": "a Promise facade").
 *
 * Every method returns a Promise; a failure rejects with the same typed
 * error class the Effect API fails with (`err instanceof AgentNotFound`,
 * `err._tag === "Trap"`). Input is checked as by `AgentRuntime` (see its
 * module doc); `onEvent` without a function and `publish` of something that
 * is not a `DomainEvent` reject with `InvalidArgument`. A defect (a bug)
 * rejects with the underlying error.
 *
 * `loadModule` answers a cache hit without running an effect when it can:
 * the bytes hashed synchronously (`PlatformServices.sha256Hex`, e.g.
 * `NodeEngine.layerPlatform` in `ports` or the engine layer; or JavaScript
 * below 8 KiB), the verified module registered, and the in-memory bus — the
 * returned promise is already resolved with the id and `ModuleLoaded` was
 * published before `loadModule` returned (≈ the hash plus a few map lookups,
 * no `runPromise`). Everything else (a cold load, other metadata, WebCrypto
 * hashing, another bus) runs as before; ids, events and errors are the same
 * on both paths. With a tracer in the runtime's layers (checked once, at
 * `createRuntime`) every call runs as an effect, so each gets its span.
 *
 * ```ts
 * const runtime = await createRuntime({ engine: NativeEngine.layer, verifier: Signing.layer({ trustStore }) })
 * const moduleId = await runtime.loadModule(bytes, makeMetadata({ name: "counter", version: "1.0.0" }))
 * await runtime.spawnAgent(agentId("a1"), moduleId, { memoryLimit: 16 * MiB })
 * const [n] = await runtime.invoke(agentId("a1"), "increment")
 * await runtime.dispose()
 * ```
 *
 * @since 0.1.0
 */
import * as Cause from "effect/Cause"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import * as Latch from "effect/Latch"
import * as Layer from "effect/Layer"
import * as ManagedRuntime from "effect/ManagedRuntime"
import * as Schema from "effect/Schema"
import * as Stream from "effect/Stream"
import * as AgentRuntimes from "./AgentRuntime.js"
import { AgentRuntime, type AgentRuntimeShape, layerMemoryPorts, type SettingsInput } from "./AgentRuntime.js"
import { EventBus } from "./EventBus.js"
import type { ModuleVerifier } from "./ModuleVerifier.js"
import { forMessage, type ModuleId } from "./Ids.js"
import type { ModuleMetadata } from "./ModuleMetadata.js"
import { InvalidArgument } from "./RuntimeError.js"
import { DomainEvent, type RuntimeEvent } from "./RuntimeEvent.js"
import type { WasmEngine } from "./WasmEngine.js"
import { synchronousLoads } from "./internal/Modules.js"
import { tracing } from "./internal/Spans.js"

type Promisified<T> = {
  readonly [K in keyof T]: T[K] extends (...args: infer A) => Effect.Effect<infer R, any, any>
    ? (...args: A) => Promise<R>
    : T[K] extends Effect.Effect<infer R, any, any>
      ? () => Promise<R>
      : T[K]
}

/** The facade: `AgentRuntime`'s operations as async functions, plus events and disposal. */
export type PromiseRuntime = Omit<Promisified<AgentRuntimeShape>, "events"> & {
  /** Calls `listener` for every runtime event until the returned function is called. */
  readonly onEvent: (listener: (event: RuntimeEvent) => void) => Promise<() => void>
  /** Publishes a consumed event (`AgentJoined` / `AgentLeft`) on the runtime's bus. */
  readonly publish: (event: DomainEvent) => Promise<void>
  /** Shuts the runtime down and releases everything. */
  readonly dispose: () => Promise<void>
}

/** Options of `createRuntime`: the engine and verifier layers, and settings. */
export interface CreateRuntimeOptions {
  readonly engine: Layer.Layer<WasmEngine>
  readonly verifier: Layer.Layer<ModuleVerifier>
  readonly settings?: SettingsInput
  /**
   * Repositories, event bus and authorizer to use instead of the in-memory
   * defaults (e.g. SQLite, IndexedDB); any port it does not provide keeps
   * its in-memory default.
   */
  readonly ports?: Layer.Layer<never, never, never> | Layer.Layer<any, never, never>
}

const isDomainEvent = Schema.is(DomainEvent)

const run = async <A, E>(
  runtime: ManagedRuntime.ManagedRuntime<any, any>,
  effect: Effect.Effect<A, E, any>
): Promise<A> => {
  const exit = await runtime.runPromiseExit(effect)
  if (Exit.isSuccess(exit)) return exit.value
  const error = Cause.findError(exit.cause)
  throw error._tag === "Success" ? error.success : Cause.squash(exit.cause)
}

/**
 * Builds a runtime on the embedded defaults (in-memory repositories and bus)
 * with the given engine and verifier. Rejects with `AgentRuntimes.StartError`
 * when the pool cannot hold the engine's worker threads.
 */
export const createRuntime = async (options: CreateRuntimeOptions): Promise<PromiseRuntime> => {
  // the given ports override the in-memory defaults (later services win in a merge)
  const base =
    options.ports === undefined ? layerMemoryPorts : Layer.merge(layerMemoryPorts, options.ports as Layer.Layer<never>)
  const layer = AgentRuntimes.layer(options.settings).pipe(
    Layer.provideMerge(Layer.mergeAll(base, options.engine, options.verifier))
  )
  const managed = ManagedRuntime.make(layer)
  const rt: AgentRuntimeShape = await run(
    managed,
    Effect.gen(function* () {
      return yield* AgentRuntime
    })
  )
  const facade: Record<string, unknown> = {}
  for (const [key, value] of Object.entries(rt)) {
    if (key === "events") continue
    if (typeof value === "function") {
      facade[key] = (...args: Array<unknown>) =>
        run(managed, (value as (...a: Array<unknown>) => Effect.Effect<unknown>)(...args))
    } else if (Effect.isEffect(value)) {
      facade[key] = () => run(managed, value)
    } else {
      facade[key] = value
    }
  }
  // A cache hit answered without running an effect (no `runPromise`): the bytes hashed synchronously, the
  // module registered, its `ModuleLoaded` published on a synchronous bus (`internal/Modules.ts` `loadNow`);
  // anything else runs the rest of the load at once. Not when a tracer is installed: that path has no span.
  const loadNow = synchronousLoads.get(rt)
  const traced = await run(
    managed,
    Effect.withFiber((fiber) => Effect.succeed(tracing(fiber)))
  )
  if (loadNow !== undefined && !traced) {
    facade.loadModule = (bytes: Uint8Array, metadata: ModuleMetadata): Promise<ModuleId> => {
      let now: ReturnType<typeof loadNow>
      try {
        now = loadNow(bytes, metadata)
      } catch (defect) {
        return Promise.reject(defect)
      }
      return typeof now === "string" ? Promise.resolve(now) : run(managed, now)
    }
  }
  facade.onEvent = async (listener: (event: RuntimeEvent) => void) => {
    if (typeof listener !== "function") {
      throw new InvalidArgument({
        operation: "onEvent",
        argument: "listener",
        reason: `expected a function, got ${forMessage(listener)}`
      })
    }
    const fiber = await run(
      managed,
      Effect.gen(function* () {
        const started = yield* Latch.make()
        const fiber = yield* Effect.forkDetach(
          Effect.scoped(
            Effect.gen(function* () {
              const stream = yield* rt.events
              yield* started.open
              yield* Stream.runForEach(stream, (e) => Effect.sync(() => listener(e)))
            })
          )
        )
        yield* started.await
        return fiber
      })
    )
    return () => void managed.runFork(Fiber.interrupt(fiber))
  }
  facade.publish = (event: DomainEvent) =>
    !isDomainEvent(event)
      ? Promise.reject(
          new InvalidArgument({
            operation: "publish",
            argument: "event",
            reason: `expected a DomainEvent, got ${forMessage(event)}`
          })
        )
      : run(
          managed,
          Effect.gen(function* () {
            const bus = yield* EventBus
            yield* bus.publish(event)
          })
        )
  facade.dispose = () => managed.dispose()
  return facade as PromiseRuntime
}
