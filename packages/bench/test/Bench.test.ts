import { describe, expect, it } from "@effect/vitest"
import { formatMs, resolve, table } from "../src/Report.js"
import { suites, type Row, type SuiteResult } from "../src/index.js"

const smoke = { quick: true, smoke: true }

/**
 * Every row has a finite median / p99 (non-negative for latencies: a memory
 * delta per agent may come out negative after a GC), at least one sample,
 * and a baseline that exists in its suite.
 */
const checkShape = (result: SuiteResult) => {
  expect(result.rows.length + result.notes.length).toBeGreaterThan(0)
  for (const row of result.rows) {
    expect(row.suite).toBe(result.suite)
    expect(Number.isFinite(row.median) && Number.isFinite(row.p99)).toBe(true)
    if (row.unit === "ms") expect(row.median >= 0 && row.p99 >= row.median).toBe(true)
    expect(row.samples).toBeGreaterThanOrEqual(1)
    if (row.baseline !== undefined) expect(result.rows.map((r: Row) => r.name)).toContain(row.baseline)
  }
  const resolved = resolve([result])
  for (const r of resolved) {
    if (r.baseline !== null) expect(r.ratio === null || Number.isFinite(r.ratio)).toBe(true)
    if (r.target !== null) expect(typeof r.target.met).toBe("boolean")
  }
}

describe("bench suites (smoke: each runs once with tiny counts)", () => {
  for (const suite of suites) {
    it(suite.name, async () => {
      const result = await suite.run(smoke)
      expect(result.suite).toBe(suite.name)
      checkShape(result)
      if (suite.name === "invoke") expect(result.rows.some((r) => r.name.startsWith("prepared call handle"))).toBe(true)
      if (suite.name === "peer") expect(result.rows.some((r) => r.name.startsWith("Extism runInWorker"))).toBe(true)
    }, 60_000)
  }
})

describe("Report", () => {
  const rows: ReadonlyArray<Row> = [
    { suite: "s", name: "raw", median: 0.002, p99: 0.004, samples: 10, batch: 100, unit: "ms" },
    {
      suite: "s",
      name: "ours",
      median: 0.006,
      p99: 0.01,
      samples: 10,
      batch: 100,
      unit: "ms",
      baseline: "raw",
      target: { text: "≤ 2×", met: (r) => r <= 2 }
    }
  ]

  it("ratios are median / baseline median of the same suite, targets reported, not asserted", () => {
    const [raw, ours] = resolve([{ suite: "s", rows, notes: [] }])
    expect(raw?.ratio).toBe(null)
    expect(ours?.ratio).toBeCloseTo(3)
    expect(ours?.target).toEqual({ text: "≤ 2×", met: false })
    expect(table([raw!, ours!])).toMatch(/\| s +\| ours +\| 6\.00 µs \| 10\.00 µs \| 10 ×100 \| 3\.00× +\| ✗ ≤ 2× \|/)
  })

  it("formats durations in the unit that reads best", () => {
    expect([formatMs(0.0000046), formatMs(0.0021), formatMs(12.5), formatMs(2500)]).toEqual(["4.6 ns", "2.10 µs", "12.50 ms", "2.50 s"])
  })
})
