/**
 * An instance its engine ended on its own (`WasmInstance.isLive` false — a
 * worker engine terminates the worker of an interrupted or timed-out call)
 * is replaced before the agent's next call whatever its `onTrap` policy,
 * restored from its last snapshot as after a trap, with `AgentRecovered`.
 * The scriptable test engine's instances here die when a running call is
 * interrupted (as a worker engine's do) and say so through `live`.
 */
import {
  AgentRuntime,
  AgentRuntimes,
  agentId,
  type SettingsInput,
  Trap,
  WasmEngine,
  type WasmEngineShape,
  type WasmInstance
} from "@agent-runtime/domain"
import { describe, expect, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import * as Layer from "effect/Layer"
import { collecting, config, loadWith, makeTestEngine, type TestEngine, testVerifierFor } from "./support/TestEngine.js"

/** `t`'s engine whose instances die when a running call is interrupted; `terminated` counts `terminate` calls. */
const dyingOnInterrupt = (t: TestEngine) => {
  const counts = { terminated: 0, instances: 0 }
  const engine: WasmEngineShape = {
    ...t.engine,
    instantiate: (compiled, options) =>
      Effect.map(t.engine.instantiate(compiled, options), (inner): WasmInstance => {
        counts.instances++
        let dead = false
        return {
          ...inner,
          invoke: (fn, args, o) =>
            dead
              ? Effect.fail(new Trap({ function: fn, reason: "instance terminated (the call was interrupted)" }))
              : Effect.onInterrupt(inner.invoke(fn, args, o), () => Effect.sync(() => void (dead = true))),
          terminate: Effect.andThen(
            Effect.sync(() => void counts.terminated++),
            inner.terminate
          ),
          isLive: () => !dead
        }
      })
  }
  return { engine, counts }
}

const layerOn = (t: TestEngine, engine: WasmEngineShape, settings: SettingsInput = {}) =>
  AgentRuntimes.layerMemory({ id: "rt-live", ...settings }).pipe(
    Layer.provide(Layer.mergeAll(Layer.succeed(WasmEngine, engine), testVerifierFor(t)))
  )

const fns = { bump: { results: ["i32"] }, get: { results: ["i32"] }, hang: {} }
const behaviours = {
  bump: (ctx: { state: Record<string, number> }) => [(ctx.state.n = (ctx.state.n ?? 0) + 1)],
  get: (ctx: { state: Record<string, number> }) => [ctx.state.n ?? 0],
  hang: () => Effect.never
}

describe("an instance its engine ended (WasmInstance.isLive false) is replaced before the next call", () => {
  for (const onTrap of ["restore", "keep"] as const) {
    it.effect(
      `onTrap "${onTrap}": restored from the last snapshot, AgentRecovered, the caller sees its interruption`,
      () => {
        const t = makeTestEngine()
        const { counts, engine } = dyingOnInterrupt(t)
        return Effect.gen(function* () {
          const runtime = yield* AgentRuntime
          const m = yield* loadWith(t, `live-${onTrap}`, fns, behaviours)
          const id = agentId(`a-${onTrap}`)
          const [, events] = yield* collecting(
            Effect.gen(function* () {
              yield* runtime.spawnAgent(id, m, config())
              expect(yield* runtime.invoke(id, "bump", [])).toEqual([1])
              yield* runtime.snapshot(id) // n = 1 saved
              expect(yield* runtime.invoke(id, "bump", [])).toEqual([2])
              const fiber = yield* Effect.forkChild(runtime.invoke(id, "hang", []))
              while (!t.calls.includes(`${id}.hang`)) yield* Effect.yieldNow
              yield* Fiber.interrupt(fiber)
              expect(Exit.hasInterrupts(yield* Fiber.await(fiber))).toBe(true)
              // the old code: Trap "instance terminated" here (and for good under "keep")
              expect(yield* runtime.invoke(id, "get", [])).toEqual([1])
              expect(yield* runtime.invoke(id, "bump", [])).toEqual([2])
              const info = yield* runtime.agent(id)
              expect(info.state).toBe("Running")
              expect(info.errorCount).toBe(0)
            })
          )
          const recovered = events.flatMap((e) => (e._tag === "AgentRecovered" ? [e] : []))
          expect(recovered.map((e) => [e.agentId, e.from])).toEqual([[id, "Snapshot"]])
          expect(recovered[0]!.cause).toContain("no longer live")
          expect(counts.instances).toBe(2)
          expect(counts.terminated).toBe(1) // the ended instance, released
        }).pipe(Effect.provide(layerOn(t, engine, { onTrap })))
      }
    )
  }

  it.effect("without a snapshot the replacement is fresh; a live instance is never replaced", () => {
    const t = makeTestEngine()
    const { counts, engine } = dyingOnInterrupt(t)
    return Effect.gen(function* () {
      const runtime = yield* AgentRuntime
      const m = yield* loadWith(t, "fresh", fns, behaviours)
      const id = agentId("fresh")
      const [, events] = yield* collecting(
        Effect.gen(function* () {
          yield* runtime.spawnAgent(id, m, config())
          for (let n = 1; n <= 3; n++) expect(yield* runtime.invoke(id, "bump", [])).toEqual([n])
          expect(counts.instances).toBe(1)
          const fiber = yield* Effect.forkChild(runtime.invoke(id, "hang", []))
          while (!t.calls.includes(`${id}.hang`)) yield* Effect.yieldNow
          yield* Fiber.interrupt(fiber)
          // a snapshot asked for next is the replacement's (not a Trap of the ended instance)
          const saved = yield* runtime.snapshot(id)
          expect(saved.state.globals).toEqual({})
          expect(yield* runtime.invoke(id, "bump", [])).toEqual([1])
        })
      )
      expect(events.flatMap((e) => (e._tag === "AgentRecovered" ? [e.from] : []))).toEqual(["Fresh"])
      expect(counts.instances).toBe(2)
    }).pipe(Effect.provide(layerOn(t, engine, { onTrap: "keep" })))
  })

  it.effect("a replacement that is not live either fails the agent (Failed, evicted) instead of looping", () => {
    const t = makeTestEngine()
    const base = dyingOnInterrupt(t).engine
    let instances = 0
    const engine: WasmEngineShape = {
      ...base,
      // every instance after the first is born ended
      instantiate: (compiled, options) =>
        Effect.map(base.instantiate(compiled, options), (i) => (++instances > 1 ? { ...i, isLive: () => false } : i))
    }
    return Effect.gen(function* () {
      const runtime = yield* AgentRuntime
      const m = yield* loadWith(t, "doomed", fns, behaviours)
      const id = agentId("doomed")
      const [, events] = yield* collecting(
        Effect.gen(function* () {
          yield* runtime.spawnAgent(id, m, config())
          const fiber = yield* Effect.forkChild(runtime.invoke(id, "hang", []))
          while (!t.calls.includes(`${id}.hang`)) yield* Effect.yieldNow
          yield* Fiber.interrupt(fiber)
          const error = yield* Effect.flip(runtime.invoke(id, "get", []))
          expect(["AgentNotRunning", "AgentNotFound", "AgentEvictedDuringCall"]).toContain(error._tag)
        })
      )
      expect(events.filter((e) => e._tag === "AgentRecovered")).toEqual([])
      expect(events.flatMap((e) => (e._tag === "AgentEvicted" ? [[e.agentId, e.reason]] : []))).toEqual([
        [id, "HealthFailure"]
      ])
    }).pipe(Effect.provide(layerOn(t, engine)))
  })
})
