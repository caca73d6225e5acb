/**
 * Domain events (spec "Domain Events"): each with `eventId`, `timestamp`
 * (from the `Clock`) and `runtimeId`; consumed `AgentJoined` / `AgentLeft`;
 * metrics samples.
 */
import {
  AgentJoined,
  AgentLeft,
  agentId,
  EventBus,
  MetricsRepository,
  type EventId,
  type RuntimeId
} from "@agent-runtime/domain"
import { describe, expect, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import { TestClock } from "effect/testing"
import { eventually, MiB } from "../Harness.js"
import type { SuiteContext } from "./Context.js"

export const eventCases = ({ run }: SuiteContext) =>
  describe("events", () => {
    it.effect(
      "ModuleLoaded, AgentSpawned, AgentEvicted (reason, memoryReleased, uptime) with eventId, timestamp and runtimeId",
      () =>
        run(
          (t) =>
            Effect.gen(function* () {
              const { rt } = t
              yield* TestClock.setTime(1_000_000)
              const events = yield* t.collect
              const moduleId = yield* t.load("counter")
              const module = yield* rt.getModule(moduleId)
              yield* t.spawn("e1", "counter", { memoryLimit: 2 * MiB, memoryReservation: MiB })
              yield* TestClock.adjust(2500)
              yield* rt.evictAgent(agentId("e1"), "Manual")
              yield* t.settle

              const all = events.all()
              expect(all.map((e) => e._tag)).toEqual([
                "ModuleLoaded",
                "AgentSpawned",
                "AgentStateChanged",
                "AgentEvicted"
              ])
              expect(new Set(all.map((e) => e.eventId)).size).toBe(all.length)
              for (const e of all) expect(e.runtimeId).toBe("rt-events")
              expect(rt.id).toBe("rt-events")
              expect(events.of("ModuleLoaded")[0]).toMatchObject({
                timestamp: 1_000_000,
                moduleId,
                moduleHash: module.hash,
                size: module.bytes.byteLength,
                cacheHit: false
              })
              expect(events.of("ModuleLoaded")[0]!.exports).toEqual(
                expect.arrayContaining(["increment", "add", "get", "reset", "add_i64", "memory"])
              )
              expect(module.hash).toMatch(/^[0-9a-f]{64}$/)
              expect(events.of("AgentSpawned")[0]).toMatchObject({
                timestamp: 1_000_000,
                agentId: "e1",
                moduleId,
                memoryAllocated: 2 * MiB
              })
              expect(events.of("AgentEvicted")[0]).toMatchObject({
                timestamp: 1_002_500,
                agentId: "e1",
                reason: "Manual",
                memoryReleased: MiB,
                uptime: 2500
              })
              expect(yield* Effect.flip(rt.evictAgent(agentId("e1"), "Manual"))).toMatchObject({
                _tag: "AgentNotFound"
              })
            }),
          { settings: { id: "rt-events", pool: { overcommit: true } } }
        )
    )

    it.effect(
      "consumed events: AgentJoined compiles and reserves memory for the agent, the spawn takes the reservation over, AgentLeft releases it",
      () =>
        run(({ rt, spy, load, spawn }) =>
          Effect.gen(function* () {
            const bus = yield* EventBus
            const moduleId = yield* load("counter")
            const envelope = (n: number) => ({
              eventId: `coord-${n}` as EventId,
              timestamp: 0,
              runtimeId: "coordination" as RuntimeId
            })
            const reserved = (bytes: number) => Effect.map(rt.stats, (s) => s.memory.reserved === bytes)
            yield* bus.publish(
              new AgentJoined({ ...envelope(1), agentId: agentId("j"), moduleId, memoryLimit: 4 * MiB })
            )
            yield* eventually("AgentJoined to reserve 4 MiB", reserved(4 * MiB))
            expect(yield* rt.agents).toHaveLength(0)
            const compiled = spy.compiles.length
            expect(compiled).toBeGreaterThanOrEqual(1) // AgentJoined compiled what the agent will run
            yield* spawn("j", "counter", { memoryLimit: 4 * MiB })
            expect((yield* rt.stats).memory.reserved).toBe(4 * MiB)
            expect(spy.compiles).toHaveLength(compiled) // … so the spawn compiles nothing
            yield* bus.publish(new AgentLeft({ ...envelope(2), agentId: agentId("j") }))
            yield* eventually("AgentLeft to release the agent", reserved(0))
            expect(yield* rt.agents).toHaveLength(0)
            // a prepared reservation that never becomes an agent is released by AgentLeft
            yield* bus.publish(
              new AgentJoined({ ...envelope(3), agentId: agentId("k"), moduleId, memoryLimit: 2 * MiB })
            )
            yield* eventually("AgentJoined to reserve 2 MiB", reserved(2 * MiB))
            yield* bus.publish(new AgentLeft({ ...envelope(4), agentId: agentId("k") }))
            yield* eventually("AgentLeft to release the reservation", reserved(0))
            expect(yield* rt.agents).toHaveLength(0)
          })
        )
    )

    it.effect(
      "recordMetrics samples the runtime into the MetricsRepository (query by range, aggregate by granularity)",
      () =>
        run(({ rt, spawn, call }) =>
          Effect.gen(function* () {
            const metrics = yield* MetricsRepository
            yield* TestClock.setTime(10_000)
            yield* spawn("m", "counter", { memoryLimit: MiB })
            yield* call("m", "increment")
            const first = yield* rt.recordMetrics
            expect(first).toMatchObject({
              timestamp: 10_000,
              agents: 1,
              memoryUsed: MiB,
              invocations: 1,
              invocationErrors: 0
            })
            yield* TestClock.adjust(1000)
            yield* call("m", "increment")
            yield* spawn("m2", "counter", { memoryLimit: MiB })
            yield* rt.recordMetrics
            const samples = yield* metrics.query({ from: 10_000, to: 11_001 })
            expect(samples.map((s) => s.agents)).toEqual([1, 2])
            expect(samples[1]).toMatchObject({ timestamp: 11_000, invocations: 2, memoryUsed: 2 * MiB })
            expect(yield* metrics.query({ from: 10_000, to: 11_000 })).toHaveLength(1) // [from, to)
            const buckets = yield* metrics.aggregate({ from: 10_000, to: 12_000 }, 1000)
            expect(buckets.reduce((n, b) => n + b.samples, 0)).toBe(2)
          })
        )
    )
  })
