// README example: one invoke's trace through OpenTelemetry. Run: pnpm --filter @agent-runtime/examples tracing-example
// Every public runtime operation is an Effect span `AgentRuntime.<op>` when a tracer is installed;
// `@effect/opentelemetry` installs one that exports to any OpenTelemetry span processor (here: in memory).
import { readAgent } from "@agent-runtime/agents"
import { AgentRuntime, AgentRuntimes, agentId, makeMetadata, MemoryBudget } from "@agent-runtime/domain"
import { NativeEngine } from "@agent-runtime/engine-native"
import * as Signing from "@agent-runtime/signing"
import { testOnlyTrustStore } from "@agent-runtime/signing/test-keys"
import * as OtelTracer from "@effect/opentelemetry/OtelTracer"
import {
  BasicTracerProvider,
  InMemorySpanExporter,
  type ReadableSpan,
  SimpleSpanProcessor
} from "@opentelemetry/sdk-trace-base"
import { Effect, Layer } from "effect"

/** One finished span, as the exporter saw it. */
export interface SpanRecord {
  readonly name: string
  readonly traceId: string
  readonly spanId: string
  readonly parentSpanId: string | undefined
  readonly attributes: Readonly<Record<string, unknown>>
  /** OpenTelemetry's status code: 0 unset, 1 ok, 2 error. */
  readonly status: number
}

const record = (span: ReadableSpan): SpanRecord => ({
  name: span.name,
  traceId: span.spanContext().traceId,
  spanId: span.spanContext().spanId,
  parentSpanId: span.parentSpanContext?.spanId,
  attributes: span.attributes,
  status: span.status.code
})

/** Loads, spawns and invokes `counter` inside the caller's span `example.request`; returns the exported spans. */
export const traceOneInvoke = Effect.gen(function* () {
  const exporter = new InMemorySpanExporter()
  const provider = new BasicTracerProvider({ spanProcessors: [new SimpleSpanProcessor(exporter)] })
  const tracing = OtelTracer.layer.pipe(Layer.provide(Layer.succeed(OtelTracer.OtelTracerProvider, provider)))
  const request = Effect.gen(function* () {
    const runtime = yield* AgentRuntime
    const moduleId = yield* runtime.loadModule(
      readAgent("counter"),
      makeMetadata({ name: "counter", version: "1.0.0" })
    )
    yield* runtime.spawnAgent(agentId("counter-1"), moduleId, { memoryLimit: 16 * MemoryBudget.MiB })
    yield* runtime.invoke(agentId("counter-1"), "add", [41])
    yield* Effect.flip(runtime.invoke(agentId("counter-1"), "add", [41n])) // SignatureMismatch: an error span
  }).pipe(Effect.withSpan("example.request"))
  yield* request.pipe(
    Effect.provide(
      AgentRuntimes.layerMemory().pipe(
        Layer.provide(Layer.mergeAll(NativeEngine.layer, Signing.layer({ trustStore: testOnlyTrustStore() })))
      )
    ),
    Effect.provide(tracing)
  )
  yield* Effect.promise(() => provider.forceFlush())
  return exporter.getFinishedSpans().map(record)
})

/** The spans as an indented tree (children under their parent, in the order they ended). */
export const render = (spans: ReadonlyArray<SpanRecord>): string => {
  const lines: Array<string> = []
  const walk = (parent: string | undefined, depth: number) => {
    for (const span of spans.filter((s) => s.parentSpanId === parent)) {
      const attributes = Object.entries(span.attributes)
        .map(([k, v]) => `${k}=${String(v)}`)
        .join(" ")
      lines.push(
        `${"  ".repeat(depth)}${span.name}${attributes ? ` ${attributes}` : ""}${span.status === 2 ? " [error]" : ""}`
      )
      walk(span.spanId, depth + 1)
    }
  }
  walk(undefined, 0)
  return lines.join("\n")
}

if (import.meta.url === `file://${process.argv[1]}`) {
  Effect.runPromise(traceOneInvoke).then((spans) => console.log(render(spans)))
}
