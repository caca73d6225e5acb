/**
 * `ServerMetrics`: the runtime's metrics as Effect metrics (`effect/Metric`)
 * in a registry of this server's own, rendered in the Prometheus text format
 * (exposition format 0.0.4) by `effect/observability/PrometheusMetrics`
 * (issue 15 item 6).
 *
 * | metric | type | labels | unit |
 * |---|---|---|---|
 * | `agent_runtime_agents` | gauge | `state` (every `InstanceState`, plus `Passivated`) | agents |
 * | `agent_runtime_memory_total_bytes` | gauge | | bytes (the pool's budget) |
 * | `agent_runtime_memory_reserved_bytes` | gauge | | bytes |
 * | `agent_runtime_memory_used_bytes` | gauge | | bytes |
 * | `agent_runtime_pressure_level` | gauge | | 0 Normal, 1 Warning, 2 High, 3 Critical |
 * | `agent_runtime_invocations_total` | counter | | calls through this server |
 * | `agent_runtime_errors_total` | counter | `tag` (the error's `_tag`) | failed service calls |
 * | `agent_runtime_call_latency_ms` | histogram | | ms per invoke |
 *
 * Gauges are sampled from `AgentRuntime.stats` when the metrics are
 * rendered; counters and the histogram are updated by each call.
 *
 * @since 0.1.0
 */
import type { AgentRuntimeShape } from "@agent-runtime/domain"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Metric from "effect/Metric"
import * as PrometheusMetrics from "effect/observability/PrometheusMetrics"

/** Buckets of the call latency histogram, ms (0.05 ms … ~3.3 s). */
export const LATENCY_BOUNDARIES_MS: ReadonlyArray<number> = Metric.exponentialBoundaries({
  start: 0.05,
  factor: 3,
  count: 11
})

const PRESSURE = { Normal: 0, Warning: 1, High: 2, Critical: 3 } as const

/** The metrics of one server. */
export interface ServerMetricsShape {
  /** Records one finished invoke: its latency (ms) and, when it failed, its error tag. */
  readonly observeCall: (latencyMs: number, errorTag: string | undefined) => Effect.Effect<void>
  /** Counts a failed service call other than invoke by its error tag. */
  readonly observeError: (errorTag: string) => Effect.Effect<void>
  /** Samples the runtime's gauges, then renders every metric in the Prometheus text format. */
  readonly render: (runtime: AgentRuntimeShape) => Effect.Effect<string>
}

/** The `ServerMetrics` service key. */
export class ServerMetrics extends Context.Service<ServerMetrics, ServerMetricsShape>()(
  "@agent-runtime/server/ServerMetrics"
) {}

/** Builds the metrics over a fresh registry (two servers in one process never mix their series). */
export const make: Effect.Effect<ServerMetricsShape> = Effect.sync(() => {
  const registry: Metric.MetricRegistry = new Map()
  const own = <A, E, R>(effect: Effect.Effect<A, E, R>) =>
    Effect.provideService(effect, Metric.MetricRegistry, registry)

  const agents = Metric.gauge("agent_runtime_agents", { description: "Agents on this host by state" })
  const total = Metric.gauge("agent_runtime_memory_total_bytes", { description: "Memory budget of the pool, bytes" })
  const reserved = Metric.gauge("agent_runtime_memory_reserved_bytes", {
    description: "Memory reserved by agents, bytes"
  })
  const used = Metric.gauge("agent_runtime_memory_used_bytes", { description: "Linear memory in use by agents, bytes" })
  const pressure = Metric.gauge("agent_runtime_pressure_level", {
    description: "Memory pressure: 0 Normal, 1 Warning, 2 High, 3 Critical"
  })
  const invocations = Metric.counter("agent_runtime_invocations_total", {
    description: "Invokes through this server",
    incremental: true
  })
  const errors = Metric.counter("agent_runtime_errors_total", {
    description: "Failed service calls by error tag",
    incremental: true
  })
  const latency = Metric.histogram("agent_runtime_call_latency_ms", {
    description: "Invoke latency through this server, ms",
    boundaries: LATENCY_BOUNDARIES_MS
  })
  const errorsBy = (tag: string) => Metric.withAttributes(errors, { tag })

  return {
    observeCall: (latencyMs, errorTag) =>
      own(
        Effect.gen(function* () {
          yield* Metric.update(invocations, 1)
          yield* Metric.update(latency, latencyMs)
          if (errorTag !== undefined) yield* Metric.update(errorsBy(errorTag), 1)
        })
      ),
    observeError: (errorTag) => own(Metric.update(errorsBy(errorTag), 1)),
    render: (runtime) =>
      own(
        Effect.gen(function* () {
          const stats = yield* runtime.stats
          for (const [state, count] of Object.entries(stats.agentsByState)) {
            yield* Metric.update(Metric.withAttributes(agents, { state }), count)
          }
          yield* Metric.update(Metric.withAttributes(agents, { state: "Passivated" }), stats.passivated)
          yield* Metric.update(total, stats.memory.total)
          yield* Metric.update(reserved, stats.memory.reserved)
          yield* Metric.update(used, stats.memory.used)
          yield* Metric.update(pressure, PRESSURE[stats.memory.pressureLevel])
          return yield* PrometheusMetrics.format()
        })
      )
  }
})

/** The `ServerMetrics` layer. */
export const layer: Layer.Layer<ServerMetrics> = Layer.effect(ServerMetrics, make)
