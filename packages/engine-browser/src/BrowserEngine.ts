/**
 * `BrowserEngine`: the `WasmEngine` port in a web page (DESIGN.md
 * "Platforms": Browser).
 *
 * Two modes, chosen from what the page can do (`detect()`), visible in the
 * typed capability record and in `BrowserEngine.mode`:
 * - `"workers"` — when the page is cross-origin isolated
 *   (`self.crossOriginIsolated`: served with `Cross-Origin-Opener-Policy:
 *   same-origin` and `Cross-Origin-Embedder-Policy: require-corp`, which
 *   `SharedArrayBuffer` needs): agents run in a pool of module Web Workers
 *   (`BrowserWorkerHost.ts`, `BrowserWorker.ts`) over engine-kit's
 *   SharedArrayBuffer + Atomics call path — the worker blocks in `Atomics.wait`, the
 *   page never blocks (`Atomics.waitAsync`, or posted messages where that is
 *   missing). Capabilities: `workers`, `preemptiveTimeout`, `sharedMemory`.
 * - `"inPage"` — otherwise: agents run on the page's thread (the same
 *   executor over engine-kit's in-thread `Instance`, no workers). No preemption: a runaway call is stopped by fuel
 *   only (`preemptiveTimeout: false`), so give agents `fuel` there. Instances offer
 *   the synchronous callers `prepare` / `prepareDirect`, so the runtime calls an
 *   idle agent in one synchronous step, as on engine-native (≈ 0.25 µs per
 *   `runtime.invoke` in Chromium with `BrowserScheduler.layer`).
 * Asking for what the page cannot do (`mode: "workers"` on a page that is
 * not isolated, `channel: "shared"` without `Atomics.waitAsync`) fails with
 * `BrowserUnsupported`, naming the missing header or setting;
 * `requireCapabilities` does the same for any capability.
 *
 * Same behaviour as `NativeEngine` from the outside — values (i64 as
 * `bigint`, multi-value as arrays), `memoryBytes` after every call, error
 * mapping (WebAssembly JS API §"Error Objects"): `CompileError`;
 * `InstantiationError` for a missing or ill-typed import; `Trap` with V8's
 * message (also "call stack exhausted", "host function threw: …");
 * `MemoryExceeded` when the initial memory is above the budget;
 * `FunctionNotFound`; `Trap` "instance terminated" after `terminate`. Plus:
 *
 * - Timeouts (`InvokeOptions.timeoutMs`, `InstantiateOptions.timeoutMs` for
 *   the start function, function "(start)"): `Timeout { function, timeoutMs }`
 *   is reported at the deadline and the worker is terminated; the agent is
 *   left terminated (the domain evicts it) and the worker's other agents come
 *   back on a fresh worker (`RecoveryPolicy`). Chromium lets a terminated
 *   worker's WebAssembly loop run about 2 s more — it costs a core, never the
 *   page — so calls with fuel are the exact stop and terminate the last
 *   resort.
 * - Fuel: for modules instrumented with the `agent-runtime:fuel` global,
 *   `InvokeOptions.fuel` is set before the call; `fuelRemaining` is reported;
 *   a trap with the global below zero is `FuelExhausted { function, fuel }`.
 * - WASI preview1 through `@bjorn3/browser_wasi_shim` (`BrowserWasi.ts`):
 *   `output(agentId)` gives stdout/stderr and the exit code.
 * - A worker that dies (uncaught error, script that failed to load) fails
 *   its request in flight with `Trap` "the worker running the instance was
 *   lost: …" and its other agents are recovered.
 *
 * The engine is engine-kit's `WorkerEngine`; this package gives its
 * `WorkerHost` (`BrowserWorkerHost.ts`), its WASI (`BrowserWasi.ts`), the
 * page's environment and the capability record.
 *
 * Host imports stay on the page: a guest's call to one is proxied
 * synchronously from the worker. Host functions may return numbers, bigints,
 * booleans, `undefined` or arrays of them. In worker mode only host
 * functions, numbers, bigints and shared `WebAssembly.Memory` objects can be
 * imported (→ `InstantiationError` naming the import otherwise); in-page
 * mode takes any import value. A memory the module imports and the host
 * does not provide (`InstantiateOptions.memory`) is created in the executor
 * with the agent's budget as its maximum.
 *
 * Units: bytes (1 page = 64 KiB), ms, fuel units.
 *
 * @example
 * ```ts
 * const program = Effect.gen(function*() {
 *   const engine = yield* WasmEngine
 *   const compiled = yield* engine.compile(bytes, hash)
 *   const agent = yield* engine.instantiate(compiled, { agentId, memoryLimit: 16 * 2 ** 20, imports: {} })
 *   return yield* agent.invoke("spin", [], { timeoutMs: 100 }) // Timeout at ~100 ms; the page stays responsive
 * }).pipe(Effect.provide(BrowserEngine.layer))
 * ```
 *
 * @since 0.1.0
 */
import type { AgentId, EngineCapabilities, WasmEngineShape } from "@agent-runtime/domain"
import { WasmEngine } from "@agent-runtime/domain"
import { CallChannel, WorkerEngine, type WorkerEngineOptions, type WorkerEngineShape } from "@agent-runtime/engine-kit"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Schema from "effect/Schema"
import * as BrowserWasi from "./BrowserWasi.js"
import * as BrowserWorkerHost from "./BrowserWorkerHost.js"

export type { RecoveryPolicy } from "@agent-runtime/engine-kit"

// -- environment and capabilities ---------------------------------------------

/** What the page offers, read from its globals (`detect`). */
export interface BrowserEnvironment {
  /** `self.crossOriginIsolated` (COOP `same-origin` + COEP `require-corp`). */
  readonly crossOriginIsolated: boolean
  /** `SharedArrayBuffer` exists (only when isolated, in current browsers). */
  readonly sharedArrayBuffer: boolean
  /** A `Worker` constructor exists. */
  readonly workers: boolean
  /** `Atomics.waitAsync` exists (the non-blocking shared call path). */
  readonly waitAsync: boolean
  /** `indexedDB` exists (missing or refused in some private modes). */
  readonly indexedDb: boolean
  /** `BroadcastChannel` exists. */
  readonly broadcastChannel: boolean
}

/** Reads the page's environment. */
export const detect = (): BrowserEnvironment => {
  const g = globalThis as unknown as Record<string, unknown>
  return {
    crossOriginIsolated: g["crossOriginIsolated"] === true,
    sharedArrayBuffer: typeof SharedArrayBuffer === "function",
    workers: typeof g["Worker"] === "function",
    waitAsync: CallChannel.hasWaitAsync(),
    indexedDb: typeof g["indexedDB"] === "object" && g["indexedDB"] !== null,
    broadcastChannel: typeof g["BroadcastChannel"] === "function"
  }
}

/** The headers a page needs for worker mode (HTML §"Cross-origin isolation"). */
export const ISOLATION_HEADERS = {
  "Cross-Origin-Opener-Policy": "same-origin",
  "Cross-Origin-Embedder-Policy": "require-corp"
} as const

const isolationHint =
  "serve the page with the headers `Cross-Origin-Opener-Policy: same-origin` and `Cross-Origin-Embedder-Policy: require-corp` (e.g. Vite `server.headers`) so that `self.crossOriginIsolated` is true"

/** Something the page cannot do was asked for. `requirement` names it; `reason` says what is missing and how to fix it. */
export class BrowserUnsupported extends Schema.TaggedError<BrowserUnsupported>()("BrowserUnsupported", {
  requirement: Schema.String,
  reason: Schema.String
}) {
  override get message() {
    return `${this.requirement} is not available on this page: ${this.reason}`
  }
}

/** Where agents run. */
export type BrowserMode = "workers" | "inPage"

/** Why each capability is what it is, in words (for dashboards and errors). */
export const explain = (env: BrowserEnvironment): Readonly<Record<keyof EngineCapabilities, string>> => {
  const isolated = env.crossOriginIsolated && env.sharedArrayBuffer && env.workers
  const why = !env.workers
    ? "this realm has no Worker constructor"
    : !env.crossOriginIsolated
      ? `the page is not cross-origin isolated: ${isolationHint}`
      : !env.sharedArrayBuffer
        ? "SharedArrayBuffer is missing although the page is isolated"
        : "the page is cross-origin isolated"
  return {
    workers: isolated
      ? "agents run in module Web Workers (the page is cross-origin isolated)"
      : `agents run in-page: ${why}`,
    preemptiveTimeout: isolated
      ? "a call past its deadline is reported as Timeout and its worker terminated"
      : `no preemption in-page (${why}); fuel stops runaway calls`,
    fuel: "modules instrumented with the agent-runtime:fuel global are metered",
    wasi: "WASI preview1 through @bjorn3/browser_wasi_shim",
    sharedMemory:
      env.sharedArrayBuffer && env.crossOriginIsolated
        ? "shared linear memories can be created (SharedArrayBuffer)"
        : `no shared memories: ${why}`,
    runtimeCompile: "WebAssembly.compile is available",
    snapshots: "linear memory and exported mutable globals are captured and restored",
    dirtyPages: isolated
      ? "with recovery tracking on (the default), modules get the dirty-page write barrier: only written pages are compared after a call"
      : `no recovery tracking in-page (${why}): no write barrier`
  }
}

/** The capability record of a mode in an environment. */
export const capabilitiesFor = (env: BrowserEnvironment, mode: BrowserMode): EngineCapabilities => ({
  workers: mode === "workers",
  preemptiveTimeout: mode === "workers",
  fuel: true,
  wasi: true,
  sharedMemory: env.sharedArrayBuffer && env.crossOriginIsolated,
  runtimeCompile: true,
  snapshots: true
})

/**
 * Fails with `BrowserUnsupported` unless every capability set in `wanted` is
 * available, naming what is missing (e.g. the COOP/COEP headers for `workers`).
 */
export const requireCapabilities = (
  capabilities: EngineCapabilities,
  wanted: Partial<Record<keyof EngineCapabilities, true>>,
  env: BrowserEnvironment = detect()
): Effect.Effect<void, BrowserUnsupported> => {
  const reasons = explain(env)
  for (const key of Object.keys(wanted) as Array<keyof EngineCapabilities>) {
    if (wanted[key] === true && !capabilities[key]) {
      return Effect.fail(new BrowserUnsupported({ requirement: `capability ${key}`, reason: reasons[key] }))
    }
  }
  return Effect.void
}

// -- options and service --------------------------------------------------------

/** Settings of a browser engine (`maxThreads`, `channelBytes`, `recovery`, `snapshotMaxBytes`: `WorkerEngineOptions`). */
export interface BrowserEngineOptions extends WorkerEngineOptions {
  /** `"auto"` (default): workers when the page is cross-origin isolated, else in-page. */
  readonly mode?: BrowserMode | "auto" | undefined
  /** Former name of `maxThreads` (used when `maxThreads` is not set). */
  readonly workers?: number | undefined
  /** Call path: `"shared"` (default where `Atomics.waitAsync` exists) or `"message"`. */
  readonly channel?: CallChannel.ChannelKind | undefined
  /** WASI settings (arguments, environment, an in-memory `/`). */
  readonly wasi?: BrowserWasi.WasiOptions | undefined
  /** Starts one worker running `BrowserWorker` (default: the module worker next to this file). */
  readonly createWorker?: (() => BrowserWorkerHost.WorkerLike) | undefined
  /** What the page offers (default `detect()`); tests and diagnostics may pass another. */
  readonly environment?: BrowserEnvironment | undefined
}

/** The browser engine: the `WasmEngine` port plus what only it offers. */
export interface BrowserEngineShape extends WorkerEngineShape {
  readonly mode: BrowserMode
  /** The call path: `"shared"`, `"message"` (workers) or `"inPage"`. */
  readonly transport: CallChannel.ChannelKind | "inPage"
  readonly environment: BrowserEnvironment
  /** Why each capability is what it is. */
  readonly reasons: Readonly<Record<keyof EngineCapabilities, string>>
  /** What a WASI agent wrote and its exit code (its latest instance); `undefined` if it has none. */
  readonly output: (agentId: AgentId | string) => BrowserWasi.WasiOutput | undefined
}

/** The browser engine's own service (the layers provide it next to `WasmEngine`). */
export class BrowserEngine extends Context.Service<BrowserEngine, BrowserEngineShape>()(
  "@agent-runtime/engine-browser/BrowserEngine"
) {}

// -- the engine -------------------------------------------------------------------

/**
 * Builds a browser engine. Fails with `BrowserUnsupported` when `options`
 * ask for something the page cannot do. Call `shutdown` when done (the
 * layers do).
 */
export const make = (options: BrowserEngineOptions = {}): Effect.Effect<BrowserEngineShape, BrowserUnsupported> =>
  Effect.suspend(() => {
    const environment = options.environment ?? detect()
    const canWork = environment.workers && environment.sharedArrayBuffer && environment.crossOriginIsolated
    const wanted = options.mode ?? "auto"
    if (wanted === "workers" && !canWork) {
      return Effect.fail(
        new BrowserUnsupported({ requirement: 'mode "workers"', reason: explain(environment).workers })
      )
    }
    const mode: BrowserMode = wanted === "auto" ? (canWork ? "workers" : "inPage") : wanted
    if (mode === "workers" && options.channel === "shared" && !environment.waitAsync) {
      return Effect.fail(
        new BrowserUnsupported({
          requirement: 'channel "shared"',
          reason: 'Atomics.waitAsync is missing in this browser, and the page must never block: use channel "message"'
        })
      )
    }
    return Effect.succeed(build(options, environment, mode))
  })

const build = (
  options: BrowserEngineOptions,
  environment: BrowserEnvironment,
  mode: BrowserMode
): BrowserEngineShape => {
  const wasi = BrowserWasi.makeHost(options.wasi)
  const transport = mode === "inPage" ? "inPage" : (options.channel ?? (environment.waitAsync ? "shared" : "message"))
  const engine = WorkerEngine.make<BrowserWasi.WasiSpec>({
    ...options,
    maxThreads: options.maxThreads ?? options.workers,
    platform: "Browser",
    capabilities: capabilitiesFor(environment, mode),
    name: "the browser engine",
    host: BrowserWorkerHost.make(options.createWorker),
    transport,
    inPage: BrowserWasi.executorPlatform,
    wasi: wasi.host,
    validate: true
  })
  return {
    ...engine,
    mode,
    transport,
    environment,
    reasons: explain(environment),
    output: (agentId) => wasi.output(agentId as string)
  }
}

/**
 * A scoped browser engine with `options`: provides `WasmEngine` and
 * `BrowserEngine`; terminates its workers with its scope. Its worker threads
 * are `options.maxThreads` (or `workers`), else the program's
 * `ResourcePoolConfig.maxThreads` (default 4) — the same setting the
 * runtime's pool takes them from.
 */
export const layerWith = (
  options: BrowserEngineOptions = {}
): Layer.Layer<WasmEngine | BrowserEngine, BrowserUnsupported> => {
  const browser = Layer.effect(
    BrowserEngine,
    Effect.acquireRelease(Effect.flatMap(WorkerEngine.withPoolThreads(options), make), (engine) => engine.shutdown)
  )
  return Layer.effect(
    WasmEngine,
    Effect.map(Effect.service(BrowserEngine), (engine): WasmEngineShape => engine)
  ).pipe(Layer.provideMerge(browser))
}

/** The browser `WasmEngine` layer, mode `"auto"` (never fails: in-page when the page is not isolated). */
export const layer: Layer.Layer<WasmEngine | BrowserEngine> = Layer.orDie(layerWith())
