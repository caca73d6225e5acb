/**
 * Shared by the smoke tests: the shape every suite result must have.
 */
import { expect } from "@effect/vitest"
import { resolve } from "../src/Report.js"
import type { Row, SuiteResult } from "../src/index.js"

/**
 * Every row has a finite median / p99 (non-negative for latencies: a memory
 * delta per agent may come out negative after a GC), at least one sample,
 * and a baseline that exists in its suite.
 */
export const checkShape = (result: SuiteResult) => {
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
