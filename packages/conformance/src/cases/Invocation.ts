/**
 * Invoking exports (DESIGN.md "Public API" `invoke`): typed values (i64 as
 * bigint, multi-value, floats), bytes through linear memory, host imports,
 * argument checking, and traps.
 */
import {
  AgentNotFound,
  agentId,
  FunctionNotFound,
  InstantiationError,
  SignatureMismatch,
  Trap,
  type WasmValue
} from "@agent-runtime/domain"
import { describe, expect, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import { MiB, PAGE, type TestRuntime } from "../Harness.js"
import { SnapshotCodec } from "@agent-runtime/domain"
import { prose, wordStats } from "../internal/words.js"
import type { SuiteContext } from "./Context.js"

const { crc32 } = SnapshotCodec

const encoder = new TextEncoder()
const decoder = new TextDecoder()

/** Passes `text` to a text-agent function through its linear memory (alloc, write, call, dealloc). */
export const withText = (t: TestRuntime, id: string, fn: string, text: string | Uint8Array) =>
  Effect.gen(function* () {
    const bytes = typeof text === "string" ? encoder.encode(text) : text
    const [ptr] = yield* t.call(id, "alloc", [bytes.length])
    yield* t.rt.writeMemory(agentId(id), ptr as number, bytes)
    const results = yield* t.call(id, fn, [ptr as number, bytes.length])
    return { ptr: ptr as number, len: bytes.length, results }
  })

/** Reads a byte-returning function's `(ptr, len)` pair and the bytes it points to. */
export const readPair = (t: TestRuntime, id: string, pairPtr: number) =>
  Effect.gen(function* () {
    const pair = yield* t.rt.readMemory(agentId(id), pairPtr, 8)
    const view = new DataView(pair.buffer, pair.byteOffset, 8)
    const ptr = view.getUint32(0, true)
    const len = view.getUint32(4, true)
    return len === 0 ? new Uint8Array(0) : yield* t.rt.readMemory(agentId(id), ptr, len)
  })

/** word_count, unique_words, checksum (unsigned) and top_word of `text` on the text agent `id`. */
export const analyse = (t: TestRuntime, id: string, text: string | Uint8Array) =>
  Effect.gen(function* () {
    const count = (yield* withText(t, id, "word_count", text)).results[0]
    const unique = (yield* withText(t, id, "unique_words", text)).results[0]
    const checksum = ((yield* withText(t, id, "checksum", text)).results[0] as number) >>> 0
    const top = yield* withText(t, id, "top_word", text)
    const word = decoder.decode(yield* readPair(t, id, top.results[0] as number))
    yield* t.call(id, "dealloc", [top.ptr, top.len])
    return { count, unique, checksum, top: word }
  })

const SENTENCE = "The quick brown fox jumps over the lazy dog. The dog sleeps; the FOX runs -- 42 times!"

export const invocationCases = ({ run, caps }: SuiteContext) =>
  describe("invocation", () => {
    it.effect("counter: i32 results, i64 as bigint (wrapping), void results", () =>
      run(({ spawn, call, info }) =>
        Effect.gen(function* () {
          yield* spawn("c", "counter", { memoryLimit: MiB })
          expect(yield* call("c", "increment")).toEqual([1])
          expect(yield* call("c", "add", [41])).toEqual([42])
          expect(yield* call("c", "get")).toEqual([42])
          expect(yield* call("c", "reset")).toEqual([])
          expect(yield* call("c", "add", [2 ** 31 - 1])).toEqual([2 ** 31 - 1])
          expect(yield* call("c", "increment")).toEqual([-(2 ** 31)])
          expect(yield* call("c", "add_i64", [2n ** 62n, 1n])).toEqual([2n ** 62n + 1n])
          expect(yield* call("c", "add_i64", [2n ** 63n - 1n, 1n])).toEqual([-(2n ** 63n)])
          expect(yield* call("c", "add_i64", [-5n, 3n])).toEqual([-2n])
          expect((yield* info("c")).invocationCount).toBe(9)
        })
      )
    )

    it.effect("multi: multi-value results, f32 and f64", () =>
      run(({ spawn, call }) =>
        Effect.gen(function* () {
          yield* spawn("m", "multi", { memoryLimit: MiB })
          expect(yield* call("m", "swap", [1, 9n])).toEqual([9n, 1])
          expect(yield* call("m", "divmod", [7, 2])).toEqual([3, 1])
          expect(yield* call("m", "divmod", [-7, 2])).toEqual([-3, -1])
          expect(yield* call("m", "add_f32", [0.1, 0.2])).toEqual([Math.fround(Math.fround(0.1) + Math.fround(0.2))])
          expect(yield* call("m", "mul_f64", [1.5, 4])).toEqual([6])
          expect(yield* call("m", "mul_f64", [0.1, 3])).toEqual([0.1 * 3])
          expect(yield* call("m", "sqrt_f64", [2])).toEqual([Math.SQRT2])
          const [nan] = yield* call("m", "sqrt_f64", [-1])
          expect(Number.isNaN(nan)).toBe(true)
          expect(yield* call("m", "all_types")).toEqual([7, -8n, 1.5, 2.25])
          const e = yield* Effect.flip(call("m", "divmod", [1, 0]))
          expect(e).toBeInstanceOf(Trap)
        })
      )
    )

    it.effect("no-memory: functions and an internal global without linear memory; memory reads are refused", () =>
      run(({ rt, spawn, call, info }) =>
        Effect.gen(function* () {
          yield* spawn("n", "no-memory", { memoryLimit: MiB })
          expect(yield* call("n", "add", [2, 3])).toEqual([5])
          expect(yield* call("n", "accumulate", [5])).toEqual([5])
          expect(yield* call("n", "accumulate", [7])).toEqual([12])
          expect(yield* call("n", "factorial", [20n])).toEqual([2432902008176640000n])
          expect(yield* call("n", "factorial", [21n])).toEqual([BigInt.asIntN(64, 51090942171709440000n)])
          expect((yield* info("n")).budget.used).toBe(0)
          expect(yield* Effect.flip(rt.readMemory(agentId("n"), 0, 1))).toBeInstanceOf(Trap)
        })
      )
    )

    it.effect(
      "text: real work on bytes passed through linear memory (word_count, unique_words, CRC-32, top_word via its (ptr, len) pair)",
      () =>
        run((t) =>
          Effect.gen(function* () {
            yield* t.spawn("t", "text", { memoryLimit: 32 * MiB })
            const bytes = encoder.encode(SENTENCE)
            const expected = wordStats(bytes)
            expect(expected).toEqual({ count: 16, unique: 11, top: "the" })
            const got = yield* analyse(t, "t", SENTENCE)
            expect(got).toEqual({ count: 16, unique: 11, checksum: crc32(bytes), top: "the" })
            // no words: top_word is the empty (0, 0) pair
            expect(yield* analyse(t, "t", "42 -- !!")).toEqual({
              count: 0,
              unique: 0,
              checksum: crc32(encoder.encode("42 -- !!")),
              top: ""
            })
            // non-ASCII bytes separate words
            const accented = encoder.encode("café crème brûlée")
            expect(wordStats(accented).count).toBe(6)
            expect(yield* analyse(t, "t", accented)).toEqual({ ...wordStats(accented), checksum: crc32(accented) })
            // a large input grows the agent's memory; results still match the JavaScript oracle
            const before = (yield* t.info("t")).budget.used
            const big = encoder.encode(prose(400_000, 7))
            const stats = wordStats(big)
            const result = yield* analyse(t, "t", big)
            expect(result).toEqual({ count: stats.count, unique: stats.unique, checksum: crc32(big), top: stats.top })
            const after = (yield* t.info("t")).budget
            expect(after.used).toBeGreaterThan(before)
            expect(after.used).toBeGreaterThanOrEqual(big.length)
            expect(after.used % PAGE).toBe(0)
          })
        )
    )

    it.effect(
      "host-caller: granted host imports are called with typed values; a missing import → InstantiationError naming it",
      () =>
        run(({ rt, spawn, call }) =>
          Effect.gen(function* () {
            const logged: Array<number> = []
            const env = { log: (x: number) => void logged.push(x), now: () => 1234.5 }
            yield* spawn("h", "host-caller", { memoryLimit: MiB, imports: { env } })
            expect(yield* call("h", "call_log", [7])).toEqual([])
            expect(yield* call("h", "log_n", [3])).toEqual([3])
            expect(logged).toEqual([7, 0, 1, 2])
            expect(yield* call("h", "call_now")).toEqual([1234.5])
            expect(yield* call("h", "elapsed_since", [1000])).toEqual([234.5])
            expect(yield* call("h", "log_calls")).toEqual([4])

            const missing = yield* Effect.flip(
              spawn("h2", "host-caller", { memoryLimit: MiB, imports: { env: { log: env.log } } })
            )
            expect(missing).toBeInstanceOf(InstantiationError)
            expect(missing.message).toMatch(/"env"\."now"/)
            const none = yield* Effect.flip(spawn("h3", "host-caller", { memoryLimit: MiB }))
            expect(none).toBeInstanceOf(InstantiationError)
            expect(none.message).toMatch(/"env"\."log"/)
            expect((yield* rt.agents).map((a) => a.agentId)).toEqual(["h"])
            expect((yield* rt.stats).memory.reserved).toBe(MiB)
          })
        )
    )

    it.effect(
      "arguments are checked against the export's signature: SignatureMismatch, and the guest is not called",
      () =>
        run(({ spawn, call, info, spy }) =>
          Effect.gen(function* () {
            yield* spawn("c", "counter", { memoryLimit: MiB })
            yield* call("c", "add", [3])
            const bad = (fn: string, args: ReadonlyArray<unknown>) =>
              Effect.flip(call("c", fn, args as ReadonlyArray<WasmValue>))
            const abc = yield* bad("add", ["abc"])
            expect(abc).toBeInstanceOf(SignatureMismatch)
            expect(abc).toMatchObject({ function: "add", index: 0 })
            expect(abc.message).toMatch(/expected i32/)
            expect(yield* bad("add", [])).toMatchObject({ _tag: "SignatureMismatch", index: -1 })
            expect(yield* bad("add", [1, 2])).toMatchObject({ _tag: "SignatureMismatch", index: -1 })
            expect(yield* bad("add", [1.5])).toMatchObject({ _tag: "SignatureMismatch", index: 0 })
            expect(yield* bad("add", [2 ** 32])).toMatchObject({ _tag: "SignatureMismatch", index: 0 })
            expect(yield* bad("add", [1n])).toMatchObject({ _tag: "SignatureMismatch", index: 0 })
            const i64 = yield* bad("add_i64", [1, 2n])
            expect(i64).toMatchObject({ _tag: "SignatureMismatch", index: 0 })
            expect(i64.message).toMatch(/expected i64 \(bigint\)/)
            expect(yield* bad("add_i64", [1n, 2 ** 70])).toMatchObject({ _tag: "SignatureMismatch", index: 1 })
            expect(yield* bad("increment", [1])).toMatchObject({ _tag: "SignatureMismatch", index: -1 })
            expect(callsOfFn(spy.calls, "add")).toBe(1)
            expect(yield* call("c", "get")).toEqual([3])
            expect((yield* info("c")).invocationCount).toBe(2)
          })
        )
    )

    it.effect(
      "FunctionNotFound for a missing export and for an export that is not a function; AgentNotFound for an unknown agent",
      () =>
        run(({ spawn, call }) =>
          Effect.gen(function* () {
            yield* spawn("c", "counter", { memoryLimit: MiB })
            const nope = yield* Effect.flip(call("c", "nope"))
            expect(nope).toBeInstanceOf(FunctionNotFound)
            expect(nope).toMatchObject({ function: "nope" })
            expect(yield* Effect.flip(call("c", "memory"))).toBeInstanceOf(FunctionNotFound)
            expect(yield* Effect.flip(call("ghost", "get"))).toBeInstanceOf(AgentNotFound)
          })
        )
    )

    it.effect(
      "traps (divide by zero, unrepresentable, unreachable, out of bounds, stack overflow) → Trap with the message; the agent keeps working",
      () =>
        run(({ rt, spawn, call, info }) =>
          Effect.gen(function* () {
            yield* spawn("tr", "trapper", { memoryLimit: MiB })
            const cases: ReadonlyArray<readonly [string, ReadonlyArray<WasmValue>, RegExp]> = [
              ["divide", [1, 0], /divide by zero/i],
              ["divide", [-(2 ** 31), -1], /unrepresentable/i],
              ["crash", [], /unreachable/i],
              ["oob", [], /out of bounds/i],
              ["recurse", [100_000_000], /stack/i]
            ]
            for (const [fn, args, message] of cases) {
              const e = yield* Effect.flip(call("tr", fn, args))
              expect(e).toBeInstanceOf(Trap)
              expect(e).toMatchObject({ function: fn })
              expect(e.message).toMatch(message)
              expect(yield* call("tr", "ok")).toEqual([42])
            }
            expect(yield* call("tr", "divide", [7, 2])).toEqual([3])
            expect(yield* call("tr", "recurse", [100])).toEqual([100])
            const a = yield* info("tr")
            expect(a.state).toBe("Running")
            expect(a.errorCount).toBe(cases.length)
            expect(a.lastError).toMatch(/stack/i)
            expect((yield* rt.stats).invocationErrors).toBe(cases.length)
          })
        )
    )

    it.effect(
      'prepared call: a trap runs invoke\'s recovery (onTrap "restore": fresh instance, AgentRecovered); "keep" keeps the instance',
      () =>
        run((t) =>
          Effect.gen(function* () {
            const events = yield* t.collect
            for (const policy of ["restore", "keep"] as const) {
              const id = `pc-${policy}`
              yield* t.spawn(id, "leaky", { onTrap: policy })
              const leak = yield* t.rt.prepare(agentId(id), "leak")
              const calls = yield* t.rt.prepare(agentId(id), "calls_made")
              // the synchronous handle where the engine has one (in-process), else the handle's invoke
              const viaHandle = (h: typeof leak, args: ReadonlyArray<WasmValue>) =>
                h.call === undefined
                  ? h.invoke(args)
                  : Effect.try({ try: () => h.call!(...args), catch: (e) => e as Trap })
              expect(yield* viaHandle(leak, [1])).toEqual([1])
              const e = yield* Effect.flip(viaHandle(leak, [1 << 20])) // counts the call, then traps
              expect(e).toMatchObject({ _tag: "Trap", function: "leak" })
              yield* t.settle
              expect(yield* viaHandle(calls, [])).toEqual(policy === "restore" ? [0] : [2])
              const info = yield* t.info(id)
              expect(info.errorCount).toBe(1)
              expect(info.state).toBe("Running")
            }
            yield* t.settle
            expect(events.of("AgentRecovered").map((x) => [x.agentId, x.from])).toEqual([["pc-restore", "Fresh"]])
          })
        )
    )

    it.effect("start-trap: a trap in the start function fails the spawn with Trap and leaves nothing behind", () =>
      run(({ rt, spawn, call }) =>
        Effect.gen(function* () {
          const e = yield* Effect.flip(spawn("st", "start-trap", { memoryLimit: MiB }))
          expect(e).toBeInstanceOf(Trap)
          expect(e.message).toMatch(/unreachable/i)
          expect(yield* rt.agents).toHaveLength(0)
          const stats = yield* rt.stats
          expect(stats.memory.reserved).toBe(0)
          expect(stats.spawned).toBe(0)
          // the id is free again
          yield* spawn("st", "counter", { memoryLimit: MiB })
          expect(yield* call("st", "increment")).toEqual([1])
        })
      )
    )

    it.effect("grower: memory.grow honours the module's maximum (-1 past it)", () =>
      run(({ spawn, call, info }) =>
        Effect.gen(function* () {
          yield* spawn("g", "grower", { memoryLimit: MiB })
          expect(yield* call("g", "grow", [1])).toEqual([1])
          expect(yield* call("g", "grow", [10])).toEqual([-1])
          expect(yield* call("g", "size")).toEqual([2])
          yield* call("g", "poke", [2 * PAGE - 1, 9])
          expect(yield* call("g", "peek", [2 * PAGE - 1])).toEqual([9])
          expect((yield* info("g")).budget.used).toBe(2 * PAGE)
          expect(yield* Effect.flip(call("g", "peek", [2 * PAGE]))).toBeInstanceOf(Trap)
          // the trap discarded the instance (onTrap "restore", issue 12 item 7): back at its initial page
          expect((yield* info("g")).budget.used).toBe(PAGE)
          expect(yield* call("g", "size")).toEqual([1])
        })
      )
    )

    describe("CPU limits (capabilities.preemptiveTimeout / capabilities.fuel)", () => {
      it.effect("looper: bounded loops run on every engine", () =>
        run(({ spawn, call }) =>
          Effect.gen(function* () {
            yield* spawn("l", "looper", { memoryLimit: MiB })
            expect(yield* call("l", "spin_n", [1000])).toEqual([1000])
            expect(yield* call("l", "spin_n", [-5])).toEqual([0])
            expect(yield* call("l", "spin_n", [234])).toEqual([234])
            expect(yield* call("l", "iterations")).toEqual([1234n])
          })
        )
      )

      it.effect.skipIf(caps.preemptiveTimeout || caps.fuel)(
        "an engine that can neither preempt nor meter refuses timeoutMs and fuel with InvalidConfig (spin is never run)",
        () =>
          run(({ rt, spawn }) =>
            Effect.gen(function* () {
              expect(yield* Effect.flip(spawn("l", "looper", { memoryLimit: MiB, timeoutMs: 100 }))).toMatchObject({
                _tag: "InvalidConfig"
              })
              expect(yield* Effect.flip(spawn("l", "looper", { memoryLimit: MiB, fuel: 1_000_000 }))).toMatchObject({
                _tag: "InvalidConfig"
              })
              expect(yield* rt.agents).toHaveLength(0)
            })
          )
      )

      it.effect.skipIf(!caps.fuel)(
        "fuel: an infinite loop runs out of fuel (FuelExhausted); bounded work within the fuel succeeds",
        () =>
          run(({ spawn, call }) =>
            Effect.gen(function* () {
              yield* spawn("l", "looper", { memoryLimit: MiB, fuel: 1_000_000 })
              expect(yield* call("l", "spin_n", [100])).toEqual([100])
              const e = yield* Effect.flip(call("l", "spin"))
              expect(e).toMatchObject({ _tag: "FuelExhausted", function: "spin" })
            })
          )
      )

      it.live.skipIf(!caps.preemptiveTimeout)(
        "preemption: an infinite loop is stopped at its deadline (Timeout) and the agent is evicted with reason Timeout",
        () =>
          run((t) =>
            Effect.gen(function* () {
              const events = yield* t.collect
              yield* t.spawn("l", "looper", { memoryLimit: MiB, timeoutMs: 200 })
              const e = yield* Effect.flip(t.call("l", "spin"))
              expect(e).toMatchObject({ _tag: "Timeout", function: "spin", timeoutMs: 200 })
              yield* Effect.sleep(50)
              expect(events.of("AgentEvicted").map((x) => [x.agentId, x.reason])).toEqual([["l", "Timeout"]])
              expect(yield* t.rt.agents).toHaveLength(0)
            })
          )
      )
    })
  })

const callsOfFn = (calls: ReadonlyArray<{ readonly fn: string }>, fn: string) => calls.filter((c) => c.fn === fn).length
