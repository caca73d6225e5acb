import { AgentRuntime, agentId, InstanceRepository } from "@agent-runtime/domain"
import { describe, expect, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as Option from "effect/Option"
import * as Stream from "effect/Stream"
import { TestClock } from "effect/testing"
import type { RuntimeEvent } from "@agent-runtime/domain"
import { collecting, config, loadWith, makeTestEngine, MiB, runtimeLayer } from "./support/TestEngine.js"

const counter = {
  fns: { add: { params: ["i32"], results: ["i32"] }, leak: { params: ["i32"], results: ["i32"] } },
  behaviour: {
    add: (ctx: { state: Record<string, number> }, [x]: ReadonlyArray<unknown>) => [
      (ctx.state.n = (ctx.state.n ?? 0) + (x as number))
    ],
    leak: (ctx: { memoryBytes: number }, [mib]: ReadonlyArray<unknown>) => (
      (ctx.memoryBytes += (mib as number) * MiB), [0]
    )
  }
}

describe("Passivation (DESIGN.md: compaction is passivation)", () => {
  it.effect(
    "runGc passivates idle agents (state to the InstanceRepository, memory released); the next call rehydrates transparently",
    () => {
      const t = makeTestEngine()
      return Effect.gen(function* () {
        const runtime = yield* AgentRuntime
        const repo = yield* InstanceRepository
        const m = yield* loadWith(t, "counter", counter.fns, counter.behaviour)
        yield* runtime.spawnAgent(agentId("idle"), m, config(2 * MiB))
        yield* runtime.spawnAgent(agentId("busy"), m, config(2 * MiB))
        yield* runtime.spawnAgent(agentId("crit"), m, config(2 * MiB, { critical: true }))
        yield* runtime.invoke(agentId("idle"), "add", [5])
        yield* TestClock.adjust("10 minutes")
        yield* runtime.invoke(agentId("busy"), "add", [1])
        const [gc, events] = yield* collecting(runtime.runGc)
        expect(gc.compactedInstances).toBe(1)
        expect(gc.memoryAfter).toBe(gc.memoryBefore - 2 * MiB)
        expect(
          events.filter((e) => e._tag === "AgentPassivated").map((e) => e._tag === "AgentPassivated" && e.agentId)
        ).toEqual(["idle"])
        const stats = yield* runtime.stats
        expect([stats.agents, stats.passivated]).toEqual([2, 1])
        expect(Option.isSome(yield* repo.loadState(agentId("idle")))).toBe(true)
        // a racing spawn of the passivated id is refused (Invariant 4)
        expect((yield* Effect.flip(runtime.spawnAgent(agentId("idle"), m, config())))._tag).toBe("AgentAlreadyExists")

        yield* TestClock.adjust("1 minute")
        const [results, later] = yield* collecting(
          Effect.all([runtime.invoke(agentId("idle"), "add", [1]), runtime.invoke(agentId("idle"), "add", [1])], {
            concurrency: 2
          })
        )
        expect(results.map((r) => r[0]).sort()).toEqual([6, 7])
        const activated = later.filter((e) => e._tag === "AgentActivated")
        expect(activated).toHaveLength(1)
        expect(activated[0]?._tag === "AgentActivated" && activated[0].passivatedFor).toBe(60_000)
        expect(t.calls.filter((c) => c === "idle._initialize")).toHaveLength(0)
        const info = yield* runtime.agent(agentId("idle"))
        expect([info.state, info.invocationCount]).toEqual(["Running", 3])
        expect((yield* runtime.stats).passivated).toBe(0)
      }).pipe(Effect.provide(runtimeLayer(t, { gc: { passivateIdleMs: 5 * 60_000 } })))
    }
  )

  it.effect("under memory pressure idle agents are passivated before anyone is evicted; Critical never", () => {
    const t = makeTestEngine()
    return Effect.gen(function* () {
      const runtime = yield* AgentRuntime
      const m = yield* loadWith(t, "counter", counter.fns, counter.behaviour)
      yield* runtime.spawnAgent(agentId("crit"), m, config(MiB, { critical: true }))
      for (let i = 0; i < 4; i++) yield* runtime.spawnAgent(agentId(`idle${i}`), m, config(MiB))
      yield* TestClock.adjust("10 minutes")
      yield* runtime.spawnAgent(agentId("hot"), m, config(8 * MiB, { memoryReservation: MiB }))
      yield* runtime.invoke(agentId("hot"), "leak", [5])
      const [evicted, events] = yield* collecting(runtime.handleMemoryPressure)
      expect(evicted).toEqual([])
      const pressure = events.find((e) => e._tag === "MemoryPressure")
      expect(pressure?._tag === "MemoryPressure" && pressure.passivatedAgents.length).toBeGreaterThan(0)
      expect(pressure?._tag === "MemoryPressure" && pressure.passivatedAgents).not.toContain("crit")
      expect(pressure?._tag === "MemoryPressure" && pressure.memoryAfter).toBeLessThan(
        pressure?._tag === "MemoryPressure" ? pressure.memoryBefore : 0
      )
      expect((yield* runtime.agent(agentId("crit"))).state).toBe("Critical")
    }).pipe(
      Effect.provide(
        runtimeLayer(t, {
          pool: { totalMemory: 10 * MiB, overcommit: true },
          autoPressure: false,
          gc: { passivateIdleMs: 60_000 }
        })
      )
    )
  })

  it.effect("a passivated agent can be evicted, and shutdown evicts passivated agents too", () => {
    const t = makeTestEngine()
    return Effect.gen(function* () {
      const runtime = yield* AgentRuntime
      const m = yield* loadWith(t, "counter", counter.fns, counter.behaviour)
      yield* runtime.spawnAgent(agentId("a"), m, config())
      yield* runtime.spawnAgent(agentId("b"), m, config())
      yield* TestClock.adjust("2 minutes")
      expect((yield* runtime.runGc).compactedInstances).toBe(2)
      const [, events] = yield* collecting(
        Effect.gen(function* () {
          yield* runtime.evictAgent(agentId("a"), "Manual")
          yield* runtime.shutdown
        })
      )
      const reasons = events.flatMap((e) =>
        e._tag === "AgentEvicted" ? [`${e.agentId}:${e.reason}:${e.memoryReleased}`] : []
      )
      expect(reasons).toEqual(["a:Manual:0", "b:Shutdown:0"])
      expect((yield* runtime.stats).passivated).toBe(0)
    }).pipe(Effect.provide(runtimeLayer(t, { gc: { passivateIdleMs: 60_000 } })))
  })

  it.effect("without passivateIdleMs nothing is passivated (the default)", () => {
    const t = makeTestEngine()
    return Effect.gen(function* () {
      const runtime = yield* AgentRuntime
      const m = yield* loadWith(t, "counter", counter.fns, counter.behaviour)
      yield* runtime.spawnAgent(agentId("a"), m, config())
      yield* TestClock.adjust("3 hours")
      expect((yield* runtime.runGc).compactedInstances).toBe(0)
      expect((yield* runtime.stats).agents).toBe(1)
    }).pipe(Effect.provide(runtimeLayer(t)))
  })
})
