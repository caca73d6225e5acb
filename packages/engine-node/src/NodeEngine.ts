/**
 * `NodeEngine`: the `WasmEngine` port on Node `worker_threads` (DESIGN.md
 * "Platforms": Node). Agents run in a pool of workers, isolated from the host
 * thread; a call that runs past its deadline is stopped by terminating its
 * worker, and the other agents of that worker come back on a fresh one.
 *
 * Behaves like `NativeEngine` from the outside — same values (i64 as
 * `bigint`, multi-value as arrays, `results` always an array, `memoryBytes`
 * after every call) and same error mapping (WebAssembly JS API §"Error
 * Objects"): `CompileError`; `InstantiationError` for a missing or ill-typed
 * import; `Trap` with V8's message (incl. "call stack exhausted" for
 * unbounded recursion, "host function threw: …" for a host import's
 * exception); `MemoryExceeded` when the initial memory is above the budget;
 * `FunctionNotFound`; `Trap` "instance terminated" after `terminate`. Added by
 * workers:
 *
 * - `Timeout { function, timeoutMs }` when `InvokeOptions.timeoutMs` (or
 *   `InstantiateOptions.timeoutMs`, for the start function; function
 *   "(start)") passes. The agent is then left terminated (its calls fail with
 *   `Trap` "instance terminated"), so the domain evicts it. Interrupting the
 *   fiber of a running call preempts it the same way.
 * - Recovery of the other agents of a lost worker (`RecoveryPolicy`).
 * - `FuelExhausted { function, fuel }` / `fuelRemaining` for modules
 *   instrumented with the `agent-runtime:fuel` global (`InvokeOptions.fuel`).
 * - WASI preview1 (`NodeWasi.ts`): `output(agentId)` for stdout/stderr and the
 *   exit code; `proc_exit(0)` → normal return, `proc_exit(n)` → `Trap`
 *   "proc_exit(n)".
 *
 * The engine is engine-kit's `WorkerEngine` over `NodeWorkerHost` (workers)
 * and `NodeWasi` (WASI); the protocol, channel, executor and pool are the
 * kit's. Host imports stay on the host thread: a guest's call to one is
 * proxied synchronously from the worker (engine-kit `CallChannel`). Host functions may return
 * numbers, bigints, booleans, `undefined` or arrays of them; only host
 * functions, numbers, bigints and shared `WebAssembly.Memory` objects can be
 * imported (a non-shared memory, a table or a `WebAssembly.Global` cannot
 * cross to a worker → `InstantiationError` naming the import).
 *
 * Units: bytes (1 page = 64 KiB), ms, fuel units.
 *
 * @example
 * ```ts
 * const program = Effect.gen(function*() {
 *   const engine = yield* WasmEngine
 *   const compiled = yield* engine.compile(bytes, hash)
 *   const agent = yield* engine.instantiate(compiled, { agentId, memoryLimit: 16 * 2 ** 20, imports: {} })
 *   return yield* agent.invoke("spin", [], { timeoutMs: 100 }) // fails with Timeout after ~100 ms
 * }).pipe(Effect.provide(NodeEngine.layer))
 * ```
 *
 * @since 0.1.0
 */
import type { AgentId, EngineCapabilities, WasmEngineShape } from "@agent-runtime/domain"
import { layerPlatformServices, type PlatformServices, WasmEngine } from "@agent-runtime/domain"
import { CallChannel, WorkerEngine, type WorkerEngineOptions, type WorkerEngineShape } from "@agent-runtime/engine-kit"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import { hash } from "node:crypto"
import * as NodeWasi from "./NodeWasi.js"
import * as NodeWorkerHost from "./NodeWorkerHost.js"

export type { RecoveryPolicy } from "@agent-runtime/engine-kit"

/** Settings of a Node engine (`maxThreads`, `channelBytes`, `recovery`, `snapshotMaxBytes`: `WorkerEngineOptions`). */
export interface NodeEngineOptions extends WorkerEngineOptions {
  /** Former name of `maxThreads` (used when `maxThreads` is not set). */
  readonly workers?: number | undefined
  /** Call path: `"shared"` (SharedArrayBuffer + Atomics, default) or `"message"` (postMessage per call). */
  readonly channel?: CallChannel.ChannelKind | undefined
  /** WASI settings (preopened directories per agent). */
  readonly wasi?: NodeWasi.WasiOptions | undefined
  /** The worker script (default: `NodeWorker.js` next to this file, or `NodeWorker.ts` bundled with esbuild from source). */
  readonly workerUrl?: string | URL | undefined
}

/** The Node engine: the `WasmEngine` port plus what only workers can offer. */
export interface NodeEngineShape extends WorkerEngineShape {
  /** What a WASI agent wrote to stdout/stderr and its exit code (its latest instance); `undefined` if it has none. */
  readonly output: (agentId: AgentId | string) => NodeWasi.WasiOutput | undefined
}

/** The Node engine's own service (the layer provides it next to `WasmEngine`). */
export class NodeEngine extends Context.Service<NodeEngine, NodeEngineShape>()(
  "@agent-runtime/engine-node/NodeEngine"
) {}

/** What the Node engine can do. */
export const capabilities: EngineCapabilities = {
  workers: true,
  preemptiveTimeout: true,
  fuel: true,
  wasi: true,
  sharedMemory: true,
  runtimeCompile: true,
  snapshots: true
}

/**
 * Node's SHA-256 for the runtime's content addressing
 * (`PlatformServices.sha256Hex`): `node:crypto`'s one-shot `hash` (Node
 * ≥ 20.12), synchronous on the calling thread, the input neither copied nor
 * kept — ≈ 0.3 µs for a few bytes (a `createHash` object, `update` and
 * `digest` cost ≈ 1 µs) and ≈ 0.6 ms for 1 MB on the bench machine, where
 * WebCrypto's asynchronous digest first copies its input. Lowercase hex, 64
 * chars.
 */
export const sha256Hex = (bytes: Uint8Array): string => hash("sha256", bytes, "hex")

/** What Node gives the platform-free runtime (`PlatformServices`): `sha256Hex`. */
export const platformServices: PlatformServices = { sha256Hex }

/**
 * Provides Node's `PlatformServices` (`sha256Hex`). The Node engine's
 * layers include it; add it beside any other engine a program runs on Node
 * (the native engine is platform-free and cannot).
 */
export const layerPlatform: Layer.Layer<never> = layerPlatformServices(platformServices)

/** Builds a Node engine. Call `shutdown` when done (the layers do). */
export const make = (options: NodeEngineOptions = {}): NodeEngineShape => {
  const wasi = NodeWasi.makeHost(options.wasi)
  const engine = WorkerEngine.make<NodeWasi.WasiSpec>({
    ...options,
    maxThreads: options.maxThreads ?? options.workers,
    platform: "Node",
    capabilities,
    name: "the node engine",
    host: NodeWorkerHost.make(options.workerUrl),
    transport: options.channel ?? "shared",
    wasi: wasi.host
  })
  let shutdown: Promise<void> | undefined
  return {
    ...engine,
    output: (agentId) => wasi.output(agentId as string),
    shutdown: Effect.promise(() => (shutdown ??= Effect.runPromise(engine.shutdown).finally(wasi.dispose)))
  }
}

/**
 * A scoped Node engine with `options`: provides `WasmEngine` and
 * `NodeEngine`; shuts the pool down with its scope. Its worker threads are
 * `options.maxThreads` (or `workers`), else the program's
 * `ResourcePoolConfig.maxThreads` (default 4) — the same setting the
 * runtime's pool takes them from. Node's `PlatformServices` (`layerPlatform`:
 * `node:crypto` SHA-256 for `loadModule`) come with it.
 */
export const layerWith = (options: NodeEngineOptions = {}): Layer.Layer<WasmEngine | NodeEngine> => {
  const node = Layer.effect(
    NodeEngine,
    Effect.acquireRelease(Effect.map(WorkerEngine.withPoolThreads(options), make), (engine) => engine.shutdown)
  )
  return Layer.effect(
    WasmEngine,
    Effect.map(Effect.service(NodeEngine), (engine): WasmEngineShape => engine)
  ).pipe(Layer.provideMerge(node), Layer.merge(layerPlatform))
}

/** The Node `WasmEngine` layer with default options: `ResourcePoolConfig.maxThreads` workers (scoped: they end with the scope). */
export const layer: Layer.Layer<WasmEngine | NodeEngine> = layerWith()
