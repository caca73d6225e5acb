/**
 * Invariant 3 "Health Thresholds" (spec `HealthChecker`; DESIGN.md known
 * defect 2): consecutive failures are tracked per agent across checks;
 * more than 3 → Unhealthy and `_recover`; more than `failureThreshold` →
 * evicted with `HealthFailure`.
 */
import { agentId, type HealthCheckCompleted } from "@agent-runtime/domain"
import { describe, expect, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import { callsOf, MiB } from "../Harness.js"
import type { SuiteContext } from "./Context.js"

const counts = (e: HealthCheckCompleted) => [e.totalChecked, e.healthyCount, e.degradedCount, e.unhealthyCount]

export const healthCases = ({ run }: SuiteContext) =>
  describe("health (Invariant 3)", () => {
    it.effect(
      "flaky: healthy for N checks, then Degraded, Unhealthy after > 3 failures (_recover called), evicted with HealthFailure after > failureThreshold",
      () =>
        run(
          (t) =>
            Effect.gen(function* () {
              const { rt, spy, call } = t
              const events = yield* t.collect
              yield* t.spawn("ok", "counter", { memoryLimit: MiB })
              yield* t.spawn("fl", "flaky", { memoryLimit: MiB })
              yield* call("fl", "configure", [2])
              expect(yield* call("fl", "threshold_value")).toEqual([2])
              expect((yield* rt.getHealth(agentId("fl"))).status).toBe("Unknown")

              const expected: ReadonlyArray<readonly [string, number]> = [
                ["Healthy", 0],
                ["Healthy", 0],
                ["Degraded", 1],
                ["Degraded", 2],
                ["Degraded", 3],
                ["Unhealthy", 4],
                ["Unhealthy", 5]
              ]
              for (const [i, [status, failures]] of expected.entries()) {
                const checks = yield* rt.checkHealth
                expect(checks).toHaveLength(2)
                const fl = checks.find((c) => c.agentId === "fl")!
                expect([fl.status, fl.details.consecutiveFailures]).toEqual([status, failures])
                expect(fl.details.responseOk).toBe(status === "Healthy")
                if (status !== "Healthy") expect(fl.details.lastError).toMatch(/503/)
                const info = yield* rt.agent(agentId("fl"))
                expect([info.health, info.consecutiveFailures]).toEqual([status, failures])
                expect((yield* rt.getHealth(agentId("fl"))).status).toBe(status)
                expect(yield* call("fl", "health_checks")).toEqual([i + 1])
                expect(checks.find((c) => c.agentId === "ok")!.status).toBe("Healthy")
              }
              // _recover ran on each Unhealthy check (and could not fix flaky)
              expect(callsOf(spy, "fl", "_recover")).toHaveLength(2)
              expect(yield* call("fl", "work")).toEqual([1])

              // the next failure is beyond failureThreshold (5): Failed → evicted with HealthFailure
              const last = yield* rt.checkHealth
              expect(last.find((c) => c.agentId === "fl")).toMatchObject({
                status: "Unhealthy",
                details: { consecutiveFailures: 6 }
              })
              expect((yield* rt.agents).map((a) => a.agentId)).toEqual(["ok"])
              expect(yield* Effect.flip(call("fl", "work"))).toMatchObject({ _tag: "AgentNotFound" })
              expect(callsOf(spy, "fl", "_recover")).toHaveLength(2)

              yield* t.settle
              const completed = events.of("HealthCheckCompleted")
              expect(completed).toHaveLength(8)
              expect(completed.map(counts)).toEqual([
                [2, 2, 0, 0],
                [2, 2, 0, 0],
                [2, 1, 1, 0],
                [2, 1, 1, 0],
                [2, 1, 1, 0],
                [2, 1, 0, 1],
                [2, 1, 0, 1],
                [2, 1, 0, 1]
              ])
              expect(completed.map((e) => e.failedAgents)).toEqual([[], [], [], [], [], [], [], ["fl"]])
              expect(events.of("AgentEvicted").map((e) => [e.agentId, e.reason])).toEqual([["fl", "HealthFailure"]])
              expect((yield* rt.stats).healthChecks).toBe(8)
            }),
          { settings: { health: { unhealthyAfter: 3, failureThreshold: 5 } } }
        )
    )

    it.effect("lifecycle: a broken health check recovers through _recover and returns to Healthy", () =>
      run(
        ({ rt, spy, spawn, call }) =>
          Effect.gen(function* () {
            yield* spawn("lc", "lifecycle", { memoryLimit: MiB })
            expect((yield* rt.checkHealth)[0]!.status).toBe("Healthy")
            yield* call("lc", "break_health")
            const statuses: Array<string> = []
            for (let i = 0; i < 5; i++) statuses.push((yield* rt.checkHealth)[0]!.status)
            expect(statuses).toEqual(["Degraded", "Degraded", "Degraded", "Unhealthy", "Healthy"])
            expect(callsOf(spy, "lc", "_recover")).toEqual([{ agentId: "lc", fn: "_recover", ok: true }])
            expect(spy.probes.filter((p) => p.after === "_recover").map((p) => p.results)).toEqual([[1]])
            expect(yield* call("lc", "recoveries_count")).toEqual([1])
            const info = yield* rt.agent(agentId("lc"))
            expect([info.health, info.consecutiveFailures, info.state]).toEqual(["Healthy", 0, "Running"])
          }),
        { settings: { health: { unhealthyAfter: 3, failureThreshold: 5 } } }
      )
    )

    it.effect("a non-zero _health_check is a failed response; paused agents are not probed", () =>
      run(({ rt, spawn, call, spy }) =>
        Effect.gen(function* () {
          yield* spawn("fl", "flaky", { memoryLimit: MiB })
          yield* call("fl", "configure", [0])
          yield* spawn("p", "counter", { memoryLimit: MiB })
          yield* rt.pause(agentId("p"))
          const checks = yield* rt.checkHealth
          expect(checks.find((c) => c.agentId === "fl")!.status).toBe("Degraded")
          expect(callsOf(spy, "p", "_health_check")).toHaveLength(0)
        })
      )
    )
  })
