import { afterAll, describe, expect, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import { NodeEngine } from "../src/index.js"
import { call, compileWat, instantiateAgent, instantiateWat, MiB, PAGE } from "./helpers.js"

const SAMPLE = `(module
  (memory (export "memory") 1 4)
  (global $g (export "g") (mut i32) (i32.const 7))
  (global (export "c") i32 (i32.const 1))
  (global $big (export "big") (mut i64) (i64.const 5))
  (func (export "add") (param i32 i32) (result i32) local.get 0 local.get 1 i32.add)
  (func (export "add64") (param i64 i64) (result i64) local.get 0 local.get 1 i64.add)
  (func (export "swap") (param i32 i64) (result i64 i32) local.get 1 local.get 0)
  (func (export "fl") (param f32 f64) (result f64) local.get 0 f64.promote_f32 local.get 1 f64.add)
  (func (export "div") (param i32 i32) (result i32) local.get 0 local.get 1 i32.div_s)
  (func (export "crash") unreachable)
  (func $rec (export "recurse") (param i32) (result i32) local.get 0 call $rec)
  (func (export "grow") (param i32) (result i32) local.get 0 memory.grow)
  (func (export "store") (param i32 i32) local.get 0 local.get 1 i32.store)
  (func (export "load") (param i32) (result i32) local.get 0 i32.load)
  (func (export "bump") global.get $g i32.const 1 i32.add global.set $g))`

/** Counts fuel down by one per unit of work and traps below zero (what the fuel rewrite produces). */
const FUELED = `(module
  (global $fuel (export "agent-runtime:fuel") (mut i64) (i64.const 0))
  (func $burn
    global.get $fuel i64.const 1 i64.sub global.set $fuel
    global.get $fuel i64.const 0 i64.lt_s if unreachable end)
  (func (export "work") (param $n i32) (result i32) (local $i i32)
    (block $done (loop $again
      (br_if $done (i32.ge_s (local.get $i) (local.get $n)))
      call $burn
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br $again)))
    local.get $i)
  (func (export "forever") (loop call $burn br 0))
  (func (export "crash") unreachable))`

for (const channel of ["shared", "message"] as const) {
  describe(`NodeEngine (${channel} channel)`, () => {
    const engine = NodeEngine.make({ workers: 2, channel })
    afterAll(() => Effect.runPromise(engine.shutdown))

    it("reports its platform and capabilities", () => {
      expect(engine.platform).toBe("Node")
      expect(engine.capabilities).toEqual({
        workers: true,
        preemptiveTimeout: true,
        fuel: true,
        wasi: true,
        sharedMemory: true,
        runtimeCompile: true,
        snapshots: true,
        // recovery tracking is on by default: the engine asks for the write barrier
        dirtyPages: true
      })
    })

    it.effect("invokes with typed values: i32, i64 as bigint, f32/f64, multi-value; memoryBytes after each call", () =>
      Effect.gen(function* () {
        const i = yield* instantiateWat(engine, SAMPLE)
        expect(yield* call(i, "add", 2, 3)).toEqual([5])
        expect(yield* call(i, "add", -1, 0xffffffff)).toEqual([-2])
        expect(yield* call(i, "add64", 2n ** 40n, 1n)).toEqual([2n ** 40n + 1n])
        expect(yield* call(i, "add64", 2n ** 63n - 1n, 1n)).toEqual([-(2n ** 63n)])
        expect(yield* call(i, "swap", 1, 9n)).toEqual([9n, 1])
        expect(yield* call(i, "fl", 1.5, 0.25)).toEqual([1.75])
        expect(
          yield* call(i, "crash").pipe(
            Effect.flip,
            Effect.map((e) => e._tag)
          )
        ).toBe("Trap")
        const outcome = yield* i.invoke("add", [1, 1])
        expect(outcome.memoryBytes).toBe(PAGE)
        expect(outcome.fuelRemaining).toBeUndefined()
        expect(yield* i.memoryBytes).toBe(PAGE)
      })
    )

    it.effect("maps traps, stack exhaustion and host exceptions to Trap, like the native engine", () =>
      Effect.gen(function* () {
        const i = yield* instantiateWat(engine, SAMPLE)
        const div = yield* Effect.flip(i.invoke("div", [1, 0]))
        expect(div._tag).toBe("Trap")
        expect(div.message).toMatch(/divide by zero/)
        expect((yield* Effect.flip(i.invoke("crash", []))).message).toMatch(/unreachable/)
        const rec = yield* Effect.flip(i.invoke("recurse", [1]))
        expect(rec._tag).toBe("Trap")
        expect(rec.message).toMatch(/call stack exhausted/)
        // the instance (and its worker) still works after traps
        expect(yield* call(i, "add", 1, 2)).toEqual([3])

        const host = yield* instantiateWat(
          engine,
          `(module (import "env" "boom" (func $boom)) (import "env" "bad" (func $bad (result i32)))
             (import "env" "big" (func $big (result i32)))
             (func (export "run") call $boom) (func (export "bad") (result i32) call $bad)
             (func (export "big") (result i32) call $big))`,
          {
            imports: {
              env: {
                boom: () => {
                  throw new Error("kaput")
                },
                bad: () => ({ not: "a number" }),
                big: () => 5n
              }
            }
          }
        )
        const err = yield* Effect.flip(host.invoke("run", []))
        expect(err._tag).toBe("Trap")
        expect(err.message).toBe("run trapped: host function threw: kaput")
        // WebAssembly JS API (ToWebAssemblyValue), as in-process: an object becomes ToInt32(ToNumber(it)) = 0,
        // a bigint for an i32 is a TypeError at the JS boundary
        expect(yield* call(host, "bad")).toEqual([0])
        expect((yield* Effect.flip(host.invoke("big", []))).message).toMatch(/type error at the JS boundary/)
      })
    )

    it.effect("FunctionNotFound for a missing export; a non-number argument is refused", () =>
      Effect.gen(function* () {
        const i = yield* instantiateWat(engine, SAMPLE)
        expect((yield* Effect.flip(i.invoke("nope", [])))._tag).toBe("FunctionNotFound")
        expect((yield* Effect.flip(i.invoke("g", [])))._tag).toBe("FunctionNotFound")
        const refused = yield* Effect.flip(i.invoke("add", [{} as never, 1]))
        expect(refused.message).toMatch(/cannot cross to a worker/)
      })
    )

    it.effect("compile errors, link errors and unshareable imports are typed", () =>
      Effect.gen(function* () {
        const bad = yield* Effect.flip(engine.compile(new Uint8Array([0, 97, 115, 109, 2, 0, 0, 0]), "x" as never))
        expect(bad._tag).toBe("CompileError")
        const link = yield* Effect.flip(instantiateWat(engine, `(module (import "env" "f" (func)))`))
        expect(link._tag).toBe("InstantiationError")
        const wrongKind = yield* Effect.flip(
          instantiateWat(engine, `(module (import "env" "f" (func)))`, { imports: { env: { f: 3 } } })
        )
        expect(wrongKind._tag).toBe("InstantiationError")
        const memory = yield* Effect.flip(
          instantiateWat(engine, `(module (import "env" "m" (memory 1)))`, {
            imports: { env: { m: new WebAssembly.Memory({ initial: 1 }) } }
          })
        )
        expect(memory._tag).toBe("InstantiationError")
        expect(memory.message).toMatch(/env\.m: a non-shared WebAssembly.Memory cannot be shared with a worker/)
        const start = yield* Effect.flip(instantiateWat(engine, `(module (func $s unreachable) (start $s))`))
        expect(start._tag).toBe("Trap")
        expect(start.message).toMatch(/\(start\) trapped: unreachable/)
      })
    )

    it.effect("imports values and a shared memory, which host and guest then both see", () =>
      Effect.gen(function* () {
        const shared = new WebAssembly.Memory({ initial: 1, maximum: 2, shared: true })
        const i = yield* instantiateWat(
          engine,
          `(module (import "env" "m" (memory 1 2 shared)) (import "env" "k" (global i32)) (import "env" "k64" (global i64))
             (func (export "put") (param i32 i32) local.get 0 local.get 1 i32.store)
             (func (export "k") (result i32 i64) global.get 0 global.get 1))`,
          { imports: { env: { m: shared, k: 41, k64: 2n ** 50n } } }
        )
        expect(yield* call(i, "k")).toEqual([41, 2n ** 50n])
        yield* i.invoke("put", [8, 0x01020304])
        expect(new DataView(shared.buffer).getInt32(8, true)).toBe(0x01020304)
        expect(yield* i.memoryBytes).toBe(PAGE)
      })
    )

    it.effect("refuses an instance whose initial memory is above the budget", () =>
      Effect.gen(function* () {
        const err = yield* Effect.flip(
          instantiateWat(engine, `(module (memory (export "memory") 32))`, { memoryLimit: MiB })
        )
        expect(err._tag).toBe("MemoryExceeded")
        expect(err).toMatchObject({ used: 32 * PAGE, limit: MiB })
      })
    )

    it.effect("memory.grow to the cap: -1 past the maximum, usage follows growth, the agent keeps working", () =>
      Effect.gen(function* () {
        const i = yield* instantiateWat(engine, SAMPLE)
        expect(yield* call(i, "grow", 2)).toEqual([1])
        const o = yield* i.invoke("grow", [5])
        expect(o.results).toEqual([-1])
        expect(o.memoryBytes).toBe(3 * PAGE)
        expect(yield* call(i, "grow", 1)).toEqual([3])
        expect(yield* call(i, "grow", 1)).toEqual([-1])
        expect(yield* i.memoryBytes).toBe(4 * PAGE)
        expect(yield* call(i, "add", 1, 1)).toEqual([2])
      })
    )

    it.effect("reads and writes linear memory with bounds checks, also payloads larger than the channel", () =>
      Effect.gen(function* () {
        const i = yield* instantiateWat(engine, SAMPLE)
        yield* i.writeMemory(100, new Uint8Array([1, 2, 3, 4]))
        expect(yield* call(i, "load", 100)).toEqual([0x04030201])
        expect([...(yield* i.readMemory(100, 4))]).toEqual([1, 2, 3, 4])
        expect((yield* Effect.flip(i.readMemory(65530, 10))).message).toMatch(/out of bounds/)
        expect((yield* Effect.flip(i.writeMemory(-1, new Uint8Array(1))))._tag).toBe("Trap")
        // 3 pages (192 KiB) of a pattern, then the whole memory back (256 KiB, above the default 256 KiB payload region with the header)
        yield* call(i, "grow", 3)
        const big = new Uint8Array(3 * PAGE).map((_, k) => (k * 7) & 0xff)
        yield* i.writeMemory(PAGE, big)
        const all = yield* i.readMemory(0, 4 * PAGE)
        expect(all.byteLength).toBe(4 * PAGE)
        expect(Buffer.from(all.subarray(PAGE)).equals(Buffer.from(big))).toBe(true)
      })
    )

    it.effect("snapshot skips zero pages and captures mutable globals; restore brings the state back", () =>
      Effect.gen(function* () {
        const i = yield* instantiateWat(engine, SAMPLE)
        yield* i.invoke("grow", [2])
        yield* i.invoke("store", [2 * PAGE + 8, 42])
        yield* i.invoke("bump", [])
        const snap = yield* i.snapshot
        expect(snap.memoryBytes).toBe(3 * PAGE)
        expect(snap.pages.map((p) => p.index)).toEqual([2])
        expect(snap.globals).toEqual({ g: 8, big: 5n })

        const fresh = yield* instantiateWat(engine, SAMPLE)
        yield* fresh.invoke("store", [0, 99])
        yield* fresh.restore(snap)
        expect(yield* call(fresh, "load", 2 * PAGE + 8)).toEqual([42])
        expect(yield* call(fresh, "load", 0)).toEqual([0])
        yield* fresh.invoke("bump", [])
        expect((yield* fresh.snapshot).globals.g).toBe(9)

        const small = yield* instantiateWat(engine, `(module (memory (export "memory") 1 1))`)
        const tooBig = yield* Effect.flip(small.restore(snap))
        expect(tooBig._tag).toBe("MemoryExceeded")
      })
    )

    it.effect("terminate makes later calls fail with 'instance terminated' and is idempotent", () =>
      Effect.gen(function* () {
        const i = yield* instantiateWat(engine, SAMPLE)
        yield* i.terminate
        yield* i.terminate
        const err = yield* Effect.flip(i.invoke("add", [1, 2]))
        expect(err._tag).toBe("Trap")
        expect(err.message).toMatch(/instance terminated/)
        expect((yield* Effect.flip(i.snapshot)).message).toMatch(/terminated/)
      })
    )

    it.effect("fuel: set before the call, reported after; running out is FuelExhausted", () =>
      Effect.gen(function* () {
        const i = yield* instantiateWat(engine, FUELED)
        const o = yield* i.invoke("work", [10], { fuel: 100 })
        expect(o.results).toEqual([10])
        expect(o.fuelRemaining).toBe(90)
        const out = yield* Effect.flip(i.invoke("forever", [], { fuel: 50 }))
        expect(out._tag).toBe("FuelExhausted")
        expect(out).toMatchObject({ function: "forever", fuel: 50 })
        // a trap with fuel left is a plain Trap
        expect((yield* Effect.flip(i.invoke("crash", [], { fuel: 5 })))._tag).toBe("Trap")
        // without fuel, nothing is metered or reported
        expect((yield* i.invoke("work", [0])).fuelRemaining).toBeUndefined()
        // a module without the fuel global ignores the option
        const plain = yield* instantiateWat(engine, SAMPLE)
        expect((yield* plain.invoke("add", [1, 1], { fuel: 10 })).fuelRemaining).toBeUndefined()
      })
    )

    it.effect("an interrupted call is preempted: its worker is terminated and the instance ends", () =>
      Effect.gen(function* () {
        const i = yield* instantiateWat(engine, `(module (func (export "spin") (loop br 0)))`)
        const fiber = yield* Effect.forkChild(i.invoke("spin", []))
        yield* Effect.promise(() => new Promise((r) => setTimeout(r, 50)))
        yield* Fiber.interrupt(fiber)
        expect(Exit.hasInterrupts(yield* Fiber.await(fiber))).toBe(true)
        expect((yield* Effect.flip(i.invoke("spin", []))).message).toMatch(/instance terminated/)
      })
    )

    describe("real agents", () => {
      it.effect("counter: state across calls, i64", () =>
        Effect.gen(function* () {
          const c = yield* instantiateAgent(engine, "counter")
          expect(yield* call(c, "increment")).toEqual([1])
          expect(yield* call(c, "add", 41)).toEqual([42])
          expect(yield* call(c, "get")).toEqual([42])
          expect(yield* call(c, "add_i64", 2n ** 62n, 2n ** 62n)).toEqual([-(2n ** 63n)])
          yield* c.invoke("reset", [])
          expect(yield* call(c, "get")).toEqual([0])
        })
      )

      it.effect("text: bytes through linear memory (alloc, write, word_count, checksum, top_word)", () =>
        Effect.gen(function* () {
          const t = yield* instantiateAgent(engine, "text")
          const input = new TextEncoder().encode("The cat and the hat and THE bat")
          const [ptr] = (yield* call(t, "alloc", input.length)) as [number]
          yield* t.writeMemory(ptr, input)
          expect(yield* call(t, "word_count", ptr, input.length)).toEqual([8])
          expect(yield* call(t, "unique_words", ptr, input.length)).toEqual([5])
          const [crc] = (yield* call(t, "checksum", ptr, input.length)) as [number]
          expect(crc >>> 0).toBe(crc32(input))
          const [pair] = (yield* call(t, "top_word", ptr, input.length)) as [number]
          const pairBytes = new DataView((yield* t.readMemory(pair, 8)).buffer)
          const word = yield* t.readMemory(pairBytes.getUint32(0, true), pairBytes.getUint32(4, true))
          expect(new TextDecoder().decode(word)).toBe("the")
        })
      )

      it.effect("multi: multi-value results and floats", () =>
        Effect.gen(function* () {
          const m = yield* instantiateAgent(engine, "multi")
          expect(yield* call(m, "swap", 3, 4n)).toEqual([4n, 3])
          expect(yield* call(m, "divmod", 7, 2)).toEqual([3, 1])
          expect(yield* call(m, "all_types")).toEqual([7, -8n, 1.5, 2.25])
          expect(yield* call(m, "add_f32", 0.1, 0.2)).toEqual([Math.fround(Math.fround(0.1) + Math.fround(0.2))])
          expect((yield* call(m, "sqrt_f64", -1))[0]).toBeNaN()
          expect((yield* Effect.flip(m.invoke("divmod", [1, 0]))).message).toMatch(/divide by zero/)
        })
      )

      it.effect("trapper: every kind of trap, and the instance stays usable", () =>
        Effect.gen(function* () {
          const t = yield* instantiateAgent(engine, "trapper")
          expect((yield* Effect.flip(t.invoke("divide", [1, 0]))).message).toMatch(/divide by zero/)
          expect((yield* Effect.flip(t.invoke("divide", [-(2 ** 31), -1]))).message).toMatch(/unrepresentable/)
          expect((yield* Effect.flip(t.invoke("crash", []))).message).toMatch(/unreachable/)
          expect((yield* Effect.flip(t.invoke("oob", []))).message).toMatch(/out of bounds/)
          expect(yield* call(t, "recurse", 100)).toEqual([100])
          const deep = yield* Effect.flip(t.invoke("recurse", [100_000_000]))
          expect(deep._tag).toBe("Trap")
          expect(deep.message).toMatch(/call stack exhausted/)
          expect(yield* call(t, "ok")).toEqual([42])
        })
      )

      it.effect("host-caller: host imports run on the host thread, synchronously for the guest", () =>
        Effect.gen(function* () {
          const logged: Array<number> = []
          const h = yield* instantiateAgent(engine, "host-caller", {
            env: { log: (x: number) => void logged.push(x), now: () => 1234.5 }
          })
          yield* h.invoke("call_log", [7])
          expect(yield* call(h, "log_n", 5)).toEqual([5])
          expect(logged).toEqual([7, 0, 1, 2, 3, 4])
          expect(yield* call(h, "call_now")).toEqual([1234.5])
          expect(yield* call(h, "elapsed_since", 1000)).toEqual([234.5])
          expect(yield* call(h, "log_calls")).toEqual([6])
        })
      )

      it.effect("lifecycle: _initialize, state, health", () =>
        Effect.gen(function* () {
          const l = yield* instantiateAgent(engine, "lifecycle")
          expect(yield* call(l, "state")).toEqual([0])
          yield* l.invoke("_initialize", [])
          expect(yield* call(l, "state")).toEqual([100])
          expect(yield* call(l, "bump")).toEqual([101])
          yield* l.invoke("break_health", [])
          expect(yield* call(l, "_health_check")).toEqual([2])
          expect(yield* call(l, "_recover")).toEqual([0])
          expect(yield* call(l, "_health_check")).toEqual([0])
        })
      )

      it.effect("agents are spread over the pool (least loaded first)", () =>
        Effect.gen(function* () {
          const local = NodeEngine.make({ workers: 3, channel })
          const compiled = yield* compileWat(local, `(module (func (export "f")))`)
          const instances = yield* Effect.forEach([1, 2, 3, 4, 5, 6], (n) =>
            local.instantiate(compiled, { agentId: `spread-${n}` as never, memoryLimit: MiB, imports: {} })
          )
          yield* Effect.forEach(instances, (i) => i.invoke("f", []))
          expect(local.stats().workers.map((w) => w.agents)).toEqual([2, 2, 2])
          expect(new Set(instances.map((i) => local.threadOf(i))).size).toBe(3)
          yield* local.shutdown
          expect((yield* Effect.flip(instances[0]!.invoke("f", []))).message).toMatch(/terminated/)
          expect(
            (yield* Effect.flip(
              local.instantiate(compiled, { agentId: "late" as never, memoryLimit: MiB, imports: {} })
            ))._tag
          ).toBe("InstantiationError")
        })
      )
    })
  })
}

function crc32(bytes: Uint8Array): number {
  let crc = 0xffffffff
  for (const b of bytes) {
    crc ^= b
    for (let k = 0; k < 8; k++) crc = (crc >>> 1) ^ (0xedb88320 & -(crc & 1))
  }
  return (crc ^ 0xffffffff) >>> 0
}
