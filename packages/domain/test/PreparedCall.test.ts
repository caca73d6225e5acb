import { AgentRuntime, agentId } from "@agent-runtime/domain"
import { describe, expect, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import { config, loadWith, makeTestEngine, runtimeLayer } from "./support/TestEngine.js"

const fns = { add: { params: ["i32"], results: ["i32"] } }
const behaviour = {
  add: (ctx: { state: Record<string, number> }, [x]: ReadonlyArray<unknown>) => [
    (ctx.state.n = (ctx.state.n ?? 0) + (x as number))
  ]
}

describe("prepared call handle", () => {
  it.effect("resolves the export once; invoke keeps invoke's semantics", () => {
    const t = makeTestEngine()
    return Effect.gen(function* () {
      const runtime = yield* AgentRuntime
      const m = yield* loadWith(t, "counter", fns, behaviour)
      yield* runtime.spawnAgent(agentId("a"), m, config())
      const handle = yield* runtime.prepare(agentId("a"), "add")
      expect(handle.signature).toEqual({ params: ["i32"], results: ["i32"] })
      expect(yield* handle.invoke([2])).toEqual([2])
      expect((yield* Effect.flip(handle.invoke(["x" as never])))._tag).toBe("SignatureMismatch")
      expect((yield* Effect.flip(runtime.prepare(agentId("a"), "nope")))._tag).toBe("FunctionNotFound")
      expect((yield* Effect.flip(runtime.prepare(agentId("zz"), "add")))._tag).toBe("AgentNotFound")
      // the test engine has no synchronous path: no fast `call`
      expect(handle.call).toBeUndefined()
    }).pipe(Effect.provide(runtimeLayer(t)))
  })
})

describe("restore", () => {
  it.effect("refuses a snapshot of another module hash with SnapshotMismatch", () => {
    const t = makeTestEngine()
    return Effect.gen(function* () {
      const runtime = yield* AgentRuntime
      const m1 = yield* loadWith(t, "one", fns, behaviour)
      const m2 = yield* loadWith(t, "two", fns, behaviour)
      yield* runtime.spawnAgent(agentId("a"), m1, config())
      yield* runtime.snapshot(agentId("a"))
      yield* runtime.evictAgent(agentId("a"), "Shutdown") // keeps the saved state
      yield* runtime.spawnAgent(agentId("a"), m2, config())
      const e = yield* Effect.flip(runtime.restore(agentId("a")))
      expect(e._tag).toBe("SnapshotMismatch")
    }).pipe(Effect.provide(runtimeLayer(t)))
  })
})
