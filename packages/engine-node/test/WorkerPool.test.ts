import type { WasmInstance } from "@agent-runtime/domain"
import { afterAll, describe, expect, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import { NodeEngine } from "../src/index.js"
import { call, compileWat, COUNTER, instantiateAgent, instantiateWat, MiB, PAGE, RUNAWAY } from "./helpers.js"

const sleep = (ms: number) => Effect.promise(() => new Promise((r) => setTimeout(r, ms)))
const now = () => performance.now()

/** Times an effect in ms. */
const timed = <A, E>(effect: Effect.Effect<A, E>) =>
  Effect.gen(function* () {
    const t0 = now()
    const result = yield* Effect.result(effect)
    return { result, ms: now() - t0 }
  })

/** Makes neighbours on the same (single) worker with state in a global and in memory. */
const neighbours = (engine: NodeEngine.NodeEngineShape) =>
  Effect.gen(function* () {
    const counter = yield* instantiateWat(engine, COUNTER)
    const grower = yield* instantiateAgent(engine, "grower")
    for (let k = 0; k < 5; k++) yield* counter.invoke("increment", [])
    yield* grower.invoke("grow", [2])
    yield* grower.invoke("poke", [2 * PAGE + 3, 77])
    return { counter, grower }
  })

const expectNeighboursKept = (n: { counter: WasmInstance; grower: WasmInstance }) =>
  Effect.gen(function* () {
    expect(yield* call(n.counter, "get")).toEqual([5])
    expect(yield* call(n.grower, "size")).toEqual([3])
    expect(yield* call(n.grower, "peek", 2 * PAGE + 3)).toEqual([77])
    expect(yield* n.grower.memoryBytes).toBe(3 * PAGE)
    // and they keep working from there
    expect(yield* call(n.counter, "increment")).toEqual([6])
  })

for (const channel of ["shared", "message"] as const) {
  describe(`preemptive timeouts and recovery (${channel} channel)`, () => {
    const engine = NodeEngine.make({ workers: 1, channel, recovery: "snapshot" })
    afterAll(() => Effect.runPromise(engine.shutdown))

    it.effect("a runaway export (loop br 0) stops at its deadline with Timeout; its instance is left terminated", () =>
      Effect.gen(function* () {
        const i = yield* instantiateWat(engine, RUNAWAY)
        const { result, ms } = yield* timed(i.invoke("spin", [], { timeoutMs: 100 }))
        expect(result._tag).toBe("Failure")
        const error = (result as { failure: { _tag: string } }).failure
        expect(error).toMatchObject({ _tag: "Timeout", function: "spin", timeoutMs: 100 })
        // not before its deadline; which deadline ended it is in the typed error (timeoutMs: 100), not in wall-clock time
        expect(ms).toBeGreaterThanOrEqual(99)
        const after = yield* Effect.flip(i.invoke("ok", []))
        expect(after._tag).toBe("Trap")
        expect(after.message).toMatch(/instance terminated/)
      })
    )

    it.effect("the other agents of the worker come back on a fresh worker with their state (recovery: snapshot)", () =>
      Effect.gen(function* () {
        const n = yield* neighbours(engine)
        const looper = yield* instantiateAgent(engine, "looper")
        const before = engine.threadOf(n.counter)
        expect(engine.threadOf(looper)).toBe(before)
        const replaced = engine.stats().workers[0]!.replaced
        const spin = yield* Effect.flip(looper.invoke("spin", [], { timeoutMs: 80 }))
        expect(spin._tag).toBe("Timeout")
        yield* expectNeighboursKept(n)
        expect(engine.threadOf(n.counter)).not.toBe(before)
        expect(engine.stats().workers[0]!.replaced).toBe(replaced + 1)
        expect(engine.threadOf(looper)).toBeUndefined()
      })
    )

    it.effect("calls queued behind a runaway call see no error, only a delay", () =>
      Effect.gen(function* () {
        const n = yield* neighbours(engine)
        const runaway = yield* instantiateWat(engine, RUNAWAY)
        const spinning = yield* Effect.forkChild(Effect.flip(runaway.invoke("spin", [], { timeoutMs: 100 })))
        yield* sleep(10)
        const t0 = now()
        // queued on the same worker while it spins
        const queued = yield* Effect.all([call(n.counter, "increment"), call(n.grower, "peek", 2 * PAGE + 3)], {
          concurrency: "unbounded"
        })
        expect(now() - t0).toBeGreaterThan(50)
        expect(queued).toEqual([[6], [77]])
        expect((yield* Fiber.join(spinning))._tag).toBe("Timeout")
      })
    )

    it.effect("a runaway start function times out with Timeout '(start)'; the worker's agents survive", () =>
      Effect.gen(function* () {
        const n = yield* neighbours(engine)
        const { result } = yield* timed(
          instantiateWat(engine, `(module (func $s (loop br 0)) (start $s))`, { timeoutMs: 100 })
        )
        expect(result._tag).toBe("Failure")
        // stopped by the agent's 100 ms deadline, not the engine's 10 s start deadline: the typed error names which
        expect((result as { failure: unknown }).failure).toMatchObject({
          _tag: "Timeout",
          function: "(start)",
          timeoutMs: 100
        })
        yield* expectNeighboursKept(n)
      })
    )

    it.effect(
      "a runaway loop that calls a host function: the host keeps serving its calls, then the deadline stops it",
      () =>
        Effect.gen(function* () {
          let calls = 0
          const h = yield* instantiateAgent(engine, "host-caller", { env: { log: () => void calls++, now: () => 0 } })
          const n = yield* neighbours(engine)
          // 2^31-1 host calls would take hours: the deadline cuts it
          const { result } = yield* timed(h.invoke("log_n", [2 ** 31 - 1], { timeoutMs: 150 }))
          // the agent's 150 ms deadline ended it (named in the typed error), not the loop's end
          expect((result as { failure: unknown }).failure).toMatchObject({
            _tag: "Timeout",
            function: "log_n",
            timeoutMs: 150
          })
          expect(calls).toBeGreaterThan(100)
          yield* expectNeighboursKept(n)
        })
    )

    it.effect("a guest blocked in memory.atomic.wait32 forever on a shared memory is stopped by its deadline", () =>
      Effect.gen(function* () {
        const n = yield* neighbours(engine)
        const i = yield* instantiateWat(
          engine,
          `(module (memory (export "memory") 1 1 shared)
             (func (export "block") (result i32) i32.const 0 i32.const 0 i64.const -1 memory.atomic.wait32))`
        )
        const { result } = yield* timed(i.invoke("block", [], { timeoutMs: 100 }))
        // the agent's 100 ms deadline ended the wait (named in the typed error)
        expect((result as { failure: unknown }).failure).toMatchObject({
          _tag: "Timeout",
          function: "block",
          timeoutMs: 100
        })
        yield* expectNeighboursKept(n)
      })
    )

    it.effect("unbounded recursion (trapper.recurse) is a Trap, not a dead worker", () =>
      Effect.gen(function* () {
        const t = yield* instantiateAgent(engine, "trapper")
        const thread = engine.threadOf(t)
        const e = yield* Effect.flip(t.invoke("recurse", [2 ** 30], { timeoutMs: 5_000 }))
        expect(e._tag).toBe("Trap")
        expect(e.message).toMatch(/call stack exhausted/)
        expect(engine.threadOf(t)).toBe(thread)
        expect(yield* call(t, "ok")).toEqual([42])
      })
    )

    it.effect("a crashed worker (uncaught error) is replaced and its agents restored; the host is unaffected", () =>
      Effect.gen(function* () {
        const n = yield* neighbours(engine)
        const before = engine.threadOf(n.counter)
        yield* engine.crashWorker(n.counter)
        yield* expectNeighboursKept(n)
        expect(engine.threadOf(n.counter)).not.toBe(before)
      })
    )
  })
}

describe("recovery policies", () => {
  it.effect("restart: the other agents come back fresh (initial state)", () =>
    Effect.gen(function* () {
      const engine = NodeEngine.make({ workers: 1, recovery: "restart" })
      const n = yield* neighbours(engine)
      const runaway = yield* instantiateWat(engine, RUNAWAY)
      expect((yield* Effect.flip(runaway.invoke("spin", [], { timeoutMs: 50 })))._tag).toBe("Timeout")
      expect(yield* call(n.counter, "get")).toEqual([0])
      expect(yield* call(n.grower, "size")).toEqual([1])
      expect(yield* n.grower.memoryBytes).toBe(PAGE)
      yield* engine.shutdown
    })
  )

  it.effect("auto: snapshots while memory is at most snapshotMaxBytes, restarts past it", () =>
    Effect.gen(function* () {
      const engine = NodeEngine.make({ workers: 1, snapshotMaxBytes: 2 * PAGE })
      const small = yield* instantiateAgent(engine, "grower")
      const big = yield* instantiateAgent(engine, "grower")
      yield* small.invoke("poke", [10, 1])
      yield* big.invoke("grow", [2]) // 3 pages > 2 pages: no longer tracked
      yield* big.invoke("poke", [10, 2])
      const runaway = yield* instantiateWat(engine, RUNAWAY)
      expect((yield* Effect.flip(runaway.invoke("spin", [], { timeoutMs: 50 })))._tag).toBe("Timeout")
      expect(yield* call(small, "peek", 10)).toEqual([1])
      expect(yield* call(big, "peek", 10)).toEqual([0])
      expect(yield* call(big, "size")).toEqual([1])
      yield* engine.shutdown
    })
  )

  it.effect("an agent whose start function now fails during recovery is lost with a reason; the rest recover", () =>
    Effect.gen(function* () {
      let fail = false
      const engine = NodeEngine.make({ workers: 1 })
      const fragile = yield* instantiateWat(
        engine,
        `(module (import "env" "check" (func $check)) (func $s call $check) (start $s) (func (export "f") (result i32) i32.const 1))`,
        {
          imports: {
            env: {
              check: () => {
                if (fail) throw new Error("not today")
              }
            }
          }
        }
      )
      const counter = yield* instantiateWat(engine, COUNTER)
      yield* counter.invoke("increment", [])
      fail = true
      const runaway = yield* instantiateWat(engine, RUNAWAY)
      expect((yield* Effect.flip(runaway.invoke("spin", [], { timeoutMs: 50 })))._tag).toBe("Timeout")
      expect(yield* call(counter, "get")).toEqual([1])
      const lost = yield* Effect.flip(fragile.invoke("f", []))
      expect(lost.message).toMatch(/could not be recovered: .*not today/)
      yield* engine.shutdown
    })
  )
})

describe("a worker that cannot start", () => {
  it.effect("fails instantiation with a typed error and the host carries on", () =>
    Effect.gen(function* () {
      const engine = NodeEngine.make({ workers: 1, workerUrl: new URL("./no-such-worker.js", import.meta.url) })
      const err = yield* Effect.flip(instantiateWat(engine, COUNTER))
      expect(err._tag).toBe("InstantiationError")
      expect(err.message).toMatch(/the worker was lost: worker (error|exited)/)
      yield* engine.shutdown
    })
  )
})

describe("isolation under load", () => {
  it.effect("an infinite loop is stopped within deadline + 100 ms while 100 other agents keep answering", () =>
    Effect.gen(function* () {
      const engine = NodeEngine.make({ workers: 4 })
      const looper = yield* instantiateAgent(engine, "looper")
      const compiled = yield* compileWat(engine, COUNTER)
      const others = yield* Effect.forEach(
        Array.from({ length: 100 }, (_, k) => k),
        (k) => engine.instantiate(compiled, { agentId: `load-${k}` as never, memoryLimit: MiB, imports: {} }),
        { concurrency: 8 }
      )
      const loopThread = engine.threadOf(looper)
      const elsewhere = others.filter((o) => engine.threadOf(o) !== loopThread)
      expect(elsewhere.length).toBeGreaterThanOrEqual(70)

      const t0 = now()
      const spin = yield* Effect.forkChild(timed(looper.invoke("spin", [], { timeoutMs: 200 })))
      // during the loop: every agent on another worker answers, repeatedly
      let answeredDuring = 0
      while (now() - t0 < 150) {
        const results = yield* Effect.forEach(elsewhere, (o) => call(o, "increment"), { concurrency: "unbounded" })
        answeredDuring += results.length
        // leave the host's event loop room between rounds: the deadline is the host's to keep
        yield* Effect.promise(() => new Promise<void>((resolve) => setTimeout(resolve, 5)))
      }
      const { result } = yield* Fiber.join(spin)
      expect((result as { failure: unknown }).failure).toMatchObject({
        _tag: "Timeout",
        function: "spin",
        timeoutMs: 200
      })
      expect(answeredDuring).toBeGreaterThanOrEqual(elsewhere.length)
      // afterwards all 100 answer without an error (the looper's neighbours after their recovery)
      const counts = yield* Effect.forEach(others, (o) => call(o, "get"), { concurrency: "unbounded" })
      expect(counts.every(([c]) => typeof c === "number")).toBe(true)
      const rounds = answeredDuring / elsewhere.length
      for (const o of elsewhere) expect(yield* call(o, "get")).toEqual([rounds])
      yield* engine.shutdown
    })
  )
})
