import { describe, expect, it } from "@effect/vitest"
import { formatMs, resolve, table } from "../src/Report.js"
import { suites, type Row } from "../src/index.js"
import { checkShape } from "./support.js"

const smoke = { quick: true, smoke: true }

/** Suites driving another runtime (Chromium, workerd) have their own smoke tests. */
const external = new Set(["browser", "edge"])

describe("bench suites (smoke: each runs once with tiny counts)", () => {
  for (const suite of suites.filter((s) => !external.has(s.name))) {
    it(
      suite.name,
      async () => {
        const result = await suite.run(smoke)
        expect(result.suite).toBe(suite.name)
        checkShape(result)
        if (suite.name === "invoke")
          expect(result.rows.some((r) => r.name.startsWith("prepared call handle"))).toBe(true)
        if (suite.name === "peer") expect(result.rows.some((r) => r.name.startsWith("Extism runInWorker"))).toBe(true)
        if (suite.name === "multihost") expect(result.rows.some((r) => r.name.startsWith("live agents"))).toBe(true)
        if (suite.name === "swarm") {
          const db = result.rows.find((r) => r.name.includes("--db (SQLite"))
          expect(db?.baseline).toBe("12 agents, in memory")
          expect(db?.median).toBeGreaterThan(0)
          expect(result.rows.find((r) => r.name.includes("SQLite file"))?.median).toBeGreaterThan(0)
        }
      },
      // the suites that start child processes (tsx) take minutes on a loaded machine
      suite.name === "multihost" || suite.name === "swarm" || suite.name === "scale" ? 180_000 : 60_000
    )
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
    expect([formatMs(0.0000046), formatMs(0.0021), formatMs(12.5), formatMs(2500)]).toEqual([
      "4.6 ns",
      "2.10 µs",
      "12.50 ms",
      "2.50 s"
    ])
  })
})
