/**
 * `EdgeEngine`: the `WasmEngine` port for Cloudflare Workers-style edge
 * runtimes (platform `Edge`; DESIGN.md "Platforms": Edge). It never compiles:
 * it instantiates only the precompiled `WebAssembly.Module`s of a
 * `BundleRegistry` made from the Worker's bundle (`agent-runtime bundle`).
 *
 * Why: workerd (like Cloudflare's production runtime) refuses code generation
 * at run time — `WebAssembly.compile`, `new WebAssembly.Module(bytes)` and
 * `WebAssembly.instantiate(bytes)` fail with "Wasm code generation disallowed
 * by embedder". Verification, the memory cap and fuel instrumentation happen
 * at build time instead (see `BundleManifest`, `BundleBuilder` in the
 * `@agent-runtime/engine-edge/bundle` entry).
 *
 * How the domain meets the bundle (see `BundleManifest` "Keys"):
 * - `validate(bytes)` (at `loadModule`): the bytes' `ModuleHash` must be a
 *   bundled module — else `CompileError` `[edge:not-bundled]` explaining the
 *   platform rule;
 * - `compile(bytes, hash)` (at spawn, with the bytes the domain rewrote for
 *   the agent's config, or the module as loaded): the module `hash` must be
 *   bundled (`[edge:not-bundled]`), and the digest of `bytes` must be one of
 *   its variants — else `[edge:no-variant]` listing the bundled variants'
 *   keys (the runtime's memory cap / fuel / state-export settings differ
 *   from the bundle's, or the bytes were changed), or
 *   `[edge:foreign-variant]` when the digest is another module's variant.
 *   It returns the variant's bundled `WebAssembly.Module`.
 * - `instantiate` runs `new WebAssembly.Instance(module, imports)` (allowed:
 *   it generates no code), first creating an imported memory the runtime
 *   asks for (`InstantiateOptions.memory`, the budget as its maximum). `LinkError`/`TypeError` → `InstantiationError`,
 *   a trap in the start function → `Trap`, linear memory above the budget →
 *   `MemoryExceeded`. The instance (fuel, snapshots, error mapping, the
 *   prepared-call path) is `@agent-runtime/engine-kit`'s `Instance`.
 *   `instantiateSync` does the same synchronously (errors as values).
 *
 * Capabilities: no workers, no preemption (an isolate cannot interrupt its
 * own synchronous call: fuel is the CPU limit, and local workerd has no CPU
 * limit at all), fuel, no WASI, no shared memory, no runtime compile,
 * snapshots.
 *
 * @since 0.1.0
 */
import {
  CompileError,
  type CompiledModule,
  type EngineCapabilities,
  WasmEngine,
  type WasmEngineShape
} from "@agent-runtime/domain"
import { Instance } from "@agent-runtime/engine-kit"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import type { BundleError } from "./bundle/BundleError.js"
import { type BundleContents, type BundleRegistry, make as makeRegistry } from "./bundle/BundleRegistry.js"
import { codeDigest } from "./bundle/internal/digest.js"

/** What the edge engine can do. */
export const capabilities: EngineCapabilities = {
  workers: false,
  preemptiveTimeout: false,
  fuel: true,
  wasi: false,
  sharedMemory: false,
  runtimeCompile: false,
  snapshots: true
}

/** The platform rule, as every `[edge:not-bundled]` error states it. */
export const PLATFORM_RULE =
  "runtime compilation is forbidden on the edge (Wasm code generation is disallowed by the embedder); bundle the module with `agent-runtime bundle`"

const notBundled = (what: string) =>
  new CompileError({ reason: `[edge:not-bundled] ${what} is not in the bundle: ${PLATFORM_RULE}` })

/** The `InstantiationError` reason for a handle that is not a bundled `WebAssembly.Module`. */
const NOT_A_MODULE = "not a module of the edge engine's bundle"

/**
 * Builds the edge engine over a checked bundle registry. `instantiateSync`
 * is `instantiate` without the Effect (same instance, checks and errors, as
 * values; `new WebAssembly.Instance` generates no code), so the runtime
 * spawns an agent whose variant it has cached in one synchronous step.
 */
export const make = (registry: BundleRegistry): WasmEngineShape => ({
  platform: "Edge",
  capabilities,
  validate: (bytes) =>
    Effect.flatMap(codeDigest(bytes), (hash) =>
      registry.module(hash) === undefined ? Effect.fail(notBundled(`module ${hash}`)) : Effect.void
    ),
  compile: (bytes, hash) =>
    Effect.gen(function* () {
      const module = registry.module(hash)
      if (module === undefined) return yield* notBundled(`module ${hash}`)
      const digest = yield* codeDigest(bytes)
      const found = registry.variant(digest)
      if (found === undefined) {
        return yield* new CompileError({
          reason:
            `[edge:no-variant] ${module.name}@${module.version}: the bytes to compile (digest ${digest}) match no bundled variant ` +
            `(bundled: ${module.variants.flatMap((v) => [v.key, ...v.aliases]).join(", ")}). The runtime's memory cap, fuel or state-export settings ` +
            `differ from the bundle's, or the bytes were changed; add this agent config to the bundle and re-run \`agent-runtime bundle\``
        })
      }
      if (found.module.moduleHash !== hash) {
        return yield* new CompileError({
          reason: `[edge:foreign-variant] the bytes are variant ${found.variant.key} of ${found.module.name}@${found.module.version}, not of module ${hash}`
        })
      }
      const compiled: CompiledModule = { hash, byteLength: bytes.byteLength, handle: found.compiled }
      return compiled
    }),
  instantiate: (compiled, options) => Instance.instantiateWasm(compiled, options, NOT_A_MODULE),
  // the same instantiation without an Effect (it runs on the caller's thread): the runtime spawns in one step with it
  instantiateSync: (compiled, options) => Instance.instantiateSync(compiled, options, NOT_A_MODULE)
})

/** The edge `WasmEngine` layer over a registry already made. */
export const layer = (registry: BundleRegistry): Layer.Layer<WasmEngine> => Layer.succeed(WasmEngine, make(registry))

/** The edge `WasmEngine` layer over a bundle's contents (checked first; a bad bundle fails the layer with its `BundleError`). */
export const layerFromBundle = (contents: BundleContents): Layer.Layer<WasmEngine, BundleError> =>
  Layer.effect(WasmEngine, Effect.map(makeRegistry(contents), make))
