/**
 * Every error the Runtime context can fail with (spec `RuntimeError`, plus the
 * errors DESIGN.md adds: `SignatureMismatch`, `Trap`, `FunctionNotFound`,
 * `CompileError`, `FuelExhausted`, …).
 *
 * They are `Schema.TaggedError` classes: yieldable in `Effect.gen`, matchable
 * by `_tag` (`Effect.catchTag`), real `Error`s for the Promise facade
 * (`err instanceof AgentNotFound`), and serialisable so engines running in
 * workers can send them across a thread boundary. Sizes are in bytes.
 *
 * @since 0.1.0
 */
import * as Schema from "effect/Schema"

/** The module is unsigned, tampered, signed by an untrusted key, or for other metadata (Invariant 5 "Module Verification"). */
export class InvalidSignature extends Schema.TaggedError<InvalidSignature>()("InvalidSignature", {
  module: Schema.String,
  reason: Schema.String
}) {
  override get message() {
    return `module ${this.module}: invalid signature: ${this.reason}`
  }
}

/**
 * The bytes are not a valid WebAssembly module, or use a feature this engine
 * cannot run. `offset` is the byte offset of the problem when known; `kind`
 * (from `@agent-runtime/wasm-binary`'s `WasmBinaryError`, when the reader or
 * a rewrite found it) is `"malformed"` (not the binary format, spec §5),
 * `"invalid"` (breaks a validation rule, spec §3) or `"unsupported"` (a
 * feature Node 20's V8 does not run), and `feature` names that feature
 * (`"memory64"`, `"gc"`, …): the message then reads `unsupported: memory64 (…)`.
 */
export class CompileError extends Schema.TaggedError<CompileError>()("CompileError", {
  reason: Schema.String,
  offset: Schema.optional(Schema.Number),
  kind: Schema.optional(Schema.Literals(["malformed", "invalid", "unsupported"])),
  feature: Schema.optional(Schema.String)
}) {
  override get message() {
    const what =
      this.kind === "unsupported" && this.feature !== undefined
        ? `unsupported: ${this.feature} (${this.reason})`
        : this.reason
    return this.offset === undefined ? `compile error: ${what}` : `compile error at byte ${this.offset}: ${what}`
  }
}

/** A `CompileError` from a `@agent-runtime/wasm-binary` error (reader or rewrite): reason, offset, kind, feature. */
export const compileErrorOf = (
  e: {
    readonly reason: string
    readonly offset: number
    readonly kind?: "malformed" | "invalid" | "unsupported" | undefined
    readonly feature?: string | undefined
  },
  prefix = ""
): CompileError =>
  new CompileError({
    reason: prefix + e.reason,
    offset: e.offset,
    ...(e.kind === undefined ? {} : { kind: e.kind }),
    ...(e.feature === undefined ? {} : { feature: e.feature })
  })

/** The module is larger than the runtime accepts (bytes). */
export class ModuleTooLarge extends Schema.TaggedError<ModuleTooLarge>()("ModuleTooLarge", {
  size: Schema.Number,
  limit: Schema.Number
}) {
  override get message() {
    return `module of ${this.size} bytes exceeds the limit of ${this.limit} bytes`
  }
}

/** No module with this id is loaded, or no module is registered for an agent type. */
export class ModuleNotFound extends Schema.TaggedError<ModuleNotFound>()("ModuleNotFound", {
  moduleId: Schema.String
}) {
  override get message() {
    return `module not found: ${this.moduleId}`
  }
}

/** An instance already exists for this agent id (Invariant 4 "Unique Instances"). */
export class AgentAlreadyExists extends Schema.TaggedError<AgentAlreadyExists>()("AgentAlreadyExists", {
  agentId: Schema.String
}) {
  override get message() {
    return `agent already exists: ${this.agentId}`
  }
}

/** No instance exists for this agent id. */
export class AgentNotFound extends Schema.TaggedError<AgentNotFound>()("AgentNotFound", {
  agentId: Schema.String
}) {
  override get message() {
    return `agent not found: ${this.agentId}`
  }
}

/** The agent exists but is not `Running` (or `Critical`), so it cannot be invoked. */
export class AgentNotRunning extends Schema.TaggedError<AgentNotRunning>()("AgentNotRunning", {
  agentId: Schema.String,
  state: Schema.String
}) {
  override get message() {
    return `agent ${this.agentId} is not running (state ${this.state})`
  }
}

/**
 * The host evicted the agent (`reason`: an `EvictionReason` — `Manual`,
 * `MemoryPressure`, `HealthFailure`, …) while this call of `function` was
 * queued on its mailbox or running: the call was refused or cut short by the
 * host, not by the guest, so it is not counted as a guest failure
 * (`errorCount`, health). Calls that were already running when the eviction
 * came may instead complete with their results. Issue 12 item 4.
 */
export class AgentEvictedDuringCall extends Schema.TaggedError<AgentEvictedDuringCall>()("AgentEvictedDuringCall", {
  agentId: Schema.String,
  function: Schema.String,
  reason: Schema.String
}) {
  override get message() {
    return `agent ${this.agentId} was evicted (${this.reason}) during its call of ${this.function}`
  }
}

/** The resource pool cannot reserve `requested` bytes; `available` bytes are left (Invariant 1). */
export class InsufficientMemory extends Schema.TaggedError<InsufficientMemory>()("InsufficientMemory", {
  requested: Schema.Number,
  available: Schema.Number
}) {
  override get message() {
    return `insufficient memory: requested ${this.requested} bytes, ${this.available} bytes available`
  }
}

/** A resource other than memory (threads, handles) is exhausted. */
export class ResourceExhausted extends Schema.TaggedError<ResourceExhausted>()("ResourceExhausted", {
  resource: Schema.String,
  requested: Schema.Number,
  available: Schema.Number
}) {
  override get message() {
    return `${this.resource} exhausted: requested ${this.requested}, ${this.available} available`
  }
}

/** An agent configuration is invalid (spec `AgentFactory.validate_config`). */
export class InvalidConfig extends Schema.TaggedError<InvalidConfig>()("InvalidConfig", {
  reason: Schema.String
}) {
  override get message() {
    return `invalid config: ${this.reason}`
  }
}

/** A lifecycle transition not allowed by the instance state machine (spec `AgentInstance`). */
export class InvalidStateTransition extends Schema.TaggedError<InvalidStateTransition>()("InvalidStateTransition", {
  agentId: Schema.String,
  from: Schema.String,
  to: Schema.String
}) {
  override get message() {
    return `agent ${this.agentId}: cannot go from ${this.from} to ${this.to}`
  }
}

/** The module has no exported function of this name. */
export class FunctionNotFound extends Schema.TaggedError<FunctionNotFound>()("FunctionNotFound", {
  function: Schema.String
}) {
  override get message() {
    return `no exported function named ${JSON.stringify(this.function)}`
  }
}

/** An argument does not fit the export's signature. `index` is -1 for a wrong argument count. */
export class SignatureMismatch extends Schema.TaggedError<SignatureMismatch>()("SignatureMismatch", {
  function: Schema.String,
  index: Schema.Number,
  reason: Schema.String
}) {
  override get message() {
    return this.index < 0
      ? `${this.function}: ${this.reason}`
      : `${this.function}: argument ${this.index}: ${this.reason}`
  }
}

/** The agent's linear memory is above its budget (bytes). */
export class MemoryExceeded extends Schema.TaggedError<MemoryExceeded>()("MemoryExceeded", {
  agentId: Schema.String,
  used: Schema.Number,
  limit: Schema.Number
}) {
  override get message() {
    return `agent ${this.agentId} uses ${this.used} bytes, above its budget of ${this.limit} bytes`
  }
}

/** The guest trapped (WebAssembly spec §4.4 "trap"): `reason` is the engine's trap message. */
export class Trap extends Schema.TaggedError<Trap>()("Trap", {
  function: Schema.String,
  reason: Schema.String
}) {
  override get message() {
    return `${this.function} trapped: ${this.reason}`
  }
}

/** The call ran past its deadline (ms) and was stopped. */
export class Timeout extends Schema.TaggedError<Timeout>()("Timeout", {
  function: Schema.String,
  timeoutMs: Schema.Number
}) {
  override get message() {
    return `${this.function} timed out after ${this.timeoutMs} ms`
  }
}

/** The call used up its fuel (units of metered work) and was stopped. */
export class FuelExhausted extends Schema.TaggedError<FuelExhausted>()("FuelExhausted", {
  function: Schema.String,
  fuel: Schema.Number
}) {
  override get message() {
    return `${this.function} ran out of fuel (${this.fuel} units)`
  }
}

/**
 * One import of a module the host cannot satisfy as offered: `module` and
 * `name` as the module names it (`"env"."memory"`), its `kind` (`function`,
 * `memory`, `table`, `global`, `tag`), the `expected` type as the module
 * declares it (e.g. `(i32, i32) -> (i32)`, `memory 1..16 pages`), and the
 * `problem` (`"missing"`, or what is wrong with the value given).
 */
export const ImportProblem = Schema.Struct({
  module: Schema.String,
  name: Schema.String,
  kind: Schema.String,
  expected: Schema.String,
  problem: Schema.String
})
export type ImportProblem = typeof ImportProblem.Type

/**
 * Instantiation failed: missing or ill-typed imports (checked by the runtime
 * before instantiating, every one listed in `missing`; or the engine's
 * WebAssembly `LinkError`) or a trap in the start function.
 */
export class InstantiationError extends Schema.TaggedError<InstantiationError>()("InstantiationError", {
  reason: Schema.String,
  missing: Schema.optional(Schema.Array(ImportProblem))
}) {
  override get message() {
    return `instantiation failed: ${this.reason}`
  }
}

/** The `ExecutionAuthorizer` refused an action (spawn, invoke, a host capability). */
export class Unauthorized extends Schema.TaggedError<Unauthorized>()("Unauthorized", {
  action: Schema.String,
  subject: Schema.String,
  reason: Schema.String
}) {
  override get message() {
    return `not authorized to ${this.action} ${this.subject}: ${this.reason}`
  }
}

/** A repository operation failed (storage unavailable, corrupt, locked, full). */
export class RepositoryError extends Schema.TaggedError<RepositoryError>()("RepositoryError", {
  operation: Schema.String,
  reason: Schema.String
}) {
  override get message() {
    return `repository ${this.operation} failed: ${this.reason}`
  }
}

/**
 * A public operation was called with a value of the wrong shape (untyped
 * JavaScript callers): `operation` (e.g. `"loadModule"`), the `argument`
 * (e.g. `"metadata"`) and why. The offending value is never echoed whole
 * (long strings are cut, see `Ids.forMessage`). Agent ids, configs, export
 * names and call arguments are refused with the operation's own errors
 * (`AgentNotFound`, `InvalidConfig`, `FunctionNotFound`, `SignatureMismatch`).
 */
export class InvalidArgument extends Schema.TaggedError<InvalidArgument>()("InvalidArgument", {
  operation: Schema.String,
  argument: Schema.String,
  reason: Schema.String
}) {
  override get message() {
    return `${this.operation}: invalid ${this.argument}: ${this.reason}`
  }
}

/** The runtime is shutting down or stopped and accepts no new work. */
export class RuntimeUnavailable extends Schema.TaggedError<RuntimeUnavailable>()("RuntimeUnavailable", {
  status: Schema.String
}) {
  override get message() {
    return `runtime is ${this.status}`
  }
}

/** Errors an invocation of an export can fail with (DESIGN.md "Public API"). */
export type InvokeError =
  | AgentNotFound
  | AgentNotRunning
  | AgentEvictedDuringCall
  | FunctionNotFound
  | SignatureMismatch
  | MemoryExceeded
  | Trap
  | Timeout
  | FuelExhausted
  | Unauthorized
  | RuntimeUnavailable

/** Errors an engine's `invoke` can fail with. */
export type EngineInvokeError = FunctionNotFound | SignatureMismatch | Trap | Timeout | FuelExhausted | MemoryExceeded

/** Every error of the Runtime context. */
export type RuntimeError =
  | InvalidSignature
  | CompileError
  | ModuleTooLarge
  | ModuleNotFound
  | AgentAlreadyExists
  | AgentNotFound
  | AgentNotRunning
  | AgentEvictedDuringCall
  | InsufficientMemory
  | ResourceExhausted
  | InvalidConfig
  | InvalidStateTransition
  | FunctionNotFound
  | SignatureMismatch
  | MemoryExceeded
  | Trap
  | Timeout
  | FuelExhausted
  | InstantiationError
  | Unauthorized
  | RepositoryError
  | RuntimeUnavailable
  | InvalidArgument
