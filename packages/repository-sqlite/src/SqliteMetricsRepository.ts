/**
 * `MetricsRepository` on SQLite (spec "Repository Interfaces /
 * MetricsRepository"): one `metrics` row per `RuntimeMetrics` sample,
 * indexed by `(timestamp, recording order)`.
 *
 * `query` returns samples with `from ≤ timestamp < to`, oldest first, equal
 * timestamps in recording order. `aggregate` computes the buckets in SQL —
 * `GROUP BY floor(timestamp / granularity) * granularity`, window functions
 * for the first and last sample of a bucket — with the semantics of the
 * domain's `MetricsRepositories.aggregateSamples` (the reference): buckets
 * aligned to multiples of the granularity (ms), empty buckets omitted, a
 * granularity that is not positive gives no buckets, averages are
 * sum / count, counters are last − first. Results are equal to the
 * reference for the domain's integer fields (agents, bytes, counters below
 * 2^53).
 *
 * Errors: `RepositoryError { operation: "metrics.record" | "metrics.query" |
 * "metrics.aggregate", reason }` with SQLite's code (`SQLITE_BUSY`,
 * `SQLITE_CORRUPT`, `SQLITE_FULL`, `SQLITE_READONLY`; `SQLITE_CONSTRAINT_NOTNULL`
 * for a NaN field), or a stored pressure level that is not one.
 *
 * @since 0.1.0
 */
import {
  MetricsRepository,
  PressureLevel,
  type AggregatedMetrics,
  type MetricsRepositories,
  type RepositoryError,
  type RuntimeMetrics,
  type TimeRange
} from "@agent-runtime/domain"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Schema from "effect/Schema"
import { attempt, Invalid, read, write } from "./internal/sql.js"
import * as SqliteDatabase from "./SqliteDatabase.js"

interface SampleRow {
  readonly timestamp: number
  readonly agents: number
  readonly memory_used: number
  readonly memory_total: number
  readonly pressure_level: string
  readonly invocations: number
  readonly invocation_errors: number
  readonly evictions: number
  readonly cache_hits: number
  readonly cache_misses: number
}

interface BucketRow {
  readonly bucket: number | null
  readonly samples: number
  readonly agents_avg: number
  readonly agents_max: number
  readonly memory_used_avg: number
  readonly memory_used_max: number
  readonly invocations: number
  readonly invocation_errors: number
  readonly evictions: number
}

const isPressureLevel = Schema.is(PressureLevel)

const BUCKET = "floor(timestamp / @g) * @g"

/** The aggregation: one row per non-empty bucket, oldest first. */
const AGGREGATE_SQL = `
  WITH s AS (
    SELECT ${BUCKET} AS bucket, agents, memory_used,
      first_value(invocations) OVER w AS inv_first, last_value(invocations) OVER w AS inv_last,
      first_value(invocation_errors) OVER w AS err_first, last_value(invocation_errors) OVER w AS err_last,
      first_value(evictions) OVER w AS ev_first, last_value(evictions) OVER w AS ev_last
    FROM metrics
    WHERE timestamp >= @from AND timestamp < @to
    WINDOW w AS (
      PARTITION BY ${BUCKET} ORDER BY timestamp, seq
      ROWS BETWEEN UNBOUNDED PRECEDING AND UNBOUNDED FOLLOWING
    )
  )
  SELECT bucket,
    COUNT(*) AS samples,
    CAST(SUM(agents) AS REAL) / COUNT(*) AS agents_avg,
    MAX(agents) AS agents_max,
    CAST(SUM(memory_used) AS REAL) / COUNT(*) AS memory_used_avg,
    MAX(memory_used) AS memory_used_max,
    MAX(inv_last) - MAX(inv_first) AS invocations,
    MAX(err_last) - MAX(err_first) AS invocation_errors,
    MAX(ev_last) - MAX(ev_first) AS evictions
  FROM s
  GROUP BY bucket
  ORDER BY bucket
`

/** Builds the repository on an open database (statements are prepared once). */
export const make = (
  database: SqliteDatabase.SqliteDatabaseShape
): Effect.Effect<MetricsRepositories.MetricsRepositoryShape, RepositoryError> =>
  attempt("open", () => {
    const { db } = database
    const insert = db.prepare(
      `INSERT INTO metrics (timestamp, agents, memory_used, memory_total, pressure_level, invocations,
         invocation_errors, evictions, cache_hits, cache_misses)
       VALUES (@timestamp, @agents, @memoryUsed, @memoryTotal, @pressureLevel, @invocations,
         @invocationErrors, @evictions, @cacheHits, @cacheMisses)`
    )
    const select = db.prepare<[{ from: number; to: number }], SampleRow>(
      `SELECT timestamp, agents, memory_used, memory_total, pressure_level, invocations, invocation_errors,
         evictions, cache_hits, cache_misses
       FROM metrics WHERE timestamp >= @from AND timestamp < @to ORDER BY timestamp, seq`
    )
    const aggregateStatement = db.prepare<[{ from: number; to: number; g: number }], BucketRow>(AGGREGATE_SQL)

    const record = (m: RuntimeMetrics): Effect.Effect<void, RepositoryError> =>
      write(db, "metrics.record", () => {
        insert.run({
          timestamp: m.timestamp,
          agents: m.agents,
          memoryUsed: m.memoryUsed,
          memoryTotal: m.memoryTotal,
          pressureLevel: m.pressureLevel,
          invocations: m.invocations,
          invocationErrors: m.invocationErrors,
          evictions: m.evictions,
          cacheHits: m.cacheHits,
          cacheMisses: m.cacheMisses
        })
      })

    const query = (range: TimeRange): Effect.Effect<ReadonlyArray<RuntimeMetrics>, RepositoryError> =>
      read(db, "metrics.query", () =>
        select.all({ from: range.from, to: range.to }).map((r): RuntimeMetrics => {
          if (!isPressureLevel(r.pressure_level))
            throw new Invalid(`stored pressure level ${JSON.stringify(r.pressure_level)} is not one`)
          return {
            timestamp: r.timestamp,
            agents: r.agents,
            memoryUsed: r.memory_used,
            memoryTotal: r.memory_total,
            pressureLevel: r.pressure_level,
            invocations: r.invocations,
            invocationErrors: r.invocation_errors,
            evictions: r.evictions,
            cacheHits: r.cache_hits,
            cacheMisses: r.cache_misses
          }
        })
      )

    const aggregate = (
      range: TimeRange,
      granularity: number
    ): Effect.Effect<ReadonlyArray<AggregatedMetrics>, RepositoryError> =>
      !(granularity > 0)
        ? Effect.succeed([])
        : read(db, "metrics.aggregate", () =>
            aggregateStatement.all({ from: range.from, to: range.to, g: granularity }).map((r): AggregatedMetrics => {
              // SQLite turns NaN into NULL (an infinite granularity): the reference gives NaN
              const bucketStart = r.bucket ?? Number.NaN
              return {
                bucketStart,
                bucketEnd: bucketStart + granularity,
                samples: r.samples,
                agentsAvg: r.agents_avg,
                agentsMax: r.agents_max,
                memoryUsedAvg: r.memory_used_avg,
                memoryUsedMax: r.memory_used_max,
                invocations: r.invocations,
                invocationErrors: r.invocation_errors,
                evictions: r.evictions
              }
            })
          )

    return { record, query, aggregate } satisfies MetricsRepositories.MetricsRepositoryShape
  })

/** `MetricsRepository` on the shared `SqliteDatabase`. */
export const layerFromDatabase: Layer.Layer<MetricsRepository, RepositoryError, SqliteDatabase.SqliteDatabase> =
  Layer.effect(MetricsRepository, SqliteDatabase.SqliteDatabase.use(make))

/** `MetricsRepository` on its own connection to the database at `options.path` (closed with the layer). */
export const layer = (options: SqliteDatabase.Options): Layer.Layer<MetricsRepository, RepositoryError> =>
  Layer.provide(layerFromDatabase, SqliteDatabase.layer(options))
