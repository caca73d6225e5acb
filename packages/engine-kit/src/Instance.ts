/**
 * `Instance`: one live WebAssembly instance on the current thread — the one
 * implementation every engine runs its agents with (DESIGN.md "Shape":
 * engine-kit). engine-native and engine-edge wrap it as the port's
 * `WasmInstance` (`toWasmInstance`, `instantiateWasm`); the worker engines
 * call its synchronous API inside their workers with plain values.
 *
 * Two layers:
 * - the synchronous core (`instantiate` → `LiveInstance`, in
 *   `internal/core.ts`): every operation returns its typed error as a value
 *   and never throws, so it can serve a worker request or a prepared call
 *   without an Effect runtime. Its errors are plain tagged `Error`s (same
 *   `_tag`, fields and message as the domain's classes; `internal/errors.ts`)
 *   and it imports neither Schema nor Effect, so the worker bundle stays small;
 *   `toDomainError` maps them;
 * - the Effect wrappers (`toWasmInstance`, `instantiateWasm`, `validate`,
 *   `compile`) for in-process engines.
 *
 * What it maps (WebAssembly JS API §"Error Objects"):
 * - `WebAssembly.CompileError` → `CompileError`;
 * - at instantiation, `WebAssembly.LinkError` / `TypeError` (a missing or
 *   ill-typed import) → `InstantiationError`, a `RangeError` about memory →
 *   `InstantiationError` "cannot allocate linear memory", an exception in the
 *   start function → as for a call, with function name `(start)`;
 * - in a call, `WebAssembly.RuntimeError` (a trap: unreachable, divide by
 *   zero, out of bounds, …) → `Trap` with the engine's message;
 *   `RangeError: Maximum call stack size exceeded` → `Trap` "call stack
 *   exhausted"; a `TypeError` at the JS boundary → `Trap`; anything else a
 *   host function throws → `Trap` "host function threw: …" (`mapCallError`);
 *   `InstanceConfig.mapThrown` is asked first (workers: WASI exit, host
 *   errors already mapped on the host side);
 * - linear memory above `InstanceConfig.memoryLimit` right after
 *   instantiation → `MemoryExceeded` (the instance is dropped).
 *
 * Fuel: for a module instrumented by `@agent-runtime/wasm-binary`'s fuel
 * rewrite (a mutable i64 global exported as `FUEL_EXPORT`,
 * `agent-runtime:fuel`), a call with `fuel` sets the global first, reports
 * what is left in `fuelRemaining`, and a call that throws with the global
 * below zero is `FuelExhausted { function, fuel }`. Without the global, fuel
 * is ignored. A start function the rewrite deferred (`START_EXPORT`,
 * `agent-runtime:start`) is called right after instantiation with the
 * counter's initial fuel: running out there is `FuelExhausted` with function
 * `(start)` (a start function run by the engine during instantiation could
 * only fail as a bare `unreachable` trap, the counter unreadable). A module
 * that defines no globals imports its counter instead (wasm-binary
 * `FUEL_IMPORT_MODULE`): `instantiate` gives every such instance the
 * thread's one shared counter (no per-instance globals buffer, so no young
 * GCs for "external memory pressure" at spawn), set to the module's initial
 * fuel (`FUEL_SECTION`) before its start function runs; each call sets it
 * (to its `fuel`, else to what that instance had left) and reads it after,
 * and a call nested in another — a host function calling another instance
 * synchronously — restores the outer call's counter, so every instance
 * meters exactly as with a counter of its own.
 *
 * Host results follow the WebAssembly JS API: host imports are handed to
 * `new WebAssembly.Instance` as they are, so a host function returning an
 * array (or any iterable) for a multi-value import is read as its values,
 * the return value of a void import is ignored, and an externref import may
 * return any JavaScript value. Export results: `undefined` → `[]`, an array
 * (multi-value) → its values, anything else → `[value]`.
 *
 * Snapshots: linear memory with all-zero pages (64 KiB) skipped, plus every
 * exported mutable global except the fuel counter (fuel is set before each
 * metered call; it is not the agent's state). Restore grows memory when the
 * snapshot is larger, zeroes it, writes the pages and sets the globals.
 * In-process engines (`instantiateWasm`) read the dirty-page write barrier
 * when the runtime compiled it in (`InstanceConfig.dirtyPages`: the runtime
 * does so when it saves agents after every call) for `snapshotChanges`: the
 * pages stored to since its previous call, as views of the memory (a delta
 * save; nothing copied or kept between calls); `snapshot` copies every page.
 * Memory usage is `memory.buffer.byteLength` of the exported, else imported,
 * memory (0 without one), plus `length × TABLE_ENTRY_BYTES` (32) of every
 * exported or imported table, in bytes (issue 12 item 1: tables cost host
 * memory; an internal table is bounded by the budget's table cap instead).
 *
 * @since 0.2.0
 */
import {
  CompileError,
  type CompiledModule,
  type DirectInvoke,
  type EngineChanges,
  type EngineInvokeError,
  type EngineState,
  FuelExhausted,
  FunctionNotFound,
  InstantiationError,
  type InstantiatedNow,
  type InstantiateOptions,
  type InvokeOptions,
  type InvokeOutcome,
  MemoryExceeded,
  type ModuleHash,
  type PreparedInvoke,
  Trap,
  type WasmInstance,
  type WasmValue
} from "@agent-runtime/domain"
import * as Effect from "effect/Effect"
import * as Core from "./internal/core.js"
import type { CoreError } from "./internal/errors.js"

export { isZeroPage, PAGE_BYTES, pagesEqual } from "./internal/pages.js"
export {
  type Call,
  type CallError,
  type DirectCall,
  callErrorReason,
  fromInstance,
  type InstanceConfig,
  instantiate,
  type InstantiateError,
  instantiationError,
  type LiveInstance,
  mapCallError
} from "./internal/core.js"

// -----------------------------------------------------------------------------
// the domain's errors (in-process engines)
// -----------------------------------------------------------------------------

/**
 * The domain's error class for an error of the synchronous core (its plain
 * tagged errors, `internal/errors.ts`: same `_tag`, fields and message).
 */
export const toDomainError = (
  e: CoreError
): Trap | FunctionNotFound | FuelExhausted | MemoryExceeded | InstantiationError => {
  switch (e._tag) {
    case "Trap":
      return new Trap({ function: e.function, reason: e.reason })
    case "FunctionNotFound":
      return new FunctionNotFound({ function: e.function })
    case "FuelExhausted":
      return new FuelExhausted({ function: e.function, fuel: e.fuel })
    case "MemoryExceeded":
      return new MemoryExceeded({ agentId: e.agentId, used: e.used, limit: e.limit })
    case "InstantiationError":
      return new InstantiationError({ reason: e.reason })
  }
}

// -----------------------------------------------------------------------------
// Effect wrappers (in-process engines)
// -----------------------------------------------------------------------------

const message = (e: unknown): string => (e instanceof Error ? e.message : String(e))

/** A value-or-error of the core as an Effect: an `Error` fails (as the domain's class, `toDomainError`), anything else succeeds. */
const lift = <A, Err extends Error>(value: A | CoreError): Effect.Effect<A, Err> =>
  value instanceof Error ? Effect.fail(toDomainError(value) as unknown as Err) : Effect.succeed(value as A)

/** The `WasmInstance` members read `this.live`: shared by every instance (no closure per spawn). */
interface OverLive {
  readonly live: Core.LiveInstance
}

function invokeOn(this: OverLive, fn: string, args: ReadonlyArray<WasmValue>, options?: InvokeOptions) {
  const live = this.live
  return Effect.suspend(() => lift<InvokeOutcome, EngineInvokeError>(live.call(fn, args, options?.fuel)))
}

function prepareOn(this: OverLive, fn: string): PreparedInvoke | undefined {
  const call = this.live.prepare(fn)
  if (call === undefined) return undefined
  return (args, fuel) => {
    const outcome = call(args, fuel)
    return outcome instanceof Error ? (toDomainError(outcome) as EngineInvokeError) : outcome
  }
}

function prepareDirectOn(this: OverLive, fn: string, type?: Core.CallType): DirectInvoke | undefined {
  const call = this.live.prepareDirect(fn, type)
  if (call === undefined) return undefined
  return (args, fuel, slot) => {
    const failed = call(args, fuel, slot)
    return failed === undefined ? undefined : (toDomainError(failed) as EngineInvokeError)
  }
}

function readMemoryOn(this: OverLive, offset: number, length: number) {
  const live = this.live
  return Effect.suspend(() => lift<Uint8Array, Trap>(live.read(offset, length)))
}

function writeMemoryOn(this: OverLive, offset: number, bytes: Uint8Array) {
  const live = this.live
  return Effect.suspend(() => lift<void, Trap>(live.write(offset, bytes)))
}

function snapshotChangesOn(this: OverLive, restart: boolean) {
  const live = this.live
  return Effect.suspend(() => lift<EngineChanges | undefined, Trap>(live.changes(restart)))
}

function restoreOn(this: OverLive, state: EngineState) {
  const live = this.live
  return Effect.suspend(() => lift<void, Trap | MemoryExceeded>(live.restore(state)))
}

/**
 * The port's `WasmInstance` over a live instance. Its function members are
 * own properties holding functions shared by every instance (they read
 * `this.live`), so a spawn allocates this object and its three Effect values
 * only; a copy by spread or rest (`{ ...instance, invoke }`, an engine
 * wrapper) keeps working, a member called detached from its object does not.
 */
class InstanceOverLive implements WasmInstance, OverLive {
  readonly invoke = invokeOn
  readonly prepare = prepareOn
  readonly prepareDirect = prepareDirectOn
  readonly readMemory = readMemoryOn
  readonly writeMemory = writeMemoryOn
  readonly restore = restoreOn
  readonly snapshotChanges = snapshotChangesOn
  readonly memoryBytes: Effect.Effect<number>
  readonly snapshot: Effect.Effect<EngineState, Trap>
  readonly terminate: Effect.Effect<void>
  constructor(readonly live: Core.LiveInstance) {
    this.memoryBytes = Effect.sync(() => live.memoryBytes())
    this.snapshot = Effect.suspend(() => lift<EngineState, Trap>(live.snapshot()))
    this.terminate = Effect.sync(() => live.terminate())
  }
}

/**
 * The port's `WasmInstance` over a live instance (with the prepared-call paths
 * `prepare` and `prepareDirect`); its errors are the domain's classes (`toDomainError`).
 * Call its function members on it (`instance.invoke(…)`), not detached.
 */
export const toWasmInstance = (live: Core.LiveInstance): WasmInstance => new InstanceOverLive(live)

/**
 * `WasmEngine.instantiate` for an in-process engine: `instantiate` with the
 * domain's options (imports, imported memory, budget) wrapped as a `WasmInstance`.
 * `notAModule` is the reason when the handle is not a `WebAssembly.Module`.
 */
export const instantiateWasm = (
  compiled: CompiledModule,
  options: InstantiateOptions,
  notAModule?: string
): Effect.Effect<WasmInstance, InstantiationError | Trap | FuelExhausted | MemoryExceeded> =>
  Effect.suspend(() => {
    const live = Core.instantiate(compiled.handle, options.imports, {
      memory: options.memory,
      memoryLimit: options.memoryLimit,
      agentId: options.agentId,
      notAModule,
      // the runtime compiles the barrier in only when it snapshots after calls (`EngineCapabilities.dirtyPages`)
      dirtyPages: true
    })
    return live instanceof Error
      ? Effect.fail(toDomainError(live) as InstantiationError | Trap | FuelExhausted | MemoryExceeded)
      : Effect.succeed(toWasmInstance(live))
  })

/**
 * `WasmEngine.instantiateSync` for an in-process engine: `instantiateWasm`
 * without the Effect — the same instance, checks and errors (as the domain's
 * classes), returned as values with the instance's memory usage right after
 * instantiation (bytes); never throws.
 */
export const instantiateSync = (
  compiled: CompiledModule,
  options: InstantiateOptions,
  notAModule?: string
): InstantiatedNow | InstantiationError | Trap | FuelExhausted | MemoryExceeded => {
  const live = Core.instantiate(
    compiled.handle,
    options.imports,
    {
      memory: options.memory,
      memoryLimit: options.memoryLimit,
      agentId: options.agentId,
      notAModule,
      dirtyPages: true // as in `instantiateWasm`
    },
    measured
  )
  if (live instanceof Error) return toDomainError(live) as InstantiationError | Trap | FuelExhausted | MemoryExceeded
  // the size the budget check just read (`memory.buffer` is a slow accessor: read once per spawn)
  return { instance: toWasmInstance(live), memoryBytes: measured.bytes }
}

/** Where `Core.instantiate` writes the memory usage it measured; read right after each (synchronous) call. */
const measured = { bytes: 0 }

/**
 * `WasmEngine.validate` on the host's `WebAssembly`: `WebAssembly.validate`,
 * and when it refuses, one compile to get the engine's reason → `CompileError`.
 */
export const validate = (bytes: Uint8Array): Effect.Effect<void, CompileError> =>
  Effect.suspend(() => {
    if (WebAssembly.validate(bytes as Uint8Array<ArrayBuffer>)) return Effect.void
    // not valid: compile once to get the engine's reason
    return Effect.tryPromise({
      try: () => WebAssembly.compile(bytes as Uint8Array<ArrayBuffer>),
      catch: (e) => new CompileError({ reason: message(e) })
    }).pipe(Effect.andThen(Effect.fail(new CompileError({ reason: "WebAssembly.validate refused the module" }))))
  })

/** `WasmEngine.compile` on the host's `WebAssembly` (`WebAssembly.compile`; failure → `CompileError`). */
export const compile = (bytes: Uint8Array, hash: ModuleHash): Effect.Effect<CompiledModule, CompileError> =>
  Effect.tryPromise({
    try: () => WebAssembly.compile(bytes as Uint8Array<ArrayBuffer>),
    catch: (e) => new CompileError({ reason: message(e) })
  }).pipe(Effect.map((module): CompiledModule => ({ hash, byteLength: bytes.byteLength, handle: module })))
