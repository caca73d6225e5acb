/**
 * Health checks (spec `HealthChecker::check_all`, `get_health`): memory,
 * `_health_check` and error rate per agent, consecutive failures tracked
 * per agent across checks (DESIGN.md defect 2), `_recover` on unhealthy
 * agents, eviction (`HealthFailure`) past the threshold, and
 * `HealthCheckCompleted`.
 *
 * A `_health_check` or `_recover` that traps follows the agent's `onTrap`
 * policy like a trapped call (`Recovery`, issue 12 item 7): with
 * `"restore"` its instance is replaced (from the last snapshot, or fresh)
 * before the mailbox is released, publishing `AgentRecovered`; the failed
 * probe still counts against the agent's health.
 *
 * @since 0.1.0
 */
import * as Cause from "effect/Cause"
import * as Clock from "effect/Clock"
import * as Effect from "effect/Effect"
import type * as Exit from "effect/Exit"
import * as Option from "effect/Option"
import { type AgentInstance, isInvocable } from "../AgentInstance.js"
import type { HealthCheck, HealthStatus } from "../Health.js"
import * as HealthChecker from "../HealthChecker.js"
import type { AgentId } from "../Ids.js"
import * as MemoryBudget from "../MemoryBudget.js"
import type { AgentNotFound, EngineInvokeError } from "../RuntimeError.js"
import { HealthCheckCompleted } from "../RuntimeEvent.js"
import { evictLocked } from "./Eviction.js"
import { callLifecycle, live } from "./Lifecycle.js"
import { awaitsRecovery, noteFailure, recoverLocked } from "./Recovery.js"
import { applyTransition, emit, errorText, type RuntimeState } from "./RuntimeState.js"

/** Notes a lifecycle call's trap for recovery (`Recovery.noteFailure`: the agent's `onTrap` policy decides). */
const noteTrap = (state: RuntimeState, i: AgentInstance, exit: Exit.Exit<unknown, EngineInvokeError>): void => {
  if (exit._tag === "Success") return
  const error = Cause.findErrorOption(exit.cause)
  if (Option.isSome(error)) noteFailure(state, i, error.value)
}

/**
 * Probes an agent's `_health_check` export (skipped when paused, `NoProbe` without one). The caller holds the
 * mailbox. A trap is noted for recovery (`noteTrap`); the caller replaces the instance.
 */
const probe = (state: RuntimeState, i: AgentInstance): Effect.Effect<HealthChecker.ProbeOutcome> =>
  Effect.gen(function* () {
    if (i.state === "Paused") return { _tag: "Skipped", reason: "paused" } as const
    const module = state.env.modules.get(i.moduleId)
    if (module === undefined || !module.functions.has("_health_check")) return { _tag: "NoProbe" } as const
    const t0 = yield* Clock.currentTimeMillis
    const exit = yield* Effect.exit(callLifecycle(state, i, "_health_check", state.settings.health.timeoutMs))
    noteTrap(state, i, exit)
    const elapsedMs = (yield* Clock.currentTimeMillis) - t0
    return exit._tag === "Success"
      ? ({ _tag: "Returned", results: exit.value?.results ?? [], elapsedMs } as const)
      : ({ _tag: "Failed", error: errorText(exit.cause), elapsedMs } as const)
  })

/** Checks one agent under its mailbox; `undefined` when it is gone or not running. */
const checkOne = (state: RuntimeState, i: AgentInstance): Effect.Effect<HealthCheck | undefined> =>
  i.exclusive(
    Effect.gen(function* () {
      const { settings } = state
      yield* recoverLocked(state, i) // a trapped instance is replaced before it is probed
      if (state.env.instances.get(i.agentId) !== i || i.instance === undefined) return undefined
      if (!(isInvocable(i.state) || i.state === "Paused")) return undefined
      const outcome = yield* probe(state, i)
      const result = HealthChecker.evaluate(
        {
          memoryUtilization: MemoryBudget.utilization(i.budget),
          windowInvocations: i.windowInvocations,
          windowErrors: i.windowErrors,
          previousFailures: i.consecutiveFailures,
          probe: outcome
        },
        settings.health
      )
      const now = yield* Clock.currentTimeMillis
      const check: HealthCheck = { agentId: i.agentId, status: result.status, checkedAt: now, details: result.details }
      i.recordHealthCheck(check)
      if (result.action === "fail") {
        yield* Effect.ignore(applyTransition(state, i, (i) => i.fail()))
        return check
      }
      // a trapped probe: the instance is replaced now, like after a trapped call, before anything else runs on it
      if (awaitsRecovery(i)) yield* recoverLocked(state, i)
      if (result.action === "recover" && state.env.instances.get(i.agentId) === i && i.state !== "Failed") {
        const recovered = yield* Effect.exit(callLifecycle(state, i, "_recover", settings.health.timeoutMs))
        if (recovered._tag === "Failure") i.recordError(`_recover failed: ${errorText(recovered.cause)}`)
        noteTrap(state, i, recovered)
        if (awaitsRecovery(i)) yield* recoverLocked(state, i)
      }
      return check
    })
  )

/** Checks every live agent, evicts the failed ones, publishes `HealthCheckCompleted`. */
export const checkHealth = (state: RuntimeState): Effect.Effect<ReadonlyArray<HealthCheck>> =>
  Effect.gen(function* () {
    const { env } = state
    const t0 = yield* Clock.currentTimeMillis
    const targets = [...env.instances.values()]
    const checks = (yield* Effect.forEach(targets, (i) => checkOne(state, i), {
      concurrency: state.settings.health.concurrency
    })).filter((c): c is HealthCheck => c !== undefined)
    const failed = targets.filter((i) => i.state === "Failed").map((i) => i.agentId)
    yield* state.locked(Effect.forEach(failed, (id) => evictLocked(state, id, "HealthFailure"), { discard: true }))
    env.counters.healthChecks++
    const duration = (yield* Clock.currentTimeMillis) - t0
    const count = (s: HealthStatus) => checks.filter((c) => c.status === s).length
    yield* emit(
      state,
      (e) =>
        new HealthCheckCompleted({
          ...e,
          totalChecked: checks.length,
          healthyCount: count("Healthy"),
          degradedCount: count("Degraded"),
          unhealthyCount: count("Unhealthy"),
          failedAgents: failed,
          duration
        })
    )
    return checks
  })

/** The last health check of an agent (status `Unknown` before the first). */
export const getHealth = (state: RuntimeState, agentId: AgentId): Effect.Effect<HealthCheck, AgentNotFound> =>
  Effect.map(
    live(state, agentId),
    (i) =>
      i.lastCheck ?? {
        agentId,
        status: "Unknown" as const,
        checkedAt: i.createdAt,
        details: { memoryOk: true, responseOk: true, errorRateOk: true, lastError: undefined, consecutiveFailures: 0 }
      }
  )
