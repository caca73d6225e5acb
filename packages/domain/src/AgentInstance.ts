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
 * The entity is owned by the `RuntimeEnvironment` aggregate and changes only
 * through its own methods: structural changes happen under the aggregate's
 * lock, lifecycle transitions and activity counters under the agent's own
 * mailbox (one invocation at a time per agent).
 *
 * @since 0.1.0
 */
import type * as Effect from "effect/Effect"
import type * as Option from "effect/Option"
import * as Schema from "effect/Schema"
import type { AgentConfig } from "./AgentConfig.js"
import type { HealthCheck, HealthStatus } from "./Health.js"
import type { AgentId, InstanceId, ModuleHash, ModuleId } from "./Ids.js"
import { type MemoryBudget, recordUsage } from "./MemoryBudget.js"
import { Mailbox } from "./internal/Mailbox.js"
import { InvalidStateTransition } from "./RuntimeError.js"
import type { PreparedInvoke, WasmInstance } from "./WasmEngine.js"

export { Mailbox }

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

/** A lifecycle change made by one of `AgentInstance`'s transitions (`from === to` when nothing changed). */
export interface StateChange {
  readonly from: InstanceState
  readonly to: InstanceState
}

/**
 * The counters and health an agent keeps across passivation (rehydration)
 * or a restore from a snapshot.
 */
export interface CarriedState {
  readonly invocationCount: number
  readonly errorCount?: number | undefined
  readonly health?: HealthStatus | undefined
  readonly consecutiveFailures?: number | undefined
  readonly lastActivity?: number | undefined
}

/** What `prepared` / `revoked` read before the first caller / revocation: empty, shared, never written. */
const NO_CALLERS: ReadonlyMap<string, PreparedInvoke> = new Map()
const NO_REVOKED: ReadonlySet<string> = new Set()

/**
 * The entity. Times in ms since the Unix epoch; memory in bytes. Its state
 * is read-only from outside: the lifecycle moves only through the
 * transitions below (one per edge of the spec's state machine, each refusing
 * an illegal move with `InvalidStateTransition`), activity and health only
 * through the `record*` methods.
 */
export class AgentInstance {
  private _state: InstanceState = "Starting"
  private _health: HealthStatus = "Unknown"
  private _lastCheck: HealthCheck | undefined = undefined
  private _consecutiveFailures = 0
  private _invocationCount = 0
  private _errorCount = 0
  private _windowInvocations = 0
  private _windowErrors = 0
  private _lastError: string | undefined = undefined
  private _fuelRemaining: number | undefined = undefined
  private _lastActivity: number
  private _budget: MemoryBudget
  private _instance: WasmInstance | undefined = undefined
  private _policyViolation: string | undefined = undefined
  // made on first use (most agents never revoke a capability; a worker engine's agents never prepare a caller)
  private callers: Map<string, PreparedInvoke> | undefined = undefined
  private _revoked: Set<string> | undefined = undefined
  private _mailbox: Mailbox | undefined
  private _removed = false
  /**
   * The message of the trap that marked this instance for replacement
   * (`Recovery.noteFailure`, under `onTrap: "restore"`), until it is
   * replaced; `undefined` otherwise. Read and written by `Recovery` only.
   */
  trapNote: string | undefined = undefined

  constructor(
    readonly id: InstanceId,
    readonly agentId: AgentId,
    readonly moduleId: ModuleId,
    readonly moduleHash: ModuleHash,
    readonly config: AgentConfig,
    readonly createdAt: number,
    budget: MemoryBudget,
    /** The agent's mailbox; omitted → made on first use (`mailbox`). */
    mailbox?: Mailbox | undefined
  ) {
    this._lastActivity = createdAt
    this._budget = budget
    this._mailbox = mailbox
  }

  /**
   * One permit: one invocation (or lifecycle call) at a time for this agent,
   * FIFO (`Mailbox`). Made on first use when the constructor was given none
   * (an agent spawned in one synchronous step and only ever called
   * synchronously never needs one); JavaScript runs one step at a time, so
   * every user sees the same one.
   */
  get mailbox(): Mailbox {
    return (this._mailbox ??= new Mailbox())
  }

  get state(): InstanceState {
    return this._state
  }
  get health(): HealthStatus {
    return this._health
  }
  get lastCheck(): HealthCheck | undefined {
    return this._lastCheck
  }
  /** Failed health checks in a row, kept across checks (DESIGN.md defect 2). */
  get consecutiveFailures(): number {
    return this._consecutiveFailures
  }
  get invocationCount(): number {
    return this._invocationCount
  }
  get errorCount(): number {
    return this._errorCount
  }
  /** Invocations since the last health check (error-rate signal). */
  get windowInvocations(): number {
    return this._windowInvocations
  }
  /** Failed invocations since the last health check (error-rate signal). */
  get windowErrors(): number {
    return this._windowErrors
  }
  get lastError(): string | undefined {
    return this._lastError
  }
  /** Fuel left after the last metered call (fuel units), when the agent has `fuel`. */
  get fuelRemaining(): number | undefined {
    return this._fuelRemaining
  }
  get lastActivity(): number {
    return this._lastActivity
  }
  get budget(): MemoryBudget {
    return this._budget
  }
  /** The engine's instance; `undefined` before instantiation and after release. */
  get instance(): WasmInstance | undefined {
    return this._instance
  }
  /** Synchronous callers of exports resolved on `instance` (in-process engines), by export name (`syncCaller`). */
  get prepared(): ReadonlyMap<string, PreparedInvoke> {
    return this.callers ?? NO_CALLERS
  }
  /** Host capabilities (`"module.name"`) revoked from this agent. */
  get revoked(): ReadonlySet<string> {
    return this._revoked ?? NO_REVOKED
  }
  /** The revoked capability the guest called during the current call, if any. */
  get policyViolation(): string | undefined {
    return this._policyViolation
  }
  /**
   * True once the runtime removed this instance from its agents
   * (`RuntimeEnvironment.remove`: evicted, passivated, a failed spawn); a
   * holder of the instance (a prepared call handle) looks the agent up
   * again then. Never false again.
   */
  get removed(): boolean {
    return this._removed
  }
  /** Marks the instance removed (`RuntimeEnvironment.remove` only). */
  markRemoved(): void {
    this._removed = true
  }
  /**
   * Effects holding the mailbox right now: 0 when idle, 1 while a call or
   * lifecycle step holds it (or it was handed to the first queued caller,
   * which has not run yet); prepared synchronous calls refuse a busy agent.
   */
  get busy(): number {
    return this._mailbox !== undefined && this._mailbox.held ? 1 : 0
  }

  // -- lifecycle transitions (spec `AgentInstance::start/pause/resume/stop`) --

  private move(action: LifecycleAction, to?: InstanceState): StateChange | InvalidStateTransition {
    const from = this._state
    const next = transition(this.agentId, from, action)
    if (typeof next !== "string") return next
    this._state = to ?? next
    return { from, to: this._state }
  }

  /** Starting/Paused → Running (or → Critical when the config says `critical`). */
  start(): StateChange | InvalidStateTransition {
    return this.move("start", this.config.critical === true ? "Critical" : "Running")
  }
  /** Running → Paused. */
  pause(): StateChange | InvalidStateTransition {
    return this.move("pause")
  }
  /** Paused → Running. */
  resume(): StateChange | InvalidStateTransition {
    return this.move("resume")
  }
  /** Running → Critical (never evicted under pressure). */
  protect(): StateChange | InvalidStateTransition {
    return this.move("protect")
  }
  /** Critical → Running. */
  unprotect(): StateChange | InvalidStateTransition {
    return this.move("unprotect")
  }
  /** Any state but Stopped/Failed → Failed (failed `_initialize`, failed health). */
  fail(): StateChange | InvalidStateTransition {
    return this.move("fail")
  }
  /** Any state but Stopped → Stopping (before `_cleanup`). */
  stopping(): StateChange | InvalidStateTransition {
    if (this._state === "Stopped")
      return new InvalidStateTransition({ agentId: this.agentId, from: "Stopped", to: "Stopping" })
    return this.move("stop", "Stopping")
  }
  /** Stopping → Stopped (after `_cleanup`). */
  stopped(): StateChange | InvalidStateTransition {
    if (this._state !== "Stopping") {
      return new InvalidStateTransition({ agentId: this.agentId, from: this._state, to: "Stopped" })
    }
    return this.move("stop")
  }
  /**
   * Starting → the state the agent had when it was passivated (`Running` or
   * `Paused`), with the counters and health it carried; no `_initialize`.
   */
  rehydrate(to: "Running" | "Paused", carried: CarriedState): StateChange | InvalidStateTransition {
    if (this._state !== "Starting") return new InvalidStateTransition({ agentId: this.agentId, from: this._state, to })
    this.carry(carried)
    this._state = to
    return { from: "Starting", to }
  }

  /** Takes over the counters (and health) an agent carried across passivation or a snapshot. */
  carry(carried: CarriedState): void {
    this._invocationCount = carried.invocationCount
    if (carried.errorCount !== undefined) this._errorCount = carried.errorCount
    if (carried.health !== undefined) this._health = carried.health
    if (carried.consecutiveFailures !== undefined) this._consecutiveFailures = carried.consecutiveFailures
    if (carried.lastActivity !== undefined) this._lastActivity = carried.lastActivity
  }

  // -- the engine instance ----------------------------------------------------

  /** Attaches the engine's instance once it is instantiated (a replacement too: its callers are resolved anew). */
  attach(instance: WasmInstance): void {
    this._instance = instance
    this.callers?.clear()
  }
  /** Detaches the engine's instance (evicted or passivated) and returns it, to terminate. */
  detach(): WasmInstance | undefined {
    const instance = this._instance
    this._instance = undefined
    return instance
  }
  /** The synchronous caller of `fn` on `instance` (in-process engines), resolved once per instance. */
  syncCaller(instance: WasmInstance, fn: string): PreparedInvoke | undefined {
    let caller = this.callers?.get(fn)
    if (caller === undefined) {
      caller = instance.prepare?.(fn)
      if (caller !== undefined) (this.callers ??= new Map()).set(fn, caller)
    }
    return caller
  }

  // -- activity, memory and health ---------------------------------------------

  /** Counts a call that is about to run. */
  recordCallStarted(): void {
    this._invocationCount++
    this._windowInvocations++
  }
  /** Records a completed call at `now`: activity and the fuel left (fuel units). */
  recordCallCompleted(now: number, fuelRemaining: number | undefined): void {
    this._lastActivity = now
    this._fuelRemaining = fuelRemaining
  }
  /** Records a failed call and its message. */
  recordCallFailed(message: string): void {
    this._errorCount++
    this._windowErrors++
    this._lastError = message
  }
  /** Records the linear memory in use after a call (bytes). */
  recordMemory(bytes: number): void {
    if (this._budget.used !== bytes || this._budget.peak < bytes) this._budget = recordUsage(this._budget, bytes)
  }
  /** Records an error that did not fail a call (`_cleanup`, `_recover`, a snapshot). */
  recordError(message: string): void {
    this._lastError = message
  }
  /** Records a health check; its window of invocations and errors starts again. */
  recordHealthCheck(check: HealthCheck): void {
    this._consecutiveFailures = check.details.consecutiveFailures
    this._health = check.status
    this._lastCheck = check
    this._windowInvocations = 0
    this._windowErrors = 0
    if (check.details.lastError !== undefined) this._lastError = check.details.lastError
  }
  /** Revokes a host capability (`"module.name"`). */
  revoke(capability: string): void {
    ;(this._revoked ??= new Set()).add(capability)
  }
  /** Records that the guest called a revoked capability. */
  recordPolicyViolation(capability: string): void {
    this._policyViolation = capability
  }

  // -- the mailbox ---------------------------------------------------------------

  /**
   * Runs `effect` holding the agent's mailbox (one permit): one invocation or
   * lifecycle call at a time, queued callers in FIFO order; released however
   * `effect` exits (`Mailbox.withPermit`).
   */
  exclusive<A, E, R>(effect: Effect.Effect<A, E, R>): Effect.Effect<A, E, R> {
    return this.mailbox.withPermit(effect)
  }

  /** Like `exclusive`, but only when the mailbox is free right now (`None` otherwise, nothing queued). */
  exclusiveIfAvailable<A, E, R>(effect: Effect.Effect<A, E, R>): Effect.Effect<Option.Option<A>, E, R> {
    return this.mailbox.withPermitIfAvailable(effect)
  }

  /** Uptime in ms at `now`. */
  uptime(now: number): number {
    return now - this.createdAt
  }
}
