/**
 * Invocation (spec `invoke`): the checks of a call — the agent exists, it
 * is running, the function exists, the arguments match its signature —
 * written once and used by `invoke` and the prepared call handle; the call
 * itself (one synchronous step on an idle in-process agent — followed, with
 * `persistence.snapshotAfterCalls`, by the save it waits for; on an idle
 * worker-engine agent the request sent in that step and a reply already
 * there recorded in it too, `invokeStarted` — else through the agent's
 * mailbox); and what a completed or failed call records.
 *
 * @since 0.1.0
 */
import type { FuncType, ValueType } from "@agent-runtime/wasm-binary"
import * as Clock from "effect/Clock"
import * as Effect from "effect/Effect"
import { AgentInstance, isInvocable } from "../AgentInstance.js"
import { type AgentId, idForError } from "../Ids.js"
import * as MemoryBudget from "../MemoryBudget.js"
import {
  AgentEvictedDuringCall,
  AgentNotFound,
  AgentNotRunning,
  type EngineInvokeError,
  type InvokeError,
  MemoryExceeded,
  type RepositoryError,
  SignatureMismatch,
  Unauthorized
} from "../RuntimeError.js"
import type { AgentConfig } from "../AgentConfig.js"
import {
  type CallSlot,
  callResults,
  type DirectInvoke,
  directFromPrepared,
  type InvokeOptions,
  type InvokeOutcome,
  makeCallSlot,
  type WasmInstance
} from "../WasmEngine.js"
import { checkArguments, type WasmValue } from "../WasmValue.js"
import { withBudgetNote } from "./Diagnostics.js"
import { evictionOf, evictLater } from "./Eviction.js"
import { argumentsNotArray, argumentsUnreadable, functionNotFound } from "./Inputs.js"
import { activate } from "./Passivation.js"
import { saveLocked } from "./Persistence.js"
import { pressureDue, schedulePressure } from "./Pressure.js"
import { awaitsRecovery, noteFailure, recoverLocked, trapNoted } from "./Recovery.js"
import type { RuntimeState } from "./RuntimeState.js"
import type { SpawnError } from "./Spawning.js"

// -- the checks of a call ------------------------------------------------------

/**
 * The agent's live instance; `"Passivated"` when its instance was released
 * and its state waits in the `InstanceRepository` (`invoke` rehydrates it, a
 * synchronous call refuses); `AgentNotFound` otherwise.
 */
export const findAgent = (state: RuntimeState, agentId: AgentId): AgentInstance | "Passivated" | AgentNotFound => {
  const i = state.env.instances.get(agentId)
  if (i !== undefined) return i
  return state.env.passivated.has(agentId) ? "Passivated" : new AgentNotFound({ agentId: idForError(agentId) })
}

/** The signature of an agent's export `fn` (`undefined`: no such export, `FunctionNotFound`). */
export const exportSignature = (state: RuntimeState, i: AgentInstance, fn: string): FuncType | undefined =>
  state.env.modules.get(i.moduleId)?.functions.get(fn)

/**
 * `SignatureMismatch` when `args` do not fit the export's signature (i64 as
 * bigint), are not an array (an array-like such as `{ length: 1, 0: 5 }`
 * included), or cannot be read (an accessor that throws), else `undefined`.
 */
export const checkArgs = (
  signature: FuncType,
  fn: string,
  args: ReadonlyArray<WasmValue>
): SignatureMismatch | undefined => {
  if (!Array.isArray(args)) return argumentsNotArray(fn, args)
  let mismatch: ReturnType<typeof checkArguments>
  try {
    mismatch = checkArguments(signature, args)
  } catch (e) {
    return argumentsUnreadable(fn, e)
  }
  return mismatch === undefined ? undefined : mismatchError(fn, mismatch)
}

/** Whether a value fits a value type: exactly when `checkValue` (WasmValue) finds no problem. */
export const fits: { readonly [T in ValueType]: (value: unknown) => boolean } = {
  i32: (v) => typeof v === "number" && Number.isInteger(v) && v >= -2_147_483_648 && v <= 4_294_967_295,
  // [-2^63, 2^64 - 1]: a signed or an unsigned 64-bit value (two `BigInt.asIntN`/`asUintN` round trips cost
  // less than two relational bigint comparisons on V8)
  i64: (v) => typeof v === "bigint" && (BigInt.asIntN(64, v) === v || BigInt.asUintN(64, v) === v),
  f32: (v) => typeof v === "number",
  f64: (v) => typeof v === "number",
  v128: () => false,
  funcref: (v) => v === null || typeof v === "function",
  externref: () => true
}

/** A checker of one signature's arguments: `checkArgs` with the accepted case decided without a loop or allocation. */
export type ArgsChecker = (args: ReadonlyArray<WasmValue>) => SignatureMismatch | undefined

/** An export of an agent's module resolved for calls: its signature, its specialised checker and its direct caller. */
interface Resolved {
  readonly signature: FuncType
  readonly check: ArgsChecker
  /** The engine instance `direct` was resolved on (a recovery replaces an agent's instance). */
  directFor: WasmInstance | undefined
  /** The engine's allocation-free caller of the export on `directFor` (`directCaller`). */
  direct: DirectInvoke | undefined
  /** Where `direct` leaves each call's outcome (read right after the call). */
  readonly slot: CallSlot
  /** What a call of the export through the mailbox does with the engine's outcome (`queuedHandlers`). */
  handlers: CallHandlers | undefined
}

/** `callChecked`'s mapping of an engine call's outcome: `callFailed` / `afterCall`. */
interface CallHandlers {
  readonly onFailure: (error: EngineInvokeError) => Effect.Effect<never, InvokeError>
  readonly onSuccess: (outcome: InvokeOutcome) => Effect.Effect<ReadonlyArray<WasmValue>>
}

const resolvedByAgent = new WeakMap<AgentInstance, Map<string, Resolved>>()

/**
 * The signature of the agent's export `fn` and its arguments' checker
 * (`argsChecker`), resolved once per agent instance and export;
 * `undefined`: no such export (`FunctionNotFound`).
 */
export const resolveExport = (state: RuntimeState, i: AgentInstance, fn: string): Resolved | undefined => {
  let byName = resolvedByAgent.get(i)
  if (byName === undefined) resolvedByAgent.set(i, (byName = new Map()))
  let resolved = byName.get(fn)
  if (resolved === undefined) {
    const signature = exportSignature(state, i, fn)
    if (signature === undefined) return undefined
    byName.set(
      fn,
      (resolved = {
        signature,
        check: argsChecker(signature, fn),
        directFor: undefined,
        direct: undefined,
        slot: makeCallSlot(),
        handlers: undefined
      })
    )
  }
  return resolved
}

/**
 * The engine's allocation-free caller of `fn` (`WasmInstance.prepareDirect`),
 * else its `prepare` caller adapted (`directFromPrepared`: engines written
 * before `prepareDirect`); `undefined` when the export is not a function or
 * the engine has neither (worker engines).
 */
export const directCaller = (instance: WasmInstance, fn: string): DirectInvoke | undefined => {
  if (instance.prepareDirect !== undefined) return instance.prepareDirect(fn)
  const prepared = instance.prepare?.(fn)
  return prepared === undefined ? undefined : directFromPrepared(prepared)
}

/** `resolved`'s direct caller on `instance`, resolved once per instance. */
const directOn = (resolved: Resolved, instance: WasmInstance, fn: string): DirectInvoke | undefined => {
  if (resolved.directFor !== instance) {
    resolved.direct = directCaller(instance, fn)
    resolved.directFor = instance
  }
  return resolved.direct
}

/**
 * `checkArgs` specialised for `signature`: for up to three parameters the
 * accepted case is one arity test and one predicate per parameter, without
 * a loop or an allocation; anything it does not accept (or an accessor that
 * throws) is decided by `checkArgs`, so the errors are the same.
 */
export const argsChecker = (signature: FuncType, fn: string): ArgsChecker => {
  const slow: ArgsChecker = (args) => checkArgs(signature, fn, args)
  const p = signature.params
  const guarded =
    (accept: (args: ReadonlyArray<WasmValue>) => boolean): ArgsChecker =>
    (args) => {
      try {
        if (Array.isArray(args) && accept(args)) return undefined
      } catch {
        // an unreadable argument: `checkArgs` says so
      }
      return slow(args)
    }
  switch (p.length) {
    case 0:
      return guarded((args) => args.length === 0)
    case 1: {
      const a = fits[p[0]!]
      return guarded((args) => args.length === 1 && a(args[0]))
    }
    case 2: {
      const a = fits[p[0]!],
        b = fits[p[1]!]
      return guarded((args) => args.length === 2 && a(args[0]) && b(args[1]))
    }
    case 3: {
      const a = fits[p[0]!],
        b = fits[p[1]!],
        c = fits[p[2]!]
      return guarded((args) => args.length === 3 && a(args[0]) && b(args[1]) && c(args[2]))
    }
    default:
      return slow
  }
}

/**
 * Why the agent's instance `i` cannot run a call now, or `undefined`: its
 * engine instance is gone (`AgentNotFound`: evicted or passivated), or it is
 * not Running or Critical (`AgentNotRunning`).
 */
export const notRunning = (agentId: AgentId, i: AgentInstance): AgentNotFound | AgentNotRunning | undefined =>
  i.instance === undefined || !isInvocable(i.state) ? notRunningError(agentId, i) : undefined

/** `MemoryExceeded` when the agent's linear memory is past its budget, else `undefined`. */
export const overBudget = (agentId: AgentId, i: AgentInstance): MemoryExceeded | undefined =>
  MemoryBudget.isExceeded(i.budget) ? overBudgetError(agentId, i) : undefined

// The errors, built apart from the checks so the checks stay small enough to inline on the hot path.
const mismatchError = (fn: string, m: { readonly index: number; readonly message: string }) =>
  new SignatureMismatch({ function: fn, index: m.index, reason: m.message })
const notRunningError = (agentId: AgentId, i: AgentInstance) =>
  i.instance === undefined ? new AgentNotFound({ agentId }) : new AgentNotRunning({ agentId, state: i.state })
const overBudgetError = (agentId: AgentId, i: AgentInstance) =>
  new MemoryExceeded({ agentId, used: i.budget.used, limit: i.budget.limit })

/** At most this many prepared calls of one handle within one task share one reading of the activity clock. */
export const ACTIVITY_READ_EVERY = 256

/**
 * The coarse activity clock of one prepared call handle (and of `invoke`'s
 * idle fast path over Effect's default clock, `idleActivity`): `now()` is the
 * runtime's `Clock` time in ms, read on the first call of each task (a
 * promise job resets it after the synchronous code that made the calls) and
 * again every `ACTIVITY_READ_EVERY` calls within a task; the calls between
 * reuse that reading. A clock read costs ≈ 50 ns on a VM (`Date.now()` under
 * kvm-clock), as much as the call itself; `lastActivity` only feeds the idle
 * and passivation policies (`idleTimeoutMs`, pressure's least recently
 * active order), whose thresholds are seconds, so the time of the task the
 * calls ran in — late by at most the duration of 256 calls of one synchronous
 * loop — is precise enough (an `invoke` in the same task may have recorded
 * a later time; the fast call's reading is then older by at most that task's
 * length). A call in a later task reads the clock again, so under `TestClock`
 * a call after `TestClock.adjust` and a task boundary sees the adjusted time.
 */
export const activityClock = (clock: Clock.Clock): { readonly now: () => number } => {
  let at = 0
  let left = 0
  let expiring = false
  const expire = () => {
    left = 0
    expiring = false
  }
  return {
    now: () => {
      if (left > 0) {
        left--
        return at
      }
      if (!expiring) {
        expiring = true
        void Promise.resolve().then(expire) // after the synchronous code of this task
      }
      left = ACTIVITY_READ_EVERY - 1
      at = clock.currentTimeMillisUnsafe()
      return at
    }
  }
}

const defaultClockPrototype: unknown = Object.getPrototypeOf(Clock.Clock.defaultValue())
const idleActivityOf = new WeakMap<RuntimeState, { readonly now: () => number }>()

/**
 * The activity clock of `invoke`'s idle fast path and of calls through the
 * mailbox that do not save after the call, for a runtime: the coarse
 * `activityClock` when the runtime runs on Effect's default clock (a
 * `Date.now()` costs ≈ 30–50 ns on a VM, ≈ 10 % of the call), else (a
 * `TestClock`, or any clock a caller provided) the clock read on every call.
 */
const idleActivity = (state: RuntimeState): { readonly now: () => number } => {
  let activity = idleActivityOf.get(state)
  if (activity === undefined) {
    const clock = state.clock
    activity =
      Object.getPrototypeOf(clock) === defaultClockPrototype
        ? activityClock(clock)
        : { now: () => clock.currentTimeMillisUnsafe() }
    idleActivityOf.set(state, activity)
  }
  return activity
}

// -- recording -------------------------------------------------------------------

/** Counts a call that passed its checks. */
export const callStarted = (state: RuntimeState, i: AgentInstance): void => {
  i.recordCallStarted()
  state.env.counters.invocations++
}

/** Records a completed call at `now`: activity, fuel left, memory (an `InvokeOutcome` or a prepared call's `CallSlot`). */
export const callCompleted = (
  state: RuntimeState,
  i: AgentInstance,
  outcome: Pick<InvokeOutcome, "memoryBytes" | "fuelRemaining">,
  now: number
): void => {
  i.recordCallCompleted(now, outcome.fuelRemaining)
  // unchanged memory (the usual call): the budget and the pool already hold it (both are only set through `recordMemory`)
  if (outcome.memoryBytes !== i.budget.used) state.env.recordMemory(i, outcome.memoryBytes)
}

/**
 * Records a failed call. A call of a revoked capability evicts the agent
 * (`PolicyViolation`) and fails with `Unauthorized`; a `Timeout` evicts it
 * (`evictOnTimeout`). Evictions run in the background.
 */
export const recordFailure = (
  state: RuntimeState,
  i: AgentInstance,
  error: EngineInvokeError
): Effect.Effect<void, Unauthorized> =>
  Effect.suspend((): Effect.Effect<void, Unauthorized> => {
    i.recordCallFailed(error.message)
    state.env.counters.invocationErrors++
    const subject = i.policyViolation
    if (subject !== undefined) {
      return Effect.andThen(
        evictLater(state, i.agentId, "PolicyViolation"),
        Effect.fail(new Unauthorized({ action: "import", subject, reason: "the capability was revoked" }))
      )
    }
    if (error._tag === "Timeout" && state.settings.evictOnTimeout) return evictLater(state, i.agentId, "Timeout")
    return Effect.void
  })

/** Maps a failed rehydration to an invocation error (the cause is kept in the message). */
const activationError = (agentId: AgentId, e: SpawnError | RepositoryError | AgentNotFound): InvokeError => {
  switch (e._tag) {
    case "AgentNotFound":
    case "Trap":
    case "Timeout":
    case "FuelExhausted":
    case "MemoryExceeded":
    case "Unauthorized":
    case "RuntimeUnavailable":
    case "FunctionNotFound":
    case "SignatureMismatch":
      return e
    default:
      return new AgentNotRunning({ agentId, state: `Passivated (rehydration failed: ${e.message})` })
  }
}

// -- invoke ------------------------------------------------------------------------

/**
 * Calls an agent's export: rehydrates a passivated agent, checks the
 * function and the arguments, then — under the agent's mailbox, or in this
 * one synchronous step when the agent is idle on an in-process engine —
 * checks that it runs and calls it.
 */
export const invoke = (
  state: RuntimeState,
  agentId: AgentId,
  fn: string,
  args: ReadonlyArray<WasmValue>
): Effect.Effect<ReadonlyArray<WasmValue>, InvokeError> => Effect.suspend(() => invokeNow(state, agentId, fn, args))

/** `invoke` whose first checks run now: call it only where the call runs (inside `Effect.suspend` / `withFiber`). */
export const invokeNow = (
  state: RuntimeState,
  agentId: AgentId,
  fn: string,
  args: ReadonlyArray<WasmValue>
): Effect.Effect<ReadonlyArray<WasmValue>, InvokeError> => {
  const { env } = state
  const live = env.instances.get(agentId)
  if (live !== undefined) {
    const fast =
      invokeIdle(state, live, fn, args) ?? invokeStarted(state, live, fn, args) ?? invokeQueued(state, live, fn, args)
    if (fast !== undefined) return fast
  }
  const i = live ?? findAgent(state, agentId)
  if (!(i instanceof AgentInstance)) {
    return i === "Passivated"
      ? Effect.flatMap(
          Effect.mapError(activate(state, agentId), (e) => activationError(agentId, e)),
          () => invoke(state, agentId, fn, args)
        )
      : Effect.fail(i)
  }
  const signature = exportSignature(state, i, fn)
  if (signature === undefined) return Effect.fail(functionNotFound(fn))
  const mismatch = checkArgs(signature, fn, args)
  if (mismatch !== undefined) return Effect.fail(mismatch)
  // An idle agent on an in-process engine runs the whole call in this one synchronous
  // step: no other fiber can interleave, so the mailbox is not needed (one call at a
  // time still holds). Otherwise the call queues on the agent's mailbox.
  const call = Effect.suspend(() =>
    i.busy === 0 &&
    i.instance?.prepare !== undefined &&
    state.settings.persistence.snapshotAfterCalls !== true &&
    !awaitsRecovery(i)
      ? callChecked(state, i, fn, args, false)
      : i.exclusive(Effect.suspend(() => callChecked(state, i, fn, args, true)))
  )
  return state.authorizer.checksInvocations
    ? Effect.andThen(state.authorizer.authorize({ action: "invoke", agentId, subject: fn }), call)
    : call
}

/**
 * A call whose function and arguments were checked, from the agent's checks
 * on: the agent is still this instance (else `AgentNotFound` /
 * `AgentEvictedDuringCall`), a trapped instance is replaced first
 * (`Recovery`), it runs and is within its budget; then the call — the
 * engine's synchronous caller on in-process engines, else its `invoke` —
 * and what it records (`afterCall`, `callFailed`). `held`: the caller holds
 * the agent's mailbox (else the call runs in one synchronous step);
 * `handlers`: the outcome's mapping when the caller keeps one
 * (`callHandlers` with the same `held`), else made for this call.
 */
const callChecked = (
  state: RuntimeState,
  i: AgentInstance,
  fn: string,
  args: ReadonlyArray<WasmValue>,
  held: boolean,
  handlers?: CallHandlers
): Effect.Effect<ReadonlyArray<WasmValue>, InvokeError> => {
  const agentId = i.agentId
  // the agent may have been evicted, passivated or replaced while the call waited for its mailbox
  if (state.env.instances.get(agentId) !== i) return Effect.fail(goneError(agentId, fn, i))
  // its last call trapped: its instance is replaced first (`Recovery`)
  if (awaitsRecovery(i))
    return Effect.andThen(
      recoverLocked(state, i),
      Effect.suspend(() => callChecked(state, i, fn, args, held, handlers))
    )
  const refused = notRunning(agentId, i) ?? overBudget(agentId, i)
  if (refused !== undefined) return Effect.fail(refused)
  const instance = i.instance as WasmInstance
  callStarted(state, i)
  // in-process engines: the synchronous caller, no per-call effects beyond this one
  const sync = instance.prepare === undefined ? undefined : i.syncCaller(instance, fn)
  if (sync !== undefined) {
    const outcome = sync(args, i.config.fuel)
    return outcome instanceof Error
      ? callFailed(state, i, fn, outcome, held)
      : afterCall(state, i, outcome, outcome.results)
  }
  return Effect.matchEffect(
    instance.invoke(fn, args, invokeOptions(i.config)),
    handlers ?? callHandlers(state, i, fn, held)
  )
}

/**
 * What `callChecked` does with an engine call's outcome: a failure is
 * `callFailed`'s, a success is recorded (`afterCall`) at the activity
 * clock's time — the `Clock` read now when the call saves after it.
 */
const callHandlers = (state: RuntimeState, i: AgentInstance, fn: string, held: boolean): CallHandlers => ({
  onFailure: (error) => callFailed(state, i, fn, error, held),
  onSuccess: (outcome) =>
    afterCall(
      state,
      i,
      outcome,
      outcome.results,
      state.settings.persistence.snapshotAfterCalls === true ? undefined : idleActivity(state).now()
    )
})

const optionsOf = new WeakMap<AgentConfig, InvokeOptions>()

/** An agent's `InvokeOptions` (its config's `timeoutMs` and `fuel`), one object per config, not one per call. */
const invokeOptions = (config: AgentConfig): InvokeOptions => {
  let options = optionsOf.get(config)
  if (options === undefined) optionsOf.set(config, (options = { timeoutMs: config.timeoutMs, fuel: config.fuel }))
  return options
}

/**
 * `invokeNow` for a live agent whose engine has no synchronous caller (worker
 * engines: every call goes through the mailbox): the export and the
 * arguments are checked now with the checker resolved once per agent and
 * export (`resolveExport`; the same errors as `checkArgs`), then the call
 * queues on the agent's mailbox, where `callChecked` checks the rest (the
 * agent may have changed while the call waited). `undefined` (the general
 * path decides) for in-process engines and when invocations are authorised
 * per call (the authoriser runs between the checks and the mailbox).
 */
const invokeQueued = (
  state: RuntimeState,
  i: AgentInstance,
  fn: string,
  args: ReadonlyArray<WasmValue>
): Effect.Effect<ReadonlyArray<WasmValue>, InvokeError> | undefined => {
  const instance = i.instance
  if (instance === undefined || instance.prepare !== undefined || state.authorizer.checksInvocations) return undefined
  instance.prefetch?.() // a sleeping worker wakes now, while the host code before the request runs
  const resolved = resolveExport(state, i, fn)
  if (resolved === undefined) return Effect.fail(functionNotFound(fn))
  const mismatch = resolved.check(args)
  if (mismatch !== undefined) return Effect.fail(mismatch)
  // the outcome's handlers are made once per agent and export (they hold the mailbox: `held`)
  const handlers = (resolved.handlers ??= callHandlers(state, i, fn, true))
  return i.exclusive(Effect.suspend(() => callChecked(state, i, fn, args, true, handlers)))
}

/**
 * `invokeNow` for an idle live agent on a worker engine that starts calls in
 * the caller's step (`WasmInstance.invokeStart`): the checks of the idle
 * fast path (`invokeIdle`: Running or Critical, within its budget, not
 * awaiting recovery, no per-call authorisation, no save after the call),
 * then the request is sent at once. A reply that is already there (a
 * spinning worker) is recorded and returned in this same step, as an
 * in-process call is — no mailbox, no fiber suspension, no outcome object:
 * nothing else could run on the agent meanwhile. A call still running
 * takes the agent's mailbox now (`Mailbox.holdFrom`: it was free in this
 * step) and holds it until the call's outcome is recorded, so later calls
 * and lifecycle steps queue behind it as behind any call. `undefined` (the
 * mailbox path decides, `invokeQueued`) when the agent is busy or the
 * engine has no `invokeStart`.
 */
const invokeStarted = (
  state: RuntimeState,
  i: AgentInstance,
  fn: string,
  args: ReadonlyArray<WasmValue>
): Effect.Effect<ReadonlyArray<WasmValue>, InvokeError> | undefined => {
  const instance = i.instance
  if (
    instance === undefined ||
    instance.invokeStart === undefined ||
    i.busy !== 0 ||
    !isInvocable(i.state) ||
    state.authorizer.checksInvocations ||
    state.settings.persistence.snapshotAfterCalls === true ||
    awaitsRecovery(i)
  )
    return undefined
  const resolved = resolveExport(state, i, fn)
  if (resolved === undefined) return Effect.fail(functionNotFound(fn))
  const mismatch = resolved.check(args)
  if (mismatch !== undefined) return Effect.fail(mismatch)
  if (MemoryBudget.isExceeded(i.budget)) return Effect.fail(overBudgetError(i.agentId, i))
  callStarted(state, i)
  const slot = resolved.slot
  const started = instance.invokeStart(fn, args, invokeOptions(i.config), slot)
  if (started === undefined) {
    const results = callResults(slot.result)
    slot.result = undefined // hold no guest value between calls
    return afterCall(state, i, slot, results, idleActivity(state).now())
  }
  if (started instanceof Error) return callFailed(state, i, fn, started, false)
  // still running: the agent's mailbox is held from now until its outcome is recorded
  const handlers = (resolved.handlers ??= callHandlers(state, i, fn, true))
  return i.mailbox.holdFrom(Effect.matchEffect(started, handlers))
}

/**
 * The synchronous fast path of `invokeNow`, taken in the caller's step when
 * it can decide everything now: the agent is idle (`busy === 0`) and Running
 * (or Critical) on an in-process engine, within its budget, not awaiting
 * recovery, no per-call authorisation. Returns the call's finished effect
 * (its results as an `Exit`, or the checks' and the call's errors as
 * `invoke` returns them), or `undefined` when the call needs the general
 * path (nothing is recorded then). No closure, no effect but the result per
 * call. With `persistence.snapshotAfterCalls` the call is the same, made
 * holding the agent's mailbox until its save completes (`invokeIdleSaved`).
 */
const invokeIdle = (
  state: RuntimeState,
  i: AgentInstance,
  fn: string,
  args: ReadonlyArray<WasmValue>
): Effect.Effect<ReadonlyArray<WasmValue>, InvokeError> | undefined => {
  const instance = i.instance
  if (
    instance === undefined ||
    instance.prepare === undefined ||
    i.busy !== 0 ||
    !isInvocable(i.state) ||
    state.authorizer.checksInvocations ||
    awaitsRecovery(i)
  )
    return undefined
  const resolved = resolveExport(state, i, fn)
  if (resolved === undefined) return Effect.fail(functionNotFound(fn))
  const mismatch = resolved.check(args)
  if (mismatch !== undefined) return Effect.fail(mismatch)
  if (MemoryBudget.isExceeded(i.budget)) return Effect.fail(overBudgetError(i.agentId, i))
  const direct = directOn(resolved, instance, fn)
  if (direct === undefined) return undefined
  if (state.settings.persistence.snapshotAfterCalls === true)
    return invokeIdleSaved(state, i, instance, fn, args, direct, resolved.slot)
  return callDirect(state, i, fn, args, direct, resolved.slot, false, idleActivity(state))
}

/**
 * A checked call through the engine's direct caller: the outcome is left in
 * the export's `slot` and read right away (no outcome object), then recorded
 * (`afterCall` at `activity.now()`, default the `Clock` now; `callFailed`).
 * `held` as in `callChecked`.
 */
const callDirect = (
  state: RuntimeState,
  i: AgentInstance,
  fn: string,
  args: ReadonlyArray<WasmValue>,
  direct: DirectInvoke,
  slot: CallSlot,
  held: boolean,
  activity?: { readonly now: () => number }
): Effect.Effect<ReadonlyArray<WasmValue>, InvokeError> => {
  callStarted(state, i)
  const failure = direct(args, i.config.fuel, slot)
  if (failure !== undefined) return callFailed(state, i, fn, failure, held)
  const results = callResults(slot.result)
  slot.result = undefined // hold no guest value between calls
  return afterCall(state, i, slot, results, activity?.now())
}

/**
 * `invokeIdle` under `persistence.snapshotAfterCalls`: the agent's mailbox
 * is taken (it is free: the agent is idle), the call runs synchronously
 * through the engine's direct caller as on the idle path, and the agent's
 * state is saved (`afterCall` → `saveLocked`) before the mailbox is let go
 * and the call returns — acknowledged means saved, and no other call of the
 * agent runs between a call and its save. Should anything the caller
 * checked have changed before the mailbox was taken (the fiber yielded), the
 * call takes the general path's checks under the mailbox (`callChecked`).
 */
const invokeIdleSaved = (
  state: RuntimeState,
  i: AgentInstance,
  instance: WasmInstance,
  fn: string,
  args: ReadonlyArray<WasmValue>,
  direct: DirectInvoke,
  slot: CallSlot
): Effect.Effect<ReadonlyArray<WasmValue>, InvokeError> =>
  i.exclusive(
    Effect.suspend(() => {
      if (
        state.env.instances.get(i.agentId) !== i ||
        i.instance !== instance ||
        !isInvocable(i.state) ||
        awaitsRecovery(i) ||
        MemoryBudget.isExceeded(i.budget)
      )
        return callChecked(state, i, fn, args, true)
      return callDirect(state, i, fn, args, direct, slot, true)
    })
  )

/**
 * Why a call of an instance that is no longer the agent's live one fails:
 * `AgentEvictedDuringCall` when the host evicted it, else `AgentNotFound`
 * (passivated or replaced while the call waited).
 */
const goneError = (agentId: AgentId, fn: string, i: AgentInstance): AgentEvictedDuringCall | AgentNotFound => {
  const reason = evictionOf(i)
  return reason === undefined
    ? new AgentNotFound({ agentId })
    : new AgentEvictedDuringCall({ agentId, function: fn, reason })
}

/**
 * A failed call (a trap at the memory budget says so: `Diagnostics`). When the host evicted the agent while the call ran (its
 * instance was terminated under it), the failure is the host's:
 * `AgentEvictedDuringCall`, nothing recorded against the guest. Otherwise
 * it is recorded (`recordFailure`) and a trap replaces the instance when the
 * agent's `onTrap` policy says so (`Recovery`) before the error is returned.
 * `held`: the caller holds the agent's mailbox.
 */
const callFailed = (
  state: RuntimeState,
  i: AgentInstance,
  fn: string,
  failure: EngineInvokeError,
  held: boolean
): Effect.Effect<never, InvokeError> => {
  if (evictionOf(i) !== undefined) return Effect.fail(goneError(i.agentId, fn, i))
  return Effect.flatMap(withBudgetNote(state, i, i.instance, failure), (error) => {
    noteFailure(state, i, error)
    // a noted trap replaces the instance now; one its engine ended (a `Timeout`) waits for the next call
    const recover = !trapNoted(i) ? Effect.void : held ? recoverLocked(state, i) : i.exclusive(recoverLocked(state, i))
    return Effect.andThen(recordFailure(state, i, error), Effect.andThen(recover, Effect.fail(error)))
  })
}

/**
 * Records a completed call (its outcome: an `InvokeOutcome` or a `CallSlot`;
 * its `results`) at `now` (default: the `Clock` read now): activity, memory,
 * persistence, pressure.
 */
const afterCall = (
  state: RuntimeState,
  i: AgentInstance,
  outcome: Pick<InvokeOutcome, "memoryBytes" | "fuelRemaining">,
  results: ReadonlyArray<WasmValue>,
  now: number = state.clock.currentTimeMillisUnsafe()
): Effect.Effect<ReadonlyArray<WasmValue>> => {
  callCompleted(state, i, outcome, now)
  const pressure = pressureDue(state)
  const snapshotAfterCalls = state.settings.persistence.snapshotAfterCalls === true
  if (!snapshotAfterCalls && !pressure) return Effect.succeed(results)
  const saved = snapshotAfterCalls ? saveLocked(state, i, now) : Effect.void
  return Effect.as(pressure ? Effect.andThen(saved, schedulePressure(state)) : saved, results)
}
