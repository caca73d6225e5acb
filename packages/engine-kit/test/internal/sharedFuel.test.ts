/**
 * The thread's shared fuel counter (`fuel.ts` `sharedFuel`): a module that
 * defines no globals gets an imported counter from the fuel rewrite, and
 * every instance of such modules on this thread is given the same
 * `WebAssembly.Global`. Each instance must still meter exactly as with a
 * counter of its own — the same module rewritten with a defined counter
 * (`FuelOptions.counter: "defined"`) is the oracle — including calls without
 * fuel (the instance's own counter runs down), start functions run at or
 * after instantiation, and calls nested in another metered call (a host
 * function calling another instance synchronously), which must leave the
 * outer call's counter as it was.
 */
import { makeCallSlot } from "@agent-runtime/domain"
import { wat } from "@agent-runtime/test-support"
import { FUEL_EXPORT, type FuelOptions, rewriteModule } from "@agent-runtime/wasm-binary"
import { describe, expect, it } from "@effect/vitest"
import { Instance, type LiveInstance } from "../../src/index.js"
import { sharedFuel } from "../../src/internal/fuel.js"

const WORK = `(module
  (memory (export "memory") 1)
  (func $work (export "work") (param $n i32) (result i32) (local $i i32)
    (block $done (loop $next
      (br_if $done (i32.ge_u (local.get $i) (local.get $n)))
      (i32.store (i32.mul (local.get $i) (i32.const 4)) (i32.add (local.get $i) (i32.const 1)))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br $next)))
    (local.get $i))
  (func (export "spin") (loop $l (br $l)))
  (func $s (drop (call $work (i32.const 20))))
  (start $s))`

/** Does work, calls the host (which may call other instances), does more work. */
const OUTER = `(module
  (import "env" "inner" (func $inner (result i32)))
  (func $count (param $n i32) (result i32) (local $i i32)
    (block $done (loop $next
      (br_if $done (i32.ge_u (local.get $i) (local.get $n)))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br $next)))
    (local.get $i))
  (func (export "outer") (param $n i32) (result i32)
    (i32.add (i32.add (call $count (local.get $n)) (call $inner)) (call $count (local.get $n)))))`

/** Works, calls the host (which may call back into this same instance), in a loop. */
const REENTER = `(module
  (import "env" "back" (func $back (result i32)))
  (func $count (param $n i32) (result i32) (local $i i32)
    (block $done (loop $next
      (br_if $done (i32.ge_u (local.get $i) (local.get $n)))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br $next)))
    (local.get $i))
  (func (export "work") (param $n i32) (result i32) (call $count (local.get $n)))
  (func (export "loop") (param $rounds i32) (param $n i32) (result i32) (local $r i32) (local $acc i32)
    (block $done (loop $next
      (br_if $done (i32.ge_u (local.get $r) (local.get $rounds)))
      (local.set $acc (i32.add (local.get $acc) (call $count (local.get $n))))
      (local.set $acc (i32.add (local.get $acc) (call $back)))
      (local.set $r (i32.add (local.get $r) (i32.const 1)))
      (br $next)))
    (local.get $acc)))`

type Shape = "imported" | "defined"

const compile = async (text: string, shape: Shape, options: FuelOptions = {}): Promise<WebAssembly.Module> => {
  const r = rewriteModule(await wat(text), {
    fuel: { ...options, ...(shape === "defined" ? { counter: "defined" } : {}) }
  })
  if (!r.ok) throw r.error
  return new WebAssembly.Module(r.value.bytes)
}

const live = <E extends Error>(result: LiveInstance<E> | Error): LiveInstance<E> => {
  if (result instanceof Error) throw result
  return result
}

/** A call's outcome without the error class (plain core errors compare by tag and fields). */
const settled = (o: unknown): unknown =>
  o instanceof Error
    ? { ...(o as unknown as Record<string, unknown>), _tag: (o as unknown as { _tag: string })._tag }
    : o

describe("the thread's shared fuel counter", () => {
  it("a module without globals imports its counter: every instance gets the thread's one, and meters as a defined counter does", async () => {
    const imported = await compile(WORK, "imported", { deferStart: true, initialFuel: 1_000_000n })
    const defined = await compile(WORK, "defined", { deferStart: true, initialFuel: 1_000_000n })
    expect(WebAssembly.Module.imports(imported).map((i) => i.kind)).toEqual(["global"])
    expect(WebAssembly.Module.imports(defined)).toEqual([])
    const a = live(Instance.instantiate(imported, {}))
    const b = live(Instance.instantiate(imported, {}))
    expect(a.fuel).toBe(sharedFuel().global)
    expect(b.fuel).toBe(a.fuel)
    expect(a.exports[FUEL_EXPORT]).toBe(a.fuel) // the re-export is the import itself
    const d = live(Instance.instantiate(defined, {}))
    expect(d.fuel).not.toBe(a.fuel)
    const needed = 1_000_000 - (d.call("work", [6], 1_000_000) as { fuelRemaining: number }).fuelRemaining
    expect(needed).toBeGreaterThan(10)
    for (let fuel = 0; fuel <= needed + 1; fuel++) {
      const want = settled(live(Instance.instantiate(defined, {})).call("work", [6], fuel))
      expect(settled(a.call("work", [6], fuel)), `fuel ${fuel}`).toEqual(want)
      expect(settled(b.prepare("work")!([6], fuel)), `fuel ${fuel}`).toEqual(want)
    }
    expect(a.call("work", [6], needed)).toMatchObject({ results: [6], fuelRemaining: 0 })
    expect(a.call("work", [6], needed - 1)).toMatchObject({ _tag: "FuelExhausted", function: "work", fuel: needed - 1 })
    expect(a.call("spin", [], 5_000)).toMatchObject({ _tag: "FuelExhausted", function: "spin", fuel: 5_000 })
    // the counter is not agent state: no snapshot holds it
    expect(Object.keys((a.snapshot() as { globals: object }).globals)).toEqual([])
  })

  it("the counter is merged into the caller's imports at each spawn: a changed imports object is seen", async () => {
    const module = await compile(OUTER, "imported")
    const imports: { env: { inner: () => number } } = { env: { inner: () => 1 } }
    const first = live(Instance.instantiate(module, imports))
    imports.env = { inner: () => 2 }
    const second = live(Instance.instantiate(module, imports))
    expect(first.call("outer", [0], 1_000)).toMatchObject({ results: [1] })
    expect(second.call("outer", [0], 1_000)).toMatchObject({ results: [2] })
    expect(second.fuel).toBe(first.fuel)
    // a frozen imports object is merged once and reused
    const frozen = Object.freeze({ env: Object.freeze({ inner: () => 3 }) })
    const a = live(Instance.instantiate(module, frozen))
    const b = live(Instance.instantiate(module, frozen))
    expect(a.call("outer", [0], 1_000)).toMatchObject({ results: [3] })
    expect(b.call("outer", [0], 1_000)).toMatchObject({ results: [3] })
  })

  it("calls without fuel run each instance's own counter down, interleaved with other instances' calls", async () => {
    const run = async (shape: Shape) => {
      const module = await compile(WORK, shape, { deferStart: true, initialFuel: 1_000n })
      const x = live(Instance.instantiate(module, {}))
      const y = live(Instance.instantiate(module, {}))
      const seen: Array<unknown> = []
      for (let k = 0; k < 14; k++) {
        seen.push(settled(x.call("work", [3])))
        seen.push(settled(y.call("work", [5])))
        if (k % 3 === 0) seen.push(settled(y.call("work", [2], 10_000))) // a metered call in between
      }
      return seen
    }
    const imported = await run("imported")
    expect(imported).toEqual(await run("defined"))
    expect(imported.filter((o) => (o as { _tag?: string })._tag === "Trap").length).toBeGreaterThan(0) // they ran out
  })

  it("start functions: run at instantiation or deferred, from the initial fuel; running out is the same failure", async () => {
    for (const deferStart of [false, true]) {
      const outcome = async (shape: Shape, initialFuel: bigint) => {
        const r = Instance.instantiate(await compile(WORK, shape, { deferStart, initialFuel }), {})
        if (r instanceof Error) return settled(r)
        // what the start function left: count the unmetered calls until the counter runs out
        let calls = 0
        while (calls < 10_000 && !(r.call("work", [1]) instanceof Error)) calls++ // bounded: a wrong counter must not hang
        return { calls }
      }
      for (const initialFuel of [0n, 50n, 300n, 2_000n]) {
        const want = await outcome("defined", initialFuel)
        expect(await outcome("imported", initialFuel), `deferStart ${deferStart}, fuel ${initialFuel}`).toEqual(want)
      }
      expect(await outcome("imported", 50n)).toMatchObject(
        deferStart ? { _tag: "FuelExhausted", function: "(start)", fuel: 50 } : { _tag: "Trap", function: "(start)" }
      )
    }
  })

  it("a call nested in another (a host function calling an instance synchronously) restores the outer call's counter", async () => {
    for (const innerShape of ["imported", "defined"] as const) {
      for (const outerShape of ["imported", "defined"] as const) {
        const innerModule = await compile(WORK, innerShape, { deferStart: true, initialFuel: 1_000_000n })
        const inner = live(Instance.instantiate(innerModule, {}))
        const direct = inner.prepareDirect("work")!
        const prepared = inner.prepare("work")!
        const slot = makeCallSlot()
        let nested: (() => unknown) | undefined
        const seen: Array<unknown> = []
        const imports = {
          env: {
            inner: () => {
              if (nested !== undefined) seen.push(nested())
              return 1
            }
          }
        }
        const outer = live(Instance.instantiate(await compile(OUTER, outerShape), imports))
        // the outer call with a host function that calls nothing: the reference
        nested = undefined
        const alone = outer.call("outer", [50], 1_000_000) as unknown as {
          results: Array<number>
          fuelRemaining: number
        }
        expect(alone.results).toEqual([101])
        const needed = 1_000_000 - alone.fuelRemaining
        const calls: Array<() => unknown> = [
          () => ({ result: (settled(inner.call("work", [7], 10_000)) as { results: Array<number> }).results[0] }),
          () => ({ result: (settled(prepared([7], 10_000)) as { results: Array<number> }).results[0] }),
          () => {
            const failed = direct([7], 10_000, slot)
            return failed ?? { result: slot.result, fuelRemaining: slot.fuelRemaining }
          },
          () => ({ result: (settled(inner.call("work", [7])) as { results: Array<number> }).results[0] }), // unmetered (on a shared counter: the inner instance's own left-over)
          () => settled(inner.call("spin", [], 3_000)) // the inner call runs out: the outer goes on with its own fuel
        ]
        for (const call of calls) {
          nested = call
          seen.length = 0
          const with1 = outer.call("outer", [50], 1_000_000)
          expect(with1, `${outerShape} outer, ${innerShape} inner`).toEqual(alone)
          expect(seen[0]).toMatchObject(call === calls.at(-1) ? { _tag: "FuelExhausted" } : { result: 7 })
          // the exact boundary still holds around a nested call
          expect(outer.call("outer", [50], needed)).toMatchObject({ results: [101], fuelRemaining: 0 })
          expect(outer.call("outer", [50], needed - 1)).toMatchObject({ _tag: "FuelExhausted", fuel: needed - 1 })
        }
        // nested twice: the inner instance's host function calls a third one
        const third = live(Instance.instantiate(innerModule, {}))
        const middle = live(
          Instance.instantiate(await compile(OUTER, innerShape), {
            env: {
              inner: () => ((third.call("work", [3], 500) as unknown as { results: Array<number> }).results[0] ?? 0) - 2
            }
          })
        )
        nested = () => settled(middle.call("outer", [10], 100_000))
        expect(outer.call("outer", [50], 1_000_000)).toEqual(alone)
        expect(seen.at(-1)).toMatchObject({ results: [21] })
        // an instance made inside a host function (its start function runs on the shared counter too)
        nested = () => {
          const made = Instance.instantiate(innerModule, {})
          return made instanceof Error ? settled(made) : settled(made.call("work", [2], 1_000))
        }
        expect(outer.call("outer", [50], 1_000_000)).toEqual(alone)
        expect(seen.at(-1)).toMatchObject({ results: [2] })
      }
    }
  })

  it("a call back into the same instance (its host function re-enters it) draws on the running call's fuel: no refill, both counter shapes", async () => {
    const outcomes: Record<Shape, Array<unknown>> = { imported: [], defined: [] }
    for (const shape of ["imported", "defined"] as const) {
      const module = await compile(REENTER, shape)
      let self: LiveInstance<Error> | undefined
      let reenter = true
      const instance = live<Error>(
        Instance.instantiate(module, {
          env: {
            back: () => {
              if (!reenter) return 0
              const inner = self!.call("work", [100], 5_000)
              return inner instanceof Error ? -1_000_000 : (inner.results[0] as number)
            }
          }
        })
      )
      self = instance
      // one round's own work and one re-entry's work each cost well under the fuel; a refill at every
      // re-entry would let 1000 rounds (≈ 1000 × both) finish on one call's 5000
      const rounds = instance.call("loop", [1_000, 100], 5_000)
      expect(rounds, shape).toMatchObject({ _tag: "FuelExhausted", function: "loop", fuel: 5_000 })
      // the re-entry's work is charged to the running call: less left than without the call back
      const once = instance.call("loop", [1, 100], 1_000_000) as unknown as {
        results: Array<number>
        fuelRemaining: number
      }
      reenter = false
      const alone = instance.call("loop", [1, 100], 1_000_000) as unknown as {
        results: Array<number>
        fuelRemaining: number
      }
      expect(once.results, shape).toEqual([200])
      expect(alone.results, shape).toEqual([100])
      const work = instance.call("work", [100], 1_000_000) as unknown as { fuelRemaining: number }
      expect(alone.fuelRemaining - once.fuelRemaining, shape).toBeGreaterThanOrEqual(1_000_000 - work.fuelRemaining)
      reenter = true
      // the instance's next, not re-entered, call gets its own fuel again
      expect(instance.call("work", [100], 5_000), shape).toMatchObject({ results: [100] })
      outcomes[shape] = [settled(rounds), once, alone]
    }
    expect(outcomes.imported).toEqual(outcomes.defined)
  })

  it("a host that supplies the reserved counter module itself is refused (the engine's counter is not replaced)", async () => {
    const module = await compile(OUTER, "imported")
    const refused = Instance.instantiate(module, { env: { inner: () => 1 }, "agent-runtime": { fuel: 123n } })
    expect(refused).toMatchObject({ _tag: "InstantiationError" })
    expect((refused as Error).message).toContain("reserved module")
    expect(live(Instance.instantiate(module, { env: { inner: () => 1 } })).call("outer", [0], 1_000)).toMatchObject({
      results: [1]
    })
  })
})
