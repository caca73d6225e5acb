/**
 * The compile cache and GC (spec `MemoryManager`; DESIGN.md "Compile
 * cache", known defects 5 and 6): one compile per module (and per rewritten
 * variant an agent config asks for: memory cap, fuel, state export), entries
 * idle longer than `gc.maxIdleMs` (1 h) are dropped, instances are untouched.
 */
import { describe, expect, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import { TestClock } from "effect/testing"
import { MiB } from "../Harness.js"
import type { SuiteContext } from "./Context.js"

export const cacheCases = ({ run }: SuiteContext) =>
  describe("compile cache and GC", () => {
    it.effect(
      "the same module loaded twice compiles once; spawns with one config compile at most once more, then hit the cache",
      () =>
        run((t) =>
          Effect.gen(function* () {
            const { rt, spy } = t
            const events = yield* t.collect
            const first = yield* t.load("counter")
            const second = yield* t.load("counter")
            expect(second).toBe(first)
            // engines with `validate` compile nothing at load (agents compile their variant at spawn)
            expect(spy.compiles.length + spy.validations.length).toBe(1)
            yield* t.spawn("c0", "counter", { memoryLimit: MiB })
            const afterFirstSpawn = spy.compiles.length
            expect(afterFirstSpawn).toBeLessThanOrEqual(2)
            const hitsBefore = (yield* rt.stats).cache.hits
            for (let i = 1; i < 6; i++) yield* t.spawn(`c${i}`, "counter", { memoryLimit: MiB })
            expect(spy.compiles).toHaveLength(afterFirstSpawn)
            const stats = yield* rt.stats
            expect(stats.modules).toBe(1)
            expect(stats.cache.entries).toBe(afterFirstSpawn)
            expect(stats.cache.hits - hitsBefore).toBeGreaterThanOrEqual(5)
            expect(stats.cache.bytes).toBeGreaterThan(0)
            // every compile was of the same module
            expect(new Set(spy.compiles).size).toBe(1)
            yield* t.settle
            expect(events.of("ModuleLoaded").map((e) => e.cacheHit)).toEqual([false, true])
          })
        )
    )

    it.effect(
      "runGc drops entries idle longer than 1 h (TestClock), keeps recently used ones and every instance; a later spawn recompiles",
      () =>
        run(({ rt, spy, load, spawn, call }) =>
          Effect.gen(function* () {
            yield* load("counter")
            yield* load("text")
            yield* spawn("c", "counter", { memoryLimit: MiB })
            yield* call("c", "add", [7])
            expect(yield* rt.needsGc).toBe(false)

            yield* TestClock.adjust("50 minutes")
            expect(yield* rt.needsGc).toBe(true) // the GC interval (5 min) has passed
            const early = yield* rt.runGc
            expect(early.evictedModules).toBe(0) // nothing idle for an hour yet
            expect(yield* rt.needsGc).toBe(false)
            yield* spawn("t", "text", { memoryLimit: 16 * MiB }) // uses (and so touches) text's entry
            yield* TestClock.adjust("20 minutes")
            const entriesBefore = (yield* rt.stats).cache.entries
            const gc = yield* rt.runGc
            expect(gc.evictedModules).toBeGreaterThanOrEqual(1) // counter's entries: idle 70 min
            expect((yield* rt.stats).cache.entries).toBe(entriesBefore - gc.evictedModules)
            expect(gc.memoryAfter).toBe(gc.memoryBefore) // instances are not touched
            const stats = yield* rt.stats
            expect(stats.modules).toBe(2) // modules stay loaded; only compilations are dropped
            expect(stats.agents).toBe(2)
            // the running agent keeps its state
            expect(yield* call("c", "get")).toEqual([7])
            // text's entry (used 20 min ago) was kept: another text agent compiles nothing
            const compiles = spy.compiles.length
            yield* spawn("t2", "text", { memoryLimit: 16 * MiB })
            expect(spy.compiles).toHaveLength(compiles)
            // counter's was dropped: a later spawn compiles it again, and works
            yield* spawn("c2", "counter", { memoryLimit: MiB })
            expect(spy.compiles).toHaveLength(compiles + 1)
            expect(yield* call("c2", "increment")).toEqual([1])
          })
        )
    )
  })
