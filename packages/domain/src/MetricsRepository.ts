/**
 * The `MetricsRepository` port (spec "Repository Interfaces /
 * MetricsRepository"): records `RuntimeMetrics` samples, queries them by time
 * range, and aggregates them into buckets of a granularity.
 *
 * `layerMemory` keeps a bounded ring of samples (default 10 000). Adapters:
 * SQLite (Node), IndexedDB (browser). Times are ms since the Unix epoch;
 * memory in bytes; counters are cumulative since the runtime started.
 *
 * @since 0.1.0
 */
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import type { PressureLevel } from "./PressureLevel.js"
import type { RepositoryError } from "./RuntimeError.js"

/** One sample of the runtime's state (spec `RuntimeMetrics`). */
export interface RuntimeMetrics {
  readonly timestamp: number
  readonly agents: number
  readonly memoryUsed: number
  readonly memoryTotal: number
  readonly pressureLevel: PressureLevel
  /** Cumulative counters. */
  readonly invocations: number
  readonly invocationErrors: number
  readonly evictions: number
  readonly cacheHits: number
  readonly cacheMisses: number
}

/** A half-open time range `[from, to)` in ms since the epoch. */
export interface TimeRange {
  readonly from: number
  readonly to: number
}

/** Samples of one bucket `[bucketStart, bucketStart + granularity)` (spec `AggregatedMetrics`). */
export interface AggregatedMetrics {
  readonly bucketStart: number
  readonly bucketEnd: number
  readonly samples: number
  readonly agentsAvg: number
  readonly agentsMax: number
  readonly memoryUsedAvg: number
  readonly memoryUsedMax: number
  /** Invocations during the bucket (difference of the cumulative counter, last − first sample). */
  readonly invocations: number
  readonly invocationErrors: number
  readonly evictions: number
}

export interface MetricsRepositoryShape {
  readonly record: (metrics: RuntimeMetrics) => Effect.Effect<void, RepositoryError>
  /** Samples with `from ≤ timestamp < to`, oldest first. */
  readonly query: (range: TimeRange) => Effect.Effect<ReadonlyArray<RuntimeMetrics>, RepositoryError>
  /** Buckets of `granularity` ms aligned to multiples of it; empty buckets are omitted. */
  readonly aggregate: (
    range: TimeRange,
    granularity: number
  ) => Effect.Effect<ReadonlyArray<AggregatedMetrics>, RepositoryError>
}

/** The `MetricsRepository` service key. */
export class MetricsRepository extends Context.Service<MetricsRepository, MetricsRepositoryShape>()(
  "@agent-runtime/domain/MetricsRepository"
) {}

/**
 * Aggregates samples (sorted oldest first) into buckets — the reference
 * semantics every adapter must match (SQL adapters compute the same in SQL).
 */
export const aggregateSamples = (
  samples: ReadonlyArray<RuntimeMetrics>,
  granularity: number
): ReadonlyArray<AggregatedMetrics> => {
  if (!(granularity > 0)) return []
  const buckets = new Map<number, Array<RuntimeMetrics>>()
  for (const s of samples) {
    const start = Math.floor(s.timestamp / granularity) * granularity
    let b = buckets.get(start)
    if (b === undefined) buckets.set(start, (b = []))
    b.push(s)
  }
  return [...buckets.entries()]
    .sort(([a], [b]) => a - b)
    .map(([bucketStart, b]) => {
      const first = b[0]!
      const last = b[b.length - 1]!
      const sum = (f: (m: RuntimeMetrics) => number) => b.reduce((acc, m) => acc + f(m), 0)
      const max = (f: (m: RuntimeMetrics) => number) => b.reduce((acc, m) => Math.max(acc, f(m)), -Infinity)
      return {
        bucketStart,
        bucketEnd: bucketStart + granularity,
        samples: b.length,
        agentsAvg: sum((m) => m.agents) / b.length,
        agentsMax: max((m) => m.agents),
        memoryUsedAvg: sum((m) => m.memoryUsed) / b.length,
        memoryUsedMax: max((m) => m.memoryUsed),
        invocations: last.invocations - first.invocations,
        invocationErrors: last.invocationErrors - first.invocationErrors,
        evictions: last.evictions - first.evictions
      }
    })
}

/** An in-memory ring of at most `capacity` samples (oldest dropped first). */
export const makeMemory = (capacity = 10_000): MetricsRepositoryShape => {
  const ring: Array<RuntimeMetrics> = []
  const inRange = (range: TimeRange) => ring.filter((m) => m.timestamp >= range.from && m.timestamp < range.to)
  return {
    record: (metrics) =>
      Effect.sync(() => {
        // keep the ring sorted by time even if samples arrive out of order
        let i = ring.length
        while (i > 0 && ring[i - 1]!.timestamp > metrics.timestamp) i--
        ring.splice(i, 0, metrics)
        if (ring.length > capacity) ring.splice(0, ring.length - capacity)
      }),
    query: (range) => Effect.sync(() => inRange(range)),
    aggregate: (range, granularity) => Effect.sync(() => aggregateSamples(inRange(range), granularity))
  }
}

/** The in-memory `MetricsRepository` layer (the embedded default). */
export const layerMemory: Layer.Layer<MetricsRepository> = Layer.sync(MetricsRepository, () => makeMemory())
