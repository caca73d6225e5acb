/**
 * Measuring one operation with tinybench, and the row a measurement becomes.
 *
 * Every task body measures its own timed window and returns the elapsed ms
 * for `batch` operations, so setup that must not be timed (building a fresh
 * runtime, evicting the agents a sample spawned) stays outside the window,
 * and operations far below the timer's resolution (a direct export call is
 * a few ns) are timed in batches. tinybench receives the per-operation mean
 * of each batch as the sample (`overriddenDuration`) and the whole
 * iteration's wall time as its cost (`overriddenIterationCost`), so its time
 * budget stays honest. Samples are in ms per operation.
 *
 * @since 0.1.0
 */
import { Bench } from "tinybench"

/**
 * How long to measure: `quick` is the CI smoke mode (`pnpm bench -- --quick`);
 * `smoke` (the package's own test) runs every operation a couple of times
 * with tiny counts, only to prove the suites still run.
 */
export interface RunOptions {
  readonly quick: boolean
  readonly smoke?: boolean | undefined
}

/** A count for the mode: `full`, `quick`, or (smoke test) `smoke` (default: quick / 100, at least 1). */
export const size = (
  options: RunOptions,
  full: number,
  quick: number,
  smoke = Math.max(1, Math.ceil(quick / 100))
): number => (options.smoke === true ? smoke : options.quick ? quick : full)

/** A target from the issue, reported next to the ratio and never asserted. */
export interface Target {
  /** What the issue asks, e.g. `"≤ 1.25× raw compile"`. */
  readonly text: string
  /** Whether this run met it, from the row's ratio and median (ms). */
  readonly met: (ratio: number, median: number) => boolean
}

/** One measured operation. Times are ms per operation. */
export interface Row {
  readonly suite: string
  readonly name: string
  /** Median, ms per operation (for `unit: "count"` rows: the value). */
  readonly median: number
  /** 99th percentile, ms per operation. */
  readonly p99: number
  /** Number of samples (each a batch mean for batched operations). */
  readonly samples: number
  /** Operations per sample. */
  readonly batch: number
  /** `"ms"` for latencies, `"count"` / `"bytes"` for values (scale suite). */
  readonly unit: "ms" | "count" | "bytes"
  /** Name of the row of the same suite this row is divided by; absent for baselines. */
  readonly baseline?: string | undefined
  readonly target?: Target | undefined
  readonly note?: string | undefined
}

/** What a suite returns: its rows and what it could not measure, and why. */
export interface SuiteResult {
  readonly suite: string
  readonly rows: ReadonlyArray<Row>
  readonly notes: ReadonlyArray<string>
}

/** How one row is measured. */
export interface Measurement {
  readonly suite: string
  readonly name: string
  /** Operations per sample (default 1). */
  readonly batch?: number
  /** Runs `batch` operations and returns the ms they took (the timed window). */
  readonly run: (batch: number) => number | Promise<number>
  readonly baseline?: string
  readonly target?: Target
  readonly note?: string
  /** Minimum samples (default: 5 quick, 20 full). */
  readonly minSamples?: number
  /** Time budget in ms (default: 150 quick, 1000 full). */
  readonly timeMs?: number
}

/** Measures one row with tinybench. Throws when the operation throws (the row is not faked). */
export const measure = async (m: Measurement, options: RunOptions): Promise<Row> => {
  const batch = m.batch ?? 1
  const smoke = options.smoke === true
  const bench = new Bench({
    name: m.name,
    time: smoke ? 0 : (m.timeMs ?? (options.quick ? 150 : 1000)),
    iterations: smoke ? 2 : (m.minSamples ?? (options.quick ? 5 : 20)),
    warmup: !smoke,
    warmupTime: options.quick ? 30 : 200,
    warmupIterations: options.quick ? 1 : 3,
    throws: true
  })
  bench.add(m.name, async () => {
    const start = performance.now()
    const elapsed = await m.run(batch)
    const wall = performance.now() - start
    return { overriddenDuration: elapsed / batch, overriddenIterationCost: wall }
  })
  await bench.run()
  const task = bench.tasks[0]
  const result = task?.result
  if (result === undefined || !("latency" in result)) {
    throw new Error(`${m.suite} / ${m.name}: tinybench returned no statistics (${result?.state ?? "no task"})`)
  }
  return {
    suite: m.suite,
    name: m.name,
    median: result.latency.p50,
    p99: result.latency.p99,
    samples: result.latency.samplesCount,
    batch,
    unit: "ms",
    baseline: m.baseline,
    target: m.target,
    note: m.note
  }
}

/** Times a synchronous body `batch` times; returns the elapsed ms. */
export const timeSync = (batch: number, body: (i: number) => void): number => {
  const start = performance.now()
  for (let i = 0; i < batch; i++) body(i)
  return performance.now() - start
}

/**
 * A timing loop of its own for one row: `batch` calls `f(...args)` (the
 * arguments passed one by one, at most 4; `fuel`: `fuel.global.value =
 * fuel.value` before each call), each result kept (`consume`); returns the
 * elapsed ms. The loop is compiled from its own source (`new Function`, the
 * row's `name` in a comment, so no two rows share compiled code or type
 * feedback): its call site sees one callee — monomorphic — as a caller
 * holding one function sees it. A loop shared by several rows (`timeSync`
 * with a closure per row: closures of one function literal share their
 * feedback) sees every row's callee; that polymorphic site added ≈ 45 ns to
 * a ≈ 85 ns prepared call (BENCHMARKS.md, issue 13 wave 6).
 */
export const ownLoop = (
  name: string,
  f: (...args: Array<never>) => unknown,
  args: ReadonlyArray<unknown>,
  fuel?: { readonly global: WebAssembly.Global; readonly value: unknown }
): ((batch: number) => number) => {
  if (args.length > 4) throw new Error(`ownLoop: at most 4 arguments, got ${args.length} (${name})`)
  const params = args.map((_, i) => `a${i}`)
  const source = [
    `"use strict"`,
    "return function loop(batch) {",
    // the row's name, printable ASCII only (a line terminator would end the comment)
    `  // ${name.replace(/[^\x20-\x7e]/g, "?")}`,
    "  const start = performance.now()",
    "  for (let i = 0; i < batch; i++) {",
    fuel === undefined ? "" : "    fuelGlobal.value = fuelValue",
    `    consume(f(${params.join(", ")}))`,
    "  }",
    "  return performance.now() - start",
    "}"
  ].join("\n")
  const make = new Function("f", "consume", "fuelGlobal", "fuelValue", ...params, source) as (
    ...a: Array<unknown>
  ) => (batch: number) => number
  return make(f, consume, fuel?.global, fuel?.value, ...args)
}

/** A row that is a value, not a latency (scale suite). */
export const valueRow = (input: {
  readonly suite: string
  readonly name: string
  readonly value: number
  readonly unit: "count" | "bytes"
  readonly baseline?: string
  readonly target?: Target
  readonly note?: string
  /** When the value is the median of several samples: the largest sample (reported as p99) and their count. */
  readonly max?: number
  readonly samples?: number
}): Row => ({
  suite: input.suite,
  name: input.name,
  median: input.value,
  p99: input.max ?? input.value,
  samples: input.samples ?? 1,
  batch: 1,
  unit: input.unit,
  baseline: input.baseline,
  target: input.target,
  note: input.note
})

/** Keeps a value alive so the JIT cannot drop the call that produced it. */
export let sink: unknown = undefined
export const consume = (value: unknown): void => {
  sink = value
}
