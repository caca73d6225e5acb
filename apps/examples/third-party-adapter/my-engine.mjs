// A WasmEngine written outside this repository's engines, as a third party would: plain
// JavaScript over the host's raw WebAssembly JS API, importing only the published packages
// `@agent-runtime/domain` (the port, its error types) and `@agent-runtime/engine-kit`
// (the in-thread instance: fuel, memory cap checks, snapshots, error mapping).
//
// - validate: `WebAssembly.validate`; a module it refuses → the domain's `CompileError`
//   carrying the engine's own reason (from `WebAssembly.compile`).
// - compile: `WebAssembly.compile` → `CompiledModule { hash, byteLength (bytes), handle }`;
//   failure → `CompileError`. Every compile is counted (`compiledModules()`).
// - instantiate: engine-kit's `Instance.instantiateWasm` over the compiled `WebAssembly.Module`.
//
// Capabilities: in-process (no workers, no preemption: runaway guests stop by fuel),
// snapshots yes, WASI no. Run the conformance suite on it from your own vitest:
//
//   import { suite } from "@agent-runtime/conformance"
//   import { MyEngine } from "./my-engine.mjs"
//   suite("my-engine", MyEngine.layer)
import { CompileError, WasmEngine } from "@agent-runtime/domain"
import { Instance } from "@agent-runtime/engine-kit"
import { Effect, Layer } from "effect"

/** @type {import("@agent-runtime/domain").EngineCapabilities} */
const capabilities = {
  workers: false,
  preemptiveTimeout: false,
  fuel: true,
  wasi: false,
  sharedMemory: typeof SharedArrayBuffer !== "undefined",
  runtimeCompile: true,
  snapshots: true
}

const reasonOf = (e) => (e instanceof Error ? e.message : String(e))
let compiled = 0

/** @returns {import("@agent-runtime/domain").WasmEngineShape} */
const make = () => ({
  platform: "Native",
  capabilities,
  validate: (bytes) =>
    WebAssembly.validate(bytes)
      ? Effect.void
      : Effect.flatMap(
        Effect.tryPromise({ try: () => WebAssembly.compile(bytes), catch: (e) => new CompileError({ reason: reasonOf(e) }) }),
        () => Effect.fail(new CompileError({ reason: "WebAssembly.validate refused the module" }))
      ),
  compile: (bytes, hash) =>
    Effect.tryPromise({
      try: () => WebAssembly.compile(bytes),
      catch: (e) => new CompileError({ reason: reasonOf(e) })
    }).pipe(Effect.map((module) => {
      compiled++
      return { hash, byteLength: bytes.byteLength, handle: module }
    })),
  instantiate: (module, options) => Instance.instantiateWasm(module, options, "not a module compiled by my-engine")
})

/** The third-party engine: `MyEngine.layer` provides the domain's `WasmEngine`. */
export const MyEngine = {
  capabilities,
  make,
  /** @type {Layer.Layer<WasmEngine>} */
  layer: Layer.sync(WasmEngine, make),
  /** How many modules this engine compiled in this process (shows the suite really ran on it). */
  compiledModules: () => compiled
}
