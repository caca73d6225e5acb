/**
 * The instance lifecycle (spec `AgentInstance`): `_initialize` once on
 * start, pause/resume, `_cleanup` on stop, invalid transitions, `Critical`,
 * and the `AgentStateChanged` events.
 */
import { AgentNotRunning, agentId, InvalidStateTransition } from "@agent-runtime/domain"
import { describe, expect, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import { callsOf, MiB } from "../Harness.js"
import type { SuiteContext } from "./Context.js"

export const lifecycleCases = ({ run }: SuiteContext) =>
  describe("lifecycle", () => {
    it.effect(
      "lifecycle agent: _initialize once on start, pause → AgentNotRunning, resume, stop runs _cleanup, invalid transitions, events in order",
      () =>
        run((t) =>
          Effect.gen(function* () {
            const { rt, spy, call } = t
            const id = agentId("lc")
            const events = yield* t.collect
            const spawned = yield* t.spawn("lc", "lifecycle", { memoryLimit: MiB, autoStart: false })
            expect(spawned.state).toBe("Starting")
            // instantiation runs nothing: not initialised, and not invocable yet
            expect(yield* Effect.flip(call("lc", "initialized"))).toMatchObject({
              _tag: "AgentNotRunning",
              state: "Starting"
            })
            expect(callsOf(spy, "lc", "_initialize")).toHaveLength(0)

            yield* rt.start(id)
            expect((yield* rt.agent(id)).state).toBe("Running")
            expect(yield* call("lc", "initialized")).toEqual([1])
            expect(yield* call("lc", "state")).toEqual([100])
            expect(yield* call("lc", "bump")).toEqual([101])
            expect(yield* Effect.flip(rt.start(id))).toMatchObject({ _tag: "InvalidStateTransition", from: "Running" })
            expect(yield* Effect.flip(rt.resume(id))).toBeInstanceOf(InvalidStateTransition)

            yield* rt.pause(id)
            expect((yield* rt.agent(id)).state).toBe("Paused")
            const paused = yield* Effect.flip(call("lc", "bump"))
            expect(paused).toBeInstanceOf(AgentNotRunning)
            expect(paused).toMatchObject({ agentId: "lc", state: "Paused" })
            expect(yield* Effect.flip(rt.pause(id))).toMatchObject({
              _tag: "InvalidStateTransition",
              from: "Paused",
              to: "Paused"
            })
            yield* rt.resume(id)
            expect(yield* call("lc", "bump")).toEqual([102])
            // start from Paused resumes without initialising again
            yield* rt.pause(id)
            yield* rt.start(id)
            expect(yield* call("lc", "initializations_count")).toEqual([1])
            expect(yield* call("lc", "state")).toEqual([102])
            expect(callsOf(spy, "lc", "_initialize")).toEqual([{ agentId: "lc", fn: "_initialize", ok: true }])

            yield* rt.stop(id)
            expect((yield* rt.agent(id)).state).toBe("Stopped")
            expect(callsOf(spy, "lc", "_cleanup")).toEqual([{ agentId: "lc", fn: "_cleanup", ok: true }])
            // the guest itself says _cleanup ran once and cleared `initialized`
            const instance = spy.instances.get("lc")!
            expect((yield* instance.invoke("cleanups_count", [])).results).toEqual([1])
            expect((yield* instance.invoke("initialized", [])).results).toEqual([0])
            expect(yield* Effect.flip(call("lc", "state"))).toMatchObject({ _tag: "AgentNotRunning", state: "Stopped" })
            for (const op of [rt.start(id), rt.pause(id), rt.resume(id)]) {
              expect(yield* Effect.flip(op)).toMatchObject({ _tag: "InvalidStateTransition", from: "Stopped" })
            }
            yield* rt.stop(id) // idempotent: _cleanup does not run twice
            expect(callsOf(spy, "lc", "_cleanup")).toHaveLength(1)
            expect(yield* Effect.flip(rt.start(agentId("ghost")))).toMatchObject({ _tag: "AgentNotFound" })

            yield* t.settle
            const changes = events
              .of("AgentStateChanged")
              .filter((e) => e.agentId === "lc")
              .map((e) => `${e.from}→${e.to}`)
            expect(changes).toEqual([
              "Starting→Running",
              "Running→Paused",
              "Paused→Running",
              "Running→Paused",
              "Paused→Running",
              "Running→Stopping",
              "Stopping→Stopped"
            ])
          })
        )
    )

    it.effect(
      "autoStart (default) initialises during the spawn; Critical agents are invocable and can be unprotected",
      () =>
        run(({ rt, spawn, call }) =>
          Effect.gen(function* () {
            const a = yield* spawn("lc", "lifecycle", { memoryLimit: MiB })
            expect(a.state).toBe("Running")
            expect(yield* call("lc", "initialized")).toEqual([1])
            yield* rt.setCritical(agentId("lc"), true)
            expect((yield* rt.agent(agentId("lc"))).state).toBe("Critical")
            expect(yield* call("lc", "bump")).toEqual([101])
            expect(yield* Effect.flip(rt.pause(agentId("lc")))).toBeInstanceOf(InvalidStateTransition)
            yield* rt.setCritical(agentId("lc"), false)
            expect((yield* rt.agent(agentId("lc"))).state).toBe("Running")
            const c = yield* spawn("crit", "counter", { memoryLimit: MiB, critical: true })
            expect(c.state).toBe("Critical")
            expect(yield* call("crit", "increment")).toEqual([1])
            yield* rt.pause(agentId("lc"))
            expect(yield* Effect.flip(rt.setCritical(agentId("lc"), true))).toBeInstanceOf(InvalidStateTransition)
          })
        )
    )
  })
