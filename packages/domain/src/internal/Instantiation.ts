/**
 * Instantiation of an agent's module, shared by spawning and rehydration:
 * the host imports it is granted (each one authorised, each call checked
 * against revocation), the imported memory the engine creates with the
 * agent's budget as maximum, the start deadline, and the engine call.
 *
 * @since 0.1.0
 */
import type { ImportDesc } from "@agent-runtime/wasm-binary"
import * as Effect from "effect/Effect"
import type { AgentConfig } from "../AgentConfig.js"
import type { AgentId } from "../Ids.js"
import * as MemoryBudget from "../MemoryBudget.js"
import { type EngineInvokeError, InstantiationError, type Unauthorized } from "../RuntimeError.js"
import type { HostImports, HostMemory, InstantiateOptions, WasmInstance } from "../WasmEngine.js"
import type { WasmModule } from "../WasmModule.js"
import { importProblems, importsError } from "./Imports.js"
import { compiledFor } from "./Modules.js"
import type { RuntimeState } from "./RuntimeState.js"

/**
 * The host imports granted to an agent: every import of the module must be
 * offered with a value of its kind (WASI is the engine's on engines with
 * WASI; a missing memory is created by the engine) — all problems are
 * reported at once in one `InstantiationError` (`missing`, see `Imports`) —
 * and each one is authorised (`ExecutionAuthorizer`, action `import`).
 */
export const resolveImports = (
  state: RuntimeState,
  agentId: AgentId,
  module: WasmModule,
  offered: HostImports | undefined
): Effect.Effect<HostImports, InstantiationError | Unauthorized> =>
  // a module without imports (the common agent) grants nothing: no generator, no authorisation round
  module.imports.length === 0
    ? Effect.succeed({})
    : Effect.gen(function* () {
        const engineWasi = (imp: ImportDesc) =>
          imp.module === "wasi_snapshot_preview1" && state.engine.capabilities.wasi
        const problems = importProblems(module.imports, offered, engineWasi)
        if (problems.length > 0) return yield* importsError(agentId, problems)
        const granted: Record<string, Record<string, unknown>> = {}
        for (const imp of module.imports) {
          const value = engineWasi(imp) ? undefined : offered?.[imp.module]?.[imp.name]
          if (value === undefined) continue
          const subject = `${imp.module}.${imp.name}`
          yield* state.authorizer.authorize({ action: "import", agentId, moduleHash: module.hash, subject })
          ;(granted[imp.module] ??= {})[imp.name] =
            typeof value === "function"
              ? guardCapability(state, agentId, subject, value as (...args: Array<unknown>) => unknown)
              : value
        }
        return granted as HostImports
      })

/**
 * Wraps a granted host function so each call checks the grant still holds
 * (`revokeImport`, or the authorizer's synchronous `isGranted`): a call to a
 * revoked capability traps the guest, fails the invocation with
 * `Unauthorized`, and evicts the agent with `PolicyViolation`.
 */
const guardCapability =
  (state: RuntimeState, agentId: AgentId, subject: string, f: (...args: Array<unknown>) => unknown) =>
  (...args: Array<unknown>): unknown => {
    const i = state.env.instances.get(agentId)
    if (i?.revoked.has(subject) === true || state.authorizer.isGranted?.(agentId, subject) === false) {
      if (i !== undefined) i.recordPolicyViolation(subject)
      throw new Error(`capability ${subject} was revoked`)
    }
    return f(...args)
  }

/**
 * The imported memory the engine must create for an agent (when the module
 * imports one and the config does not provide it): maximum = the agent's
 * budget in pages (or the declared maximum if lower).
 */
const hostMemory = (module: WasmModule, config: AgentConfig): HostMemory | undefined => {
  for (const imp of module.imports) {
    if (imp.type.kind !== "memory" || config.imports?.[imp.module]?.[imp.name] !== undefined) continue
    const cap = Math.floor(config.memoryLimit / MemoryBudget.PAGE_BYTES)
    return {
      module: imp.module,
      name: imp.name,
      minPages: imp.type.minPages,
      maxPages: Math.min(imp.type.maxPages ?? cap, cap),
      shared: imp.type.shared
    }
  }
  return undefined
}

/**
 * The deadline of an instantiation (the module's start function; a worker's
 * own start-up is not charged to it), ms: the agent's `timeoutMs` when it
 * has one, bounded by `settings.startTimeoutMs` — a start function is a call
 * of the guest like any other (issue 12 item 4) —, else `startTimeoutMs`.
 */
export const startDeadline = (state: RuntimeState, config: AgentConfig): number | undefined =>
  state.engine.capabilities.preemptiveTimeout
    ? Math.min(state.settings.startTimeoutMs, config.timeoutMs ?? state.settings.startTimeoutMs)
    : undefined

/** The engine's instantiate options for an agent: its budget, granted imports, start deadline and imported memory. */
export const instantiateOptions = (
  state: RuntimeState,
  agentId: AgentId,
  module: WasmModule,
  config: AgentConfig,
  imports: HostImports
): InstantiateOptions => ({
  agentId,
  memoryLimit: config.memoryLimit,
  imports,
  timeoutMs: startDeadline(state, config),
  memory: hostMemory(module, config)
})

/** Compiles the agent's variant of `module` and instantiates it with the granted imports. */
export const instantiate = (
  state: RuntimeState,
  agentId: AgentId,
  module: WasmModule,
  config: AgentConfig,
  imports: HostImports
): Effect.Effect<WasmInstance, InstantiationError | EngineInvokeError> =>
  Effect.flatMap(
    Effect.mapError(compiledFor(state, module, config), (e) => new InstantiationError({ reason: e.message })),
    (compiled) => state.engine.instantiate(compiled, instantiateOptions(state, agentId, module, config, imports))
  )
