/**
 * Snapshots (DESIGN.md "Snapshots"; `capabilities.snapshots`): linear
 * memory with zero pages skipped plus mutable globals, saved to the
 * `InstanceRepository`; restored into a fresh instance after eviction.
 */
import { agentId, InstanceRepository } from "@agent-runtime/domain"
import { describe, expect, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import { TestClock } from "effect/testing"
import { callsOf, MiB, PAGE } from "../Harness.js"
import { prose } from "../internal/words.js"
import type { SuiteContext } from "./Context.js"
import { analyse } from "./Invocation.js"

export const snapshotCases = ({ run, caps }: SuiteContext) =>
  describe("snapshots (capabilities.snapshots)", () => {
    // The counter keeps its count in an internal (unexported) mutable global: the snapshot is
    // complete only because the runtime rewrites the module to export its mutable state.
    it.effect.skipIf(!caps.snapshots)(
      "counter: snapshot, evict, restore → continues with identical results (internal mutable globals)",
      () =>
        run(({ rt, call, spawn }) =>
          Effect.gen(function* () {
            yield* spawn("c", "counter", { memoryLimit: MiB })
            yield* call("c", "add", [41])
            const snap = yield* rt.snapshot(agentId("c"))
            expect(snap).toMatchObject({ agentId: "c", lifecycle: "Running", memoryLimit: MiB })
            yield* rt.evictAgent(agentId("c"), "Manual")
            expect(yield* Effect.flip(call("c", "get"))).toMatchObject({ _tag: "AgentNotFound" })
            const restored = yield* rt.restore(agentId("c"))
            expect(restored.state).toBe("Running")
            expect(yield* call("c", "get")).toEqual([41])
            expect(yield* call("c", "increment")).toEqual([42])
          })
        )
    )

    it.effect.skipIf(!caps.snapshots)(
      "text: snapshot, evict, restore → the same answers as before and as a fresh agent",
      () =>
        run((t) =>
          Effect.gen(function* () {
            const { rt } = t
            const input = prose(50_000, 3)
            yield* t.spawn("t", "text", { memoryLimit: 16 * MiB })
            const before = yield* analyse(t, "t", input)
            const snap = yield* rt.snapshot(agentId("t"))
            expect(snap.state.memoryBytes).toBe((yield* rt.agent(agentId("t"))).budget.used)
            const saved = yield* (yield* InstanceRepository).loadState(agentId("t"))
            expect(Option.isSome(saved)).toBe(true)
            yield* rt.evictAgent(agentId("t"), "Manual")
            const restored = yield* rt.restore(agentId("t"))
            expect(restored.budget.used).toBe(snap.state.memoryBytes)
            expect(yield* analyse(t, "t", input)).toEqual(before)
            yield* t.spawn("fresh", "text", { memoryLimit: 16 * MiB })
            expect(yield* analyse(t, "fresh", input)).toEqual(before)
            // memory written before the snapshot is back byte for byte
            const page = snap.state.pages[0]!
            expect(yield* rt.readMemory(agentId("t"), page.index * PAGE, 64)).toEqual(page.data.subarray(0, 64))
          })
        )
    )

    it.effect.skipIf(!caps.snapshots)("a snapshot skips zero pages and restores the memory size and contents", () =>
      run(({ rt, spawn, call }) =>
        Effect.gen(function* () {
          yield* spawn("g", "grower", { memoryLimit: MiB })
          expect(yield* call("g", "grow", [3])).toEqual([1])
          yield* call("g", "poke", [PAGE + 5, 7])
          yield* call("g", "poke", [3 * PAGE + 9, 9])
          const snap = yield* rt.snapshot(agentId("g"))
          expect(snap.state.memoryBytes).toBe(4 * PAGE)
          const indices = snap.state.pages.map((p) => p.index)
          expect(indices).toContain(1)
          expect(indices).toContain(3)
          expect(indices).not.toContain(2)
          for (const p of snap.state.pages) {
            expect(p.data.byteLength).toBe(PAGE)
            expect(p.data.some((b) => b !== 0)).toBe(true)
          }
          yield* rt.evictAgent(agentId("g"), "Manual")
          const restored = yield* rt.restore(agentId("g"))
          expect(restored.budget.used).toBe(4 * PAGE)
          expect(yield* call("g", "size")).toEqual([4])
          expect(yield* call("g", "peek", [PAGE + 5])).toEqual([7])
          expect(yield* call("g", "peek", [3 * PAGE + 9])).toEqual([9])
          expect(yield* call("g", "peek", [2 * PAGE])).toEqual([0])
          // restoring into a live instance rolls it back
          yield* call("g", "poke", [PAGE + 5, 1])
          yield* rt.restore(agentId("g"))
          expect(yield* call("g", "peek", [PAGE + 5])).toEqual([7])
        })
      )
    )

    it.effect.skipIf(!caps.snapshots)(
      "passivation: runGc snapshots idle agents and releases them; the next call rehydrates them with their state",
      () =>
        run(
          (t) =>
            Effect.gen(function* () {
              const { rt, spy } = t
              const events = yield* t.collect
              yield* t.spawn("idle", "counter", { memoryLimit: 2 * MiB })
              yield* t.spawn("words", "text", { memoryLimit: 16 * MiB })
              yield* t.spawn("busy", "counter", { memoryLimit: 2 * MiB })
              yield* t.spawn("lc", "lifecycle", { memoryLimit: MiB })
              yield* t.call("idle", "add", [41])
              yield* t.call("lc", "bump")
              const before = yield* analyse(t, "words", "one two two three three three")
              yield* TestClock.adjust("10 minutes")
              yield* t.call("busy", "add", [1])
              const gc = yield* rt.runGc
              expect(gc.compactedInstances).toBe(3)
              expect(gc.memoryAfter).toBeLessThan(gc.memoryBefore)
              const stats = yield* rt.stats
              expect([stats.agents, stats.passivated]).toEqual([1, 3])
              yield* t.settle
              expect(
                events
                  .of("AgentPassivated")
                  .map((e) => e.agentId)
                  .sort()
              ).toEqual(["idle", "lc", "words"])
              // the next call brings each back transparently, state intact, without initialising again
              expect(yield* t.call("idle", "increment")).toEqual([42])
              expect(yield* analyse(t, "words", "one two two three three three")).toEqual(before)
              expect(before).toMatchObject({ count: 6, unique: 3, top: "three" })
              expect(yield* t.call("lc", "state")).toEqual([101])
              expect(yield* t.call("lc", "initializations_count")).toEqual([1])
              expect(callsOf(spy, "lc", "_initialize")).toHaveLength(1)
              yield* t.settle
              expect(
                events
                  .of("AgentActivated")
                  .map((e) => [e.agentId, e.passivatedFor])
                  .sort()
              ).toEqual([
                ["idle", 0],
                ["lc", 0],
                ["words", 0]
              ])
              expect((yield* rt.stats).passivated).toBe(0)
            }),
          { settings: { gc: { passivateIdleMs: 5 * 60_000 } } }
        )
    )

    it.effect.skipIf(!caps.snapshots)("restore of an agent that was never snapshotted → AgentNotFound", () =>
      run(({ rt }) =>
        Effect.gen(function* () {
          expect(yield* Effect.flip(rt.restore(agentId("never")))).toMatchObject({ _tag: "AgentNotFound" })
        })
      )
    )
  })
