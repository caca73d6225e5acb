/**
 * Prepared calls: an agent's export resolved and checked once, for callers
 * that call it many times. The synchronous `call` runs the same checks as
 * `invoke` (`Invocation`) and throws the same typed errors.
 *
 * @since 0.1.0
 */
import type { FuncType } from "@agent-runtime/wasm-binary"
import type * as Clock from "effect/Clock"
import * as Effect from "effect/Effect"
import type { AgentInstance } from "../AgentInstance.js"
import type { AgentId } from "../Ids.js"
import {
  AgentNotFound,
  AgentNotRunning,
  type EngineInvokeError,
  FunctionNotFound,
  type InvokeError,
  Unauthorized
} from "../RuntimeError.js"
import type { PreparedInvoke, WasmInstance } from "../WasmEngine.js"
import type { WasmValue } from "../WasmValue.js"
import {
  argsChecker,
  callCompleted,
  callStarted,
  exportSignature,
  findAgent,
  invoke,
  notRunning,
  overBudget,
  recordFailure
} from "./Invocation.js"
import { budgetNote } from "./Diagnostics.js"
import { functionNotFound } from "./Inputs.js"
import { awaitsRecovery, noteFailure, recoverLocked } from "./Recovery.js"
import { live } from "./Lifecycle.js"
import { pressureDue, schedulePressure } from "./Pressure.js"
import type { RuntimeState } from "./RuntimeState.js"

/** A prepared call handle (`AgentRuntime.prepare`). */
export interface PreparedCall {
  readonly agentId: AgentId
  readonly function: string
  readonly signature: FuncType
  /** Same as `runtime.invoke(agentId, function, args)`. */
  readonly invoke: (args?: ReadonlyArray<WasmValue>) => Effect.Effect<ReadonlyArray<WasmValue>, InvokeError>
  /** The synchronous fast path, where the engine allows it; throws the typed `InvokeError`s. */
  readonly call: ((...args: Array<WasmValue>) => ReadonlyArray<WasmValue>) | undefined
}

/** At most this many prepared calls of one handle within one task share one reading of the activity clock. */
export const ACTIVITY_READ_EVERY = 256

/**
 * The coarse activity clock of one prepared call handle: `now()` is the
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
const activityClock = (clock: Clock.Clock): { readonly now: () => number } => {
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

/** Why a prepared call of an agent without a live instance is refused: passivated (`invoke` rehydrates) or not found. */
const refusedMissing = (state: RuntimeState, agentId: AgentId): AgentNotRunning | AgentNotFound => {
  const found = findAgent(state, agentId)
  return found === "Passivated"
    ? new AgentNotRunning({ agentId, state: "Passivated (use invoke to rehydrate)" })
    : (found as AgentNotFound)
}

/** Resolves an agent's export `fn` once and returns its prepared call handle. */
export const prepare = (
  state: RuntimeState,
  agentId: AgentId,
  fn: string
): Effect.Effect<PreparedCall, AgentNotFound | FunctionNotFound> =>
  Effect.gen(function* () {
    const first = yield* live(state, agentId)
    const signature = exportSignature(state, first, fn)
    if (signature === undefined) return yield* functionNotFound(fn)
    const fork = Effect.runForkWith(yield* Effect.context<never>())
    let cachedFor: WasmInstance | undefined = undefined
    let cached: PreparedInvoke | undefined
    const fastPath =
      !state.engine.capabilities.workers &&
      state.settings.persistence.snapshotAfterCalls !== true &&
      first.instance?.prepare !== undefined
    const { env } = state
    const activity = activityClock(state.clock)
    const check = argsChecker(signature, fn)
    // per call: map lookups, the specialised argument check, the engine's caller; no closure, no effect
    const call = (...args: Array<WasmValue>): ReadonlyArray<WasmValue> => {
      const i = env.instances.get(agentId)
      if (i === undefined) throw refusedMissing(state, agentId)
      const stopped = notRunning(agentId, i)
      if (stopped !== undefined) throw stopped
      if (i.busy > 0) throw new AgentNotRunning({ agentId, state: `${i.state} (busy: use invoke to queue)` })
      if (awaitsRecovery(i))
        throw new AgentNotRunning({ agentId, state: `${i.state} (recovering after a trap: use invoke to queue)` })
      const exceeded = overBudget(agentId, i)
      if (exceeded !== undefined) throw exceeded
      const mismatch = check(args)
      if (mismatch !== undefined) throw mismatch
      const instance = i.instance as WasmInstance
      if (cachedFor !== instance) {
        cachedFor = instance
        cached = instance.prepare?.(fn)
      }
      if (cached === undefined) throw new FunctionNotFound({ function: fn })
      callStarted(state, i)
      const outcome = cached(args, i.config.fuel)
      if (outcome instanceof Error) throw failed(i, instance, outcome)
      callCompleted(state, i, outcome, activity.now())
      if (pressureDue(state)) fork(schedulePressure(state))
      return outcome.results
    }
    /**
     * A failed call, as `invoke` records it (`Invocation.callFailed`): the
     * budget note on a trap, the failure recorded, and — a trap under
     * `onTrap: "restore"` — the instance replaced (`AgentRecovered`) in the
     * background under the agent's mailbox (in-process: it completes before
     * the error is thrown unless the repository is asynchronous; until then
     * calls are refused as busy). Returns what to throw.
     */
    const failed = (i: AgentInstance, instance: WasmInstance, outcome: EngineInvokeError): InvokeError => {
      // the fast path runs on in-process engines only: reading the memory size is synchronous
      const failure =
        outcome._tag === "Trap" ? budgetNote(state, i, outcome, Effect.runSync(instance.memoryBytes)) : outcome
      noteFailure(state, i, failure)
      const recover = awaitsRecovery(i) ? i.exclusive(recoverLocked(state, i)) : Effect.void
      fork(Effect.andThen(recordFailure(state, i, failure), recover))
      if (i.policyViolation !== undefined) {
        return new Unauthorized({ action: "import", subject: i.policyViolation, reason: "the capability was revoked" })
      }
      return failure
    }
    return {
      agentId,
      function: fn,
      signature,
      invoke: (args = []) => invoke(state, agentId, fn, args),
      call: fastPath ? call : undefined
    }
  })
