import { agentId, moduleHash, type WasmEngineShape } from "@agent-runtime/domain"
import { wat } from "@agent-runtime/test-support"
import { describe, expect, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import { NativeEngine } from "../src/index.js"

const engine: WasmEngineShape = NativeEngine.make()
const MiB = 1024 * 1024

const instantiate = (text: string, imports: Record<string, Record<string, unknown>> = {}, memoryLimit = 16 * MiB) =>
  Effect.gen(function* () {
    const bytes = yield* Effect.promise(() => wat(text))
    const compiled = yield* engine.compile(bytes, moduleHash("h"))
    return yield* engine.instantiate(compiled, { agentId: agentId("a"), memoryLimit, imports: imports as never })
  })

const SAMPLE = `(module
  (memory (export "memory") 1 4)
  (global $g (export "g") (mut i32) (i32.const 7))
  (global (export "c") i32 (i32.const 1))
  (global $big (export "big") (mut i64) (i64.const 5))
  (func (export "add") (param i32 i32) (result i32) local.get 0 local.get 1 i32.add)
  (func (export "add64") (param i64 i64) (result i64) local.get 0 local.get 1 i64.add)
  (func (export "swap") (param i32 i64) (result i64 i32) local.get 1 local.get 0)
  (func (export "div") (param i32 i32) (result i32) local.get 0 local.get 1 i32.div_s)
  (func (export "crash") unreachable)
  (func $rec (export "recurse") (param i32) (result i32) local.get 0 call $rec)
  (func (export "grow") (param i32) (result i32) local.get 0 memory.grow)
  (func (export "store") (param i32 i32) local.get 0 local.get 1 i32.store)
  (func (export "load") (param i32) (result i32) local.get 0 i32.load)
  (func (export "bump") global.get $g i32.const 1 i32.add global.set $g))`

describe("NativeEngine", () => {
  it("reports its platform and capabilities", () => {
    expect(engine.platform).toBe("Native")
    expect(engine.capabilities.preemptiveTimeout).toBe(false)
    expect(engine.capabilities.runtimeCompile).toBe(true)
  })

  it.effect("invokes with typed values: i32, i64 as bigint, multi-value", () =>
    Effect.gen(function* () {
      const i = yield* instantiate(SAMPLE)
      expect((yield* i.invoke("add", [2, 3])).results).toEqual([5])
      expect((yield* i.invoke("add64", [2n ** 40n, 1n])).results).toEqual([2n ** 40n + 1n])
      expect((yield* i.invoke("swap", [1, 9n])).results).toEqual([9n, 1])
      const outcome = yield* i.invoke("add", [1, 1])
      expect(outcome.memoryBytes).toBe(65536)
    })
  )

  it.effect("maps traps, stack exhaustion and host exceptions to Trap", () =>
    Effect.gen(function* () {
      const i = yield* instantiate(SAMPLE)
      const div = yield* Effect.flip(i.invoke("div", [1, 0]))
      expect(div._tag).toBe("Trap")
      expect(div.message).toMatch(/divide by zero/)
      const crash = yield* Effect.flip(i.invoke("crash", []))
      expect(crash.message).toMatch(/unreachable/)
      const rec = yield* Effect.flip(i.invoke("recurse", [1]))
      expect(rec._tag).toBe("Trap")
      expect(rec.message).toMatch(/call stack/)
      // the instance still works after traps
      expect((yield* i.invoke("add", [1, 2])).results).toEqual([3])

      const host = yield* instantiate(`(module (import "env" "boom" (func $boom)) (func (export "run") call $boom))`, {
        env: {
          boom: () => {
            throw new Error("kaput")
          }
        }
      })
      const err = yield* Effect.flip(host.invoke("run", []))
      expect(err._tag).toBe("Trap")
      expect(err.message).toMatch(/host function threw: kaput/)
    })
  )

  it.effect("FunctionNotFound for a missing export", () =>
    Effect.gen(function* () {
      const i = yield* instantiate(SAMPLE)
      const err = yield* Effect.flip(i.invoke("nope", []))
      expect(err._tag).toBe("FunctionNotFound")
    })
  )

  it.effect("compile errors and link errors are typed", () =>
    Effect.gen(function* () {
      const bad = yield* Effect.flip(engine.compile(new Uint8Array([0, 97, 115, 109, 2, 0, 0, 0]), moduleHash("x")))
      expect(bad._tag).toBe("CompileError")
      const link = yield* Effect.flip(instantiate(`(module (import "env" "f" (func)))`))
      expect(link._tag).toBe("InstantiationError")
      const start = yield* Effect.flip(instantiate(`(module (func $s unreachable) (start $s))`))
      expect(start._tag).toBe("Trap")
    })
  )

  it.effect("refuses an instance whose initial memory is above the budget", () =>
    Effect.gen(function* () {
      const err = yield* Effect.flip(instantiate(`(module (memory (export "memory") 32))`, {}, 1 * MiB))
      expect(err._tag).toBe("MemoryExceeded")
    })
  )

  it.effect("memory.grow past the declared maximum returns -1 and usage follows growth", () =>
    Effect.gen(function* () {
      const i = yield* instantiate(SAMPLE)
      expect((yield* i.invoke("grow", [2])).results).toEqual([1])
      const o = yield* i.invoke("grow", [5])
      expect(o.results).toEqual([-1])
      expect(o.memoryBytes).toBe(3 * 65536)
    })
  )

  it.effect("reads and writes linear memory with bounds checks", () =>
    Effect.gen(function* () {
      const i = yield* instantiate(SAMPLE)
      yield* i.writeMemory(100, new Uint8Array([1, 2, 3, 4]))
      expect((yield* i.invoke("load", [100])).results).toEqual([0x04030201])
      expect([...(yield* i.readMemory(100, 4))]).toEqual([1, 2, 3, 4])
      const oob = yield* Effect.flip(i.readMemory(65530, 10))
      expect(oob.message).toMatch(/out of bounds/)
      const neg = yield* Effect.flip(i.writeMemory(-1, new Uint8Array(1)))
      expect(neg._tag).toBe("Trap")
    })
  )

  it.effect("snapshot skips zero pages and captures mutable globals; restore brings the state back", () =>
    Effect.gen(function* () {
      const i = yield* instantiate(SAMPLE)
      yield* i.invoke("grow", [2])
      yield* i.invoke("store", [2 * 65536 + 8, 42])
      yield* i.invoke("bump", [])
      const snap = yield* i.snapshot
      expect(snap.memoryBytes).toBe(3 * 65536)
      expect(snap.pages.map((p) => p.index)).toEqual([2])
      expect(snap.globals).toEqual({ g: 8, big: 5n })

      const fresh = yield* instantiate(SAMPLE)
      yield* fresh.invoke("store", [0, 99])
      yield* fresh.restore(snap)
      expect((yield* fresh.invoke("load", [2 * 65536 + 8])).results).toEqual([42])
      expect((yield* fresh.invoke("load", [0])).results).toEqual([0])
      yield* fresh.invoke("bump", [])
      expect((yield* fresh.snapshot).globals.g).toBe(9)
    })
  )

  it.effect("terminate makes later calls fail", () =>
    Effect.gen(function* () {
      const i = yield* instantiate(SAMPLE)
      yield* i.terminate
      const err = yield* Effect.flip(i.invoke("add", [1, 2]))
      expect(err.message).toMatch(/terminated/)
    })
  )
})
