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
 * Host imports stay on the host thread: a guest's call to one is proxied
 * synchronously from the worker (`CallChannel.ts`). Host functions may return
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
import { existsSync } from "node:fs"
import { createRequire } from "node:module"
import { fileURLToPath } from "node:url"
import { type ChannelKind, DEFAULT_CHANNEL_BYTES } from "./CallChannel.js"
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
import { WASI_MODULE, type WasiFiles, WasiFileStore, type WasiOptions, type WasiOutput } from "./NodeWasi.js"
import {
  type AgentRecord,
  type HostFn,
  instantiateRequest,
  type OpResult,
  type PoolStats,
  type WorkerEntry,
  WorkerPool
} from "./WorkerPool.js"

/**
 * What happens to the other agents of a worker that is terminated (timeout)
 * or dies:
 * - `"snapshot"`: after every completed call (returned or trapped) the engine
 *   keeps the agent's state (linear memory pages that changed + exported
 *   mutable globals); the agent is re-instantiated on a fresh worker and
 *   restored from it — it continues exactly where its last call left it.
 * - `"restart"`: re-instantiated fresh (start function again, initial state).
 * - `"auto"` (default): `"snapshot"` while the agent's linear memory is at
 *   most `snapshotMaxBytes` (default 1 MiB); once it grows past that, its
 *   state is dropped and it is restarted instead, so big agents do not pay
 *   for a page comparison of their whole memory on every call.
 *
 * Only *exported* mutable globals are captured (as in every engine's
 * `snapshot`); the domain's hard-limits rewrite exports a module's internal
 * mutable globals, so its snapshots are complete. Until a module is rewritten,
 * state held in internal globals (an AssemblyScript counter's count, a heap
 * pointer) comes back at its initial value.
 *
 * Cost of tracking: the worker compares the agent's memory with a shadow copy
 * after each call (one `memcmp` per 64 KiB page) and sends the pages that
 * changed; the host keeps the agent's non-zero pages. Both copies are bounded
 * by `snapshotMaxBytes` per agent under `"auto"`, unbounded under `"snapshot"`.
 */
export type RecoveryPolicy = "auto" | "snapshot" | "restart"

/** Settings of a Node engine. */
export interface NodeEngineOptions {
  /** Number of workers (default `os.availableParallelism()`; workers start lazily). */
  readonly workers?: number | undefined
  /** Call path: `"shared"` (SharedArrayBuffer + Atomics, default) or `"message"` (postMessage per call). */
  readonly channel?: ChannelKind | undefined
  /** Payload region of a shared channel in bytes (default 256 KiB); larger messages go through a port. */
  readonly channelBytes?: number | undefined
  /** Recovery of a lost worker's other agents (default `"auto"`). */
  readonly recovery?: RecoveryPolicy | undefined
  /** `"auto"` recovery: largest linear memory (bytes) still snapshotted after each call (default 1 MiB). */
  readonly snapshotMaxBytes?: number | undefined
  /** WASI settings (preopened directories per agent). */
  readonly wasi?: WasiOptions | undefined
  /** The worker script (default: `NodeWorker.js` next to this file, or `NodeWorker.ts` bundled with esbuild from source). */
  readonly workerUrl?: string | URL | undefined
}

/** The Node engine: the `WasmEngine` port plus what only workers can offer. */
export interface NodeEngineShape extends WasmEngineShape {
  /** What a WASI agent wrote to stdout/stderr and its exit code (its latest instance); `undefined` if it has none. */
  readonly output: (agentId: AgentId | string) => WasiOutput | undefined
  /** Workers, their agents and how often each was replaced. */
  readonly stats: () => PoolStats
  /** The `threadId` of the worker running an instance, `undefined` when it has none (yet) or is not live. */
  readonly threadOf: (instance: WasmInstance) => number | undefined
  /** Fault injection: makes the worker running `instance` throw an uncaught error; its agents are recovered. */
  readonly crashWorker: (instance: WasmInstance) => Effect.Effect<void>
  /** Terminates every worker and removes WASI output files. Idempotent. */
  readonly shutdown: Effect.Effect<void>
}

/** The Node engine's own service (the layer provides it next to `WasmEngine`). */
export class NodeEngine extends Context.Service<NodeEngine, NodeEngineShape>()("@agent-runtime/engine-node/NodeEngine") {}

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

const MiB = 1024 * 1024

// -- worker script ------------------------------------------------------------

/** The structural part of esbuild's API this file uses (source mode only). */
interface Esbuild {
  readonly buildSync: (options: Record<string, unknown>) => { readonly outputFiles: ReadonlyArray<{ readonly text: string }> }
}

let bundled: string | undefined

/**
 * The worker script: `NodeWorker.js` beside this module (a build), else — when
 * running from TypeScript sources (tests, `@agent-runtime/source`) — the
 * sources bundled once per process with esbuild and run as an eval worker.
 */
const defaultEntry = (): WorkerEntry => {
  const js = new URL("./NodeWorker.js", import.meta.url)
  if (existsSync(js)) return { filename: js, eval: false }
  if (bundled === undefined) {
    const esbuild = createRequire(import.meta.url)("esbuild") as Esbuild
    bundled = esbuild.buildSync({
      entryPoints: [fileURLToPath(new URL("./NodeWorker.ts", import.meta.url))],
      bundle: true,
      format: "cjs",
      platform: "node",
      target: "node20",
      write: false,
      logLevel: "silent"
    }).outputFiles[0]!.text
  }
  return { filename: bundled, eval: true }
}

// -- error mapping --------------------------------------------------------------

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

/** An `OpResult` that is not `ok`, as a `Trap` of `fn` (operations without timeouts or fuel). */
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

// -- the engine -----------------------------------------------------------------

/** Builds a Node engine. Call `shutdown` when done (the layers do). */
export const make = (options: NodeEngineOptions = {}): NodeEngineShape => {
  const recovery = options.recovery ?? "auto"
  const tracking: Tracking = recovery === "restart"
    ? [0, 0]
    : recovery === "snapshot"
    ? [1, 0]
    : [2, options.snapshotMaxBytes ?? MiB]
  const files = new WasiFileStore()
  const outputs = new Map<string, WasiFiles>()
  const entry = options.workerUrl === undefined
    ? defaultEntry
    : (): WorkerEntry => ({ filename: options.workerUrl!, eval: false })
  const pool = new WorkerPool({
    size: options.workers ?? WorkerPool.defaultSize(),
    channel: options.channel ?? "shared",
    channelBytes: options.channelBytes ?? DEFAULT_CHANNEL_BYTES,
    entry,
    fuelExport: FUEL_EXPORT,
    release: (record) => {
      if (record.wasiFiles !== undefined) files.close(record.wasiFiles)
    }
  })
  const recordOf = new WeakMap<WasmInstance, AgentRecord>()
  let shutdown: Promise<void> | undefined

  const call = (record: AgentRecord, request: unknown, timeoutMs?: number) =>
    Effect.promise((signal) => record.slot.call(record, request, timeoutMs, signal))

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
        Effect.flatMap(
          call(record, [OP_RESTORE, record.id, stateToWire(state)]),
          (r): Effect.Effect<void, Trap | MemoryExceeded> => {
            if (r.kind === "ok") return Effect.void
            if (r.kind === "error" && r.error[0] === "MemoryExceeded") {
              return Effect.fail(new MemoryExceeded({ agentId: record.agentId, used: r.error[1], limit: r.error[2] }))
            }
            return trapFrom("restore", record.agentId, r)
          }
        ),
      terminate: Effect.sync(() => pool.drop(record, "terminated by the host"))
    }
    recordOf.set(instance, record)
    return instance
  }

  /** The import specs for the worker (only what the module imports), and the host functions they index. */
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
      if (ns === undefined || !(imp.name in ns)) continue // the worker's instantiation reports the LinkError
      const value = ns[imp.name]
      if (typeof value === "function") {
        specs.push([imp.module, imp.name, 0, hostFunctions.push(value as HostFn) - 1])
      } else if (
        value === undefined || value === null || typeof value === "number" || typeof value === "bigint" ||
        typeof value === "string" || typeof value === "boolean" ||
        (value instanceof WebAssembly.Memory && value.buffer instanceof SharedArrayBuffer)
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
          reason: `import ${imp.module}.${imp.name}: ${what} cannot be shared with a worker (the node engine accepts host functions, numbers, bigints and shared memories)`
        })
      }
    }
    return { specs, hostFunctions, wasi }
  }

  const instantiate: WasmEngineShape["instantiate"] = (compiled, instantiateOptions) =>
    Effect.suspend(() => {
      const module = compiled.handle
      if (!(module instanceof WebAssembly.Module)) {
        return Effect.fail(new InstantiationError({ reason: "not a module compiled by the node engine" }))
      }
      if (pool.closed) return Effect.fail(new InstantiationError({ reason: "the engine was shut down" }))
      const resolved = importsFor(module, instantiateOptions.imports as Record<string, Record<string, unknown>>)
      const m = instantiateOptions.memory
      if (!(resolved instanceof InstantiationError) && m !== undefined && !resolved.specs.some((x) => x[0] === m.module && x[1] === m.name)) {
        resolved.specs.push([m.module, m.name, 2, { initial: m.minPages, maximum: m.maxPages, shared: m.shared }])
      }
      if (resolved instanceof InstantiationError) return Effect.fail(resolved)
      const agentId = instantiateOptions.agentId as string
      const wasiFiles = resolved.wasi ? files.open() : undefined
      if (wasiFiles !== undefined) outputs.set(agentId, wasiFiles)
      const preopens = resolved.wasi ? options.wasi?.preopens?.(agentId) : undefined
      const record: AgentRecord = {
        id: pool.nextRecordId(),
        agentId,
        module,
        imports: resolved.specs,
        hostFunctions: resolved.hostFunctions,
        wasi: wasiFiles === undefined
          ? null
          : [agentId, wasiFiles.stdin, wasiFiles.stdout, wasiFiles.stderr, Object.entries(preopens ?? {})],
        wasiFiles,
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
          const discard = () => {
            pool.retire(record, "terminated", "instantiation failed")
            if (wasiFiles !== undefined) files.close(wasiFiles)
          }
          switch (result.kind) {
            case "ok": {
              const instance = makeInstance(record)
              if (result.memoryBytes > instantiateOptions.memoryLimit) {
                pool.drop(record, "initial memory above the budget")
                return Effect.fail(
                  new MemoryExceeded({ agentId, used: result.memoryBytes, limit: instantiateOptions.memoryLimit })
                )
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
    platform: "Node",
    capabilities,
    compile: (bytes: Uint8Array, hash: ModuleHash) =>
      Effect.tryPromise({
        try: () => WebAssembly.compile(bytes as Uint8Array<ArrayBuffer>),
        catch: (e) => new CompileError({ reason: e instanceof Error ? e.message : String(e) })
      }).pipe(Effect.map((module): CompiledModule => ({ hash, byteLength: bytes.byteLength, handle: module }))),
    instantiate,
    output: (agentId) => {
      const f = outputs.get(agentId as string)
      return f === undefined ? undefined : files.read(f)
    },
    stats: () => pool.stats(),
    threadOf: (instance) => {
      const record = recordOf.get(instance)
      return record === undefined || record.status !== "live" ? undefined : record.slot.worker?.threadId
    },
    crashWorker: (instance) =>
      Effect.promise(() => {
        const record = recordOf.get(instance)
        return record === undefined ? Promise.resolve() : record.slot.crash()
      }),
    shutdown: Effect.promise(() =>
      (shutdown ??= pool.close().finally(() => {
        files.dispose()
      }))
    )
  }
}

/** A scoped Node engine with `options`: provides `WasmEngine` and `NodeEngine`; shuts the pool down with its scope. */
export const layerWith = (options: NodeEngineOptions = {}): Layer.Layer<WasmEngine | NodeEngine> => {
  const node = Layer.effect(
    NodeEngine,
    Effect.acquireRelease(Effect.sync(() => make(options)), (engine) => engine.shutdown)
  )
  return Layer.effect(WasmEngine, Effect.map(Effect.service(NodeEngine), (engine): WasmEngineShape => engine)).pipe(
    Layer.provideMerge(node)
  )
}

/** The Node `WasmEngine` layer with default options (scoped: workers end with the scope). */
export const layer: Layer.Layer<WasmEngine | NodeEngine> = layerWith()
