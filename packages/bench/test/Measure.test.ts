import { describe, expect, it } from "@effect/vitest"
import { ownLoop, sink } from "../src/Measure.js"

describe("Measure.ownLoop (a timing loop of its own per row)", () => {
  it("calls f batch times with the arguments one by one, keeps each result, and returns the elapsed ms", () => {
    for (const args of [[], [1], [1, 2n], ["a", "b", "c"], [1, 2, 3, 4]] as const) {
      const seen: Array<ReadonlyArray<unknown>> = []
      const f = (...a: Array<unknown>) => {
        seen.push(a)
        return seen.length
      }
      const loop = ownLoop(`row ${args.length}`, f, args)
      const ms = loop(7)
      expect(ms).toBeGreaterThanOrEqual(0)
      expect(seen).toHaveLength(7)
      for (const a of seen) expect(a).toEqual(args)
      expect(sink).toBe(7) // the last result was consumed
    }
  })

  it("sets the fuel global before every call", () => {
    const global = { value: 0n }
    const before: Array<bigint> = []
    const f = () => {
      before.push(global.value)
      global.value = 5n // the call spends fuel
    }
    ownLoop("fuel", f, [], { global: global as unknown as WebAssembly.Global, value: 100n })(3)
    expect(before).toEqual([100n, 100n, 100n])
  })

  it("compiles a loop per row: two rows never share the function (nor its type feedback)", () => {
    const f = () => 1
    const a = ownLoop("row a", f, [])
    const b = ownLoop("row b", f, [])
    expect(a).not.toBe(b)
    expect(a.toString()).not.toBe(b.toString())
    // a name that could end the comment stays inside it
    expect(ownLoop("x\n throw 1\u2028 throw 2\r", f, [])(2)).toBeGreaterThanOrEqual(0)
  })

  it("refuses more than 4 arguments (the loop passes them one by one)", () => {
    expect(() => ownLoop("five", () => 0, [1, 2, 3, 4, 5])).toThrow(/at most 4/)
  })
})
