/**
 * Invariants 1 "Resource Limits", 2 "Module Isolation" and 4 "Unique
 * Instances", on real agents.
 */
import {
  AgentAlreadyExists,
  agentId,
  InsufficientMemory,
  InvalidConfig,
  MemoryExceeded,
  makeMetadata
} from "@agent-runtime/domain"
import { signModule } from "@agent-runtime/signing"
import { testOnlyKeyPair } from "@agent-runtime/signing/test-keys"
import { describe, expect, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import { MiB, PAGE } from "../Harness.js"
import { importedMemoryModule, memoryOnlyModule } from "../internal/binary.js"
import type { SuiteContext } from "./Context.js"

const range = (n: number) => Array.from({ length: n }, (_, i) => i)

export const uniqueInstanceCases = ({ run }: SuiteContext) =>
  describe("unique instances (Invariant 4)", () => {
    it.effect("racing spawns of one agent id give exactly one instance; the others fail with AgentAlreadyExists", () =>
      run(({ rt, load, spawn, call }) =>
        Effect.gen(function* () {
          yield* load("counter")
          const results = yield* Effect.forEach(
            range(16),
            () => Effect.result(spawn("solo", "counter", { memoryLimit: MiB })),
            {
              concurrency: "unbounded"
            }
          )
          const ok = results.filter((r) => r._tag === "Success")
          const failed = results.flatMap((r) => (r._tag === "Failure" ? [r.failure] : []))
          expect(ok).toHaveLength(1)
          expect(failed).toHaveLength(15)
          for (const e of failed) {
            expect(e).toBeInstanceOf(AgentAlreadyExists)
            expect(e).toMatchObject({ agentId: "solo" })
          }
          expect((yield* rt.agents).map((a) => a.agentId)).toEqual(["solo"])
          expect((yield* rt.stats).memory.reserved).toBe(MiB)
          // a later spawn of the same id is refused too, and the live agent is untouched
          yield* call("solo", "add", [5])
          expect(yield* Effect.flip(spawn("solo", "counter", { memoryLimit: MiB }))).toBeInstanceOf(AgentAlreadyExists)
          expect(yield* call("solo", "get")).toEqual([5])
          // once evicted, the id can be used again, for a fresh instance
          yield* rt.evictAgent(agentId("solo"), "Manual")
          yield* spawn("solo", "counter", { memoryLimit: MiB })
          expect(yield* call("solo", "get")).toEqual([0])
        })
      )
    )
  })

export const resourceLimitCases = ({ run }: SuiteContext) =>
  describe("resource limits (Invariant 1)", () => {
    it.effect(
      "a pool of N MiB admits exactly N agents of 1 MiB under concurrent spawns; the rest get InsufficientMemory",
      () =>
        run(
          ({ rt, load, spawn }) =>
            Effect.gen(function* () {
              yield* load("counter")
              const results = yield* Effect.forEach(
                range(14),
                (i) => Effect.result(spawn(`c${i}`, "counter", { memoryLimit: MiB })),
                {
                  concurrency: "unbounded"
                }
              )
              const failed = results.flatMap((r) => (r._tag === "Failure" ? [r.failure] : []))
              // any other failure is shown as itself (not only as a short count of successes)
              expect(failed.filter((e) => !(e instanceof InsufficientMemory))).toEqual([])
              expect(results.filter((r) => r._tag === "Success")).toHaveLength(8)
              expect(failed).toHaveLength(6)
              for (const e of failed) {
                expect(e).toBeInstanceOf(InsufficientMemory)
                expect(e).toMatchObject({ requested: MiB, available: 0 })
              }
              const stats = yield* rt.stats
              expect(stats.agents).toBe(8)
              expect(stats.memory.reserved).toBe(8 * MiB)
              expect(stats.memory.used).toBeLessThanOrEqual(stats.memory.total)
              // a partial fit reports what is left
              yield* rt.evictAgent((yield* rt.agents)[0]!.agentId, "Manual")
              const e = yield* Effect.flip(spawn("big", "counter", { memoryLimit: 2 * MiB }))
              expect(e).toMatchObject({ _tag: "InsufficientMemory", requested: 2 * MiB, available: MiB })
            }),
          { settings: { pool: { totalMemory: 8 * MiB }, autoPressure: false } }
        )
    )

    it.effect(
      "memory limits outside 1 MiB..512 MiB (or a reservation above the limit) → InvalidConfig; the bounds are accepted",
      () =>
        run(({ rt, load, spawn }) =>
          Effect.gen(function* () {
            yield* load("counter")
            for (const memoryLimit of [0, MiB - 1, 512 * MiB + 1, 1.5, Number.NaN, -MiB]) {
              const e = yield* Effect.flip(spawn(`bad-${memoryLimit}`, "counter", { memoryLimit }))
              expect(e).toBeInstanceOf(InvalidConfig)
            }
            const over = yield* Effect.flip(spawn("over", "counter", { memoryLimit: MiB, memoryReservation: 2 * MiB }))
            expect(over).toBeInstanceOf(InvalidConfig)
            expect(yield* rt.agents).toHaveLength(0)
            expect((yield* rt.stats).memory.reserved).toBe(0)
            const low = yield* spawn("low", "counter", { memoryLimit: MiB })
            expect(low.budget.limit).toBe(MiB)
            const high = yield* spawn("high", "counter", { memoryLimit: 512 * MiB })
            expect(high.budget.limit).toBe(512 * MiB)
            expect((yield* rt.stats).memory.reserved).toBe(513 * MiB)
          })
        )
    )

    it.effect(
      "an over-committed reservation: the leaky agent's real growth shows in stats.memory.used and in its budget used/peak",
      () =>
        run(
          ({ rt, spawn, call, info }) =>
            Effect.gen(function* () {
              const spawned = yield* spawn("leak", "leaky", { memoryLimit: 32 * MiB, memoryReservation: MiB })
              expect(spawned.budget).toMatchObject({ limit: 32 * MiB })
              const before = yield* rt.stats
              expect(before.memory.reserved).toBe(MiB)
              expect(before.memory.used).toBe(MiB)
              let previous = 0
              for (let i = 1; i <= 4; i++) {
                expect(yield* call("leak", "leak", [1024])).toEqual([1024 * i])
                const [pages] = yield* call("leak", "pages")
                const a = yield* info("leak")
                expect(a.budget.used).toBe((pages as number) * PAGE)
                expect(a.budget.used).toBeGreaterThanOrEqual(i * MiB)
                expect(a.budget.used).toBeGreaterThanOrEqual(previous)
                expect(a.budget.peak).toBe(a.budget.used)
                previous = a.budget.used
                const stats = yield* rt.stats
                expect(stats.memory.reserved).toBe(MiB)
                // the pool counts max(reservation, resident)
                expect(stats.memory.used).toBe(Math.max(MiB, a.budget.used))
              }
              expect(previous).toBeGreaterThan(spawned.budget.used)
              expect(yield* call("leak", "leaked")).toEqual([4096])
              expect(yield* call("leak", "calls_made")).toEqual([4])
            }),
          { settings: { pool: { overcommit: true } } } // admitted against the reservation only when the pool over-commits
        )
    )

    for (const memoryCap of [true, false]) {
      it.effect(
        `an agent that grows beyond its budget is stopped (limits.memoryCap = ${memoryCap}): a failed grow inside the agent under a hard cap, else MemoryExceeded — never silently over budget`,
        () =>
          run(
            ({ spawn, call, info }) =>
              Effect.gen(function* () {
                yield* spawn("hog", "leaky", { memoryLimit: MiB })
                let failure: unknown = undefined
                for (let i = 0; i < 16 && failure === undefined; i++) {
                  const r = yield* Effect.result(call("hog", "leak", [256]))
                  if (r._tag === "Failure") failure = r.failure
                }
                expect(failure).toBeDefined()
                const tag = (failure as { _tag: string })._tag
                expect(["MemoryExceeded", "Trap"]).toContain(tag)
                const a = yield* info("hog")
                expect(a.budget.peak).toBeGreaterThanOrEqual(a.budget.used)
                if (a.budget.used > a.budget.limit) {
                  // the memory could not be capped: the runtime refuses the agent further work
                  expect(memoryCap).toBe(false)
                  expect(tag).toBe("MemoryExceeded")
                  expect(failure).toMatchObject({ agentId: "hog", used: a.budget.used, limit: MiB })
                  expect(yield* Effect.flip(call("hog", "leaked"))).toBeInstanceOf(MemoryExceeded)
                } else {
                  // a hard cap made memory.grow fail inside the agent (it traps), which keeps working within its budget
                  expect(tag).toBe("Trap")
                  const [pages] = yield* call("hog", "pages")
                  expect(pages).toBeLessThanOrEqual(MiB / PAGE)
                  expect(a.budget.used).toBe((pages as number) * PAGE)
                  expect((yield* call("hog", "leaked"))[0]).toBeLessThanOrEqual(1024)
                  expect(a.errorCount).toBe(1)
                }
              }),
            { settings: { limits: { memoryCap } } }
          )
      )
    }

    it.effect("a module whose initial memory is above the budget is refused at spawn, leaving nothing behind", () =>
      Effect.gen(function* () {
        const bytes = yield* Effect.orDie(
          signModule(memoryOnlyModule(17), { name: "big-memory", version: "1.0.0" }, testOnlyKeyPair.secretKey)
        )
        yield* run(({ rt }) =>
          Effect.gen(function* () {
            const id = yield* rt.loadModule(bytes, makeMetadata({ name: "big-memory", version: "1.0.0" }))
            const e = yield* Effect.flip(rt.spawnAgent(agentId("big"), id, { memoryLimit: MiB }))
            expect(e).toBeInstanceOf(MemoryExceeded)
            expect(e).toMatchObject({ used: 17 * PAGE, limit: MiB })
            expect(yield* rt.agents).toHaveLength(0)
            expect((yield* rt.stats).memory.reserved).toBe(0)
            // with a budget that fits, the same module spawns
            const ok = yield* rt.spawnAgent(agentId("big"), id, { memoryLimit: 2 * MiB })
            expect(ok.budget.used).toBe(17 * PAGE)
          })
        )
      })
    )

    it.effect(
      "a module that imports its memory gets one created with the budget as maximum: memory.grow past it returns -1",
      () =>
        Effect.gen(function* () {
          const bytes = yield* Effect.orDie(
            signModule(importedMemoryModule(), { name: "imported-memory", version: "1.0.0" }, testOnlyKeyPair.secretKey)
          )
          yield* run(({ rt }) =>
            Effect.gen(function* () {
              const id = yield* rt.loadModule(bytes, makeMetadata({ name: "imported-memory", version: "1.0.0" }))
              yield* rt.spawnAgent(agentId("im"), id, { memoryLimit: 2 * MiB }) // 32 pages
              expect(yield* rt.invoke(agentId("im"), "size")).toEqual([1])
              expect(yield* rt.invoke(agentId("im"), "grow", [40])).toEqual([-1])
              expect(yield* rt.invoke(agentId("im"), "grow", [10])).toEqual([1])
              expect(yield* rt.invoke(agentId("im"), "grow", [22])).toEqual([-1])
              expect(yield* rt.invoke(agentId("im"), "grow", [21])).toEqual([11])
              const info = yield* rt.agent(agentId("im"))
              expect(info.budget.used).toBe(32 * PAGE)
              expect(info.budget.peak).toBeLessThanOrEqual(2 * MiB)
            })
          )
        })
    )
  })

export const isolationCases = ({ run }: SuiteContext) =>
  describe("isolation (Invariant 2)", () => {
    it.effect("two counter agents of one module keep separate state", () =>
      run(({ rt, load, spawn, call }) =>
        Effect.gen(function* () {
          const id = yield* load("counter")
          yield* spawn("a", "counter", { memoryLimit: MiB })
          yield* spawn("b", "counter", { memoryLimit: MiB })
          expect((yield* rt.agent(agentId("a"))).moduleId).toBe(id)
          expect((yield* rt.agent(agentId("b"))).moduleId).toBe(id)
          expect(yield* call("a", "add", [5])).toEqual([5])
          expect(yield* call("b", "increment")).toEqual([1])
          expect(yield* call("a", "add", [5])).toEqual([10])
          expect(yield* call("a", "get")).toEqual([10])
          expect(yield* call("b", "get")).toEqual([1])
          yield* call("a", "reset")
          expect(yield* call("b", "get")).toEqual([1])
          // many concurrent calls on one agent: one at a time, none lost
          yield* Effect.forEach(range(50), () => call("b", "increment"), { concurrency: "unbounded", discard: true })
          expect(yield* call("b", "get")).toEqual([51])
          expect(yield* call("a", "get")).toEqual([0])
        })
      )
    )

    it.effect("writing one agent's linear memory (or growing it) does not change another's", () =>
      run(({ rt, spawn, call }) =>
        Effect.gen(function* () {
          yield* spawn("g1", "grower", { memoryLimit: MiB })
          yield* spawn("g2", "grower", { memoryLimit: MiB })
          yield* rt.writeMemory(agentId("g1"), 100, Uint8Array.from([0xab, 0xcd]))
          expect(yield* call("g1", "peek", [100])).toEqual([0xab])
          expect(yield* call("g2", "peek", [100])).toEqual([0])
          expect(yield* rt.readMemory(agentId("g2"), 100, 2)).toEqual(Uint8Array.from([0, 0]))
          yield* call("g2", "poke", [200, 7])
          expect(yield* rt.readMemory(agentId("g1"), 200, 1)).toEqual(Uint8Array.from([0]))
          expect(yield* rt.readMemory(agentId("g2"), 200, 1)).toEqual(Uint8Array.from([7]))
          expect(yield* call("g1", "grow", [2])).toEqual([1])
          expect(yield* call("g1", "size")).toEqual([3])
          expect(yield* call("g2", "size")).toEqual([1])
          expect((yield* rt.agent(agentId("g1"))).budget.used).toBe(3 * PAGE)
          expect((yield* rt.agent(agentId("g2"))).budget.used).toBe(PAGE)
        })
      )
    )
  })
