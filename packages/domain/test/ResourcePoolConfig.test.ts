/**
 * One thread setting, enforced by the runtime (issue 16 item 1): the
 * `ResourcePoolConfig` reference sizes the runtime's pool, explicit
 * `pool` settings win over it, and a runtime takes the engine's worker
 * threads (`WasmEngineShape.threads`) from its pool at start — refusing an
 * engine that runs more with a typed error.
 */
import {
  AgentRuntime,
  type AgentRuntimeShape,
  DEFAULT_MAX_THREADS,
  layerPoolConfig,
  ResourcePoolConfig,
  type SettingsInput
} from "@agent-runtime/domain"
import { describe, expect, it } from "@effect/vitest"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Layer from "effect/Layer"
import * as Scope from "effect/Scope"
import { makeTestEngine, runtimeLayer } from "./support/TestEngine.js"

/** The test engine, reporting `threads` worker threads (a worker engine), or none (in-process). */
const engineWith = (threads: number | undefined) => {
  const t = makeTestEngine()
  return { ...t, engine: threads === undefined ? t.engine : { ...t.engine, threads } }
}

/** Builds a runtime on an engine with `threads` in a scope of its own; the exit of the build. */
const build = (threads: number | undefined, settings: SettingsInput = {}, config?: Layer.Layer<never>) =>
  Effect.gen(function* () {
    const scope = yield* Scope.make()
    const runtime = runtimeLayer(engineWith(threads), settings)
    const layer = config === undefined ? runtime : runtime.pipe(Layer.provide(config))
    const exit = yield* Effect.exit(Layer.buildWithScope(layer, scope))
    return { exit, scope }
  })

const runtimeOf = <E>(exit: Exit.Exit<Context.Context<AgentRuntime>, E>): AgentRuntimeShape => {
  if (!Exit.isSuccess(exit)) throw new Error(`the runtime did not start: ${String(exit.cause)}`)
  return Context.get(exit.value, AgentRuntime)
}

describe("ResourcePoolConfig: one thread setting, enforced", () => {
  it("the reference defaults to the pool's defaults", () => {
    expect(ResourcePoolConfig.defaultValue().maxThreads).toBe(DEFAULT_MAX_THREADS)
    expect(DEFAULT_MAX_THREADS).toBe(4)
  })

  it.effect("a worker engine's threads are taken from the pool at start and given back when the runtime ends", () =>
    Effect.gen(function* () {
      const { exit, scope } = yield* build(3)
      const runtime = runtimeOf(exit)
      expect((yield* runtime.stats).threads).toEqual({ max: DEFAULT_MAX_THREADS, inUse: 3 })
      yield* Scope.close(scope, Exit.void)
      expect((yield* runtime.stats).threads).toEqual({ max: DEFAULT_MAX_THREADS, inUse: 0 })
    })
  )

  it.effect(
    "an engine running more threads than the pool allows fails the runtime layer with ResourceExhausted threads",
    () =>
      Effect.gen(function* () {
        const { exit, scope } = yield* build(DEFAULT_MAX_THREADS + 1)
        expect(Exit.isFailure(exit)).toBe(true)
        const error = yield* Effect.flip(exit)
        expect(error).toMatchObject({ _tag: "ResourceExhausted", resource: "threads", requested: 5, available: 4 })
        yield* Scope.close(scope, Exit.void)
      })
  )

  it.effect("the provided ResourcePoolConfig sizes the pool; an explicit pool.maxThreads wins over it", () =>
    Effect.gen(function* () {
      const provided = yield* build(6, {}, layerPoolConfig({ maxThreads: 8 }))
      expect((yield* runtimeOf(provided.exit).stats).threads).toEqual({ max: 8, inUse: 6 })
      // the reference's other fields come through too (one setting for the whole pool)
      expect(runtimeOf(provided.exit).settings.pool.maxThreads).toBe(8)
      yield* Scope.close(provided.scope, Exit.void)

      const explicit = yield* build(6, { pool: { maxThreads: 2 } }, layerPoolConfig({ maxThreads: 8 }))
      expect(yield* Effect.flip(explicit.exit)).toMatchObject({
        _tag: "ResourceExhausted",
        resource: "threads",
        requested: 6,
        available: 2
      })
      yield* Scope.close(explicit.scope, Exit.void)
    })
  )

  it.effect("an in-process engine (no threads) needs none: a pool of 0 threads starts", () =>
    Effect.gen(function* () {
      for (const threads of [undefined, 0]) {
        const { exit, scope } = yield* build(threads, { pool: { maxThreads: 0 } })
        expect((yield* runtimeOf(exit).stats).threads).toEqual({ max: 0, inUse: 0 })
        yield* Scope.close(scope, Exit.void)
      }
    })
  )

  it.effect("a maxThreads that is not a non-negative integer is InvalidConfig", () =>
    Effect.gen(function* () {
      for (const maxThreads of [-1, 1.5, Number.NaN]) {
        const { exit, scope } = yield* build(undefined, { pool: { maxThreads } })
        expect(yield* Effect.flip(exit)).toMatchObject({ _tag: "InvalidConfig" })
        yield* Scope.close(scope, Exit.void)
      }
    })
  )
})
