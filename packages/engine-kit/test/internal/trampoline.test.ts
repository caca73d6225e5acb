/**
 * The trampolined prepared caller (`prepareDirect(fn, type)`, `trampoline.ts`):
 * one JS→wasm call per metered call must give exactly what the two-helper
 * caller (`prepareDirect(fn)`, the oracle, on a twin instance of the same
 * module) gives — results, errors, fuel left, memory size — for every fuel
 * from 0 to what the call needs + 1, on both counter shapes (the thread's
 * shared imported counter and a defined one), for i32/i64/f32/f64 and
 * multi-value signatures, traps, growth, calls without fuel, wrong arities,
 * a wrong type, re-entry and calls nested across instances.
 */
import { type CallSlot, makeCallSlot } from "@agent-runtime/domain"
import { wat } from "@agent-runtime/test-support"
import { FUEL_EXPORT, type FuelOptions, rewriteModule } from "@agent-runtime/wasm-binary"
import { describe, expect, it } from "@effect/vitest"
import { Instance, type LiveInstance } from "../../src/index.js"
import type { DirectCall } from "../../src/internal/core.js"
import { sharedFuel } from "../../src/internal/fuel.js"
import { trampoline } from "../../src/internal/trampoline.js"

const TYPED = `(module
  (memory (export "memory") 1 4)
  (func $count (param $n i32) (result i32) (local $i i32)
    (block $done (loop $next
      (br_if $done (i32.ge_u (local.get $i) (local.get $n)))
      (i32.store (i32.mul (i32.and (local.get $i) (i32.const 255)) (i32.const 4)) (local.get $i))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br $next)))
    (local.get $i))
  (func (export "none"))
  (func (export "work") (param i32) (result i32) (call $count (local.get 0)))
  (func (export "add64") (param i64 i64) (result i64)
    (drop (call $count (i32.wrap_i64 (local.get 0)))) (i64.add (local.get 0) (local.get 1)))
  (func (export "mulf32") (param f32 f32) (result f32) (f32.mul (local.get 0) (local.get 1)))
  (func (export "divf64") (param f64 f64) (result f64)
    (drop (call $count (i32.trunc_sat_f64_u (local.get 0)))) (f64.div (local.get 0) (local.get 1)))
  (func (export "pair") (param i32 i64) (result i64 i32) (local.get 1) (call $count (local.get 0)))
  (func (export "three") (param i32 i32 i32) (result i32)
    (i32.add (call $count (local.get 0)) (i32.add (local.get 1) (local.get 2))))
  (func (export "four") (param i32 i32 i32 i32) (result i32)
    (i32.add (i32.add (local.get 0) (local.get 1)) (i32.add (local.get 2) (call $count (local.get 3)))))
  (func (export "trap") (param i32) (result i32)
    (drop (call $count (local.get 0))) (if (i32.eq (local.get 0) (i32.const 3)) (then unreachable)) (i32.const 7))
  (func (export "grow") (param i32) (result i32) (memory.grow (local.get 0)))
  (func (export "spin") (loop $l (br $l))))`

/** Works, calls the host (which may call this or another instance), works again. */
const OUTER = `(module
  (import "env" "inner" (func $inner (result i32)))
  (func $count (param $n i32) (result i32) (local $i i32)
    (block $done (loop $next
      (br_if $done (i32.ge_u (local.get $i) (local.get $n)))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br $next)))
    (local.get $i))
  (func (export "work") (param i32) (result i32) (call $count (local.get 0)))
  (func (export "outer") (param $n i32) (result i32)
    (i32.add (i32.add (call $count (local.get $n)) (call $inner)) (call $count (local.get $n)))))`

type Shape = "imported" | "defined"
const SHAPES: ReadonlyArray<Shape> = ["imported", "defined"]

const compile = async (text: string, shape: Shape, options: FuelOptions = {}): Promise<WebAssembly.Module> => {
  const r = rewriteModule(await wat(text), {
    fuel: { deferStart: true, initialFuel: 10_000n, ...options, ...(shape === "defined" ? { counter: "defined" } : {}) }
  })
  if (!r.ok) throw r.error
  return new WebAssembly.Module(r.value.bytes)
}

const live = <E extends Error>(result: LiveInstance<E> | Error): LiveInstance<E> => {
  if (result instanceof Error) throw result
  return result
}

/** A direct call's outcome as a plain value (errors by tag and fields). */
const outcome = <E extends Error>(
  call: DirectCall<E>,
  args: ReadonlyArray<never>,
  fuel: number | undefined,
  slot: CallSlot = makeCallSlot()
): unknown => {
  const failed = call(args, fuel, slot)
  if (failed !== undefined) {
    return { ...(failed as unknown as Record<string, unknown>), _tag: (failed as unknown as { _tag: string })._tag }
  }
  return { result: slot.result, memoryBytes: slot.memoryBytes, fuelRemaining: slot.fuelRemaining }
}

const TYPES: Record<string, { params: Array<string>; results: Array<string> }> = {
  none: { params: [], results: [] },
  work: { params: ["i32"], results: ["i32"] },
  add64: { params: ["i64", "i64"], results: ["i64"] },
  mulf32: { params: ["f32", "f32"], results: ["f32"] },
  divf64: { params: ["f64", "f64"], results: ["f64"] },
  pair: { params: ["i32", "i64"], results: ["i64", "i32"] },
  three: { params: ["i32", "i32", "i32"], results: ["i32"] },
  four: { params: ["i32", "i32", "i32", "i32"], results: ["i32"] },
  trap: { params: ["i32"], results: ["i32"] },
  grow: { params: ["i32"], results: ["i32"] },
  spin: { params: [], results: [] }
}

const CASES: ReadonlyArray<readonly [string, ReadonlyArray<unknown>]> = [
  ["none", []],
  ["work", [9]],
  ["add64", [6n, 2n ** 62n]],
  ["mulf32", [1.1, 3]],
  ["divf64", [7.5, 0.25]],
  ["pair", [5, -3n]],
  ["three", [4, 1, 2]],
  ["four", [1, 2, 3, 6]],
  ["trap", [2]],
  ["trap", [3]],
  ["grow", [1]],
  ["spin", []]
]

describe("the trampolined prepared caller", () => {
  it("a trampoline is made for number types only, and not for an export of another type", async () => {
    const instance = new WebAssembly.Instance(await compile(TYPED, "defined"), {})
    const counter = instance.exports[FUEL_EXPORT] as WebAssembly.Global
    const owner = {}
    expect(trampoline(instance.exports["add64"], ["i64", "i64"], ["i64"], counter, owner)).not.toBeNull()
    expect(trampoline(instance.exports["add64"], ["i32", "i64"], ["i64"], counter, owner)).toBeNull() // LinkError
    expect(trampoline(instance.exports["add64"], ["externref"], [], counter, owner)).toBeNull()
    expect(trampoline(instance.exports["add64"], ["v128"], [], counter, owner)).toBeNull()
    const t = trampoline(instance.exports["work"], ["i32"], ["i32"], counter, owner)!
    expect(t.call(1_000, 5)).toBe(5)
    expect(t.f64[t.left]).toBe(Number(counter.value as bigint))
    expect(t.i32[t.entered]).toBe(1)
    expect(Number(counter.value as bigint)).toBeLessThan(1_000)
  })

  it("same results, errors, fuel left and memory size as the two-helper caller, for every fuel 0..needed+1, both counter shapes", async () => {
    for (const shape of SHAPES) {
      const module = await compile(TYPED, shape)
      for (const [fn, args] of CASES) {
        const fresh = () => live(Instance.instantiate(module, {}))
        const probe = outcome(fresh().prepareDirect(fn)!, args as never, 1_000_000) as { fuelRemaining?: number }
        // a call that fails whatever its fuel (spin, a trap): fuels up to 300
        const needed = probe.fuelRemaining === undefined ? 300 : 1_000_000 - probe.fuelRemaining
        // twins called in step (one instance each, not one per fuel: each instance reserves a memory)
        const slowTwin = fresh().prepareDirect(fn)!
        const fastTwin = fresh().prepareDirect(fn, TYPES[fn])!
        for (let fuel = 0; fuel <= needed + 1; fuel++) {
          const want = outcome(slowTwin, args as never, fuel)
          const got = outcome(fastTwin, args as never, fuel)
          expect(got, `${shape} ${fn}(${String(args)}) fuel ${fuel}`).toEqual(want)
        }
        // one instance called repeatedly (the counter and the memory carry over), both callers in step
        const a = fresh()
        const b = fresh()
        const slow = a.prepareDirect(fn)!
        const fast = b.prepareDirect(fn, TYPES[fn])!
        const unbounded = fn === "spin" ? [] : [undefined, 2 ** 53, undefined] // spin without a bound never returns
        for (const fuel of [needed + 5, needed, 0, needed - 1, ...unbounded, 1_000_000, -1]) {
          expect(outcome(fast, args as never, fuel), `${shape} ${fn} repeated, fuel ${fuel}`).toEqual(
            outcome(slow, args as never, fuel)
          )
        }
      }
    }
  })

  it("wrong arities and argument types give the same outcome as the two-helper caller", async () => {
    for (const shape of SHAPES) {
      const module = await compile(TYPED, shape)
      const a = live(Instance.instantiate(module, {}))
      const b = live(Instance.instantiate(module, {}))
      const odd: ReadonlyArray<readonly [string, ReadonlyArray<unknown>]> = [
        ["work", []],
        ["work", [1, 2]],
        ["add64", [1n]],
        ["add64", [1, 2]], // a number for an i64: TypeError at the boundary, before the trampoline runs
        ["add64", [1n, 2n, 3n, 4n, 5n]],
        ["mulf32", [1n, 2]],
        ["four", [1, 2, 3]],
        ["none", [1, 2, 3, 4, 5, 6]]
      ]
      for (const [fn, args] of odd) {
        for (const fuel of [0, 5, 10_000, undefined]) {
          expect(
            outcome(b.prepareDirect(fn, TYPES[fn])!, args as never, fuel),
            `${shape} ${fn}(${String(args)}) fuel ${fuel}`
          ).toEqual(outcome(a.prepareDirect(fn)!, args as never, fuel))
        }
        // after a call that ran out (the counter is negative), a call refused at the boundary is not "exhausted"
        expect(outcome(b.prepareDirect("spin", TYPES["spin"])!, [], 50)).toMatchObject({ _tag: "FuelExhausted" })
        expect(outcome(a.prepareDirect("spin")!, [], 50)).toMatchObject({ _tag: "FuelExhausted" })
        expect(outcome(b.prepareDirect(fn, TYPES[fn])!, args as never, 10_000)).toEqual(
          outcome(a.prepareDirect(fn)!, args as never, 10_000)
        )
      }
    }
  })

  it("a wrong type given by the caller is ignored (the two-helper caller is used)", async () => {
    const module = await compile(TYPED, "imported")
    const a = live(Instance.instantiate(module, {}))
    const b = live(Instance.instantiate(module, {}))
    const wrong = b.prepareDirect("add64", { params: ["i32", "i32"], results: ["i32"] })!
    expect(outcome(wrong, [3n, 4n] as never, 1_000)).toEqual(
      outcome(a.prepareDirect("add64")!, [3n, 4n] as never, 1_000)
    )
  })

  it("terminated instances and a host value that is not a WebAssembly function", async () => {
    const module = await compile(TYPED, "defined")
    const b = live(Instance.instantiate(module, {}))
    const fast = b.prepareDirect("work", TYPES["work"])!
    b.terminate()
    expect(outcome(fast, [1] as never, 100)).toMatchObject({ _tag: "Trap", reason: "instance terminated" })
  })

  it("calls nested across instances (a host function calling trampolined callers) leave the outer call's counter as it was", async () => {
    for (const innerShape of SHAPES) {
      for (const outerShape of SHAPES) {
        const innerModule = await compile(TYPED, innerShape)
        const inner = live(Instance.instantiate(innerModule, {}))
        const innerFast = inner.prepareDirect("work", TYPES["work"])!
        const spinFast = inner.prepareDirect("spin", TYPES["spin"])!
        let nested: (() => unknown) | undefined
        const seen: Array<unknown> = []
        const outerModule = await compile(OUTER, outerShape)
        const imports = {
          env: {
            inner: () => {
              if (nested !== undefined) seen.push(nested())
              return 1
            }
          }
        }
        const outer = live(Instance.instantiate(outerModule, imports))
        const outerFast = outer.prepareDirect("outer", { params: ["i32"], results: ["i32"] })!
        const outerSlow = live(Instance.instantiate(outerModule, imports)).prepareDirect("outer")!
        nested = undefined
        const alone = outcome(outerSlow, [50] as never, 1_000_000) as { fuelRemaining: number }
        const needed = 1_000_000 - alone.fuelRemaining
        for (const call of [
          () => outcome(innerFast, [7] as never, 10_000),
          () => outcome(innerFast, [7] as never, undefined),
          () => outcome(spinFast, [] as never, 3_000)
        ]) {
          nested = call
          seen.length = 0
          expect(outcome(outerFast, [50] as never, 1_000_000), `${outerShape} outer, ${innerShape} inner`).toEqual(
            alone
          )
          expect(outcome(outerFast, [50] as never, needed)).toMatchObject({ result: 101, fuelRemaining: 0 })
          expect(outcome(outerFast, [50] as never, needed - 1)).toMatchObject({
            _tag: "FuelExhausted",
            fuel: needed - 1
          })
          expect(seen.length).toBe(3) // the nested call ran inside each of the three outer calls
        }
        // the inner trampolined call ran out inside the outer one: the outer still finishes on its own fuel
        expect(seen.at(-1)).toMatchObject({ _tag: "FuelExhausted", function: "spin", fuel: 3_000 })
      }
    }
  })

  it("a call back into the same instance draws on the running call's fuel (no refill), as the two-helper caller", async () => {
    const outcomes: Array<unknown> = []
    for (const typed of [false, true]) {
      for (const shape of SHAPES) {
        const module = await compile(OUTER, shape)
        let back: DirectCall<Error> | undefined
        const seen: Array<unknown> = []
        const instance = live(
          Instance.instantiate(module, {
            env: {
              inner: () => {
                seen.push(outcome(back!, [100] as never, 5_000))
                return 1
              }
            }
          })
        )
        back = instance.prepareDirect("work", typed ? { params: ["i32"], results: ["i32"] } : undefined)!
        const outer = instance.prepareDirect("outer", typed ? { params: ["i32"], results: ["i32"] } : undefined)!
        const rows = [
          outcome(outer, [10] as never, 1_000_000),
          outcome(outer, [10] as never, 700),
          outcome(outer, [10] as never, undefined),
          [...seen]
        ]
        outcomes.push({ shape, rows })
      }
    }
    expect(outcomes.slice(2)).toEqual(outcomes.slice(0, 2))
  })

  it("the shared counter: calls without fuel run each instance's own left-over down, interleaved, as the two-helper caller", async () => {
    const run = async (typed: boolean) => {
      const module = await compile(TYPED, "imported", { initialFuel: 300n })
      const x = live(Instance.instantiate(module, {}))
      const y = live(Instance.instantiate(module, {}))
      const type = typed ? TYPES["work"] : undefined
      const cx = x.prepareDirect("work", type)!
      const cy = y.prepareDirect("work", type)!
      const seen: Array<unknown> = []
      for (let k = 0; k < 14; k++) {
        seen.push(outcome(cx, [3] as never, undefined))
        seen.push(outcome(cy, [5] as never, undefined))
        if (k % 3 === 0) seen.push(outcome(cy, [2] as never, 10_000))
      }
      return seen
    }
    const want = await run(false)
    expect(await run(true)).toEqual(want)
    expect(want.filter((o) => (o as { _tag?: string })._tag === "Trap").length).toBeGreaterThan(0)
    expect(sharedFuel().global).toBeInstanceOf(WebAssembly.Global)
  })
})
