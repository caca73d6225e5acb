/**
 * Rows from raw samples measured outside this process (the browser and
 * edge suites: Chromium and workerd return per-operation samples, the
 * driver turns them into rows like tinybench's).
 *
 * @since 0.1.0
 */
import type { Row, Target } from "./Measure.js"

/** The q-quantile (0..1) of `values` by linear interpolation between closest ranks; NaN when empty. */
export const quantile = (values: ReadonlyArray<number>, q: number): number => {
  if (values.length === 0) return Number.NaN
  const sorted = [...values].sort((a, b) => a - b)
  const pos = (sorted.length - 1) * q
  const lo = Math.floor(pos)
  const hi = Math.ceil(pos)
  const a = sorted[lo]!
  const b = sorted[hi]!
  return a + (b - a) * (pos - lo)
}

/** A latency row (ms per operation) from per-operation samples; throws when there are none. */
export const rowFromSamples = (input: {
  readonly suite: string
  readonly name: string
  readonly samples: ReadonlyArray<number>
  readonly batch: number
  readonly baseline?: string | undefined
  readonly target?: Target | undefined
  readonly note?: string | undefined
}): Row => {
  if (input.samples.length === 0) throw new Error(`${input.suite} / ${input.name}: no samples`)
  if (!input.samples.every((s) => Number.isFinite(s) && s >= 0))
    throw new Error(`${input.suite} / ${input.name}: a sample is not a finite non-negative time`)
  return {
    suite: input.suite,
    name: input.name,
    median: quantile(input.samples, 0.5),
    p99: quantile(input.samples, 0.99),
    samples: input.samples.length,
    batch: input.batch,
    unit: "ms",
    baseline: input.baseline,
    target: input.target,
    note: input.note
  }
}
