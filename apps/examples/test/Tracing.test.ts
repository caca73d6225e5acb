import { describe, expect, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import { traceOneInvoke } from "../src/tracing-example.js"

describe("tracing with @effect/opentelemetry", () => {
  it.effect("one invoke's trace reaches an OpenTelemetry exporter", () =>
    Effect.gen(function* () {
      const spans = yield* traceOneInvoke
      const request = spans.find((s) => s.name === "example.request")
      expect(request).toBeDefined()
      const children = spans.filter((s) => s.parentSpanId === request!.spanId).map((s) => s.name)
      expect(children).toEqual([
        "AgentRuntime.loadModule",
        "AgentRuntime.spawnAgent",
        "AgentRuntime.invoke",
        "AgentRuntime.invoke"
      ])
      const [ok, failed] = spans.filter((s) => s.name === "AgentRuntime.invoke")
      for (const span of [ok!, failed!]) {
        expect(span.traceId).toBe(request!.traceId)
        expect(span.parentSpanId).toBe(request!.spanId)
        expect(span.attributes).toMatchObject({ "agent.id": "counter-1", "agent.export": "add" })
      }
      expect(ok!.status).not.toBe(2)
      expect(failed!.status).toBe(2) // SignatureMismatch fails the span
    })
  )

  it.effect("every runtime span of the request hangs under the caller's span; shutdown is the layer's own", () =>
    Effect.gen(function* () {
      const spans = yield* traceOneInvoke
      const roots = spans.filter((s) => s.parentSpanId === undefined).map((s) => s.name)
      expect(roots).toEqual(["example.request", "AgentRuntime.shutdown"]) // the runtime layer's release
    })
  )
})
