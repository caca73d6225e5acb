/**
 * `NativeEngine`: the `WasmEngine` port on the host's own `WebAssembly` API,
 * in-process (DESIGN.md "Platforms": Native). Works on any JavaScript host
 * with WebAssembly (Node, browsers, Deno, Bun); it is the fastest engine and
 * the reference the others are compared with.
 *
 * What it maps (WebAssembly JS API §"Error Objects"):
 * - `WebAssembly.CompileError` → `CompileError`;
 * - `WebAssembly.LinkError` (missing / ill-typed import) → `InstantiationError`;
 * - `WebAssembly.RuntimeError` (a trap: unreachable, divide by zero, out of
 *   bounds, …) → `Trap` with the engine's message;
 * - `RangeError: Maximum call stack size exceeded` (unbounded recursion) → `Trap` "call stack exhausted";
 * - an exception thrown by a host function → `Trap` naming it;
 * - linear memory above the budget after instantiation → `MemoryExceeded`.
 * Nothing a guest does escapes as an exception. The instance itself (fuel,
 * memory usage, snapshots, error mapping, the prepared-call path) is
 * `@agent-runtime/engine-kit`'s `Instance`, shared with every engine.
 *
 * Limits: calls run on the caller's thread and cannot be preempted
 * (`capabilities.preemptiveTimeout = false`); runaway guests are stopped by
 * fuel instead: for a module instrumented by `@agent-runtime/wasm-binary`'s
 * fuel rewrite (a mutable i64 global exported as `agent-runtime:fuel`), a
 * call with `InvokeOptions.fuel` sets the global first, reports what is left
 * in `fuelRemaining`, and a trap with the global below zero is
 * `FuelExhausted`. Memory usage is `memory.buffer.byteLength` of the
 * instance's exported (or imported) memory, reported after every call.
 *
 * @since 0.1.0
 */
import { type EngineCapabilities, WasmEngine, type WasmEngineShape } from "@agent-runtime/domain"
import { Instance } from "@agent-runtime/engine-kit"
import * as Layer from "effect/Layer"

/** What the native engine can do (`make()` adds `dirtyPages: "snapshotAfterCalls"` unless `dirtyPages: false`). */
export const capabilities: EngineCapabilities = {
  workers: false,
  preemptiveTimeout: false,
  fuel: true,
  wasi: false,
  sharedMemory: typeof SharedArrayBuffer !== "undefined",
  runtimeCompile: true,
  snapshots: true
}

/** Options of the native engine (all optional). */
export interface Options {
  /**
   * The dirty-page write barrier for runtimes that save agents after every
   * call (`capabilities.dirtyPages: "snapshotAfterCalls"`; engine-kit
   * `InstanceConfig.dirtyPages`): agents' variants record the pages their
   * stores write, and instances report what a call changed
   * (`WasmInstance.snapshotChanges`: the written pages as views of the
   * memory, nothing copied or kept between calls), so a repository with
   * `InstanceRepository.savePages` (SQLite) saves a delta instead of every
   * page. Default on (`false` turns it off): on the 593-agent swarm with
   * `--db` it measured faster (BENCHMARKS.md, issue 13 item 7). Runtimes that
   * do not save after calls never compile the barrier in (a loop of stores
   * runs ≈ 1.2× with it).
   */
  readonly dirtyPages?: boolean | undefined
}

/** The capabilities with the write barrier for runtimes that save after every call (the default). */
const withBarrier: EngineCapabilities = { ...capabilities, dirtyPages: "snapshotAfterCalls" }

const NOT_A_MODULE = "not a module compiled by the native engine"

/**
 * Builds the native engine (`instantiateSync` included: instantiation runs
 * on the caller's thread); `options.dirtyPages` (default on) as above.
 */
export const make = (options: Options = {}): WasmEngineShape => ({
  platform: "Native",
  capabilities: options.dirtyPages === false ? capabilities : withBarrier,
  validate: Instance.validate,
  compile: Instance.compile,
  instantiate: (compiled, options) => Instance.instantiateWasm(compiled, options, NOT_A_MODULE),
  // the same instantiation without an Effect: the runtime spawns in one synchronous step with it
  instantiateSync: (compiled, options) => Instance.instantiateSync(compiled, options, NOT_A_MODULE)
})

/** The native `WasmEngine` layer. */
export const layer: Layer.Layer<WasmEngine> = Layer.sync(WasmEngine, () => make())

/** The native `WasmEngine` layer with options. */
export const layerWith = (options: Options): Layer.Layer<WasmEngine> => Layer.sync(WasmEngine, () => make(options))
