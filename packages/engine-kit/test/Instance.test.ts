import { agentId, callResults, makeCallSlot, moduleHash, Trap } from "@agent-runtime/domain"
import { wat } from "@agent-runtime/test-support"
import { FUEL_EXPORT, rewriteModule } from "@agent-runtime/wasm-binary"
import { describe, expect, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import { Instance, type LiveInstance } from "../src/index.js"

const PAGE = 65_536

const SAMPLE = `(module
  (memory (export "memory") 1 4)
  (global $g (export "g") (mut i32) (i32.const 7))
  (global (export "c") i32 (i32.const 1))
  (global $big (export "big") (mut i64) (i64.const 5))
  (func (export "add") (param i32 i32) (result i32) local.get 0 local.get 1 i32.add)
  (func (export "swap") (param i32 i64) (result i64 i32) local.get 1 local.get 0)
  (func (export "nothing"))
  (func (export "div") (param i32 i32) (result i32) local.get 0 local.get 1 i32.div_s)
  (func $rec (export "recurse") (param i32) (result i32) local.get 0 call $rec)
  (func (export "store") (param i32 i32) local.get 0 local.get 1 i32.store)
  (func (export "load") (param i32) (result i32) local.get 0 i32.load)
  (func (export "bump") global.get $g i32.const 1 i32.add global.set $g))`

const HOST = `(module
  (import "env" "log" (func $log (param i32)))
  (import "env" "pair" (func $pair (result i32 i64)))
  (import "env" "now" (func $now (result f64)))
  (import "env" "ref" (func $ref (result externref)))
  (func (export "log") (param i32) local.get 0 call $log)
  (func (export "pair") (result i32 i64) call $pair)
  (func (export "now") (result f64) call $now)
  (func (export "ref_is_null") (result i32) call $ref ref.is_null))`

const LOOP = `(module
  (func (export "spin") (loop $l br $l))
  (func (export "work") (param i32) (result i32) (local $i i32)
    (block $done (loop $l
      (br_if $done (i32.ge_s (local.get $i) (local.get 0)))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br $l)))
    local.get $i))`

const module = (text: string) =>
  Effect.promise(async () => new WebAssembly.Module((await wat(text)) as Uint8Array<ArrayBuffer>))

/** Instantiates or fails the test with the error. */
const live = <E extends Error>(result: LiveInstance<E> | Error): LiveInstance<E> => {
  if (result instanceof Error) throw result
  return result
}

describe("Instance (synchronous core)", () => {
  it.effect("calls exports with typed values: one result, multi-value, none; memory usage after each call", () =>
    Effect.gen(function* () {
      const i = live(Instance.instantiate(yield* module(SAMPLE), {}))
      expect(i.call("add", [2, 3])).toEqual({ results: [5], memoryBytes: PAGE, fuelRemaining: undefined })
      expect(i.call("swap", [1, 9n])).toMatchObject({ results: [9n, 1] })
      expect(i.call("nothing", [])).toMatchObject({ results: [] })
      expect(i.memoryBytes()).toBe(PAGE)
      const missing = i.call("nope", [])
      expect(missing).toMatchObject({ _tag: "FunctionNotFound", function: "nope" })
      expect(i.call("c", [])).toMatchObject({ _tag: "FunctionNotFound" })
      expect(i.prepare("nope")).toBeUndefined()
      const add = i.prepare("add")!
      expect(add([40, 2])).toMatchObject({ results: [42] })
    })
  )

  it.effect("maps traps, stack exhaustion and host exceptions to Trap (WebAssembly JS API §Error Objects)", () =>
    Effect.gen(function* () {
      const i = live(Instance.instantiate(yield* module(SAMPLE), {}))
      const div = i.call("div", [1, 0])
      expect(div).toMatchObject({ _tag: "Trap", function: "div" })
      expect((div as Error).message).toMatch(/divide by zero/)
      expect(i.call("recurse", [1])).toMatchObject({
        _tag: "Trap",
        reason: expect.stringMatching(/^call stack exhausted/)
      })
      const h = live(
        Instance.instantiate(yield* module(HOST), {
          env: {
            log: () => {
              throw new Error("boom")
            },
            pair: () => [1, 2n],
            now: () => 1,
            ref: () => null
          }
        })
      )
      expect(h.call("log", [1])).toMatchObject({ _tag: "Trap", function: "log", reason: "host function threw: boom" })
      expect(Instance.callErrorReason(new TypeError("x"))).toBe("type error at the JS boundary: x")
      expect(Instance.callErrorReason("plain")).toBe("host function threw: plain")
    })
  )

  it.effect("mapThrown is asked first; undefined falls back to the default mapping", () =>
    Effect.gen(function* () {
      class Exit extends Error {}
      const h = live(
        Instance.instantiate<Exit>(
          yield* module(HOST),
          {
            env: {
              log: (x: number) => {
                throw x === 0 ? new Exit("exit 0") : new Error("other")
              },
              pair: () => [1, 2n],
              now: () => 1,
              ref: () => null
            }
          },
          { mapThrown: (_fn, e) => (e instanceof Exit ? e : undefined) }
        )
      )
      expect(h.call("log", [0])).toBeInstanceOf(Exit)
      expect(h.call("log", [1])).toMatchObject({ _tag: "Trap", reason: "host function threw: other" })
    })
  )

  it.effect("host results follow the JS API: void results ignored, arrays for multi-value, ToNumber, externref", () =>
    Effect.gen(function* () {
      const h = live(
        Instance.instantiate(yield* module(HOST), {
          env: { log: () => ({ ignored: true }), pair: () => [7, 8n], now: () => "2.5", ref: () => ({ any: "object" }) }
        })
      )
      expect(h.call("log", [1])).toMatchObject({ results: [] })
      expect(h.call("pair", [])).toMatchObject({ results: [7, 8n] })
      expect(h.call("now", [])).toMatchObject({ results: [2.5] })
      expect(h.call("ref_is_null", [])).toMatchObject({ results: [0] })
    })
  )

  it.effect("instantiation errors: not a module, missing import, start trap, memory above the limit", () =>
    Effect.gen(function* () {
      expect(Instance.instantiate("bytes", {}, { notAModule: "not ours" })).toMatchObject({
        _tag: "InstantiationError",
        reason: "not ours"
      })
      const missing = Instance.instantiate(yield* module(HOST), {})
      expect(missing).toMatchObject({ _tag: "InstantiationError" })
      const start = Instance.instantiate(yield* module(`(module (func $s unreachable) (start $s))`), {})
      expect(start).toMatchObject({ _tag: "Trap", function: "(start)" })
      const big = Instance.instantiate(
        yield* module(`(module (memory (export "m") 2))`),
        {},
        { memoryLimit: PAGE, agentId: "a1" }
      )
      expect(big).toMatchObject({ _tag: "MemoryExceeded", agentId: "a1", used: 2 * PAGE, limit: PAGE })
    })
  )

  it.effect(
    "creates the imported memory the runtime asks for, capped at its maximum; memory found through the imports",
    () =>
      Effect.gen(function* () {
        const text = `(module (import "env" "mem" (memory 1)) (func (export "grow") (param i32) (result i32) local.get 0 memory.grow))`
        const i = live(
          Instance.instantiate(
            yield* module(text),
            {},
            {
              memory: { module: "env", name: "mem", minPages: 1, maxPages: 2, shared: false }
            }
          )
        )
        expect(i.memory).toBeInstanceOf(WebAssembly.Memory)
        expect(i.call("grow", [1])).toMatchObject({ results: [1], memoryBytes: 2 * PAGE })
        expect(i.call("grow", [1])).toMatchObject({ results: [-1] })
        const refused = Instance.instantiate(
          yield* module(text),
          {},
          {
            memory: { module: "env", name: "mem", minPages: 1, maxPages: 70_000, shared: false }
          }
        )
        expect(refused).toMatchObject({ _tag: "InstantiationError" })
      })
  )

  it.effect(
    "fuel: sets the counter, reports what is left, FuelExhausted when it runs out; ignored without the global",
    () =>
      Effect.gen(function* () {
        const bytes = yield* Effect.promise(() => wat(LOOP))
        const rewritten = rewriteModule(bytes, { fuel: true })
        if (!rewritten.ok) throw new Error("rewrite failed")
        const i = live(Instance.instantiate(new WebAssembly.Module(rewritten.value.bytes), {}))
        expect(i.fuel).toBeInstanceOf(WebAssembly.Global)
        const ok = i.call("work", [10], 10_000)
        expect(ok).toMatchObject({ results: [10] })
        const left = (ok as { fuelRemaining: number }).fuelRemaining
        expect(left).toBeGreaterThan(0)
        expect(left).toBeLessThan(10_000)
        expect(i.call("spin", [], 1_000)).toMatchObject({ _tag: "FuelExhausted", function: "spin", fuel: 1_000 })
        // the counter is set again by the next metered call
        expect(i.call("work", [3], 10_000)).toMatchObject({ results: [3] })
        const plain = live(Instance.instantiate(new WebAssembly.Module(bytes as Uint8Array<ArrayBuffer>), {}))
        expect(plain.call("work", [3], 1)).toMatchObject({ results: [3], fuelRemaining: undefined })
      })
  )

  it.effect(
    "a start function deferred by the fuel rewrite: run after instantiation; out of fuel → FuelExhausted (start), a trap → Trap (start)",
    () =>
      Effect.gen(function* () {
        const text = `(module (global $n (mut i32) (i32.const 0))
        (func $s (loop $l (global.set $n (i32.add (global.get $n) (i32.const 1))) (br_if $l (i32.lt_u (global.get $n) (i32.const 100)))))
        (start $s)
        (func (export "n") (result i32) global.get $n))`
        const bytes = yield* Effect.promise(() => wat(text))
        const compiled = (fuel: bigint) => {
          const r = rewriteModule(bytes, { fuel: { initialFuel: fuel, deferStart: true } })
          if (!r.ok) throw r.error
          return new WebAssembly.Module(r.value.bytes)
        }
        expect(Instance.instantiate(compiled(50n), {})).toMatchObject({
          _tag: "FuelExhausted",
          function: "(start)",
          fuel: 50
        })
        const ok = live(Instance.instantiate(compiled(100_000n), {}))
        expect(ok.call("n", [])).toMatchObject({ results: [100] }) // the start function ran, once
        const trapping = yield* Effect.promise(() => wat(`(module (func $s unreachable) (start $s))`))
        const r = rewriteModule(trapping, { fuel: { initialFuel: 1_000n, deferStart: true } })
        if (!r.ok) throw r.error
        expect(Instance.instantiate(new WebAssembly.Module(r.value.bytes), {})).toMatchObject({
          _tag: "Trap",
          function: "(start)",
          reason: "unreachable"
        })
      })
  )

  it.effect(
    "snapshot: non-zero pages and mutable globals (not the fuel counter, not immutable ones); restore grows and overwrites",
    () =>
      Effect.gen(function* () {
        const i = live(Instance.instantiate(yield* module(SAMPLE), {}))
        i.call("store", [PAGE - 4, 42])
        i.call("bump", [])
        const state = i.snapshot()
        if (state instanceof Error) throw state
        expect(state.memoryBytes).toBe(PAGE)
        expect(state.pages.map((p) => p.index)).toEqual([0])
        expect(state.globals).toEqual({ g: 8, big: 5n })

        const j = live(Instance.instantiate(yield* module(SAMPLE), {}))
        j.call("store", [0, 9])
        expect(j.restore(state)).toBeUndefined()
        expect(j.call("load", [PAGE - 4])).toMatchObject({ results: [42] })
        expect(j.call("load", [0])).toMatchObject({ results: [0] })
        expect(j.globals.map(([n]) => n)).toEqual(["g", "big"])

        const grown = { ...state, memoryBytes: 3 * PAGE, pages: [{ index: 2, data: new Uint8Array(PAGE).fill(1) }] }
        expect(j.restore(grown)).toBeUndefined()
        expect(j.memoryBytes()).toBe(3 * PAGE)
        expect(j.restore({ ...state, memoryBytes: 8 * PAGE })).toMatchObject({ _tag: "MemoryExceeded" })
        expect(j.restore({ ...state, globals: { c: 2 } })).toMatchObject({
          _tag: "Trap",
          reason: expect.stringMatching(/cannot set global c/)
        })
        expect(j.restore({ ...state, globals: { zz: 2 } })).toMatchObject({
          _tag: "Trap",
          reason: expect.stringMatching(/not exported/)
        })

        const bytes = yield* Effect.promise(() => wat(LOOP))
        const fueled = rewriteModule(bytes, { fuel: true })
        if (!fueled.ok) throw new Error("rewrite failed")
        const f = live(Instance.instantiate(new WebAssembly.Module(fueled.value.bytes), {}))
        expect(f.snapshot()).toEqual({ memoryBytes: 0, pages: [], globals: {} })
        expect(FUEL_EXPORT in f.exports).toBe(true)
        expect(
          f.restore({ memoryBytes: PAGE, pages: [{ index: 0, data: new Uint8Array(PAGE) }], globals: {} })
        ).toMatchObject({ _tag: "Trap", reason: "snapshot has memory but the instance has none" })
      })
  )

  it.effect("read/write are bounds-checked; terminate makes calls, prepared calls and snapshots fail", () =>
    Effect.gen(function* () {
      const i = live(Instance.instantiate(yield* module(SAMPLE), {}))
      expect(i.write(8, new Uint8Array([1, 2, 3]))).toBeUndefined()
      expect(i.read(8, 3)).toEqual(new Uint8Array([1, 2, 3]))
      expect(i.read(PAGE - 1, 2)).toMatchObject({ _tag: "Trap", function: "readMemory" })
      expect(i.write(-1, new Uint8Array(1))).toMatchObject({ _tag: "Trap", function: "writeMemory" })
      expect(i.read(1.5, 1)).toMatchObject({ _tag: "Trap" })
      const add = i.prepare("add")!
      i.terminate()
      i.terminate()
      expect(i.terminated()).toBe(true)
      expect(i.call("add", [1, 2])).toMatchObject({ _tag: "Trap", reason: "instance terminated" })
      expect(add([1, 2])).toMatchObject({ _tag: "Trap", reason: "instance terminated" })
      expect(i.snapshot()).toMatchObject({ _tag: "Trap", function: "snapshot" })
      const none = live(Instance.instantiate(yield* module(`(module (func (export "f")))`), {}))
      expect(none.read(0, 0)).toMatchObject({ _tag: "Trap", reason: "the instance has no linear memory" })
      expect(none.memoryBytes()).toBe(0)
    })
  )
})

describe("Instance (Effect wrappers)", () => {
  it.effect("validate / compile / instantiateWasm / toWasmInstance", () =>
    Effect.gen(function* () {
      const bytes = yield* Effect.promise(() => wat(SAMPLE))
      yield* Instance.validate(bytes)
      const bad = yield* Effect.flip(Instance.validate(new Uint8Array([0, 97, 115, 109, 1, 0, 0, 0, 99])))
      expect(bad._tag).toBe("CompileError")
      expect((yield* Effect.flip(Instance.compile(new Uint8Array([1, 2]), moduleHash("x"))))._tag).toBe("CompileError")
      const compiled = yield* Instance.compile(bytes, moduleHash("h"))
      expect(compiled).toMatchObject({ hash: "h", byteLength: bytes.byteLength })
      const options = { agentId: agentId("a"), memoryLimit: 4 * PAGE, imports: {} }
      const w = yield* Instance.instantiateWasm(compiled, options)
      expect((yield* w.invoke("add", [1, 2])).results).toEqual([3])
      expect((yield* Effect.flip(w.invoke("nope", [])))._tag).toBe("FunctionNotFound")
      expect(w.prepare!("add")!([2, 2])).toMatchObject({ results: [4] })
      yield* w.writeMemory(0, new Uint8Array([5]))
      expect(yield* w.readMemory(0, 1)).toEqual(new Uint8Array([5]))
      expect((yield* Effect.flip(w.readMemory(PAGE, 1)))._tag).toBe("Trap")
      const state = yield* w.snapshot
      yield* w.writeMemory(0, new Uint8Array([6]))
      yield* w.restore(state)
      expect(yield* w.readMemory(0, 1)).toEqual(new Uint8Array([5]))
      expect(yield* w.memoryBytes).toBe(PAGE)
      yield* w.terminate
      expect((yield* Effect.flip(w.invoke("add", [1, 2]))).message).toMatch(/instance terminated/)
      const foreign = yield* Effect.flip(
        Instance.instantiateWasm({ ...compiled, handle: {} }, options, "not a module of this engine")
      )
      expect(foreign).toMatchObject({ _tag: "InstantiationError", reason: "not a module of this engine" })
      const small = yield* Effect.flip(Instance.instantiateWasm(compiled, { ...options, memoryLimit: 1 }))
      expect(small).toMatchObject({ _tag: "MemoryExceeded", agentId: "a", used: PAGE, limit: 1 })
    })
  )
})

describe("Instance.instantiateSync ≡ instantiateWasm", () => {
  /** Both instantiations of the same module and options: the instance's observable state, or the error. */
  const both = (text: string, options: Parameters<typeof Instance.instantiateWasm>[1], handle?: unknown) =>
    Effect.gen(function* () {
      const bytes = yield* Effect.promise(() => wat(text))
      const compiled = yield* Instance.compile(bytes, moduleHash("h"))
      const module = handle === undefined ? compiled : { ...compiled, handle }
      const now = Instance.instantiateSync(module, options, "not ours")
      const viaEffect = yield* Effect.exit(Instance.instantiateWasm(module, options, "not ours"))
      if (viaEffect._tag === "Failure") {
        expect(now).toBeInstanceOf(Error)
        const error = yield* Effect.flip(Instance.instantiateWasm(module, options, "not ours"))
        expect(now).toEqual(error)
        expect((now as Error).constructor).toBe(error.constructor)
        return (now as { _tag: string })._tag
      }
      expect(now).not.toBeInstanceOf(Error)
      const { instance, memoryBytes } = now as Exclude<typeof now, Error>
      expect(memoryBytes).toBe(yield* instance.memoryBytes)
      expect(memoryBytes).toBe(yield* viaEffect.value.memoryBytes)
      expect(yield* instance.snapshot).toEqual(yield* viaEffect.value.snapshot)
      return memoryBytes
    })

  it.effect("success (memory and table bytes right after instantiation) and every error", () =>
    Effect.gen(function* () {
      const options = { agentId: agentId("a"), memoryLimit: 4 * PAGE, imports: {} }
      expect(yield* both(SAMPLE, options)).toBe(PAGE)
      expect(yield* both(`(module (memory (export "m") 2) (table (export "t") 3 funcref))`, options)).toBe(
        2 * PAGE + 3 * 32
      )
      // the size after the start function grew the memory (measured once, after the start)
      expect(
        yield* both(
          `(module (memory (export "m") 1 4) (func $s (drop (memory.grow (i32.const 2)))) (start $s))`,
          options
        )
      ).toBe(3 * PAGE)
      expect(yield* both(SAMPLE, options)).toBe(PAGE) // not the previous instance's size
      expect(yield* both(SAMPLE, { ...options, memoryLimit: 1 })).toBe("MemoryExceeded")
      expect(yield* both(`(module (func $s unreachable) (start $s))`, options)).toBe("Trap")
      expect(yield* both(`(module (import "env" "f" (func)))`, options)).toBe("InstantiationError")
      expect(yield* both(SAMPLE, options, {})).toBe("InstantiationError")
    })
  )
})

describe("Instance: memory and tables found through the module's descriptors", () => {
  it.effect("fromInstance with the module finds what the walk of every value finds", () =>
    Effect.gen(function* () {
      const bytes = yield* Effect.promise(() =>
        wat(`(module
          (import "env" "mem" (memory 1))
          (import "env" "t" (table 2 funcref))
          (table $own (export "own") 5 funcref)
          (export "again" (table 0))
          (func (export "size") (result i32) memory.size))`)
      )
      const module = new WebAssembly.Module(bytes as Uint8Array<ArrayBuffer>)
      const memory = new WebAssembly.Memory({ initial: 1, maximum: 4 })
      const table = new WebAssembly.Table({ initial: 2, element: "anyfunc" })
      // an unrelated memory offered too: only the one the module imports is its memory
      const imports = { env: { mem: memory, t: table }, other: { m: new WebAssembly.Memory({ initial: 3 }) } }
      const instance = new WebAssembly.Instance(module, imports)
      const walked = Instance.fromInstance(instance, { env: imports.env })
      const byLayout = Instance.fromInstance(instance, imports, {}, module)
      expect(byLayout.memory).toBe(memory)
      expect(byLayout.memory).toBe(walked.memory)
      // the imported table re-exported as "again" counts once: 1 page + (2 + 5) entries × 32 bytes
      expect(byLayout.memoryBytes()).toBe(PAGE + 7 * 32)
      expect(byLayout.memoryBytes()).toBe(walked.memoryBytes())
      memory.grow(1)
      expect(byLayout.linearBytes()).toBe(2 * PAGE)
      // its own exported memory (not one the imports offer), and no tables: no table bytes
      const own = new WebAssembly.Module(
        (yield* Effect.promise(() => wat(`(module (memory (export "own") 2))`, "own.wat"))) as Uint8Array<ArrayBuffer>
      )
      const j = new WebAssembly.Instance(own, {})
      const ownLive = Instance.fromInstance(j, { env: { mem: memory } }, {}, own)
      expect(ownLive.memory).toBe(j.exports.own)
      expect(ownLive.memoryBytes()).toBe(2 * PAGE)
    })
  )
})

describe("Instance: the direct (allocation-free) prepared caller", () => {
  /** Calls `fn` through `prepare` and `prepareDirect` (slot read as the domain reads it) and returns both outcomes. */
  const both = <E extends Error>(
    i: LiveInstance<E>,
    fn: string,
    args: ReadonlyArray<number | bigint>,
    fuel?: number
  ) => {
    const prepared = i.prepare(fn)!(args, fuel)
    const slot = { result: undefined as unknown, memoryBytes: -1, fuelRemaining: -1 as number | undefined }
    const failed = i.prepareDirect(fn)!(args, fuel, slot)
    const direct = failed ?? {
      results: callResults(slot.result),
      memoryBytes: slot.memoryBytes,
      fuelRemaining: slot.fuelRemaining
    }
    return { prepared, direct }
  }

  it.effect("gives prepare's results, memory and errors: none, one, multi-value, i64, traps, after growth", () =>
    Effect.gen(function* () {
      const i = live(Instance.instantiate(yield* module(SAMPLE), {}))
      for (const [fn, args] of [
        ["add", [2, 3]],
        ["swap", [1, 9n]],
        ["nothing", []],
        ["load", [0]],
        ["div", [1, 0]],
        ["load", [PAGE * 10]]
      ] as const) {
        const { prepared, direct } = both(i, fn, args)
        expect(direct).toEqual(prepared)
      }
      // past the calls after which the memory size is read through the helper, and across a growth
      const store = i.prepareDirect("store")!
      const slot = makeCallSlot()
      for (let k = 0; k < 200; k++) expect(store([k * 4, k], undefined, slot)).toBeUndefined()
      expect(slot).toEqual({ result: undefined, memoryBytes: PAGE, fuelRemaining: undefined })
      i.memory!.grow(2)
      expect(store([0, 1], undefined, slot)).toBeUndefined()
      expect(slot.memoryBytes).toBe(3 * PAGE)
      expect(both(i, "add", [1, 1]).direct).toEqual(both(i, "add", [1, 1]).prepared)
      expect(i.prepareDirect("nope")).toBeUndefined()
      i.terminate()
      const after = both(i, "add", [1, 1])
      expect(after.direct).toEqual(after.prepared)
      expect(after.direct).toMatchObject({ _tag: "Trap", reason: "instance terminated" })
    })
  )

  it.effect("a host function calling back into the same instance gets its own outcome (re-entrant calls)", () =>
    Effect.gen(function* () {
      const REENTRANT = `(module
        (import "env" "inner" (func $inner (result i32)))
        (func (export "outer") (result i32) call $inner i32.const 100 i32.add)
        (func (export "seven") (result i32) i32.const 7))`
      let self: LiveInstance | undefined
      const seen: Array<unknown> = []
      const imports = {
        env: {
          inner: () => {
            const inner = self!.call("seven", [])
            const direct = self!.prepare("seven")!([])
            seen.push(inner, direct)
            return 7
          }
        }
      }
      const instance = live(Instance.instantiate<never>(yield* module(REENTRANT), imports))
      self = instance
      expect(instance.call("outer", [])).toEqual({ results: [107], memoryBytes: 0, fuelRemaining: undefined })
      expect(instance.prepare("outer")!([])).toEqual({ results: [107], memoryBytes: 0, fuelRemaining: undefined })
      expect(seen).toEqual(Array(4).fill({ results: [7], memoryBytes: 0, fuelRemaining: undefined }))
    })
  )

  it.effect("meters like prepare: fuel left after a call, FuelExhausted for a runaway loop", () =>
    Effect.gen(function* () {
      const rewritten = rewriteModule(yield* Effect.promise(() => wat(LOOP)), { fuel: { initialFuel: 0n } })
      if (!rewritten.ok) throw rewritten.error
      const i = live(Instance.instantiate(new WebAssembly.Module(rewritten.value.bytes as Uint8Array<ArrayBuffer>), {}))
      const work = both(i, "work", [10], 10_000)
      expect(work.direct).toEqual(work.prepared)
      expect((work.direct as { fuelRemaining: number }).fuelRemaining).toBeLessThan(10_000)
      const spin = i.prepareDirect("spin")!
      const slot = makeCallSlot()
      expect(spin([], 1000, slot)).toMatchObject({ _tag: "FuelExhausted", function: "spin", fuel: 1000 })
      expect(slot).toEqual(makeCallSlot()) // a failed call leaves the slot as it was
    })
  )

  it.effect("the port's prepareDirect maps errors to the domain's classes, like prepare", () =>
    Effect.gen(function* () {
      const compiled = yield* Instance.compile(yield* Effect.promise(() => wat(SAMPLE)), moduleHash("sample"))
      const instance = yield* Instance.instantiateWasm(compiled, {
        agentId: agentId("d"),
        memoryLimit: 4 * PAGE,
        imports: {}
      })
      const slot = makeCallSlot()
      expect(instance.prepareDirect!("add")!([4, 5], undefined, slot)).toBeUndefined()
      expect(instance.prepare!("add")!([4, 5])).toEqual({
        results: callResults(slot.result),
        memoryBytes: slot.memoryBytes,
        fuelRemaining: slot.fuelRemaining
      })
      const trap = instance.prepareDirect!("div")!([1, 0], undefined, slot)
      expect(trap).toBeInstanceOf(Trap)
      expect(trap).toEqual(instance.prepare!("div")!([1, 0]))
    })
  )
})

describe("Instance: one object per instance, operations shared", () => {
  it.effect("two live instances share every operation (no closure per instance) and keep their own state", () =>
    Effect.gen(function* () {
      const module = new WebAssembly.Module((yield* Effect.promise(() => wat(SAMPLE))) as Uint8Array<ArrayBuffer>)
      const a = Instance.instantiate(module, {}) as LiveInstance
      const b = Instance.instantiate(module, {}) as LiveInstance
      for (const op of ["memoryBytes", "linearBytes", "terminated", "prepare", "prepareDirect", "call"] as const) {
        expect(a[op]).toBe(b[op])
      }
      for (const op of ["read", "write", "snapshot", "restore", "terminate"] as const) expect(a[op]).toBe(b[op])
      expect(a.call("bump", [])).toMatchObject({ results: [] })
      expect(a.globals.map(([name, g]) => [name, g.value])).toEqual([
        ["g", 8],
        ["big", 5n]
      ])
      expect(b.globals.map(([name, g]) => [name, g.value])).toEqual([
        ["g", 7],
        ["big", 5n]
      ])
      a.terminate()
      expect(a.terminated()).toBe(true)
      expect(b.terminated()).toBe(false)
      expect(b.call("add", [1, 2])).toMatchObject({ results: [3] })
      expect(a.call("add", [1, 2])).toMatchObject({ _tag: "Trap", reason: "instance terminated" })
    })
  )

  it.effect(
    "the port's WasmInstance: members shared between instances; a copy by spread or rest works as the original",
    () =>
      Effect.gen(function* () {
        const bytes = yield* Effect.promise(() => wat(SAMPLE))
        const compiled = yield* Instance.compile(bytes, moduleHash("h"))
        const options = { agentId: agentId("a"), memoryLimit: 4 * PAGE, imports: {} }
        const one = yield* Instance.instantiateWasm(compiled, options)
        const two = yield* Instance.instantiateWasm(compiled, options)
        expect(one.invoke).toBe(two.invoke)
        expect(one.prepareDirect).toBe(two.prepareDirect)
        expect(yield* one.invoke("bump", [])).toMatchObject({ results: [] })
        // an engine wrapper's copies: every member still reaches the same instance
        const { prepareDirect: _, ...rest } = one
        const spread = { ...one, prepare: undefined }
        expect("prepareDirect" in rest).toBe(false)
        for (const copy of [rest, spread]) {
          expect(yield* copy.invoke("add", [2, 3])).toMatchObject({ results: [5] })
          expect(yield* copy.memoryBytes).toBe(PAGE)
          expect((yield* copy.snapshot).globals).toEqual({ g: 8, big: 5n })
          yield* copy.writeMemory(8, Uint8Array.of(1, 2))
          expect([...(yield* copy.readMemory(8, 2))]).toEqual([1, 2])
        }
        expect(rest.prepare!("add")!([4, 5], undefined)).toMatchObject({ results: [9] })
        expect((yield* two.snapshot).globals).toEqual({ g: 7, big: 5n }) // the other instance untouched
        yield* spread.terminate
        expect(yield* Effect.flip(one.invoke("add", [1, 1]))).toMatchObject({
          _tag: "Trap",
          reason: "instance terminated"
        })
      })
  )
})
