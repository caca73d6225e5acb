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

/** What the native engine can do. */
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
   * Snapshots through the dirty-page write barrier when the runtime saves
   * agents after every call (`capabilities.dirtyPages: "snapshotAfterCalls"`;
   * engine-kit `InstanceConfig.dirtyPages`): each snapshot copies only the
   * pages stored to since the previous one and returns the others as that
   * snapshot's own `Uint8Array`s — so the engine keeps one copy of every
   * agent's non-zero pages alive. Default off: on the 593-agent swarm with
   * `--db` (mostly one-page agents whose page changes on every call) it
   * measured slower — fewer copies, but each dearer with the kept copies on
   * the heap (BENCHMARKS.md, issue 13 item 7). It pays for agents with large
   * memories of which a call changes little.
   */
  readonly dirtyPages?: boolean | undefined
}

const NOT_A_MODULE = "not a module compiled by the native engine"

/** Builds the native engine (`instantiateSync` included: instantiation runs on the caller's thread). */
export const make = (options: Options = {}): WasmEngineShape => ({
  platform: "Native",
  capabilities: options.dirtyPages === true ? { ...capabilities, dirtyPages: "snapshotAfterCalls" } : capabilities,
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
