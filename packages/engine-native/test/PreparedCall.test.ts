import { readAgent } from "@agent-runtime/agents"
import {
  AgentRuntime,
  AgentRuntimes,
  agentId,
  makeMetadata,
  MemoryBudget,
  WasmEngine,
  type WasmInstance
} from "@agent-runtime/domain"
import * as Signing from "@agent-runtime/signing"
import { testOnlyTrustStore } from "@agent-runtime/signing/test-keys"
import { describe, expect, it } from "@effect/vitest"
import * as Clock from "effect/Clock"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as TestClock from "effect/testing/TestClock"
import { NativeEngine } from "../src/index.js"

const runtimeLayer = (settings: AgentRuntimes.SettingsInput = {}) =>
  AgentRuntimes.layerMemory(settings).pipe(
    Layer.provide(Layer.mergeAll(NativeEngine.layer, Signing.layer({ trustStore: testOnlyTrustStore() })))
  )

const spawnCounter = Effect.gen(function* () {
  const runtime = yield* AgentRuntime
  const m = yield* runtime.loadModule(readAgent("counter"), makeMetadata({ name: "counter", version: "1.0.0" }))
  yield* runtime.spawnAgent(agentId("c"), m, { memoryLimit: 2 * MemoryBudget.MiB })
  return runtime
})

describe("prepared call handle on the native engine", () => {
  it.effect("call() is a synchronous fast path with invoke's checks, counters and errors", () =>
    Effect.gen(function* () {
      const runtime = yield* spawnCounter
      const add = yield* runtime.prepare(agentId("c"), "add")
      expect(add.call).toBeDefined()
      const call = add.call!
      for (let k = 0; k < 1000; k++) call(1)
      expect(call(0)).toEqual([1000])
      expect(yield* runtime.invoke(agentId("c"), "get")).toEqual([1000])
      expect((yield* runtime.agent(agentId("c"))).invocationCount).toBe(1002)
      expect(() => call("1" as never)).toThrow(/argument 0: expected i32/)
      yield* runtime.pause(agentId("c"))
      expect(() => call(1)).toThrow(/not running \(state Paused\)/)
      yield* runtime.resume(agentId("c"))
      yield* runtime.evictAgent(agentId("c"), "Manual")
      try {
        call(1)
        expect.unreachable()
      } catch (e) {
        expect((e as { _tag: string })._tag).toBe("AgentNotFound")
      }
    }).pipe(Effect.provide(runtimeLayer()))
  )

  it.effect("fast calls record activity at the Clock's time of the task they ran in (coarse activity clock)", () =>
    Effect.gen(function* () {
      const runtime = yield* spawnCounter
      const call = (yield* runtime.prepare(agentId("c"), "add")).call!
      const nextTask = Effect.promise(() => new Promise<void>((resolve) => setTimeout(resolve, 0)))
      yield* TestClock.adjust("10 seconds")
      const t1 = yield* Clock.currentTimeMillis
      yield* nextTask
      for (let k = 0; k < 1000; k++) call(1) // more than one reading's worth of calls in one task
      expect((yield* runtime.agent(agentId("c"))).lastActivity).toBe(t1)
      yield* TestClock.adjust("1 minute")
      yield* nextTask
      call(1)
      expect((yield* runtime.agent(agentId("c"))).lastActivity).toBe(t1 + 60_000)
      expect((yield* runtime.agent(agentId("c"))).invocationCount).toBe(1001)
    }).pipe(Effect.provide(runtimeLayer()))
  )

  it.effect("fuel applies to the fast path too: a runaway loop is FuelExhausted, the agent keeps working", () =>
    Effect.gen(function* () {
      const runtime = yield* AgentRuntime
      const m = yield* runtime.loadModule(readAgent("looper"), makeMetadata({ name: "looper", version: "1.0.0" }))
      yield* runtime.spawnAgent(agentId("l"), m, { memoryLimit: MemoryBudget.MiB, fuel: 100_000 })
      const spin = yield* runtime.prepare(agentId("l"), "spin")
      try {
        spin.call!()
        expect.unreachable()
      } catch (e) {
        expect((e as { _tag: string })._tag).toBe("FuelExhausted")
      }
      expect(yield* runtime.invoke(agentId("l"), "spin_n", [10])).toEqual([10])
      // the fuel left after each call is reported: spin_n(10) costs 13 × 10 + 5 units (Wasmtime costs)
      expect((yield* runtime.agent(agentId("l"))).fuelRemaining).toBe(100_000 - 135)
    }).pipe(Effect.provide(runtimeLayer()))
  )
})

/**
 * The native engine as an engine written before `WasmInstance.prepareDirect`
 * would be: its instances offer `prepare` only (the prepared call handle then
 * adapts it with `directFromPrepared`).
 */
const prepareOnlyEngine = Layer.sync(WasmEngine, () => {
  const native = NativeEngine.make()
  return {
    ...native,
    // spawns go through the wrapped `instantiate` (not the engine's synchronous one)
    instantiateSync: undefined,
    instantiate: (compiled, options) =>
      Effect.map(native.instantiate(compiled, options), (instance): WasmInstance => {
        const { prepareDirect: _, ...rest } = instance
        return rest
      })
  }
})

describe("prepared call handle: the engine's direct caller and the prepare-only fallback agree", () => {
  const layers = {
    direct: runtimeLayer(),
    "prepare only": AgentRuntimes.layerMemory().pipe(
      Layer.provide(Layer.mergeAll(prepareOnlyEngine, Signing.layer({ trustStore: testOnlyTrustStore() })))
    )
  }
  const scenario = Effect.gen(function* () {
    const runtime = yield* AgentRuntime
    const m = yield* runtime.loadModule(readAgent("counter"), makeMetadata({ name: "counter", version: "1.0.0" }))
    yield* runtime.spawnAgent(agentId("c"), m, { memoryLimit: 2 * MemoryBudget.MiB, fuel: 1_000_000 })
    const add = (yield* runtime.prepare(agentId("c"), "add")).call!
    const addI64 = (yield* runtime.prepare(agentId("c"), "add_i64")).call!
    const get = (yield* runtime.prepare(agentId("c"), "get")).call!
    const seen: Array<unknown> = []
    for (let k = 0; k < 300; k++) seen.push(add(k)) // past the engine's switch to its memory-size helper
    seen.push(addI64(1n << 40n, 2n), addI64(-5n, 3n), get())
    const failure = (() => {
      try {
        add(1.5)
        return undefined
      } catch (e) {
        return (e as { _tag: string; message: string })._tag
      }
    })()
    const agent = yield* runtime.agent(agentId("c"))
    return {
      seen,
      failure,
      invocations: agent.invocationCount,
      memory: agent.budget.used,
      fuel: agent.fuelRemaining
    }
  })
  it.effect("same results, errors, counters, memory and fuel through both", () =>
    Effect.gen(function* () {
      const direct = yield* Effect.provide(scenario, layers.direct)
      const fallback = yield* Effect.provide(scenario, layers["prepare only"])
      expect(fallback).toEqual(direct)
      expect(direct.seen.at(-2)).toEqual([-2n])
      expect(direct.failure).toBe("SignatureMismatch")
      expect(direct.invocations).toBe(303)
      expect(direct.fuel).toBeGreaterThan(0)
      expect(direct.fuel).toBeLessThan(1_000_000)
    })
  )
})

describe("prepared call handle: memory growth is reported as invoke reports it", () => {
  // grower: 1 page, maximum 4; the engine reads a call's memory size from the buffer it kept (detached on growth)
  const script: ReadonlyArray<readonly [string, ReadonlyArray<number>]> = [
    ["size", []],
    ["poke", [65_535, 7]],
    ["grow", [1]],
    ["peek", [65_535]],
    ["size", []],
    ["grow", [0]],
    ["grow", [2]],
    ["poke", [4 * 65_536 - 1, 9]],
    ["grow", [1]], // past the maximum: -1, no growth
    ["peek", [4 * 65_536]], // out of bounds: Trap (the agent is restored from its last state)
    ["size", []],
    ["grow", [1]],
    ["size", []]
  ]
  const run = (via: "prepared" | "invoke") =>
    Effect.gen(function* () {
      const runtime = yield* AgentRuntime
      const m = yield* runtime.loadModule(readAgent("grower"), makeMetadata({ name: "grower", version: "1.0.0" }))
      yield* runtime.spawnAgent(agentId("g"), m, { memoryLimit: 8 * MemoryBudget.MiB })
      const handles = new Map<string, (...args: Array<number>) => ReadonlyArray<unknown>>()
      const seen: Array<unknown> = []
      for (let round = 0; round < 30; round++) {
        // past the engine's first calls (the memory-size helper's switch), several rounds of the script
        for (const [fn, args] of script) {
          let outcome: unknown
          if (via === "invoke") {
            const r = yield* Effect.result(runtime.invoke(agentId("g"), fn, args))
            outcome = r._tag === "Success" ? r.success : (r.failure as { _tag: string })._tag
          } else {
            let call = handles.get(fn)
            if (call === undefined) handles.set(fn, (call = (yield* runtime.prepare(agentId("g"), fn)).call!))
            try {
              outcome = call(...args)
            } catch (e) {
              outcome = (e as { _tag: string })._tag
            }
            yield* Effect.yieldNow // let a recovery after a trap finish, as invoke waits for it
          }
          const agent = yield* runtime.agent(agentId("g"))
          seen.push([fn, args, outcome, agent.budget.used, agent.budget.peak])
        }
      }
      return seen
    }).pipe(Effect.provide(runtimeLayer()))
  it.effect("same results, errors and memory (used, peak) after every call", () =>
    Effect.gen(function* () {
      const prepared = yield* run("prepared")
      const invoked = yield* run("invoke")
      expect(prepared).toEqual(invoked)
      // the memory a call reports is the module's own memory.size after it
      for (const [fn, , outcome, used] of prepared as Array<[string, unknown, unknown, number]>) {
        if (fn === "size" && Array.isArray(outcome)) expect(used).toBe((outcome[0] as number) * 65_536)
      }
      expect(invoked).toContainEqual(["grow", [2], [2], 4 * 65_536, 4 * 65_536])
      expect(invoked).toContainEqual(["peek", [4 * 65_536], "Trap", expect.any(Number), expect.any(Number)])
    })
  )
})

describe("invoke's idle fast path: the activity clock", () => {
  it.effect("under a TestClock every call records the clock's exact time, even within one task", () =>
    Effect.gen(function* () {
      const runtime = yield* spawnCounter
      yield* runtime.invoke(agentId("c"), "add", [1])
      const t1 = yield* Clock.currentTimeMillis
      expect((yield* runtime.agent(agentId("c"))).lastActivity).toBe(t1)
      yield* TestClock.adjust("1 minute") // no task boundary before the next call
      yield* runtime.invoke(agentId("c"), "add", [1])
      expect((yield* runtime.agent(agentId("c"))).lastActivity).toBe(t1 + 60_000)
    }).pipe(Effect.provide(runtimeLayer()))
  )

  it.live("on the default clock calls record a time of the task they ran in, read again in a later task", () =>
    Effect.gen(function* () {
      const runtime = yield* spawnCounter
      const before = yield* Clock.currentTimeMillis
      for (let k = 0; k < 1000; k++) yield* runtime.invoke(agentId("c"), "add", [1])
      const after = yield* Clock.currentTimeMillis
      const first = (yield* runtime.agent(agentId("c"))).lastActivity
      expect(first).toBeGreaterThanOrEqual(before)
      expect(first).toBeLessThanOrEqual(after)
      yield* Effect.sleep("30 millis")
      const later = yield* Clock.currentTimeMillis
      yield* runtime.invoke(agentId("c"), "add", [1])
      expect((yield* runtime.agent(agentId("c"))).lastActivity).toBeGreaterThanOrEqual(later)
      expect((yield* runtime.agent(agentId("c"))).invocationCount).toBe(1001)
    }).pipe(Effect.provide(runtimeLayer()))
  )
})

describe("host capabilities", () => {
  it.effect("a call to a revoked capability fails with Unauthorized and evicts the agent with PolicyViolation", () =>
    Effect.gen(function* () {
      const runtime = yield* AgentRuntime
      const logged: Array<number> = []
      const m = yield* runtime.loadModule(
        readAgent("host-caller"),
        makeMetadata({ name: "host-caller", version: "1.0.0" })
      )
      const imports = { env: { log: (x: number) => void logged.push(x), now: () => 42 } }
      yield* runtime.spawnAgent(agentId("h"), m, { memoryLimit: MemoryBudget.MiB, imports })
      yield* runtime.spawnAgent(agentId("other"), m, { memoryLimit: MemoryBudget.MiB, imports })
      yield* runtime.invoke(agentId("h"), "call_log", [7])
      expect(logged).toEqual([7])
      yield* runtime.revokeImport(agentId("h"), "env.log")
      const e = yield* Effect.flip(runtime.invoke(agentId("h"), "call_log", [8]))
      expect(e._tag).toBe("Unauthorized")
      expect(e.message).toMatch(/env\.log/)
      expect(logged).toEqual([7]) // the revoked function never ran
      yield* Effect.yieldNow
      yield* Effect.sleep(0)
      expect((yield* Effect.flip(runtime.agent(agentId("h"))))._tag).toBe("AgentNotFound")
      // other agents keep their grant
      yield* runtime.invoke(agentId("other"), "call_log", [9])
      expect(logged).toEqual([7, 9])
    }).pipe(Effect.provide(runtimeLayer()))
  )
})

describe("config checks against the native engine's capabilities", () => {
  it.effect(
    "timeoutMs without fuel is refused (a native call cannot be preempted); huge fuel is refused with the bound",
    () =>
      Effect.gen(function* () {
        const runtime = yield* AgentRuntime
        const m = yield* runtime.loadModule(readAgent("looper"), makeMetadata({ name: "looper", version: "1.0.0" }))
        const e = yield* Effect.flip(
          runtime.spawnAgent(agentId("t"), m, { memoryLimit: MemoryBudget.MiB, timeoutMs: 200 })
        )
        expect(e._tag).toBe("InvalidConfig")
        expect(e.message).toMatch(/set fuel to bound it/)
        const huge = yield* Effect.flip(
          runtime.spawnAgent(agentId("t"), m, { memoryLimit: MemoryBudget.MiB, fuel: 1e300 })
        )
        expect(huge.message).toMatch(/fuel must be a positive integer ≤ 9007199254740991/)
        // with fuel, a deadline is accepted: fuel bounds the call
        yield* runtime.spawnAgent(agentId("t"), m, { memoryLimit: MemoryBudget.MiB, timeoutMs: 200, fuel: 1_000_000 })
        expect((yield* Effect.flip(runtime.invoke(agentId("t"), "spin")))._tag).toBe("FuelExhausted")
      }).pipe(Effect.provide(runtimeLayer()))
  )
})

describe("prepared call handle: the one-transition metered call (engine-kit trampoline) agrees with invoke", () => {
  it.effect(
    "every fuel from 1 (the least a config takes) to what spin_n(10) needs + 1: same results, errors and fuel left as invoke",
    () =>
      Effect.gen(function* () {
        const runtime = yield* AgentRuntime
        const m = yield* runtime.loadModule(readAgent("looper"), makeMetadata({ name: "looper", version: "1.0.0" }))
        const NEEDED = 135 // spin_n(10): 13 × 10 + 5 units (see the fuel test above)
        const outcome = (f: () => ReadonlyArray<unknown>) => {
          try {
            return { results: f() }
          } catch (e) {
            return { error: (e as { _tag: string })._tag }
          }
        }
        for (let fuel = 1; fuel <= NEEDED + 1; fuel++) {
          yield* runtime.spawnAgent(agentId(`p${fuel}`), m, { memoryLimit: MemoryBudget.MiB, fuel })
          yield* runtime.spawnAgent(agentId(`i${fuel}`), m, { memoryLimit: MemoryBudget.MiB, fuel })
          const call = (yield* runtime.prepare(agentId(`p${fuel}`), "spin_n")).call!
          const viaHandle = [outcome(() => call(10)), outcome(() => call(3))]
          const viaInvoke: Array<unknown> = []
          for (const n of [10, 3]) {
            const r = yield* Effect.result(runtime.invoke(agentId(`i${fuel}`), "spin_n", [n]))
            viaInvoke.push(r._tag === "Success" ? { results: r.success } : { error: r.failure._tag })
          }
          expect(viaHandle, `fuel ${fuel}`).toEqual(viaInvoke)
          expect((yield* runtime.agent(agentId(`p${fuel}`))).fuelRemaining, `fuel ${fuel}`).toBe(
            (yield* runtime.agent(agentId(`i${fuel}`))).fuelRemaining
          )
          expect(viaHandle[0], `fuel ${fuel}`).toEqual(fuel >= NEEDED ? { results: [10] } : { error: "FuelExhausted" })
          yield* runtime.evictAgent(agentId(`p${fuel}`), "Manual")
          yield* runtime.evictAgent(agentId(`i${fuel}`), "Manual")
        }
      }).pipe(Effect.provide(runtimeLayer()))
  )

  it.effect("the handle keeps its agent's instance until the runtime removes it, then looks the agent up again", () =>
    Effect.gen(function* () {
      const runtime = yield* spawnCounter
      const add = (yield* runtime.prepare(agentId("c"), "add")).call!
      expect(add(5)).toEqual([5])
      yield* runtime.evictAgent(agentId("c"), "Manual")
      const gone = (() => {
        try {
          add(1)
          return undefined
        } catch (e) {
          return (e as { _tag: string })._tag
        }
      })()
      expect(gone).toBe("AgentNotFound")
      // the same id spawned again: the handle calls the new agent (its own state, from 0)
      const m = yield* runtime.loadModule(readAgent("counter"), makeMetadata({ name: "counter", version: "1.0.0" }))
      yield* runtime.spawnAgent(agentId("c"), m, { memoryLimit: 2 * MemoryBudget.MiB })
      expect(add(2)).toEqual([2])
      expect(add(2)).toEqual([4])
      expect((yield* runtime.agent(agentId("c"))).invocationCount).toBe(2)
    }).pipe(Effect.provide(runtimeLayer()))
  )
})

describe("prepared call handle: memory pressure", () => {
  it.effect("a prepared call that grows memory past the warning level schedules pressure handling", () =>
    Effect.gen(function* () {
      const runtime = yield* AgentRuntime
      const m = yield* runtime.loadModule(readAgent("grower"), makeMetadata({ name: "grower", version: "1.0.0" }))
      // grower: 1 page, at most 4
      yield* runtime.spawnAgent(agentId("g"), m, { memoryLimit: MemoryBudget.MiB, memoryReservation: 0 })
      const grow = (yield* runtime.prepare(agentId("g"), "grow")).call!
      const size = (yield* runtime.prepare(agentId("g"), "size")).call!
      // memory unchanged: nothing to handle (and each handle has seen the pool's usage before the growth)
      for (let k = 0; k < 100; k++) {
        size()
        grow(0)
      }
      yield* Effect.yieldNow
      expect((yield* runtime.stats).pressureEvents).toBe(0)
      expect(grow(3)).toEqual([1]) // 4 pages of a 5-page pool: 80 % > the warning level (70 %)
      for (let k = 0; k < 20 && (yield* runtime.stats).pressureEvents === 0; k++) yield* Effect.yieldNow
      expect((yield* runtime.stats).pressureEvents).toBe(1)
    }).pipe(Effect.provide(runtimeLayer({ pool: { totalMemory: 5 * 65_536, overcommit: true } })))
  )
})
