/**
 * Prepared calls: an agent's export resolved and checked once, for callers
 * that call it many times. The synchronous `call` runs the same checks as
 * `invoke` (`Invocation`) and throws the same typed errors.
 *
 * @since 0.1.0
 */
import type { FuncType } from "@agent-runtime/wasm-binary"
import * as Effect from "effect/Effect"
import { AgentInstance } from "../AgentInstance.js"
import type { AgentId } from "../Ids.js"
import {
  AgentNotFound,
  AgentNotRunning,
  FunctionNotFound,
  type InvokeError,
  Unauthorized
} from "../RuntimeError.js"
import type { PreparedInvoke, WasmInstance } from "../WasmEngine.js"
import type { WasmValue } from "../WasmValue.js"
import {
  callCompleted,
  callStarted,
  checkArgs,
  exportSignature,
  findAgent,
  invoke,
  notRunning,
  overBudget,
  recordFailure
} from "./Invocation.js"
import { budgetNote } from "./Diagnostics.js"
import { functionNotFound } from "./Inputs.js"
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

/** Resolves an agent's export `fn` once and returns its prepared call handle. */
export const prepare = (
  state: RuntimeState,
  agentId: AgentId,
  fn: string
): Effect.Effect<PreparedCall, AgentNotFound | FunctionNotFound> =>
  Effect.gen(function*() {
    const first = yield* live(state, agentId)
    const signature = exportSignature(state, first, fn)
    if (signature === undefined) return yield* functionNotFound(fn)
    const fork = Effect.runForkWith(yield* Effect.context<never>())
    let cachedFor: WasmInstance | undefined = undefined
    let cached: PreparedInvoke | undefined
    const fastPath = !state.engine.capabilities.workers && state.settings.persistence.snapshotAfterCalls !== true &&
      first.instance?.prepare !== undefined
    const { clock } = state
    const call = (...args: Array<WasmValue>): ReadonlyArray<WasmValue> => {
      const i = findAgent(state, agentId)
      if (!(i instanceof AgentInstance)) {
        throw i === "Passivated" ? new AgentNotRunning({ agentId, state: "Passivated (use invoke to rehydrate)" }) : i
      }
      const stopped = notRunning(agentId, i)
      if (stopped !== undefined) throw stopped
      if (i.busy > 0) throw new AgentNotRunning({ agentId, state: `${i.state} (busy: use invoke to queue)` })
      const exceeded = overBudget(agentId, i)
      if (exceeded !== undefined) throw exceeded
      const mismatch = checkArgs(signature, fn, args)
      if (mismatch !== undefined) throw mismatch
      const instance = i.instance as WasmInstance
      if (cachedFor !== instance) {
        cachedFor = instance
        cached = instance.prepare?.(fn)
      }
      if (cached === undefined) throw new FunctionNotFound({ function: fn })
      callStarted(state, i)
      const outcome = cached(args, i.config.fuel)
      if (outcome instanceof Error) {
        // the fast path runs on in-process engines only: reading the memory size is synchronous
        const failure = outcome._tag === "Trap" ? budgetNote(state, i, outcome, Effect.runSync(instance.memoryBytes)) : outcome
        fork(recordFailure(state, i, failure))
        if (i.policyViolation !== undefined) {
          throw new Unauthorized({ action: "import", subject: i.policyViolation, reason: "the capability was revoked" })
        }
        throw failure
      }
      callCompleted(state, i, outcome, clock.currentTimeMillisUnsafe())
      if (pressureDue(state)) fork(schedulePressure(state))
      return outcome.results
    }
    return {
      agentId,
      function: fn,
      signature,
      invoke: (args = []) => invoke(state, agentId, fn, args),
      call: fastPath ? call : undefined
    }
  })
