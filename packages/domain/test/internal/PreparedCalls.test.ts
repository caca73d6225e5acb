import type { FuncType, ValueType } from "@agent-runtime/wasm-binary"
import { describe, expect, it } from "@effect/vitest"
import { checkArgs } from "../../src/internal/Invocation.js"
import { fastArgs } from "../../src/internal/PreparedCalls.js"
import type { WasmValue } from "../../src/WasmValue.js"

/** Values at and around every type's bounds, and of the wrong kinds. */
const samples: ReadonlyArray<unknown> = [
  0,
  -1,
  1.5,
  -2_147_483_648,
  -2_147_483_649,
  4_294_967_295,
  4_294_967_296,
  Number.NaN,
  Number.POSITIVE_INFINITY,
  0n,
  -1n,
  -(2n ** 63n),
  -(2n ** 63n) - 1n,
  2n ** 63n,
  2n ** 64n - 1n,
  2n ** 64n,
  "7",
  null,
  undefined,
  () => 0,
  {},
  true
]

const types: ReadonlyArray<ValueType> = ["i32", "i64", "f32", "f64", "funcref", "externref", "v128"]

/** A seeded sequence, so a failure reproduces. */
const sequence = (seed: number) => () => (seed = (Math.imul(seed, 1664525) + 1013904223) >>> 0)

describe("fastArgs: the prepared call's entry accepts exactly what checkArgs accepts", () => {
  it("for 0–4 parameters of every type, on boundary values and wrong counts: fast only when checkArgs accepts", () => {
    const next = sequence(0x5eed)
    let fast = 0
    let slow = 0
    for (let trial = 0; trial < 3_000; trial++) {
      const arity = next() % 5
      const signature: FuncType = {
        params: Array.from({ length: arity }, () => types[next() % types.length]!),
        results: []
      }
      const seen: Array<{ args: ReadonlyArray<WasmValue>; checked: boolean; copy: Array<WasmValue> }> = []
      const entry = fastArgs(signature, (args, checked) => {
        seen.push({ args, checked, copy: [...args] })
        return []
      })
      // mostly the right count, sometimes one more or one less
      const count = next() % 4 === 0 ? Math.max(0, arity + (next() % 2 === 0 ? 1 : -1)) : arity
      const given = Array.from({ length: count }, () => samples[next() % samples.length]) as Array<WasmValue>
      entry(...given)
      expect(seen).toHaveLength(1)
      const [call] = seen
      expect(call!.copy).toEqual(given) // the values run saw, in order
      const accepted = checkArgs(signature, "f", given) === undefined
      if (call!.checked) {
        fast++
        expect(accepted, `${JSON.stringify(signature)} ${String(given)}`).toBe(true)
        expect(call!.args.length).toBe(arity)
        // the reused array holds no value after the call
        expect([...call!.args].every((v) => v === 0)).toBe(true)
      } else {
        slow++
        // a fresh array, checked by run (checkArgs' errors); only ≥ 4 parameters take it while accepted
        expect(call!.args).not.toBe(given)
        if (arity <= 3) expect(accepted, `${JSON.stringify(signature)} ${String(given)}`).toBe(false)
      }
    }
    expect(fast).toBeGreaterThan(100)
    expect(slow).toBeGreaterThan(100)
  })

  it("a re-entrant call (a host import calling the same handle) sees its own arguments; the outer call's were read first", () => {
    const signature: FuncType = { params: ["i64", "i64"], results: ["i64"] }
    const log: Array<string> = []
    let depth = 0
    const entry: (...args: Array<WasmValue>) => ReadonlyArray<WasmValue> = fastArgs(signature, (args, checked) => {
      const [a, b] = [args[0] as bigint, args[1] as bigint] // read first, as the engine's caller does
      log.push(`${checked} ${a} ${b}`)
      if (depth++ === 0) entry(5n, 6n)
      return [a + b]
    })
    expect(entry(1n, 2n)).toEqual([3n])
    expect(log).toEqual(["true 1 2", "true 5 6"])
  })

  it("a throw from run leaves the reused array cleared", () => {
    const signature: FuncType = { params: ["i32"], results: [] }
    let kept: ReadonlyArray<WasmValue> = []
    const entry = fastArgs(signature, (args) => {
      kept = args
      throw new Error("trap")
    })
    expect(() => entry(7)).toThrow("trap")
    expect(kept[0]).toBe(0)
  })
})
