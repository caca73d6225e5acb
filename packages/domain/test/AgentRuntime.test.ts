import {
  AgentJoined,
  AgentLeft,
  AgentRuntime,
  agentId,
  EventBus,
  InstanceRepository,
  makeMetadata,
  type RuntimeEvent,
  Timeout,
  Trap
} from "@agent-runtime/domain"
import { wat } from "@agent-runtime/test-support"
import { describe, expect, it } from "@effect/vitest"
import * as Deferred from "effect/Deferred"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as Option from "effect/Option"
import * as Stream from "effect/Stream"
import { TestClock } from "effect/testing"
import { collecting, config, loadWith, makeTestEngine, MiB, runtimeLayer, watModule } from "./support/TestEngine.js"

const counterFns = {
  increment: { results: ["i32"] },
  add: { params: ["i32"], results: ["i32"] },
  add64: { params: ["i64", "i64"], results: ["i64"] },
  mix: { params: ["i32", "i64", "f32", "f64"], results: ["f64"] }
}
const counterBehaviour = {
  increment: (ctx: { state: Record<string, number> }) => [(ctx.state.n = (ctx.state.n ?? 0) + 1)],
  add: (ctx: { state: Record<string, number> }, [x]: ReadonlyArray<unknown>) => [
    (ctx.state.n = (ctx.state.n ?? 0) + (x as number))
  ],
  add64: (_: unknown, [a, b]: ReadonlyArray<unknown>) => [(a as bigint) + (b as bigint)],
  mix: () => [1.5]
}

describe("AgentRuntime", () => {
  it.effect("loads, spawns and invokes; loading the same bytes again is a cache hit with the same id", () => {
    const t = makeTestEngine()
    return Effect.gen(function* () {
      const runtime = yield* AgentRuntime
      const [ids, events] = yield* collecting(
        Effect.gen(function* () {
          const m1 = yield* loadWith(t, "counter", counterFns, counterBehaviour)
          const m2 = yield* loadWith(t, "counter", counterFns, counterBehaviour)
          return [m1, m2]
        })
      )
      expect(ids[0]).toBe(ids[1])
      expect(t.compiles).toBe(0) // validated at load; agents compile their variant at spawn
      const loaded = events.filter((e) => e._tag === "ModuleLoaded")
      expect(loaded.map((e) => e._tag === "ModuleLoaded" && e.cacheHit)).toEqual([false, true])
      const info = yield* runtime.spawnAgent(agentId("a1"), ids[0]!, config())
      expect(info.state).toBe("Running")
      expect(t.compiles).toBe(1)
      expect(yield* runtime.invoke(agentId("a1"), "increment")).toEqual([1])
      expect(yield* runtime.invoke(agentId("a1"), "add", [41])).toEqual([42])
      expect(yield* runtime.invoke(agentId("a1"), "add64", [2n ** 62n, 1n])).toEqual([2n ** 62n + 1n])
      const a = yield* runtime.agent(agentId("a1"))
      expect(a.invocationCount).toBe(3)
      expect(a.budget.used).toBe(65536)
      expect((yield* runtime.stats).cache.hits).toBeGreaterThan(0)
    }).pipe(Effect.provide(runtimeLayer(t)))
  })

  it.effect('checks arguments against the export\'s signature: "abc" for an i32 is SignatureMismatch, not 0', () => {
    const t = makeTestEngine()
    return Effect.gen(function* () {
      const runtime = yield* AgentRuntime
      const m = yield* loadWith(t, "counter", counterFns, counterBehaviour)
      yield* runtime.spawnAgent(agentId("a"), m, config())
      const bad = (fn: string, args: ReadonlyArray<unknown>) =>
        Effect.flip(runtime.invoke(agentId("a"), fn, args as never))
      const e1 = yield* bad("add", ["abc"])
      expect(e1._tag).toBe("SignatureMismatch")
      expect(e1.message).toMatch(/argument 0: expected i32 \(number\), got string "abc"/)
      expect((yield* bad("add", [1.5]))._tag).toBe("SignatureMismatch")
      expect((yield* bad("add", [2 ** 32]))._tag).toBe("SignatureMismatch")
      expect((yield* bad("add", []))._tag).toBe("SignatureMismatch")
      expect((yield* bad("add64", [1, 2]))._tag).toBe("SignatureMismatch")
      expect((yield* bad("add64", [2n ** 64n, 0n]))._tag).toBe("SignatureMismatch")
      expect((yield* bad("mix", [1, 1n, "x", 1]))._tag).toBe("SignatureMismatch")
      expect((yield* bad("nope", []))._tag).toBe("FunctionNotFound")
      expect(yield* runtime.invoke(agentId("a"), "mix", [-1, -(2n ** 63n), 0.5, NaN])).toEqual([1.5])
      expect(t.calls.filter((c) => c === "a.add")).toHaveLength(0)
    }).pipe(Effect.provide(runtimeLayer(t)))
  })

  it.effect("refuses modules the verifier rejects, and malformed bytes with the byte offset", () => {
    const t = makeTestEngine()
    return Effect.gen(function* () {
      const runtime = yield* AgentRuntime
      const bytes = yield* Effect.promise(() => wat(watModule(counterFns)))
      const e = yield* Effect.flip(runtime.loadModule(bytes, makeMetadata({ name: "evil", version: "1" })))
      expect(e._tag).toBe("InvalidSignature")
      const truncated = bytes.slice(0, bytes.length - 3)
      const c = yield* Effect.flip(runtime.loadModule(truncated, makeMetadata({ name: "cut", version: "1" })))
      expect(c._tag).toBe("CompileError")
      expect(c._tag === "CompileError" && c.offset).toBeGreaterThan(0)
      const big = yield* Effect.flip(
        runtime.loadModule(new Uint8Array(2 * MiB), makeMetadata({ name: "big", version: "1" }))
      )
      expect(big._tag).toBe("ModuleTooLarge")
    }).pipe(Effect.provide(runtimeLayer(t, { maxModuleBytes: MiB })))
  })

  it.effect("validates the config: 1 MiB ≤ memory limit ≤ 512 MiB, capabilities", () => {
    const t = makeTestEngine()
    return Effect.gen(function* () {
      const runtime = yield* AgentRuntime
      const m = yield* loadWith(t, "counter", counterFns, counterBehaviour)
      const low = yield* Effect.flip(runtime.spawnAgent(agentId("a"), m, config(MiB - 1)))
      expect(low._tag).toBe("InvalidConfig")
      const high = yield* Effect.flip(runtime.spawnAgent(agentId("a"), m, config(512 * MiB + 1)))
      expect(high._tag).toBe("InvalidConfig")
      const timeout = yield* Effect.flip(runtime.spawnAgent(agentId("a"), m, config(MiB, { timeoutMs: 10 })))
      expect(timeout.message).toMatch(/cannot enforce timeoutMs/)
      expect((yield* runtime.spawnAgent(agentId("a"), m, config(512 * MiB))).state).toBe("Running")
      const missing = yield* Effect.flip(runtime.spawnAgent(agentId("b"), "nope" as never, config()))
      expect(missing._tag).toBe("ModuleNotFound")
    }).pipe(Effect.provide(runtimeLayer(t)))
  })

  it.effect("racing spawns of one agent id give exactly one instance (Invariant 4)", () => {
    const t = makeTestEngine()
    return Effect.gen(function* () {
      const runtime = yield* AgentRuntime
      const m = yield* loadWith(t, "counter", counterFns, counterBehaviour)
      const results = yield* Effect.forEach(
        Array.from({ length: 25 }),
        () => Effect.result(runtime.spawnAgent(agentId("same"), m, config())),
        { concurrency: "unbounded" }
      )
      const ok = results.filter((r) => r._tag === "Success")
      expect(ok).toHaveLength(1)
      expect(results.filter((r) => r._tag === "Failure" && r.failure._tag === "AgentAlreadyExists")).toHaveLength(24)
      expect(yield* runtime.agents).toHaveLength(1)
      expect((yield* runtime.stats).memory.reserved).toBe(MiB)
    }).pipe(Effect.provide(runtimeLayer(t)))
  })

  it.effect("concurrent spawns of one module variant compile it once; another budget is another variant", () => {
    const t = makeTestEngine()
    return Effect.gen(function* () {
      const runtime = yield* AgentRuntime
      const m = yield* loadWith(t, "counter", counterFns, counterBehaviour)
      yield* Effect.forEach(
        Array.from({ length: 16 }, (_, i) => i),
        (i) => runtime.spawnAgent(agentId(`a${i}`), m, config()),
        {
          concurrency: "unbounded"
        }
      )
      expect(t.compiles).toBe(1)
      yield* runtime.spawnAgent(agentId("big"), m, config(4 * MiB))
      expect(t.compiles).toBe(2)
      expect((yield* runtime.stats).cache.entries).toBe(2)
    }).pipe(Effect.provide(runtimeLayer(t)))
  })

  it.effect("concurrent spawns never over-commit the pool (DESIGN.md defect 4)", () => {
    const t = makeTestEngine()
    return Effect.gen(function* () {
      const runtime = yield* AgentRuntime
      const m = yield* loadWith(t, "counter", counterFns, counterBehaviour)
      const results = yield* Effect.forEach(
        Array.from({ length: 30 }, (_, i) => i),
        (i) => Effect.result(runtime.spawnAgent(agentId(`a${i}`), m, config())),
        { concurrency: "unbounded" }
      )
      expect(results.filter((r) => r._tag === "Success")).toHaveLength(10)
      const refused = results.filter((r) => r._tag === "Failure")
      expect(refused.every((r) => r._tag === "Failure" && r.failure._tag === "InsufficientMemory")).toBe(true)
      const stats = yield* runtime.stats
      expect(stats.memory.used).toBeLessThanOrEqual(stats.memory.total)
      expect(stats.memory.reserved).toBe(10 * MiB)
    }).pipe(Effect.provide(runtimeLayer(t, { pool: { totalMemory: 10 * MiB }, autoPressure: false })))
  })

  it.effect("one invocation at a time per agent; different agents do not wait on each other", () => {
    const t = makeTestEngine()
    return Effect.gen(function* () {
      const runtime = yield* AgentRuntime
      const gate = yield* Deferred.make<void>()
      const m = yield* loadWith(
        t,
        "slow",
        { block: { results: ["i32"] }, quick: { results: ["i32"] } },
        {
          block: () => Effect.as(Deferred.await(gate), [1]),
          quick: () => [2]
        }
      )
      yield* runtime.spawnAgent(agentId("a"), m, config())
      yield* runtime.spawnAgent(agentId("b"), m, config())
      const blocked = yield* Effect.forkChild(
        Effect.all([runtime.invoke(agentId("a"), "block"), runtime.invoke(agentId("a"), "block")], { concurrency: 2 })
      )
      yield* Effect.yieldNow
      // agent b answers while a is busy
      expect(yield* runtime.invoke(agentId("b"), "quick")).toEqual([2])
      yield* Deferred.succeed(gate, undefined)
      expect(yield* Fiber.join(blocked)).toEqual([[1], [1]])
      expect(t.maxConcurrency.get("a")).toBe(1)
    }).pipe(Effect.provide(runtimeLayer(t)))
  })

  it.effect("lifecycle: _initialize once, pause/resume, stop runs _cleanup, invalid transitions are typed", () => {
    const t = makeTestEngine()
    return Effect.gen(function* () {
      const runtime = yield* AgentRuntime
      const m = yield* loadWith(
        t,
        "life",
        { _initialize: {}, _cleanup: {}, get: { results: ["i32"] } },
        {
          _initialize: (ctx) => ((ctx.state.init = (ctx.state.init ?? 0) + 1), []),
          _cleanup: (ctx) => ((ctx.state.clean = 1), []),
          get: (ctx) => [ctx.state.init ?? 0]
        }
      )
      const [, events] = yield* collecting(
        Effect.gen(function* () {
          const info = yield* runtime.spawnAgent(agentId("l"), m, config(MiB, { autoStart: false }))
          expect(info.state).toBe("Starting")
          expect((yield* Effect.flip(runtime.invoke(agentId("l"), "get")))._tag).toBe("AgentNotRunning")
          yield* runtime.start(agentId("l"))
          expect(yield* runtime.invoke(agentId("l"), "get")).toEqual([1])
          yield* runtime.pause(agentId("l"))
          const paused = yield* Effect.flip(runtime.invoke(agentId("l"), "get"))
          expect(paused._tag).toBe("AgentNotRunning")
          expect((yield* Effect.flip(runtime.pause(agentId("l"))))._tag).toBe("InvalidStateTransition")
          yield* runtime.start(agentId("l")) // start from Paused resumes without _initialize
          expect(yield* runtime.invoke(agentId("l"), "get")).toEqual([1])
          expect((yield* Effect.flip(runtime.resume(agentId("l"))))._tag).toBe("InvalidStateTransition")
          yield* runtime.stop(agentId("l"))
          yield* runtime.stop(agentId("l"))
          expect((yield* runtime.agent(agentId("l"))).state).toBe("Stopped")
          expect(t.calls.filter((c) => c === "l._cleanup")).toHaveLength(1)
          expect((yield* Effect.flip(runtime.start(agentId("l"))))._tag).toBe("InvalidStateTransition")
          expect((yield* Effect.flip(runtime.pause(agentId("zz"))))._tag).toBe("AgentNotFound")
        })
      )
      const states = events.flatMap((e) => (e._tag === "AgentStateChanged" ? [`${e.from}->${e.to}`] : []))
      expect(states).toEqual([
        "Starting->Running",
        "Running->Paused",
        "Paused->Running",
        "Running->Stopping",
        "Stopping->Stopped"
      ])
    }).pipe(Effect.provide(runtimeLayer(t)))
  })

  it.effect("a failing _initialize fails the spawn and leaves nothing behind", () => {
    const t = makeTestEngine()
    return Effect.gen(function* () {
      const runtime = yield* AgentRuntime
      const m = yield* loadWith(
        t,
        "bad-init",
        { _initialize: {} },
        {
          _initialize: () => Effect.fail(new Trap({ function: "_initialize", reason: "unreachable" }))
        }
      )
      const e = yield* Effect.flip(runtime.spawnAgent(agentId("x"), m, config()))
      expect(e._tag).toBe("Trap")
      expect(yield* runtime.agents).toHaveLength(0)
      expect((yield* runtime.stats).memory.used).toBe(0)
    }).pipe(Effect.provide(runtimeLayer(t)))
  })

  it.effect("Critical agents: invocable, never evicted under pressure", () => {
    const t = makeTestEngine()
    return Effect.gen(function* () {
      const runtime = yield* AgentRuntime
      const m = yield* loadWith(t, "counter", counterFns, counterBehaviour)
      yield* runtime.spawnAgent(agentId("crit"), m, config(4 * MiB, { critical: true }))
      yield* runtime.spawnAgent(agentId("n1"), m, config(4 * MiB))
      yield* runtime.spawnAgent(agentId("n2"), m, config(1 * MiB))
      expect((yield* runtime.agent(agentId("crit"))).state).toBe("Critical")
      expect(yield* runtime.invoke(agentId("crit"), "increment")).toEqual([1])
      const evicted = yield* runtime.handleMemoryPressure
      expect(evicted).not.toContain("crit")
      expect(evicted.length).toBeGreaterThan(0)
      yield* runtime.setCritical(agentId("crit"), false)
      expect((yield* runtime.agent(agentId("crit"))).state).toBe("Running")
    }).pipe(Effect.provide(runtimeLayer(t, { pool: { totalMemory: 10 * MiB }, autoPressure: false })))
  })

  it.effect(
    "memory pressure evicts unhealthy, then least recently active, then largest; the event has the real before/after (defect 1)",
    () => {
      const t = makeTestEngine()
      return Effect.gen(function* () {
        const runtime = yield* AgentRuntime
        const m = yield* loadWith(
          t,
          "leaky",
          { leak: { params: ["i32"], results: ["i32"] }, _health_check: { results: ["i32"] }, break: {} },
          {
            leak: (ctx, [mib]) => ((ctx.memoryBytes += (mib as number) * MiB), [ctx.memoryBytes]),
            _health_check: (ctx) => [ctx.state.broken ?? 0],
            break: (ctx) => ((ctx.state.broken = 1), [])
          }
        )
        // 8 agents reserving 1 MiB each of a 16 MiB pool, limits 8 MiB (over-commit)
        for (let i = 0; i < 8; i++) {
          yield* runtime.spawnAgent(agentId(`a${i}`), m, config(8 * MiB, { memoryReservation: MiB }))
          yield* TestClock.adjust(1000)
        }
        // a3 becomes unhealthy; a5 grows the most; a0 is the least recently active
        yield* runtime.invoke(agentId("a3"), "break")
        for (let k = 0; k < 4; k++) yield* runtime.checkHealth
        expect((yield* runtime.getHealth(agentId("a3"))).status).toBe("Unhealthy")
        for (const [id, mib] of [
          ["a1", 1],
          ["a2", 1],
          ["a4", 1],
          ["a6", 1],
          ["a7", 1],
          ["a5", 6],
          ["a3", 1]
        ] as const) {
          yield* TestClock.adjust(1000)
          yield* runtime.invoke(agentId(id), "leak", [mib])
        }
        const before = (yield* runtime.stats).memory.used
        expect(before / (16 * MiB)).toBeGreaterThan(0.7)
        const [evicted, events] = yield* collecting(runtime.handleMemoryPressure)
        // unhealthy a3 first, then the least recently active a0, then a1 …
        expect(evicted.slice(0, 3)).toEqual(["a3", "a0", "a1"])
        const pressure = events.find((e) => e._tag === "MemoryPressure")
        expect(pressure?._tag).toBe("MemoryPressure")
        if (pressure?._tag === "MemoryPressure") {
          expect(pressure.memoryBefore).toBe(before)
          expect(pressure.memoryAfter).toBeLessThan(pressure.memoryBefore)
          expect(pressure.memoryAfter / pressure.totalMemory).toBeLessThanOrEqual(0.7)
          expect(pressure.evictedAgents).toEqual(evicted)
          expect(["Warning", "High", "Critical"]).toContain(pressure.pressureLevel)
        }
        const evictions = events.filter((e) => e._tag === "AgentEvicted")
        expect(evictions.every((e) => e._tag === "AgentEvicted" && e.reason === "MemoryPressure")).toBe(true)
      }).pipe(
        Effect.provide(runtimeLayer(t, { pool: { totalMemory: 16 * MiB, overcommit: true }, autoPressure: false }))
      )
    }
  )

  it.effect("a call that pushes the pool over the warning threshold triggers pressure handling on its own", () => {
    const t = makeTestEngine()
    return Effect.gen(function* () {
      const runtime = yield* AgentRuntime
      const m = yield* loadWith(
        t,
        "leaky",
        { leak: { params: ["i32"], results: ["i32"] } },
        {
          leak: (ctx, [mib]) => ((ctx.memoryBytes += (mib as number) * MiB), [0])
        }
      )
      yield* runtime.spawnAgent(agentId("old"), m, config(8 * MiB, { memoryReservation: MiB }))
      yield* TestClock.adjust(10)
      yield* runtime.spawnAgent(agentId("new"), m, config(8 * MiB, { memoryReservation: MiB }))
      yield* runtime.invoke(agentId("new"), "leak", [7])
      yield* Effect.sleep(0)
      yield* Effect.yieldNow
      const ids = (yield* runtime.agents).map((a) => a.agentId)
      expect(ids).not.toContain("old")
    }).pipe(Effect.provide(runtimeLayer(t, { pool: { totalMemory: 10 * MiB, overcommit: true } })))
  })

  it.effect("MemoryExceeded: an agent above its budget is refused further calls", () => {
    const t = makeTestEngine()
    return Effect.gen(function* () {
      const runtime = yield* AgentRuntime
      const m = yield* loadWith(
        t,
        "leaky",
        { leak: { params: ["i32"], results: ["i32"] } },
        {
          leak: (ctx, [mib]) => ((ctx.memoryBytes += (mib as number) * MiB), [0])
        }
      )
      yield* runtime.spawnAgent(agentId("a"), m, config(2 * MiB))
      yield* runtime.invoke(agentId("a"), "leak", [3])
      const e = yield* Effect.flip(runtime.invoke(agentId("a"), "leak", [1]))
      expect(e._tag).toBe("MemoryExceeded")
      expect(e._tag === "MemoryExceeded" && e.limit).toBe(2 * MiB)
    }).pipe(Effect.provide(runtimeLayer(t, { autoPressure: false })))
  })

  it.effect(
    "health: consecutive failures accumulate across checks (defect 2) → Unhealthy → _recover → Failed → evicted with HealthFailure",
    () => {
      const t = makeTestEngine()
      return Effect.gen(function* () {
        const runtime = yield* AgentRuntime
        const m = yield* loadWith(
          t,
          "flaky",
          { _health_check: { results: ["i32"] }, _recover: {} },
          {
            _health_check: () => [1]
          }
        )
        const ok = yield* loadWith(t, "fine", { _health_check: { results: ["i32"] } }, { _health_check: () => [0] })
        yield* runtime.spawnAgent(agentId("f"), m, config())
        yield* runtime.spawnAgent(agentId("ok"), ok, config())
        const statuses: Array<string> = []
        const [, events] = yield* collecting(
          Effect.gen(function* () {
            for (let k = 1; k <= 6; k++) {
              const checks = yield* runtime.checkHealth
              const c = checks.find((x) => x.agentId === "f")
              statuses.push(`${c?.status}:${c?.details.consecutiveFailures}`)
            }
          })
        )
        expect(statuses).toEqual([
          "Degraded:1",
          "Degraded:2",
          "Degraded:3",
          "Unhealthy:4",
          "Unhealthy:5",
          "Unhealthy:6"
        ])
        expect(t.calls.filter((c) => c === "f._recover")).toHaveLength(2)
        expect((yield* Effect.flip(runtime.agent(agentId("f"))))._tag).toBe("AgentNotFound")
        const evicted = events.find((e) => e._tag === "AgentEvicted")
        expect(evicted?._tag === "AgentEvicted" && evicted.reason).toBe("HealthFailure")
        const completed = events.filter((e) => e._tag === "HealthCheckCompleted")
        expect(completed).toHaveLength(6)
        const last = completed[5]
        expect(
          last?._tag === "HealthCheckCompleted" && [last.totalChecked, last.healthyCount, last.unhealthyCount]
        ).toEqual([2, 1, 1])
        expect((yield* runtime.getHealth(agentId("ok"))).status).toBe("Healthy")
      }).pipe(Effect.provide(runtimeLayer(t)))
    }
  )

  it.effect("a health check that returns after its deadline is a failed response (defect 3)", () => {
    const t = makeTestEngine()
    return Effect.gen(function* () {
      const runtime = yield* AgentRuntime
      const m = yield* loadWith(
        t,
        "slow",
        { _health_check: { results: ["i32"] } },
        {
          // a synchronous call that takes 5 s of (test) time and then says "healthy"
          _health_check: () => Effect.as(TestClock.adjust(5_000), [0])
        }
      )
      yield* runtime.spawnAgent(agentId("s"), m, config())
      const [check] = yield* runtime.checkHealth
      expect(check?.details.responseOk).toBe(false)
      expect(check?.details.lastError).toMatch(/over its 1000 ms deadline/)
    }).pipe(Effect.provide(runtimeLayer(t)))
  })

  it.effect("an engine Timeout fails the call and evicts the agent with reason Timeout", () => {
    const t = makeTestEngine()
    return Effect.gen(function* () {
      const runtime = yield* AgentRuntime
      const m = yield* loadWith(
        t,
        "loop",
        { spin: {} },
        {
          spin: () => Effect.fail(new Timeout({ function: "spin", timeoutMs: 50 }))
        }
      )
      yield* runtime.spawnAgent(agentId("l"), m, config())
      const [err, events] = yield* collecting(Effect.flip(runtime.invoke(agentId("l"), "spin")))
      expect(err._tag).toBe("Timeout")
      expect(events.some((e) => e._tag === "AgentEvicted" && e.reason === "Timeout")).toBe(true)
    }).pipe(Effect.provide(runtimeLayer(t)))
  })

  it.effect(
    "GC drops cache entries idle longer than 1 h, reading last access from CacheEntry (defect 6) and never touching instances (defect 5)",
    () => {
      const t = makeTestEngine()
      return Effect.gen(function* () {
        const runtime = yield* AgentRuntime
        const m = yield* loadWith(t, "counter", counterFns, counterBehaviour)
        yield* runtime.spawnAgent(agentId("a"), m, config())
        yield* runtime.invoke(agentId("a"), "add", [5])
        yield* TestClock.adjust("50 minutes")
        yield* loadWith(t, "counter", counterFns, counterBehaviour) // a cache hit refreshes last access
        yield* TestClock.adjust("20 minutes")
        expect(yield* runtime.needsGc).toBe(true)
        const first = yield* runtime.runGc
        expect(first.evictedModules).toBe(0)
        yield* TestClock.adjust("61 minutes")
        const second = yield* runtime.runGc
        expect(second.evictedModules).toBe(1)
        expect(second.compactedInstances).toBe(0)
        expect(second.memoryAfter).toBe(second.memoryBefore)
        // the instance kept its state, and a new spawn recompiles from the module's bytes
        expect(yield* runtime.invoke(agentId("a"), "add", [1])).toEqual([6])
        yield* runtime.spawnAgent(agentId("b"), m, config())
        expect(t.compiles).toBe(2)
      }).pipe(Effect.provide(runtimeLayer(t)))
    }
  )

  it.effect("events carry eventId, timestamp from the Clock, runtimeId; AgentEvicted has the uptime", () => {
    const t = makeTestEngine()
    return Effect.gen(function* () {
      const runtime = yield* AgentRuntime
      yield* TestClock.setTime(1_000_000)
      const m = yield* loadWith(t, "counter", counterFns, counterBehaviour)
      const [, events] = yield* collecting(
        Effect.gen(function* () {
          yield* runtime.spawnAgent(agentId("a"), m, config(2 * MiB))
          yield* TestClock.adjust(2500)
          yield* runtime.evictAgent(agentId("a"), "Manual")
        })
      )
      const spawned = events.find((e) => e._tag === "AgentSpawned")
      const evicted = events.find((e) => e._tag === "AgentEvicted")
      expect(spawned?.runtimeId).toBe("rt-test")
      expect(spawned?.timestamp).toBe(1_000_000)
      expect(spawned?._tag === "AgentSpawned" && spawned.memoryAllocated).toBe(2 * MiB)
      expect(evicted?._tag === "AgentEvicted" && [evicted.reason, evicted.uptime, evicted.memoryReleased]).toEqual([
        "Manual",
        2500,
        2 * MiB
      ])
      expect(new Set(events.map((e) => e.eventId)).size).toBe(events.length)
      expect((yield* Effect.flip(runtime.evictAgent(agentId("a"), "Manual")))._tag).toBe("AgentNotFound")
    }).pipe(Effect.provide(runtimeLayer(t)))
  })

  it.effect("consumes AgentJoined (compile + reserve) and AgentLeft (release)", () => {
    const t = makeTestEngine()
    return Effect.gen(function* () {
      const runtime = yield* AgentRuntime
      const bus = yield* EventBus
      const m = yield* loadWith(t, "counter", counterFns, counterBehaviour)
      const envelope = { eventId: "e1" as never, timestamp: 0, runtimeId: "coord" as never }
      yield* bus.publish(new AgentJoined({ ...envelope, agentId: agentId("j"), moduleId: m, memoryLimit: 3 * MiB }))
      yield* Effect.sleep(0)
      yield* Effect.yieldNow
      expect((yield* runtime.stats).memory.reserved).toBe(3 * MiB)
      yield* bus.publish(new AgentLeft({ ...envelope, agentId: agentId("j") }))
      yield* Effect.sleep(0)
      yield* Effect.yieldNow
      expect((yield* runtime.stats).memory.reserved).toBe(0)
      // a prepared reservation is taken over by the spawn
      yield* bus.publish(new AgentJoined({ ...envelope, agentId: agentId("k"), moduleId: m, memoryLimit: 3 * MiB }))
      yield* Effect.sleep(0)
      yield* runtime.spawnAgent(agentId("k"), m, config(2 * MiB))
      expect((yield* runtime.stats).memory.reserved).toBe(2 * MiB)
    }).pipe(Effect.provide(runtimeLayer(t)))
  })

  it.effect("snapshot saves to the InstanceRepository; restore brings an evicted agent back", () => {
    const t = makeTestEngine()
    return Effect.gen(function* () {
      const runtime = yield* AgentRuntime
      const repo = yield* InstanceRepository
      const m = yield* loadWith(t, "counter", counterFns, counterBehaviour)
      yield* runtime.spawnAgent(agentId("a"), m, config())
      yield* runtime.invoke(agentId("a"), "add", [10])
      const snap = yield* runtime.snapshot(agentId("a"))
      expect(snap.state.globals).toEqual({ n: 10 })
      expect(Option.isSome(yield* repo.loadState(agentId("a")))).toBe(true)
      yield* runtime.evictAgent(agentId("a"), "Manual")
      const info = yield* runtime.restore(agentId("a"))
      expect(info.state).toBe("Running")
      expect(yield* runtime.invoke(agentId("a"), "add", [1])).toEqual([11])
      expect(t.calls.filter((c) => c === "a._initialize")).toHaveLength(0)
    }).pipe(Effect.provide(runtimeLayer(t)))
  })

  it.effect("shutdown stops every agent (_cleanup), evicts with Shutdown, and refuses new work", () => {
    const t = makeTestEngine()
    return Effect.gen(function* () {
      const runtime = yield* AgentRuntime
      const m = yield* loadWith(t, "counter", counterFns, counterBehaviour)
      for (let i = 0; i < 5; i++) yield* runtime.spawnAgent(agentId(`a${i}`), m, config())
      const [, events] = yield* collecting(runtime.shutdown)
      expect(events.filter((e) => e._tag === "AgentEvicted" && e.reason === "Shutdown")).toHaveLength(5)
      expect(yield* runtime.status).toBe("Stopped")
      expect((yield* runtime.stats).memory.used).toBe(0)
      const e = yield* Effect.flip(runtime.spawnAgent(agentId("late"), m, config()))
      expect(e._tag).toBe("RuntimeUnavailable")
    }).pipe(Effect.provide(runtimeLayer(t)))
  })

  it.effect("records metrics samples into the MetricsRepository", () => {
    const t = makeTestEngine()
    return Effect.gen(function* () {
      const runtime = yield* AgentRuntime
      const m = yield* loadWith(t, "counter", counterFns, counterBehaviour)
      yield* runtime.spawnAgent(agentId("a"), m, config())
      yield* runtime.invoke(agentId("a"), "increment")
      const sample = yield* runtime.recordMetrics
      expect(sample.agents).toBe(1)
      expect(sample.invocations).toBe(1)
      expect(sample.memoryUsed).toBe(MiB)
    }).pipe(Effect.provide(runtimeLayer(t)))
  })

  it.effect("maintenance loops run on the Clock: health checks every interval", () => {
    const t = makeTestEngine()
    return Effect.gen(function* () {
      const runtime = yield* AgentRuntime
      const m = yield* loadWith(t, "fine", { _health_check: { results: ["i32"] } }, { _health_check: () => [0] })
      yield* runtime.spawnAgent(agentId("a"), m, config())
      yield* TestClock.adjust("35 seconds")
      expect(t.calls.filter((c) => c === "a._health_check")).toHaveLength(3)
      expect((yield* runtime.stats).healthChecks).toBe(3)
    }).pipe(Effect.provide(runtimeLayer(t, { maintenance: { healthIntervalMs: 10_000 } })))
  })
})
