/**
 * `AgentInstance` (spec "Entities / AgentInstance"): one agent's live
 * instance, its lifecycle state, health, memory budget and activity.
 *
 * States (spec `InstanceState`): Starting → Running ⇄ Paused, Running ⇄
 * Critical (protected from eviction), any → Stopping → Stopped, any →
 * Failed (health). The transition table below is the spec's `start`,
 * `pause`, `resume`, `stop` rules; `start` from `Paused` resumes without
 * re-running `_initialize` (the spec's sample would re-initialise a paused
 * agent's state).
 *
 * The entity is mutable and owned by the `RuntimeEnvironment` aggregate:
 * structural changes happen under the aggregate's lock, activity counters
 * under the agent's own mailbox (one invocation at a time per agent).
 *
 * @since 0.1.0
 */
import * as Effect from "effect/Effect"
import type * as Option from "effect/Option"
import * as Schema from "effect/Schema"
import type * as Semaphore from "effect/Semaphore"
import type { AgentConfig } from "./AgentConfig.js"
import type { HealthCheck, HealthStatus } from "./Health.js"
import type { AgentId, InstanceId, ModuleHash, ModuleId } from "./Ids.js"
import type { MemoryBudget } from "./MemoryBudget.js"
import { InvalidStateTransition } from "./RuntimeError.js"
import type { PreparedInvoke, WasmInstance } from "./WasmEngine.js"

export const InstanceState = Schema.Literals([
  "Starting",
  "Running",
  "Paused",
  "Stopping",
  "Stopped",
  "Failed",
  "Critical"
])
export type InstanceState = typeof InstanceState.Type

/** Lifecycle actions. */
export type LifecycleAction = "start" | "pause" | "resume" | "stop" | "fail" | "protect" | "unprotect"

/** States an action may start from. */
const allowed: Record<LifecycleAction, ReadonlyArray<InstanceState>> = {
  start: ["Starting", "Paused"],
  pause: ["Running"],
  resume: ["Paused"],
  stop: ["Starting", "Running", "Paused", "Failed", "Critical", "Stopping"],
  fail: ["Starting", "Running", "Paused", "Critical", "Stopping"],
  protect: ["Running"],
  unprotect: ["Critical"]
}

const target: Record<LifecycleAction, InstanceState> = {
  start: "Running",
  pause: "Paused",
  resume: "Running",
  stop: "Stopped",
  fail: "Failed",
  protect: "Critical",
  unprotect: "Running"
}

/**
 * The state after `action` from `from`, or `InvalidStateTransition`.
 * `stop` on `Stopped` is allowed and stays `Stopped` (idempotent, as in the spec).
 */
export const transition = (
  agentId: string,
  from: InstanceState,
  action: LifecycleAction
): InstanceState | InvalidStateTransition => {
  if (action === "stop" && from === "Stopped") return "Stopped"
  if (!allowed[action].includes(from)) {
    return new InvalidStateTransition({ agentId, from, to: target[action] })
  }
  return target[action]
}

/** Whether an instance in this state accepts invocations. */
export const isInvocable = (state: InstanceState): boolean => state === "Running" || state === "Critical"

/** The mutable entity. Times in ms since the Unix epoch; memory in bytes. */
export class AgentInstance {
  state: InstanceState = "Starting"
  health: HealthStatus = "Unknown"
  lastCheck: HealthCheck | undefined = undefined
  /** Failed health checks in a row, kept across checks (DESIGN.md defect 2). */
  consecutiveFailures = 0
  invocationCount = 0
  errorCount = 0
  /** Invocations and errors since the last health check (error-rate signal). */
  windowInvocations = 0
  windowErrors = 0
  lastError: string | undefined = undefined
  /** Fuel left after the last metered call (fuel units), when the agent has `fuel`. */
  fuelRemaining: number | undefined = undefined
  lastActivity: number
  budget: MemoryBudget
  instance: WasmInstance | undefined

  constructor(
    readonly id: InstanceId,
    readonly agentId: AgentId,
    readonly moduleId: ModuleId,
    readonly moduleHash: ModuleHash,
    readonly config: AgentConfig,
    readonly createdAt: number,
    budget: MemoryBudget,
    /** One permit: one invocation (or lifecycle call) at a time for this agent. */
    readonly mailbox: Semaphore.Semaphore
  ) {
    this.lastActivity = createdAt
    this.budget = budget
    this.instance = undefined
  }

  /** Synchronous callers of exports resolved on `instance` (in-process engines), by export name. */
  readonly prepared = new Map<string, PreparedInvoke>()

  /** Host capabilities (`"module.name"`) revoked from this agent. */
  readonly revoked = new Set<string>()
  /** The revoked capability the guest called during the current call, if any. */
  policyViolation: string | undefined = undefined

  /** Effects holding the mailbox right now (0 when idle); prepared synchronous calls refuse a busy agent. */
  busy = 0

  /** Runs `effect` holding the agent's mailbox (one permit): one invocation or lifecycle call at a time. */
  exclusive<A, E, R>(effect: Effect.Effect<A, E, R>): Effect.Effect<A, E, R> {
    return this.mailbox.withPermits(1)(this.markBusy(effect))
  }

  /** Like `exclusive`, but only when the mailbox is free right now (`None` otherwise). */
  exclusiveIfAvailable<A, E, R>(effect: Effect.Effect<A, E, R>): Effect.Effect<Option.Option<A>, E, R> {
    return this.mailbox.withPermitsIfAvailable(1)(this.markBusy(effect))
  }

  private markBusy<A, E, R>(effect: Effect.Effect<A, E, R>): Effect.Effect<A, E, R> {
    return Effect.suspend(() => {
      this.busy++
      return Effect.ensuring(effect, Effect.sync(() => void this.busy--))
    })
  }

  /** Uptime in ms at `now`. */
  uptime(now: number): number {
    return now - this.createdAt
  }
}
