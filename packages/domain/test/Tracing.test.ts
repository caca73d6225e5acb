import { AgentRuntime, agentId } from "@agent-runtime/domain"
import { describe, expect, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Tracer from "effect/Tracer"
import { config, loadWith, makeTestEngine, runtimeLayer } from "./support/TestEngine.js"

const fns = { add: { params: ["i32"], results: ["i32"] } }
const behaviour = {
  add: (ctx: { state: Record<string, number> }, [x]: ReadonlyArray<unknown>) => [
    (ctx.state.n = (ctx.state.n ?? 0) + (x as number))
  ]
}

describe("tracing", () => {
  it.effect("public operations are spans named AgentRuntime.<op> when a tracer is installed", () => {
    const t = makeTestEngine()
    const names: Array<string> = []
    const recording = Tracer.make({
      span: (options) => {
        names.push(options.name)
        return new Tracer.NativeSpan(options)
      }
    })
    return Effect.gen(function* () {
      const runtime = yield* AgentRuntime
      const m = yield* loadWith(t, "counter", fns, behaviour)
      // Effect's native tracer: no backend can see a span, none is made
      yield* runtime.spawnAgent(agentId("a"), m, config())
      expect(yield* runtime.invoke(agentId("a"), "add", [1])).toEqual([1])
      expect(names.filter((n) => n.startsWith("AgentRuntime."))).toEqual([])
      yield* Effect.withTracer(
        Effect.gen(function* () {
          expect(yield* runtime.invoke(agentId("a"), "add", [2])).toEqual([3])
          yield* runtime.pause(agentId("a"))
          yield* runtime.resume(agentId("a"))
          yield* runtime.checkHealth
          yield* runtime.evictAgent(agentId("a"), "Manual")
        }),
        recording
      )
      expect(names.filter((n) => n.startsWith("AgentRuntime."))).toEqual([
        "AgentRuntime.invoke",
        "AgentRuntime.pause",
        "AgentRuntime.resume",
        "AgentRuntime.checkHealth",
        "AgentRuntime.evictAgent"
      ])
    }).pipe(Effect.provide(runtimeLayer(t)))
  })
})
