/**
 * Recovery after a trap (issue 12 item 7) on the scriptable test engine:
 * what the conformance suite cannot make a real guest do — a replacement
 * that fails — and the runtime-wide `onTrap` setting.
 */
import { AgentRuntime, agentId, Trap } from "@agent-runtime/domain"
import { describe, expect, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import { collecting, config, loadWith, makeTestEngine, runtimeLayer } from "./support/TestEngine.js"

const fns = { _initialize: {}, boom: {}, get: { results: ["i32"] }, bump: { results: ["i32"] } }

/** `_initialize` works `inits` times, then traps; `boom` traps after writing; `bump` / `get` count. */
const behaviours = (inits: number) => {
  let initialized = 0
  return {
    _initialize: () => (++initialized > inits ? Effect.fail(new Trap({ function: "_initialize", reason: "broken" })) : []),
    bump: (ctx: { state: Record<string, number> }) => [(ctx.state.n = (ctx.state.n ?? 0) + 1)],
    get: (ctx: { state: Record<string, number> }) => [ctx.state.n ?? 0],
    boom: (ctx: { state: Record<string, number> }) => {
      ctx.state.n = 99
      return Effect.fail(new Trap({ function: "boom", reason: "unreachable" }))
    }
  }
}

describe("recovery after a trap", () => {
  it.effect("an agent whose replacement fails (its _initialize traps now) goes Failed and is evicted with HealthFailure", () => {
    const t = makeTestEngine()
    return Effect.gen(function*() {
      const runtime = yield* AgentRuntime
      const m = yield* loadWith(t, "fragile", fns, behaviours(1))
      const [, events] = yield* collecting(Effect.gen(function*() {
        yield* runtime.spawnAgent(agentId("f"), m, config())
        expect(yield* runtime.invoke(agentId("f"), "bump", [])).toEqual([1])
        expect(yield* Effect.flip(runtime.invoke(agentId("f"), "boom", []))).toBeInstanceOf(Trap)
      }))
      expect(events.filter((e) => e._tag === "AgentRecovered")).toHaveLength(0)
      const changes = events.flatMap((e) => (e._tag === "AgentStateChanged" ? [[e.from, e.to]] : []))
      expect(changes).toContainEqual(["Running", "Failed"])
      expect(events.flatMap((e) => (e._tag === "AgentEvicted" ? [[e.agentId, e.reason]] : []))).toEqual([["f", "HealthFailure"]])
      expect(yield* runtime.agents).toHaveLength(0)
    }).pipe(Effect.provide(runtimeLayer(t)))
  })

  it.effect("RuntimeSettings.onTrap \"keep\" keeps the instance as the trap left it; an agent's own onTrap overrides it", () => {
    const t = makeTestEngine()
    return Effect.gen(function*() {
      const runtime = yield* AgentRuntime
      const m = yield* loadWith(t, "kept", fns, behaviours(10))
      const [, events] = yield* collecting(Effect.gen(function*() {
        yield* runtime.spawnAgent(agentId("k"), m, config())
        yield* runtime.spawnAgent(agentId("r"), m, config(undefined, { onTrap: "restore" }))
        for (const id of ["k", "r"]) {
          yield* runtime.invoke(agentId(id), "bump", [])
          yield* Effect.flip(runtime.invoke(agentId(id), "boom", []))
        }
        expect(yield* runtime.invoke(agentId("k"), "get", [])).toEqual([99])
        expect(yield* runtime.invoke(agentId("r"), "get", [])).toEqual([0])
        expect((yield* runtime.agent(agentId("k"))).errorCount).toBe(1)
        expect((yield* runtime.agent(agentId("r"))).errorCount).toBe(1)
      }))
      expect(events.flatMap((e) => (e._tag === "AgentRecovered" ? [[e.agentId, e.from]] : []))).toEqual([["r", "Fresh"]])
    }).pipe(Effect.provide(runtimeLayer(t, { onTrap: "keep" })))
  })

  it.effect("onTrap must be \"restore\" or \"keep\" (InvalidConfig)", () => {
    const t = makeTestEngine()
    return Effect.gen(function*() {
      const runtime = yield* AgentRuntime
      const m = yield* loadWith(t, "cfg", fns, behaviours(10))
      const e = yield* Effect.flip(runtime.spawnAgent(agentId("c"), m, config(undefined, { onTrap: "reset" as never })))
      expect(e._tag).toBe("InvalidConfig")
    }).pipe(Effect.provide(runtimeLayer(t)))
  })
})
