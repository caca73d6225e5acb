/**
 * Shutdown (spec `RuntimeStatus` → ShuttingDown → Stopped): every agent's
 * `_cleanup` runs, every agent is evicted with `Shutdown`, new work is refused.
 */
import { agentId, RuntimeUnavailable } from "@agent-runtime/domain"
import { describe, expect, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import { callsOf, MiB } from "../Harness.js"
import type { SuiteContext } from "./Context.js"

export const shutdownCases = ({ run }: SuiteContext) =>
  describe("shutdown", () => {
    it.effect(
      "runs every agent's _cleanup, evicts all with Shutdown, then refuses new work with RuntimeUnavailable",
      () =>
        run((t) =>
          Effect.gen(function* () {
            const { rt, spy } = t
            expect(yield* rt.status).toBe("Ready")
            const events = yield* t.collect
            const moduleId = yield* t.load("counter")
            yield* t.spawn("l1", "lifecycle", { memoryLimit: MiB })
            yield* t.spawn("l2", "lifecycle", { memoryLimit: MiB })
            yield* t.spawn("l3", "lifecycle", { memoryLimit: MiB })
            yield* rt.pause(agentId("l3"))
            yield* t.spawn("c", "counter", { memoryLimit: MiB })
            expect(yield* rt.status).toBe("Running")
            yield* rt.shutdown
            expect(yield* rt.status).toBe("Stopped")
            for (const id of ["l1", "l2", "l3"]) {
              expect(callsOf(spy, id, "_cleanup")).toEqual([{ agentId: id, fn: "_cleanup", ok: true }])
              // asked of the guest right after its _cleanup returned
              expect(
                spy.probes.filter((p) => p.agentId === id && p.after === "_cleanup").map((p) => [p.fn, p.results])
              ).toEqual([
                ["cleanups_count", [1]],
                ["initialized", [0]]
              ])
            }
            expect(yield* rt.agents).toHaveLength(0)
            const stats = yield* rt.stats
            expect(stats.memory.reserved).toBe(0)
            expect(stats.memory.used).toBe(0)
            yield* t.settle
            expect(
              events
                .of("AgentEvicted")
                .map((e) => [e.agentId, e.reason])
                .sort()
            ).toEqual([
              ["c", "Shutdown"],
              ["l1", "Shutdown"],
              ["l2", "Shutdown"],
              ["l3", "Shutdown"]
            ])
            const id = yield* Effect.flip(t.load("counter"))
            expect(id).toBeInstanceOf(RuntimeUnavailable)
            expect(id).toMatchObject({ status: "Stopped" })
            const spawn = yield* Effect.flip(rt.spawnAgent(agentId("late"), moduleId, { memoryLimit: MiB }))
            expect(spawn).toBeInstanceOf(RuntimeUnavailable)
            expect(yield* Effect.flip(t.call("c", "get"))).toMatchObject({ _tag: "AgentNotFound" })
            yield* rt.shutdown // idempotent
            expect(yield* rt.status).toBe("Stopped")
          })
        )
    )
  })
