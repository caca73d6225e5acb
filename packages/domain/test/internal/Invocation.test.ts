import { SignatureMismatch } from "@agent-runtime/domain"
import type { FuncType, ValueType } from "@agent-runtime/wasm-binary"
import { describe, expect, it } from "@effect/vitest"
import { argsChecker, checkArgs } from "../../src/internal/Invocation.js"

/** Values around every boundary the checks draw, of every JavaScript type an argument may have. */
const values: ReadonlyArray<unknown> = [
  0,
  1,
  -1,
  1.5,
  -2_147_483_648,
  -2_147_483_649,
  4_294_967_295,
  4_294_967_296,
  Number.NaN,
  Number.POSITIVE_INFINITY,
  0n,
  1n,
  -1n,
  -(2n ** 63n),
  -(2n ** 63n) - 1n,
  2n ** 63n - 1n,
  2n ** 63n,
  2n ** 64n - 1n,
  2n ** 64n,
  -(2n ** 64n),
  2n ** 200n,
  "1",
  null,
  undefined,
  true,
  {},
  () => 0
]

const types: ReadonlyArray<ValueType> = ["i32", "i64", "f32", "f64", "funcref", "externref"]

const verdict = (e: SignatureMismatch | undefined) => (e === undefined ? "ok" : `${e.index}: ${e.reason}`)

describe("argsChecker (the specialised argument check)", () => {
  it("decides exactly as checkArgs for every type, arity ≤ 3 and boundary value", () => {
    let compared = 0
    for (const t of types) {
      const one: FuncType = { params: [t], results: [] }
      const two: FuncType = { params: ["i32", t], results: [] }
      const three: FuncType = { params: [t, "i64", t], results: [] }
      for (const sig of [one, two, three]) {
        const check = argsChecker(sig, "f")
        for (const v of values) {
          const args = sig.params.map((p) => (p === t ? v : p === "i64" ? 5n : 7)) as never
          expect(verdict(check(args))).toBe(verdict(checkArgs(sig, "f", args)))
          compared++
        }
      }
    }
    const noParams: FuncType = { params: [], results: [] }
    expect(verdict(argsChecker(noParams, "f")([] as never))).toBe("ok")
    expect(argsChecker(noParams, "f")([1] as never)).toBeInstanceOf(SignatureMismatch)
    expect(compared).toBe(types.length * 3 * values.length)
  })

  it("accepts exactly [-2^63, 2^64 - 1] for i64", () => {
    const check = argsChecker({ params: ["i64"], results: [] }, "f")
    for (const [v, ok] of [
      [-(2n ** 63n), true],
      [-(2n ** 63n) - 1n, false],
      [2n ** 63n - 1n, true],
      [2n ** 63n, true],
      [2n ** 64n - 1n, true],
      [2n ** 64n, false],
      [5, false]
    ] as const) {
      expect(check([v] as never) === undefined).toBe(ok)
    }
  })
})
