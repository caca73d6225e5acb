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
 *   (`WorkerPool.ts`, `BrowserWorker.ts`) over a SharedArrayBuffer + Atomics
 *   call path (`CallChannel.ts`) — the worker blocks in `Atomics.wait`, the
 *   page never blocks (`Atomics.waitAsync`, or posted messages where that is
 *   missing). Capabilities: `workers`, `preemptiveTimeout`, `sharedMemory`.
 * - `"inPage"` — otherwise: agents run on the page's thread (the same
 *   executor, no workers). No preemption: a runaway call is stopped by fuel
 *   only (`preemptiveTimeout: false`), so give agents `fuel` there.
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
import {
  type AgentId,
  CompileError,
  type CompiledModule,
  type EngineCapabilities,
  type EngineState,
  FuelExhausted,
  FunctionNotFound,
  InstantiationError,
  type InvokeOutcome,
  MemoryExceeded,
  type ModuleHash,
  Timeout,
  Trap,
  WasmEngine,
  type WasmEngineShape,
  type WasmInstance,
  type WasmValue
} from "@agent-runtime/domain"
import { FUEL_EXPORT } from "@agent-runtime/wasm-binary"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Schema from "effect/Schema"
import { type WasiOptions, type WasiOutput, WASI_MODULE, WasiOutputStore } from "./BrowserWasi.js"
import { type ChannelKind, DEFAULT_CHANNEL_BYTES, hasWaitAsync } from "./CallChannel.js"
import {
  type ErrorWire,
  type ImportSpec,
  OP_INVOKE,
  OP_READ,
  OP_RESTORE,
  OP_SNAPSHOT,
  OP_WRITE,
  type StateWire,
  type Tracking
} from "./internal/Protocol.js"
import {
  type AgentRecord,
  type HostFn,
  instantiateRequest,
  type OpResult,
  type PoolStats,
  type WorkerLike,
  WorkerPool
} from "./WorkerPool.js"

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
    waitAsync: hasWaitAsync(),
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
    workers: isolated ? "agents run in module Web Workers (the page is cross-origin isolated)" : `agents run in-page: ${why}`,
    preemptiveTimeout: isolated
      ? "a call past its deadline is reported as Timeout and its worker terminated"
      : `no preemption in-page (${why}); fuel stops runaway calls`,
    fuel: "modules instrumented with the agent-runtime:fuel global are metered",
    wasi: "WASI preview1 through @bjorn3/browser_wasi_shim",
    sharedMemory: env.sharedArrayBuffer && env.crossOriginIsolated
      ? "shared linear memories can be created (SharedArrayBuffer)"
      : `no shared memories: ${why}`,
    runtimeCompile: "WebAssembly.compile is available",
    snapshots: "linear memory and exported mutable globals are captured and restored"
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

/**
 * Recovery of the other agents of a worker that is terminated (timeout) or
 * dies: `"snapshot"` restores their state after their last completed call;
 * `"restart"` re-instantiates them fresh; `"auto"` (default) snapshots while
 * an agent's linear memory is at most `snapshotMaxBytes` (default 1 MiB).
 * Only exported mutable globals are captured (the domain's rewrite exports
 * internal ones).
 */
export type RecoveryPolicy = "auto" | "snapshot" | "restart"

/** Settings of a browser engine. */
export interface BrowserEngineOptions {
  /** `"auto"` (default): workers when the page is cross-origin isolated, else in-page. */
  readonly mode?: BrowserMode | "auto" | undefined
  /** Number of workers (default `navigator.hardwareConcurrency`, at most 8; started lazily). */
  readonly workers?: number | undefined
  /** Call path: `"shared"` (default where `Atomics.waitAsync` exists) or `"message"`. */
  readonly channel?: ChannelKind | undefined
  /** Payload region of a channel in bytes (default 256 KiB); larger messages are posted. */
  readonly channelBytes?: number | undefined
  /** Recovery of a lost worker's other agents (default `"auto"`). */
  readonly recovery?: RecoveryPolicy | undefined
  /** `"auto"` recovery: largest linear memory (bytes) still tracked (default 1 MiB). */
  readonly snapshotMaxBytes?: number | undefined
  /** WASI settings (arguments, environment, an in-memory `/`). */
  readonly wasi?: WasiOptions | undefined
  /** Starts one worker running `BrowserWorker` (default: the module worker next to this file). */
  readonly createWorker?: (() => WorkerLike) | undefined
  /** What the page offers (default `detect()`); tests and diagnostics may pass another. */
  readonly environment?: BrowserEnvironment | undefined
}

/** The browser engine: the `WasmEngine` port plus what only it offers. */
export interface BrowserEngineShape extends WasmEngineShape {
  readonly mode: BrowserMode
  /** The call path: `"shared"`, `"message"` (workers) or `"inPage"`. */
  readonly transport: ChannelKind | "inPage"
  readonly environment: BrowserEnvironment
  /** Why each capability is what it is. */
  readonly reasons: Readonly<Record<keyof EngineCapabilities, string>>
  /** What a WASI agent wrote and its exit code (its latest instance); `undefined` if it has none. */
  readonly output: (agentId: AgentId | string) => WasiOutput | undefined
  /** Workers, their agents and how often each was replaced. */
  readonly stats: () => PoolStats
  /** Fault injection: makes the worker running `instance` throw an uncaught error; its agents are recovered. */
  readonly crashWorker: (instance: WasmInstance) => Effect.Effect<void>
  /** Terminates every worker. Idempotent. */
  readonly shutdown: Effect.Effect<void>
}

/** The browser engine's own service (the layers provide it next to `WasmEngine`). */
export class BrowserEngine extends Context.Service<BrowserEngine, BrowserEngineShape>()(
  "@agent-runtime/engine-browser/BrowserEngine"
) {}

const MiB = 1024 * 1024

/** The default worker: the module worker script beside this file (Vite and other bundlers follow this URL). */
const defaultWorker = (): WorkerLike =>
  new Worker(new URL("./BrowserWorker.js", import.meta.url), { type: "module", name: "agent-runtime" }) as unknown as WorkerLike

// -- error mapping ----------------------------------------------------------------

const errorFrom = (agentId: string, error: ErrorWire): Trap | FunctionNotFound | FuelExhausted | MemoryExceeded => {
  switch (error[0]) {
    case "Trap":
      return new Trap({ function: error[1], reason: error[2] })
    case "FunctionNotFound":
      return new FunctionNotFound({ function: error[1] })
    case "FuelExhausted":
      return new FuelExhausted({ function: error[1], fuel: error[2] })
    case "Exit":
      return new Trap({ function: error[1], reason: `proc_exit(${error[2]}): the program exited with code ${error[2]}` })
    case "MemoryExceeded":
      return new MemoryExceeded({ agentId, used: error[1], limit: error[2] })
    case "InstantiationError":
      return new Trap({ function: "(instantiate)", reason: error[1] })
  }
}

const trapFrom = (fn: string, agentId: string, result: Exclude<OpResult, { kind: "ok" }>): Effect.Effect<never, Trap> => {
  switch (result.kind) {
    case "error": {
      const e = errorFrom(agentId, result.error)
      return Effect.fail(e instanceof Trap ? e : new Trap({ function: fn, reason: e.message }))
    }
    case "gone":
      return Effect.fail(new Trap({ function: fn, reason: `instance terminated (${result.reason})` }))
    case "lost":
      return Effect.fail(new Trap({ function: fn, reason: `the worker running the instance was lost: ${result.reason}` }))
    case "timeout":
      return Effect.fail(new Trap({ function: fn, reason: "timed out" }))
    case "interrupted":
      return Effect.interrupt
  }
}

const wasmValueOk = (v: unknown): boolean => v === null || typeof v === "number" || typeof v === "bigint"

const stateFromWire = (wire: StateWire): EngineState => {
  const [memoryBytes, indexes, data, names, values] = wire
  const globals: Record<string, number | bigint> = {}
  names.forEach((name, i) => (globals[name] = values[i]!))
  return { memoryBytes, pages: indexes.map((index, i) => ({ index, data: data[i]! })), globals }
}

const stateToWire = (state: EngineState): StateWire => [
  state.memoryBytes,
  state.pages.map((p) => p.index),
  state.pages.map((p) => p.data),
  Object.keys(state.globals),
  Object.values(state.globals)
]

const defaultWorkers = (): number => {
  const n = (globalThis as unknown as { navigator?: { hardwareConcurrency?: number } }).navigator?.hardwareConcurrency
  return Math.max(1, Math.min(8, typeof n === "number" && n > 0 ? n : 4))
}

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
        new BrowserUnsupported({ requirement: "mode \"workers\"", reason: explain(environment).workers })
      )
    }
    const mode: BrowserMode = wanted === "auto" ? (canWork ? "workers" : "inPage") : wanted
    if (mode === "workers" && options.channel === "shared" && !environment.waitAsync) {
      return Effect.fail(
        new BrowserUnsupported({
          requirement: "channel \"shared\"",
          reason: "Atomics.waitAsync is missing in this browser, and the page must never block: use channel \"message\""
        })
      )
    }
    return Effect.succeed(build(options, environment, mode))
  })

const build = (options: BrowserEngineOptions, environment: BrowserEnvironment, mode: BrowserMode): BrowserEngineShape => {
  const recovery = options.recovery ?? "auto"
  const tracking: Tracking = mode === "inPage" || recovery === "restart"
    ? [0, 0]
    : recovery === "snapshot"
    ? [1, 0]
    : [2, options.snapshotMaxBytes ?? MiB]
  const outputs = new WasiOutputStore()
  const transport = mode === "inPage" ? "inPage" : options.channel ?? (environment.waitAsync ? "shared" : "message")
  const pool = new WorkerPool({
    size: options.workers ?? defaultWorkers(),
    transport,
    channelBytes: options.channelBytes ?? DEFAULT_CHANNEL_BYTES,
    createWorker: options.createWorker ?? defaultWorker,
    fuelExport: FUEL_EXPORT,
    onOutput: (record, output) => outputs.append(record.agentId, output)
  })
  const capabilities = capabilitiesFor(environment, mode)
  const recordOf = new WeakMap<WasmInstance, AgentRecord>()

  const call = (record: AgentRecord, request: unknown, timeoutMs?: number) =>
    Effect.promise((signal) => record.slot.call(record, request, mode === "workers" ? timeoutMs : undefined, signal))

  const makeInstance = (record: AgentRecord): WasmInstance => {
    const invoke: WasmInstance["invoke"] = (fn, args, invokeOptions) =>
      Effect.suspend(() => {
        for (let i = 0; i < args.length; i++) {
          if (!wasmValueOk(args[i])) {
            return Effect.fail(
              new Trap({ function: fn, reason: `type error at the JS boundary: argument ${i} (${typeof args[i]}) cannot cross to a worker` })
            )
          }
        }
        const fuel = invokeOptions?.fuel
        const timeoutMs = invokeOptions?.timeoutMs
        return Effect.flatMap(
          call(record, [OP_INVOKE, record.id, fn, args, fuel ?? null], timeoutMs),
          (result): Effect.Effect<InvokeOutcome, Trap | Timeout | FuelExhausted | FunctionNotFound | MemoryExceeded> => {
            switch (result.kind) {
              case "ok": {
                const outcome: InvokeOutcome = result.fuelRemaining === null
                  ? { results: result.value as Array<WasmValue>, memoryBytes: result.memoryBytes }
                  : { results: result.value as Array<WasmValue>, memoryBytes: result.memoryBytes, fuelRemaining: result.fuelRemaining }
                return Effect.succeed(outcome)
              }
              case "error":
                // proc_exit(0) is a normal end of a WASI program
                if (result.error[0] === "Exit" && result.error[2] === 0) {
                  return Effect.succeed({ results: [], memoryBytes: result.memoryBytes })
                }
                return Effect.fail(errorFrom(record.agentId, result.error))
              case "timeout":
                return Effect.fail(new Timeout({ function: fn, timeoutMs: timeoutMs ?? 0 }))
              default:
                return trapFrom(fn, record.agentId, result)
            }
          }
        )
      })

    const instance: WasmInstance = {
      invoke,
      memoryBytes: Effect.sync(() => record.memoryBytes),
      readMemory: (offset, length) =>
        Effect.flatMap(call(record, [OP_READ, record.id, offset, length]), (r) =>
          r.kind === "ok" ? Effect.succeed(r.value as Uint8Array) : trapFrom("readMemory", record.agentId, r)),
      writeMemory: (offset, bytes) =>
        Effect.flatMap(call(record, [OP_WRITE, record.id, offset, bytes]), (r) =>
          r.kind === "ok" ? Effect.void : trapFrom("writeMemory", record.agentId, r)),
      snapshot: Effect.flatMap(call(record, [OP_SNAPSHOT, record.id]), (r) =>
        r.kind === "ok" ? Effect.succeed(stateFromWire(r.value as StateWire)) : trapFrom("snapshot", record.agentId, r)),
      restore: (state) =>
        Effect.flatMap(call(record, [OP_RESTORE, record.id, stateToWire(state)]), (r): Effect.Effect<void, Trap | MemoryExceeded> => {
          if (r.kind === "ok") return Effect.void
          if (r.kind === "error" && r.error[0] === "MemoryExceeded") {
            return Effect.fail(new MemoryExceeded({ agentId: record.agentId, used: r.error[1], limit: r.error[2] }))
          }
          return trapFrom("restore", record.agentId, r)
        }),
      terminate: Effect.sync(() => pool.drop(record, "terminated by the host"))
    }
    recordOf.set(instance, record)
    return instance
  }

  /** The import specs for the executor (only what the module imports) and the host functions they index. */
  const importsFor = (
    module: WebAssembly.Module,
    imports: Readonly<Record<string, Readonly<Record<string, unknown>>>>
  ): { specs: Array<ImportSpec>; hostFunctions: Array<HostFn>; wasi: boolean } | InstantiationError => {
    const specs: Array<ImportSpec> = []
    const hostFunctions: Array<HostFn> = []
    let wasi = false
    for (const imp of WebAssembly.Module.imports(module)) {
      const ns = imports[imp.module]
      if (imp.module === WASI_MODULE && ns === undefined) {
        wasi = true
        continue
      }
      if (ns === undefined || !(imp.name in ns)) continue // the executor's instantiation reports the LinkError
      const value = ns[imp.name]
      if (typeof value === "function") {
        specs.push([imp.module, imp.name, 0, hostFunctions.push(value as HostFn) - 1])
      } else if (
        mode === "inPage" ||
        value === undefined || value === null || typeof value === "number" || typeof value === "bigint" ||
        typeof value === "string" || typeof value === "boolean" ||
        (value instanceof WebAssembly.Memory && typeof SharedArrayBuffer === "function" && value.buffer instanceof SharedArrayBuffer)
      ) {
        specs.push([imp.module, imp.name, 1, value])
      } else {
        const what = value instanceof WebAssembly.Memory
          ? "a non-shared WebAssembly.Memory"
          : value instanceof WebAssembly.Table
          ? "a WebAssembly.Table"
          : value instanceof WebAssembly.Global
          ? "a WebAssembly.Global (pass its value instead)"
          : `a ${typeof value}`
        return new InstantiationError({
          reason: `import ${imp.module}.${imp.name}: ${what} cannot be shared with a worker (the browser engine's workers accept host functions, numbers, bigints and shared memories)`
        })
      }
    }
    return { specs, hostFunctions, wasi }
  }

  const wasiSpec = (agentId: string) => {
    const files = options.wasi?.files?.(agentId)
    return [
      [agentId, ...(options.wasi?.args?.(agentId) ?? [])],
      [...(options.wasi?.env?.(agentId) ?? [])],
      files === undefined ? [] : Object.entries(files)
    ] as const
  }

  const instantiate: WasmEngineShape["instantiate"] = (compiled, instantiateOptions) =>
    Effect.suspend(() => {
      const module = compiled.handle
      if (!(module instanceof WebAssembly.Module)) {
        return Effect.fail(new InstantiationError({ reason: "not a module compiled by the browser engine" }))
      }
      if (pool.closed) return Effect.fail(new InstantiationError({ reason: "the engine was shut down" }))
      const resolved = importsFor(module, instantiateOptions.imports as Record<string, Record<string, unknown>>)
      if (resolved instanceof InstantiationError) return Effect.fail(resolved)
      const m = instantiateOptions.memory
      if (m !== undefined && (instantiateOptions.imports as Record<string, Record<string, unknown> | undefined>)[m.module]?.[m.name] === undefined) {
        // the module imports its memory and the host gives none: the executor creates it with the budget as maximum
        resolved.specs.push([m.module, m.name, 2, { initial: m.minPages, maximum: m.maxPages, shared: m.shared }])
      }
      const agentId = instantiateOptions.agentId as string
      if (resolved.wasi) outputs.open(agentId)
      const record: AgentRecord = {
        id: pool.nextRecordId(),
        agentId,
        module,
        imports: resolved.specs,
        hostFunctions: resolved.hostFunctions,
        wasi: resolved.wasi ? wasiSpec(agentId) : null,
        instantiateTimeoutMs: instantiateOptions.timeoutMs,
        tracking,
        slot: pool.assign(),
        status: "live",
        reason: "",
        memoryBytes: 0,
        kept: undefined
      }
      pool.register(record)
      const timeoutMs = instantiateOptions.timeoutMs
      return Effect.flatMap(
        call(record, instantiateRequest(record), timeoutMs),
        (result): Effect.Effect<WasmInstance, InstantiationError | Trap | Timeout | MemoryExceeded> => {
          const discard = () => pool.retire(record, "terminated", "instantiation failed")
          switch (result.kind) {
            case "ok": {
              const instance = makeInstance(record)
              if (result.memoryBytes > instantiateOptions.memoryLimit) {
                pool.drop(record, "initial memory above the budget")
                return Effect.fail(new MemoryExceeded({ agentId, used: result.memoryBytes, limit: instantiateOptions.memoryLimit }))
              }
              return Effect.succeed(instance)
            }
            case "error": {
              discard()
              const error = result.error
              if (error[0] === "InstantiationError") return Effect.fail(new InstantiationError({ reason: error[1] }))
              const mapped = errorFrom(agentId, error)
              return Effect.fail(mapped instanceof Trap ? mapped : new Trap({ function: "(start)", reason: mapped.message }))
            }
            case "timeout":
              return Effect.fail(new Timeout({ function: "(start)", timeoutMs: timeoutMs ?? 0 }))
            case "lost":
            case "gone":
              discard()
              return Effect.fail(new InstantiationError({ reason: `the worker was lost: ${result.reason}` }))
            case "interrupted":
              discard()
              return Effect.interrupt
          }
        }
      )
    })

  return {
    platform: "Browser",
    capabilities,
    mode,
    transport,
    environment,
    reasons: explain(environment),
    validate: (bytes: Uint8Array) =>
      Effect.suspend(() => {
        if (WebAssembly.validate(bytes as Uint8Array<ArrayBuffer>)) return Effect.void
        return Effect.tryPromise({
          try: () => WebAssembly.compile(bytes as Uint8Array<ArrayBuffer>),
          catch: (e) => new CompileError({ reason: e instanceof Error ? e.message : String(e) })
        }).pipe(Effect.andThen(Effect.fail(new CompileError({ reason: "WebAssembly.validate refused the module" }))))
      }),
    compile: (bytes: Uint8Array, hash: ModuleHash) =>
      Effect.tryPromise({
        try: () => WebAssembly.compile(bytes as Uint8Array<ArrayBuffer>),
        catch: (e) => new CompileError({ reason: e instanceof Error ? e.message : String(e) })
      }).pipe(Effect.map((module): CompiledModule => ({ hash, byteLength: bytes.byteLength, handle: module }))),
    instantiate,
    output: (agentId) => outputs.read(agentId as string),
    stats: () => pool.stats(),
    crashWorker: (instance) =>
      Effect.promise(() => {
        const record = recordOf.get(instance)
        return record === undefined ? Promise.resolve() : record.slot.crash()
      }),
    shutdown: Effect.sync(() => pool.close())
  }
}

/** A scoped browser engine with `options`: provides `WasmEngine` and `BrowserEngine`; terminates its workers with its scope. */
export const layerWith = (options: BrowserEngineOptions = {}): Layer.Layer<WasmEngine | BrowserEngine, BrowserUnsupported> => {
  const browser = Layer.effect(BrowserEngine, Effect.acquireRelease(make(options), (engine) => engine.shutdown))
  return Layer.effect(WasmEngine, Effect.map(Effect.service(BrowserEngine), (engine): WasmEngineShape => engine)).pipe(
    Layer.provideMerge(browser)
  )
}

/** The browser `WasmEngine` layer, mode `"auto"` (never fails: in-page when the page is not isolated). */
export const layer: Layer.Layer<WasmEngine | BrowserEngine> = Layer.orDie(layerWith())
