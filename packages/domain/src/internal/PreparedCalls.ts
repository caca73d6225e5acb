/**
 * Prepared calls: an agent's export resolved and checked once, for callers
 * that call it many times. The synchronous `call` runs the same checks as
 * `invoke` (`Invocation`) and throws the same typed errors.
 *
 * @since 0.1.0
 */
import type { FuncType } from "@agent-runtime/wasm-binary"
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
import { callResults, type DirectInvoke, makeCallSlot, type WasmInstance } from "../WasmEngine.js"
import type { WasmValue } from "../WasmValue.js"
import {
  activityClock,
  argsChecker,
  callCompleted,
  callStarted,
  directCaller,
  exportSignature,
  findAgent,
  fits,
  invoke,
  notRunning,
  overBudget,
  recordFailure
} from "./Invocation.js"
import { budgetNote } from "./Diagnostics.js"
import { functionNotFound } from "./Inputs.js"
import { awaitsRecovery, noteFailure, recoverLocked } from "./Recovery.js"
import { live } from "./Lifecycle.js"
import { schedulePressure } from "./Pressure.js"
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

export { ACTIVITY_READ_EVERY } from "./Invocation.js"

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
    let cached: DirectInvoke | undefined
    // where the engine leaves each call's outcome (`DirectInvoke`): one per handle, no outcome object per call
    const slot = makeCallSlot()
    const fastPath =
      !state.engine.capabilities.workers &&
      state.settings.persistence.snapshotAfterCalls !== true &&
      first.instance?.prepare !== undefined
    const { env } = state
    const activity = activityClock(state.clock)
    const check = argsChecker(signature, fn)
    // per call: map lookups, the engine's direct caller; no closure, no effect, no allocation but the results
    // array of a call that returns values. `checked`: the arguments were accepted already (`fastArgs`).
    // `pressureDue` without its ratio per call: the pool's usage is recomputed when its used memory changed
    // (its size and thresholds are fixed at construction)
    const pool = env.pool
    let usedSeen = -1
    let pressured = false
    const underPressure = (): boolean => {
      const used = pool.usedMemory()
      if (used !== usedSeen) {
        usedSeen = used
        pressured = pool.isUnderPressure()
      }
      return pressured
    }
    // the agent's instance as last looked up: looked up again only once the runtime removed it (`removed`)
    let current: AgentInstance | undefined
    const run = (args: ReadonlyArray<WasmValue>, checked: boolean): ReadonlyArray<WasmValue> => {
      let i = current
      if (i === undefined || i.removed) {
        i = current = env.instances.get(agentId)
        if (i === undefined) throw refusedMissing(state, agentId)
      }
      const stopped = notRunning(agentId, i)
      if (stopped !== undefined) throw stopped
      if (i.busy > 0) throw new AgentNotRunning({ agentId, state: `${i.state} (busy: use invoke to queue)` })
      if (awaitsRecovery(i))
        throw new AgentNotRunning({ agentId, state: `${i.state} (recovering after a trap: use invoke to queue)` })
      const exceeded = overBudget(agentId, i)
      if (exceeded !== undefined) throw exceeded
      if (!checked) {
        const mismatch = check(args)
        if (mismatch !== undefined) throw mismatch
      }
      const instance = i.instance as WasmInstance
      if (cachedFor !== instance) {
        cachedFor = instance
        // the signature lets an engine specialise the caller (engine-kit: one JS→wasm call per metered call)
        cached =
          instance.prepareDirect !== undefined ? instance.prepareDirect(fn, signature) : directCaller(instance, fn)
      }
      if (cached === undefined) throw new FunctionNotFound({ function: fn })
      callStarted(state, i)
      const failure = cached(args, i.config.fuel, slot)
      if (failure !== undefined) throw failed(i, instance, failure)
      callCompleted(state, i, slot, activity.now())
      const results = callResults(slot.result)
      slot.result = undefined // hold no guest value between calls
      if (state.settings.autoPressure && !state.pressureScheduled && underPressure()) fork(schedulePressure(state))
      return results
    }
    const call = fastArgs(signature, run)
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

/**
 * The prepared call's entry for `signature`: up to three parameters, a
 * function of that many parameters whose accepted case (the right count,
 * each value fitting its type: `Invocation`'s `fits`, the predicates
 * `checkArgs` agrees with) hands `run` one reused arguments array, checked —
 * no rest array per call (≈ 15 ns on V8 11 with the GC it causes, in a
 * micro-benchmark; the handle measured ≈ 9 % faster with it, BENCHMARKS.md
 * issue 13 wave 6); any other call (more parameters, another count, a value
 * that does not fit, an unreadable one) gives `run` a fresh array to check,
 * so its errors are `checkArgs`'s. The reused array is cleared after each
 * call (no host value held between calls) and is safe under re-entry (a host
 * import calling the same handle): the engine reads it before the guest runs.
 */
export const fastArgs = (
  signature: FuncType,
  run: (args: ReadonlyArray<WasmValue>, checked: boolean) => ReadonlyArray<WasmValue>
): ((...args: Array<WasmValue>) => ReadonlyArray<WasmValue>) => {
  const p = signature.params
  const general = (...args: Array<WasmValue>) => run(args, false)
  switch (p.length) {
    case 0: {
      const none: ReadonlyArray<WasmValue> = []
      return function (this: unknown) {
        return arguments.length === 0 ? run(none, true) : general(...(arguments as unknown as Array<WasmValue>))
      }
    }
    case 1: {
      const fa = fits[p[0]!]
      const one: Array<WasmValue> = [0]
      return function (this: unknown, a?: WasmValue) {
        if (arguments.length !== 1 || !fa(a)) return general(...(arguments as unknown as Array<WasmValue>))
        one[0] = a!
        try {
          return run(one, true)
        } finally {
          one[0] = 0
        }
      }
    }
    case 2: {
      const fa = fits[p[0]!],
        fb = fits[p[1]!]
      const two: Array<WasmValue> = [0, 0]
      return function (this: unknown, a?: WasmValue, b?: WasmValue) {
        if (arguments.length !== 2 || !fa(a) || !fb(b)) return general(...(arguments as unknown as Array<WasmValue>))
        two[0] = a!
        two[1] = b!
        try {
          return run(two, true)
        } finally {
          two[0] = two[1] = 0
        }
      }
    }
    case 3: {
      const fa = fits[p[0]!],
        fb = fits[p[1]!],
        fc = fits[p[2]!]
      const three: Array<WasmValue> = [0, 0, 0]
      return function (this: unknown, a?: WasmValue, b?: WasmValue, c?: WasmValue) {
        if (arguments.length !== 3 || !fa(a) || !fb(b) || !fc(c))
          return general(...(arguments as unknown as Array<WasmValue>))
        three[0] = a!
        three[1] = b!
        three[2] = c!
        try {
          return run(three, true)
        } finally {
          three[0] = three[1] = three[2] = 0
        }
      }
    }
    default:
      return general
  }
}
