/**
 * Diagnostics of failed calls (issue 12 item 8): a trap while the agent's
 * linear memory is at its budget says so. The budget caps the memory's
 * maximum (`limits.memoryCap`), so a `memory.grow` past it returns -1 inside
 * the guest — which a guest that cannot handle it turns into a trap that
 * would otherwise read as a plain `unreachable`.
 *
 * @since 0.2.0
 */
import { planBudget } from "@agent-runtime/wasm-binary"
import * as Effect from "effect/Effect"
import type { AgentInstance } from "../AgentInstance.js"
import * as MemoryBudget from "../MemoryBudget.js"
import { type EngineInvokeError, Trap } from "../RuntimeError.js"
import type { WasmInstance } from "../WasmEngine.js"
import type { RuntimeState } from "./RuntimeState.js"

/**
 * The memory cap of an agent in bytes: the budget in whole pages, less what
 * the module's tables take of it (`planBudget` of `@agent-runtime/wasm-binary`,
 * the split the rewrite applied).
 */
const memoryCap = (state: RuntimeState, i: AgentInstance): number => {
  const pages = Math.floor(i.config.memoryLimit / MemoryBudget.PAGE_BYTES)
  const info = state.env.modules.get(i.moduleId)?.info
  const plan = info === undefined ? undefined : planBudget(info, pages)
  return (plan?.ok === true ? plan.value.memoryPages : pages) * MemoryBudget.PAGE_BYTES
}

/**
 * `error` with the budget noted when it is a `Trap` and the agent's linear
 * memory (`memoryBytes`, read after the trap) is at its cap (`memoryCap`):
 * the reason gains "— linear memory
 * is at the agent's budget of N bytes (cap): a memory.grow past it returns
 * -1". Other errors are returned as they are.
 */
export const budgetNote = (
  state: RuntimeState,
  i: AgentInstance,
  error: EngineInvokeError,
  memoryBytes: number
): EngineInvokeError => {
  if (error._tag !== "Trap" || !state.settings.limits.memoryCap || memoryBytes === 0) return error
  const cap = memoryCap(state, i)
  if (memoryBytes < cap) return error
  return new Trap({
    function: error.function,
    reason: `${error.reason} — linear memory is at the agent's budget of ${cap} bytes (cap): a memory.grow past it returns -1`
  })
}

/** `budgetNote` with the memory size read from the instance (only for a `Trap`). */
export const withBudgetNote = (
  state: RuntimeState,
  i: AgentInstance,
  instance: WasmInstance | undefined,
  error: EngineInvokeError
): Effect.Effect<EngineInvokeError> =>
  error._tag !== "Trap" || instance === undefined
    ? Effect.succeed(error)
    : Effect.map(
        Effect.orElseSucceed(instance.memoryBytes, () => 0),
        (bytes) => budgetNote(state, i, error, bytes)
      )
