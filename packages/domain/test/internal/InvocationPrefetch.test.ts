/**
 * `WasmInstance.prefetch` (the worker engines' "a request is coming" hint): on an engine without synchronous
 * callers the runtime gives it once per `invoke`, before the engine's `invoke`, and calls still answer as
 * they do without it.
 */
import { AgentRuntime, agentId, type WasmEngineShape } from "@agent-runtime/domain"
import { describe, expect, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import { config, loadWith, makeTestEngine, runtimeLayer, type TestEngine } from "../support/TestEngine.js"

/** The test engine with a `prefetch` on every instance that records `agentId.prefetch` in `t.calls`. */
const withPrefetch = (t: TestEngine): TestEngine => {
  const engine: WasmEngineShape = {
    ...t.engine,
    instantiate: (compiled, options) =>
      Effect.map(t.engine.instantiate(compiled, options), (instance) => ({
        ...instance,
        prefetch: () => {
          t.calls.push(`${options.agentId}.prefetch`)
        }
      }))
  }
  return { ...t, engine }
}

describe("invoke gives the engine's prefetch hint", () => {
  it.effect("once per call, before the engine's invoke; results and errors as without it", () => {
    const t = withPrefetch(makeTestEngine())
    return Effect.gen(function* () {
      const runtime = yield* AgentRuntime
      const m = yield* loadWith(
        t,
        "hinted",
        { add: { params: ["i32", "i32"], results: ["i32"] } },
        {
          add: (_ctx, args) => [(args[0] as number) + (args[1] as number)]
        }
      )
      const id = agentId("a")
      yield* runtime.spawnAgent(id, m, config())
      t.calls.length = 0
      expect(yield* runtime.invoke(id, "add", [1, 2])).toEqual([3])
      expect(yield* runtime.invoke(id, "add", [3, 4])).toEqual([7])
      expect(t.calls).toEqual(["a.prefetch", "a.add", "a.prefetch", "a.add"])
      // a call its checks refuse may have been hinted, but never reaches the engine
      const refused = yield* Effect.exit(runtime.invoke(id, "add", [1]))
      expect(Exit.isFailure(refused)).toBe(true)
      expect(t.calls.filter((c) => c === "a.add")).toHaveLength(2)
      expect((yield* runtime.agent(id)).invocationCount).toBe(2)
    }).pipe(Effect.provide(runtimeLayer(t)))
  })
})
