import { describe, expect, it } from "@effect/vitest"
import { edgeSuite, quantile, resolve, rowFromSamples, workerdBinary } from "../src/index.js"
import { checkShape } from "./support.js"

const smoke = { quick: true, smoke: true }

describe("edge suite (workerd, smoke counts)", () => {
  it.skipIf(workerdBinary() === undefined)(
    "builds its Worker with agent-runtime bundle + esbuild and measures raw vs runtime.invoke inside workerd",
    async () => {
      const result = await edgeSuite(smoke)
      checkShape(result)
      expect(result.rows.map((r) => r.name)).toEqual([
        "HTTP round trip to workerd, empty request (subtracted)",
        "raw direct export call in workerd: add(i32,i32)",
        "runtime.invoke in workerd (engine-edge): add(i32,i32)"
      ])
      const invoke = resolve([result]).find((r) => r.name.startsWith("runtime.invoke"))
      expect(invoke?.baseline).toBe("raw direct export call in workerd: add(i32,i32)")
      expect(invoke?.target?.text).toBe("≤ 1 µs median")
      // the empty request is a real HTTP round trip: well above zero
      expect(result.rows[0]!.median).toBeGreaterThan(0)
    },
    60_000
  )
})

describe("Samples", () => {
  it("quantiles interpolate between closest ranks", () => {
    expect(quantile([5, 1, 3, 2, 4], 0.5)).toBe(3)
    expect(quantile([1, 2, 3, 4], 0.5)).toBe(2.5)
    expect(quantile([1, 2, 3, 4, 5], 0.99)).toBeCloseTo(4.96)
    expect(Number.isNaN(quantile([], 0.5))).toBe(true)
  })

  it("a row needs finite, non-negative samples", () => {
    const row = rowFromSamples({ suite: "s", name: "r", samples: [0.002, 0.001, 0.003], batch: 10 })
    expect([row.median, row.samples, row.batch, row.unit]).toEqual([0.002, 3, 10, "ms"])
    expect(() => rowFromSamples({ suite: "s", name: "r", samples: [], batch: 1 })).toThrow(/no samples/)
    expect(() => rowFromSamples({ suite: "s", name: "r", samples: [Number.NaN], batch: 1 })).toThrow(/finite/)
  })
})
