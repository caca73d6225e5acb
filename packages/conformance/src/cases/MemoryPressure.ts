/**
 * Memory pressure (spec `handle_memory_pressure`; DESIGN.md "Memory
 * pressure", known defect 1): leaky agents with over-committed reservations
 * push the pool past its thresholds; eviction order is unhealthy → least
 * recently active → largest, never `Critical`; the event has the real
 * before/after and the level.
 */
import { agentId, PressureLevels } from "@agent-runtime/domain"
import { describe, expect, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as Stream from "effect/Stream"
import { TestClock } from "effect/testing"
import { MiB } from "../Harness.js"
import type { SuiteContext } from "./Context.js"

export const memoryPressureCases = ({ run }: SuiteContext) =>
  describe("memory pressure", () => {
    it.effect(
      "evicts unhealthy → least recently active → largest, never Critical; MemoryPressure has before > after and the level",
      () =>
        run(
          (t) =>
            Effect.gen(function* () {
              const { rt, call } = t
              const events = yield* t.collect
              const leaky = { memoryLimit: 16 * MiB, memoryReservation: MiB }
              // t = 0: a Critical agent (the least recently active of all) and a flaky one made Unhealthy
              yield* t.spawn("e", "counter", { memoryLimit: MiB, critical: true })
              yield* t.spawn("f", "flaky", { memoryLimit: MiB })
              yield* call("f", "configure", [0])
              for (const id of ["a", "b", "c", "d"]) yield* t.spawn(id, "leaky", leaky)
              for (let i = 0; i < 4; i++) yield* rt.checkHealth
              expect((yield* rt.agent(agentId("f"))).health).toBe("Unhealthy")
              expect((yield* rt.stats).memory.pressureLevel).toBe("Normal")
              expect((yield* rt.stats).status).toBe("Degraded") // an unhealthy agent degrades the runtime

              yield* TestClock.adjust(1000)
              yield* call("a", "leak", [256])
              yield* TestClock.adjust(1000)
              yield* call("b", "leak", [256])
              yield* TestClock.adjust(1000)
              yield* call("c", "leak", [2048])
              yield* call("d", "leak", [8192]) // same moment as c, larger
              yield* TestClock.adjust(1000)
              yield* call("f", "work") // the unhealthy agent is the most recently active
              const before = yield* rt.stats
              // every agent but a and b grew past its reservation
              for (const id of ["c", "d"]) expect((yield* rt.agent(agentId(id))).budget.used).toBeGreaterThan(MiB)
              expect(before.memory.used).toBeGreaterThan(before.memory.reserved)
              const level = PressureLevels.fromRatio(before.memory.used / before.memory.total)
              expect(level).toBe("High")
              expect(before.memory.pressureLevel).toBe("High")

              const evicted = yield* rt.handleMemoryPressure
              expect(evicted).toEqual(["f", "a", "b", "d"])
              const after = yield* rt.stats
              expect(after.memory.used / after.memory.total).toBeLessThanOrEqual(0.7)
              expect(after.memory.pressureLevel).toBe("Normal")
              expect((yield* rt.agents).map((a) => a.agentId).sort()).toEqual(["c", "e"])
              expect((yield* rt.agent(agentId("e"))).state).toBe("Critical")
              expect(after.pressureEvents).toBe(1)

              yield* t.settle
              const pressure = events.of("MemoryPressure")
              expect(pressure).toHaveLength(1)
              expect(pressure[0]).toMatchObject({
                evictedAgents: ["f", "a", "b", "d"],
                memoryBefore: before.memory.used,
                memoryAfter: after.memory.used,
                totalMemory: 16 * MiB,
                pressureLevel: "High"
              })
              expect(pressure[0]!.memoryBefore).toBeGreaterThan(pressure[0]!.memoryAfter)
              const evictions = events.of("AgentEvicted")
              expect(evictions.map((e) => [e.agentId, e.reason])).toEqual([
                ["f", "MemoryPressure"],
                ["a", "MemoryPressure"],
                ["b", "MemoryPressure"],
                ["d", "MemoryPressure"]
              ])
              const released = evictions.reduce((n, e) => n + e.memoryReleased, 0)
              expect(released).toBe(before.memory.used - after.memory.used)
              // nothing to do below the warning threshold
              expect(yield* rt.handleMemoryPressure).toEqual([])
            }),
          { settings: { pool: { totalMemory: 16 * MiB, overcommit: true }, autoPressure: false } }
        )
    )

    it.effect("only Critical agents left: nothing is evicted, even above the warning threshold", () =>
      run(
        ({ rt, spawn, call }) =>
          Effect.gen(function* () {
            yield* spawn("k", "leaky", { memoryLimit: 16 * MiB, memoryReservation: MiB, critical: true })
            yield* call("k", "leak", [7168])
            expect((yield* rt.stats).memory.pressureLevel).not.toBe("Normal")
            expect(yield* rt.handleMemoryPressure).toEqual([])
            expect((yield* rt.agents).map((a) => a.agentId)).toEqual(["k"])
          }),
        { settings: { pool: { totalMemory: 8 * MiB, overcommit: true }, autoPressure: false } }
      )
    )

    it.effect(
      "autoPressure: a call that pushes the pool past the warning threshold triggers pressure handling on its own",
      () =>
        run(
          ({ rt, spawn, call }) =>
            Effect.gen(function* () {
              const stream = yield* rt.events
              const next = yield* Effect.forkChild(
                Stream.runHead(Stream.filter(stream, (e) => e._tag === "MemoryPressure"))
              )
              yield* spawn("idle", "leaky", { memoryLimit: 16 * MiB, memoryReservation: MiB })
              yield* spawn("busy", "leaky", { memoryLimit: 16 * MiB, memoryReservation: MiB })
              yield* TestClock.adjust(1000)
              yield* call("busy", "leak", [6144])
              const event = yield* Fiber.join(next)
              expect(event._tag).toBe("Some")
              if (event._tag !== "Some" || event.value._tag !== "MemoryPressure") return
              expect(event.value.evictedAgents[0]).toBe("idle")
              expect(event.value.memoryBefore).toBeGreaterThan(event.value.memoryAfter)
              expect(event.value.memoryBefore / event.value.totalMemory).toBeGreaterThan(0.7)
              expect(event.value.memoryAfter / event.value.totalMemory).toBeLessThanOrEqual(0.7)
              const stats = yield* rt.stats
              expect(stats.pressureEvents).toBe(1)
              expect(stats.memory.used / stats.memory.total).toBeLessThanOrEqual(0.7)
            }),
          { settings: { pool: { totalMemory: 10 * MiB, overcommit: true } } }
        )
    )
  })
