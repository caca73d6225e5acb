/**
 * `Instance`: one live WebAssembly instance on the current thread — the one
 * implementation every engine runs its agents with (DESIGN.md "Shape":
 * engine-kit). engine-native and engine-edge wrap it as the port's
 * `WasmInstance` (`toWasmInstance`, `instantiateWasm`); the worker engines
 * call its synchronous API inside their workers with plain values.
 *
 * Two layers:
 * - the synchronous core (`instantiate` → `LiveInstance`): every operation
 *   returns its typed error as a value and never throws, so it can serve a
 *   worker request or a prepared call without an Effect runtime;
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
 * only fail as a bare `unreachable` trap, the counter unreadable).
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
  type EngineState,
  FuelExhausted,
  FunctionNotFound,
  type HostImports,
  type HostMemory,
  InstantiationError,
  type InstantiateOptions,
  type InvokeOutcome,
  MemoryExceeded,
  type ModuleHash,
  type PreparedInvoke,
  Trap,
  type WasmInstance,
  type WasmValue
} from "@agent-runtime/domain"
import { FUEL_EXPORT, START_EXPORT, TABLE_ENTRY_BYTES } from "@agent-runtime/wasm-binary"
import * as Effect from "effect/Effect"
import { isZeroPage, PAGE_BYTES } from "./internal/pages.js"

export { isZeroPage, PAGE_BYTES, pagesEqual } from "./internal/pages.js"

// -----------------------------------------------------------------------------
// types
// -----------------------------------------------------------------------------

/** How to instantiate (all optional). `E` is what `mapThrown` may turn an exception into. */
export interface InstanceConfig<E extends Error = never> {
  /**
   * An imported memory to create (`new WebAssembly.Memory({ initial, maximum,
   * shared })`, sizes in pages of 64 KiB) when `imports` does not provide it:
   * the domain's `InstantiateOptions.memory`, the agent's budget as maximum.
   */
  readonly memory?: HostMemory | undefined
  /** Linear memory allowed right after instantiation, in bytes; above it → `MemoryExceeded`. */
  readonly memoryLimit?: number | undefined
  /** The agent named in `MemoryExceeded` (default `"instantiate"`). */
  readonly agentId?: string | undefined
  /** The `InstantiationError` reason when `module` is not a `WebAssembly.Module`. */
  readonly notAModule?: string | undefined
  /**
   * Asked first (after the fuel check) for an exception thrown out of a guest
   * call or the start function; `undefined` → the default mapping (`mapCallError`).
   */
  readonly mapThrown?: ((fn: string, error: unknown) => E | undefined) | undefined
}

/** What a call can fail with, as a value. */
export type CallError<E extends Error = never> = Trap | FunctionNotFound | FuelExhausted | E

/** A synchronous caller of one resolved export; never throws. `fuel` in fuel units. */
export type Call<E extends Error = never> = (
  args: ReadonlyArray<WasmValue>,
  fuel?: number | undefined
) => InvokeOutcome | CallError<E>

/** One live instance; every operation is synchronous and returns its error as a value. */
export interface LiveInstance<E extends Error = never> {
  /** The instance's exports (as instantiated; still readable after `terminate`). */
  readonly exports: WebAssembly.Exports
  /** The exported, else imported, linear memory. */
  readonly memory: WebAssembly.Memory | undefined
  /** The fuel counter (`FUEL_EXPORT`) when the module is instrumented. */
  readonly fuel: WebAssembly.Global | undefined
  /** Exported mutable globals by export name, without the fuel counter (what a snapshot holds). */
  readonly globals: ReadonlyArray<readonly [string, WebAssembly.Global]>
  /** Memory usage in bytes: linear memory (0 without) + visible table entries × `TABLE_ENTRY_BYTES`. */
  readonly memoryBytes: () => number
  /** Linear memory size in bytes (0 without memory): what a snapshot holds. */
  readonly linearBytes: () => number
  /** True once `terminate` ran. */
  readonly terminated: () => boolean
  /** Resolves an export once; `undefined` when it is not a function. */
  readonly prepare: (fn: string) => Call<E> | undefined
  /** Calls an export (`FunctionNotFound` when it is not a function). */
  readonly call: (fn: string, args: ReadonlyArray<WasmValue>, fuel?: number | undefined) => InvokeOutcome | CallError<E>
  /** Copies `length` bytes at `offset` out of linear memory; out of bounds → `Trap`. */
  readonly read: (offset: number, length: number) => Uint8Array | Trap
  /** Copies `bytes` into linear memory at `offset`; out of bounds → `Trap`. */
  readonly write: (offset: number, bytes: Uint8Array) => Trap | undefined
  /** Non-zero pages + mutable globals. */
  readonly snapshot: () => EngineState | Trap
  /** Overwrites memory (growing it when needed) and globals; growth refused → `MemoryExceeded`. */
  readonly restore: (state: EngineState) => Trap | MemoryExceeded | undefined
  /** Makes every later operation fail with `Trap` "instance terminated". Idempotent. */
  readonly terminate: () => void
}

/** What `instantiate` can fail with. */
export type InstantiateError<E extends Error = never> = InstantiationError | Trap | FuelExhausted | MemoryExceeded | E

// -----------------------------------------------------------------------------
// error mapping
// -----------------------------------------------------------------------------

const message = (e: unknown): string => (e instanceof Error ? e.message : String(e))

/**
 * The reason an exception thrown out of a guest call becomes (WebAssembly JS
 * API §"Error Objects"): a `RuntimeError`'s message, "call stack exhausted
 * (…)", "type error at the JS boundary: …" or "host function threw: …".
 */
export const callErrorReason = (e: unknown): string => {
  if (e instanceof WebAssembly.RuntimeError) return e.message
  if (e instanceof RangeError && /call stack/i.test(e.message)) return `call stack exhausted (${e.message})`
  if (e instanceof TypeError) return `type error at the JS boundary: ${e.message}`
  return `host function threw: ${message(e)}`
}

/** Maps an exception thrown out of a call into the guest (export `fn`) to a `Trap`. */
export const mapCallError = (fn: string, e: unknown): Trap => new Trap({ function: fn, reason: callErrorReason(e) })

/**
 * Maps an exception of `new WebAssembly.Instance` / `new WebAssembly.Memory`
 * to a typed error: `LinkError` / `TypeError` → `InstantiationError`, a
 * memory `RangeError` → `InstantiationError`, else `undefined` (a trap in the
 * start function: map it as a call of `(start)`).
 */
export const instantiationError = (e: unknown): InstantiationError | undefined => {
  // LinkError: an import of the wrong kind or type; TypeError: an import module or value is missing
  if (e instanceof WebAssembly.LinkError || e instanceof TypeError) return new InstantiationError({ reason: e.message })
  if (e instanceof RangeError && /memory/i.test(e.message)) {
    return new InstantiationError({ reason: `cannot allocate linear memory: ${e.message}` })
  }
  return undefined
}

// -----------------------------------------------------------------------------
// the synchronous core
// -----------------------------------------------------------------------------

const findMemory = (exports: WebAssembly.Exports, imports: WebAssembly.Imports): WebAssembly.Memory | undefined => {
  for (const v of Object.values(exports)) if (v instanceof WebAssembly.Memory) return v
  for (const ns of Object.values(imports)) {
    for (const v of Object.values(ns as Record<string, unknown>)) if (v instanceof WebAssembly.Memory) return v
  }
  return undefined
}

/** The exported and imported tables (each once). */
const findTables = (exports: WebAssembly.Exports, imports: WebAssembly.Imports): Array<WebAssembly.Table> => {
  const tables = new Set<WebAssembly.Table>()
  for (const v of Object.values(exports)) if (v instanceof WebAssembly.Table) tables.add(v)
  for (const ns of Object.values(imports)) {
    for (const v of Object.values(ns as Record<string, unknown>)) if (v instanceof WebAssembly.Table) tables.add(v)
  }
  return [...tables]
}

/** The exported mutable globals, without the fuel counter. */
const mutableGlobals = (exports: WebAssembly.Exports): Array<readonly [string, WebAssembly.Global]> => {
  const globals: Array<readonly [string, WebAssembly.Global]> = []
  for (const [name, v] of Object.entries(exports)) {
    if (!(v instanceof WebAssembly.Global) || name === FUEL_EXPORT) continue
    try {
      v.value = v.value // throws TypeError for an immutable global: only mutable state is captured
      globals.push([name, v])
    } catch {
      // immutable
    }
  }
  return globals
}

/** `imports` plus the memory `request` asks for when `imports` lacks it (may throw like `new WebAssembly.Memory`). */
const withMemory = (imports: WebAssembly.Imports, request: HostMemory | undefined): WebAssembly.Imports => {
  if (request === undefined) return imports
  const ns = imports[request.module] as Record<string, unknown> | undefined
  if (ns?.[request.name] !== undefined) return imports
  const memory = new WebAssembly.Memory({ initial: request.minPages, maximum: request.maxPages, shared: request.shared })
  return { ...imports, [request.module]: { ...(ns as WebAssembly.ModuleImports | undefined), [request.name]: memory } }
}

/** An export's return value as the port's results (`undefined` → none, an array → multi-value). */
const results = (result: unknown): ReadonlyArray<WasmValue> =>
  result === undefined ? [] : Array.isArray(result) ? (result as Array<WasmValue>) : [result as WasmValue]

/** Wraps an instance already made (`new WebAssembly.Instance(module, imports)` with these `imports`). */
export const fromInstance = <E extends Error = never>(
  instance: WebAssembly.Instance,
  imports: WebAssembly.Imports,
  config: Pick<InstanceConfig<E>, "mapThrown"> = {}
): LiveInstance<E> => {
  const exports = instance.exports
  let live = true
  const memory = findMemory(exports, imports)
  const fuelExport = exports[FUEL_EXPORT]
  const fuelGlobal = fuelExport instanceof WebAssembly.Global ? fuelExport : undefined
  const globals = mutableGlobals(exports)
  const tables = findTables(exports, imports)
  const linearBytes = () => (memory === undefined ? 0 : memory.buffer.byteLength)
  const memoryBytes = () => {
    let bytes = linearBytes()
    for (const t of tables) bytes += t.length * TABLE_ENTRY_BYTES
    return bytes
  }
  const terminated = (op: string) => new Trap({ function: op, reason: "instance terminated" })
  const mapThrown = config.mapThrown

  const prepare = (fn: string): Call<E> | undefined => {
    const f = exports[fn]
    if (typeof f !== "function") return undefined
    const g = f as (...a: ReadonlyArray<WasmValue>) => unknown
    return (args, fuel) => {
      if (!live) return terminated(fn)
      const metered = fuel !== undefined && fuelGlobal !== undefined
      if (metered) fuelGlobal.value = BigInt(fuel)
      let result: unknown
      try {
        result = g(...args)
      } catch (e) {
        if (metered && (fuelGlobal.value as bigint) < 0n) return new FuelExhausted({ function: fn, fuel })
        return mapThrown?.(fn, e) ?? mapCallError(fn, e)
      }
      return {
        results: results(result),
        memoryBytes: memoryBytes(),
        fuelRemaining: metered ? Number(fuelGlobal.value as bigint) : undefined
      }
    }
  }

  const bounds = (op: string, offset: number, length: number): Trap | undefined => {
    if (memory === undefined) return new Trap({ function: op, reason: "the instance has no linear memory" })
    const size = memory.buffer.byteLength
    if (!Number.isInteger(offset) || !Number.isInteger(length) || offset < 0 || length < 0 || offset + length > size) {
      return new Trap({ function: op, reason: `memory access out of bounds: [${offset}, ${offset + length}) of ${size} bytes` })
    }
    return undefined
  }

  const snapshot = (): EngineState | Trap => {
    if (!live) return terminated("snapshot")
    const pages: Array<{ index: number; data: Uint8Array }> = []
    if (memory !== undefined) {
      const buffer = memory.buffer
      const words = new Uint32Array(buffer)
      const count = buffer.byteLength / PAGE_BYTES
      for (let p = 0; p < count; p++) {
        if (!isZeroPage(words, p)) pages.push({ index: p, data: new Uint8Array(buffer, p * PAGE_BYTES, PAGE_BYTES).slice() })
      }
    }
    const values: Record<string, number | bigint> = {}
    for (const [name, g] of globals) {
      const v: unknown = g.value
      if (typeof v === "number" || typeof v === "bigint") values[name] = v
    }
    return { memoryBytes: linearBytes(), pages, globals: values }
  }

  const restore = (state: EngineState): Trap | MemoryExceeded | undefined => {
    if (!live) return terminated("restore")
    if (memory !== undefined) {
      const current = memory.buffer.byteLength
      if (state.memoryBytes > current) {
        try {
          memory.grow((state.memoryBytes - current) / PAGE_BYTES)
        } catch {
          return new MemoryExceeded({ agentId: "restore", used: state.memoryBytes, limit: current })
        }
      }
      const view = new Uint8Array(memory.buffer)
      view.fill(0)
      for (const page of state.pages) view.set(page.data, page.index * PAGE_BYTES)
    } else if (state.pages.length > 0) {
      return new Trap({ function: "restore", reason: "snapshot has memory but the instance has none" })
    }
    for (const [name, value] of Object.entries(state.globals)) {
      const g = exports[name]
      if (!(g instanceof WebAssembly.Global)) {
        return new Trap({ function: "restore", reason: `snapshot global ${name} is not exported by this module` })
      }
      try {
        g.value = value
      } catch (e) {
        return new Trap({ function: "restore", reason: `cannot set global ${name}: ${message(e)}` })
      }
    }
    return undefined
  }

  return {
    exports,
    memory,
    fuel: fuelGlobal,
    globals,
    memoryBytes,
    linearBytes,
    terminated: () => !live,
    prepare,
    call: (fn, args, fuel) => {
      if (!live) return terminated(fn)
      const call = prepare(fn)
      return call === undefined ? new FunctionNotFound({ function: fn }) : call(args, fuel)
    },
    read: (offset, length) => bounds("readMemory", offset, length) ?? new Uint8Array(memory!.buffer, offset, length).slice(),
    write: (offset, bytes) => {
      const err = bounds("writeMemory", offset, bytes.byteLength)
      if (err === undefined) new Uint8Array(memory!.buffer).set(bytes, offset)
      return err
    },
    snapshot,
    restore,
    terminate: () => {
      live = false
    }
  }
}

/**
 * Runs the start function a fuel rewrite deferred (`START_EXPORT`, wasm-binary
 * `FuelOptions.deferStart`) with the fuel the counter starts with: running
 * out of it is `FuelExhausted { function: "(start)", fuel }`, another
 * exception is mapped as a call of `(start)`; `undefined` when it returned
 * (or the module has no deferred start).
 */
const runDeferredStart = <E extends Error>(live: LiveInstance<E>, config: InstanceConfig<E>): Trap | FuelExhausted | E | undefined => {
  const start = live.exports[START_EXPORT]
  if (typeof start !== "function") return undefined
  const fuel = live.fuel === undefined ? undefined : Number(live.fuel.value as bigint)
  try {
    ;(start as () => unknown)()
    return undefined
  } catch (e) {
    if (live.fuel !== undefined && (live.fuel.value as bigint) < 0n) {
      return new FuelExhausted({ function: "(start)", fuel: fuel ?? 0 })
    }
    return config.mapThrown?.("(start)", e) ?? mapCallError("(start)", e)
  }
}

/**
 * Instantiates `module` (a `WebAssembly.Module`: compiled here, precompiled
 * in a bundle, or posted to a worker) with `imports`, creating the imported
 * memory `config.memory` asks for, and checks the memory budget. Synchronous
 * (`new WebAssembly.Instance` generates no code, so it also runs where
 * runtime compilation is forbidden). Never throws.
 */
export const instantiate = <E extends Error = never>(
  module: unknown,
  imports: WebAssembly.Imports | HostImports,
  config: InstanceConfig<E> = {}
): LiveInstance<E> | InstantiateError<E> => {
  if (!(module instanceof WebAssembly.Module)) {
    return new InstantiationError({ reason: config.notAModule ?? "not a WebAssembly.Module" })
  }
  let importObject = imports as WebAssembly.Imports
  let instance: WebAssembly.Instance
  try {
    importObject = withMemory(importObject, config.memory)
    instance = new WebAssembly.Instance(module, importObject)
  } catch (e) {
    return instantiationError(e) ?? config.mapThrown?.("(start)", e) ?? mapCallError("(start)", e)
  }
  const live = fromInstance(instance, importObject, config)
  const started = runDeferredStart(live, config)
  if (started !== undefined) {
    live.terminate()
    return started
  }
  const bytes = live.memoryBytes()
  if (config.memoryLimit !== undefined && bytes > config.memoryLimit) {
    live.terminate()
    return new MemoryExceeded({ agentId: config.agentId ?? "instantiate", used: bytes, limit: config.memoryLimit })
  }
  return live
}

// -----------------------------------------------------------------------------
// Effect wrappers (in-process engines)
// -----------------------------------------------------------------------------

/** A value-or-error as an Effect: an `Error` fails, anything else succeeds. */
const lift = <A, Err extends Error>(value: A | Err): Effect.Effect<A, Err> =>
  value instanceof Error ? Effect.fail(value as Err) : Effect.succeed(value as A)

/** The port's `WasmInstance` over a live instance (with the prepared-call path `prepare`). */
export const toWasmInstance = (live: LiveInstance): WasmInstance => ({
  invoke: (fn, args, options) => Effect.suspend(() => lift<InvokeOutcome, CallError>(live.call(fn, args, options?.fuel))),
  prepare: live.prepare as (fn: string) => PreparedInvoke | undefined,
  memoryBytes: Effect.sync(live.memoryBytes),
  readMemory: (offset, length) => Effect.suspend(() => lift<Uint8Array, Trap>(live.read(offset, length))),
  writeMemory: (offset, bytes) => Effect.suspend(() => lift<void, Trap>(live.write(offset, bytes))),
  snapshot: Effect.suspend(() => lift<EngineState, Trap>(live.snapshot())),
  restore: (state) => Effect.suspend(() => lift<void, Trap | MemoryExceeded>(live.restore(state))),
  terminate: Effect.sync(live.terminate)
})

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
    const live = instantiate(compiled.handle, options.imports, {
      memory: options.memory,
      memoryLimit: options.memoryLimit,
      agentId: options.agentId,
      notAModule
    })
    return live instanceof Error ? Effect.fail(live) : Effect.succeed(toWasmInstance(live))
  })

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
